"""Divergences between distributions: categorical KL and Jensen–Shannon."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from . import _checks as ck, _numerics as nx


def categorical_kl(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    *,
    axis: ck.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Kullback–Leibler divergence :math:`\mathrm{KL}(p \,\|\, q)` between two categoricals.

    .. math::
        \mathrm{KL}(p \,\|\, q) = \sum_c p_c \,(\log p_c - \log q_c)
          = H(p, q) - H(p) \;\ge 0,

    with :math:`p = \mathrm{softmax}(\text{p\_logits})` and
    :math:`q = \mathrm{softmax}(\text{q\_logits})`.

    The argument order is the mathematical one: the first argument is p, the distribution the
    expectation is taken under, and both are logits. (:func:`entjax.kl_divergence` is the Optax
    drop-in, ``kl_divergence(log_predictions, targets)`` = KL(targets ‖ predictions), so
    ``entjax.kl_divergence(log_q, p) == entjax.categorical_kl(log_p, log_q)``.)

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
      >>> print(f"{entjax.categorical_kl(p, q):.4f} {entjax.categorical_kl(q, p):.4f}")
      0.5108 0.3681

    References:
      Kullback & Leibler, *On Information and Sufficiency*, 1951. Cover & Thomas, *Elements of
      Information Theory*, 2nd ed., 2006, §2.3.
    """
    xp, xq = _two_logits(p_logits, q_logits, axis, where)
    cpu = _categorical_kl_cpu if nx.use_fast_path(xp) else _categorical_kl
    kl = nx.on_cpu(cpu, _categorical_kl, xp, xq)
    # Rounding can leave a tiny negative total when p == q; KL is non-negative by Gibbs.
    return nx.to_base(jnp.maximum(kl, 0.0), base)


