"""Tests for the mutual-information and entropy estimators (entjax/_estimators.py).

References are independent: numpy/scipy formulas written out, scipy.spatial.cKDTree neighbour
searches, numpy histograms, closed forms for Gaussians and uniforms, numerical quadrature.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from scipy import special
from scipy.spatial import cKDTree

import entjax

# --------------------------------------------------------------------------------------------
# Helpers: correlated Gaussians and their analytic critic.


def gaussian_pairs(rng: np.random.Generator, shape: tuple[int, ...], rho: float):
    """x, y standard normal with corr(x_c, y_c) = rho per coordinate, independent coordinates."""
    x = rng.standard_normal(shape)
    y = rho * x + np.sqrt(1.0 - rho**2) * rng.standard_normal(shape)
    return x, y


def gaussian_mi(rho: float, dim: int) -> float:
    return -0.5 * dim * np.log(1.0 - rho**2)


def log_density_ratio(x: jax.Array, y: jax.Array, rho: float) -> jax.Array:
    """scores[i, j] = log p(y_j | x_i) / p(y_j) for the correlated Gaussian pair."""
    var = 1.0 - rho**2
    diff = y[None, :, :] - rho * x[:, None, :]
    terms = -0.5 * jnp.log(var) - diff**2 / (2.0 * var) + 0.5 * y[None, :, :] ** 2
    return jnp.sum(terms, axis=-1)


def np_offdiag(s: np.ndarray) -> np.ndarray:
    n = s.shape[-1]
    return s[..., ~np.eye(n, dtype=bool)]


# --------------------------------------------------------------------------------------------
# Critic-based bounds: formulas.


def test_critic_bounds_match_numpy_formulas(rng):
    s = rng.normal(scale=3.0, size=(3, 7, 7))
    n = 7
    ref_nce = np.mean(np.diagonal(s, axis1=1, axis2=2) - special.logsumexp(s, axis=2), 1) + np.log(
        n
    )
    pos = np.mean(np.diagonal(s, axis1=1, axis2=2), axis=1)
    neg = np_offdiag(s)  # [3, n(n-1)]
    ref_nwj = pos - np.exp(-1.0) * np.mean(np.exp(neg), axis=1)
    ref_dv = pos - np.log(np.mean(np.exp(neg), axis=1))
    nce = jax.jit(entjax.infonce_bound)(s)
    nwj = jax.jit(entjax.nwj_bound)(s)
    dv = jax.jit(entjax.dv_bound)(s)
    assert nce.shape == nwj.shape == dv.shape == (3,)
    np.testing.assert_allclose(nce, ref_nce, rtol=1e-12)
    np.testing.assert_allclose(nwj, ref_nwj, rtol=1e-12)
    np.testing.assert_allclose(dv, ref_dv, rtol=1e-12)
    bits = jax.jit(lambda s: entjax.dv_bound(s, base=2))(s)
    np.testing.assert_allclose(bits, ref_dv / np.log(2.0), rtol=1e-12)
    # Leading axes are batch axes: equal to vmap over them.
    np.testing.assert_allclose(jax.vmap(entjax.infonce_bound)(s), ref_nce, rtol=1e-12)


@settings(max_examples=60, deadline=None, database=None)
@given(arrays(np.float64, (6, 6), elements=st.floats(-1e4, 1e4, allow_nan=False)))
def test_infonce_never_exceeds_log_batch(scores):
    bound = _jit_infonce(scores)
    assert np.isfinite(bound)
    assert bound <= np.log(6.0) + 1e-9


_jit_infonce = jax.jit(entjax.infonce_bound)


def test_infonce_saturates_at_log_n_for_a_perfect_critic():
    scores = 1e4 * jnp.eye(16)
    np.testing.assert_allclose(jax.jit(entjax.infonce_bound)(scores), np.log(16.0), rtol=1e-12)


@jax.jit
def _optimal_critic_bounds(key, rho):
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (256, 1), jnp.float64)
    y = rho * x + jnp.sqrt(1 - rho**2) * jax.random.normal(ky, (256, 1), jnp.float64)
    f = log_density_ratio(x, y, rho)
    # InfoNCE and DV are invariant to a constant shift of their optimal critic.
    return entjax.infonce_bound(f + 3.0), entjax.nwj_bound(f + 1.0), entjax.dv_bound(f - 2.0)


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_critic_bounds_approach_true_mi_with_optimal_critic(rho):
    """Analytic optimal critics, batch 256, mean over 64 batches: each bound ≈ I(X;Y)."""
    true = gaussian_mi(rho, 1)
    keys = jax.random.split(jax.random.key(1), 64)
    nce, nwj, dv = (
        np.asarray(v)
        for v in jax.vmap(_optimal_critic_bounds, in_axes=(0, None))(keys, jnp.asarray(rho))
    )
    tol = 0.02 if rho == 0.5 else 0.035  # ~4 standard errors of the mean over 64 batches
    for name, est in [("infonce", nce), ("nwj", nwj), ("dv", dv)]:
        assert abs(est.mean() - true) < tol, (name, est.mean(), true)
    # InfoNCE is a lower bound (in expectation): it may not exceed the truth beyond noise.
    assert nce.mean() <= true + 3 * nce.std() / 8


def test_nwj_unbiased_dv_biased_and_infonce_capped_in_small_batches():
    """Batch 4, 4000 batches: NWJ's estimate is unbiased for I; InfoNCE ≤ log 4 < I."""
    rho, n = 0.99, 4
    true = gaussian_mi(rho, 1)  # 1.96 nats > log 4 = 1.39 nats

    @jax.jit
    def bounds(key):
        kx, ky = jax.random.split(key)
        x = jax.random.normal(kx, (n, 1), jnp.float64)
        y = rho * x + np.sqrt(1 - rho**2) * jax.random.normal(ky, (n, 1), jnp.float64)
        f = log_density_ratio(x, y, rho)
        return entjax.nwj_bound(f + 1.0), entjax.infonce_bound(f), entjax.dv_bound(f)

    nwj, nce, dv = (
        np.asarray(v) for v in jax.vmap(bounds)(jax.random.split(jax.random.key(2), 4000))
    )
    se = nwj.std() / np.sqrt(nwj.size)
    assert abs(nwj.mean() - true) < 4 * se, (nwj.mean(), true, se)
    # InfoNCE: every batch estimate is <= log n, and so is its mean, well below I here.
    assert nce.max() <= np.log(n) + 1e-12
    assert nce.mean() < np.log(n) < true
    # DV with the log of a 12-sample mean: biased upwards (Jensen), by more than the noise.
    se_dv = dv.std() / np.sqrt(dv.size)
    assert dv.mean() > true + 4 * se_dv, (dv.mean(), true, se_dv)


