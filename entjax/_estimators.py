"""Mutual-information and entropy estimators for samples and learned representations.

Three families, all pure functions of arrays (jit/vmap/grad-compatible, nats by default):

* **Critic-based lower bounds** from a matrix of critic scores ``scores[..., i, j] = f(x_i, y_j)``
  whose diagonal holds the positive (jointly drawn) pairs: :func:`infonce_bound`,
  :func:`nwj_bound`, :func:`dv_bound` and :func:`mine_bound` (DV with MINE's moving-average
  gradient correction). They are differentiable in the scores, so they can be maximised over a
  critic inside a training objective.
* **Non-parametric estimators** for samples: the Kozachenko–Leonenko k-NN differential entropy
  (:func:`knn_entropy`) and the Kraskov–Stögbauer–Grassberger MI estimator
  (:func:`ksg_mutual_information`), computed from dense O(n²) pairwise-distance matrices.
* **Estimators for deterministic networks**: the histogram estimator of Shwartz-Ziv & Tishby
  (:func:`binned_mutual_information`) and the pairwise-distance bounds of Kolchinsky & Tracey for
  a representation with additive Gaussian noise (:func:`kernel_mi_upper_bound`,
  :func:`kernel_mi_lower_bound`).

Sample axes are the last one (scores: the last two) and any leading axes are batch axes: an
estimate is returned per leading index.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from . import _checks as ck, _numerics as nx

_EULER_GAMMA = 0.57721566490153286061


# --------------------------------------------------------------------------------------------
# Private helpers.


def _digamma_int(m: int) -> float:
    """ψ(m) for a positive integer m, exactly: -γ + Σ_{j<m} 1/j."""
    return -_EULER_GAMMA + math.fsum(1.0 / j for j in range(1, m))


def _check_scores(scores: jax.typing.ArrayLike, *, min_n: int) -> jax.Array:
    scores = ck.check_floating(scores, "scores")
    ck.check_min_rank(scores, 2, "scores")
    n, m = scores.shape[-2:]
    if n != m:
        raise ValueError(
            f"`scores` must be square in its last two axes, scores[..., i, j] = f(x_i, y_j) with "
            f"the positive pairs on the diagonal; got shape {scores.shape}."
        )
    if n < min_n:
        raise ValueError(
            f"too few samples: `scores` has batch size {n}, this bound needs at least {min_n} "
            "(it averages over the off-diagonal negative pairs)."
        )
    return nx.upcast(scores)


def _diag_mean(scores: jax.Array) -> jax.Array:
    return jnp.mean(jnp.diagonal(scores, axis1=-2, axis2=-1), axis=-1)


def _offdiag_logmeanexp(scores: jax.Array) -> jax.Array:
    """log of the mean of exp(scores) over the n(n-1) off-diagonal entries (stable)."""
    n = scores.shape[-1]
    offdiag = jnp.broadcast_to(~jnp.eye(n, dtype=bool), scores.shape)
    # Diagonal entries are replaced by -inf before the reduction: no gradient reaches them.
    masked = jnp.where(offdiag, scores, -jnp.inf)
    lse = jax.nn.logsumexp(masked, axis=(-2, -1))
    return lse - jnp.asarray(math.log(n * (n - 1)), scores.dtype)


def _check_samples(samples: jax.typing.ArrayLike, name: str, *, k: int) -> jax.Array:
    samples = ck.check_floating(samples, name)
    if samples.ndim < 2:
        raise ValueError(
            f"`{name}` must have shape [..., num_samples, dim], got {samples.shape}; "
            f"reshape one-dimensional samples with `{name}[:, None]`."
        )
    n = samples.shape[-2]
    if n < 2:
        raise ValueError(f"too few samples: `{name}` has {n} sample(s), at least 2 are needed.")
    if k >= n:
        raise ValueError(
            f"`k` must be smaller than the number of samples: k={k} but `{name}` has {n} "
            f"samples (each point has only {n - 1} neighbours)."
        )
    return samples


def _pairwise(x: jax.Array, norm: str) -> jax.Array:
    """Pairwise distances ``[..., n, n]`` between the rows of ``x [..., n, d]``.

    ``"max"``: max-norm distance; ``"sqeuclidean"``: *squared* Euclidean distance. Accumulated
    one feature at a time (``lax.scan``), so the forward pass holds O(n²), not O(n² d), numbers and
    the squared distances are exact differences (no ``|a|² + |b|² - 2ab`` cancellation).
    """
    cols = jnp.moveaxis(x, -1, 0)  # [d, ..., n]

    def step(acc: jax.Array, col: jax.Array) -> tuple[jax.Array, None]:
        diff = col[..., :, None] - col[..., None, :]
        if norm == "max":
            return jnp.maximum(acc, jnp.abs(diff)), None
        return acc + diff * diff, None

    n = x.shape[-2]
    init = jnp.zeros((*x.shape[:-2], n, n), x.dtype)
    out, _ = lax.scan(step, init, cols)
    return out


def _kth_neighbour(dist: jax.Array, k: int) -> jax.Array:
    """Distance from each point to its k-th nearest other point (the diagonal is excluded)."""
    # k - 1 rounds of "remove the nearest remaining point" (one index per round, so ties count
    # with multiplicity), then a min: O(k n²), much faster than lax.top_k / sort on CPU. Only
    # the final min is differentiated.
    n = dist.shape[-1]
    cols = lax.broadcasted_iota(jnp.int32, dist.shape, dist.ndim - 1)
    removed = jnp.broadcast_to(jnp.eye(n, dtype=bool), dist.shape)
    frozen = lax.stop_gradient(dist)

    def remove_nearest(_: int, removed: jax.Array) -> jax.Array:
        nearest = jnp.argmin(jnp.where(removed, jnp.inf, frozen), axis=-1)
        return removed | (cols == nearest[..., None])

    removed = lax.fori_loop(0, k - 1, remove_nearest, removed)
    return jnp.min(jnp.where(removed, jnp.inf, dist), axis=-1)


def _row_counts(codes: jax.Array) -> jax.Array:
    """For each row of ``codes [..., n, m]``, how many rows (itself included) are identical to it.

    Rows are sorted lexicographically, runs of identical rows are measured with a cumulative
    max/min of their start/end positions, and the run lengths are put back in sample order.
    """
    n = codes.shape[-2]
    keys = tuple(codes[..., j] for j in reversed(range(codes.shape[-1])))  # last key = primary
    order = jnp.lexsort(keys, axis=-1)
    rows = jnp.take_along_axis(codes, order[..., None], axis=-2)
    changed = jnp.any(rows[..., 1:, :] != rows[..., :-1, :], axis=-1)
    ones = jnp.ones((*changed.shape[:-1], 1), bool)
    starts = jnp.concatenate([ones, changed], axis=-1)  # first row of a run
    ends = jnp.concatenate([changed, ones], axis=-1)  # last row of a run
    pos = lax.broadcasted_iota(jnp.int32, starts.shape, starts.ndim - 1)
    run_start = lax.cummax(jnp.where(starts, pos, 0), axis=starts.ndim - 1)
    run_end = lax.cummin(jnp.where(ends, pos, n - 1), axis=ends.ndim - 1, reverse=True)
    counts = run_end - run_start + 1
    return jnp.take_along_axis(counts, jnp.argsort(order, axis=-1), axis=-1)


def _pack_codes(codes: jax.Array, radix: int) -> jax.Array:
    """Pack groups of base-``radix`` digits into int32 keys (fewer sort keys, same equality)."""
    radix = max(radix, 2)
    per_key = max(1, math.floor(31 * math.log(2) / math.log(radix)))
    while per_key > 1 and radix**per_key >= 2**31:
        per_key -= 1
    m = codes.shape[-1]
    pad = (-m) % per_key
    if pad:
        codes = jnp.concatenate([codes, jnp.zeros((*codes.shape[:-1], pad), codes.dtype)], -1)
    codes = codes.reshape((*codes.shape[:-1], -1, per_key))
    weights = jnp.asarray([radix**j for j in range(per_key)], jnp.int32)
    return jnp.sum(codes * jnp.broadcast_to(weights, codes.shape), axis=-1, dtype=jnp.int32)


# --------------------------------------------------------------------------------------------
# Critic-based variational lower bounds.


def infonce_bound(scores: jax.typing.ArrayLike, *, base: float | None = None) -> jax.Array:
    r"""InfoNCE (contrastive predictive coding) lower bound on :math:`I(X;Y)` from critic scores.

    With ``scores[i, j]`` :math:`= f(x_i, y_j)` for a batch of :math:`n` jointly drawn pairs
    :math:`(x_i, y_i)` (positives on the diagonal, the other :math:`y_j` acting as negatives):

    .. math::
        I_{\mathrm{NCE}} = \frac{1}{n} \sum_{i=1}^n \Big[ f(x_i, y_i)
          - \log \sum_{j=1}^n e^{f(x_i, y_j)} \Big] + \log n
          \;\le\; \min\big(I(X;Y),\, \log n\big) \text{ in expectation.}

    The estimate never exceeds :math:`\log n` for any scores (each bracket is a log-softmax, which
    is :math:`\le 0`), so it is low-variance but saturates: it cannot certify more than
    :math:`\log n` nats. It is invariant to adding any function of :math:`x` to the critic; the
    optimal critic is :math:`\log p(y|x)/p(y)` up to such a function. Equivalent to minus the
    softmax cross-entropy of ``scores`` against the diagonal labels, plus :math:`\log n`.

    Args:
      scores: critic scores, shape ``[..., n, n]`` (floating); leading axes are batch axes.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The bound, shape ``scores.shape[:-2]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> # A perfect critic (huge positive scores on the diagonal) saturates at log n.
      >>> scores = 50.0 * jnp.eye(4)
      >>> print(f"{entjax.infonce_bound(scores, base=2):.4f}")
      2.0000

    References:
      van den Oord, Li & Vinyals, *Representation Learning with Contrastive Predictive Coding*,
      2018. Poole, Ozair, van den Oord, Alemi & Tucker, *On Variational Bounds of Mutual
      Information*, ICML 2019.
    """
    return _infonce(_check_scores(scores, min_n=1), base=base)


@functools.partial(jax.jit, static_argnames="base")
def _infonce(scores: jax.Array, *, base: float | None) -> jax.Array:
    n = scores.shape[-1]
    log_softmax_diag = jnp.diagonal(jax.nn.log_softmax(scores, axis=-1), axis1=-2, axis2=-1)
    bound = jnp.mean(log_softmax_diag, axis=-1) + jnp.asarray(math.log(n), scores.dtype)
    return nx.to_base(bound, base)


def nwj_bound(scores: jax.typing.ArrayLike, *, base: float | None = None) -> jax.Array:
    r"""NWJ (f-divergence, "MINE-f") lower bound on :math:`I(X;Y)` from critic scores.

    .. math::
        I_{\mathrm{NWJ}} = \mathbb{E}_{p(x,y)}[f(x,y)] - e^{-1}\,\mathbb{E}_{p(x)p(y)}[e^{f(x,y)}]
          \;\le\; I(X;Y),

    estimated with the diagonal of ``scores`` for the joint expectation and the mean over the
    :math:`n(n-1)` off-diagonal entries for the product of marginals. Both averages are unbiased,
    so the minibatch estimate is an **unbiased** estimate of the bound (unlike :func:`dv_bound`),
    but its variance grows like :math:`e^{I}`. Tight at the optimal critic
    :math:`f^*(x,y) = 1 + \log p(y|x)/p(y)` (note the :math:`+1`).

    The exponential is computed as :math:`\exp(\operatorname{logmeanexp}(f) - 1)`; scores above
    about 88 (float32) make it overflow to ``-inf``, as the bound itself diverges.

    Args:
      scores: critic scores ``[..., n, n]``, positives on the diagonal, ``n >= 2``.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The bound, shape ``scores.shape[:-2]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> # A constant critic f = 1 is optimal for independent variables: the bound is 0.
      >>> print(f"{entjax.nwj_bound(jnp.ones((5, 5))):.4f}")
      0.0000

    References:
      Nguyen, Wainwright & Jordan, *Estimating Divergence Functionals and the Likelihood Ratio by
      Convex Risk Minimization*, IEEE Trans. Inf. Theory, 2010. Poole et al., *On Variational
      Bounds of Mutual Information*, ICML 2019.
    """
    return _nwj(_check_scores(scores, min_n=2), base=base)


@functools.partial(jax.jit, static_argnames="base")
def _nwj(scores: jax.Array, *, base: float | None) -> jax.Array:
    bound = _diag_mean(scores) - jnp.exp(_offdiag_logmeanexp(scores) - 1.0)
    return nx.to_base(bound, base)


def dv_bound(scores: jax.typing.ArrayLike, *, base: float | None = None) -> jax.Array:
    r"""Donsker–Varadhan (MINE) lower bound on :math:`I(X;Y)` from critic scores.

    .. math::
        I_{\mathrm{DV}} = \mathbb{E}_{p(x,y)}[f(x,y)] - \log \mathbb{E}_{p(x)p(y)}[e^{f(x,y)}]
          \;\le\; I(X;Y),

    with the diagonal of ``scores`` for the joint expectation and the :math:`n(n-1)` off-diagonal
    entries for the product of marginals. Tight at :math:`f^* = \log p(y|x)/p(y) + c` for any
    constant :math:`c`; DV is at least as tight as :func:`nwj_bound` for the same critic.

    **Minibatch bias.** The logarithm of a sample mean is biased (Jensen: the estimate of
    :math:`-\log\mathbb{E}_q` is biased *upwards*, by roughly
    :math:`\mathrm{Var}/(2\,\mathrm{mean}^2)` of the off-diagonal average), so a minibatch
    estimate is not a guaranteed lower bound, and its gradient is biased. The bias vanishes as
    the batch grows. MINE (Belghazi et al. 2018) corrects the *gradient* by replacing the
    minibatch denominator of
    :math:`\nabla \log \mathbb{E}_q[e^f] = \mathbb{E}_q[e^f \nabla f]/\mathbb{E}_q[e^f]`
    with a moving average over batches; that is :func:`mine_bound`.

    Args:
      scores: critic scores ``[..., n, n]``, positives on the diagonal, ``n >= 2``.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The bound, shape ``scores.shape[:-2]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> scores = jnp.array([[2.0, 0.0], [0.0, 2.0]])  # E_p f = 2, E_q e^f = 1
      >>> print(f"{entjax.dv_bound(scores):.4f}")
      2.0000

    References:
      Donsker & Varadhan, *Asymptotic Evaluation of Certain Markov Process Expectations for Large
      Time IV*, 1983. Belghazi et al., *Mutual Information Neural Estimation*, ICML 2018.
      Poole et al., *On Variational Bounds of Mutual Information*, ICML 2019.
    """
    return _dv(_check_scores(scores, min_n=2), base=base)


@functools.partial(jax.jit, static_argnames="base")
def _dv(scores: jax.Array, *, base: float | None) -> jax.Array:
    return nx.to_base(_diag_mean(scores) - _offdiag_logmeanexp(scores), base)


def mine_bound(
    scores: jax.typing.ArrayLike,
    ema: jax.typing.ArrayLike | None,
    *,
    decay: float = 0.99,
    base: float | None = None,
) -> tuple[jax.Array, jax.Array]:
    r"""Donsker–Varadhan bound with MINE's bias-corrected gradient (moving-average denominator).

    The returned value equals :func:`dv_bound`; only its gradient differs. With
    :math:`m = \frac{1}{n(n-1)}\sum_{i \ne j} e^{f(x_i, y_j)}` the minibatch estimate of
    :math:`\mathbb{E}_q[e^f]` and the moving average

    .. math::
        \bar m_t = \text{decay}\cdot \bar m_{t-1} + (1 - \text{decay})\cdot m,

    the gradient is that of :math:`\mathbb{E}_p[f] - m / \operatorname{sg}(\bar m_t)`, i.e.

    .. math::
        \nabla = \mathbb{E}_p[\nabla f] - \frac{\mathbb{E}_q[e^{f}\nabla f]}{\bar m_t},

    which replaces the biased minibatch denominator of the DV gradient with a running average
    (Belghazi et al. 2018, §3.2). ``decay = 0`` recovers the plain DV gradient. Thread the returned
    ``new_ema`` (a stop-gradient quantity) into the next step, e.g. in the optimiser's aux state.

    Args:
      scores: critic scores ``[..., n, n]``, positives on the diagonal, ``n >= 2``.
      ema: the previous moving average :math:`\bar m_{t-1}` of :math:`\mathbb{E}_q[e^f]`
        (positive, broadcastable to ``scores.shape[:-2]``), or ``None`` on the first step to
        start it at the current batch's value.
      decay: moving-average decay in ``[0, 1]``.
      base: ``None`` for nats, ``2`` for bits (scales the value and its gradient; ``new_ema``
        is unitless).

    Returns:
      ``(bound, new_ema)``, both of shape ``scores.shape[:-2]``.

    Examples:
      >>> import jax, jax.numpy as jnp, entjax
      >>> scores = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> bound, ema = entjax.mine_bound(scores, None)
      >>> print(f"{bound:.4f} {ema:.4f}")
      1.0000 1.0000
      >>> bound, ema = entjax.mine_bound(2.0 * scores, ema, decay=0.5)
      >>> print(f"{bound:.4f} {ema:.4f}")
      2.0000 1.0000

    References:
      Belghazi, Baratin, Rajeswar, Ozair, Bengio, Courville & Hjelm, *Mutual Information Neural
      Estimation*, ICML 2018.
    """
    scores = _check_scores(scores, min_n=2)
    if isinstance(decay, int | float) and not 0.0 <= decay <= 1.0:
        raise ValueError(f"`decay` must lie in [0, 1], got {decay}.")
    if ema is not None:
        ema = ck.check_floating(ema, "ema")
        ck.check_broadcastable(ema, scores.shape[:-2], "ema", to="the batch shape of scores")
    return _mine(scores, ema, decay, base=base)


@functools.partial(jax.jit, static_argnames="base")
def _mine(
    scores: jax.Array, ema: jax.Array | None, decay: jax.typing.ArrayLike, *, base: float | None
) -> tuple[jax.Array, jax.Array]:
    batch_shape = scores.shape[:-2]
    pos = _diag_mean(scores)
    log_m = _offdiag_logmeanexp(scores)
    m = lax.stop_gradient(jnp.exp(log_m))
    new_ema = m if ema is None else decay * nx.upcast(ema, scores.dtype) + (1.0 - decay) * m
    new_ema = lax.stop_gradient(jnp.broadcast_to(new_ema, batch_shape))
    value = lax.stop_gradient(pos - log_m)
    surrogate = pos - jnp.exp(log_m - jnp.log(new_ema))
    bound = value + (surrogate - lax.stop_gradient(surrogate))
    return nx.to_base(bound, base), new_ema


# --------------------------------------------------------------------------------------------
# Non-parametric estimators.


def knn_entropy(
    samples: jax.typing.ArrayLike,
    *,
    k: int = 3,
    norm: str = "euclidean",
    base: float | None = None,
) -> jax.Array:
    r"""Kozachenko–Leonenko k-nearest-neighbour estimate of differential entropy.

    For :math:`n` samples in :math:`\mathbb{R}^d`, with :math:`\varepsilon_i` the distance from
    sample :math:`i` to its :math:`k`-th nearest neighbour (among the other samples):

    .. math::
        \hat H = \psi(n) - \psi(k) + \log V_d + \frac{d}{n}\sum_{i=1}^n \log \varepsilon_i,

    where :math:`\psi` is the digamma function and :math:`V_d` the volume of the unit ball of the
    norm: :math:`\pi^{d/2}/\Gamma(d/2 + 1)` for ``"euclidean"``, :math:`2^d` for ``"max"``. The
    estimator is consistent; its bias grows with dimension and near boundaries of the support.

    Computed from a dense pairwise-distance matrix: O(n² d + k n²) time and O(n²) memory per
    estimate (n = 4096: 128 MiB in float64; reverse-mode gradients keep O(n² d)), fine for up
    to a few thousand samples. Duplicate samples give :math:`\varepsilon_i = 0` and an estimate
    of ``-inf`` (a distribution with atoms has differential entropy :math:`-\infty`); add a
    small jitter to discrete data. The estimate is differentiable in the samples (through the
    selected distances).

    Args:
      samples: shape ``[..., n, d]`` (floating); leading axes are batch axes.
      k: the neighbour order, a Python int with ``1 <= k < n``.
      norm: ``"euclidean"`` or ``"max"`` (Chebyshev).
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The entropy estimate, shape ``samples.shape[:-2]``.

    Examples:
      >>> import jax, jax.numpy as jnp, entjax
      >>> x = jax.random.uniform(jax.random.key(0), (2000, 1))  # H = 0 for U[0, 1]
      >>> print(f"{abs(entjax.knn_entropy(x)):.1f}")
      0.0

    References:
      Kozachenko & Leonenko, *Sample Estimate of the Entropy of a Random Vector*, Problems of
      Information Transmission, 1987. Kraskov, Stögbauer & Grassberger, *Estimating Mutual
      Information*, Phys. Rev. E, 2004, eq. (20).
    """
    k = ck.static_int(k, "k", minimum=1)
    samples = _check_samples(samples, "samples", k=k)
    if norm not in ("euclidean", "max"):
        raise ValueError(f"`norm` must be 'euclidean' or 'max', got {norm!r}.")
    return _knn_entropy(samples, k=k, norm=norm, base=base)


@functools.partial(jax.jit, static_argnames=("k", "norm", "base"))
def _knn_entropy(samples: jax.Array, *, k: int, norm: str, base: float | None) -> jax.Array:
    x = nx.upcast(samples)
    n, d = x.shape[-2:]
    if norm == "max":
        log_eps = jnp.log(_kth_neighbour(_pairwise(x, "max"), k))
        log_volume = d * math.log(2.0)
    else:
        log_eps = 0.5 * jnp.log(_kth_neighbour(_pairwise(x, "sqeuclidean"), k))
        log_volume = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)
    const = _digamma_int(n) - _digamma_int(k) + log_volume
    return nx.to_base(const + d * jnp.mean(log_eps, axis=-1), base)


def ksg_mutual_information(
    x: jax.typing.ArrayLike,
    y: jax.typing.ArrayLike,
    *,
    k: int = 3,
    base: float | None = None,
) -> jax.Array:
    r"""Kraskov–Stögbauer–Grassberger (KSG, estimator 1) k-NN estimate of :math:`I(X;Y)`.

    With the max-norm in each space and :math:`\|(x,y)\| = \max(\|x\|, \|y\|)` in the joint space,
    let :math:`\varepsilon_i` be the distance from :math:`(x_i, y_i)` to its :math:`k`-th joint
    neighbour and :math:`n_x(i)`, :math:`n_y(i)` the numbers of other points strictly within
    :math:`\varepsilon_i` of :math:`x_i` in X-space and of :math:`y_i` in Y-space. Then

    .. math::
        \hat I = \psi(k) + \psi(n) - \frac{1}{n}\sum_{i=1}^n
          \big[\psi(n_x(i) + 1) + \psi(n_y(i) + 1)\big].

    The estimate is nearly unbiased for independent variables, accurate for low-dimensional
    continuous data, and underestimates large MI in high dimension; it can be slightly negative.
    Ties (discrete or duplicated values) bias it: add a small jitter. It is a piecewise-constant
    function of the samples, so its gradient is zero (it measures, it does not train).

    Computed with three dense ``[n, n]`` distance matrices: O(n² (d_x + d_y)) time and about
    3 n² numbers of memory (n = 2000: ~100 MB in float64), fine for up to a few thousand samples.

    Args:
      x: samples of X, shape ``[..., n, d_x]`` (floating).
      y: samples of Y, shape ``[..., n, d_y]`` (floating), paired row by row with ``x``.
      k: the neighbour order, a Python int with ``1 <= k < n`` (3 is customary).
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The MI estimate, shape of the (broadcast) leading axes.

    Examples:
      >>> import jax, jax.numpy as jnp, entjax
      >>> kx, ky = jax.random.split(jax.random.key(0))
      >>> x = jax.random.normal(kx, (1000, 1))
      >>> y = jax.random.normal(ky, (1000, 1))
      >>> print(f"{abs(entjax.ksg_mutual_information(x, y)):.1f}")  # independent: I = 0
      0.0

    References:
      Kraskov, Stögbauer & Grassberger, *Estimating Mutual Information*, Phys. Rev. E 69, 066138,
      2004 (their estimator (8)).
    """
    k = ck.static_int(k, "k", minimum=1)
    x = _check_samples(x, "x", k=k)
    y = _check_samples(y, "y", k=k)
    if x.shape[-2] != y.shape[-2]:
        raise ValueError(
            f"`x` and `y` must hold the same number of paired samples, got shapes {x.shape} "
            f"and {y.shape}."
        )
    ck.check_broadcastable(x[..., 0, 0], y.shape[:-2], "x", to="the leading axes of y")
    return _ksg(x, y, k=k, base=base)


@functools.partial(jax.jit, static_argnames=("k", "base"))
def _ksg(x: jax.Array, y: jax.Array, *, k: int, base: float | None) -> jax.Array:
    dtype = nx.compute_dtype(x, y)
    n = x.shape[-2]
    dx = _pairwise(nx.upcast(x, dtype), "max")
    dy = _pairwise(nx.upcast(y, dtype), "max")
    dx, dy = jnp.broadcast_arrays(dx, dy)
    eps = lax.stop_gradient(_kth_neighbour(jnp.maximum(dx, dy), k))[..., :, None]
    others = jnp.broadcast_to(~jnp.eye(n, dtype=bool), dx.shape)
    n_x = jnp.sum((dx < eps) & others, axis=-1).astype(dtype)
    n_y = jnp.sum((dy < eps) & others, axis=-1).astype(dtype)
    digamma = jax.scipy.special.digamma
    avg = jnp.mean(digamma(n_x + 1.0) + digamma(n_y + 1.0), axis=-1)
    mi = jnp.asarray(_digamma_int(k) + _digamma_int(n), dtype) - avg
    return nx.to_base(lax.stop_gradient(mi), base)


# --------------------------------------------------------------------------------------------
# Estimators for deterministic networks.


def binned_mutual_information(
    x: jax.typing.ArrayLike,
    t: jax.typing.ArrayLike,
    *,
    num_bins: int = 30,
    value_range: tuple[float, float] | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Histogram (binning) estimate of :math:`I(X;T)` for a discrete X and activations T.

    Each unit of ``t`` is discretised into ``num_bins`` equal-width bins over ``value_range``
    (default: the minimum and maximum of ``t`` over all samples and units, per leading index), a
    sample's binned activation pattern :math:`\tilde t` is treated as one discrete symbol, and the
    plug-in estimate over the :math:`n` samples is

    .. math::
        \hat I(X; \tilde T) = \hat H(X) + \hat H(\tilde T) - \hat H(X, \tilde T),
        \qquad \hat H(\cdot) = -\sum_s \hat p(s) \log \hat p(s).

    Pass ``x = jnp.arange(n)`` (one id per distinct input) for :math:`I(X;T)` of a deterministic
    network, where :math:`T = h(X)` makes :math:`H(\tilde T | X) = 0` and
    :math:`\hat I = \hat H(\tilde T) \le \log n`; pass the labels for :math:`I(T;Y)`.

    **Bin-width dependence** (Saxe et al. 2018): for a deterministic network with continuous
    activations, the true :math:`I(X;T)` is infinite (or :math:`\log n` on a finite input set, as
    almost every injective map keeps the inputs distinct). The binned value measures how well the
    representation separates the inputs *at the chosen resolution*: it rises to :math:`\log n` as
    bins shrink and falls to 0 as they grow, and saturating units (tanh) fall into fewer bins than
    unbounded ones (ReLU), which is what produces the apparent "compression phase". Report the
    bin count with every estimate and compare layers at equal resolution.

    The estimate is piecewise constant in ``t`` (zero gradient). Rows are sorted, so the cost is
    O(n log n · num_units).

    Args:
      x: discrete symbols (input ids or labels), integer array of shape ``[..., n]``.
      t: activations, shape ``[..., n, num_units]`` (floating), paired with ``x``.
      num_bins: number of equal-width bins per unit (a Python int >= 1).
      value_range: ``(low, high)`` bin range; values outside are clipped into the end bins.
        ``None`` uses the observed range (Saxe et al. use ``(-1, 1)`` for tanh and
        ``(0, max)`` for ReLU layers).
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The estimate, shape ``t.shape[:-2]``.

    Examples:
      >>> import jax, jax.numpy as jnp, entjax
      >>> t = jnp.array([[0.0], [0.1], [0.9], [1.0]])
      >>> ids = jnp.arange(4)
      >>> print(f"{entjax.binned_mutual_information(ids, t, num_bins=2, base=2):.4f}")
      1.0000
      >>> print(f"{entjax.binned_mutual_information(ids, t, num_bins=30, base=2):.4f}")
      2.0000

    References:
      Shwartz-Ziv & Tishby, *Opening the Black Box of Deep Neural Networks via Information*, 2017.
      Saxe, Bansal, Dapello, Advani, Kolchinsky, Tracey & Cox, *On the Information Bottleneck
      Theory of Deep Learning*, ICLR 2018.
    """
    num_bins = ck.static_int(num_bins, "num_bins", minimum=1)
    x = ck.check_integer(x, "x")
    t = ck.check_floating(t, "t")
    ck.check_min_rank(t, 2, "t")
    ck.check_shape(x, t.shape[:-1], "x", expected="one symbol per row of `t`")
    if t.shape[-2] < 1:
        raise ValueError(f"too few samples: `t` has shape {t.shape}.")
    if value_range is not None:
        value_range = tuple(float(v) for v in value_range)
        if len(value_range) != 2 or not value_range[1] > value_range[0]:
            raise ValueError(
                f"`value_range` must be (low, high) with low < high, got {value_range}."
            )
    return _binned_mi(x, t, num_bins=num_bins, value_range=value_range, base=base)


