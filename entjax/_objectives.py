"""Combinators that build Optax-compatible training objectives from named, weighted terms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _numerics as nx

Weight = float | jax.typing.ArrayLike | Callable[[Any], jax.typing.ArrayLike]
Objective = Callable[..., tuple[jax.Array, dict[str, Any]]]

_OUTPUT, _BATCH, _PARAMS = "output.", "batch.", "params"


class Term(NamedTuple):
    """One named term of an objective; build it with :func:`entjax.term`."""

    fn: Callable[..., jax.Array]
    inputs: tuple[str, ...]
    weight: Weight
    kwargs: dict[str, Any]
    #: keyword arguments resolved by name like ``inputs``, as ``(keyword, name)`` pairs
    keyword_inputs: tuple[tuple[str, str], ...] = ()


def term(fn: Callable[..., jax.Array], *inputs: str, weight: Weight = 1.0, **kwargs: Any) -> Term:
    r"""A term of an objective: ``weight(step) * reduce(fn(*inputs, **kwargs))``.

    Each input is a *name*, resolved when the objective runs:

    * ``"name"``: the model output ``name`` if ``apply_fn`` returned it, else ``batch["name"]``;
    * ``"output.name"`` / ``"batch.name"``: force the source;
    * ``"params"``: the parameters themselves (e.g. for a weight-decay term).

    A model that returns a single array exposes it as ``"output"``. Keyword arguments whose
    value is a string are names too, resolved the same way and passed by keyword: this is how a
    batch field reaches a loss's own ``where=`` (``term(ce, "logits", "y", where="mask")``, which
    keeps masked rows out of the gradient as well as out of the mean). Other keyword arguments
    are constants; to pass a constant string, bind it with ``functools.partial``.

    ``fn`` returns one value per example (any leading batch shape, e.g. ``[batch]`` or
    ``[batch, time]``); the objective reduces it (masked mean or sum). A scalar result (ndim 0)
    is a *global* term, such as an L2 penalty on the parameters, and is used as it is.

    Args:
      fn: any entjax loss (or user function) taking the resolved inputs positionally.
      *inputs: the names of its positional inputs.
      weight: a constant (number or scalar array) or a schedule, any callable of the step (e.g.
        an ``optax`` schedule).
      **kwargs: keyword arguments for ``fn``: strings are input names (``where="mask"``),
        anything else a constant (``label_smoothing=0.1``).

    Returns:
      A :class:`Term`.

    Examples:
      >>> import optax, entjax
      >>> t = entjax.term(entjax.confidence_penalty, "logits",
      ...                 weight=optax.linear_schedule(0.0, 0.1, 1000))
      >>> t.inputs, float(t.weight(500))
      (('logits',), 0.05)
      >>> ce = entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "y",
      ...                  where="mask", label_smoothing=0.1)
      >>> ce.keyword_inputs, ce.kwargs
      ((('where', 'mask'),), {'label_smoothing': 0.1})

    References:
      Pereyra et al., *Regularizing Neural Networks by Penalizing Confident Output
      Distributions*, 2017 (a typical weighted term); Optax documentation, *Optimizer
      schedules* (weight schedules).
    """
    if not callable(fn):
        raise TypeError(f"term: `fn` must be callable, got {fn!r}.")
    for name in inputs:
        if not isinstance(name, str):
            raise TypeError(
                f"term: inputs are names of model outputs or batch fields (str), got {name!r}; "
                "pass constants as keyword arguments."
            )
    _check_weight(weight)
    named = tuple((key, value) for key, value in kwargs.items() if isinstance(value, str))
    constants = {key: value for key, value in kwargs.items() if not isinstance(value, str)}
    return Term(fn, tuple(inputs), weight, constants, named)


def _check_weight(weight: Any) -> None:
    """Raise a ``TypeError``/``ValueError`` naming :func:`entjax.term` for a bad ``weight``."""
    if callable(weight):
        return
    fix = "e.g. `weight=0.1`, or a schedule such as `optax.linear_schedule(0.0, 0.1, 1000)`"
    numeric = isinstance(weight, int | float | np.generic | np.ndarray | jax.Array)
    if not numeric or isinstance(weight, bool | np.bool_):
        raise TypeError(
            "term: `weight` must be a number, a scalar array or a schedule (a callable of the "
            f"step), got {weight!r} ({type(weight).__name__}); {fix}."
        )
    dtype = weight.dtype if hasattr(weight, "dtype") else np.result_type(type(weight))
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(f"term: `weight` must be real-valued, got dtype {dtype}; {fix}.")
    if jnp.ndim(weight) != 0:
        raise ValueError(f"term: `weight` must be a scalar, got shape {jnp.shape(weight)}; {fix}.")


def _resolve(name: str, params: Any, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> Any:
    if name == _PARAMS:
        return params
    if name.startswith(_OUTPUT):
        key, sources = name[len(_OUTPUT) :], {"model outputs": outputs}
    elif name.startswith(_BATCH):
        key, sources = name[len(_BATCH) :], {"batch": batch}
    else:
        key, sources = name, {"model outputs": outputs, "batch": batch}
    for source in sources.values():
        if key in source:
            return source[key]
    available = "; ".join(f"{where}: {sorted(src)}" for where, src in sources.items())
    raise KeyError(f"objective: input {name!r} not found ({available}).")


def _weight_at(weight: Weight, step: Any) -> jax.Array:
    return jnp.asarray(weight(step) if callable(weight) else weight)


def _reduce(values: jax.Array, mask: jax.Array | None, reduction: str, name: str) -> jax.Array:
    if values.ndim == 0:
        return values
    if mask is None:
        return jnp.mean(values) if reduction == "mean" else jnp.sum(values)
    if mask.ndim > values.ndim or values.shape[: mask.ndim] != mask.shape:
        raise ValueError(
            f"objective: the mask of shape {mask.shape} does not match the leading axes of term "
            f"{name!r}, whose per-example values have shape {values.shape}."
        )
    mask = jnp.broadcast_to(
        mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim)), values.shape
    )
    if mask.dtype == jnp.bool_:
        keep, w = mask, mask.astype(values.dtype)
    else:
        keep, w = mask != 0, mask.astype(values.dtype)
    # Double where: values on dropped rows (padding may hold inf or NaN) never reach the total.
    total = jnp.sum(jnp.where(keep, w * jnp.where(keep, values, 0.0), 0.0))
    if reduction == "sum":
        return total
    denom = jnp.sum(w)
    return jnp.where(denom != 0, total / jnp.where(denom != 0, denom, 1.0), 0.0)


def make_objective(
    apply_fn: Callable[[Any, Any], Any],
    terms: Mapping[str, Term | Callable[..., jax.Array]],
    *,
    mask: str | None = None,
    reduction: str = "mean",
    has_aux: bool = True,
) -> Objective:
    r"""Build a training objective ``loss_fn(params, batch, step=0) -> (loss, aux)`` from terms.

    .. math::
        \mathcal L(\theta; \mathcal B, t) = \sum_k w_k(t)\;
          \frac{\sum_i m_i \, \ell_k(f_\theta(\mathcal B), \mathcal B)_i}{\sum_i m_i}

    with per-example term values :math:`\ell_k`, weights :math:`w_k(t)` (constants or schedules
    of the step :math:`t`) and per-example mask or weights :math:`m_i` (all ones by default).
    ``reduction="sum"`` drops the denominator. Rows with :math:`m_i = 0` are removed with a
    double ``where``, so padding that produces ``inf``/NaN does not reach the loss value; to
    keep such rows out of the *gradient* as well, also pass the mask to the term (e.g. the
    loss's own ``where=`` argument, or ``ignore_index``). A term with weight 0 contributes 0
    even if its value is infinite.

    The result is a plain function:

    * ``jax.value_and_grad(loss_fn, has_aux=True)(params, batch, step)`` with any
      ``optax.GradientTransformation``; ``step`` may be a Python int or a traced integer, so a
      jitted train step compiles once for all steps;
    * ``jax.vmap(loss_fn, in_axes=(0, None, None))(stacked_params, batch, step)`` evaluates an
      ensemble (pass ``step`` positionally: ``jax.vmap`` maps keyword arguments);
    * for ``optax.lbfgs`` and ``optax.value_and_grad_from_state``, which need a scalar-valued
      ``value_fn(params)``, use :func:`entjax.value_fn` (or ``has_aux=False`` and
      ``functools.partial(loss_fn, batch=batch)``).

    Args:
      apply_fn: ``apply_fn(params, batch)`` returning an array (named ``"output"``) or a dict of
        named arrays (e.g. ``{"logits": ..., "mean": ..., "log_var": ...}``).
      terms: mapping from term name to a :func:`entjax.term`, or to a user callable
        ``fn(outputs, batch)`` returning per-example values (weight 1).
      mask: name of a per-example boolean mask or float weights (looked up like a term input,
        usually a batch field), broadcast against the leading axes of every term's values.
      reduction: ``"mean"`` (masked / weighted mean over examples) or ``"sum"``.
      has_aux: return ``(loss, aux)`` (default) or the loss alone.

    Returns:
      ``loss_fn(params, batch, step=0)`` returning the scalar loss and ``aux = {"loss": loss,
      "terms": {name: reduced unweighted value}, "weights": {name: weight at step}}``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, entjax
      >>> loss_fn = entjax.make_objective(
      ...     lambda params, batch: {"logits": batch["x"] @ params},
      ...     {"ce": entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "y"),
      ...      "conf": entjax.term(entjax.confidence_penalty, "logits",
      ...                          weight=optax.linear_schedule(0.0, 0.1, 1000))},
      ...     mask="mask")
      >>> batch = {"x": jnp.eye(3), "y": jnp.array([0, 1, 0]), "mask": jnp.array([1, 1, 0]) > 0}
      >>> (loss, aux), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
      ...     jnp.zeros((3, 2)), batch, 500)
      >>> print(f"{aux['terms']['ce']:.4f} {aux['terms']['conf']:.4f} {aux['weights']['conf']:.2f}")
      0.6931 -0.6931 0.05
      >>> print(f"{loss:.4f}")
      0.6585

    References:
      Optax documentation, *Losses* and *Optimizer schedules*; Blondel et al., *Efficient and
      Modular Implicit Differentiation* (optimistix/jaxopt-style objective functions), 2022.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"`reduction` must be 'mean' or 'sum', got {reduction!r}.")
    if not terms:
        raise ValueError("make_objective: `terms` is empty.")
    normalized: dict[str, tuple[Term, bool]] = {}
    for name, t in terms.items():
        if isinstance(t, Term):
            normalized[name] = (t, False)
        elif callable(t):
            normalized[name] = (Term(t, (), 1.0, {}), True)
        else:
            raise TypeError(f"make_objective: term {name!r} must be entjax.term(...) or callable.")

    def loss_fn(params: Any, batch: Any, step: Any = 0) -> Any:
        outputs = apply_fn(params, batch)
        if not isinstance(outputs, Mapping):
            outputs = {"output": outputs}
        m = None
        if mask is not None:
            m = jnp.asarray(_resolve(mask, params, outputs, batch))
        values, weights = {}, {}
        total = None
        for name, (t, user) in normalized.items():
            if user:
                v = t.fn(outputs, batch)
            else:
                args = [_resolve(i, params, outputs, batch) for i in t.inputs]
                named = {k: _resolve(i, params, outputs, batch) for k, i in t.keyword_inputs}
                v = t.fn(*args, **t.kwargs, **named)
            if isinstance(v, tuple | Mapping):
                raise TypeError(
                    f"objective: term {name!r} returned {type(v).__name__}, not an array; "
                    "wrap the function to select one field, e.g. "
                    "`lambda *a: entjax.vib_loss(*a).loss`."
                )
            v = jnp.asarray(v)
            if not jnp.issubdtype(v.dtype, jnp.floating):
                v = v.astype(jnp.promote_types(v.dtype, jnp.float32))
            r = _reduce(v, m, reduction, name)
            w = _weight_at(t.weight, step).astype(r.dtype)
            if w.ndim != 0:
                raise ValueError(f"objective: the weight of term {name!r} must be a scalar.")
            contribution = nx.safe_mul(w, r)
            total = contribution if total is None else total + contribution
            values[name], weights[name] = r, w
        aux = {"loss": total, "terms": values, "weights": weights}
        return (total, aux) if has_aux else total

    return loss_fn