def kl_divergence(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    axis: ck.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""KL divergence of predictions from targets, the drop-in for ``optax.kl_divergence``.

    .. math::
        \mathrm{KL}(t \,\|\, \hat p) = \sum_c t_c \,(\log t_c - \log \hat p_c)

    with target probabilities :math:`t` and predicted log-probabilities
    :math:`\log \hat p`: the same arguments, positional ``axis``/``where`` and values as
    ``optax.kl_divergence(log_predictions, targets)`` wherever Optax's are finite. Unlike
    Optax, a target of exactly 0 contributes 0 even where the prediction's log-probability is
    ``-inf`` (Optax: NaN), with finite gradients (:math:`0 \log 0 = 0`). Nothing is
    renormalised: pass normalised log-probabilities, as Optax expects.

    For the divergence between two categoricals given as *logits*, in the mathematical order
    KL(p‖q), use :func:`entjax.categorical_kl`: ``kl_divergence(log_q, p) ==
    categorical_kl(log_p, log_q)``.

    Args:
      log_predictions: log-probabilities :math:`\log \hat p`, shape ``[..., num_classes]``.
      targets: probabilities :math:`t`, broadcastable against ``log_predictions``.
      axis: axis or axes to sum over (Optax's ``axis``).
      where: elements to include (Optax's ``where``, broadcast like ``jnp.sum``'s).

    Returns:
      The divergence per example, shape without ``axis``, in at least float32.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> log_q, p = jnp.log(jnp.array([0.9, 0.1])), jnp.array([0.5, 0.5])
      >>> print(f"{entjax.kl_divergence(log_q, p):.4f}")  # KL(p || q), as optax computes it
      0.5108
      >>> print(entjax.kl_divergence(jnp.array([0.0, -jnp.inf]), jnp.array([1.0, 0.0])))
      0.0

    References:
      Kullback & Leibler, *On Information and Sufficiency*, 1951. Optax documentation,
      ``optax.losses.kl_divergence``.
    """
    log_predictions = ck.check_floating(log_predictions, "log_predictions")
    targets = ck.check_floating(targets, "targets")
    dtype = nx.compute_dtype(log_predictions, targets)
    lp, t = jnp.broadcast_arrays(nx.upcast(log_predictions, dtype), nx.upcast(targets, dtype))
    # t log t - t log p̂ with 0 log 0 = 0 and 0 * (-inf) = 0, for values and gradients.
    terms = nx.xlogx(t) - nx.safe_mul(t, lp)
    if where is not None:
        where = ck.check_bool_mask(where)
    return jnp.sum(terms, axis=axis, where=where)


def _two_logits(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    axis: ck.Axis,
    where: jax.typing.ArrayLike | None,
) -> tuple[jax.Array, jax.Array]:
    """Both logits checked, upcast, classes last, and masked classes set to ``-inf``."""
    p_logits = ck.check_floating(p_logits, "p_logits")
    q_logits = ck.check_floating(q_logits, "q_logits")
    ck.check_min_rank(p_logits, 1, "p_logits")
    if p_logits.shape != q_logits.shape:
        raise ValueError(
            f"`p_logits` and `q_logits` must have the same shape, got {p_logits.shape} and "
            f"{q_logits.shape}."
        )
    axes = ck.normalize_axes(axis, p_logits.ndim)
    mask = nx.class_mask_last(where, p_logits.shape, axes)
    dtype = nx.compute_dtype(p_logits, q_logits)
    xp = nx.class_axes_last(nx.upcast(p_logits, dtype), axes)
    xq = nx.class_axes_last(nx.upcast(q_logits, dtype), axes)
    if mask is not None:
        xp = jnp.where(mask, xp, -jnp.inf)
        xq = jnp.where(mask, xq, -jnp.inf)
    return xp, xq


def _shifted(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``z = x - max(x)`` (shift 0 on rows without a finite max), ``log s`` and ``s != 0``."""
    m = jnp.max(x, axis=-1, keepdims=True)
    z = x - nx.stable_shift(m)
    total = jnp.sum(jnp.exp(z), axis=-1)
    nonempty = total != 0  # NaN compares unequal: NaN rows propagate
    return z, jnp.log(jnp.where(nonempty, total, 1.0)), nonempty


def _categorical_kl_parts(xp: jax.Array, xq: jax.Array):
    zp, log_sp, p_any = _shifted(xp)
    zq, log_sq, _ = _shifted(xq)
    # sum_c p_c (log p_c - log q_c) = E_p[zp - zq] - log sp + log sq. A class with p_c = 0
    # (logit -inf) contributes 0; one with p_c > 0 and q_c = 0 contributes +inf.
    p_zero = xp == -jnp.inf
    terms = jnp.where(p_zero, 0.0, jnp.where(xq == -jnp.inf, jnp.inf, jnp.exp(zp) * (zp - zq)))
    cross = jnp.sum(terms, axis=-1) / jnp.exp(log_sp)
    kl = jnp.where(p_any, cross - log_sp + log_sq, 0.0)
    return kl, zp, zq, log_sp, log_sq, p_any & (cross < jnp.inf)


@jax.custom_jvp
def _categorical_kl(xp: jax.Array, xq: jax.Array) -> jax.Array:
    """``KL(softmax(xp) ‖ softmax(xq))`` over the last axis; ``-inf`` entries are zeros.

    Custom JVP with the closed-form tangent ``sum(p (log p - log q - KL) dxp + (q - p) dxq)``:
    linear in the tangents (forward and reverse mode), 0 on ``-inf`` entries, on rows where
    ``p`` has no class, and on rows whose divergence is ``+inf``; the backward pass is one fused
    elementwise pass per input.
    """
    return _categorical_kl_parts(xp, xq)[0]


@_categorical_kl.defjvp
def _categorical_kl_jvp(primals, tangents):
    xp, xq = primals
    dxp, dxq = tangents
    kl, zp, zq, log_sp, log_sq, row_ok = _categorical_kl_parts(xp, xq)
    ok = row_ok[..., None]
    log_p = zp - log_sp[..., None]
    p = jnp.exp(log_p)
    q = jnp.exp(zq - log_sq[..., None])
    finite = ok & (xp != -jnp.inf)  # here p_c > 0 implies q_c > 0, so log q_c is finite
    log_ratio = jnp.where(finite, log_p - (zq - log_sq[..., None]), 0.0)
    coef_p = jnp.where(finite, p * (log_ratio - kl[..., None]), 0.0)
    coef_q = jnp.where(ok, q - p, 0.0)
    return kl, jnp.sum(coef_p * dxp, axis=-1) + jnp.sum(coef_q * dxq, axis=-1)


def _kl_careful(xp, xq, shift_p, shift_q):
    """KL per row and its row flags from given shifts, ``-inf`` entries as structural zeros.

    Returns ``(kl, log_sp, log_sq, row_ok)`` as :func:`_categorical_kl_parts` does (the same
    values), with the shifts of the fast path so that both share the tangent formulas.
    """
    zp = xp - shift_p[..., None]
    zq = xq - shift_q[..., None]
    sp = jnp.sum(jnp.exp(zp), axis=-1)
    sq = jnp.sum(jnp.exp(zq), axis=-1)
    p_any = sp != 0  # NaN compares unequal: NaN rows propagate
    log_sp = jnp.log(jnp.where(p_any, sp, 1.0))
    log_sq = jnp.log(jnp.where(sq != 0, sq, 1.0))
    p_zero = xp == -jnp.inf
    terms = jnp.where(p_zero, 0.0, jnp.where(xq == -jnp.inf, jnp.inf, jnp.exp(zp) * (zp - zq)))
    cross = jnp.sum(terms, axis=-1) / jnp.where(p_any, sp, 1.0)
    kl = jnp.where(p_any, cross - log_sp + log_sq, 0.0)
    return kl, log_sp, log_sq, p_any & (cross < jnp.inf)


def _kl_cpu_value(xp, xq):
    """KL per row, select-free (one fused pass on XLA:CPU) unless some term is not finite."""

    def shifted(x):  # a plain maximum: a row it does not suit is not finite, and falls back
        return x - lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))

    kl = _kl_chained(shifted(xp), shifted(xq))[0]

    def careful(xp, xq):  # shifts recomputed: the fast pass keeps its maxima to itself
        def rows(xp, xq):
            return _kl_careful(xp, xq, nx.row_max_shift(xp), nx.row_max_shift(xq))[0]

        return nx.by_row_blocks(rows, xp, xq)

    return nx.fallback_unless(nx.all_finite(kl), kl, careful, xp, xq)