@functools.partial(jax.jit, static_argnames=("num_bins", "value_range", "base"))
def _binned_mi(
    x: jax.Array,
    t: jax.Array,
    *,
    num_bins: int,
    value_range: tuple[float, float] | None,
    base: float | None,
) -> jax.Array:
    t = nx.upcast(t)
    if value_range is None:
        low = jnp.min(t, axis=(-2, -1), keepdims=True)
        high = jnp.max(t, axis=(-2, -1), keepdims=True)
    else:
        low, high = (jnp.asarray(v, t.dtype) for v in value_range)
    width = jnp.where(high > low, high - low, 1.0)
    t = lax.stop_gradient(t)
    codes = jnp.floor((t - low) / width * num_bins)
    codes = jnp.clip(codes, 0, num_bins - 1).astype(jnp.int32)
    t_keys = _pack_codes(codes, num_bins)
    x_keys = x[..., None]
    joint = jnp.concatenate([x_keys, t_keys.astype(x_keys.dtype)], axis=-1)
    # H(X) + H(T) - H(X,T) with H(.) = log n - mean_i log c(i), c(i) the number of samples
    # sharing sample i's symbol, is mean_i log(n c_xt(i) / (c_x(i) c_t(i))): exact 0 and log n
    # in the deterministic extremes (the counts are integers, exact in floating point).
    c_x, c_t, c_xt = (_row_counts(keys).astype(t.dtype) for keys in (x_keys, t_keys, joint))
    n = t.shape[-2]
    return nx.to_base(jnp.mean(jnp.log((n * c_xt) / (c_x * c_t)), axis=-1), base)


