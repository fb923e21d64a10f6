"""Uncertainty decomposition and disagreement over a leading ensemble (member) axis.

Every function takes the members' logits stacked along ``axis`` (default 0) with the classes on
``class_axis`` (default -1) and returns one value per example: the member and class axes are
reduced, every other axis is kept.

``where`` masks classes as in :func:`entjax.entropy` and is accepted at three ranks:

* the rank of ``member_logits``: a per-member, per-logit mask;
* one less: the shape without the member axis, shared by every member (e.g. ``[batch, classes]``);
* two less: a per-example mask (no member and no class axis), e.g. ``[batch]``.

A member with no valid class in a row (all its logits ``-inf`` or masked) is left out of that
row's averages; a row with no valid member gives 0 (value and gradient).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import _checks as ck, _numerics as nx


class EnsembleUncertainty(NamedTuple):
    """Decomposition of an ensemble's predictive entropy, one value per example.

    ``total = aleatoric + epistemic`` up to rounding.
    """

    total: jax.Array  #: entropy of the mean predictive distribution
    aleatoric: jax.Array  #: expected (mean) member entropy
    epistemic: jax.Array  #: mutual information between prediction and member (BALD)


class _Members(NamedTuple):
    ls: nx.LogSoftmax  # per member, shape [num_members, *batch, num_classes]
    member_ok: jax.Array  # member has a valid class in the row, shape [num_members, *batch]
    count: jax.Array  # number of such members, float, shape [*batch]
    class_pos: int  # position of the class axis in the output of ensemble_log_probs


def _single_axis(axis: int, ndim: int, name: str) -> int:
    if not isinstance(axis, int):
        raise TypeError(f"`{name}` must be a single int axis, got {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(f"`{name}` {axis} is out of range for `member_logits` of rank {ndim}.")
    return axis % ndim


def _members(
    member_logits: jax.typing.ArrayLike,
    axis: int,
    class_axis: int,
    where: jax.typing.ArrayLike | None,
) -> _Members:
    x = ck.check_floating(member_logits, "member_logits")
    if x.ndim < 2:
        raise ValueError(
            "`member_logits` must have a member axis and a class axis (rank >= 2), got shape "
            f"{x.shape}."
        )
    m = _single_axis(axis, x.ndim, "axis")
    c = _single_axis(class_axis, x.ndim, "class_axis")
    if m == c:
        raise ValueError(f"`axis` ({axis}) and `class_axis` ({class_axis}) name the same axis.")
    mask = None
    if where is not None:
        mask = ck.check_bool_mask(where)
        if mask.ndim == x.ndim - 1:
            mask = jnp.expand_dims(mask, m)
        elif mask.ndim == x.ndim - 2:
            mask = jnp.expand_dims(mask, (m, c))
        elif mask.ndim != x.ndim:
            raise ValueError(
                f"`where` of shape {mask.shape} is neither per-logit (rank {x.ndim}), shared by "
                f"the members (rank {x.ndim - 1}) nor per-example (rank {x.ndim - 2}) for "
                f"`member_logits` of shape {x.shape}."
            )
        ck.check_broadcastable(mask, x.shape, "where", to="member_logits")
        mask = jnp.moveaxis(jnp.broadcast_to(mask, x.shape), (m, c), (0, -1))
    x = jnp.moveaxis(nx.upcast(x), (m, c), (0, -1))
    ls = nx.masked_log_softmax(x, mask)
    count = jnp.sum(ls.any_valid, axis=0).astype(x.dtype)
    class_pos = c if c < m else c - 1
    return _Members(ls, ls.any_valid, count, class_pos)


def _mixture_log_probs(mb: _Members) -> tuple[jax.Array, jax.Array]:
    """Log of the mean member distribution over the valid members, shape ``[*batch, C]``.

    Returns ``(log_mean, class_any)``: ``log_mean`` is 0 (a structural placeholder) where no
    member gives the class positive probability (``class_any`` False).

    Computed as ``shift + (log(sum_m exp(lp_m - shift)) - log(n))`` with ``shift`` the largest
    member log-probability, so identical members give exactly ``log_mean == lp`` (the sum of
    ``n`` ones is exactly ``n``).
    """
    ls = mb.ls
    lp = jnp.where(ls.valid, ls.log_probs, -jnp.inf)
    shift = jnp.max(lp, axis=0)
    class_any = jnp.any(ls.valid, axis=0)
    shift = lax.stop_gradient(jnp.where(class_any, shift, 0.0))
    inner = jnp.where(ls.valid, ls.log_probs - shift[None], 0.0)
    total = jnp.sum(jnp.where(ls.valid, jnp.exp(inner), 0.0), axis=0)
    log_n = jnp.log(jnp.maximum(mb.count, 1.0))[..., None]
    log_mean = shift + (jnp.log(jnp.where(class_any, total, 1.0)) - log_n)
    return jnp.where(class_any, log_mean, 0.0), class_any


def ensemble_log_probs(
    member_logits: jax.typing.ArrayLike,
    *,
    axis: int = 0,
    class_axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Log-probabilities of an ensemble's mean predictive distribution.

    .. math::
        \log \bar p_c = \log \frac1M \sum_{m=1}^M p_{mc}
          = \operatorname{logsumexp}_m \bigl(\log p_{mc}\bigr) - \log M,
        \qquad p_m = \mathrm{softmax}(x_m).

    Computed in log space from each member's log-softmax, so it stays exact where the
    probabilities underflow (logits of ±1e4). Classes that no member can predict (``-inf`` or
    masked in every member) get ``-inf``; a row without any valid class is all ``-inf``, which
    :func:`entjax.entropy` and the other entjax functions treat as a masked row.

    Args:
      member_logits: the members' logits, shape ``[..., num_members, ..., num_classes, ...]``.
      axis: the member axis.
      class_axis: the class axis.
      where: boolean class mask, per member and logit, shared by the members (no member axis),
        or per example (no member or class axis).

    Returns:
      :math:`\log \bar p`, shape ``member_logits.shape`` without ``axis`` (the class axis kept),
      in at least float32.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> members = jnp.log(jnp.array([[0.9, 0.1], [0.5, 0.5]]))
      >>> print(jnp.exp(entjax.ensemble_log_probs(members)))
      [0.7 0.3]

    References:
      Lakshminarayanan, Pritzel & Blundell, *Simple and Scalable Predictive Uncertainty
      Estimation using Deep Ensembles*, NeurIPS 2017.
    """
    mb = _members(member_logits, axis, class_axis, where)
    log_mean, class_any = _mixture_log_probs(mb)
    out = jnp.where(class_any, log_mean, -jnp.inf)
    return jnp.moveaxis(out, -1, mb.class_pos)


