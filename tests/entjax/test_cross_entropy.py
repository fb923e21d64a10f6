"""Cross-entropy losses against numpy/scipy formulas, optax, and PyTorch's documented semantics.

Every library call goes through ``jax.jit``; references are float64 numpy written out here.
"""

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special as sps
from hypothesis import given, settings, strategies as st
from jax.test_util import check_grads

import entjax

PROPERTY = settings(max_examples=30, deadline=None, database=None)

int_ce = jax.jit(
    entjax.softmax_cross_entropy_with_integer_labels,
    static_argnames=("axis", "label_smoothing", "ignore_index"),
)
soft_ce = jax.jit(entjax.softmax_cross_entropy, static_argnames=("axis",))
probs_ce = jax.jit(entjax.cross_entropy_from_probs, static_argnames=("axis", "min_prob", "base"))
bce = jax.jit(entjax.sigmoid_binary_cross_entropy)
perplexity = jax.jit(entjax.perplexity)

optax_int_ce = jax.jit(optax.softmax_cross_entropy_with_integer_labels, static_argnames=("axis",))
optax_soft_ce = jax.jit(optax.softmax_cross_entropy, static_argnames=("axis",))


# ---------------------------------------------------------------------------------------------
# Independent float64 references.


def np_log_softmax(x, axis=-1):
    return x - sps.logsumexp(x, axis=axis, keepdims=True)


def torch_cross_entropy(logits, labels, weight=None, label_smoothing=0.0, ignore_index=-100):
    """PyTorch's F.cross_entropy(..., reduction="none") as its documentation writes it.

    loss_i = (1-ε) w[y_i] (-log p_{i,y_i}) + (ε/C) Σ_c w_c (-log p_{i,c}); ignored rows give 0.
    """
    n, c = logits.shape
    w = np.ones(c) if weight is None else weight
    nll = -np_log_softmax(logits)
    out = np.zeros(n)
    for i in range(n):
        if labels[i] == ignore_index:
            continue
        y = labels[i]
        out[i] = (1 - label_smoothing) * w[y] * nll[i, y] + label_smoothing / c * np.sum(w * nll[i])
    return out


# ---------------------------------------------------------------------------------------------
# Known values.


def test_textbook_integer_label_value():
    ce = int_ce(jnp.array([[2.0, 1.0, 0.1]], jnp.float32), jnp.array([0]))
    assert ce.dtype == jnp.float32
    assert round(float(ce[0]), 4) == 0.4170


def test_textbook_probs_values():
    probs = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    assert round(float(probs_ce(probs, jnp.eye(3)).mean()), 4) == 0.3635
    assert round(float(probs_ce(probs, jnp.arange(3)).mean()), 4) == 0.3635
    assert round(float(probs_ce(jnp.array([0.6, 0.2, 0.2]), jnp.array(2))), 4) == 1.6094
    logits = jnp.log(jnp.array([0.6, 0.2, 0.2]))
    assert round(float(soft_ce(logits, jnp.array([0.0, 0.0, 1.0]))), 4) == 1.6094
    assert round(float(int_ce(logits, jnp.array(2))), 4) == 1.6094


def test_probs_ce_is_unclipped():
    # A clipped implementation (p in [eps, 1-eps]) gives -log(1-eps) > 0 for a perfect guess.
    assert float(probs_ce(jnp.array([1.0, 0.0]), jnp.array(0))) == 0.0
    assert float(probs_ce(jnp.array([1.0, 0.0], jnp.float32), jnp.array([1.0, 0.0]))) == 0.0


# ---------------------------------------------------------------------------------------------
# Integer labels: numpy, optax, PyTorch semantics.


def test_integer_ce_matches_numpy_and_optax(rng):
    x = rng.normal(size=(6, 5)) * 3
    y = rng.integers(0, 5, size=6)
    want = -np.take_along_axis(np_log_softmax(x), y[:, None], -1)[:, 0]
    got = int_ce(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got, optax_int_ce(jnp.asarray(x), jnp.asarray(y)), rtol=1e-12)