def test_mine_bound_value_ema_and_gradients(rng):
    s = rng.normal(size=(5, 5))
    n = 5
    m = np.mean(np.exp(np_offdiag(s)))
    dv_ref = np.mean(np.diag(s)) - np.log(m)

    def grad_ref(denominator):
        """d/ds_ij of mean_i s_ii - (1/n(n-1)) sum_{i != j} e^{s_ij} / denominator."""
        g = -np.exp(s) / (n * (n - 1) * denominator)
        g[np.eye(n, dtype=bool)] = 1.0 / n
        return g

    value_and_grad = jax.jit(
        jax.value_and_grad(
            lambda s, ema, decay: entjax.mine_bound(s, ema, decay=decay), has_aux=True
        )
    )
    # First step (ema=None) and decay=0: the value and gradient are DV's (denominator m).
    for ema, decay in [(None, 0.9), (jnp.asarray(7.0), 0.0)]:
        (value, new_ema), grad = value_and_grad(s, ema, decay)
        np.testing.assert_allclose(value, dv_ref, rtol=1e-12)
        np.testing.assert_allclose(new_ema, m, rtol=1e-12)
        np.testing.assert_allclose(grad, grad_ref(m), rtol=1e-10)

    # A moving average: new_ema = decay * ema + (1 - decay) * m, and the gradient divides by it.
    ema, decay = 2.5, 0.75
    ema_ref = decay * ema + (1 - decay) * m
    (value, new_ema), grad = value_and_grad(s, jnp.asarray(ema), decay)
    np.testing.assert_allclose(value, dv_ref, rtol=1e-12)
    np.testing.assert_allclose(new_ema, ema_ref, rtol=1e-12)
    np.testing.assert_allclose(grad, grad_ref(ema_ref), rtol=1e-10)
    # The EMA carries no gradient.
    g_ema = jax.jit(jax.grad(lambda e: entjax.mine_bound(s, e, decay=decay)[1]))(ema)
    assert g_ema == 0.0


