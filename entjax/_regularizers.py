"""Entropy regularisers: the confidence penalty."""

from __future__ import annotations

import jax

from . import _checks as ck, _numerics as nx
from ._entropy import entropy


def confidence_penalty(
    logits: jax.typing.ArrayLike,
    *,
    axis: ck.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Confidence penalty: the negative entropy of the predictive distribution.

    .. math::
        \Omega(x) = -H(\mathrm{softmax}(x)) = \sum_c p_c \log p_c,

    so that the regularised loss of Pereyra et al. (2017),
    :math:`\mathrm{CE} - \lambda H`, is ``ce + lam * confidence_penalty(logits)``: a positive
    weight penalises over-confident (low-entropy) predictions. The penalty lies in
    :math:`[-\log C, 0]`. Masked classes (``-inf`` logits or ``where=False``) and fully masked rows
    are safe for values and gradients, as in :func:`entjax.entropy`.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      axis: class axis or axes.
      where: boolean mask of classes (per logit) or of examples (per example).
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      :math:`-H` per example, shape ``logits.shape`` without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> print(entjax.confidence_penalty(jnp.zeros(4), base=2))  # uniform over 4: -2 bits
      -2.0
      >>> logits, labels = jnp.array([[3.0, 0.0, -1.0]]), jnp.array([0])
      >>> loss = (entjax.softmax_cross_entropy_with_integer_labels(logits, labels)
      ...         + 0.1 * entjax.confidence_penalty(logits))
      >>> print(f"{loss[0]:.4f}")
      0.0385

    References:
      Pereyra, Tucker, Chorowski, Kaiser & Hinton, *Regularizing Neural Networks by Penalizing
      Confident Output Distributions*, ICLR workshop 2017.
    """
    return nx.negate(entropy(logits, axis=axis, where=where, base=base))
