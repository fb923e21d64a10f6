"""gaussian_kl against the closed form written out in numpy, a Monte-Carlo estimate, and edges."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.test_util import check_grads

import entjax

gaussian_kl = jax.jit(entjax.gaussian_kl, static_argnames=("axis", "base"))


def np_gaussian_kl(m, lv, pm, plv, axis=-1):
    # KL(N(m, s2) || N(pm, t2)) = log(t/s) + (s2 + (m - pm)^2) / (2 t2) - 1/2, per coordinate.
    s2, t2 = np.exp(lv), np.exp(plv)
    per = 0.5 * np.log(t2 / s2) + (s2 + (m - pm) ** 2) / (2 * t2) - 0.5
    return per.sum(axis)


def test_closed_form_matches_numpy(rng):
    m, lv = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    pm, plv = rng.normal(size=(3,)), rng.normal(size=(3,))
    got = gaussian_kl(m, lv, prior_mean=pm, prior_log_var=plv)
    np.testing.assert_allclose(got, np_gaussian_kl(m, lv, pm, plv), rtol=1e-12)
    # Standard-normal prior by default.
    np.testing.assert_allclose(gaussian_kl(m, lv), np_gaussian_kl(m, lv, 0.0, 0.0), rtol=1e-12)


def test_axis_and_base(rng):
    m, lv = rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 5, 2))
    ref = np_gaussian_kl(m, lv, 0.0, 0.0, axis=(1, 2))
    np.testing.assert_allclose(gaussian_kl(m, lv, axis=(1, 2)), ref, rtol=1e-12)
    np.testing.assert_allclose(gaussian_kl(m, lv, axis=(1, 2), base=2), ref / np.log(2), rtol=1e-12)
    np.testing.assert_allclose(
        gaussian_kl(m, lv, axis=None), np_gaussian_kl(m, lv, 0, 0, axis=None), rtol=1e-12
    )


def test_monte_carlo_estimate():
    rng = np.random.default_rng(1)
    m, lv, pm, plv = np.array([0.3, -1.0]), np.array([-0.5, 0.4]), np.array([1.0, 0.0]), 0.2
    n = 200_000
    z = m + np.exp(0.5 * lv) * rng.standard_normal((n, 2))
    log_q = scipy.stats.norm.logpdf(z, m, np.exp(0.5 * lv)).sum(-1)
    log_p = scipy.stats.norm.logpdf(z, pm, np.exp(0.5 * plv)).sum(-1)
    diff = log_q - log_p
    est, se = diff.mean(), diff.std() / np.sqrt(n)
    got = float(gaussian_kl(m, lv, prior_mean=pm, prior_log_var=plv))
    assert abs(got - est) < 4 * se, (got, est, se)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("lv", [-200.0, -30.0, 0.0, 30.0, 200.0])
def test_zero_when_q_equals_p(dtype, lv):
    m = jnp.array([1e3, -2.0, 0.0], dtype)
    log_var = jnp.full(3, lv, dtype)
    kl = gaussian_kl(m, log_var, prior_mean=m, prior_log_var=log_var)
    assert kl.dtype == dtype
    assert float(kl) == 0.0
    g = jax.jit(
        jax.grad(lambda a, b: entjax.gaussian_kl(a, b, prior_mean=m, prior_log_var=log_var), (0, 1))
    )(m, log_var)
    for x in g:
        assert np.all(np.isfinite(x))
        np.testing.assert_allclose(x, 0.0, atol=1e-6)


def test_large_log_variances_float32_stable():
    # exp(±200) over/underflows float32, yet these divergences are finite and exact.
    lv = jnp.array([-200.0, 150.0], jnp.float32)
    plv = jnp.array([-199.0, 151.0], jnp.float32)
    got = gaussian_kl(jnp.zeros(2, jnp.float32), lv, prior_log_var=plv)
    ref = np_gaussian_kl(np.zeros(2), np.float64(lv), 0.0, np.float64(plv))  # float64 exact
    d = np.float64(lv - plv)
    np.testing.assert_allclose(ref, 0.5 * np.sum(np.exp(d) - 1 - d), rtol=1e-12)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    g = jax.grad(lambda v: entjax.gaussian_kl(jnp.zeros(2, jnp.float32), v, prior_log_var=plv))(lv)
    np.testing.assert_allclose(g, 0.5 * np.expm1(np.float64(lv - plv)), rtol=1e-5)
    # Tiny posterior variance against a unit prior: 0.5 * (e^-200 - 1 + 200).
    got = gaussian_kl(jnp.zeros(1, jnp.float32), jnp.full(1, -200.0, jnp.float32))
    np.testing.assert_allclose(got, 99.5, rtol=1e-6)


def test_gradients_match_finite_differences(rng):
    m, lv = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    pm, plv = rng.normal(size=(3,)), rng.normal(size=(3,))
    check_grads(
        jax.jit(lambda a, b, c, d: entjax.gaussian_kl(a, b, prior_mean=c, prior_log_var=d)),
        (m, lv, pm, plv),
        order=2,
        modes=("fwd", "rev"),
    )


def test_bf16_computed_in_float32_and_where(rng):
    m = rng.normal(size=(2, 4))
    kl = gaussian_kl(jnp.asarray(m, jnp.bfloat16), jnp.zeros((2, 4), jnp.bfloat16))
    assert kl.dtype == jnp.float32
    ref = np_gaussian_kl(np.float64(jnp.asarray(m, jnp.bfloat16)), np.zeros((2, 4)), 0.0, 0.0)
    np.testing.assert_allclose(kl, ref, rtol=1e-6)
    where = np.array([True, False, True, False])
    masked = jax.jit(functools.partial(entjax.gaussian_kl, where=where))(m, np.zeros((2, 4)))
    np.testing.assert_allclose(masked, np_gaussian_kl(m[:, where], np.zeros((2, 2)), 0, 0))


def test_shape_and_dtype_errors():
    with pytest.raises(TypeError, match="log_var"):
        entjax.gaussian_kl(jnp.zeros(3), jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="broadcast"):
        entjax.gaussian_kl(jnp.zeros(3), jnp.zeros(4))