def test_critic_bounds_edges_and_precision():
    big = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, -1e4, -1e4]])
    for fn in (entjax.infonce_bound, entjax.dv_bound):
        value, grad = jax.jit(jax.value_and_grad(fn))(big)
        assert np.isfinite(value)
        assert np.all(np.isfinite(grad))
    # NWJ at very negative scores: finite (the exponential underflows to 0).
    value, grad = jax.value_and_grad(entjax.nwj_bound)(-1e4 * jnp.ones((3, 3)))
    np.testing.assert_allclose(value, -1e4)
    assert np.all(np.isfinite(grad))
    # bf16 scores are computed and returned in float32.
    s16 = jnp.asarray(np.arange(9.0).reshape(3, 3) / 4, jnp.bfloat16)
    for fn in (entjax.infonce_bound, entjax.nwj_bound, entjax.dv_bound):
        out = fn(s16)
        assert out.dtype == jnp.float32
        np.testing.assert_allclose(out, fn(s16.astype(jnp.float64)), rtol=1e-6, atol=1e-6)


def test_critic_bound_errors():
    with pytest.raises(ValueError, match="square"):
        entjax.infonce_bound(jnp.zeros((3, 4)))
    with pytest.raises(ValueError, match="rank >= 2"):
        entjax.dv_bound(jnp.zeros(3))
    with pytest.raises(ValueError, match="too few samples"):
        entjax.nwj_bound(jnp.zeros((1, 1)))
    with pytest.raises(ValueError, match="too few samples"):
        entjax.mine_bound(jnp.zeros((1, 1)), None)
    with pytest.raises(TypeError, match="scores"):
        entjax.dv_bound(jnp.zeros((3, 3), jnp.int32))
    with pytest.raises(ValueError, match="decay"):
        entjax.mine_bound(jnp.zeros((3, 3)), 1.0, decay=1.5)


# --------------------------------------------------------------------------------------------
# k-NN entropy.


def kl_entropy_reference(x: np.ndarray, k: int, norm: str) -> float:
    n, d = x.shape
    p = 2 if norm == "euclidean" else np.inf
    eps = cKDTree(x).query(x, k=k + 1, p=p)[0][:, k]
    if norm == "euclidean":
        log_vd = 0.5 * d * np.log(np.pi) - special.gammaln(0.5 * d + 1)
    else:
        log_vd = d * np.log(2.0)
    return special.digamma(n) - special.digamma(k) + log_vd + d * np.mean(np.log(eps))


_knn = jax.jit(entjax.knn_entropy, static_argnames=("k", "norm"))


@pytest.mark.parametrize("norm", ["euclidean", "max"])
@pytest.mark.parametrize(("dim", "k"), [(1, 3), (3, 1), (3, 4)])
def test_knn_entropy_matches_kdtree_reference(rng, norm, dim, k):
    x = rng.standard_normal((300, dim)) * np.array([1.0, 0.3, 2.0])[:dim]
    np.testing.assert_allclose(
        _knn(x, k=k, norm=norm), kl_entropy_reference(x, k, norm), rtol=1e-10
    )


