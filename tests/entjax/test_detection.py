"""Tests for entjax._detection and entjax.fit_temperature against scikit-learn, scipy and numpy
references written out independently (brute force where the definition is a combinatorial one).
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.special
from jax.test_util import check_grads
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

import entjax

# --------------------------------------------------------------------------------------------
# Numpy / scikit-learn references.


def finite_ranks(s_in, s_out):
    """Replace ±inf by finite values beyond the data, keeping the order and the ties
    (scikit-learn rejects infinite scores)."""
    s = np.concatenate([s_in, s_out]).astype(np.float64)
    finite = s[np.isfinite(s)]
    lo, hi = (finite.min() - 1, finite.max() + 1) if finite.size else (-1.0, 1.0)
    s = np.where(s == np.inf, hi, np.where(s == -np.inf, lo, s))
    return s[: len(s_in)], s[len(s_in) :]


def sk_metrics(s_in, s_out, tpr=0.95):
    s_in, s_out = finite_ranks(np.asarray(s_in), np.asarray(s_out))
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    s = np.r_[s_in, s_out]
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=False)
    return (
        roc_auc_score(y, s),
        average_precision_score(y, s),
        fpr[tpr_curve >= tpr].min(),
    )


def ceil_fpr(s_in, s_out, tpr):
    """The equivalent threshold form: the ceil(tpr * n_out)-th largest OOD score."""
    threshold = np.sort(s_out)[::-1][math.ceil(tpr * len(s_out)) - 1]
    return np.mean(s_in >= threshold)


def brute_risk(conf, correct):
    """Expected risk curve under uniform random tie-breaking, by enumerating every permutation
    of the examples (each induces a uniformly random order within the tie groups)."""
    conf, err = np.asarray(conf, np.float64), 1.0 - np.asarray(correct, np.float64)
    n = len(conf)
    perms = np.array(list(itertools.permutations(range(n))))
    order = np.take_along_axis(perms, np.argsort(-conf[perms], axis=1, kind="stable"), axis=1)
    return np.mean(np.cumsum(err[order], axis=1), axis=0) / np.arange(1, n + 1)


def sort_risk(conf, correct):
    """Risk curve when all confidences are distinct: a plain sort."""
    err = 1.0 - np.asarray(correct, np.float64)[np.argsort(-np.asarray(conf))]
    return np.cumsum(err) / np.arange(1, len(err) + 1)


def np_max_softmax(logits):
    """1 - max_c p_c as the sum of the other probabilities (no cancellation in float64)."""
    p = np.sort(scipy.special.softmax(np.asarray(logits, np.float64), axis=-1), axis=-1)
    return p[..., :-1].sum(-1)


def np_energy(logits, t):
    return -t * scipy.special.logsumexp(np.asarray(logits, np.float64) / t, axis=-1)


# --------------------------------------------------------------------------------------------
# max_softmax and energy_score.

ms_j = jax.jit(entjax.max_softmax, static_argnames="axis")
en_j = jax.jit(entjax.energy_score, static_argnames="axis")


def test_max_softmax_matches_numpy(rng):
    logits = rng.normal(scale=3.0, size=(4, 6, 7))
    got = ms_j(logits)
    np.testing.assert_allclose(got, np_max_softmax(logits), rtol=1e-12, atol=1e-15)
    moved = ms_j(np.moveaxis(logits, -1, 1), axis=1)
    np.testing.assert_allclose(moved, got, rtol=1e-12)


def test_max_softmax_does_not_saturate_in_float32():
    logits = jnp.array([[40.0, 0.0, 0.0], [0.0, 60.0, 1.0], [3.0, 0.0, -1.0]], jnp.float32)
    got = ms_j(logits)
    assert got.dtype == jnp.float32
    assert np.all(np.asarray(got) > 0)
    expected = np_max_softmax(np.asarray(logits, np.float64))  # float64 does not saturate
    assert expected[0] == pytest.approx(2 * math.exp(-40), rel=1e-12)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # The naive float32 formula is exactly 0 on the confident rows: this is the point.
    assert 1.0 - jnp.max(jax.nn.softmax(logits[0])) == 0


def test_max_softmax_bf16_is_computed_in_float32():
    logits = jnp.array([[2.0, 1.0, 0.5]], jnp.bfloat16)
    got = ms_j(logits)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, np_max_softmax(np.array([[2.0, 1.0, 0.5]])), rtol=1e-6)


def test_max_softmax_masks_and_inf():
    logits = np.array([[1.0, 2.0, 5.0, 0.0], [3.0, -np.inf, 1.0, -np.inf]])
    mask = np.array([[True, True, False, True], [True, True, True, False]])
    got = ms_j(logits, where=mask)
    np.testing.assert_allclose(got[0], np_max_softmax([1.0, 2.0, 0.0]), rtol=1e-12)
    np.testing.assert_allclose(got[1], np_max_softmax([3.0, 1.0]), rtol=1e-12)
    # A single candidate class, and none at all: probability 1, score 0.
    edge = np.array([[-np.inf, 2.0, -np.inf], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0]])
    np.testing.assert_array_equal(ms_j(edge), [0.0, 0.0, 0.0])
    all_masked = ms_j(logits, where=np.zeros_like(mask))
    np.testing.assert_array_equal(all_masked, [0.0, 0.0])
    # A per-example mask drops whole rows.
    np.testing.assert_array_equal(ms_j(logits, where=np.array([True, False]))[1], 0)


@pytest.mark.parametrize("fn", [entjax.max_softmax, entjax.energy_score])
def test_scores_have_finite_gradients_at_the_edges(fn):
    logits = jnp.array(
        [
            [0.0, -jnp.inf, 1.0],
            [1e4, -1e4, 0.0],
            [-1e4, -1e4, -1e4],
            [-jnp.inf, -jnp.inf, -jnp.inf],
            [-jnp.inf, 2.0, -jnp.inf],
            [1e4, 1e4, -jnp.inf],
        ],
        jnp.float32,
    )
    mask = jnp.ones((6, 3), bool).at[2].set(False)
    for where in (None, mask):
        value = fn(logits, where=where)
        grad = jax.grad(lambda z, w=where: jnp.sum(fn(z, where=w)))(logits)
        assert np.all(np.isfinite(value)), value
        assert np.all(np.isfinite(grad)), grad
        # No candidate class: value 0 and zero gradient.
        assert value[3] == 0
        np.testing.assert_array_equal(grad[3], 0.0)
        if where is not None:
            assert value[2] == 0
            np.testing.assert_array_equal(grad[2], 0.0)
        # -inf logits get no gradient.
        np.testing.assert_array_equal([grad[0, 1], grad[4, 0], grad[4, 2]], 0.0)


@pytest.mark.parametrize("fn", [entjax.max_softmax, entjax.energy_score])
def test_score_gradients_match_finite_differences(fn, rng):
    logits = jnp.asarray(rng.normal(size=(3, 5)))
    check_grads(jax.jit(fn), (logits,), order=1, modes=("fwd", "rev"))


def test_energy_score_matches_scipy(rng):
    logits = rng.normal(scale=2.0, size=(5, 8))
    energy = jax.jit(lambda z, t: entjax.energy_score(z, temperature=t))  # a traced T
    np.testing.assert_allclose(en_j(logits), np_energy(logits, 1.0), rtol=1e-12)
    for t in (1.0, 0.5, 3.0):
        np.testing.assert_allclose(energy(logits, t), np_energy(logits, t), rtol=1e-12)
    # A per-example temperature.
    t = jnp.array([0.5, 1.0, 2.0, 3.0, 4.0])
    got = energy(logits, t)
    t_col = np.asarray(t)[:, None]
    expected = -np.asarray(t) * scipy.special.logsumexp(logits / t_col, axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    dt = jax.grad(lambda t: entjax.energy_score(logits[0], temperature=t))(2.0)
    fd = (np_energy(logits[0], 2.0 + 1e-6) - np_energy(logits[0], 2.0 - 1e-6)) / 2e-6
    np.testing.assert_allclose(dt, fd, rtol=1e-6)


def test_energy_score_masks_and_dtypes():
    logits = np.array([[1.0, 2.0, 5.0], [0.0, -np.inf, 1.0]])
    mask = np.array([[True, True, False], [True, True, True]])
    got = en_j(logits, where=mask)
    np.testing.assert_allclose(got, [np_energy([1.0, 2.0], 1.0), np_energy([0.0, 1.0], 1.0)])
    assert en_j(jnp.ones((2, 3), jnp.float16)).dtype == jnp.float32
    assert en_j(jnp.ones((2, 3), jnp.float32)).dtype == jnp.float32
    assert en_j(jnp.ones((2, 3), jnp.float64)).dtype == jnp.float64


@pytest.mark.parametrize("t", [0.0, -1.0, np.array([1.0, -2.0])])
def test_energy_score_rejects_nonpositive_temperature(t):
    with pytest.raises(ValueError, match=r"entjax\.energy_score.*temperature"):
        entjax.energy_score(jnp.zeros((2, 3)), temperature=t)


def test_scores_reject_integer_logits():
    with pytest.raises(TypeError, match="logits"):
        entjax.max_softmax(jnp.zeros((2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"entjax\.max_softmax"):
        entjax.max_softmax(jnp.zeros(()))


# --------------------------------------------------------------------------------------------
# AUROC, AUPR, FPR@TPR.

auroc_j = jax.jit(entjax.auroc)
aupr_j = jax.jit(entjax.aupr)
fpr_j = jax.jit(entjax.fpr_at_tpr)


@jax.jit
def _all_metrics(s_in, s_out, tpr, where):
    return (
        entjax.auroc(s_in, s_out, where=where),
        entjax.aupr(s_in, s_out, where=where),
        entjax.fpr_at_tpr(s_in, s_out, tpr=tpr, where=where),
    )


def all_metrics(s_in, s_out, tpr=0.95, where=None):
    """The three metrics, jitted together (one compilation per shape)."""
    return _all_metrics(s_in, s_out, tpr, where)


def _cases(rng):
    yield rng.normal(size=40), rng.normal(loc=0.7, size=25)  # continuous
    yield rng.integers(0, 4, 30).astype(float), rng.integers(1, 5, 17).astype(float)  # ties
    inf = np.inf
    yield (
        np.array([-inf, 0.0, 1.0, inf, 1.0, -inf]),
        np.array([inf, inf, 1.0, -inf, 2.0]),
    )  # ±inf, tied with each other and with finite values
    yield np.full(5, 3.0), np.full(4, 3.0)  # everything tied
    yield np.array([0.5]), np.array([0.2])  # one example each


@pytest.mark.parametrize("tpr", [0.95, 0.5, 1.0, 0.2])
def test_metrics_match_sklearn(rng, tpr):
    for s_in, s_out in _cases(rng):
        got = all_metrics(s_in, s_out, tpr=tpr)
        ref = sk_metrics(s_in, s_out, tpr=tpr)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got[2], ceil_fpr(s_in, s_out, tpr), rtol=1e-12)


def test_metrics_batched_leading_axes_float32(rng):
    s_in = rng.integers(0, 6, size=(2, 3, 50)).astype(np.float32)
    s_out = rng.integers(2, 8, size=(2, 3, 30)).astype(np.float32)
    got = all_metrics(s_in, s_out)
    assert all(g.shape == (2, 3) and g.dtype == jnp.float32 for g in got)
    for i, j in itertools.product(range(2), range(3)):
        ref = sk_metrics(s_in[i, j], s_out[i, j])
        np.testing.assert_allclose([g[i, j] for g in got], ref, rtol=1e-6)
    # vmap over the leading axis gives the same as the batched call.
    mapped = jax.vmap(lambda a, b: jnp.stack(all_metrics(a, b)))(s_in, s_out)
    np.testing.assert_allclose(mapped, np.stack(got, axis=1), rtol=1e-6)


def test_metrics_dtypes(rng):
    a, b = rng.integers(0, 5, 20), rng.integers(0, 5, 10)
    for s_in, s_out, dtype in [
        (a, b, jnp.float32),  # integers (int64 here) are ranked exactly, returned in float32
        (a.astype(bool), b.astype(bool), jnp.float32),
        (a.astype(np.float16), b.astype(np.float16), jnp.float32),
        (a.astype(np.float64), b.astype(np.float64), jnp.float64),
    ]:
        got = all_metrics(s_in, s_out)
        assert all(g.dtype == dtype for g in got)
        ref = sk_metrics(np.asarray(s_in, float), np.asarray(s_out, float))
        np.testing.assert_allclose(got, ref, rtol=1e-6)
    # Large integers are ranked as integers, not rounded to float32 (which would tie them).
    assert auroc_j(np.array([2**40, 2**40]), np.array([2**40 + 1, 2**40 + 1])) == 1.0


def test_metrics_masks_equal_dropping(rng):
    s_in = rng.integers(0, 5, size=(3, 20)).astype(float)
    s_out = rng.integers(1, 6, size=(3, 15)).astype(float)
    s_out[1, :] = -np.inf  # masked NaNs (below) and infinities are harmless
    s_out[1, ::3] = 4.0
    m_in = np.argsort(rng.random((3, 20)), axis=-1) < 12  # 12 kept per row: one shape
    m_out = np.argsort(rng.random((3, 15)), axis=-1) < 9
    s_in[0, ~m_in[0]] = np.nan
    got = all_metrics(s_in, s_out, tpr=0.9, where=(m_in, m_out))
    for i in range(3):
        ref = sk_metrics(s_in[i][m_in[i]], s_out[i][m_out[i]], tpr=0.9)
        np.testing.assert_allclose([g[i] for g in got], ref, rtol=1e-12)
    # One side masked only, and a broadcast mask.
    got = auroc_j(s_in[1:], s_out[1:], where=(None, m_out[0]))
    for i in range(2):
        ref = sk_metrics(s_in[i + 1], s_out[i + 1][m_out[0]])[0]
        np.testing.assert_allclose(got[i], ref, rtol=1e-12)
    # A set left empty gives NaN.
    empty = all_metrics(s_in[1], s_out[1], where=(np.zeros(20, bool), None))
    assert all(np.isnan(e) for e in empty)


def test_metrics_nan_scores(rng):
    s_in, s_out = rng.normal(size=10), rng.normal(size=8)
    s_in[4] = np.nan
    for fn, name in [(entjax.auroc, "auroc"), (entjax.aupr, "aupr"), (entjax.fpr_at_tpr, "fpr")]:
        with pytest.raises(ValueError, match=rf"entjax\.{name}.*NaN"):
            fn(s_in, s_out)
        with pytest.raises(ValueError, match=rf"entjax\.{name}.*NaN"):
            fn(s_out, s_in)
    assert all(np.isnan(g) for g in all_metrics(s_in, s_out))  # under jit: NaN
    assert all(np.isnan(g) for g in all_metrics(s_out, s_in))


def sk_weighted(s_in, s_out, w_in, w_out, tpr=0.95):
    """scikit-learn's metrics with ``sample_weight`` (zero-weight examples dropped first)."""
    s_in, s_out = finite_ranks(np.asarray(s_in), np.asarray(s_out))
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    s, w = np.r_[s_in, s_out], np.r_[w_in, w_out].astype(np.float64)
    y, s, w = y[w > 0], s[w > 0], w[w > 0]
    fpr, tpr_curve, _ = roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    return (
        roc_auc_score(y, s, sample_weight=w),
        average_precision_score(y, s, sample_weight=w),
        fpr[tpr_curve >= tpr - 1e-12].min(),
    )


