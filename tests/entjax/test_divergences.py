"""KL and Jensen–Shannon divergences against scipy, numpy formulas and optax (reversed order)."""

import functools

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special as sps
import scipy.stats
from hypothesis import given, settings, strategies as st
from jax.test_util import check_grads
from scipy.spatial.distance import jensenshannon

import entjax

PROPERTY = settings(max_examples=30, deadline=None, database=None)

kl = jax.jit(entjax.categorical_kl, static_argnames=("axis", "base"))
js = jax.jit(entjax.js_divergence, static_argnames=("axis", "base"))
cross_entropy = jax.jit(entjax.softmax_cross_entropy)
entropy = jax.jit(entjax.entropy)


def np_log_softmax(x, axis=-1):
    return x - sps.logsumexp(x, axis=axis, keepdims=True)


def np_kl(p, q):
    return np.sum(sps.rel_entr(p, q), -1)


def np_js(p, q):
    m = 0.5 * (p + q)
    return 0.5 * np_kl(p, m) + 0.5 * np_kl(q, m)


# ---------------------------------------------------------------------------------------------
# References.


def test_kl_matches_scipy(rng):
    xp, xq = rng.normal(size=(2, 4, 6)) * 2
    p, q = sps.softmax(xp, -1), sps.softmax(xq, -1)
    got = kl(jnp.asarray(xp), jnp.asarray(xq))
    np.testing.assert_allclose(got, scipy.stats.entropy(p, q, axis=-1), rtol=1e-10)
    np.testing.assert_allclose(got, np_kl(p, q), rtol=1e-10)
    np.testing.assert_allclose(
        kl(jnp.asarray(xp), jnp.asarray(xq), base=2),
        scipy.stats.entropy(p, q, axis=-1, base=2),
        rtol=1e-10,
    )


def test_categorical_kl_is_reversed_optax(rng):
    xp, xq = rng.normal(size=(2, 5, 4)) * 2
    log_p, log_q = np_log_softmax(xp), np_log_softmax(xq)
    p = np.exp(log_p)
    ours = kl(jnp.asarray(log_p), jnp.asarray(log_q))
    # optax.kl_divergence(log_predictions, targets) = KL(targets || predictions).
    np.testing.assert_allclose(
        ours, optax.kl_divergence(jnp.asarray(log_q), jnp.asarray(p)), rtol=1e-10
    )
    # ... and the same-order call is a different number (the trap the docstring warns about).
    naive = optax.kl_divergence(jnp.asarray(log_p), jnp.asarray(np.exp(log_q)))
    assert np.all(np.abs(np.asarray(ours) - np.asarray(naive)) > 1e-3)


@pytest.mark.parametrize(
    ("axis", "where"),
    [(-1, None), (0, None), ((1, 2), None), (-1, "per_logit"), (None, None)],
)
def test_kl_divergence_is_optax_drop_in(rng, axis, where):
    """``entjax.kl_divergence`` = ``optax.kl_divergence`` for optax's call (positional axis
    and where included), and the numpy formula Σ t (log t − log p̂)."""
    x = rng.normal(size=(3, 4, 5)) * 2
    log_pred = x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))
    targets = rng.dirichlet(np.ones(5), size=(3, 4))
    mask = rng.random((3, 4, 5)) < 0.7 if where else None
    args = (jnp.asarray(log_pred), jnp.asarray(targets), axis, None if mask is None else mask)
    ours = entjax.kl_divergence(*args)
    np.testing.assert_allclose(ours, optax.kl_divergence(*args), rtol=1e-12)
    terms = targets * (np.log(targets) - log_pred)
    if mask is not None:
        terms = np.where(mask, terms, 0.0)
    np.testing.assert_allclose(ours, np.sum(terms, axis=axis), rtol=1e-12)