def test_knn_entropy_closed_forms():
    rng = np.random.default_rng(11)
    # Uniform on [0, 1]^d has H = 0. Four datasets of 2000 (a batch axis), averaged; in d = 2,
    # k = 1 keeps the estimator's boundary bias below the tolerance (k = 3 is biased by ~0.03).
    u1 = rng.uniform(size=(4, 2000, 1))
    u2 = rng.uniform(size=(4, 2000, 2))
    assert abs(float(jnp.mean(_knn(u1, k=3, norm="euclidean")))) < 0.05
    assert abs(float(jnp.mean(_knn(u2, k=1, norm="euclidean")))) < 0.05
    # Gaussian with covariance Σ: H = ½ log((2πe)^d |Σ|).
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    g = rng.multivariate_normal(np.zeros(2), cov, size=2000)
    true = 0.5 * np.log((2 * np.pi * np.e) ** 2 * np.linalg.det(cov))
    for norm in ("euclidean", "max"):
        est = float(_knn(g, k=3, norm=norm))
        assert abs(est - true) < 0.05, (norm, est, true)


def test_knn_entropy_gradient_matches_finite_differences(rng):
    x = rng.standard_normal((40, 2))
    jax.test_util.check_grads(
        jax.jit(lambda x: entjax.knn_entropy(x, k=2)), (x,), order=1, modes=("rev",), eps=1e-6
    )


def test_knn_entropy_errors():
    with pytest.raises(ValueError, match="k` must be smaller"):
        entjax.knn_entropy(jnp.zeros((3, 2)), k=3)
    with pytest.raises(ValueError, match="too few samples"):
        entjax.knn_entropy(jnp.zeros((1, 2)), k=1)
    with pytest.raises(ValueError, match=r"\[\.\.\., num_samples, dim\]"):
        entjax.knn_entropy(jnp.zeros(10))
    with pytest.raises(ValueError, match="k"):
        entjax.knn_entropy(jnp.zeros((10, 2)), k=0)
    with pytest.raises(TypeError, match="static"):
        entjax.knn_entropy(jnp.zeros((10, 2)), k=2.5)
    with pytest.raises(ValueError, match="norm"):
        entjax.knn_entropy(jnp.zeros((10, 2)), norm="l1")
    with pytest.raises(TypeError, match="samples"):
        entjax.knn_entropy(jnp.zeros((10, 2), jnp.int32))


# --------------------------------------------------------------------------------------------
# KSG.


def ksg_reference(x: np.ndarray, y: np.ndarray, k: int) -> float:
    n = x.shape[0]
    z = np.hstack([x, y])
    eps = cKDTree(z).query(z, k=k + 1, p=np.inf)[0][:, k]
    radius = np.nextafter(eps, 0)  # strictly within eps
    n_x = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True) - 1
    n_y = cKDTree(y).query_ball_point(y, radius, p=np.inf, return_length=True) - 1
    return (
        special.digamma(k)
        + special.digamma(n)
        - np.mean(special.digamma(n_x + 1) + special.digamma(n_y + 1))
    )


_ksg = jax.jit(entjax.ksg_mutual_information, static_argnames="k")


@pytest.mark.parametrize(("dx", "dy", "k"), [(1, 1, 3), (2, 3, 1), (2, 2, 5)])
def test_ksg_matches_kdtree_reference(rng, dx, dy, k):
    x = rng.standard_normal((300, dx))
    y = x[:, :1] ** 2 + 0.5 * rng.standard_normal((300, dy))
    np.testing.assert_allclose(_ksg(x, y, k=k), ksg_reference(x, y, k), rtol=1e-10)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_ksg_correlated_gaussians(rho, dim):
    """n = 2000, mean of four independent datasets (a batch axis) vs I = -d/2 log(1 - rho²).

    The single-dataset standard deviation is ~0.015-0.03 nats here, so four are averaged; the
    tolerance is 5% or 0.03 nats, whichever is larger (about 3 standard errors for small I).
    """
    rng = np.random.default_rng(int(100 * rho) + dim)
    x, y = gaussian_pairs(rng, (4, 2000, dim), rho)
    est = float(jnp.mean(_ksg(x, y)))
    true = gaussian_mi(rho, dim)
    assert abs(est - true) < max(0.05 * true, 0.03), (est, true)