def test_integer_ce_positional_axis_like_optax(rng):
    x = jnp.asarray(rng.normal(size=(5, 4)))
    y = jnp.asarray(rng.integers(0, 5, size=4))
    np.testing.assert_allclose(int_ce(x, y, 0), optax_int_ce(x, y, axis=0), rtol=1e-12)


def test_integer_ce_tuple_axis_like_optax(rng):
    shape = (2, 3, 4, 5)
    x = jnp.asarray(rng.normal(size=shape))
    flat = rng.integers(0, 4 * 5, size=(2, 3))
    got = int_ce(x, jnp.asarray(flat), axis=(2, 3))
    np.testing.assert_allclose(got, optax_int_ce(x, jnp.asarray(flat), axis=(2, 3)), rtol=1e-12)
    xf = np.asarray(x).reshape(2, 3, 20)
    want = -np.take_along_axis(np_log_softmax(xf), flat[..., None], -1)[..., 0]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # Non-trailing tuple axes: classes are axes (0, 2); flat index in a (2, 4) slice.
    flat2 = rng.integers(0, 2 * 4, size=(3, 5))
    np.testing.assert_allclose(
        int_ce(x, jnp.asarray(flat2), axis=(0, 2)),
        optax_int_ce(x, jnp.asarray(flat2), axis=(0, 2)),
        rtol=1e-12,
    )


def test_integer_ce_where_like_optax(rng):
    x = jnp.asarray(rng.normal(size=(6, 5)))
    y = rng.integers(0, 5, size=6)
    per_example = jnp.asarray(rng.random(6) > 0.4)
    np.testing.assert_allclose(
        int_ce(x, jnp.asarray(y), -1, per_example),
        optax_int_ce(x, jnp.asarray(y), -1, per_example),
        rtol=1e-12,
    )
    # Per-logit mask that keeps every row's label class (optax's value is meaningful there).
    per_logit = rng.random((6, 5)) > 0.5
    per_logit[np.arange(6), y] = True
    got = int_ce(x, jnp.asarray(y), where=jnp.asarray(per_logit))
    np.testing.assert_allclose(
        got, optax_int_ce(x, jnp.asarray(y), -1, jnp.asarray(per_logit)), rtol=1e-12
    )
    xm = np.where(per_logit, np.asarray(x), -np.inf)  # masking = a -inf logit
    want = -np.take_along_axis(np_log_softmax(xm), y[:, None], -1)[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_integer_ce_pytorch_semantics(rng, label_smoothing, weighted):
    x = rng.normal(size=(8, 5)) * 2
    y = rng.integers(0, 5, size=8)
    y[[2, 5]] = -100
    w = rng.random(5) + 0.5 if weighted else None
    want = torch_cross_entropy(x, y, weight=w, label_smoothing=label_smoothing)
    got = int_ce(
        jnp.asarray(x),
        jnp.asarray(y),
        label_smoothing=label_smoothing,
        class_weights=None if w is None else jnp.asarray(w),
        ignore_index=-100,
    )
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert got[2] == 0.0
    assert got[5] == 0.0


def test_label_smoothing_equals_soft_labels_like_optax(rng):
    eps = 0.2
    x = jnp.asarray(rng.normal(size=(4, 6)))
    y = rng.integers(0, 6, size=4)
    smoothed = optax.smooth_labels(jax.nn.one_hot(y, 6, dtype=jnp.float64), eps)
    np.testing.assert_allclose(
        int_ce(x, jnp.asarray(y), label_smoothing=eps),
        optax_soft_ce(x, smoothed),
        rtol=1e-12,
    )


def test_ignored_rows_have_zero_gradient(rng):
    x = jnp.asarray(rng.normal(size=(4, 3)))
    y = jnp.array([0, -100, 2, -100])

    def loss(z):
        return int_ce(z, y, label_smoothing=0.1, ignore_index=-100).sum()

    g = jax.jit(jax.grad(loss))(x)
    jf = jax.jit(jax.jacfwd(lambda z: int_ce(z, y, label_smoothing=0.1, ignore_index=-100)))(x)
    for d in (np.asarray(g), np.asarray(jf)[[1, 3]].sum(0)):
        assert np.all(np.isfinite(d))
    np.testing.assert_array_equal(np.asarray(g)[[1, 3]], 0.0)
    np.testing.assert_array_equal(np.asarray(jf)[:, [1, 3]], 0.0)
    np.testing.assert_array_equal(np.asarray(jf)[[1, 3]], 0.0)


@pytest.mark.parametrize("bad", [-1, -100, 3, 7])
def test_out_of_range_label_is_nan_not_wrapped(bad):
    x = jnp.array([[0.5, 1.0, 3.0], [0.1, 0.2, 0.3]])
    got = np.asarray(int_ce(x, jnp.array([bad, 1])))
    assert np.isnan(got[0]), "a bad label must not silently pick a class (e.g. the last one)"
    assert np.isfinite(got[1])
    # With a different ignore_index, -100 is still a bad label.
    got = np.asarray(int_ce(x, jnp.array([bad, 1]), ignore_index=-7))
    assert np.isnan(got[0])


# ---------------------------------------------------------------------------------------------
# Soft labels.


def test_soft_ce_matches_numpy_and_optax(rng):
    x = jnp.asarray(rng.normal(size=(2, 3, 5)))
    y = sps.softmax(rng.normal(size=(2, 3, 5)), -1)
    want = -np.sum(y * np_log_softmax(np.asarray(x)), -1)
    got = soft_ce(x, jnp.asarray(y))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got, optax_soft_ce(x, jnp.asarray(y)), rtol=1e-12)
    np.testing.assert_allclose(soft_ce(x, jnp.asarray(y), 1), optax_soft_ce(x, jnp.asarray(y), 1))
    np.testing.assert_allclose(
        soft_ce(x, jnp.asarray(y), (1, 2)), optax_soft_ce(x, jnp.asarray(y), (1, 2)), rtol=1e-12
    )
    np.testing.assert_allclose(
        soft_ce(x, jnp.asarray(y), None), optax_soft_ce(x, jnp.asarray(y), None), rtol=1e-12
    )


