"""Tests for entjax._calibration against numpy references written out independently."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

import entjax


def np_softmax(x):
    return scipy.special.softmax(np.asarray(x, np.float64), axis=-1)


def guo_ece(probs, labels, num_bins):
    """Guo et al. (2017)'s algorithm as a plain loop: right-closed equal-width bins."""
    confidences = probs.max(axis=-1)
    accuracies = probs.argmax(axis=-1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidences > lo) & (confidences <= hi)
        prop = in_bin.mean()
        if prop > 0:
            ece += abs(accuracies[in_bin].mean() - confidences[in_bin].mean()) * prop
    return ece


def guo_bins(probs, labels, num_bins):
    confidences = probs.max(axis=-1)
    accuracies = probs.argmax(axis=-1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    counts, acc, conf = [], [], []
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidences > lo) & (confidences <= hi)
        counts.append(in_bin.sum())
        acc.append(accuracies[in_bin].mean() if in_bin.any() else 0.0)
        conf.append(confidences[in_bin].mean() if in_bin.any() else 0.0)
    return np.array(counts), np.array(acc), np.array(conf), edges


nll = jax.jit(entjax.negative_log_likelihood, static_argnames="axis")
brier = jax.jit(entjax.brier_score, static_argnames="axis")
ece_fn = jax.jit(entjax.expected_calibration_error, static_argnames=("num_bins", "axis"))
bins_fn = jax.jit(entjax.reliability_bins, static_argnames=("num_bins", "axis"))


def _data(rng, n=200, c=5, scale=3.0):
    logits = rng.normal(scale=scale, size=(n, c))
    labels = rng.integers(0, c, size=n)
    return logits, labels


def test_nll_matches_numpy(rng):
    logits, labels = _data(rng, n=20)
    expected = -np.log(np_softmax(logits)[np.arange(20), labels])
    np.testing.assert_allclose(nll(jnp.asarray(logits), jnp.asarray(labels)), expected, rtol=1e-12)
    # Class axis first.
    got = nll(jnp.asarray(logits.T), jnp.asarray(labels), axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_brier_matches_numpy(rng):
    logits, labels = _data(rng, n=20)
    p = np_softmax(logits)
    onehot = np.eye(5)[labels]
    expected = ((p - onehot) ** 2).sum(axis=-1)
    np.testing.assert_allclose(
        brier(jnp.asarray(logits), jnp.asarray(labels)), expected, rtol=1e-12
    )
    got = brier(jnp.asarray(logits.T), jnp.asarray(labels), axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # Known values: a certain correct prediction scores 0, a certain wrong one scores 2.
    sure = jnp.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0]], jnp.float32)
    np.testing.assert_allclose(brier(sure, jnp.array([0, 1])), [0.0, 2.0])


def test_edge_logits_finite_values_and_gradients():
    logits = jnp.array(
        [[1e4, -1e4, 0.0], [-jnp.inf, 1.0, 2.0], [-1e4, 1e4, -jnp.inf], [-jnp.inf] * 3],
        jnp.float32,
    )
    labels = jnp.array([0, 2, 1, 0])
    b = brier(logits, labels)
    p1 = np_softmax([1.0, 2.0])
    expected = [0.0, p1[0] ** 2 + (p1[1] - 1.0) ** 2, 0.0, 0.0]
    np.testing.assert_allclose(b, expected, rtol=1e-6, atol=1e-6)
    for fn in (
        lambda z: entjax.brier_score(z, labels).sum(),
        lambda z: entjax.negative_log_likelihood(z, labels).sum(),
        lambda z: entjax.expected_calibration_error(z, labels, num_bins=4),
    ):
        g = jax.jit(jax.grad(fn))(logits)
        assert np.all(np.isfinite(g))
    assert np.all(np.isfinite(nll(logits, labels)))


