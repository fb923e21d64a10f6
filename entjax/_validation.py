"""Opt-in value checks that need data (labels in range, rows summing to one).

Shape and dtype errors are raised at trace time by every function. Checks on *values* cannot be
raised from compiled code without cost, so they are opt-in: call a ``validate_*`` function inside
your loss and run it through :func:`checked`, which functionalises the checks with
``jax.experimental.checkify`` and raises a readable error, also under ``jax.jit``.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import checkify

from . import _checks as ck, _numerics as nx


def validate_probs(probs: jax.typing.ArrayLike, *, axis: int = -1, atol: float = 1e-5) -> jax.Array:
    r"""Check that ``probs`` holds distributions: entries in :math:`[0, 1]`, rows summing to one.

    .. math::
        p_c \ge 0, \qquad \Bigl|\sum_c p_c - 1\Bigr| \le \text{atol}.

    Must run under :func:`checked` when traced (``jax.jit``, ``jax.vmap``): a traced check
    outside it raises ``ValueError`` naming the fix. Returns ``probs`` unchanged so it
    can be used inline.

    Args:
      probs: probabilities, shape ``[..., num_classes]``.
      axis: the class axis.
      atol: tolerance on the row sums.

    Returns:
      ``probs``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> f = entjax.checked(lambda p: entjax.entropy_from_probs(entjax.validate_probs(p)))
      >>> print(f"{f(jnp.array([0.5, 0.5])):.4f}")
      0.6931
      >>> try:
      ...     f(jnp.array([0.5, 0.6]))
      ... except Exception as e:
      ...     print(type(e).__name__, e)
      JaxRuntimeError `probs` rows must sum to 1 (largest deviation 0.1...) ...

    References:
      Bradbury et al., JAX: ``jax.experimental.checkify`` documentation.
    """
    probs = ck.check_floating(probs, "probs")
    p = nx.upcast(probs)
    user_check("validate_probs", jnp.all(p >= 0), "`probs` has negative entries")
    err = jnp.max(jnp.abs(jnp.sum(p, axis=axis) - 1.0), initial=0.0)
    user_check(
        "validate_probs",
        err <= atol,
        "`probs` rows must sum to 1 (largest deviation {err})",
        err=err,
    )
    return probs


def validate_labels(
    labels: jax.typing.ArrayLike, num_classes: int, *, ignore_index: int | None = None
) -> jax.Array:
    r"""Check that integer ``labels`` lie in :math:`[0, C)` or equal ``ignore_index``.

    Must run under :func:`checked` when traced (``jax.jit``, ``jax.vmap``): a traced check
    outside it raises ``ValueError`` naming the fix. Returns ``labels`` unchanged.

    Args:
      labels: integer class indices.
      num_classes: the number of classes :math:`C`.
      ignore_index: a label value that is allowed and means "ignore this row".

    Returns:
      ``labels``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> f = entjax.checked(lambda y: entjax.validate_labels(y, 3))
      >>> try:
      ...     f(jnp.array([0, 3]))
      ... except Exception as e:
      ...     print(type(e).__name__, e)
      JaxRuntimeError `labels` must lie in [0, 3); found 3 ...

    References:
      Bradbury et al., JAX: ``jax.experimental.checkify`` documentation.
    """
    labels = ck.check_integer(labels, "labels")
    ok = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        ok = ok | (labels == ignore_index)
    bad = jnp.where(ok, 0, labels).ravel()
    first_bad = bad[jnp.argmax(~ok.ravel())] if labels.size else jnp.zeros((), labels.dtype)
    user_check(
        "validate_labels",
        jnp.all(ok),
        f"`labels` must lie in [0, {num_classes})"
        + ("" if ignore_index is None else f" or equal ignore_index={ignore_index}")
        + "; found {bad}",
        bad=first_bad,
    )
    return labels


_INSIDE_CHECKED = contextvars.ContextVar("entjax_checked", default=False)


def user_check(name: str, predicate: jax.Array, message: str, **fmt: Any) -> None:
    """``checkify.check`` for the ``validate_*`` function ``name``.

    A check traced outside :func:`checked` (e.g. under a plain ``jax.jit``) cannot raise: JAX
    would fail later, while lowering, with a message that names neither entjax nor the fix. So
    a traced check outside :func:`checked` raises here, at trace time, naming both. Eager calls
    on concrete values raise checkify's error directly when the check fails.
    """
    if isinstance(predicate, jax.core.Tracer) and not _INSIDE_CHECKED.get():
        raise ValueError(
            f"entjax.{name} was traced without entjax.checked (e.g. under a plain jax.jit or "
            "jax.vmap), so its check cannot raise; wrap the function that calls it: "
            "`entjax.checked(fn)` (it jits by default) instead of `jax.jit(fn)`."
        )
    checkify.check(predicate, message, **fmt)


def checked(fn: Callable[..., Any], *, jit: bool = True) -> Callable[..., Any]:
    """Wrap ``fn`` so that the ``validate_*`` checks inside it raise on failure.

    Args:
      fn: a function that calls :func:`validate_probs`, :func:`validate_labels` or
        :func:`entjax.validate_max_entropy`.
      jit: compile the checked function with ``jax.jit``.

    Returns:
      A function with ``fn``'s signature that raises ``JaxRuntimeError`` on a failed check.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> f = entjax.checked(lambda y: entjax.validate_labels(y, 3))
      >>> print(f(jnp.array([0, 2])))
      [0 2]

    References:
      Bradbury et al., JAX: ``jax.experimental.checkify`` documentation.
    """
    inner = checkify.checkify(fn, errors=checkify.user_checks)
    if jit:
        inner = jax.jit(inner)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _INSIDE_CHECKED.set(True)  # tracing happens inside this call
        try:
            err, out = inner(*args, **kwargs)
        finally:
            _INSIDE_CHECKED.reset(token)
        err.throw()
        return out

    return wrapper