def test_soft_ce_where_like_optax(rng):
    x = jnp.asarray(rng.normal(size=(4, 5)))
    y = jnp.asarray(sps.softmax(rng.normal(size=(4, 5)), -1))
    mask = jnp.asarray(rng.random((4, 5)) > 0.3)
    np.testing.assert_allclose(soft_ce(x, y, -1, mask), optax_soft_ce(x, y, -1, mask), rtol=1e-12)
    ex = jnp.array([True, False, True, True])
    np.testing.assert_allclose(soft_ce(x, y, -1, ex), optax_soft_ce(x, y, -1, ex), rtol=1e-12)


def test_soft_ce_with_one_hot_equals_integer_ce(rng):
    x = jnp.asarray(rng.normal(size=(5, 4)))
    y = rng.integers(0, 4, size=5)
    np.testing.assert_allclose(
        soft_ce(x, jax.nn.one_hot(y, 4, dtype=jnp.float64)), int_ce(x, jnp.asarray(y)), rtol=1e-12
    )


# ---------------------------------------------------------------------------------------------
# Probabilities.


def test_probs_ce_matches_numpy(rng):
    p = sps.softmax(rng.normal(size=(4, 5)), -1)
    y = sps.softmax(rng.normal(size=(4, 5)), -1)
    y[0] = [0, 0, 1, 0, 0]
    p[0, [0, 4]] = 0.0  # exact zeros where the label is 0
    want = -np.sum(sps.xlogy(y, p), -1)
    np.testing.assert_allclose(probs_ce(jnp.asarray(p), jnp.asarray(y)), want, rtol=1e-12)
    np.testing.assert_allclose(
        probs_ce(jnp.asarray(p), jnp.asarray(y), base=2), want / np.log(2), rtol=1e-12
    )
    # Class axis first.
    np.testing.assert_allclose(
        probs_ce(jnp.asarray(p.T), jnp.asarray(y.T), axis=0), want, rtol=1e-12
    )
    labels = rng.integers(0, 5, size=4)
    np.testing.assert_allclose(
        probs_ce(jnp.asarray(p.T), jnp.asarray(labels), axis=0),
        -np.log(p[np.arange(4), labels]),
        rtol=1e-12,
    )