def _kernel_mi(
    h: jax.typing.ArrayLike, noise_std: jax.typing.ArrayLike, scale: float, base: float | None
) -> jax.Array:
    h = ck.check_floating(h, "h")
    if h.ndim < 2:
        raise ValueError(f"`h` must have shape [..., n, dim], got {h.shape}.")
    if h.shape[-2] < 1:
        raise ValueError(f"too few samples: `h` has shape {h.shape}.")
    if isinstance(noise_std, int | float) and not noise_std > 0:
        raise ValueError(f"`noise_std` must be positive, got {noise_std}.")
    return _kernel_mi_core(h, noise_std, scale=scale, base=base)


@functools.partial(jax.jit, static_argnames=("scale", "base"))
def _kernel_mi_core(
    h: jax.Array, noise_std: jax.typing.ArrayLike, *, scale: float, base: float | None
) -> jax.Array:
    h = nx.upcast(h)
    n = h.shape[-2]
    sq = _pairwise(h, "sqeuclidean")
    log_kernel = -sq / (scale * jnp.asarray(noise_std, h.dtype) ** 2)
    lme = jax.nn.logsumexp(log_kernel, axis=-1) - math.log(n)
    return nx.to_base(-jnp.mean(lme, axis=-1), base)


def kernel_mi_upper_bound(
    h: jax.typing.ArrayLike, *, noise_std: jax.typing.ArrayLike, base: float | None = None
) -> jax.Array:
    r"""Pairwise-distance (KL) upper bound on :math:`I(X;T)` for a noisy representation T.

    The representation is :math:`T = h(X) + \mathcal{N}(0, \sigma^2 I)`.

    With X uniform over the :math:`n` inputs, T is a mixture of :math:`n` Gaussians centred at
    :math:`h_i = h(x_i)`, :math:`I(X;T) = H(T) - H(T|X)`, and bounding the mixture entropy with
    pairwise KL divergences gives

    .. math::
        I(X;T) \le -\frac{1}{n}\sum_{i=1}^n \log \frac{1}{n}\sum_{j=1}^n
          \exp\Big(-\frac{\|h_i - h_j\|^2}{2\sigma^2}\Big) \;\le\; \log n.

    This is the "KDE" estimator of Saxe et al. (2018) applied to a representation with (real or
    hypothesised) additive noise; it depends on :math:`\sigma` as the binning estimator depends on
    the bin width. It is smooth in ``h``, so it can serve as a regulariser (nonlinear information
    bottleneck). See :func:`kernel_mi_lower_bound` for the matching lower bound. O(n²) memory.

    Args:
      h: noiseless representations :math:`h(x_i)`, shape ``[..., n, d]`` (floating).
      noise_std: the noise standard deviation :math:`\sigma > 0`.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The bound, shape ``h.shape[:-2]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> h = jnp.array([[0.0], [100.0]])  # far apart: I = H(X) = log 2
      >>> print(f"{entjax.kernel_mi_upper_bound(h, noise_std=1.0, base=2):.4f}")
      1.0000

    References:
      Kolchinsky & Tracey, *Estimating Mixture Entropy with Pairwise Distances*, Entropy 19(7),
      2017. Kolchinsky, Tracey & Wolpert, *Nonlinear Information Bottleneck*, Entropy 21(12), 2019.
      Saxe et al., *On the Information Bottleneck Theory of Deep Learning*, ICLR 2018.
    """
    return _kernel_mi(h, noise_std, 2.0, base)


