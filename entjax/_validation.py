"""Opt-in value checks that need data (labels in range, rows summing to one).

Shape and dtype errors are raised at trace time by every function. Checks on *values* cannot be
raised from compiled code without cost, so they are opt-in: call a ``validate_*`` function inside
your loss and run it through :func:`checked`, which functionalises the checks with
``jax.experimental.checkify`` and raises a readable error, also under ``jax.jit``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import checkify

from . import _numerics as nx


def validate_probs(probs: jax.typing.ArrayLike, *, axis: int = -1, atol: float = 1e-5) -> jax.Array:
    r"""Check that ``probs`` holds distributions: entries in :math:`[0, 1]`, rows summing to one.

    .. math::
        p_c \ge 0, \qquad \Bigl|\sum_c p_c - 1\Bigr| \le \text{atol}.

    Must run under :func:`checked` (or ``checkify.checkify``). Returns ``probs`` unchanged so it
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
    probs = nx.check_floating(probs, "probs")
    p = nx.upcast(probs)
    checkify.check(jnp.all(p >= 0), "`probs` has negative entries")
    err = jnp.max(jnp.abs(jnp.sum(p, axis=axis) - 1.0), initial=0.0)
    checkify.check(err <= atol, "`probs` rows must sum to 1 (largest deviation {err})", err=err)
    return probs


def validate_labels(
    labels: jax.typing.ArrayLike, num_classes: int, *, ignore_index: int | None = None
) -> jax.Array:
    r"""Check that integer ``labels`` lie in :math:`[0, C)` or equal ``ignore_index``.

    Must run under :func:`checked` (or ``checkify.checkify``). Returns ``labels`` unchanged.

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
    labels = nx.check_integer(labels, "labels")
    ok = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        ok = ok | (labels == ignore_index)
    bad = jnp.where(ok, 0, labels).ravel()
    first_bad = bad[jnp.argmax(~ok.ravel())] if labels.size else jnp.zeros((), labels.dtype)
    checkify.check(
        jnp.all(ok),
        f"`labels` must lie in [0, {num_classes})"
        + ("" if ignore_index is None else f" or equal ignore_index={ignore_index}")
        + "; found {bad}",
        bad=first_bad,
    )
    return labels


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
        err, out = inner(*args, **kwargs)
        err.throw()
        return out

    return wrapper
