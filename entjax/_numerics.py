"""Private safe maths and backend dispatch shared by every entjax module.

One helper per trick, used everywhere (argument checks live apart, in ``_checks.py``):

* ``compute_dtype`` / ``upcast``: compute in at least float32 (bf16/fp16 inputs are promoted,
  Python scalars stay weakly typed);
* ``class_axes_last`` / ``class_mask_last``: move the (possibly several) class axes of logits
  and of an optax-style ``where`` to one trailing axis; ``to_base``: nats to bits;
* ``stable_shift``: the max-shift of a log-sum-exp, finite and gradient-free; ``row_max_shift``:
  the same over the last axis, select-free so that XLA:CPU fuses it with the sum that follows;
* ``fallback_unless``: a fast formula with a careful recomputation that runs only when a check
  on the fast result fails; ``by_row_blocks``: a row-wise function on bounded blocks;
* ``on_cpu``: an algorithm chosen by backend at lowering time, overridden for tests by
  ``ENTJAX_FORCE_DEFAULT_FORMS`` (:data:`FORCE_DEFAULT_FORMS`, ``default_forms_forced``);
* ``masked_log_softmax``: log-softmax that treats ``-inf`` logits and ``where=False`` entries as
  structural zeros, with finite values *and* gradients for fully masked rows;
* ``xlogx`` / ``xlogy``: ``0 * log 0 = 0`` with finite derivatives (custom JVPs).
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _checks as ck

# --------------------------------------------------------------------------------------------
# Precision and axes.


def compute_dtype(*xs: jax.typing.ArrayLike) -> jnp.dtype:
    """The dtype entjax computes in: the inputs' promoted float dtype, at least float32.

    Promotion follows ``jnp.result_type``, so Python scalars (and weakly typed arrays made from
    them) do not widen the result: a float32 array with a ``0.0`` default stays float32.
    """
    return jnp.promote_types(jnp.result_type(*xs), jnp.float32)


def upcast(x: jax.Array, dtype: jnp.dtype | None = None) -> jax.Array:
    """Cast ``x`` to ``dtype`` (default: at least float32)."""
    return x.astype(dtype if dtype is not None else compute_dtype(x))


def class_axes_last(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Move ``axes`` to the end (keeping their order) and flatten them into one class axis."""
    batch = tuple(i for i in range(x.ndim) if i not in axes)
    perm = batch + axes
    if perm != tuple(range(x.ndim)):
        x = jnp.transpose(x, perm)
    return x.reshape((*x.shape[: len(batch)], -1))


def class_mask_last(
    where: jax.typing.ArrayLike | None, shape: tuple[int, ...], axes: tuple[int, ...]
) -> jax.Array | None:
    """Broadcast an optax-style ``where`` (per-example or per-logit) and move classes last.

    A ``where`` with fewer dimensions than the logits is a per-example mask: it gets the class
    axes inserted (as optax does) before broadcasting.
    """
    if where is None:
        return None
    where = ck.check_bool_mask(where)
    if where.ndim != len(shape):
        if where.ndim != len(shape) - len(axes):
            raise ValueError(
                f"`where` of shape {where.shape} is neither per-example "
                f"(rank {len(shape) - len(axes)}) nor per-logit (rank {len(shape)}) "
                f"for logits of shape {shape}."
            )
        where = jnp.expand_dims(where, axes)
    ck.check_broadcastable(where, shape, "where", to="logits")
    return class_axes_last(jnp.broadcast_to(where, shape), axes)


def to_base(x: jax.Array, base: float | None) -> jax.Array:
    """Convert a quantity in nats to ``base`` (``None`` or ``e``: nats, ``2``: bits)."""
    if base is None:
        return x
    if not base > 0 or base == 1:
        raise ValueError(f"`base` must be positive and != 1, got {base}.")
    return x / jnp.asarray(math.log(base), x.dtype)


# --------------------------------------------------------------------------------------------
# Log-softmax with structural zeros.