@jax.jit
def _weighted_metrics(s_in, s_out, weights, where=None):
    return (
        entjax.auroc(s_in, s_out, weights=weights, where=where),
        entjax.aupr(s_in, s_out, weights=weights, where=where),
        entjax.fpr_at_tpr(s_in, s_out, tpr=0.9, weights=weights, where=where),
    )


def test_metrics_integer_weights_equal_repeating_examples(rng):
    # Bootstrap counts: an example of weight w counts as w copies, exactly (int32 counts).
    for s_in, s_out in _cases(rng):
        c_in = rng.integers(0, 4, len(s_in))
        c_out = rng.integers(1, 4, len(s_out))
        got = _weighted_metrics(s_in, s_out, (c_in, c_out))
        ref = sk_metrics(np.repeat(s_in, c_in), np.repeat(s_out, c_out), tpr=0.9)
        if c_in.sum() == 0:
            assert all(np.isnan(g) for g in got)  # an empty in-set, as with masks
            continue
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)


def test_metrics_float_weights_match_sklearn_sample_weight(rng):
    s_in = rng.integers(0, 5, size=30).astype(float)  # ties
    s_out = rng.integers(1, 6, size=20).astype(float)
    w_in, w_out = rng.uniform(0.1, 2.0, 30), rng.uniform(0.1, 2.0, 20)
    w_out[::4] = 0.0
    got = _weighted_metrics(s_in, s_out, (w_in, w_out))
    np.testing.assert_allclose(got, sk_weighted(s_in, s_out, w_in, w_out, 0.9), rtol=1e-10)
    # Weights and masks combine; one side weighted only.
    m_in = rng.random(30) < 0.7
    got = _weighted_metrics(s_in, s_out, (None, w_out), (m_in, None))
    ref = sk_weighted(s_in, s_out, m_in.astype(float), w_out, 0.9)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_metrics_wide_integer_weights_do_not_wrap():
    # int64 / uint32 weights are counted in floating point (not cast to int32), and the pair
    # count is summed in floating point: no silent wrap-around.
    s_in, s_out = jnp.array([0.0, 1.0]), jnp.array([0.5])
    big = 2**32
    got = entjax.auroc(s_in, s_out, weights=(jnp.array([1, big], jnp.int64), None))
    assert float(got) == pytest.approx(1 / (big + 1), rel=1e-6)
    got = entjax.auroc(s_in, s_out, weights=(jnp.array([1, 2**31], jnp.uint32), None))
    assert float(got) == pytest.approx(1 / (2**31 + 1), rel=1e-6)
    with pytest.raises(ValueError, match=r"entjax\.auroc.*2\*\*30"):
        entjax.auroc(s_in, s_out, weights=(jnp.array([2**30, 1], jnp.int32), None))


