"""The checked fast paths that batches of at least ``FAST_PATH_MIN_SIZE`` logits take on CPU.

On CPU, integer-label CE (plain and smoothed), soft-label CE and KL from logits shift by a
guessed value or use select-free sums, and recompute the careful way only when a check on the
result fails (``entjax._numerics.fallback_unless``). The edge tests of the loss modules use
small arrays, which never take these paths; here every edge of those tests sits inside a batch
large enough to take them, in float32 and float64, and values and gradients are compared with
float64 numpy written out. The backend-independent reference forms (what accelerators run) are
checked against the same references.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sps

import entjax
from entjax import _cross_entropy, _divergences, _numerics as nx

N, C = 64, 128  # 8192 logits: the fast paths' size
assert N * C >= nx.FAST_PATH_MIN_SIZE
EPS = 0.1
NEG = -np.inf


def _batch(rng, dtype):
    """Random logits with a random label per row, and the same batch with every edge in it."""
    x = 3.0 * rng.standard_normal((N, C))
    y = rng.integers(0, C, N)
    edged = x.copy()
    big = 200.0 if dtype == np.float32 else 1000.0  # exp(big) overflows: the guess must fail
    edged[0, (y[0] + 1) % C] = edged[0, y[0]] + big
    edged[1, ::3] = NEG  # -inf logits away from the label
    edged[1, y[1]] = 0.5
    edged[2] = NEG  # a row without any class
    edged[3, y[3]] = NEG  # the label has probability 0
    edged[4] = rng.choice([-1e4, 1e4], C)
    edged[4, y[4]] = 1e4 - 1.0
    return x.astype(dtype), edged.astype(dtype), y


def _np_log_softmax(x):
    """Float64 log-softmax over the finite entries; ``-inf`` entries stay ``-inf``."""
    x = x.astype(np.float64)
    out = np.full_like(x, NEG)
    for i, row in enumerate(x):
        ok = row > NEG
        if ok.any():
            out[i, ok] = row[ok] - sps.logsumexp(row[ok])
    return out


def _np_smoothed_ce(x, y, eps, w):
    """Per-row loss and its gradients (x, w) with ``-inf`` logits as structural zeros.

    ``(1 - ε) w_y (-log p_y) + ε Σ_c w_c (-log p_c) / K`` over the K candidate classes;
    0 with zero gradient on a row without classes, ``+inf`` with zero gradient where
    ``p_y = 0``.
    """
    log_p = _np_log_softmax(x)
    w = np.ones(C) if w is None else w
    loss, dx, dw = np.zeros(len(x)), np.zeros(x.shape), np.zeros(x.shape)
    for i, row in enumerate(log_p):
        ok = row > NEG
        if not ok.any():
            continue
        if not ok[y[i]]:
            loss[i] = np.inf
            continue
        k = ok.sum()
        neg = np.where(ok, -row, 0.0)
        loss[i] = (1 - eps) * w[y[i]] * neg[y[i]] + eps * np.sum(w * neg) / k
        p = np.exp(row)
        alpha = (1 - eps) * w[y[i]] + eps * np.sum(np.where(ok, w, 0.0)) / k
        dx[i] = alpha * p - eps * np.where(ok, w, 0.0) / k
        dx[i, y[i]] -= (1 - eps) * w[y[i]]
        dw[i] = eps * neg / k
        dw[i, y[i]] += (1 - eps) * neg[y[i]]
    return loss, dx, dw


def _np_soft_ce(x, t):
    log_p = _np_log_softmax(x)
    loss, dx, dt = np.zeros(len(x)), np.zeros(x.shape), np.zeros(x.shape)
    for i, row in enumerate(log_p):
        ok = row > NEG
        if not ok.any():
            continue
        if np.any(t[i][~ok] > 0):
            loss[i] = np.inf
            continue
        loss[i] = -np.sum(t[i][ok] * row[ok])
        dx[i] = t[i].sum() * np.exp(row) - t[i]
        dt[i] = np.where(ok, -row, 0.0)
    return loss, dx, dt


def _np_kl(xp, xq):
    log_p, log_q = _np_log_softmax(xp), _np_log_softmax(xq)
    loss, dp, dq = np.zeros(len(xp)), np.zeros(xp.shape), np.zeros(xp.shape)
    for i in range(len(xp)):
        p_ok = log_p[i] > NEG
        if not p_ok.any():
            continue
        if np.any(p_ok & (log_q[i] == NEG)):
            loss[i] = np.inf
            continue
        p, q = np.exp(log_p[i]), np.exp(log_q[i])
        with np.errstate(invalid="ignore"):  # -inf - -inf where p = q = 0, masked out
            ratio = np.where(p_ok, log_p[i] - log_q[i], 0.0)
        loss[i] = np.sum(p * ratio)
        dp[i] = p * (ratio - loss[i])
        dq[i] = q - p
    return loss, dp, dq


def _finite_sum(loss):
    return jnp.sum(jnp.where(jnp.isfinite(loss), loss, 0.0))


def _tol(dtype):
    return {"rtol": 2e-4, "atol": 2e-4} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-9}


def _check(got, want, dtype):
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(np.asarray(got, np.float64)[finite], want[finite], **_tol(dtype))


@functools.partial(jax.jit, static_argnames=("fn",))
def _value_and_grads(fn, *args):
    """Per-row values and the gradient of their finite sum w.r.t. every argument but labels."""
    loss = fn(*args)
    grads = jax.grad(lambda *a: _finite_sum(fn(*a)), argnums=(0, 1))(*args)
    return loss, grads


def _int_ce(x, w, y):
    return entjax.softmax_cross_entropy_with_integer_labels(x, y, class_weights=w)


def _smoothed(x, w, y):
    return entjax.softmax_cross_entropy_with_integer_labels(
        x, y, class_weights=w, label_smoothing=EPS
    )


DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


@DTYPES
@pytest.mark.parametrize("edges", [False, True], ids=["clean", "edges"])
@pytest.mark.parametrize("eps", [0.0, EPS], ids=["plain", "smoothed"])
def test_integer_ce(rng, dtype, edges, eps):
    clean, edged, y = _batch(rng, dtype)
    x = edged if edges else clean
    w = rng.uniform(0.5, 2.0, C).astype(dtype)
    fn = _smoothed if eps else _int_ce
    loss, (dx, dw) = _value_and_grads(fn, jnp.asarray(x), jnp.asarray(w), jnp.asarray(y))
    want, want_dx, want_dw = _np_smoothed_ce(x, y, eps, w)
    assert loss.dtype == dtype
    _check(loss, want, dtype)
    _check(dx, want_dx, dtype)
    _check(dw, want_dw.sum(0), dtype)
    assert np.isfinite(dx).all()
    assert np.isfinite(dw).all()


@DTYPES
@pytest.mark.parametrize("edges", [False, True], ids=["clean", "edges"])
def test_soft_label_ce(rng, dtype, edges):
    clean, edged, _ = _batch(rng, dtype)
    x = edged if edges else clean
    t = sps.softmax(rng.standard_normal((N, C)), -1)
    t[1, ::3] = 0.0  # zero mass where row 1's logits are -inf: no penalty
    t[1] /= t[1].sum()
    t = t.astype(dtype)
    if edges:
        x = x.copy()
        x[8, ::3] = NEG  # mass on -inf logits: +inf, zero gradient
    loss, (dx, dt) = _value_and_grads(entjax.softmax_cross_entropy, jnp.asarray(x), jnp.asarray(t))
    want, want_dx, want_dt = _np_soft_ce(x, t)
    _check(loss, want, dtype)
    if edges:
        assert np.isposinf(loss[8])
        assert np.isfinite(loss[1])
    _check(dx, want_dx, dtype)
    _check(dt, want_dt, dtype)


@DTYPES
@pytest.mark.parametrize("edges", [False, True], ids=["clean", "edges"])
def test_kl(rng, dtype, edges):
    clean, edged, _ = _batch(rng, dtype)
    xp = edged if edges else clean
    xq = (3.0 * rng.standard_normal((N, C))).astype(dtype)
    if edges:
        xq[5, :5] = NEG  # q = 0 where p > 0: +inf
        xq[6, ::3] = NEG  # q = 0 exactly where p = 0 (as row 1 of p): finite
        xp[6, ::3] = NEG
    loss, (dp, dq) = _value_and_grads(entjax.categorical_kl, jnp.asarray(xp), jnp.asarray(xq))
    want, want_dp, want_dq = _np_kl(xp, xq)
    _check(loss, want, dtype)
    if edges:
        assert np.isposinf(loss[5])
        assert np.isfinite(loss[6])
    _check(dp, want_dp, dtype)
    _check(dq, want_dq, dtype)


@DTYPES
@pytest.mark.parametrize("edges", [False, True], ids=["clean", "edges"])
def test_entropy(rng, dtype, edges):
    clean, edged, _ = _batch(rng, dtype)
    x = edged if edges else clean
    log_p = _np_log_softmax(x)
    p = np.exp(log_p)
    with np.errstate(invalid="ignore"):  # 0 * -inf where p = 0, masked out
        plogp = np.where(p > 0, p * log_p, 0.0)
        want = -plogp.sum(-1)
        want_dx = -np.where(p > 0, p * (log_p + want[:, None]), 0.0)
    fn = jax.jit(jax.value_and_grad(lambda x: jnp.sum(entjax.entropy(x))))
    total, dx = fn(jnp.asarray(x))
    h = jax.jit(entjax.entropy)(jnp.asarray(x))
    _check(h, want, dtype)
    np.testing.assert_allclose(total, want.sum(), **_tol(dtype))
    _check(dx, want_dx, dtype)
    if edges:
        assert h[2] == 0.0
        assert np.all(dx[2] == 0.0)


def test_nan_rows_propagate_and_the_rest_stay_exact(rng):
    clean, _, y = _batch(rng, np.float32)
    x = clean.copy()
    x[7, 3] = np.nan
    loss, (dx, _) = _value_and_grads(_int_ce, jnp.asarray(x), jnp.ones(C, np.float32), y)
    assert np.isnan(loss[7])
    assert np.isnan(loss).sum() == 1
    want, want_dx, _ = _np_smoothed_ce(np.delete(x, 7, 0), np.delete(y, 7), 0.0, None)
    _check(np.delete(np.asarray(loss), 7), want, np.float32)
    _check(np.delete(np.asarray(dx), 7, 0), want_dx, np.float32)


def test_vmapped_batches_fall_back_only_where_needed(rng):
    clean, edged, y = _batch(rng, np.float32)
    xs = jnp.stack([jnp.asarray(clean), jnp.asarray(edged)])
    fn = jax.jit(jax.vmap(jax.value_and_grad(lambda x: _finite_sum(_smoothed(x, None, y)))))
    values, grads = fn(xs)
    for x, value, grad in zip((clean, edged), values, grads, strict=True):
        want, want_dx, _ = _np_smoothed_ce(x, y, EPS, None)
        np.testing.assert_allclose(value, want[np.isfinite(want)].sum(), rtol=2e-5)
        _check(grad, want_dx, np.float32)


def test_reference_forms_match_the_same_references(rng):
    """The forms other backends compile (``lax.platform_dependent``'s default branch)."""
    _, x, y = _batch(rng, np.float64)
    labels = jnp.clip(jnp.asarray(y), 0, C - 1)
    nll = jax.jit(lambda x: _cross_entropy._integer_nll(x, labels)[0])
    want, want_dx, _ = _np_smoothed_ce(x, y, 0.0, None)
    _check(nll(x), want, np.float64)
    _check(jax.jit(jax.grad(lambda x: _finite_sum(nll(x))))(x), want_dx, np.float64)

    @jax.jit
    def smoothed(x):  # rows without a class are zeroed by the public function
        loss, any_valid = _cross_entropy._smoothed_ce(EPS, x, labels, None)
        return jnp.where(any_valid, loss, 0.0)

    want, want_dx, _ = _np_smoothed_ce(x, y, EPS, None)
    _check(smoothed(x), want, np.float64)
    grad = jax.jit(jax.grad(lambda x: _finite_sum(smoothed(x))))(x)
    _check(grad, want_dx, np.float64)

    t = sps.softmax(rng.standard_normal((N, C)), -1)
    soft_ce = jax.jit(_cross_entropy._soft_ce)
    _check(soft_ce(jnp.asarray(x), jnp.asarray(t)), _np_soft_ce(x, t)[0], np.float64)

    xq = 3.0 * rng.standard_normal((N, C))
    want, _, want_dq = _np_kl(x, xq)
    kl = jax.jit(_divergences._categorical_kl)
    _check(kl(x, xq), want, np.float64)
    _check(jax.jit(jax.grad(lambda q: _finite_sum(kl(x, q))))(xq), want_dq, np.float64)


def test_fallback_runs_only_when_the_check_fails():
    calls = []

    def fallback(v):
        jax.debug.callback(lambda: calls.append(1))
        return v + 1.0

    run = jax.jit(lambda ok, v: nx.fallback_unless(ok, v, fallback, v))
    assert float(run(True, jnp.float32(1.0))) == 1.0
    jax.effects_barrier()
    assert calls == []
    assert float(run(False, jnp.float32(1.0))) == 2.0
    jax.effects_barrier()
    assert calls == [1]


def test_by_row_blocks_matches_one_call(rng):
    x = jnp.asarray(rng.standard_normal((6, 5, 7)))

    def rowwise(a, b):
        return jnp.sum(a, -1) * b, a * 2

    b = jnp.asarray(rng.standard_normal((6, 5)))
    got = nx.by_row_blocks(rowwise, x, b, block_size=14)  # two rows per block, 15 blocks
    want = rowwise(x, b)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_row_max_shift_is_finite_on_infinite_rows():
    x = jnp.array([[NEG, NEG], [np.inf, 0.0], [1.0, 2.0]], jnp.float32)
    shift = nx.row_max_shift(x)
    assert np.isfinite(shift).all()
    assert shift[2] == 2.0
    assert shift[0] == np.finfo(np.float32).min
    assert shift[1] == np.finfo(np.float32).max