class LogSoftmax(NamedTuple):
    """Result of :func:`masked_log_softmax` over the last axis.

    ``log_probs`` and ``probs`` are 0 on invalid entries (so products never see ``-inf``), and
    ``lse`` is 0 on rows without a valid entry.
    """

    log_probs: jax.Array
    probs: jax.Array
    valid: jax.Array  # entry is a candidate class: where=True and logit != -inf
    any_valid: jax.Array  # the row has at least one candidate (shape without the class axis)
    lse: jax.Array  # log-sum-exp of the valid logits (shape without the class axis)
    safe_logits: jax.Array  # logits with invalid entries replaced by 0 (gradient-blocked)


def stable_shift(m: jax.Array) -> jax.Array:
    """The shift of a stable log-sum-exp: the row maximum ``m``, or 0 where it is not finite.

    ``exp(x - shift)`` then never overflows, a row of ``-inf`` forms no ``-inf - (-inf)``, and
    the shift is gradient-free (``lse(x) = shift + log Σ exp(x - shift)`` does not depend on it).
    """
    return lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))


def row_max_shift(x: jax.Array) -> jax.Array:
    """The max-shift of a log-sum-exp over the last axis, in a form XLA:CPU fuses.

    The row maximum clamped to the finite floats: a row of ``-inf`` gets the most negative float
    (``exp(-inf - shift)`` is still 0, and no ``-inf - (-inf)`` is formed), a ``+inf`` the
    largest. Unlike :func:`stable_shift` it has no ``isfinite``/``where``: the clamps are the
    reduction's initial value and a ``minimum``. XLA:CPU fuses reductions with arithmetic,
    ``exp`` and ``log`` (its YNNPACK fusions) but not with selects, so a select between the
    maximum and the exponential sum costs separate kernels. Gradient-free.
    """
    fi = jnp.finfo(x.dtype)
    lo = np.array(fi.min, x.dtype)
    m = lax.reduce(lax.stop_gradient(x), lo, lax.max, (x.ndim - 1,))
    return lax.stop_gradient(jnp.minimum(m, np.array(fi.max, x.dtype)))


def fallback_unless(ok: jax.Array, value, fallback, *operands):
    """``value`` if the scalar ``ok`` holds, else ``fallback(*operands)``, run only when needed.

    The fast-path-with-a-safety-net pattern: compute the cheap formula, check a condition on its
    (small) results, and recompute the careful way only if it fails. Written as a
    ``lax.while_loop`` of at most one trip rather than a ``lax.cond``: the loop carry is updated
    in place (a ``cond`` copies an array it passes through), and under ``jax.vmap`` the loop
    runs once if any member needs the fallback (and updates only those members) instead of
    evaluating both branches. ``value`` and ``fallback(*operands)`` must have the same
    structure, shapes and dtypes. Not reverse-differentiable: use it on primal values inside
    custom-derivative rules.
    """

    def body(state):
        return fallback(*operands), jnp.array(True)

    out, _ = lax.while_loop(lambda state: jnp.logical_not(state[1]), body, (value, ok))
    return out


FAST_PATH_MIN_SIZE = 1 << 12
"""Arrays at least this large (elements) take the fast paths that need a run-time check (a
guessed shift, a select-free formula with a careful fallback). Below it the check and its loop
cost more (a few microseconds of kernel launches) than the pass or the selects they save."""


def use_fast_path(x: jax.Array) -> bool:
    """Whether ``x`` is large enough for a checked fast path (:data:`FAST_PATH_MIN_SIZE`)."""
    return x.size >= FAST_PATH_MIN_SIZE


def all_finite(v: jax.Array) -> jax.Array:
    """Whether every entry of the (small, per-row) ``v`` is finite, as one scalar.

    One sum instead of a comparison per entry (a sum of finite values that overflows only
    costs a needless fallback). The ``abs`` keeps XLA from merging this sum with the row sums
    that produced ``v``, which would make it store their ``[N, C]`` operand.
    """
    return jnp.isfinite(jnp.sum(jnp.abs(v)))


def _guess_is_safe(total: jax.Array) -> jax.Array:
    # With the guess one of the row's logits its term is exp(0) = 1, so every sum is >= 1 or
    # else inf/NaN (overflow, a non-finite guess, a NaN logit).
    return all_finite(total)