def test_bootstrap_by_vmap_over_counts_sorts_the_scores_once(rng):
    s_in, s_out = rng.normal(size=(3, 40)), rng.normal(0.5, size=(3, 30))
    idx_in, idx_out = rng.integers(0, 40, (5, 40)), rng.integers(0, 30, (5, 30))
    c_in = np.stack([np.bincount(i, minlength=40) for i in idx_in])  # (B, n_in)
    c_out = np.stack([np.bincount(i, minlength=30) for i in idx_out])

    def boot(ci, co):
        return entjax.auroc(s_in, s_out, weights=(ci, co))  # weights broadcast over rows

    got = jax.jit(jax.vmap(boot))(c_in, c_out)  # (B, R)
    for b in range(5):
        for r in range(3):
            ref = roc_auc_score(
                np.r_[np.zeros(40), np.ones(30)], np.r_[s_in[r, idx_in[b]], s_out[r, idx_out[b]]]
            )
            assert got[b, r] == pytest.approx(ref, rel=1e-12)
    # The sort's operands are the (R, n) scores, not a (B, R, n) batch.
    sorts = [
        e
        for e in jax.make_jaxpr(jax.vmap(boot))(c_in, c_out).jaxpr.eqns
        if e.primitive.name == "sort"
    ]
    assert sorts
    assert all(v.aval.shape == (3, 70) for e in sorts for v in e.invars)


