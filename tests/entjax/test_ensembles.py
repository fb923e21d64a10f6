"""Tests for entjax._ensembles against numpy/scipy references written out independently."""

import functools
import math

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from hypothesis import given, settings, strategies as st

import entjax


def np_softmax(x):
    return scipy.special.softmax(np.asarray(x, np.float64), axis=-1)


def np_decomposition(member_logits):
    """Reference on ``[members, ..., classes]``: entropies of probabilities with scipy."""
    p = np_softmax(member_logits)
    mean = p.mean(axis=0)
    total = scipy.stats.entropy(mean, axis=-1)
    aleatoric = scipy.stats.entropy(p, axis=-1).mean(axis=0)
    return total, aleatoric, total - aleatoric


def np_pairwise_kl(member_logits):
    p = np_softmax(member_logits)
    m = p.shape[0]
    if m < 2:
        return np.zeros(p.shape[1:-1])
    acc = np.zeros(p.shape[1:-1])
    for i in range(m):
        for j in range(m):
            if i != j:
                acc = acc + scipy.stats.entropy(p[i], p[j], axis=-1)  # KL(p_i || p_j)
    return acc / (m * (m - 1))


uncertainty = jax.jit(entjax.ensemble_uncertainty, static_argnames=("axis", "class_axis", "base"))
log_probs = jax.jit(entjax.ensemble_log_probs, static_argnames=("axis", "class_axis"))
pairwise = jax.jit(entjax.pairwise_kl, static_argnames=("axis", "class_axis", "base"))


def _sum_all(logits, **kw):
    u = entjax.ensemble_uncertainty(logits, **kw)
    return u.total.sum() + u.aleatoric.sum() + u.epistemic.sum()


grad_uncertainty = jax.jit(jax.grad(_sum_all))