def softmax_sum(x: jax.Array, guess: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """``(shift, Σ_c exp(x_c - shift))`` over the last axis, the shift guessed when it is safe.

    ``guess`` (shape ``x.shape[:-1]``) must be one of each row's logits, e.g. the label's: its
    term is then ``exp(0) = 1``, so every sum is at least 1 (no underflow) and finite unless
    some logit exceeds the guess by ~88 in float32 (overflow), the guess is not finite, or a
    NaN is present. If every sum is finite the guess is the shift, and the pass over the logits
    that finds the row maximum is saved; otherwise every row is recomputed with
    :func:`row_max_shift` (:func:`fallback_unless`).
    The shift is gradient-free, and neither output is differentiable: use :func:`softmax_exp`
    inside derivative rules.
    """

    def exact(x):
        shift = row_max_shift(x)
        return shift, jnp.sum(jnp.exp(x - shift[..., None]), axis=-1)

    if guess is None:
        return exact(x)
    guess = lax.stop_gradient(guess)
    total = jnp.sum(jnp.exp(x - guess[..., None]), axis=-1)
    return fallback_unless(_guess_is_safe(total), (guess, total), exact, x)


@jax.custom_jvp
def softmax_exp(x: jax.Array, guess: jax.Array | None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(e, shift, total)``: ``e = exp(x - shift)``, ``total = Σ e``, as in :func:`softmax_sum`.

    Keeps ``e`` (an ``[..., C]`` array) for a backward pass that reuses it instead of computing
    ``exp`` again. Differentiable to any order with the shift held constant
    (``de = e · dx``, ``d total = Σ e · dx``): valid for the shift-invariant quantities built
    from it, such as ``e / total``. ``guess`` gets no gradient.
    """

    def exact(x):
        shift = row_max_shift(x)
        e = jnp.exp(x - shift[..., None])
        return e, shift, jnp.sum(e, axis=-1)

    if guess is None:
        return exact(x)
    guess = lax.stop_gradient(guess)
    e = jnp.exp(x - guess[..., None])
    total = jnp.sum(e, axis=-1)
    return fallback_unless(_guess_is_safe(total), (e, guess, total), exact, x)


@softmax_exp.defjvp
def _softmax_exp_jvp(primals, tangents):
    x, guess = primals
    dx, _ = tangents
    e, shift, total = softmax_exp(x, guess)  # the rule's own primal: differentiable again
    de = e * dx
    return (e, shift, total), (de, jnp.zeros_like(shift), jnp.sum(de, axis=-1))


def by_row_blocks(fn, *operands, block_size: int = 1 << 20):
    """``fn(*operands)`` for a row-wise ``fn``, evaluated on blocks of rows (``lax.map``).

    ``operands`` share their leading (row) axes; each is ``[..., C]`` or per-row ``[...]``,
    and ``fn`` must treat rows independently. Bounds the scratch memory of ``fn`` (the careful
    fallbacks store ``[N, C]`` intermediates) to about ``block_size`` elements per array. Small
    inputs are passed through whole.
    """
    lead = operands[0].shape[:-1]
    rows = math.prod(lead)
    per_block = max(1, block_size // max(operands[0].shape[-1], 1))
    if rows <= per_block:
        return fn(*operands)
    flat = tuple(op.reshape((rows, *op.shape[len(lead) :])) for op in operands)
    out = lax.map(lambda block: fn(*block), flat, batch_size=per_block)
    return jax.tree.map(lambda o: o.reshape(lead + o.shape[1:]), out)


#: Environment variable that makes :func:`on_cpu` trace the ``default=`` (GPU/TPU) forms on
#: every backend, so that the forms accelerators compile are tested on a CPU-only machine.
FORCE_DEFAULT_FORMS = "ENTJAX_FORCE_DEFAULT_FORMS"


def default_forms_forced() -> bool:
    """Whether :data:`FORCE_DEFAULT_FORMS` is set to a true value (read at trace time)."""
    return os.environ.get(FORCE_DEFAULT_FORMS, "").strip().lower() not in ("", "0", "false", "no")


def on_cpu(cpu, default, *operands):
    """``cpu(*operands)`` when compiled for CPU, ``default(*operands)`` on other backends.

    For algorithms whose best form depends on the backend (on CPU ``exp`` is expensive next to
    memory traffic; on accelerators the reverse), chosen at lowering time with
    ``lax.platform_dependent``: only the chosen branch is compiled.

    With ``ENTJAX_FORCE_DEFAULT_FORMS=1`` in the environment when a function is traced, the
    ``default`` form is used on every backend: how the test suite runs the GPU/TPU forms on CPU.
    The variable is read at trace time, so set it before the first call (a function already
    compiled in the process keeps the form it was traced with).
    """
    if default_forms_forced():
        return default(*operands)
    return lax.platform_dependent(*operands, cpu=cpu, default=default)


def masked_log_softmax(logits: jax.Array, where: jax.Array | None = None) -> LogSoftmax:
    """Log-softmax over the last axis, safe for ``-inf`` logits and fully masked rows.

    Uses the double-``where`` pattern: invalid logits are replaced by 0 *before* any arithmetic,
    so no ``inf - inf`` or ``0 * inf`` is ever formed and their gradient is exactly zero. A NaN
    logit is not treated as masked: it propagates.
    """
    valid = logits != -jnp.inf
    if where is not None:
        valid = valid & where
    safe_logits = jnp.where(valid, logits, 0.0)
    shift = jnp.max(safe_logits, axis=-1, keepdims=True, where=valid, initial=-jnp.inf)
    shift = stable_shift(shift)
    shifted = safe_logits - shift
    exp = jnp.where(valid, jnp.exp(shifted), 0.0)
    total = jnp.sum(exp, axis=-1, keepdims=True)
    any_valid = total > 0
    total = jnp.where(any_valid, total, 1.0)
    log_total = jnp.log(total)
    log_probs = jnp.where(valid, shifted - log_total, 0.0)
    probs = exp / total
    lse = (log_total + shift)[..., 0]
    return LogSoftmax(log_probs, probs, valid, any_valid[..., 0], lse, safe_logits)


# --------------------------------------------------------------------------------------------
# 0 * log 0 = 0 with finite derivatives.


def _safe_log(x: jax.Array) -> jax.Array:
    """log(x) clamped at the smallest normal number, for derivatives at exact zeros."""
    return jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny))


@jax.custom_jvp
def xlogx(x: jax.Array) -> jax.Array:
    """``x * log(x)`` with ``0 log 0 = 0``.

    The derivative ``log(x) + 1`` diverges at ``x = 0``; it is reported there as its value at the
    smallest normal number (about -86 in float32): finite, and pointing the right way.
    """
    safe = jnp.where(x > 0, x, 1.0)
    return jnp.where(x > 0, x * jnp.log(safe), jnp.where(x == 0, 0.0, jnp.nan))


@xlogx.defjvp
def _xlogx_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return xlogx(x), (_safe_log(x) + 1.0) * dx


@jax.custom_jvp
def xlogy(x: jax.Array, y: jax.Array) -> jax.Array:
    """``x * log(y)`` with ``0 log y = 0`` for every ``y >= 0`` (values and derivatives).

    ``d/dy = x / y`` is 0 where ``x = 0``; ``d/dx = log(y)`` is clamped at the smallest normal.
    """
    safe_y = jnp.where(x == 0, 1.0, y)
    return jnp.where(x == 0, 0.0, x * jnp.log(safe_y))


@xlogy.defjvp
def _xlogy_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    zero = x == 0
    safe_y = jnp.where(zero, 1.0, y)
    dfdy = jnp.where(zero, 0.0, x / safe_y)
    return xlogy(x, y), _safe_log(y) * dx + dfdy * dy


def safe_log(x: jax.Array) -> jax.Array:
    """``log(x)`` that returns 0 (value and gradient) where ``x == 0``; for use under a 0 weight."""
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), 0.0)


def safe_mul(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a * b`` that is exactly 0 (value and both gradients) where ``a == 0``, even if ``b`` is
    infinite: the double-``where`` pattern."""
    zero = a == 0
    return jnp.where(zero, 0.0, a * jnp.where(zero, 0.0, b))


def negate(x: jax.Array) -> jax.Array:
    """``-x`` that maps ``0`` to ``+0`` rather than ``-0`` (cleaner printed losses)."""
    return 0.0 - x