def value_fn(loss_fn: Objective, batch: Any, step: Any = 0) -> Callable[[Any], jax.Array]:
    r"""Bind a batch (and step) to an objective and drop ``aux``: ``params -> loss``.

    .. math::
        v(\theta) = \mathcal L(\theta; \mathcal B, t)

    This is the ``value_fn`` that line-search optimisers such as ``optax.lbfgs`` call at
    candidate parameters, and the function to give to ``optax.value_and_grad_from_state``.

    Args:
      loss_fn: an objective from :func:`entjax.make_objective` (with or without aux).
      batch: the batch to bind.
      step: the step to bind.

    Returns:
      A function of the parameters alone returning the scalar loss.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, entjax
      >>> loss_fn = entjax.make_objective(
      ...     lambda p, b: b["x"] * p, {"sq": entjax.term(jnp.square, "output")})
      >>> f = entjax.value_fn(loss_fn, {"x": jnp.array([1.0, 2.0, 3.0])})
      >>> opt = optax.lbfgs()
      >>> value_and_grad = optax.value_and_grad_from_state(f)
      >>> @jax.jit
      ... def step(params, state):
      ...     value, grad = value_and_grad(params, state=state)
      ...     updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
      ...     return optax.apply_updates(params, updates), state
      >>> params = jnp.array(1.0)
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     params, state = step(params, state)
      >>> print(f"{f(params):.6f}")
      0.000000

    References:
      Liu & Nocedal, *On the Limited Memory BFGS Method for Large Scale Optimization*, 1989;
      Optax documentation, ``optax.lbfgs``.
    """

    def value(params: Any) -> jax.Array:
        out = loss_fn(params, batch, step)
        return out[0] if isinstance(out, tuple) else out

    return value