def test_probs_ce_min_prob_floors_only_inside_log():
    p = jnp.array([0.5, 0.5, 0.0])
    assert float(probs_ce(p, jnp.array(2), min_prob=1e-6)) == pytest.approx(-np.log(1e-6))
    assert float(probs_ce(p, jnp.array(0), min_prob=1e-6)) == pytest.approx(np.log(2))


def test_probs_ce_where(rng):
    p = sps.softmax(rng.normal(size=(3, 4)), -1)
    y = sps.softmax(rng.normal(size=(3, 4)), -1)
    mask = rng.random((3, 4)) > 0.4
    got = probs_ce(jnp.asarray(p), jnp.asarray(y), where=jnp.asarray(mask))
    np.testing.assert_allclose(got, -np.sum(mask * y * np.log(p), -1), rtol=1e-12)


def test_probs_ce_equals_logit_ce(rng):
    x = rng.normal(size=(5, 4))
    y = rng.integers(0, 4, size=5)
    np.testing.assert_allclose(
        probs_ce(jnp.asarray(sps.softmax(x, -1)), jnp.asarray(y)),
        int_ce(jnp.asarray(x), jnp.asarray(y)),
        rtol=1e-12,
    )


# ---------------------------------------------------------------------------------------------
# Sigmoid BCE.


def test_bce_matches_optax_and_formula(rng):
    x = rng.normal(size=(4, 3)) * 4
    y = rng.random((4, 3))
    y[0] = [0.0, 1.0, 1.0]
    want = -(y * np.log(sps.expit(x)) + (1 - y) * np.log(sps.expit(-x)))
    got = bce(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(
        got, optax.sigmoid_binary_cross_entropy(jnp.asarray(x), jnp.asarray(y)), rtol=1e-12
    )


def test_bce_pos_weight_like_pytorch(rng):
    # BCEWithLogitsLoss(pos_weight=w): -(w y log σ(x) + (1-y) log(1-σ(x))).
    x = rng.normal(size=(5, 3)) * 3
    y = (rng.random((5, 3)) > 0.5).astype(np.float64)
    w = np.array([0.5, 2.0, 3.0])
    want = -(w * y * np.log(sps.expit(x)) + (1 - y) * np.log1p(-sps.expit(x)))
    got = bce(jnp.asarray(x), jnp.asarray(y), pos_weight=jnp.asarray(w))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_bce_where(rng):
    x = rng.normal(size=(6,))
    y = rng.random(6)
    m = np.array([True, False, True, False, True, True])
    want = -(y * np.log(sps.expit(x)) + (1 - y) * np.log(sps.expit(-x))) * m
    np.testing.assert_allclose(
        bce(jnp.asarray(x), jnp.asarray(y), where=jnp.asarray(m)), want, rtol=1e-12
    )


# ---------------------------------------------------------------------------------------------
# Perplexity.


def test_perplexity_excludes_padding(rng):
    x = rng.normal(size=(3, 7, 5))
    y = rng.integers(0, 5, size=(3, 7))
    mask = np.ones((3, 7), bool)
    mask[0, 4:] = False
    mask[1, 1:] = False
    y[~mask] = -100  # padding labels; they must not leak into the result
    nll = -np.take_along_axis(np_log_softmax(x), np.where(mask, y, 0)[..., None], -1)[..., 0]
    want = np.exp((nll * mask).sum(-1) / mask.sum(-1))
    got = perplexity(jnp.asarray(x), jnp.asarray(y), where=jnp.asarray(mask))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    g = jax.jit(jax.grad(lambda z: perplexity(z, jnp.asarray(y), where=jnp.asarray(mask)).sum()))
    g = np.asarray(g(jnp.asarray(x)))
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g[~mask], 0.0)


