"""Divergences between distributions: categorical KL and Jensen–Shannon."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _numerics as nx


def _two_log_softmaxes(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    axis: nx.Axis,
    where: jax.typing.ArrayLike | None,
) -> tuple[nx.LogSoftmax, nx.LogSoftmax]:
    p_logits = nx.check_floating(p_logits, "p_logits")
    q_logits = nx.check_floating(q_logits, "q_logits")
    nx.check_min_rank(p_logits, 1, "p_logits")
    if p_logits.shape != q_logits.shape:
        raise ValueError(
            f"`p_logits` and `q_logits` must have the same shape, got {p_logits.shape} and "
            f"{q_logits.shape}."
        )
    axes = nx.normalize_axes(axis, p_logits.ndim)
    mask = nx.class_mask_last(where, p_logits.shape, axes)
    dtype = nx.compute_dtype(p_logits, q_logits)
    p = nx.masked_log_softmax(nx.class_axes_last(nx.upcast(p_logits, dtype), axes), mask)
    q = nx.masked_log_softmax(nx.class_axes_last(nx.upcast(q_logits, dtype), axes), mask)
    return p, q


def kl_divergence(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    *,
    axis: nx.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Kullback–Leibler divergence :math:`\mathrm{KL}(p \,\|\, q)` between two categoricals.

    .. math::
        \mathrm{KL}(p \,\|\, q) = \sum_c p_c \,(\log p_c - \log q_c)
          = H(p, q) - H(p) \;\ge 0,

    with :math:`p = \mathrm{softmax}(\text{p\_logits})` and
    :math:`q = \mathrm{softmax}(\text{q\_logits})`.

    .. warning::
        **The argument order is the mathematical one: the first argument is p, the distribution
        the expectation is taken under.** ``optax.kl_divergence(log_predictions, targets)``
        computes ``KL(targets ‖ predictions)``, i.e. the *reverse* order:
        ``optax.kl_divergence(log_q, p) == entjax.kl_divergence(log_p, log_q)``.

    Classes where :math:`p_c = 0` (``-inf`` logit) contribute 0 with zero gradient; a class with
    :math:`p_c > 0` and :math:`q_c = 0` makes the divergence ``+inf``. ``where`` masks classes in
    both distributions (both are renormalised over the kept classes).

    Args:
      p_logits: logits of :math:`p`, shape ``[..., num_classes]``.
      q_logits: logits of :math:`q`, same shape.
      axis: class axis or axes.
      where: boolean mask of classes (per logit) or of examples (per example).
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      :math:`\mathrm{KL}(p\,\|\,q)` per example, shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> p, q = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1]))
      >>> print(f"{entjax.kl_divergence(p, q):.4f} {entjax.kl_divergence(q, p):.4f}")
      0.5108 0.3681

    References:
      Kullback & Leibler, *On Information and Sufficiency*, 1951. Cover & Thomas, *Elements of
      Information Theory*, 2nd ed., 2006, §2.3.
    """
    p, q = _two_log_softmaxes(p_logits, q_logits, axis, where)
    support_mismatch = p.valid & ~q.valid
    terms = jnp.where(support_mismatch, jnp.inf, p.probs * (p.log_probs - q.log_probs))
    # Rounding can leave a tiny negative total when p == q; KL is non-negative by Gibbs.
    return nx.to_base(jnp.maximum(jnp.sum(terms, axis=-1), 0.0), base)


def js_divergence(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    *,
    axis: nx.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Jensen–Shannon divergence between two categoricals given by logits.

    .. math::
        \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m),
        \qquad m = \tfrac12 (p + q).

    Symmetric, bounded by :math:`\log 2` (1 bit), and finite (with finite gradients) even when
    the supports of :math:`p` and :math:`q` differ. Note that
    ``scipy.spatial.distance.jensenshannon`` returns the *square root* of this quantity.

    Args:
      p_logits: logits of :math:`p`, shape ``[..., num_classes]``.
      q_logits: logits of :math:`q`, same shape.
      axis: class axis or axes.
      where: boolean mask of classes (per logit) or of examples (per example).
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The divergence per example, shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> p = jnp.array([0.0, -jnp.inf])
      >>> q = jnp.array([-jnp.inf, 0.0])
      >>> print(entjax.js_divergence(p, q, base=2))  # disjoint supports: exactly 1 bit
      1.0

    References:
      Lin, *Divergence Measures Based on the Shannon Entropy*, IEEE Trans. Inf. Theory, 1991.
    """
    p, q = _two_log_softmaxes(p_logits, q_logits, axis, where)
    log_m = nx.safe_log(0.5 * (p.probs + q.probs))
    terms = nx.safe_mul(p.probs, p.log_probs - log_m) + nx.safe_mul(q.probs, q.log_probs - log_m)
    return nx.to_base(jnp.maximum(0.5 * jnp.sum(terms, axis=-1), 0.0), base)