def test_kl_divergence_zero_targets_are_finite_where_optax_is_nan():
    log_pred = jnp.array([[0.0, -jnp.inf, -jnp.inf], [-0.5, -1.5, -2.0]])
    targets = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    ours = entjax.kl_divergence(log_pred, targets)
    assert np.isnan(np.asarray(optax.kl_divergence(log_pred, targets))[0])
    want_1 = 0.5 * (np.log(0.5) + 0.5) + 0.5 * (np.log(0.5) + 1.5)
    np.testing.assert_allclose(ours, [0.0, want_1], rtol=1e-12)
    grads = jax.grad(lambda lp, t: jnp.sum(entjax.kl_divergence(lp, t)), argnums=(0, 1))(
        log_pred, targets
    )
    assert all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(grads[0], -targets, rtol=1e-12)  # d/d log p̂ = -t
    # a target mass on a class of predicted probability 0 is +inf, as in optax
    assert entjax.kl_divergence(jnp.array([0.0, -jnp.inf]), jnp.array([0.5, 0.5])) == np.inf


def test_kl_divergence_rejects_integer_inputs():
    with pytest.raises(TypeError, match="`targets`"):
        entjax.kl_divergence(jnp.zeros(3), jnp.array([1, 0, 0]))


def test_kl_accepts_unnormalised_logits(rng):
    xp, xq = rng.normal(size=(2, 3, 5))
    np.testing.assert_allclose(
        kl(jnp.asarray(xp + 7.0), jnp.asarray(xq - 3.0)),
        np_kl(sps.softmax(xp, -1), sps.softmax(xq, -1)),
        rtol=1e-10,
    )


def test_known_values():
    p, q = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1]))
    assert float(kl(p, q)) == pytest.approx(0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1))
    assert float(kl(p, p)) == 0.0
    disjoint_p = jnp.array([0.0, -jnp.inf])
    disjoint_q = jnp.array([-jnp.inf, 0.0])
    assert float(js(disjoint_p, disjoint_q, base=2)) == pytest.approx(1.0, abs=1e-12)
    assert float(js(disjoint_p, disjoint_q)) == pytest.approx(np.log(2), abs=1e-12)


def test_js_matches_scipy_jensenshannon(rng):
    xp, xq = rng.normal(size=(2, 4, 6)) * 2
    p, q = sps.softmax(xp, -1), sps.softmax(xq, -1)
    got = js(jnp.asarray(xp), jnp.asarray(xq))
    # scipy returns the square root of the divergence.
    np.testing.assert_allclose(got, jensenshannon(p, q, axis=-1) ** 2, rtol=1e-9)
    np.testing.assert_allclose(got, np_js(p, q), rtol=1e-10)
    np.testing.assert_allclose(
        js(jnp.asarray(xp), jnp.asarray(xq), base=2),
        jensenshannon(p, q, axis=-1, base=2) ** 2,
        rtol=1e-9,
    )


def test_js_with_partial_supports_matches_scipy():
    p = np.array([[0.5, 0.5, 0.0, 0.0], [0.2, 0.0, 0.3, 0.5]])
    q = np.array([[0.0, 0.25, 0.25, 0.5], [0.0, 0.6, 0.4, 0.0]])
    with np.errstate(divide="ignore"):
        got = js(jnp.asarray(np.log(p)), jnp.asarray(np.log(q)))
    np.testing.assert_allclose(got, jensenshannon(p, q, axis=-1) ** 2, rtol=1e-9)


def test_where_and_axis(rng):
    xp, xq = rng.normal(size=(2, 3, 4, 5))
    keep = np.array([True, False, True, True, False])
    mask = jnp.asarray(np.broadcast_to(keep, xp.shape))
    for f, ref in ((kl, np_kl), (js, np_js)):
        want = ref(sps.softmax(xp[..., keep], -1), sps.softmax(xq[..., keep], -1))
        np.testing.assert_allclose(
            f(jnp.asarray(xp), jnp.asarray(xq), where=mask), want, rtol=1e-10
        )
        moved = (jnp.asarray(np.moveaxis(xp, -1, 0)), jnp.asarray(np.moveaxis(xq, -1, 0)))
        np.testing.assert_allclose(
            f(*moved, axis=0),
            ref(sps.softmax(xp, -1), sps.softmax(xq, -1)),
            rtol=1e-10,
        )
        flat = ref(sps.softmax(xp.reshape(3, 20), -1), sps.softmax(xq.reshape(3, 20), -1))
        np.testing.assert_allclose(
            f(jnp.asarray(xp), jnp.asarray(xq), axis=(1, 2)), flat, rtol=1e-10
        )


