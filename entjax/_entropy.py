"""Shannon entropy of categorical and Bernoulli distributions, and discrete joint quantities."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import _checks as ck, _numerics as nx


def entropy(
    logits: jax.typing.ArrayLike,
    *,
    axis: ck.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Shannon entropy of the categorical distribution ``softmax(logits)``.

    .. math::
        H(p) = -\sum_c p_c \log p_c, \qquad p = \mathrm{softmax}(x).

    Classes with logit ``-inf`` or ``where=False`` have probability zero and contribute
    ``0 \log 0 = 0``; their gradient is exactly zero. A row with no valid class has entropy 0.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]`` (floating).
      axis: class axis or axes (several axes are flattened into one class axis).
      where: boolean mask of the classes to include, per logit or per example (optax-style).
      base: logarithm base of the result: ``None`` for nats, ``2`` for bits.

    Returns:
      The entropy per example, shape ``logits.shape`` without ``axis``, in at least float32.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> print(f"{entjax.entropy(jnp.array([2.0, 1.0, 0.1])):.4f}")
      0.8467
      >>> print(entjax.entropy(jnp.zeros(2), base=2))
      1.0

    References:
      Shannon, *A Mathematical Theory of Communication*, 1948. Cover & Thomas, *Elements of
      Information Theory*, 2nd ed., 2006, §2.1.
    """
    logits = ck.check_floating(logits, "logits")
    ck.check_min_rank(logits, 1, "logits")
    axes = ck.normalize_axes(axis, logits.ndim)
    mask = nx.class_mask_last(where, logits.shape, axes)
    logits = nx.class_axes_last(nx.upcast(logits), axes)
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)  # masked classes become structural zeros
    cpu = _softmax_entropy_cpu if nx.use_fast_path(logits) else _softmax_entropy
    return nx.to_base(nx.on_cpu(cpu, _softmax_entropy, logits), base)