def _kl_chained(zp, zq):
    """``(kl, log_sp, log_sq)`` from shifted logits, as ``log_softmax`` then ``Σ p (log p -
    log q)``: three ``exp`` per pair of logits, but no value feeds two sums (XLA:CPU would
    store such a value as an ``[N, C]`` array)."""
    log_sp = jnp.log(jnp.sum(jnp.exp(zp), axis=-1))
    log_sq = jnp.log(jnp.sum(jnp.exp(zq), axis=-1))
    log_p = zp - log_sp[..., None]
    kl = jnp.sum(jnp.exp(log_p) * (log_p - (zq - log_sq[..., None])), axis=-1)
    return kl, log_sp, log_sq


def _kl_cpu_stats(xp, xq):
    """``(kl, shift_p, shift_q, log_sp, log_sq, row_ok)`` by select-free sums, exact wherever
    every term is finite (XLA:CPU fuses them with their arithmetic: no ``[N, C]`` array is
    written), recomputed by :func:`_kl_careful` otherwise (``-inf`` logits, NaN)."""
    shift_p = nx.row_max_shift(xp)
    shift_q = nx.row_max_shift(xq)
    kl, log_sp, log_sq = _kl_chained(xp - shift_p[..., None], xq - shift_q[..., None])
    fast = (kl, log_sp, log_sq, jnp.ones(kl.shape, bool))
    ok = nx.all_finite(kl)
    careful = functools.partial(nx.by_row_blocks, _kl_careful)
    stats = nx.fallback_unless(ok, fast, careful, xp, xq, shift_p, shift_q)
    kl, log_sp, log_sq, row_ok = stats
    return kl, shift_p, shift_q, log_sp, log_sq, row_ok


@jax.custom_jvp
def _categorical_kl_cpu(xp: jax.Array, xq: jax.Array) -> jax.Array:
    """:func:`_categorical_kl` in the form that is fastest on CPU (same values and tangents).

    The forward pass is select-free (:func:`_kl_cpu_stats`): the exponential of ``zp`` is
    shared by two sums and no ``[N, C]`` intermediate is stored, where the select-based form
    stores three. The tangent computes only the terms whose input has one (symbolic zeros):
    ``q - p`` for ``q``'s logits with two ``exp`` per logit, recomputed rather than stored.
    """
    return _kl_cpu_value(xp, xq)


def _categorical_kl_cpu_jvp(primals, tangents):
    xp, xq = primals
    dxp, dxq = tangents
    kl, shift_p, shift_q, log_sp, log_sq, row_ok = _kl_cpu_stats(xp, xq)
    out = jnp.zeros_like(kl)
    zp = xp - shift_p[..., None]
    zq = xq - shift_q[..., None]
    if not isinstance(dxq, SymbolicZero):
        # q - p is finite everywhere (0 at -inf entries); rows without a finite KL get 0.
        scale = row_ok.astype(xq.dtype)[..., None]
        coef_q = (jnp.exp(zq - log_sq[..., None]) - jnp.exp(zp - log_sp[..., None])) * scale
        out = out + jnp.sum(coef_q * dxq, axis=-1)
    if not isinstance(dxp, SymbolicZero):
        finite = row_ok[..., None] & (xp != -jnp.inf)  # p_c > 0 here implies q_c > 0
        log_p = zp - log_sp[..., None]
        log_ratio = jnp.where(finite, log_p - (zq - log_sq[..., None]), 0.0)
        coef_p = jnp.where(finite, jnp.exp(log_p) * (log_ratio - kl[..., None]), 0.0)
        out = out + jnp.sum(coef_p * dxp, axis=-1)
    return kl, out


