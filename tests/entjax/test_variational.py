"""reparameterize, elbo and iwae_bound on a linear-Gaussian model with closed-form log p(x).

Model: z ~ N(0, 1), x | z ~ N(a z + b, s^2), so p(x) = N(b, a^2 + s^2) and the exact posterior
is Gaussian. References are written out in numpy/scipy; Monte-Carlo comparisons use seeded
samples and tolerances of a few standard errors.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sps
import scipy.stats

import entjax

A, B, S, X = 2.0, 0.5, 0.7, 1.8
LOG_PX = float(scipy.stats.norm.logpdf(X, B, np.sqrt(A**2 + S**2)))
POST_VAR = 1.0 / (1.0 + A**2 / S**2)
POST_MEAN = POST_VAR * A * (X - B) / S**2
# A deliberately poor Gaussian posterior: shifted mean, inflated variance.
Q_MEAN, Q_VAR = POST_MEAN + 0.6, 2.5 * POST_VAR


def log_normal(x, mean, var):
    return -0.5 * (jnp.log(2 * jnp.pi * var) + (x - mean) ** 2 / var)


def log_lik(z):
    return log_normal(X, A * z + B, S**2)


def np_elbo(m, v):
    # E_q log p(x|z) = -1/2 log(2 pi s^2) - ((x - b - a m)^2 + a^2 v) / (2 s^2);
    # KL(N(m, v) || N(0, 1)) = (v + m^2 - 1 - log v) / 2.
    e_ll = -0.5 * np.log(2 * np.pi * S**2) - ((X - B - A * m) ** 2 + A**2 * v) / (2 * S**2)
    kl = 0.5 * (v + m**2 - 1 - np.log(v))
    return e_ll - kl, e_ll, kl


def test_closed_form_references_are_consistent():
    # The ELBO of the exact posterior is log p(x); any other q is strictly below it.
    assert np_elbo(POST_MEAN, POST_VAR)[0] == pytest.approx(LOG_PX, abs=1e-12)
    assert np_elbo(Q_MEAN, Q_VAR)[0] < LOG_PX - 0.1


# ---------------------------------------------------------------------------------------------
# reparameterize


def test_reparameterize_moments_and_gradients():
    mean, log_var = jnp.array([1.0, -2.0]), jnp.log(jnp.array([0.25, 4.0]))
    f = jax.jit(functools.partial(entjax.reparameterize, num_samples=50_000))
    z = np.asarray(f(jax.random.key(0), mean, log_var))
    assert z.shape == (50_000, 2)
    se_mean = np.sqrt(np.exp(log_var) / len(z))
    assert np.all(np.abs(z.mean(0) - mean) < 4 * se_mean)
    np.testing.assert_allclose(z.var(0), np.exp(log_var), rtol=0.03)
    # Same key, same samples; the noise is reproducible.
    np.testing.assert_array_equal(z, f(jax.random.key(0), mean, log_var))
    # Pathwise gradients: dz/dmean = 1 and dz/dlog_var = (z - mean) / 2.
    key = jax.random.key(1)
    g_mean, g_lv = jax.jit(
        jax.grad(lambda m, v: entjax.reparameterize(key, m, v).sum(), argnums=(0, 1))
    )(mean, log_var)
    z1 = entjax.reparameterize(key, mean, log_var)
    np.testing.assert_allclose(g_mean, 1.0)
    np.testing.assert_allclose(g_lv, 0.5 * (z1 - mean), rtol=1e-6)


def test_reparameterize_shapes_dtypes_and_errors():
    key = jax.random.key(0)
    z = entjax.reparameterize(key, jnp.zeros((3, 1), jnp.bfloat16), jnp.zeros(4, jnp.bfloat16))
    assert z.shape == (3, 4)
    assert z.dtype == jnp.float32
    z = entjax.reparameterize(key, jnp.zeros(2, jnp.float32), jnp.zeros(2, jnp.float32))
    assert z.dtype == jnp.float32
    with pytest.raises(ValueError, match="num_samples"):
        entjax.reparameterize(key, jnp.zeros(2), jnp.zeros(2), num_samples=0)
    with pytest.raises(TypeError, match="log_var"):
        entjax.reparameterize(key, jnp.zeros(2), jnp.zeros(2, jnp.int32))


# ---------------------------------------------------------------------------------------------
# elbo


def _samples(key, mean, var, n):
    return entjax.reparameterize(key, jnp.array([mean]), jnp.log(jnp.array([var])), num_samples=n)


@jax.jit
def _analytic_elbo(key):
    z = _samples(key, Q_MEAN, Q_VAR, 100_000)  # [n, 1]
    ll = log_lik(z[:, 0])
    return entjax.elbo(ll, mean=jnp.array([Q_MEAN]), log_var=jnp.log(jnp.array([Q_VAR]))), ll


def test_elbo_analytic_path_matches_closed_form():
    out, ll = _analytic_elbo(jax.random.key(0))
    ref, ref_ll, ref_kl = np_elbo(Q_MEAN, Q_VAR)
    se = float(jnp.std(ll)) / np.sqrt(ll.shape[0])
    assert out.elbo.shape == ()
    np.testing.assert_allclose(out.kl, ref_kl, rtol=1e-12)  # analytic: exact
    assert abs(float(out.log_likelihood) - ref_ll) < 4 * se
    assert abs(float(out.elbo) - ref) < 4 * se
    np.testing.assert_allclose(out.elbo, out.log_likelihood - out.kl, rtol=1e-12)
    assert float(out.elbo) < LOG_PX


def test_elbo_monte_carlo_path_with_callables_matches_closed_form():
    @jax.jit
    def run(key):
        z = _samples(key, Q_MEAN, Q_VAR, 100_000)[:, 0]
        return entjax.elbo(
            log_lik(z),
            samples=z,
            log_q=lambda z: log_normal(z, Q_MEAN, Q_VAR),
            log_prior=lambda z: log_normal(z, 0.0, 1.0),
        ), log_lik(z) + log_normal(z, 0.0, 1.0) - log_normal(z, Q_MEAN, Q_VAR)

    out, per_sample = run(jax.random.key(1))
    se = float(jnp.std(per_sample)) / np.sqrt(per_sample.shape[0])
    ref, _, ref_kl = np_elbo(Q_MEAN, Q_VAR)
    assert abs(float(out.elbo) - ref) < 4 * se
    # The MC KL is an unbiased estimate of the closed-form KL.
    assert abs(float(out.kl) - ref_kl) < 0.02


def test_elbo_equals_log_px_for_the_exact_posterior():
    z = _samples(jax.random.key(2), POST_MEAN, POST_VAR, 16)[:, 0]
    # Monte-Carlo path: log p(x, z) - log q(z) = log p(x) for every single sample.
    mc = jax.jit(entjax.elbo)(
        log_lik(z),
        log_q=log_normal(z, POST_MEAN, POST_VAR),
        log_prior=log_normal(z, 0.0, 1.0),
    )
    np.testing.assert_allclose(mc.elbo, LOG_PX, rtol=1e-12)
    single = entjax.elbo(
        log_lik(z[0]),
        log_q=log_normal(z[0], POST_MEAN, POST_VAR),
        log_prior=log_normal(z[0], 0.0, 1.0),
        sample_axis=None,
    )
    np.testing.assert_allclose(single.elbo, LOG_PX, rtol=1e-12)
    # Analytic path: unbiased for log p(x).
    zz = _samples(jax.random.key(3), POST_MEAN, POST_VAR, 100_000)[:, 0]
    ll = log_lik(zz)
    an = entjax.elbo(ll, mean=jnp.array([POST_MEAN]), log_var=jnp.log(jnp.array([POST_VAR])))
    se = float(jnp.std(ll)) / np.sqrt(ll.shape[0])
    assert abs(float(an.elbo) - LOG_PX) < 4 * se


def test_elbo_batched_with_prior_and_errors(rng):
    # Batch of 3 examples, 2 latent dims, 5 samples; analytic KL against a non-standard prior.
    m, lv = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    ll = rng.normal(size=(5, 3))
    out = entjax.elbo(ll, mean=m, log_var=lv, prior_mean=0.5, prior_log_var=-1.0)
    s2, t2 = np.exp(lv), np.exp(-1.0)
    kl = (0.5 * np.log(t2 / s2) + (s2 + (m - 0.5) ** 2) / (2 * t2) - 0.5).sum(-1)
    np.testing.assert_allclose(out.kl, kl, rtol=1e-12)
    np.testing.assert_allclose(out.elbo, ll.mean(0) - kl, rtol=1e-12)
    with pytest.raises(ValueError, match="either"):
        entjax.elbo(ll)
    with pytest.raises(ValueError, match="either"):
        entjax.elbo(ll, mean=m, log_var=lv, log_q=ll, log_prior=ll)
    with pytest.raises(ValueError, match="batch shape"):
        entjax.elbo(ll, mean=m[:2], log_var=lv[:2])
    with pytest.raises(ValueError, match="samples"):
        entjax.elbo(ll, log_q=lambda z: z, log_prior=ll)


# ---------------------------------------------------------------------------------------------
# iwae_bound


def test_iwae_matches_logsumexp_reference(rng):
    lw = rng.normal(size=(7, 3)) * 5
    lw[:, 0] += 1e4
    lw[:, 1] -= 1e4
    f = jax.jit(entjax.iwae_bound, static_argnames="axis")
    np.testing.assert_allclose(f(lw), sps.logsumexp(lw, axis=0) - np.log(7), rtol=1e-12)
    np.testing.assert_allclose(f(lw.T, axis=1), sps.logsumexp(lw, axis=0) - np.log(7), rtol=1e-12)
    # Gradient: the self-normalised importance weights.
    g = jax.grad(lambda x: entjax.iwae_bound(x).sum())(lw)
    np.testing.assert_allclose(g, sps.softmax(lw, axis=0), rtol=1e-10)
    # where: the bound over the kept samples only.
    where = np.zeros((7, 3), bool)
    where[:4] = True
    np.testing.assert_allclose(
        f(lw, where=where), sps.logsumexp(lw[:4], axis=0) - np.log(4), rtol=1e-12
    )


def _iwae_replicates(key, k, reps, mean, var):
    z = _samples(key, mean, var, reps * k)[:, 0].reshape(reps, k)
    log_w = log_lik(z) + log_normal(z, 0.0, 1.0) - log_normal(z, mean, var)
    return entjax.iwae_bound(log_w, axis=1)


@pytest.mark.parametrize(("mean", "var"), [(Q_MEAN, Q_VAR), (POST_MEAN + 0.3, 0.5 * POST_VAR)])
def test_elbo_le_iwae_k_le_log_px_and_increasing_in_k(mean, var):
    reps = 4000
    run = jax.jit(_iwae_replicates, static_argnums=(1, 2))
    stats = {}
    for i, k in enumerate([1, 4, 16, 64]):
        b = np.asarray(run(jax.random.key(10 + i), k, reps, mean, var))
        stats[k] = (b.mean(), b.std() / np.sqrt(reps))
    ref_elbo = np_elbo(mean, var)[0]
    # IWAE_1 is the ELBO (in expectation).
    assert abs(stats[1][0] - ref_elbo) < 4 * stats[1][1]
    ks = sorted(stats)
    for lo, hi in itertools.pairwise(ks):
        (m_lo, se_lo), (m_hi, se_hi) = stats[lo], stats[hi]
        assert m_hi - m_lo > 3 * np.hypot(se_lo, se_hi), (lo, hi, stats)
    for k in ks:
        assert stats[k][0] < LOG_PX + 3 * stats[k][1], (k, stats[k], LOG_PX)
    # The gap closes: with 64 samples it is under a quarter of the ELBO's gap.
    assert LOG_PX - stats[64][0] < 0.25 * (LOG_PX - ref_elbo) + 3 * stats[64][1]