def test_ksg_independent_bits_and_no_retrace(rng):
    x, y = rng.standard_normal((2, 2, 500, 2))
    counted = chex.assert_max_traces(n=1)(lambda x, y: entjax.ksg_mutual_information(x, y, base=2))
    fn = jax.jit(counted)
    est = fn(x, y)
    assert est.shape == (2,)
    assert np.all(np.abs(est) < 0.03 / np.log(2))
    fn(y, x)  # same shapes: no second trace
    np.testing.assert_allclose(est, [ksg_reference(x[i], y[i], 3) / np.log(2) for i in range(2)])
    # Zero gradient (piecewise constant) rather than NaN.
    g = jax.grad(lambda x: entjax.ksg_mutual_information(x, y[0]))(x[0])
    assert np.all(g == 0)


def test_ksg_errors():
    x = jnp.zeros((5, 1))
    with pytest.raises(ValueError, match="k` must be smaller"):
        entjax.ksg_mutual_information(x, x, k=5)
    with pytest.raises(ValueError, match="same number"):
        entjax.ksg_mutual_information(x, jnp.zeros((6, 1)), k=2)
    with pytest.raises(ValueError, match="too few samples"):
        entjax.ksg_mutual_information(jnp.zeros((1, 1)), jnp.zeros((1, 1)), k=1)
    with pytest.raises(TypeError, match="`y`"):
        entjax.ksg_mutual_information(x, jnp.zeros((5, 1), jnp.int32), k=2)


# --------------------------------------------------------------------------------------------
# Binning.