# ---------------------------------------------------------------------------------------------
# Properties.

K = 5
logits_s = hnp.arrays(np.float64, (3, K), elements=st.floats(-15, 15))


@PROPERTY
@given(logits_s, logits_s)
def test_kl_is_cross_entropy_minus_entropy(xp, xq):
    p = sps.softmax(xp, -1)
    d = np.asarray(kl(jnp.asarray(xp), jnp.asarray(xq)))
    assert np.all(d >= 0)
    h_pq = np.asarray(cross_entropy(jnp.asarray(xq), jnp.asarray(p)))
    h_p = np.asarray(entropy(jnp.asarray(xp)))
    np.testing.assert_allclose(d, h_pq - h_p, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        d, np.sum(p * (np_log_softmax(xp) - np_log_softmax(xq)), -1), rtol=1e-8, atol=1e-10
    )


@PROPERTY
@given(logits_s, logits_s)
def test_js_bounded_and_symmetric(xp, xq):
    a = np.asarray(js(jnp.asarray(xp), jnp.asarray(xq)))
    b = np.asarray(js(jnp.asarray(xq), jnp.asarray(xp)))
    assert np.all(a >= 0)
    assert np.all(a <= np.log(2))
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        a, np_js(sps.softmax(xp, -1), sps.softmax(xq, -1)), rtol=1e-8, atol=1e-12
    )
    # JS is at most half of the symmetrised KL... and its base-2 value is at most one bit.
    assert np.all(np.asarray(js(jnp.asarray(xp), jnp.asarray(xq), base=2)) <= 1.0)


@PROPERTY
@given(logits_s)
def test_divergence_from_itself_is_zero(x):
    np.testing.assert_array_equal(kl(jnp.asarray(x), jnp.asarray(x)), 0.0)
    np.testing.assert_allclose(js(jnp.asarray(x), jnp.asarray(x)), 0.0, atol=1e-15)


@PROPERTY
@given(logits_s, logits_s, st.lists(st.booleans(), min_size=K, max_size=K).filter(any))
def test_where_equals_slicing(xp, xq, keep):
    keep = np.array(keep)
    mask = jnp.asarray(np.broadcast_to(keep, xp.shape))
    for f in (kl, js):
        np.testing.assert_allclose(
            f(jnp.asarray(xp), jnp.asarray(xq), where=mask),
            f(jnp.asarray(xp[:, keep]), jnp.asarray(xq[:, keep])),
            rtol=1e-12,
            atol=1e-15,
        )


# ---------------------------------------------------------------------------------------------
# Gradients.


def test_kl_gradient_closed_form(rng):
    # d KL / d p_logits = p * (log p - log q - KL);  d KL / d q_logits = q - p.
    xp, xq = rng.normal(size=(2, 3, 4))
    lp, lq = np_log_softmax(xp), np_log_softmax(xq)
    p, q = np.exp(lp), np.exp(lq)
    d = np.sum(p * (lp - lq), -1, keepdims=True)
    gp, gq = jax.jit(jax.grad(lambda a, b: kl(a, b).sum(), argnums=(0, 1)))(
        jnp.asarray(xp), jnp.asarray(xq)
    )
    np.testing.assert_allclose(gp, p * (lp - lq - d), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gq, q - p, rtol=1e-10, atol=1e-14)


def test_js_gradient_closed_form(rng):
    # d JS / d p_logits = 1/2 * p * (log(p/m) - KL(p||m)).
    xp, xq = rng.normal(size=(2, 3, 4))
    p, q = sps.softmax(xp, -1), sps.softmax(xq, -1)
    m = 0.5 * (p + q)
    lr = np.log(p / m)
    want = 0.5 * p * (lr - np.sum(p * lr, -1, keepdims=True))
    g = jax.jit(jax.grad(lambda a, b: js(a, b).sum()))(jnp.asarray(xp), jnp.asarray(xq))
    np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    "fn",
    [entjax.categorical_kl, entjax.js_divergence, functools.partial(entjax.categorical_kl, base=2)],
)
def test_check_grads(rng, fn):
    xp, xq = (jnp.asarray(a) for a in rng.normal(size=(2, 3, 4)))
    check_grads(jax.jit(fn), (xp, xq), order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-6)