def kernel_mi_lower_bound(
    h: jax.typing.ArrayLike, *, noise_std: jax.typing.ArrayLike, base: float | None = None
) -> jax.Array:
    r"""Pairwise-distance (Bhattacharyya) lower bound on :math:`I(X;T)` for a noisy representation.

    The representation is :math:`T = h(X) + \mathcal{N}(0, \sigma^2 I)`.

    The companion of :func:`kernel_mi_upper_bound`: bounding the mixture entropy with pairwise
    Bhattacharyya distances gives

    .. math::
        I(X;T) \ge -\frac{1}{n}\sum_{i=1}^n \log \frac{1}{n}\sum_{j=1}^n
          \exp\Big(-\frac{\|h_i - h_j\|^2}{8\sigma^2}\Big).

    Args:
      h: noiseless representations, shape ``[..., n, d]`` (floating).
      noise_std: the noise standard deviation :math:`\sigma > 0`.
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The bound, shape ``h.shape[:-2]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> h = jnp.zeros((3, 2))  # identical representations carry no information
      >>> print(f"{entjax.kernel_mi_lower_bound(h, noise_std=1.0):.4f}")
      0.0000

    References:
      Kolchinsky & Tracey, *Estimating Mixture Entropy with Pairwise Distances*, Entropy 19(7),
      2017.
    """
    return _kernel_mi(h, noise_std, 8.0, base)