def test_perplexity_unmasked_and_uniform(rng):
    x = rng.normal(size=(2, 4, 3))
    y = rng.integers(0, 3, size=(2, 4))
    ce = -np.take_along_axis(np_log_softmax(x), y[..., None], -1)[..., 0]
    np.testing.assert_allclose(
        perplexity(jnp.asarray(x), jnp.asarray(y)), np.exp(ce.mean(-1)), rtol=1e-12
    )
    np.testing.assert_allclose(perplexity(jnp.zeros((2, 4, 3)), jnp.asarray(y)), 3.0, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Properties.

K = 5
logits_s = hnp.arrays(np.float64, (3, K), elements=st.floats(-15, 15))
labels_s = hnp.arrays(np.int64, (3,), elements=st.integers(0, K - 1))
keep_s = st.lists(st.booleans(), min_size=K, max_size=K).filter(any)


@PROPERTY
@given(logits_s, logits_s)
def test_gibbs_inequality(xp, xq):
    p = sps.softmax(xp, -1)
    cross = np.asarray(soft_ce(jnp.asarray(xq), jnp.asarray(p)))
    h = -np.sum(sps.xlogy(p, p), -1)
    assert np.all(cross >= h - 1e-12)
    np.testing.assert_allclose(cross, -np.sum(p * np_log_softmax(xq), -1), rtol=1e-9, atol=1e-12)


@PROPERTY
@given(logits_s, labels_s, keep_s)
def test_integer_ce_where_equals_slicing(x, y, keep):
    keep = np.array(keep)
    y = np.where(keep[y], y, np.argmax(keep))  # labels must be kept classes
    remap = np.cumsum(keep) - 1  # class index inside the sliced logits
    got = int_ce(jnp.asarray(x), jnp.asarray(y), where=jnp.asarray(np.broadcast_to(keep, x.shape)))
    np.testing.assert_allclose(
        got, int_ce(jnp.asarray(x[:, keep]), jnp.asarray(remap[y])), rtol=1e-12
    )


@PROPERTY
@given(logits_s, logits_s, keep_s)
def test_soft_ce_where_equals_slicing(x, yl, keep):
    keep = np.array(keep)
    y = sps.softmax(yl, -1)
    got = soft_ce(jnp.asarray(x), jnp.asarray(y), where=jnp.asarray(np.broadcast_to(keep, x.shape)))
    np.testing.assert_allclose(
        got, soft_ce(jnp.asarray(x[:, keep]), jnp.asarray(y[:, keep])), rtol=1e-12, atol=1e-15
    )


@PROPERTY
@given(
    hnp.arrays(np.float64, (2, 3, 4), elements=st.floats(-10, 10)),
    hnp.arrays(np.int64, (2, 3), elements=st.integers(0, 3)),
    st.sampled_from([0, 1]),
)
def test_ce_invariant_to_axis(x, y, axis):
    base = np.asarray(int_ce(jnp.asarray(x), jnp.asarray(y)))
    moved = jnp.asarray(np.moveaxis(x, -1, axis))
    np.testing.assert_allclose(int_ce(moved, jnp.asarray(y), axis=axis), base, rtol=1e-12)
    p = sps.softmax(x, -1)
    np.testing.assert_allclose(
        soft_ce(moved, jnp.asarray(np.moveaxis(p, -1, axis)), axis=axis),
        soft_ce(jnp.asarray(x), jnp.asarray(p)),
        rtol=1e-12,
    )
    # -log p from probabilities loses ~1e-16 absolute where p ~ 1 (losses of 1e-8 happen here).
    np.testing.assert_allclose(
        probs_ce(jnp.asarray(np.moveaxis(p, -1, axis)), jnp.asarray(y), axis=axis),
        base,
        rtol=1e-9,
        atol=1e-14,
    )


# ---------------------------------------------------------------------------------------------
# Gradients.


def test_integer_ce_gradient_is_softmax_minus_onehot(rng):
    x = rng.normal(size=(4, 6)) * 2
    y = rng.integers(0, 6, size=4)
    want = sps.softmax(x, -1) - np.eye(6)[y]
    g = jax.jit(jax.grad(lambda z: int_ce(z, jnp.asarray(y)).sum()))(jnp.asarray(x))
    np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-14)
    jf = jax.jit(jax.jacfwd(lambda z: int_ce(z, jnp.asarray(y))))(jnp.asarray(x))
    np.testing.assert_allclose(np.einsum("iic->ic", np.asarray(jf)), want, rtol=1e-10, atol=1e-14)
    # Soft labels: softmax - y.
    t = sps.softmax(rng.normal(size=(4, 6)), -1)
    g = jax.jit(jax.grad(lambda z: soft_ce(z, jnp.asarray(t)).sum()))(jnp.asarray(x))
    np.testing.assert_allclose(g, sps.softmax(x, -1) - t, rtol=1e-10, atol=1e-14)


