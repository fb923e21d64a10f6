"""Flax NNX ensembles: K members stacked on one axis, trained and evaluated in one program.

An optional layer (``pip install "entjax[flax]"``) over flax's own recipe for ensembles,
``nnx.split_rngs`` + ``nnx.vmap``: :func:`stack` initialises ``K`` members independently and
stores them as *one* module whose every state leaf (parameters, batch statistics, RNG streams)
has a leading member axis of size ``K``; :func:`optimizer` gives each member its own optimiser
state; :func:`train_step` takes one step of every member; :func:`predict` returns the members'
outputs ``[K, N, C]``, the layout :func:`entjax.ensemble_uncertainty` reads with ``axis=0``.
Each is one vmapped computation, so under ``nnx.jit`` the whole ensemble compiles to one
program.

``import entjax`` never imports Flax (the library works with any pytree of parameters); only
``import entjax.nnx`` does, and raises an ``ImportError`` naming the extra when Flax is missing.

Examples:
  >>> import jax.numpy as jnp, optax, entjax, entjax.nnx
  >>> from flax import nnx
  >>> members = entjax.nnx.stack(lambda rngs: nnx.Linear(4, 3, rngs=rngs), 5, rngs=0)
  >>> opt = entjax.nnx.optimizer(members, optax.adam(1e-2))
  >>> def loss_fn(model, batch):
  ...     logits = model(batch["x"])
  ...     return entjax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
  >>> @nnx.jit
  ... def step(members, opt, batch):
  ...     return entjax.nnx.train_step(members, opt, batch, loss_fn)
  >>> batch = {"x": jnp.ones((8, 4)), "y": jnp.zeros(8, dtype=jnp.int32)}
  >>> step(members, opt, batch).shape  # one loss per member
  (5,)
  >>> logits = entjax.nnx.predict(members, batch["x"])
  >>> logits.shape
  (5, 8, 3)
  >>> entjax.ensemble_uncertainty(logits, axis=0).epistemic.shape
  (8,)
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import optax

try:
    from flax import nnx
except ImportError as e:  # pragma: no cover - exercised in a subprocess by tests/entjax/test_nnx.py
    raise ImportError(
        'entjax.nnx needs Flax, an optional dependency of entjax: pip install "entjax[flax]"'
    ) from e

__all__ = ["optimizer", "predict", "stack", "train_step"]

M = TypeVar("M", bound=nnx.Module)


def stack(
    make_member: Callable[[nnx.Rngs], M],
    num_members: int,
    *,
    rngs: nnx.Rngs | int | jax.Array,
) -> M:
    r"""Initialise ``num_members`` independent members, stacked on a leading member axis.

    .. math::
        \theta_k = \mathrm{init}(\xi_k), \qquad \xi_1, \dots, \xi_K
        = \mathrm{split}(\xi, K), \qquad k = 1, \dots, K.

    Every stream of ``rngs`` is split into ``K`` keys (``nnx.split_rngs``) and ``make_member``
    runs once under ``nnx.vmap``, so the members differ only by their keys and every state
    leaf of the result (parameters, batch statistics, the members' own RNG streams, e.g. for
    dropout) gets a leading axis of size ``K``. ``rngs`` is advanced, so a second call with the
    same ``nnx.Rngs`` gives another ensemble.

    Args:
      make_member: builds one member from an ``nnx.Rngs``, e.g.
        ``lambda rngs: MLP(64, 10, rngs=rngs)``.
      num_members: the ensemble size ``K >= 1``.
      rngs: an ``nnx.Rngs``, or a seed (int or key) for ``nnx.Rngs(rngs)``.

    Returns:
      One module of ``make_member``'s type whose state leaves have shape ``[K, *member_shape]``.
      Call it through :func:`predict` / :func:`train_step` (or your own ``nnx.vmap``), not
      directly.

    Examples:
      >>> import entjax.nnx
      >>> from flax import nnx
      >>> members = entjax.nnx.stack(lambda rngs: nnx.Linear(4, 3, rngs=rngs), 5, rngs=0)
      >>> members.kernel.shape
      (5, 4, 3)

    References:
      Lakshminarayanan, Pritzel & Blundell, *Simple and Scalable Predictive Uncertainty
      Estimation using Deep Ensembles*, NeurIPS 2017 (independently initialised members);
      Flax documentation, *Transforms* (``nnx.vmap``, ``nnx.split_rngs``).
    """
    try:
        k = operator.index(num_members)
    except TypeError:
        raise TypeError(
            f"entjax.nnx.stack: `num_members` must be an int, got {num_members!r}."
        ) from None
    if isinstance(num_members, bool) or k < 1:
        raise ValueError(f"entjax.nnx.stack: `num_members` must be >= 1, got {num_members!r}.")
    if not isinstance(rngs, nnx.Rngs):
        rngs = nnx.Rngs(rngs)

    @nnx.split_rngs(splits=k)
    @nnx.vmap(in_axes=0, out_axes=0)
    def create(member_rngs: nnx.Rngs) -> M:
        return make_member(member_rngs)

    return create(rngs)


def optimizer(
    members: nnx.Module, tx: optax.GradientTransformation, *, wrt: Any = nnx.Param
) -> nnx.Optimizer:
    r"""An ``nnx.Optimizer`` for stacked members, one optimiser state per member.

    .. math::
        s_k = \mathrm{tx.init}(\theta_k), \qquad k = 1, \dots, K.

    The optimiser is created under ``nnx.vmap``, so its state (Adam moments, step counts, ...)
    is stacked like the members and :func:`train_step` updates each member with its own state.
    For elementwise transformations such as ``optax.adam`` this equals one optimiser over the
    stacked parameters; for transformations that mix leaves (``optax.clip_by_global_norm``,
    ``optax.lbfgs``) only the per-member form is right.

    Args:
      members: stacked members from :func:`stack`.
      tx: any ``optax.GradientTransformation``.
      wrt: the ``nnx`` filter of the variables to optimise (``nnx.Param`` by default);
        :func:`train_step` differentiates with respect to the same filter.

    Returns:
      An ``nnx.Optimizer`` whose state leaves have a leading member axis ``K``.

    Examples:
      >>> import optax, entjax.nnx
      >>> from flax import nnx
      >>> members = entjax.nnx.stack(lambda rngs: nnx.Linear(4, 3, rngs=rngs), 5, rngs=0)
      >>> opt = entjax.nnx.optimizer(members, optax.adam(1e-3))
      >>> opt.step.shape
      (5,)

    References:
      Flax documentation, *Transforms* and ``nnx.Optimizer``; Optax documentation,
      *Optimizers*.
    """

    @nnx.vmap(in_axes=0, out_axes=0)
    def create(member: nnx.Module) -> nnx.Optimizer:
        return nnx.Optimizer(member, tx, wrt=wrt)

    return create(members)


def train_step(
    members: nnx.Module,
    opt: nnx.Optimizer,
    batch: Any,
    loss_fn: Callable[[Any, Any], Any],
    *,
    shared_batch: bool = True,
) -> Any:
    r"""One optimisation step of every member, all members in one vmapped computation.

    .. math::
        \ell_k = L(\theta_k; \mathcal B_k), \qquad
        (\Delta_k, s_k) \leftarrow \mathrm{tx.update}(\nabla_{\theta_k} \ell_k, s_k, \theta_k),
        \qquad \theta_k \leftarrow \theta_k + \Delta_k,

    with :math:`\mathcal B_k = \mathcal B` for every member (``shared_batch=True``) or each
    member's own batch (``shared_batch=False``: every leaf of ``batch`` has a leading member
    axis ``K``, e.g. bootstrap resamples or a per-member data order). ``members`` and ``opt``
    are updated in place, as with ``nnx.Optimizer.update``; other state that ``loss_fn``
    changes (batch statistics, RNG streams) is kept too.

    Compile it once with ``nnx.jit``, either in your own step (which can do more, e.g. compute
    metrics) or directly with the static options::

        @nnx.jit
        def step(members, opt, batch):
            return entjax.nnx.train_step(members, opt, batch, loss_fn)

        step = nnx.jit(entjax.nnx.train_step, static_argnames=("loss_fn", "shared_batch"))

    ``loss_fn`` must then be the same function object on every call, or ``nnx.jit`` traces
    again. An objective from :func:`entjax.make_objective` works as ``loss_fn`` with an
    ``apply_fn(model, batch)`` that calls the module; it is called without a step, so for
    weight schedules put the step in the batch and pass
    ``lambda model, batch: objective(model, batch, batch["step"])``.

    Args:
      members: stacked members from :func:`stack`.
      opt: their optimiser from :func:`optimizer`.
      batch: any pytree of arrays.
      loss_fn: ``loss_fn(model, batch)`` for *one* member and *its* batch, returning a scalar
        loss or ``(loss, aux)`` with ``aux`` any pytree of arrays.
      shared_batch: give every member the same ``batch`` (default) or slice it along a leading
        member axis.

    Returns:
      The members' losses before the step, shape ``[K]``; or ``(losses, aux)`` if ``loss_fn``
      returns ``(loss, aux)``, every leaf of ``aux`` with a leading member axis ``K``.

    Examples:
      >>> import jax.numpy as jnp, optax, entjax, entjax.nnx
      >>> from flax import nnx
      >>> members = entjax.nnx.stack(lambda rngs: nnx.Linear(2, 2, rngs=rngs), 3, rngs=0)
      >>> opt = entjax.nnx.optimizer(members, optax.sgd(0.1))
      >>> def loss_fn(model, batch):
      ...     logits = model(batch["x"])
      ...     ce = entjax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
      ...     return ce.mean(), {"accuracy": (logits.argmax(-1) == batch["y"]).mean()}
      >>> batch = {"x": jnp.ones((3, 4, 2)), "y": jnp.zeros((3, 4), dtype=jnp.int32)}
      >>> step = nnx.jit(entjax.nnx.train_step, static_argnames=("loss_fn", "shared_batch"))
      >>> losses, aux = step(members, opt, batch, loss_fn, shared_batch=False)
      >>> losses.shape, aux["accuracy"].shape
      ((3,), (3,))

    References:
      Flax documentation, *Transforms* (``nnx.vmap``) and ``nnx.Optimizer``.
    """
    if not shared_batch:
        _check_member_axis(batch, _num_members(members, "train_step"), "batch", "train_step")
    returns_aux = []

    def member_step(model: nnx.Module, member_opt: nnx.Optimizer, member_batch: Any) -> Any:
        def loss_and_aux(m: nnx.Module) -> tuple[Any, Any]:
            out = loss_fn(m, member_batch)
            if isinstance(out, tuple):
                returns_aux.append(True)
                return out
            return out, None

        grad_fn = nnx.value_and_grad(
            loss_and_aux, argnums=nnx.DiffState(0, member_opt.wrt), has_aux=True
        )
        (loss, aux), grads = grad_fn(model)
        member_opt.update(model, grads)
        return loss, aux

    in_axes = (0, 0, None if shared_batch else 0)
    losses, aux = nnx.vmap(member_step, in_axes=in_axes, out_axes=0)(members, opt, batch)
    return (losses, aux) if returns_aux else losses


def predict(members: nnx.Module, x: Any, *, member_inputs: bool = False) -> Any:
    r"""Every member's output for the same inputs (or each member's own), stacked first.

    .. math::
        y_k = f_{\theta_k}(x) \quad (\text{or } f_{\theta_k}(x_k)), \qquad k = 1, \dots, K.

    Calls ``member(x)`` under ``nnx.vmap``; for models whose call depends on a mode (dropout,
    batch norm), call ``members.eval()`` first, as for a single model. Works under ``nnx.jit``
    (``nnx.jit(entjax.nnx.predict, static_argnames="member_inputs")``). Evaluate large inputs in
    chunks of ``N`` if the ``K`` activations do not fit in memory.

    Args:
      members: stacked members from :func:`stack`.
      x: the inputs, any pytree, e.g. ``[N, D]``; with ``member_inputs=True`` every leaf has a
        leading member axis, e.g. ``[K, N, D]``.
      member_inputs: slice ``x`` along its leading member axis instead of sharing it.

    Returns:
      The outputs with a leading member axis, e.g. logits ``[K, N, C]`` for
      ``entjax.ensemble_uncertainty(logits, axis=0)`` (a pytree of such arrays if the members
      return one).

    Examples:
      >>> import jax.numpy as jnp, entjax, entjax.nnx
      >>> from flax import nnx
      >>> members = entjax.nnx.stack(lambda rngs: nnx.Linear(4, 3, rngs=rngs), 5, rngs=0)
      >>> logits = entjax.nnx.predict(members, jnp.ones((8, 4)))
      >>> logits.shape
      (5, 8, 3)
      >>> entjax.ensemble_uncertainty(logits, axis=0).total.shape
      (8,)

    References:
      Lakshminarayanan, Pritzel & Blundell, *Simple and Scalable Predictive Uncertainty
      Estimation using Deep Ensembles*, NeurIPS 2017; Flax documentation, *Transforms*.
    """
    if member_inputs:
        _check_member_axis(x, _num_members(members, "predict"), "x", "predict")

    def member_call(model: nnx.Module, member_x: Any) -> Any:
        return model(member_x)

    in_axes = (0, 0 if member_inputs else None)
    return nnx.vmap(member_call, in_axes=in_axes, out_axes=0)(members, x)


def _num_members(members: nnx.Module, fn: str) -> int:
    leaves = jax.tree.leaves(nnx.state(members))
    if not leaves or any(jnp.ndim(leaf) == 0 for leaf in leaves):
        raise ValueError(
            f"entjax.nnx.{fn}: `members` has a state leaf without a member axis; build it with "
            "entjax.nnx.stack."
        )
    return leaves[0].shape[0]


def _check_member_axis(tree: Any, k: int, name: str, fn: str) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = jnp.shape(leaf)
        if not shape or shape[0] != k:
            where = f"{name}{jax.tree_util.keystr(path)}"
            raise ValueError(
                f"entjax.nnx.{fn}: every leaf of `{name}` needs a leading member axis of size "
                f"{k}, but {where} has shape {shape}."
            )
