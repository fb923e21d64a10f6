"""The edge suite: values *and* gradients (``jax.grad`` and ``jax.jacfwd``) at the edges.

0·log 0 = 0; ``-inf`` logits; fully masked rows; logits of ±1e4; probabilities with exact zeros;
bf16/fp16 inputs; and the infinities that are the right answer. Every case is compiled with
``jax.jit``. Edge inputs are float32 (what users feed); references are float64 numpy.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import scipy.special as sps

import entjax
from entjax import _numerics as nx

INF = np.inf
F32_EPS = float(np.finfo(np.float32).eps)


def np_log_softmax(x):
    with np.errstate(invalid="ignore"):
        return x - sps.logsumexp(x, axis=-1, keepdims=True)


def np_entropy(x):
    p = sps.softmax(x, -1)
    return -np.sum(sps.xlogy(p, p), -1)


def np_bce(x, y):
    return -(y * np.log(sps.expit(x)) + (1 - y) * np.log(sps.expit(-x)))


@dataclasses.dataclass(frozen=True)
class Case:
    """``fn(x)`` (per-example output), its input, the exact reference value, and the entries of
    ``x`` whose gradient must be exactly zero."""

    fn: Callable
    x: np.ndarray
    want: np.ndarray
    zero_grad: np.ndarray  # bool, same shape as x

    def check(self, rtol=1e-6, atol=1e-6):
        x = jnp.asarray(self.x)
        value, grad, jac = (np.asarray(a) for a in value_grad_jac(self.fn)(x))
        np.testing.assert_allclose(value, self.want, rtol=rtol, atol=atol)
        assert np.all(np.isfinite(grad)), grad
        assert np.all(np.isfinite(jac)), jac
        np.testing.assert_array_equal(grad[self.zero_grad], 0.0)
        # jac has shape out.shape + x.shape; sum out the outputs to get per-input columns.
        jac_cols = jac.reshape(-1, *self.x.shape).sum(0) if jac.ndim > self.x.ndim else jac
        np.testing.assert_allclose(jac_cols, grad, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(jac.reshape(-1, *self.x.shape)[:, self.zero_grad], 0.0)
        return value, grad


def value_grad_jac(fn):
    """One compiled program for the value, the reverse-mode gradient of its sum, and the
    forward-mode Jacobian."""
    return jax.jit(lambda x: (fn(x), jax.grad(lambda z: jnp.sum(fn(z)))(x), jax.jacfwd(fn)(x)))


def f32(a):
    return np.asarray(a, np.float32)


# ---------------------------------------------------------------------------------------------
# 0 log 0 = 0 and -inf logits (structural zeros).

X_INF = f32([[1.0, -INF, 0.5, -INF], [-INF, 2.0, -1.0, 0.0]])
FIN = np.isfinite(X_INF)
Y_INT = np.array([0, 3])
Y_SOFT = np.where(FIN, 1.0, 0.0) / FIN.sum(-1, keepdims=True)  # zero where the logit is -inf
Q = f32([[0.3, 0.1, -0.2, 0.4], [0.5, -1.0, 0.2, 0.0]])
P_ZERO = f32([[0.5, 0.0, 0.5, 0.0], [0.0, 0.25, 0.25, 0.5]])


def _ref_sliced(fn_np):
    return np.array([fn_np(X_INF[i][FIN[i]].astype(np.float64), i) for i in range(2)])


def _smoothed(row, i, eps=0.1):
    # Smoothing over the candidate classes only (the documented semantics).
    lp = np_log_softmax(row)
    label = int(np.cumsum(FIN[i])[Y_INT[i]] - 1)
    return (1 - eps) * -lp[label] + eps * np.mean(-lp)


INF_CASES = {
    "entropy": Case(entjax.entropy, X_INF, _ref_sliced(lambda r, i: np_entropy(r)), ~FIN),
    "integer_ce": Case(
        lambda x: entjax.softmax_cross_entropy_with_integer_labels(x, jnp.asarray(Y_INT)),
        X_INF,
        _ref_sliced(lambda r, i: -np_log_softmax(r)[int(np.cumsum(FIN[i])[Y_INT[i]] - 1)]),
        ~FIN,
    ),
    "integer_ce_smoothed": Case(
        lambda x: entjax.softmax_cross_entropy_with_integer_labels(
            x, jnp.asarray(Y_INT), label_smoothing=0.1
        ),
        X_INF,
        _ref_sliced(_smoothed),
        ~FIN,
    ),
    "soft_ce": Case(
        lambda x: entjax.softmax_cross_entropy(x, jnp.asarray(Y_SOFT)),
        X_INF,
        _ref_sliced(lambda r, i: -np.mean(np_log_softmax(r))),
        ~FIN,
    ),
    "kl_p_masked": Case(
        lambda x: entjax.categorical_kl(x, jnp.asarray(Q)),
        X_INF,
        np.sum(sps.rel_entr(sps.softmax(X_INF.astype(float), -1), sps.softmax(Q, -1)), -1),
        ~FIN,
    ),
    "kl_q_masked_under_p_zero": Case(
        lambda x: entjax.categorical_kl(jnp.asarray(X_INF), x),
        np.where(FIN, Q, -INF).astype(np.float32),
        np.sum(
            sps.rel_entr(
                sps.softmax(X_INF.astype(float), -1), sps.softmax(np.where(FIN, Q, -INF), -1)
            ),
            -1,
        ),
        ~FIN,
    ),
    "js_p_masked": Case(
        lambda x: entjax.js_divergence(x, jnp.asarray(Q)),
        X_INF,
        np.array(
            [
                0.5 * np.sum(sps.rel_entr(p, 0.5 * (p + q)) + sps.rel_entr(q, 0.5 * (p + q)))
                for p, q in zip(
                    sps.softmax(X_INF.astype(float), -1), sps.softmax(Q, -1), strict=True
                )
            ]
        ),
        ~FIN,
    ),
    "entropy_from_probs_zeros": Case(
        entjax.entropy_from_probs,
        P_ZERO,
        -np.sum(sps.xlogy(P_ZERO, P_ZERO), -1),
        np.zeros(P_ZERO.shape, bool),
    ),
    "probs_ce_zero_where_label_zero": Case(
        lambda p: entjax.cross_entropy_from_probs(p, jnp.asarray(P_ZERO)),
        P_ZERO,
        -np.sum(sps.xlogy(P_ZERO, P_ZERO), -1),
        np.zeros(P_ZERO.shape, bool),
    ),
    "probs_ce_soft_labels_grad": Case(
        lambda y: entjax.cross_entropy_from_probs(jnp.asarray(P_ZERO), y),
        f32([[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5]]),
        -np.sum(sps.xlogy(f32([[0.5, 0, 0.5, 0], [0, 0.5, 0, 0.5]]), P_ZERO), -1),
        np.zeros(P_ZERO.shape, bool),
    ),
    "binary_entropy_inf": Case(
        entjax.binary_entropy,
        f32([INF, -INF, 0.0]),
        np.array([0.0, 0.0, np.log(2)]),
        np.array([True, True, True]),
    ),
    "bce_inf_matching_label": Case(
        lambda x: entjax.sigmoid_binary_cross_entropy(x, jnp.array([1.0, 0.0])),
        f32([INF, -INF]),
        np.zeros(2),
        np.array([True, True]),
    ),
}


@pytest.mark.parametrize("name", list(INF_CASES))
def test_structural_zeros(name):
    INF_CASES[name].check()


def test_zero_log_zero_known_values():
    assert float(jax.jit(entjax.entropy_from_probs)(f32([0.5, 0.5, 0.0]))) == pytest.approx(
        np.log(2)
    )
    assert float(jax.jit(entjax.entropy)(f32([0.0, 0.0, -INF]))) == pytest.approx(np.log(2))
    assert float(
        jax.jit(entjax.cross_entropy_from_probs)(f32([0.5, 0.5, 0.0]), f32([1.0, 0.0, 0.0]))
    ) == pytest.approx(np.log(2))
    assert float(jax.jit(entjax.categorical_kl)(f32([0.0, -INF]), f32([0.0, 0.0]))) == (
        pytest.approx(np.log(2))
    )


# ---------------------------------------------------------------------------------------------
# Fully masked rows: value 0 and gradient 0, both by -inf logits and by where=False.

X = f32([[0.3, -1.2, 2.0], [0.5, 0.1, -0.4]])
ALL_INF = f32([[-INF, -INF, -INF], [0.5, 0.1, -0.4]])
ROW0 = np.array([[True, True, True], [False, False, False]])
W_EX = jnp.array([False, True])  # per-example mask: row 0 masked
W_LOGIT = jnp.asarray(~ROW0)  # per-logit mask: every class of row 0 masked
P = f32([[0.2, 0.0, 0.8], [0.3, 0.3, 0.4]])

MASKED_CASES = {
    "entropy_all_inf": (entjax.entropy, ALL_INF),
    "entropy_where_example": (lambda x: entjax.entropy(x, where=W_EX), X),
    "entropy_where_logit": (lambda x: entjax.entropy(x, where=W_LOGIT), X),
    "integer_ce_all_inf": (
        lambda x: entjax.softmax_cross_entropy_with_integer_labels(x, jnp.array([1, 2])),
        ALL_INF,
    ),
    "integer_ce_all_inf_smoothed": (
        lambda x: entjax.softmax_cross_entropy_with_integer_labels(
            x, jnp.array([1, 2]), label_smoothing=0.2
        ),
        ALL_INF,
    ),
    "integer_ce_where_example": (
        lambda x: entjax.softmax_cross_entropy_with_integer_labels(x, jnp.array([1, 2]), -1, W_EX),
        X,
    ),
    "integer_ce_where_logit": (
        lambda x: entjax.softmax_cross_entropy_with_integer_labels(
            x, jnp.array([1, 2]), where=W_LOGIT, label_smoothing=0.1
        ),
        X,
    ),
    "soft_ce_all_inf": (
        lambda x: entjax.softmax_cross_entropy(x, jnp.asarray(P)),
        ALL_INF,
    ),
    "soft_ce_where_example": (
        lambda x: entjax.softmax_cross_entropy(x, jnp.asarray(P), -1, W_EX),
        X,
    ),
    "soft_ce_where_logit": (
        lambda x: entjax.softmax_cross_entropy(x, jnp.asarray(P), -1, W_LOGIT),
        X,
    ),
    "kl_all_inf": (lambda x: entjax.categorical_kl(x, x), ALL_INF),
    "kl_where": (lambda x: entjax.categorical_kl(x, jnp.asarray(X[::-1]), where=W_EX), X),
    "js_all_inf": (lambda x: entjax.js_divergence(x, x[:, ::-1]), ALL_INF),
    "js_where": (lambda x: entjax.js_divergence(x, jnp.asarray(X[::-1]), where=W_LOGIT), X),
    "entropy_from_probs_where": (lambda p: entjax.entropy_from_probs(p, where=W_EX), P),
    "probs_ce_where": (
        lambda p: entjax.cross_entropy_from_probs(p, jnp.array([1, 0]), where=W_EX),
        P,
    ),
    "binary_entropy_where": (
        lambda x: entjax.binary_entropy(x, where=jnp.asarray(~ROW0)),
        X,
    ),
    "bce_where": (
        lambda x: entjax.sigmoid_binary_cross_entropy(x, jnp.asarray(P), where=jnp.asarray(~ROW0)),
        X,
    ),
}


@pytest.mark.parametrize("name", list(MASKED_CASES))
def test_fully_masked_row_is_zero_with_zero_gradient(name):
    fn, x = MASKED_CASES[name]
    value, grad, jac = (np.asarray(a) for a in value_grad_jac(fn)(jnp.asarray(x)))
    assert np.all(value[0] == 0.0), value
    assert np.all(np.isfinite(value)), value
    assert np.all(np.isfinite(grad))
    assert np.all(np.isfinite(jac))
    np.testing.assert_array_equal(grad[0], 0.0)
    np.testing.assert_array_equal(jac.reshape(-1, *x.shape)[:, 0], 0.0)  # d(anything)/d row 0
    np.testing.assert_array_equal(jac[0], 0.0)  # d(row 0 output)/d(anything)


# ---------------------------------------------------------------------------------------------
# Logits of ±1e4 are exact (compared with float64 closed forms).

BIG = f32([[1e4, -1e4, 0.0], [1e4, 1e4 - 1, 1e4 - 3], [-1e4, -1e4 - 1, -1e4 - 3]])
SHIFTED = np.array([[0.0, -2e4, -1e4], [0.0, -1.0, -3.0], [0.0, -1.0, -3.0]])  # x - max(x)


def test_large_logits_entropy():
    p = sps.softmax(SHIFTED, -1)
    h = -np.sum(sps.xlogy(p, p), -1)
    case = Case(entjax.entropy, BIG, h, np.zeros(BIG.shape, bool))
    _, grad = case.check(rtol=4 * F32_EPS, atol=0)
    np.testing.assert_allclose(grad, -p * (np.log(np.maximum(p, 1e-300)) + h[:, None]), atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("label", [0, 1, 2])
def test_large_logits_integer_ce(label, smoothing):
    y = jnp.full((3,), label)
    lp = np_log_softmax(SHIFTED)
    # (1-ε)(-log p_y) + ε/C Σ_c (-log p_c); without smoothing 0 / 2e4 / 1e4 for the first row.
    want = (1 - smoothing) * -lp[:, label] + smoothing * np.mean(-lp, -1)
    case = Case(
        lambda x: entjax.softmax_cross_entropy_with_integer_labels(x, y, label_smoothing=smoothing),
        BIG,
        want,
        np.zeros(BIG.shape, bool),
    )
    _, grad = case.check(rtol=4 * F32_EPS, atol=1e-6)
    target = (1 - smoothing) * np.eye(3)[label] + smoothing / 3
    np.testing.assert_allclose(grad, sps.softmax(SHIFTED, -1) - target, atol=1e-6)


def test_large_logits_soft_ce_and_probs():
    y = f32([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    want = -np.sum(y * np_log_softmax(SHIFTED), -1)  # row 0: 0.5 * 2e4 = 1e4
    case = Case(
        lambda x: entjax.softmax_cross_entropy(x, jnp.asarray(y)),
        BIG,
        want,
        np.zeros(BIG.shape, bool),
    )
    _, grad = case.check(rtol=4 * F32_EPS, atol=1e-6)
    np.testing.assert_allclose(grad, sps.softmax(SHIFTED, -1) - y, atol=1e-6)


def test_large_logits_divergences():
    xp = f32([[1e4, -1e4], [1e4, 0.0]])
    xq = f32([[-1e4, 1e4], [1e4 + 0.0, 0.0]])
    # KL = sum p (log p - log q): row 0 puts all mass where q has log-probability -2e4.
    kl_case = Case(
        lambda x: entjax.categorical_kl(x, jnp.asarray(xq)),
        xp,
        np.array([2e4, 0.0]),
        np.zeros(xp.shape, bool),
    )
    kl_case.check(rtol=4 * F32_EPS, atol=1e-6)
    js_case = Case(
        lambda x: entjax.js_divergence(x, jnp.asarray(xq)),
        xp,
        np.array([np.log(2), 0.0]),
        np.zeros(xp.shape, bool),
    )
    js_case.check(rtol=4 * F32_EPS, atol=1e-6)


def test_large_logits_binary():
    x = f32([1e4, -1e4, 1e4, -1e4])
    y = f32([0.0, 1.0, 1.0, 0.0])
    case = Case(
        lambda z: entjax.sigmoid_binary_cross_entropy(z, jnp.asarray(y)),
        x,
        np.array([1e4, 1e4, 0.0, 0.0]),
        np.array([False, False, True, True]),
    )
    _, grad = case.check(rtol=4 * F32_EPS, atol=0)
    np.testing.assert_array_equal(grad, sps.expit(x.astype(float)) - y)  # [1, -1, 0, 0]
    # H(sigmoid(±1e4)) = (1 + 1e4) e^{-1e4} to float64 precision: 0.
    Case(entjax.binary_entropy, x, np.zeros(4), np.ones(4, bool)).check(atol=0)


# ---------------------------------------------------------------------------------------------
# Probabilities with exact zeros give finite gradients.


def test_joint_tables_with_zero_cells_have_finite_gradients():
    t = f32([[[0.25, 0.0], [0.0, 0.75]], [[0.1, 0.2], [0.0, 0.7]]])
    for fn in (entjax.mutual_information, entjax.conditional_entropy):
        grad = jax.jit(jax.grad(lambda z, fn=fn: jnp.sum(fn(z))))(jnp.asarray(t))
        jac = jax.jit(jax.jacfwd(fn))(jnp.asarray(t))
        assert np.all(np.isfinite(np.asarray(grad)))
        assert np.all(np.isfinite(np.asarray(jac)))


# ---------------------------------------------------------------------------------------------
# Infinity is the right answer.


def test_infinities_that_are_correct():
    kl = jax.jit(entjax.categorical_kl)
    assert float(kl(f32([0.0, 0.0]), f32([0.0, -INF]))) == INF  # p > 0 where q = 0
    assert float(kl(f32([0.0, -INF]), f32([0.0, 0.0]))) == pytest.approx(np.log(2))
    int_ce = jax.jit(entjax.softmax_cross_entropy_with_integer_labels)
    out = int_ce(f32([[0.0, -INF, 1.0], [0.0, 1.0, 2.0]]), jnp.array([1, 1]))
    assert float(out[0]) == INF
    assert np.isfinite(float(out[1]))
    grad = jax.jit(jax.grad(lambda x: int_ce(x, jnp.array([1])).sum()))(f32([[0.0, -INF, 1.0]]))
    assert np.all(np.isfinite(np.asarray(grad)))  # documented: zero gradient on a +inf row
    soft = jax.jit(entjax.softmax_cross_entropy)
    assert float(soft(f32([0.0, -INF]), f32([0.5, 0.5]))) == INF
    probs = jax.jit(entjax.cross_entropy_from_probs)
    assert float(probs(f32([1.0, 0.0]), jnp.array(1))) == INF
    bce = jax.jit(entjax.sigmoid_binary_cross_entropy)
    assert float(bce(f32(INF), f32(0.0))) == INF


def test_nan_propagates_and_is_not_masked_away():
    assert np.isnan(float(jax.jit(entjax.entropy)(f32([np.nan, 0.0]))))
    ce = jax.jit(entjax.softmax_cross_entropy_with_integer_labels)
    assert np.isnan(float(ce(f32([[np.nan, 0.0]]), jnp.array([1]))[0]))
    assert np.isnan(float(jax.jit(entjax.binary_entropy)(f32(np.nan))))


# ---------------------------------------------------------------------------------------------
# bf16 / fp16: computed and returned in float32, error explained by the input rounding alone.

rng0 = np.random.default_rng(42)
XL = rng0.normal(size=(4, 8)) * 3
XL2 = rng0.normal(size=(4, 8)) * 3
YI = rng0.integers(0, 8, size=4)
PP = sps.softmax(rng0.normal(size=(4, 8)), -1)
YS = sps.softmax(rng0.normal(size=(4, 8)), -1)
YB = rng0.random((4, 8))

LOW_CASES = {
    "entropy": (lambda a: entjax.entropy(a[0]), (XL,), lambda a: np_entropy(a[0])),
    "integer_ce": (
        lambda a: entjax.softmax_cross_entropy_with_integer_labels(a[0], jnp.asarray(YI)),
        (XL,),
        lambda a: -np.take_along_axis(np_log_softmax(a[0]), YI[:, None], -1)[:, 0],
    ),
    "soft_ce": (
        lambda a: entjax.softmax_cross_entropy(a[0], a[1]),
        (XL, YS),
        lambda a: -np.sum(a[1] * np_log_softmax(a[0]), -1),
    ),
    "kl": (
        lambda a: entjax.categorical_kl(a[0], a[1]),
        (XL, XL2),
        lambda a: np.sum(sps.rel_entr(sps.softmax(a[0], -1), sps.softmax(a[1], -1)), -1),
    ),
    "js": (
        lambda a: entjax.js_divergence(a[0], a[1]),
        (XL, XL2),
        lambda a: (
            lambda p, q: (
                0.5 * np.sum(sps.rel_entr(p, (p + q) / 2) + sps.rel_entr(q, (p + q) / 2), -1)
            )
        )(sps.softmax(a[0], -1), sps.softmax(a[1], -1)),
    ),
    "entropy_from_probs": (
        lambda a: entjax.entropy_from_probs(a[0]),
        (PP,),
        lambda a: -np.sum(sps.xlogy(a[0], a[0]), -1),
    ),
    "probs_ce": (
        lambda a: entjax.cross_entropy_from_probs(a[0], a[1]),
        (PP, YS),
        lambda a: -np.sum(sps.xlogy(a[1], a[0]), -1),
    ),
    "binary_entropy": (
        lambda a: entjax.binary_entropy(a[0]),
        (XL,),
        lambda a: (
            -(
                sps.xlogy(sps.expit(a[0]), sps.expit(a[0]))
                + sps.xlogy(sps.expit(-a[0]), sps.expit(-a[0]))
            )
        ),
    ),
    "bce": (
        lambda a: entjax.sigmoid_binary_cross_entropy(a[0], a[1]),
        (XL, YB),
        lambda a: np_bce(a[0], a[1]),
    ),
}


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bf16", "fp16"])
def test_low_precision_inputs(dtype):
    # All functions in one compiled program per dtype (compilation dominates the cost).
    low = {name: tuple(jnp.asarray(a, dtype) for a in case[1]) for name, case in LOW_CASES.items()}

    def run(low):
        return {
            name: (fn(low[name]), jax.grad(lambda a, fn=fn: jnp.sum(fn(a)))(low[name]))
            for name, (fn, _, _) in LOW_CASES.items()
        }

    results = jax.jit(run)(low)
    for name, (_, _, ref) in LOW_CASES.items():
        out, g = results[name]
        assert out.dtype == jnp.float32, name
        rounded = tuple(np.asarray(a).astype(np.float64) for a in low[name])  # what fn sees
        want = ref(rounded)
        # Only float32 arithmetic error is left: a few float32 ulps of the result (relative to
        # max(|result|, 1), since several results are sums of terms of mixed sign).
        err = np.abs(np.asarray(out, np.float64) - want) / np.maximum(np.abs(want), 1.0)
        assert np.all(err <= 8 * F32_EPS), (name, err / F32_EPS, out, want)
        # The gradient comes back in the input dtype and is finite.
        for gi, li in zip(g, low[name], strict=True):
            assert gi.dtype == li.dtype, name
            assert np.all(np.isfinite(np.asarray(gi, np.float32))), name


def test_low_precision_matches_ml_dtypes_rounding():
    # The reference above relies on jnp's bf16 rounding being round-to-nearest, as ml_dtypes.
    x = rng0.normal(size=16)
    np.testing.assert_array_equal(
        np.asarray(jnp.asarray(x, jnp.bfloat16), np.float64),
        x.astype(ml_dtypes.bfloat16).astype(np.float64),
    )


# --------------------------------------------------------------------------------------------
# Backend dispatch.


@pytest.mark.parametrize("forced", ["", "1"])
def test_force_default_forms_switch_is_read_at_trace_time(monkeypatch, forced):
    """``ENTJAX_FORCE_DEFAULT_FORMS`` makes ``on_cpu`` trace the default (GPU/TPU) form."""
    monkeypatch.setenv(nx.FORCE_DEFAULT_FORMS, forced)
    fn = jax.jit(lambda x: nx.on_cpu(lambda v: v + 1.0, lambda v: v + 2.0, x))
    want = 3.0 if forced else (2.0 if jax.default_backend() == "cpu" else 3.0)
    assert float(fn(jnp.float32(1.0))) == want