@pytest.mark.parametrize(("num_bins", "scale"), [(1, 3.0), (10, 0.5), (15, 3.0)])
def test_ece_matches_guo_loop(rng, num_bins, scale):
    logits, labels = _data(rng, n=300, scale=scale)
    # Make the model right more often than chance, so bins have nontrivial accuracy.
    labels = np.where(rng.random(300) < 0.6, logits.argmax(-1), labels)
    expected = guo_ece(np_softmax(logits), labels, num_bins)
    got = ece_fn(jnp.asarray(logits), jnp.asarray(labels), num_bins=num_bins)
    assert got.shape == ()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)

    counts, acc, conf, edges = guo_bins(np_softmax(logits), labels, num_bins)
    bins = bins_fn(jnp.asarray(logits), jnp.asarray(labels), num_bins=num_bins)
    np.testing.assert_array_equal(bins.counts, counts)
    np.testing.assert_allclose(bins.accuracy, acc, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(bins.confidence, conf, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(bins.bin_edges, edges, rtol=1e-15)
    assert int(bins.counts.sum()) == 300


def test_ece_where_excludes_examples(rng):
    logits, labels = _data(rng, n=120)
    keep = rng.random(120) < 0.7
    expected = guo_ece(np_softmax(logits[keep]), labels[keep], 15)
    got = ece_fn(jnp.asarray(logits), jnp.asarray(labels), where=jnp.asarray(keep))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)
    bins = bins_fn(jnp.asarray(logits), jnp.asarray(labels), where=jnp.asarray(keep))
    assert int(bins.counts.sum()) == int(keep.sum())
    counts, acc, conf, _ = guo_bins(np_softmax(logits[keep]), labels[keep], 15)
    np.testing.assert_allclose(bins.confidence, conf, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(bins.counts, counts)
    np.testing.assert_allclose(bins.accuracy, acc, rtol=1e-12, atol=1e-15)
    # Nothing left: 0, not NaN.
    none = ece_fn(jnp.asarray(logits), jnp.asarray(labels), where=jnp.zeros(120, bool))
    assert float(none) == 0.0


def test_ece_zero_for_perfect_calibration():
    # All confidences exactly 1 and all correct.
    labels = np.arange(12) % 4
    logits = np.where(np.eye(4)[labels] > 0, 1e4, -1e4)
    assert float(ece_fn(jnp.asarray(logits), jnp.asarray(labels))) == 0.0
    # Confidence 0.75 in one bin with exactly 3 of 4 predictions correct.
    logits = np.log(np.tile([[0.75, 0.25]], (8, 1)))
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_allclose(ece_fn(jnp.asarray(logits), jnp.asarray(labels)), 0.0, atol=1e-12)
    # The same predictions all wrong are off by the full confidence.
    np.testing.assert_allclose(
        ece_fn(jnp.asarray(logits), jnp.asarray(np.ones(8, int))), 0.75, rtol=1e-12
    )


def test_empty_bins_and_example_axes(rng):
    logits, labels = _data(rng, n=24, scale=0.2)  # confidences near 1/5: most bins empty
    bins = bins_fn(jnp.asarray(logits), jnp.asarray(labels), num_bins=20)
    empty = np.asarray(bins.counts) == 0
    assert empty.any()
    np.testing.assert_array_equal(np.asarray(bins.accuracy)[empty], 0.0)
    np.testing.assert_array_equal(np.asarray(bins.confidence)[empty], 0.0)
    assert np.all(np.isfinite(bins.accuracy))
    # Several example axes are pooled: [4, 6, classes] gives the statistics of all 24.
    flat = ece_fn(jnp.asarray(logits), jnp.asarray(labels))
    pooled = ece_fn(jnp.asarray(logits.reshape(4, 6, 5)), jnp.asarray(labels.reshape(4, 6)))
    np.testing.assert_allclose(pooled, flat, rtol=1e-12)


def test_vmap_over_sets_single_trace(rng):
    logits = rng.normal(scale=2.0, size=(3, 50, 5))  # [sets, examples, classes]
    labels = rng.integers(0, 5, size=(3, 50))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def per_set(x, y):
        return jax.vmap(lambda a, b: entjax.expected_calibration_error(a, b, num_bins=10))(x, y)

    got = per_set(jnp.asarray(logits), jnp.asarray(labels))
    got = per_set(jnp.asarray(logits) * 2.0, jnp.asarray(labels))  # same shapes: no retrace
    for s in range(3):
        expected = guo_ece(np_softmax(logits[s] * 2.0), labels[s], 10)
        np.testing.assert_allclose(got[s], expected, rtol=1e-10, atol=1e-14)
    per_example = jax.jit(jax.vmap(entjax.brier_score))(jnp.asarray(logits), jnp.asarray(labels))
    assert per_example.shape == (3, 50)


def test_low_precision_and_errors():
    x = jnp.zeros((4, 3), jnp.bfloat16)
    y = jnp.zeros(4, jnp.int32)
    assert brier(x, y).dtype == jnp.float32
    assert nll(x, y).dtype == jnp.float32
    assert ece_fn(x, y).dtype == jnp.float32
    with pytest.raises(TypeError, match="labels"):
        entjax.brier_score(x, jnp.zeros(4))
    with pytest.raises(ValueError, match="labels"):
        entjax.expected_calibration_error(x, jnp.zeros(3, jnp.int32))
    with pytest.raises(TypeError, match="num_bins"):
        entjax.expected_calibration_error(x, y, num_bins=2.5)
    with pytest.raises(ValueError, match="num_bins"):
        entjax.reliability_bins(x, y, num_bins=0)
    with pytest.raises(TypeError, match="logits"):
        entjax.negative_log_likelihood(jnp.zeros((4, 3), jnp.int32), y)


def test_bin_edges_are_right_closed():
    # Confidence exactly 0.5 (softmax of equal logits) lies on an edge when num_bins=4: it
    # belongs to (0.25, 0.5], and a confidence of exactly 1 to the last bin (0.75, 1].
    logits = jnp.array([[0.0, 0.0], [0.0, 0.0], [1e4, -1e4]])
    labels = jnp.array([0, 1, 0])
    bins = bins_fn(logits, labels, num_bins=4)
    counts, acc, conf, _ = guo_bins(np_softmax(logits), np.asarray(labels), 4)
    np.testing.assert_array_equal(counts, [0, 2, 0, 1])
    np.testing.assert_array_equal(bins.counts, counts)
    np.testing.assert_allclose(bins.accuracy, acc)
    np.testing.assert_allclose(bins.confidence, conf)