def _softmax_entropy_parts(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Entropy of ``softmax(x)`` over the last axis, and the log-probabilities it used.

    Three reductions (max, log-sum-exp, then ``-sum(p log p)``), each a single fusable pass. The
    log-probabilities are clamped at the most negative finite float instead of masked with
    ``where``: a ``-inf`` logit then gives ``p = exp(min) = 0`` and ``p log p = 0 * min = 0``
    exactly, with no ``0 * inf``. A row of ``-inf`` gives 0; NaN propagates.
    """
    m = jnp.max(x, axis=-1, keepdims=True)
    shift = nx.stable_shift(m)
    z = x - shift
    total = jnp.sum(jnp.exp(z), axis=-1, keepdims=True)
    log_p = jnp.maximum(z - jnp.log(jnp.where(total != 0, total, 1.0)), jnp.finfo(x.dtype).min)
    return nx.negate(jnp.sum(jnp.exp(log_p) * log_p, axis=-1)), log_p


@jax.custom_jvp
def _softmax_entropy(x: jax.Array) -> jax.Array:
    """Entropy of ``softmax(x)`` with the closed-form tangent ``-sum(p (log p + H) dx)``.

    The tangent is linear in ``dx`` (so both forward and reverse mode work) and 0 on ``-inf``
    entries, so no ``0 * log 0`` or ``inf - inf`` reaches a derivative; the backward pass is one
    fused elementwise pass over the logits.
    """
    return _softmax_entropy_parts(x)[0]


@_softmax_entropy.defjvp
def _softmax_entropy_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    h, log_p = _softmax_entropy_parts(x)
    # dH/dx_c = -p_c (log p_c + H): exactly 0 where p_c = 0, since log_p is finite there.
    coef = -jnp.exp(log_p) * (log_p + h[..., None])
    return h, jnp.sum(coef * dx, axis=-1)


def entropy_from_probs(
    probs: jax.typing.ArrayLike,
    *,
    axis: ck.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Shannon entropy of a categorical distribution given by its probabilities.

    .. math::
        H(p) = -\sum_c p_c \log p_c, \qquad 0 \log 0 = 0.

    ``probs`` is used as given (no renormalisation): pass a distribution. Exact zeros give a
    finite gradient (the derivative :math:`-(\log p + 1)` is evaluated at the smallest normal
    number there). Use :func:`entjax.validate_probs` under :func:`entjax.checked` to assert that
    rows sum to one.

    Args:
      probs: probabilities, shape ``[..., num_classes]`` (floating, non-negative).
      axis: class axis or axes.
      where: boolean mask of entries to include, per entry or per example.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The entropy per example, shape ``probs.shape`` without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> print(entjax.entropy_from_probs(jnp.array([0.5, 0.5, 0.0]), base=2))
      1.0

    References:
      Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, §2.1.
    """
    probs = ck.check_floating(probs, "probs")
    ck.check_min_rank(probs, 1, "probs")
    axes = ck.normalize_axes(axis, probs.ndim)
    mask = nx.class_mask_last(where, probs.shape, axes)
    probs = nx.class_axes_last(nx.upcast(probs), axes)
    if mask is not None:
        probs = jnp.where(mask, probs, 0.0)
    return nx.to_base(nx.negate(jnp.sum(nx.xlogx(probs), axis=-1)), base)


def binary_entropy(
    logits: jax.typing.ArrayLike,
    *,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Entropy of the Bernoulli distribution with success probability ``sigmoid(logits)``.

    Element-wise; computed as :math:`\mathrm{softplus}(-|x|) + |x|\,\sigma(-|x|)`, which equals

    .. math::
        H(\sigma(x)) = -\sigma(x)\log\sigma(x) - (1 - \sigma(x))\log(1 - \sigma(x))

    and is exact for ``|x| = 1e4`` and 0 (with zero gradient) for ``x = ±inf``.

    Args:
      logits: log-odds, any shape (floating).
      where: boolean mask; masked elements give 0.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The entropy per element, same shape as ``logits``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> print(entjax.binary_entropy(jnp.array([0.0, jnp.inf]), base=2))
      [1. 0.]

    References:
      Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, eq. (2.5).
    """
    logits = ck.check_floating(logits, "logits")
    mask = ck.example_mask(where, logits.shape)
    x = jnp.abs(nx.upcast(logits))
    finite = jnp.isfinite(x)
    keep = finite if mask is None else finite & mask
    x = jnp.where(keep, x, 0.0)
    h = jax.nn.softplus(-x) + x * jax.nn.sigmoid(-x)
    h = jnp.where(keep, h, jnp.where(jnp.isnan(logits), jnp.nan, 0.0))
    if mask is not None:
        h = jnp.where(mask, h, 0.0)
    return nx.to_base(h, base)


def _check_joint(joint_probs: jax.typing.ArrayLike) -> jax.Array:
    joint = ck.check_floating(joint_probs, "joint_probs")
    if joint.ndim < 2:
        raise ValueError(
            f"`joint_probs` must be a table p(x, y) with x on axis -2 and y on axis -1 "
            f"(rank >= 2), got shape {joint.shape}."
        )
    return nx.upcast(joint)


def mutual_information(
    joint_probs: jax.typing.ArrayLike, *, base: float | None = None
) -> jax.Array:
    r"""Mutual information :math:`I(X;Y)` of a discrete joint distribution table.

    .. math::
        I(X;Y) = \sum_{x,y} p(x,y) \log \frac{p(x,y)}{p(x)\,p(y)} \;\ge 0.

    Computed directly from this sum (not as :math:`H(X)+H(Y)-H(X,Y)`, whose cancellation can give
    small negative values); zero cells contribute 0 with zero gradient.

    Args:
      joint_probs: ``p(x, y)``, shape ``[..., num_x, num_y]`` with x on axis -2 (axis 0 of a 2-D
        table); leading axes are batch axes. Entries should sum to one over the last two axes.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      :math:`I(X;Y)` per table, shape ``joint_probs.shape[:-2]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> print(entjax.mutual_information(jnp.array([[0.5, 0.0], [0.0, 0.5]]), base=2))
      1.0
      >>> print(entjax.mutual_information(jnp.full((2, 3), 1 / 6)))
      0.0

    References:
      Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, §2.4.
    """
    joint = _check_joint(joint_probs)
    px = jnp.sum(joint, axis=-1, keepdims=True)
    py = jnp.sum(joint, axis=-2, keepdims=True)
    outer = px * py
    ratio = joint / jnp.where(outer > 0, outer, 1.0)
    # Each term can round below zero for independent tables; I(X;Y) >= 0 exactly.
    return nx.to_base(jnp.maximum(jnp.sum(nx.xlogy(joint, ratio), axis=(-2, -1)), 0.0), base)


def conditional_entropy(
    joint_probs: jax.typing.ArrayLike, *, base: float | None = None
) -> jax.Array:
    r"""Conditional entropy :math:`H(Y \mid X)` of a discrete joint distribution table.

    .. math::
        H(Y \mid X) = -\sum_{x,y} p(x,y) \log \frac{p(x,y)}{p(x)} = H(X,Y) - H(X).

    Args:
      joint_probs: ``p(x, y)``, shape ``[..., num_x, num_y]`` with x on axis -2.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      :math:`H(Y \mid X)` per table, shape ``joint_probs.shape[:-2]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> # Y is a copy of X: nothing is left to know about Y once X is known.
      >>> print(entjax.conditional_entropy(jnp.array([[0.5, 0.0], [0.0, 0.5]])))
      0.0
      >>> print(entjax.conditional_entropy(jnp.full((2, 2), 0.25), base=2))
      1.0

    References:
      Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, §2.2.
    """
    joint = _check_joint(joint_probs)
    px = jnp.sum(joint, axis=-1, keepdims=True)
    ratio = joint / jnp.where(px > 0, px, 1.0)
    return nx.to_base(nx.negate(jnp.sum(nx.xlogy(joint, ratio), axis=(-2, -1))), base)


def _softmax_entropy_chained(x: jax.Array) -> jax.Array:
    """Entropy as ``log_softmax`` then ``-Σ p log p``, select-free: exact wherever every term is
    finite, NaN otherwise (a ``-inf`` logit gives ``0 * -inf``). XLA:CPU fuses each sum with
    its arithmetic, so no ``[N, C]`` array is written."""
    z = x - nx.row_max_shift(x)[..., None]
    log_p = z - jnp.log(jnp.sum(jnp.exp(z), axis=-1, keepdims=True))
    return nx.negate(jnp.sum(jnp.exp(log_p) * log_p, axis=-1))


@jax.custom_jvp
def _softmax_entropy_cpu(x: jax.Array) -> jax.Array:
    """:func:`_softmax_entropy` in the form that is fastest on CPU (same values and tangent).

    The forward pass is :func:`_softmax_entropy_chained`, recomputed by the clamped form
    (row blocks, :func:`entjax._numerics.fallback_unless`) only when some row is not finite
    (``-inf`` logits, NaN). The tangent rule is :func:`_softmax_entropy`'s.
    """
    h = _softmax_entropy_chained(x)
    careful = functools.partial(nx.by_row_blocks, lambda x: _softmax_entropy_parts(x)[0])
    return nx.fallback_unless(nx.all_finite(h), h, careful, x)


_softmax_entropy_cpu.defjvp(_softmax_entropy_jvp)