def test_smoothed_weighted_gradient_closed_form(rng):
    # d/dx of (1-ε) w_y (lse - x_y) + ε/C Σ_c w_c (lse - x_c)
    #   = (1-ε) w_y (p - e_y) + ε/C (Σ_c w_c) p - ε/C w.
    eps = 0.25
    x = rng.normal(size=(3, 4))
    y = rng.integers(0, 4, size=3)
    w = rng.random(4) + 0.5
    p = sps.softmax(x, -1)
    e = np.eye(4)[y]
    want = (1 - eps) * w[y][:, None] * (p - e) + eps / 4 * (w.sum() * p - w)
    g = jax.jit(
        jax.grad(
            lambda z: int_ce(
                z, jnp.asarray(y), label_smoothing=eps, class_weights=jnp.asarray(w)
            ).sum()
        )
    )(jnp.asarray(x))
    np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-14)


def test_bce_gradient_closed_form(rng):
    x = rng.normal(size=(7,)) * 3
    y = rng.random(7)
    g = jax.jit(jax.grad(lambda z: bce(z, jnp.asarray(y)).sum()))(jnp.asarray(x))
    np.testing.assert_allclose(g, sps.expit(x) - y, rtol=1e-10, atol=1e-15)


def _inputs(rng):
    x = rng.normal(size=(3, 4))
    y = rng.integers(0, 4, size=3)
    t = sps.softmax(rng.normal(size=(3, 4)), -1)
    p = sps.softmax(rng.normal(size=(3, 4)), -1)
    b = rng.random((3, 4))
    return x, y, t, p, b


GRAD_CASES = {
    "integer_ce": lambda x, y, t, p, b: (lambda z: int_ce(z, y), (x,)),
    "integer_ce_smooth_weighted": lambda x, y, t, p, b: (
        lambda z: int_ce(z, y, label_smoothing=0.1, class_weights=jnp.arange(1.0, 5.0)),
        (x,),
    ),
    "soft_ce": lambda x, y, t, p, b: (soft_ce, (x, t)),
    "probs_ce_soft": lambda x, y, t, p, b: (probs_ce, (p, t)),
    "probs_ce_int": lambda x, y, t, p, b: (lambda q: probs_ce(q, y), (p,)),
    "bce": lambda x, y, t, p, b: (lambda z, lab: bce(z, lab, pos_weight=jnp.float64(2.0)), (x, b)),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_check_grads(rng, name):
    x, y, t, p, b = (jnp.asarray(a) for a in _inputs(rng))
    fn, args = GRAD_CASES[name](x, y, t, p, b)
    check_grads(fn, args, order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-6, rtol=1e-6)