@pytest.mark.parametrize("fn", [entjax.auroc, entjax.aupr, entjax.fpr_at_tpr])
def test_metric_errors_name_the_function(fn):
    name = rf"entjax\.{fn.__name__}"
    with pytest.raises(ValueError, match=name + r".*empty"):
        fn(jnp.zeros((0,)), jnp.zeros((3,)))
    with pytest.raises(ValueError, match=name + r".*empty"):
        fn(jnp.zeros((2, 3)), jnp.zeros((2, 0)))
    with pytest.raises(TypeError, match=name + r".*real"):
        fn(jnp.zeros(3, jnp.complex64), jnp.zeros(3))
    with pytest.raises(ValueError, match=name + r".*leading"):
        fn(jnp.zeros((2, 3)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match=name):
        fn(jnp.zeros(()), jnp.zeros(3))
    with pytest.raises(TypeError, match=name + r".*pair"):
        fn(jnp.zeros(3), jnp.zeros(3), where=jnp.ones(3, bool))
    with pytest.raises(TypeError, match=name + r".*boolean"):
        fn(jnp.zeros(3), jnp.zeros(3), where=(jnp.ones(3), None))
    with pytest.raises(ValueError, match=name + r".*broadcast"):
        fn(jnp.zeros(3), jnp.zeros(3), where=(None, jnp.ones(4, bool)))
    with pytest.raises(TypeError, match=name + r".*pair"):
        fn(jnp.zeros(3), jnp.zeros(3), weights=jnp.ones(3))
    with pytest.raises(ValueError, match=name + r".*negative"):
        fn(jnp.zeros(3), jnp.zeros(3), weights=(None, jnp.array([1.0, -1.0, 1.0])))
    with pytest.raises(ValueError, match=name + r".*broadcast"):
        fn(jnp.zeros(3), jnp.zeros(3), weights=(jnp.ones(2), None))
    with pytest.raises(TypeError, match=name + r".*weights"):
        fn(jnp.zeros(3), jnp.zeros(3), weights=(jnp.ones(3, bool), None))


@pytest.mark.parametrize("tpr", [0.0, -0.5, 1.01, float("nan")])
def test_fpr_at_tpr_rejects_tpr_out_of_range(tpr):
    with pytest.raises(ValueError, match=r"entjax\.fpr_at_tpr.*tpr"):
        entjax.fpr_at_tpr(jnp.zeros(3), jnp.zeros(3), tpr=tpr)


def test_fpr_at_tpr_traced_and_batched_tpr(rng):
    s_in, s_out = rng.normal(size=(3, 30)), rng.normal(loc=1.0, size=(3, 20))
    tpr = np.array([0.5, 0.8, 0.95])
    got = fpr_j(s_in, s_out, tpr=tpr)
    np.testing.assert_allclose(got, [sk_metrics(s_in[i], s_out[i], tpr[i])[2] for i in range(3)])


# --------------------------------------------------------------------------------------------
# Risk-coverage, AURC, E-AURC.

rc_j = jax.jit(entjax.risk_coverage)
aurc_j = jax.jit(entjax.aurc)


@jax.jit
def selective(conf, correct, where=None):
    """``(curve, aurc, excess_aurc)``, jitted together (one compilation per shape)."""
    return (
        entjax.risk_coverage(conf, correct, where=where),
        entjax.aurc(conf, correct, where=where),
        entjax.excess_aurc(conf, correct, where=where),
    )


def test_risk_coverage_ties_match_brute_force(rng):
    for _ in range(4):
        conf = rng.integers(0, 3, 7).astype(float)  # heavy ties
        correct = rng.random(7) < 0.5
        curve, got_aurc, got_e = selective(conf, correct)
        ref = brute_risk(conf, correct)
        np.testing.assert_allclose(curve.risk, ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(curve.coverage, np.arange(1, 8) / 7, rtol=1e-15)
        np.testing.assert_allclose(got_aurc, ref.mean(), rtol=1e-12)
        oracle = brute_risk(correct.astype(float), correct).mean()
        np.testing.assert_allclose(got_e, ref.mean() - oracle, atol=1e-12)
        # Order-independent: a permutation of the examples changes nothing.
        perm = rng.permutation(7)
        np.testing.assert_allclose(selective(conf[perm], correct[perm])[0].risk, curve.risk)


def test_risk_coverage_distinct_confidences_batched_float32(rng):
    conf = rng.random((2, 3, 50)).astype(np.float32)
    correct = rng.random((2, 3, 50)) < 0.7
    curve, got_aurc, got_e = selective(conf, correct)
    assert curve.risk.shape == (2, 3, 50)
    assert curve.risk.dtype == jnp.float32
    assert got_aurc.shape == (2, 3)
    for i, j in itertools.product(range(2), range(3)):
        ref = sort_risk(conf[i, j], correct[i, j])
        np.testing.assert_allclose(curve.risk[i, j], ref, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(got_aurc[i, j], ref.mean(), rtol=1e-6)
        oracle = sort_risk(correct[i, j] + 1e-3 * rng.random(50), correct[i, j]).mean()
        np.testing.assert_allclose(got_e[i, j], ref.mean() - oracle, rtol=1e-5, atol=1e-7)
    mapped = jax.jit(jax.vmap(entjax.aurc))(conf, correct)
    np.testing.assert_allclose(mapped, got_aurc, rtol=1e-6)


def test_risk_coverage_int_and_float_correct(rng):
    conf = rng.integers(0, 4, 30).astype(float)
    correct = rng.random(30) < 0.5
    expected = aurc_j(conf, correct)
    np.testing.assert_allclose(aurc_j(conf, correct.astype(np.int32)), expected)
    np.testing.assert_allclose(aurc_j(conf, correct.astype(float)), expected)
    # Integer and boolean confidences are ranked too.
    np.testing.assert_allclose(aurc_j(conf.astype(np.int32), correct), expected)


def test_risk_coverage_masks_equal_dropping(rng):
    conf = rng.integers(0, 5, (3, 40)).astype(float)
    correct = rng.random((3, 40)) < 0.6
    mask = np.argsort(rng.random((3, 40)), axis=-1) < 20  # 20 kept per row: one shape
    conf[0, ~mask[0]] = np.nan  # masked NaNs are harmless
    curve, got_aurc, got_e = selective(conf, correct, where=mask)
    for i in range(3):
        n = mask[i].sum()
        ref, ref_aurc, ref_e = selective(conf[i][mask[i]], correct[i][mask[i]])
        np.testing.assert_allclose(curve.risk[i, :n], ref.risk, rtol=1e-12)
        np.testing.assert_allclose(curve.coverage[i, :n], ref.coverage, rtol=1e-12)
        assert np.all(np.isnan(curve.risk[i, n:]))
        assert np.all(np.isnan(curve.coverage[i, n:]))
        np.testing.assert_allclose(got_aurc[i], np.nanmean(curve.risk[i]), rtol=1e-12)
        np.testing.assert_allclose(got_aurc[i], ref_aurc, rtol=1e-12)
        np.testing.assert_allclose(got_e[i], ref_e, rtol=1e-12)
    assert np.isnan(aurc_j(conf, correct, where=np.zeros(40, bool))[1])


def test_selective_errors_name_the_function():
    for fn in (entjax.risk_coverage, entjax.aurc, entjax.excess_aurc):
        name = rf"entjax\.{fn.__name__}"
        with pytest.raises(ValueError, match=name + r".*empty"):
            fn(jnp.zeros(0), jnp.zeros(0, bool))
        with pytest.raises(ValueError, match=name + r".*correct"):
            fn(jnp.zeros(3), jnp.zeros(4, bool))
        with pytest.raises(TypeError, match=name + r".*real"):
            fn(jnp.zeros(3, jnp.complex64), jnp.zeros(3, bool))
        with pytest.raises(ValueError, match=name + r".*NaN"):
            fn(jnp.array([0.1, jnp.nan]), jnp.zeros(2, bool))
        with pytest.raises(TypeError, match=name + r".*boolean"):
            fn(jnp.zeros(3), jnp.zeros(3, bool), where=jnp.ones(3))
    assert np.isnan(aurc_j(jnp.array([0.1, jnp.nan]), jnp.zeros(2, bool)))


# --------------------------------------------------------------------------------------------
# fit_temperature.


def scipy_temperature(logits, labels, keep=None, bounds=(0.05, 20.0)):
    z = np.asarray(logits, np.float64).reshape(-1, np.shape(logits)[-1])
    y = np.asarray(labels).reshape(-1)
    if keep is not None:
        z, y = z[np.reshape(keep, -1)], y[np.reshape(keep, -1)]

    def nll(u):
        return -np.mean(scipy.special.log_softmax(z / np.exp(u), axis=-1)[np.arange(len(y)), y])

    res = scipy.optimize.minimize_scalar(
        nll, bounds=np.log(bounds), method="bounded", options={"xatol": 1e-9}
    )
    return np.exp(res.x), nll(res.x), nll(0.0)


def _overconfident(rng, n=300, c=6, scale=3.0, members=None):
    shape = (n, c) if members is None else (members, n, c)
    true = rng.normal(size=(n, c))
    labels = np.array([rng.choice(c, p=p) for p in scipy.special.softmax(true, axis=-1)])
    logits = scale * (true + 0.3 * rng.normal(size=shape))
    return logits, labels


fit_j = jax.jit(entjax.fit_temperature, static_argnames=("bounds", "axis"))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_temperature_matches_scipy(rng, dtype):
    for scale in (3.0, 0.4):  # overconfident (T > 1) and underconfident (T < 1)
        logits, labels = _overconfident(rng, scale=scale)
        got = fit_j(logits.astype(dtype), labels)
        assert got.shape == ()
        assert got.dtype == dtype
        t_ref, _, _ = scipy_temperature(logits, labels)
        np.testing.assert_allclose(got, t_ref, rtol=1e-3)
        assert (t_ref > 1.5) == (scale > 1)


def test_fit_temperature_mask_axis_and_batch_axes(rng):
    logits, labels = _overconfident(rng, n=240)
    keep = rng.random(240) < 0.5
    got = fit_j(logits, labels, where=keep)
    np.testing.assert_allclose(got, scipy_temperature(logits, labels, keep)[0], rtol=1e-3)
    np.testing.assert_allclose(got, fit_j(logits[keep], labels[keep]), rtol=1e-6)
    # Several example axes are pooled; the class axis can be anywhere.
    pooled = fit_j(logits.reshape(4, 60, -1), labels.reshape(4, 60))
    np.testing.assert_allclose(pooled, fit_j(logits, labels), rtol=1e-6)
    moved = fit_j(np.moveaxis(logits.reshape(4, 60, -1), -1, 0), labels.reshape(4, 60), axis=0)
    np.testing.assert_allclose(moved, pooled, rtol=1e-6)


def test_fit_temperature_vmaps_over_members(rng):
    logits, labels = _overconfident(rng, n=200, members=3)
    logits[1] *= 0.2  # an underconfident member
    got = jax.jit(jax.vmap(entjax.fit_temperature, in_axes=(0, None)))(logits, labels)
    assert got.shape == (3,)
    for m in range(3):
        np.testing.assert_allclose(got[m], scipy_temperature(logits[m], labels)[0], rtol=1e-3)


def test_fit_temperature_never_worse_than_unscaled_and_respects_bounds(rng):
    # Logits that are already the true log-probabilities: the fit stays near 1, never worse.
    true = rng.normal(size=(500, 4))
    labels = np.array([rng.choice(4, p=p) for p in scipy.special.softmax(true, axis=-1)])
    t = fit_j(true, labels)
    _, _, nll1 = scipy_temperature(true, labels)
    nll_t = -np.mean(scipy.special.log_softmax(true / float(t), -1)[np.arange(500), labels])
    assert nll_t <= nll1 + 1e-12
    assert 0.7 < float(t) < 1.4
    # The minimiser lies above the upper bound: the fit stops at the bound.
    logits, labels = _overconfident(rng, scale=30.0)
    t_ref, _, _ = scipy_temperature(logits, labels, bounds=(0.5, 2.0))
    got = fit_j(logits, labels, bounds=(0.5, 2.0))
    np.testing.assert_allclose(got, 2.0, rtol=1e-6)
    np.testing.assert_allclose(t_ref, 2.0, rtol=1e-4)
    # With every example masked out the identity is returned.
    assert fit_j(logits, labels, where=np.zeros(len(labels), bool)) == 1.0


def test_fit_temperature_handles_masked_classes(rng):
    logits, labels = _overconfident(rng, n=200, c=5)
    logits[:, 4] = -np.inf
    labels = np.where(labels == 4, 0, labels)
    got = fit_j(logits, labels)
    np.testing.assert_allclose(got, scipy_temperature(logits[:, :4], labels)[0], rtol=1e-3)


def test_fit_temperature_errors():
    logits, labels = jnp.zeros((4, 3)), jnp.zeros(4, jnp.int32)
    with pytest.raises(ValueError, match=r"entjax\.fit_temperature.*bounds"):
        entjax.fit_temperature(logits, labels, bounds=(0.0, 2.0))
    with pytest.raises(ValueError, match=r"entjax\.fit_temperature.*bounds"):
        entjax.fit_temperature(logits, labels, bounds=(3.0, 2.0))
    with pytest.raises(TypeError, match="labels"):
        entjax.fit_temperature(logits, labels.astype(float))
    with pytest.raises(ValueError, match="labels"):
        entjax.fit_temperature(logits, labels[:3])