def plugin_entropy(rows: np.ndarray) -> float:
    _, counts = np.unique(rows, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


_binned = jax.jit(entjax.binned_mutual_information, static_argnames=("num_bins", "value_range"))


@pytest.mark.parametrize("num_bins", [3, 30])
def test_binned_mi_of_invertible_affine_map_is_binned_input_entropy(rng, num_bins):
    """T = a X + b (a > 0) is invertible and deterministic: I(X;T) = H(T_binned) = H(X_binned),
    with equal-width bins over each one's observed range (numpy.histogram's default)."""
    x = rng.standard_normal(500)
    t = 3.0 * x - 1.0
    counts, _ = np.histogram(x, bins=num_bins)
    p = counts[counts > 0] / x.size
    ref = -np.sum(p * np.log(p))
    est = _binned(jnp.arange(500), t[:, None], num_bins=num_bins)
    np.testing.assert_allclose(est, ref, rtol=1e-12)


def test_binned_mi_multi_unit_matches_histogramdd(rng):
    x = rng.standard_normal((400, 2))
    t = np.tanh(x @ np.array([[1.0, 0.5], [-0.3, 2.0]]))
    edges = np.linspace(t.min(), t.max(), 11)  # one range for the whole layer
    counts, _ = np.histogramdd(t, bins=[edges, edges])
    p = counts[counts > 0] / 400
    ref = -np.sum(p * np.log(p))
    bits = jax.jit(
        lambda t: entjax.binned_mutual_information(jnp.arange(400), t, num_bins=10, base=2)
    )(t)
    np.testing.assert_allclose(bits, ref / np.log(2), rtol=1e-12)


def test_binned_mi_with_labels_matches_plugin_reference(rng):
    """I(T;Y) with labels: H(Y) + H(T_b) - H(Y, T_b) from numpy counts."""
    labels = rng.integers(0, 3, size=600)
    t = labels[:, None] + rng.normal(scale=0.7, size=(600, 3))
    lo, hi = -1.0, 3.0
    codes = np.clip(np.floor((t - lo) / (hi - lo) * 5), 0, 4)
    ref = (
        plugin_entropy(labels[:, None])
        + plugin_entropy(codes)
        - plugin_entropy(np.column_stack([labels, codes]))
    )
    est = _binned(jnp.asarray(labels), t, num_bins=5, value_range=(lo, hi))
    np.testing.assert_allclose(est, ref, rtol=1e-12)
    assert 0.0 < est <= np.log(3) + 1e-12


def test_binned_mi_bin_width_dependence(rng):
    """The Saxe et al. critique: fine bins give log n for any injective map, one bin gives 0."""
    n = 256
    t = rng.standard_normal((n, 4))
    ids = jnp.arange(n)
    np.testing.assert_allclose(_binned(ids, t, num_bins=100_000), np.log(n), rtol=1e-12)
    assert _binned(ids, t, num_bins=1) == 0.0
    mid = float(_binned(ids, t, num_bins=3))
    assert 0.5 < mid < np.log(n) - 0.5
    # Constant activations (a dead layer) give exactly 0 with zero gradient; leading axes are
    # batch axes.
    batched = jax.jit(
        jax.value_and_grad(
            lambda t: jnp.sum(
                entjax.binned_mutual_information(jnp.stack([ids, ids]), t, num_bins=3)
                * jnp.array([1.0, 1.0])
            )
        )
    )
    total, grad = batched(np.stack([t, np.ones((n, 4))]))
    np.testing.assert_allclose(total, mid, rtol=1e-12)
    assert np.all(grad == 0)


def test_binned_mi_errors():
    t = jnp.zeros((5, 2))
    with pytest.raises(TypeError, match="`x`"):
        entjax.binned_mutual_information(jnp.zeros(5), t)
    with pytest.raises(ValueError, match="`x` has shape"):
        entjax.binned_mutual_information(jnp.arange(4), t)
    with pytest.raises(ValueError, match="value_range"):
        entjax.binned_mutual_information(jnp.arange(5), t, value_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="num_bins"):
        entjax.binned_mutual_information(jnp.arange(5), t, num_bins=0)


# --------------------------------------------------------------------------------------------
# Pairwise-distance (kernel) bounds for T = h(X) + noise.


def test_kernel_bounds_bracket_the_true_mi_of_a_gaussian_mixture():
    """1-D, X uniform on 5 points: I(X;T) = H(T) - ½ log(2πeσ²), H(T) by quadrature."""
    h = np.array([[-2.0], [-0.5], [0.0], [0.7], [3.0]])
    sigma = 0.8
    grid = np.linspace(-12, 13, 200_001)
    dens = np.mean(
        np.exp(-((grid[None] - h) ** 2) / (2 * sigma**2)) / np.sqrt(2 * np.pi * sigma**2), 0
    )
    h_t = -np.sum(special.xlogy(dens, dens)) * (grid[1] - grid[0])
    true = h_t - 0.5 * np.log(2 * np.pi * np.e * sigma**2)
    upper = jax.jit(lambda h: entjax.kernel_mi_upper_bound(h, noise_std=sigma))(h)
    lower = jax.jit(lambda h: entjax.kernel_mi_lower_bound(h, noise_std=sigma))(h)
    assert lower < true < upper, (lower, true, upper)
    assert upper - lower < 0.5
    # Written-out reference for the upper bound.
    sq = (h - h.T) ** 2
    ref = -np.mean(special.logsumexp(-sq / (2 * sigma**2), axis=1) - np.log(5))
    np.testing.assert_allclose(upper, ref, rtol=1e-12)


def test_kernel_bounds_limits_and_gradients(rng):
    # The noise level may be traced (e.g. learned): one compiled function for every sigma.
    @jax.jit
    def bounds(h, sigma):
        return (
            entjax.kernel_mi_upper_bound(h, noise_std=sigma),
            entjax.kernel_mi_lower_bound(h, noise_std=sigma),
            entjax.kernel_mi_upper_bound(h, noise_std=sigma, base=2),
        )

    far = rng.standard_normal((8, 3)) * 1e3
    np.testing.assert_allclose(bounds(far, 1.0), [np.log(8), np.log(8), 3.0], rtol=1e-9)
    np.testing.assert_allclose(bounds(np.zeros((8, 3)), 1.0), [0.0, 0.0, 0.0], atol=1e-12)
    h = rng.standard_normal((8, 3))
    jax.test_util.check_grads(lambda h: bounds(h, 0.5)[0], (h,), order=1, modes=("rev",))
    with pytest.raises(ValueError, match="noise_std"):
        entjax.kernel_mi_upper_bound(h, noise_std=0.0)
