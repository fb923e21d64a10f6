"""The deep variational information bottleneck loss and its two mutual-information bounds."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _checks as ck, _numerics as nx
from ._cross_entropy import softmax_cross_entropy_with_integer_labels
from ._divergences import gaussian_kl
from ._entropy import entropy_from_probs


class VIBLoss(NamedTuple):
    """Result of :func:`entjax.vib_loss`, each field per example.

    ``loss``, ``ce`` and ``kl`` are in nats (they are what is optimised); ``izx_upper`` and
    ``izy_lower`` are in the requested ``base``.
    """

    loss: jax.Array
    """``ce + beta * kl``."""
    ce: jax.Array
    """Cross-entropy of the labels under the decoder, :math:`-\\log q(y \\mid z)`."""
    kl: jax.Array
    """:math:`\\mathrm{KL}(p(z \\mid x) \\,\\|\\, r(z))`."""
    izx_upper: jax.Array
    """Variational upper bound on :math:`I(X; Z)`: the KL term, in ``base``."""
    izy_lower: jax.Array
    """Variational lower bound on :math:`I(Z; Y)`: :math:`H(Y) - \\mathrm{CE}`, in ``base``."""


def vib_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    mean: jax.typing.ArrayLike,
    log_var: jax.typing.ArrayLike,
    *,
    beta: jax.typing.ArrayLike = 1e-3,
    prior_mean: jax.typing.ArrayLike = 0.0,
    prior_log_var: jax.typing.ArrayLike = 0.0,
    label_marginal: jax.typing.ArrayLike | None = None,
    num_classes: int | None = None,
    sample_axis: int | None = None,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> VIBLoss:
    r"""Deep variational information bottleneck (VIB) loss, with its two information bounds.

    For an encoder :math:`p(z \mid x) = \mathcal N(\mu(x), e^{v(x)})`, a decoder
    :math:`q(y \mid z) = \mathrm{softmax}(\text{logits}(z))` evaluated at reparameterised samples
    :math:`z \sim p(z \mid x)`, and a marginal :math:`r(z)` (default :math:`\mathcal N(0, I)`),

    .. math::
        \mathcal J = \underbrace{\mathbb E_{z}[-\log q(y \mid z)]}_{\mathrm{CE}}
          + \beta \, \underbrace{\mathrm{KL}(p(z \mid x) \,\|\, r(z))}_{\ge I(X;Z)\ \text{on
          average}},
        \qquad I(Z; Y) \ge H(Y) - \mathrm{CE}.

    With ``beta = 0`` the loss is the cross-entropy. :math:`H(Y)` comes from ``label_marginal``
    (the class frequencies) or, failing that, from a uniform marginal over ``num_classes``
    (default: the size of the logits' last axis), :math:`H(Y) = \log C`. Both bounds hold for
    the *averages* over the data; the per-example values returned here are their summands.

    Args:
      logits: decoder logits, shape ``[...batch, num_classes]``; with ``sample_axis`` set, one
        more axis at that position indexes latent samples and CE is averaged over it.
      labels: integer labels, shape ``[...batch]``.
      mean: encoder means, shape ``[...batch, latent_dim]``.
      log_var: encoder log-variances, broadcastable against ``mean``.
      beta: the trade-off :math:`\beta \ge 0` (may be a traced scalar, e.g. a schedule's value).
      prior_mean: mean of :math:`r(z)` (default 0).
      prior_log_var: log-variance of :math:`r(z)` (default 0).
      label_marginal: class probabilities :math:`p(y)`, shape ``[num_classes]``, for :math:`H(Y)`.
      num_classes: number of classes for a uniform :math:`H(Y) = \log C` (when no marginal).
      sample_axis: axis of ``logits`` indexing latent samples, or ``None``.
      where: boolean per-example mask; masked examples give 0 in every field.
      base: unit of ``izx_upper`` and ``izy_lower``: ``None`` for nats, ``2`` for bits.

    Returns:
      A :class:`VIBLoss` ``(loss, ce, kl, izx_upper, izy_lower)``, each of shape ``[...batch]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> logits = jnp.array([[2.0, 0.0], [0.0, 2.0]])
      >>> labels, mean, log_var = jnp.array([0, 1]), jnp.ones((2, 3)), jnp.zeros((2, 3))
      >>> out = entjax.vib_loss(logits, labels, mean, log_var, beta=0.1, base=2)
      >>> print(f"{out.ce[0]:.4f} {out.kl[0]:.4f} {out.loss[0]:.4f}")
      0.1269 1.5000 0.2769
      >>> print(f"{out.izx_upper[0]:.4f} {out.izy_lower[0]:.4f}")  # bits
      2.1640 0.8169

    References:
      Alemi, Fischer, Dillon & Murphy, *Deep Variational Information Bottleneck*, ICLR 2017.
      Tishby, Pereira & Bialek, *The Information Bottleneck Method*, 1999.
    """
    logits = ck.check_floating(logits, "logits")
    labels = ck.check_integer(labels, "labels")
    ck.check_min_rank(logits, 1, "logits")
    if sample_axis is not None:
        sample_axis = ck.normalize_axes(sample_axis, logits.ndim - 1)[0]
        labels = jnp.broadcast_to(jnp.expand_dims(labels, sample_axis), logits.shape[:-1])
    ce = softmax_cross_entropy_with_integer_labels(logits, labels)
    if sample_axis is not None:
        ce = jnp.mean(ce, axis=sample_axis)
    kl = gaussian_kl(mean, log_var, prior_mean=prior_mean, prior_log_var=prior_log_var, axis=-1)
    if kl.shape != ce.shape:
        raise ValueError(
            f"vib_loss: `mean`/`log_var` give batch shape {kl.shape} but `logits`/`labels` give "
            f"{ce.shape}."
        )
    dtype = nx.compute_dtype(ce, kl, beta)
    ce, kl = ce.astype(dtype), kl.astype(dtype)
    beta = jnp.asarray(beta, dtype)
    if beta.ndim > ce.ndim:
        raise ValueError(f"`beta` must be a scalar or per-example, got shape {beta.shape}.")

    if label_marginal is not None:
        marginal = ck.check_floating(label_marginal, "label_marginal")
        ck.check_shape(marginal, (logits.shape[-1],), "label_marginal", expected="[num_classes]")
        h_y = entropy_from_probs(marginal).astype(dtype)
    else:
        c = logits.shape[-1] if num_classes is None else num_classes
        c = ck.static_int(c, "num_classes", minimum=1)
        h_y = jnp.asarray(math.log(c), dtype)

    loss = ce + nx.safe_mul(beta, kl)
    izy = h_y - ce
    out = VIBLoss(loss, ce, kl, nx.to_base(kl, base), nx.to_base(izy, base))
    mask = ck.example_mask(where, ce.shape)
    if mask is not None:
        out = VIBLoss(*(jnp.where(mask, x, 0.0) for x in out))
    return out