@pytest.mark.parametrize(("axis", "class_axis"), [(0, -1), (1, 0), (2, 1)])
def test_decomposition_matches_numpy(rng, axis, class_axis):
    canonical = rng.normal(scale=2.0, size=(5, 7, 4))  # [members, batch, classes]
    logits = np.moveaxis(canonical, (0, -1), (axis, class_axis))
    u = uncertainty(jnp.asarray(logits), axis=axis, class_axis=class_axis)
    total, aleatoric, epistemic = np_decomposition(canonical)
    np.testing.assert_allclose(u.total, total, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(u.aleatoric, aleatoric, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(u.epistemic, epistemic, rtol=1e-8, atol=1e-12)

    expected_lp = np.log(np_softmax(canonical).mean(axis=0))  # [batch, classes]
    c = class_axis % 3
    c_out = c if c < axis % 3 else c - 1
    lp = log_probs(jnp.asarray(logits), axis=axis, class_axis=class_axis)
    np.testing.assert_allclose(lp, np.moveaxis(expected_lp, -1, c_out), rtol=1e-12, atol=1e-12)

    pk = pairwise(jnp.asarray(logits), axis=axis, class_axis=class_axis)
    np.testing.assert_allclose(pk, np_pairwise_kl(canonical), rtol=1e-10, atol=1e-12)


def test_bits(rng):
    logits = jnp.asarray(rng.normal(size=(4, 5, 6)))
    nats, bits = uncertainty(logits), uncertainty(logits, base=2)
    for a, b in zip(nats, bits, strict=True):
        np.testing.assert_allclose(b, np.asarray(a) / math.log(2), rtol=1e-12)
    np.testing.assert_allclose(
        pairwise(logits, base=2), np.asarray(pairwise(logits)) / math.log(2), rtol=1e-12
    )


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, (4, 5, 6), elements=st.floats(-30.0, 30.0, width=32)))
def test_epistemic_nonnegative_and_total_bounded(logits):
    u = uncertainty(jnp.asarray(logits))
    num_classes = logits.shape[-1]
    assert np.all(np.asarray(u.epistemic) >= 0.0)
    assert np.all(np.asarray(u.aleatoric) >= -1e-6)
    assert np.all(np.asarray(u.total) <= math.log(num_classes) + 1e-5)
    np.testing.assert_allclose(
        np.asarray(u.aleatoric) + np.asarray(u.epistemic), u.total, rtol=1e-4, atol=1e-4
    )
    assert np.all(np.asarray(pairwise(jnp.asarray(logits))) >= 0.0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
def test_identical_members_exactly_zero(rng, dtype):
    scale = np.array([1.0, 1.0, 30.0, 30.0, 1e4])[:, None]
    one = rng.normal(size=(1, 5, 6)) * scale
    one[0, 0, 2] = -np.inf
    logits = jnp.asarray(np.repeat(one, 4, axis=0), dtype)
    u = uncertainty(logits)
    assert np.all(np.asarray(u.epistemic) == 0.0)
    assert np.all(np.asarray(pairwise(logits)) == 0.0)
    # And the mean predictive is the member's own distribution.
    expected = np.asarray(jax.nn.log_softmax(logits[0].astype(jnp.float32)), np.float64)
    np.testing.assert_allclose(log_probs(logits), expected, rtol=1e-5, atol=1e-5)


def test_single_member():
    logits = jnp.array([[[1.0, 2.0, -0.5]]])  # [1 member, 1 example, 3 classes]
    u = uncertainty(logits)
    np.testing.assert_allclose(u.total, scipy.stats.entropy(np_softmax([1.0, 2.0, -0.5])))
    np.testing.assert_allclose(u.aleatoric, u.total, rtol=1e-12)
    assert float(u.epistemic[0]) == 0.0
    assert float(pairwise(logits)[0]) == 0.0


def test_confident_disagreement_is_all_epistemic():
    # Two members, each certain of a different class: total = log 2, aleatoric = 0.
    logits = jnp.array([[1e4, -1e4], [-1e4, 1e4]], jnp.float32)
    u = uncertainty(logits)
    np.testing.assert_allclose([u.total, u.aleatoric, u.epistemic], [math.log(2), 0, math.log(2)])
    g = grad_uncertainty(logits)
    assert np.all(np.isfinite(g))


def test_neg_inf_classes_finite_values_and_gradients(rng):
    logits = rng.normal(size=(4, 5, 6))
    logits[:, :, 1] = -np.inf  # class 1 ruled out by every member
    logits[0, 0, 3] = -np.inf  # class 3 ruled out by member 0 only, on example 0
    logits[:, 2, :] = -np.inf  # example 2: no valid class anywhere
    x = jnp.asarray(logits)
    u = uncertainty(x)
    for field in u:
        assert np.all(np.isfinite(field))
    # Reference: scipy's softmax/entropy give probability 0 and 0 log 0 = 0 for -inf logits.
    ok = [0, 1, 3, 4]
    total, aleatoric, epistemic = np_decomposition(logits[:, ok])
    np.testing.assert_allclose(u.total[np.array(ok)], total, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(u.aleatoric[np.array(ok)], aleatoric, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(u.epistemic[np.array(ok)], epistemic, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal([u.total[2], u.aleatoric[2], u.epistemic[2]], [0.0, 0.0, 0.0])
    g = grad_uncertainty(x)
    assert np.all(np.isfinite(g))
    assert np.all(np.asarray(g)[:, :, 1] == 0.0)
    assert np.all(np.asarray(g)[:, 2, :] == 0.0)

    lp = np.asarray(log_probs(x))
    assert np.all(lp[:, 1] == -np.inf)
    assert np.all(lp[2] == -np.inf)
    np.testing.assert_allclose(
        np.exp(lp[ok]), np_softmax(logits[:, ok]).mean(axis=0), rtol=1e-12, atol=1e-15
    )

    pk = np.asarray(pairwise(x))
    assert pk[0] == np.inf  # member 0 rules out a class that the others predict
    assert pk[2] == 0.0
    np.testing.assert_allclose(pk[[1, 3, 4]], np_pairwise_kl(logits[:, [1, 3, 4]]), rtol=1e-10)
    gk = jax.jit(jax.grad(lambda z: entjax.pairwise_kl(z)[1:].sum()))(x)
    assert np.all(np.isfinite(gk))


def test_large_logits_match_float64_reference():
    canonical = np.array(
        [
            [[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]],
            [[1e4 - 1.0, -1e4, 1e4], [3.0, -1e4, 1e4]],
            [[-1e4, -1e4, 1e4], [0.0, 0.0, 0.0]],
        ]
    )  # [3 members, 2 examples, 3 classes]
    u = uncertainty(jnp.asarray(canonical, jnp.float32))
    total, aleatoric, epistemic = np_decomposition(canonical)
    for got, want in zip(u, (total, aleatoric, epistemic), strict=True):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    g = grad_uncertainty(jnp.asarray(canonical, jnp.float32))
    assert np.all(np.isfinite(g))
    gk = jax.jit(jax.grad(lambda z: entjax.pairwise_kl(z).sum()))(
        jnp.asarray(canonical, jnp.float32)
    )
    assert np.all(np.isfinite(gk))


def test_gradient_matches_finite_differences(rng):
    x = jnp.asarray(rng.normal(size=(3, 2, 4)))

    def fn(z):  # distinct weights so that an error in any one term shows
        u = entjax.ensemble_uncertainty(z)
        return (
            u.epistemic.sum()
            + 0.3 * u.total.sum()
            + 0.7 * entjax.pairwise_kl(z).sum()
            + 0.1 * entjax.ensemble_log_probs(z)[:, 1].sum()
        )

    jax.test_util.check_grads(jax.jit(fn), (x,), order=1, modes=("fwd", "rev"))


def test_where_masks(rng):
    logits = rng.normal(size=(4, 5, 6))
    # Shared class mask (no member axis) == dropping the masked classes.
    keep = np.ones((5, 6), bool)
    keep[:, 2] = False
    keep[3, 4] = False
    u = uncertainty(jnp.asarray(logits), where=jnp.asarray(keep))
    for b in range(5):
        ref = np_decomposition(logits[:, b][:, keep[b]])
        np.testing.assert_allclose([u.total[b], u.aleatoric[b], u.epistemic[b]], ref, rtol=1e-9)
    np.testing.assert_allclose(
        pairwise(jnp.asarray(logits), where=jnp.asarray(keep))[3],
        np_pairwise_kl(logits[:, 3][:, keep[3]]),
        rtol=1e-10,
    )
    # Per-example mask: masked examples give 0 with zero gradient.
    rows = jnp.array([True, False, True, True, False])
    u = uncertainty(jnp.asarray(logits), where=rows)
    for field in u:
        np.testing.assert_array_equal(np.asarray(field)[[1, 4]], 0.0)
    ref = np_decomposition(logits[:, [0, 2, 3]])
    np.testing.assert_allclose(u.total[np.array([0, 2, 3])], ref[0], rtol=1e-10)
    g = jax.jit(jax.grad(lambda z: _sum_all(z, where=rows)))(jnp.asarray(logits))
    np.testing.assert_array_equal(np.asarray(g)[:, [1, 4]], 0.0)
    # Per-member mask that drops member 1 entirely == the ensemble without member 1.
    members = np.ones((4, 5, 6), bool)
    members[1] = False
    u = uncertainty(jnp.asarray(logits), where=jnp.asarray(members))
    ref = np_decomposition(logits[[0, 2, 3]])
    for got, want in zip(u, ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        pairwise(jnp.asarray(logits), where=jnp.asarray(members)),
        np_pairwise_kl(logits[[0, 2, 3]]),
        rtol=1e-10,
    )


def test_low_precision_computed_in_float32(rng):
    x = jnp.asarray(rng.normal(size=(4, 5, 6)), jnp.bfloat16)
    u = uncertainty(x)
    assert all(f.dtype == jnp.float32 for f in u)
    assert log_probs(x).dtype == jnp.float32
    assert pairwise(x).dtype == jnp.float32
    ref = np_decomposition(np.asarray(x.astype(jnp.float32), np.float64))
    np.testing.assert_allclose(u.total, ref[0], rtol=1e-5, atol=1e-6)


def test_vmap_and_single_trace(rng):
    logits = jnp.asarray(rng.normal(size=(3, 4, 2, 5)))  # [sets, members, batch, classes]

    @jax.jit
    @chex.assert_max_traces(n=1)
    def batched(z):
        return jax.vmap(functools.partial(entjax.ensemble_uncertainty, axis=0))(z)

    u = batched(logits)
    u = batched(logits + 1.0)  # same shapes: no retrace
    for s in range(3):
        ref = np_decomposition(np.asarray(logits[s]) + 1.0)
        np.testing.assert_allclose(u.total[s], ref[0], rtol=1e-10)
        np.testing.assert_allclose(u.epistemic[s], ref[2], rtol=1e-8, atol=1e-12)
    # The member axis may equally be axis 1 of the unbatched array.
    direct = uncertainty(logits + 1.0, axis=1)
    np.testing.assert_allclose(direct.total, u.total, rtol=1e-12)


def test_trace_time_errors():
    with pytest.raises(TypeError, match="member_logits"):
        entjax.ensemble_uncertainty(jnp.zeros((2, 3), jnp.int32))
    with pytest.raises(ValueError, match="rank >= 2"):
        entjax.ensemble_log_probs(jnp.zeros(3))
    with pytest.raises(ValueError, match="same axis"):
        entjax.pairwise_kl(jnp.zeros((2, 3)), axis=1, class_axis=-1)
    with pytest.raises(ValueError, match="where"):
        entjax.ensemble_uncertainty(jnp.zeros((2, 3, 4, 5)), where=jnp.ones(2, bool))
    with pytest.raises(TypeError, match="where"):
        entjax.ensemble_uncertainty(jnp.zeros((2, 3)), where=jnp.ones(3))
    with pytest.raises(TypeError, match="class_axis"):
        entjax.ensemble_uncertainty(jnp.zeros((2, 3)), class_axis=(0, 1))
