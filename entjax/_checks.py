"""Private argument checks shared by every entjax module, raised at trace time.

Each names the offending argument and, where there is one, the fix:

* dtypes: ``check_floating``, ``check_integer``, ``check_bool_mask``;
* shapes: ``check_min_rank``, ``check_shape``, ``check_broadcastable``, and a per-element
  ``where`` mask (``example_mask``);
* static options: ``static_int`` (a Python int), ``normalize_axes`` (an ``axis`` argument).

Checks on *values*, which need data, are opt-in and public: see ``_validation.py``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Axis = int | Sequence[int] | None


def check_floating(x: jax.typing.ArrayLike, name: str) -> jax.Array:
    """Return ``x`` as an array, raising ``TypeError`` naming ``name`` unless it is floating."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"`{name}` must have a floating dtype (got {x.dtype}); "
            f"cast it with `{name}.astype(jnp.float32)`."
        )
    return x


def check_integer(x: jax.typing.ArrayLike, name: str) -> jax.Array:
    """Return ``x`` as an array, raising ``TypeError`` naming ``name`` unless it is integer."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(
            f"`{name}` must hold integer class indices (got dtype {x.dtype}); for probability "
            "targets use the soft-label function instead."
        )
    return x


def check_bool_mask(where: jax.typing.ArrayLike, name: str = "where") -> jax.Array:
    """Return ``where`` as an array, raising ``TypeError`` naming ``name`` unless it is boolean."""
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"`{name}` must be a boolean mask, got dtype {where.dtype}.")
    return where


def static_int(value: int, name: str, *, minimum: int | None = None) -> int:
    """``value`` as a Python int (a static, trace-time option), at least ``minimum``.

    Accepts anything ``operator.index`` accepts (Python and NumPy integers); raises ``TypeError``
    naming ``name`` for floats and traced values, ``ValueError`` below ``minimum``.
    """
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a Python int (a static option), got {type(value).__name__}; "
            f"mark it static under jit, e.g. `jax.jit(f, static_argnames='{name}')`."
        ) from None
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return value


def check_min_rank(x: jax.Array, rank: int, name: str) -> None:
    if x.ndim < rank:
        raise ValueError(f"`{name}` must have rank >= {rank}, got shape {x.shape}.")


def check_shape(x: jax.Array, shape: tuple[int, ...], name: str, *, expected: str) -> None:
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"`{name}` has shape {x.shape}, expected {tuple(shape)} ({expected}).")


def check_broadcastable(x: jax.Array, shape: tuple[int, ...], name: str, *, to: str) -> None:
    try:
        jnp.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(
            f"`{name}` with shape {x.shape} does not broadcast against {to} of shape {shape}."
        ) from None


def normalize_axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (an int, ints, or ``None`` for all) as non-negative axes of a rank-``ndim`` input.

    Keeps the order given; raises ``ValueError`` for no axes, an axis out of range, or a repeat.
    """
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not axes:
        raise ValueError("`axis` must name at least one axis.")
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"`axis` {a} is out of range for an input of rank {ndim}.")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"`axis` {axis} repeats an axis.")
    return tuple(out)


def example_mask(where: jax.typing.ArrayLike | None, shape: tuple[int, ...]) -> jax.Array | None:
    """Validate a per-element boolean ``where`` of an element-wise function; broadcast it."""
    if where is None:
        return None
    where = check_bool_mask(where)
    check_broadcastable(where, shape, "where", to="the input")
    return jnp.broadcast_to(where, shape)