_categorical_kl_cpu.defjvp(_categorical_kl_cpu_jvp, symbolic_zeros=True)


def js_divergence(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    *,
    axis: ck.Axis = -1,
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
    xp, xq = _two_logits(p_logits, q_logits, axis, where)
    p, q = nx.masked_log_softmax(xp), nx.masked_log_softmax(xq)
    log_m = nx.safe_log(0.5 * (p.probs + q.probs))
    terms = nx.safe_mul(p.probs, p.log_probs - log_m) + nx.safe_mul(q.probs, q.log_probs - log_m)
    return nx.to_base(jnp.maximum(0.5 * jnp.sum(terms, axis=-1), 0.0), base)


def gaussian_kl(
    mean: jax.typing.ArrayLike,
    log_var: jax.typing.ArrayLike,
    *,
    prior_mean: jax.typing.ArrayLike = 0.0,
    prior_log_var: jax.typing.ArrayLike = 0.0,
    axis: ck.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Diagonal-Gaussian KL divergence :math:`\mathrm{KL}(q \,\|\, p)`, summed over ``axis``.

    With :math:`q = \mathcal N(\mu, e^{v})` and :math:`p = \mathcal N(\mu_0, e^{v_0})` per
    coordinate, and :math:`d = v - v_0`,

    .. math::
        \mathrm{KL}(q \,\|\, p) = \tfrac12 \sum_j \Bigl( e^{d_j} - 1 - d_j
          + (\mu_j - \mu_{0j})^2 \, e^{-v_{0j}} \Bigr).

    The variance ratio is formed as ``exp(log_var - prior_log_var)`` and
    :math:`e^{d} - 1 - d` as ``expm1(d) - d``, so equal variances of any size give exactly 0 and
    ``log_var = ±200`` stays finite in float32 wherever the divergence itself is finite. The
    defaults give the VAE / information-bottleneck prior :math:`\mathcal N(0, I)`.

    Args:
      mean: posterior means :math:`\mu`, shape ``[..., latent_dim]`` (floating).
      log_var: posterior log-variances :math:`v`, broadcastable against ``mean``.
      prior_mean: prior means :math:`\mu_0`, broadcastable (default 0).
      prior_log_var: prior log-variances :math:`v_0`, broadcastable (default 0).
      axis: latent axis or axes to sum over (``None``: all axes).
      where: boolean mask of the latent coordinates to include (broadcastable).
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The divergence per example: the broadcast shape of the inputs without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> print(entjax.gaussian_kl(jnp.zeros(3), jnp.zeros(3)))
      0.0
      >>> # KL(N(1, 1) || N(0, 1)) = 1/2 per coordinate
      >>> print(f"{entjax.gaussian_kl(jnp.ones(2), jnp.zeros(2)):.4f}")
      1.0000

    References:
      Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014, appendix B.
    """
    mean = ck.check_floating(mean, "mean")
    log_var = ck.check_floating(log_var, "log_var")
    prior_mean = ck.check_floating(prior_mean, "prior_mean")
    prior_log_var = ck.check_floating(prior_log_var, "prior_log_var")
    # Python-scalar priors stay weakly typed: a float32 posterior keeps a float32 result.
    dtype = nx.compute_dtype(mean, log_var, prior_mean, prior_log_var)
    args = {"mean": mean, "log_var": log_var, "prior_mean": prior_mean}
    args["prior_log_var"] = prior_log_var
    try:
        shape = jnp.broadcast_shapes(*(a.shape for a in args.values()))
    except ValueError:
        shapes = ", ".join(f"`{k}` {a.shape}" for k, a in args.items())
        raise ValueError(f"gaussian_kl: the inputs do not broadcast together: {shapes}.") from None
    mu, v, mu0, v0 = (jnp.broadcast_to(a.astype(dtype), shape) for a in args.values())
    axes = ck.normalize_axes(axis, len(shape)) if shape else ()
    d = v - v0
    terms = jnp.expm1(d) - d + nx.safe_mul(jnp.square(mu - mu0), jnp.exp(-v0))
    mask = ck.example_mask(where, shape)
    if mask is not None:
        terms = jnp.where(mask, terms, 0.0)
    kl = 0.5 * jnp.sum(terms, axis=axes)
    return nx.to_base(jnp.maximum(kl, 0.0), base)