def ensemble_uncertainty(
    member_logits: jax.typing.ArrayLike,
    *,
    axis: int = 0,
    class_axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> EnsembleUncertainty:
    r"""Split an ensemble's predictive entropy into aleatoric and epistemic parts.

    With member distributions :math:`p_m = \mathrm{softmax}(x_m)` and their mean
    :math:`\bar p = \frac1M \sum_m p_m`:

    .. math::
        \underbrace{H(\bar p)}_{\text{total}}
          = \underbrace{\frac1M \sum_m H(p_m)}_{\text{aleatoric}}
          + \underbrace{\frac1M \sum_m \mathrm{KL}(p_m \,\|\, \bar p)}_{\text{epistemic}}.

    The epistemic part is the mutual information between the prediction and the member index
    (the BALD score of Houlsby et al.). It is computed in the KL form on the right, from
    differences of log-probabilities, **not** as ``total - aleatoric``: the two are equal
    mathematically, but the KL form is exactly 0 when all members agree (each term is
    :math:`p_{mc}(\log p_{mc} - \log \bar p_c)` with :math:`\log \bar p_c = \log p_{mc}`
    bit for bit) and never suffers the cancellation of a difference of two entropies. It is
    clamped at 0, so it is never negative. :math:`\log \bar p` is a log-mean-exp of the members'
    log-softmaxes, exact for logits of ±1e4; ``-inf`` logits and masked classes are structural
    zeros with zero gradient.

    Args:
      member_logits: the members' logits, shape ``[..., num_members, ..., num_classes, ...]``.
      axis: the member axis.
      class_axis: the class axis.
      where: boolean class mask, per member and logit, shared by the members (no member axis),
        or per example (no member or class axis); masked examples give 0.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      ``EnsembleUncertainty(total, aleatoric, epistemic)``, each of shape ``member_logits.shape``
      without ``axis`` and ``class_axis``, in at least float32.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> agree = jnp.log(jnp.array([[0.5, 0.5], [0.5, 0.5]]))
      >>> u = entjax.ensemble_uncertainty(agree, base=2)
      >>> print(f"{u.total:.4f} {u.aleatoric:.4f} {u.epistemic:.4f}")
      1.0000 1.0000 0.0000
      >>> disagree = jnp.array([[0.0, -jnp.inf], [-jnp.inf, 0.0]])  # two confident members
      >>> u = entjax.ensemble_uncertainty(disagree, base=2)
      >>> print(f"{u.total:.4f} {u.aleatoric:.4f} {u.epistemic:.4f}")
      1.0000 0.0000 1.0000

    References:
      Houlsby, Huszár, Ghahramani & Lengyel, *Bayesian Active Learning for Classification and
      Preference Learning*, 2011. Depeweg, Hernández-Lobato, Doshi-Velez & Udluft,
      *Decomposition of Uncertainty in Bayesian Deep Learning for Efficient and Risk-sensitive
      Learning*, ICML 2018.
    """
    mb = _members(member_logits, axis, class_axis, where)
    ls = mb.ls
    log_mean, class_any = _mixture_log_probs(mb)
    mean_probs = jnp.where(class_any, jnp.exp(log_mean), 0.0)
    total = nx.negate(jnp.sum(mean_probs * log_mean, axis=-1))
    weight = jnp.where(mb.member_ok, 1.0 / jnp.maximum(mb.count, 1.0)[None], 0.0)
    member_entropy = nx.negate(jnp.sum(ls.probs * ls.log_probs, axis=-1))
    aleatoric = jnp.sum(weight * member_entropy, axis=0)
    member_kl = jnp.sum(ls.probs * (ls.log_probs - log_mean[None]), axis=-1)
    epistemic = jnp.maximum(jnp.sum(weight * member_kl, axis=0), 0.0)
    return EnsembleUncertainty(
        nx.to_base(total, base), nx.to_base(aleatoric, base), nx.to_base(epistemic, base)
    )


def pairwise_kl(
    member_logits: jax.typing.ArrayLike,
    *,
    axis: int = 0,
    class_axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Mean KL divergence over ordered pairs of distinct members: a disagreement measure.

    .. math::
        D = \frac{1}{M(M-1)} \sum_{i \ne j} \mathrm{KL}(p_i \,\|\, p_j),
        \qquad p_m = \mathrm{softmax}(x_m).

    Each pair's divergence is computed from log-probability differences (exactly 0 for identical
    members) and clamped at 0. A single (valid) member gives 0. If one member gives positive
    probability to a class that another rules out (``-inf`` logit or masked for that member
    only), the divergence is ``+inf``, as for :func:`entjax.categorical_kl`. Memory is
    :math:`O(M^2)` times the logits of one member.

    Args:
      member_logits: the members' logits, shape ``[..., num_members, ..., num_classes, ...]``.
      axis: the member axis.
      class_axis: the class axis.
      where: boolean class mask, per member and logit, shared by the members (no member axis),
        or per example (no member or class axis); masked examples give 0.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      :math:`D` per example, shape ``member_logits.shape`` without ``axis`` and ``class_axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> p, q = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1]))
      >>> print(f"{entjax.pairwise_kl(jnp.stack([p, q])):.4f}")  # (0.5108 + 0.3681) / 2
      0.4394

    References:
      Kullback & Leibler, *On Information and Sufficiency*, 1951. Fort, Hu & Lakshminarayanan,
      *Deep Ensembles: A Loss Landscape Perspective*, 2019 (disagreement between members).
    """
    mb = _members(member_logits, axis, class_axis, where)
    ls = mb.ls
    valid_i, valid_j = ls.valid[:, None], ls.valid[None, :]
    mismatch = valid_i & ~valid_j
    terms = ls.probs[:, None] * (ls.log_probs[:, None] - ls.log_probs[None, :])
    kl = jnp.maximum(jnp.sum(jnp.where(mismatch, jnp.inf, terms), axis=-1), 0.0)
    num_members = ls.valid.shape[0]
    distinct = ~jnp.eye(num_members, dtype=bool).reshape(
        (num_members, num_members) + (1,) * (kl.ndim - 2)
    )
    pair_ok = mb.member_ok[:, None] & mb.member_ok[None, :] & distinct
    pairs = jnp.maximum(mb.count * (mb.count - 1.0), 1.0)
    return nx.to_base(jnp.sum(jnp.where(pair_ok, kl, 0.0), axis=(0, 1)) / pairs, base)
