"""Tests for the fused linear + cross-entropy / entropy (entjax/_fused.py).

References are independent of the chunked kernel: closed forms written out in numpy float64
(loss, ``∂ℓ/∂x`` and the chain rule through ``x = hW + b``) and the naive ``hidden @ weight``
followed by entjax's own functions on materialised logits, differentiated by JAX.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import entjax

N, D = 6, 5


# --------------------------------------------------------------------------------------------
# Independent references.


def ref_ce(h, w_dv, b, y, *, eps=0.0, z=0.0, keep=None, cot=None):
    """Loss and (d_hidden, d_weight[D, V], d_bias) for cotangent ``cot``, numpy float64."""
    h, w_dv = np.asarray(h, np.float64), np.asarray(w_dv, np.float64)
    b = np.zeros(w_dv.shape[1]) if b is None else np.asarray(b, np.float64)
    x = h @ w_dv + b
    m = x.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]
    p = np.exp(x - lse[:, None])
    num_classes = x.shape[1]
    onehot = np.eye(num_classes)[y]
    x_y = np.take_along_axis(x, y[:, None], axis=1)[:, 0]
    loss = (1 - eps) * (lse - x_y) + eps * np.mean(lse[:, None] - x, axis=1) + z * lse**2
    keep = np.ones(len(y), bool) if keep is None else keep
    loss = np.where(keep, loss, 0.0)
    cot = np.ones(len(y)) if cot is None else np.asarray(cot, np.float64)
    g = np.where(keep, cot, 0.0)
    dx = g[:, None] * ((1 + 2 * z * lse)[:, None] * p - (1 - eps) * onehot - eps / num_classes)
    return loss, lse, (dx @ w_dv.T, h.T @ dx, dx.sum(axis=0))


def ref_entropy(h, w_dv, b, cot):
    h, w_dv = np.asarray(h, np.float64), np.asarray(w_dv, np.float64)
    x = h @ w_dv + (0.0 if b is None else np.asarray(b, np.float64))
    x = x - x.max(axis=1, keepdims=True)
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    ent = -(p * log_p).sum(axis=1)
    mean_x = (p * x).sum(axis=1, keepdims=True)
    dx = -np.asarray(cot, np.float64)[:, None] * p * (x - mean_x)
    return ent, (dx @ w_dv.T, h.T @ dx, dx.sum(axis=0))


def problem(rng, num_classes, dtype=np.float64, n=N, scale=1.0):
    h = (scale * rng.normal(size=(n, D))).astype(dtype)
    w = rng.normal(size=(D, num_classes)).astype(dtype)
    b = rng.normal(size=(num_classes,)).astype(dtype)
    y = rng.integers(0, num_classes, size=n).astype(np.int32)
    cot = rng.normal(size=n).astype(dtype)
    return h, w, b, y, cot


def layout(w_dv, weight_layout):
    return w_dv if weight_layout == "dv" else np.ascontiguousarray(w_dv.T)


def unlayout(dw, weight_layout):
    return np.asarray(dw) if weight_layout == "dv" else np.asarray(dw).T


def assert_rel(actual, expected, rtol):
    """Max-norm relative error: ``max|a - e| <= rtol * max|e|``."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    err = np.max(np.abs(actual - expected))
    assert err <= rtol * max(np.max(np.abs(expected)), 1e-30), (err, np.max(np.abs(expected)))


def fused_vjp(fn, h, w, b, cot):
    """``fn(h, w, b)`` and its VJP with cotangent ``cot``, in one jitted computation."""

    @jax.jit
    def run(h, w, b, cot):
        out, pullback = jax.vjp(fn, h, w, b)
        return out, pullback(cot.astype(out.dtype))

    return run(h, w, b, jnp.asarray(cot))


# --------------------------------------------------------------------------------------------
# Cross-entropy against the closed form (float64, tight).


@pytest.mark.parametrize(
    ("weight_layout", "num_classes", "eps", "z", "use_bias"),
    [  # V = 24 is a multiple of the chunk (8), V = 29 is not; V = 5 is below it
        ("dv", 24, 0.0, 0.0, False),
        ("vd", 29, 0.0, 0.0, False),
        ("dv", 29, 0.1, 0.0, True),
        ("vd", 24, 0.1, 0.0, True),
        ("dv", 24, 0.0, 1e-2, True),
        ("vd", 29, 0.2, 1e-2, True),
        ("dv", 5, 0.1, 1e-2, True),
    ],
)
def test_ce_matches_closed_form_float64(rng, weight_layout, num_classes, eps, z, use_bias):
    h, w, b, y, cot = problem(rng, num_classes)
    b = b if use_bias else None

    @jax.jit
    def fn(h, w, b):
        return entjax.fused_linear_cross_entropy(
            h, w, y, bias=b, weight_layout=weight_layout, label_smoothing=eps, z_loss=z,
            chunk_size=8,
        )  # fmt: skip

    loss, (dh, dw, db) = fused_vjp(fn, h, layout(w, weight_layout), b, cot)
    ref_loss, _, (rdh, rdw, rdb) = ref_ce(h, w, b, y, eps=eps, z=z, cot=cot)
    assert loss.dtype == jnp.float64
    assert_rel(loss, ref_loss, 1e-12)
    assert_rel(dh, rdh, 1e-12)
    assert_rel(unlayout(dw, weight_layout), rdw, 1e-12)
    if use_bias:
        assert_rel(db, rdb, 1e-12)
    else:
        assert db is None


@pytest.mark.parametrize(("weight_layout", "num_classes"), [("dv", 77), ("vd", 64)])
def test_ce_float32_matches_naive_entjax(rng, weight_layout, num_classes):
    """float32 loss and gradients within 1e-5 of ``hidden @ weight`` + entjax, under jit."""
    h, w, b, y, cot = problem(rng, num_classes, np.float32)
    opts = {"label_smoothing": 0.05, "ignore_index": 3}
    y[1] = 3 if num_classes > 3 else y[1]

    def naive(h, w, b):
        logits = h @ (w if weight_layout == "dv" else w.T) + b[None, :]
        with jax.numpy_rank_promotion("allow"):
            ce = entjax.softmax_cross_entropy_with_integer_labels(logits, y, **opts)
        return ce + 1e-3 * jnp.where(y != 3, jax.nn.logsumexp(logits, axis=-1) ** 2, 0.0)

    def fused(h, w, b):
        return entjax.fused_linear_cross_entropy(
            h, w, y, bias=b, weight_layout=weight_layout, z_loss=1e-3, chunk_size=16, **opts
        )

    wl = layout(w, weight_layout)
    got = fused_vjp(fused, h, wl, b, cot)
    want = fused_vjp(naive, h, wl, b, cot)
    assert got[0].dtype == jnp.float32
    for a, e in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert_rel(a, e, 1e-5)


def test_ce_ignore_index_where_and_out_of_range(rng):
    h, w, b, y, cot = problem(rng, 21)
    y[0] = -100  # ignored
    y[1] = 21  # out of range: NaN, zero gradient
    where = np.ones(N, bool)
    where[2] = False

    @jax.jit
    def fn(h, w, b):
        return entjax.fused_linear_cross_entropy(
            h, w, y, bias=b, ignore_index=-100, where=where, chunk_size=4
        )

    loss, (dh, dw, db) = fused_vjp(fn, h, w, b, cot)
    loss = np.asarray(loss)
    assert loss[0] == 0.0
    assert loss[2] == 0.0
    assert np.isnan(loss[1])
    keep = np.array([False, False, False, True, True, True])
    safe_y = np.where(keep, y, 0)
    ref_loss, _, (rdh, rdw, rdb) = ref_ce(h, w, b, safe_y, keep=keep, cot=cot)
    np.testing.assert_allclose(loss[keep], ref_loss[keep], rtol=1e-12)
    assert np.all(np.asarray(dh)[~keep] == 0.0)
    assert_rel(dh, rdh, 1e-12)
    assert_rel(dw, rdw, 1e-12)
    assert_rel(db, rdb, 1e-12)


def test_ce_masked_classes_via_bias(rng):
    """``-inf`` bias entries are masked classes, as ``-inf`` logits are for the naive CE."""
    h, w, b, y, cot = problem(rng, 19)
    b[[0, 5, 18]] = -np.inf
    y[:] = np.where(np.isin(y, [0, 5, 18]), 1, y)
    y[0] = 5  # a label on a masked class: +inf with zero gradient

    def naive(h, w, b):
        with jax.numpy_rank_promotion("allow"):
            return entjax.softmax_cross_entropy_with_integer_labels(
                h @ w + b[None, :], y, label_smoothing=0.2
            )

    def fused(h, w, b):
        return entjax.fused_linear_cross_entropy(h, w, y, bias=b, label_smoothing=0.2, chunk_size=8)

    got = fused_vjp(fused, h, w, b, cot)
    want = fused_vjp(naive, h, w, b, cot)
    assert np.asarray(got[0])[0] == np.inf
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    for a, e in zip(jax.tree.leaves(got[1]), jax.tree.leaves(want[1]), strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)
    assert np.all(np.asarray(got[1][1])[:, [0, 5, 18]] == 0.0)


def test_ce_return_lse_and_its_gradient(rng):
    h, w, _, y, cot = problem(rng, 30)

    def fn(h, w, b):
        return entjax.fused_linear_cross_entropy(h, w, y, return_lse=True, chunk_size=7)[1]

    lse, (dh, dw, _) = fused_vjp(fn, h, w, None, cot)
    _, ref_lse, _ = ref_ce(h, w, None, y)
    x = h @ w
    p = np.exp(x - ref_lse[:, None])
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-12)
    np.testing.assert_allclose(dh, (cot[:, None] * p) @ w.T, rtol=1e-10)
    np.testing.assert_allclose(dw, h.T @ (cot[:, None] * p), rtol=1e-10)


def test_ce_leading_axes_vmap_and_traces(rng):
    """Leading token axes are kept; vmap over a batch of problems equals a Python loop."""
    batch = 3
    hs = rng.normal(size=(batch, 2, N, D))
    ws = rng.normal(size=(batch, D, 26))
    ys = rng.integers(0, 26, size=(batch, 2, N)).astype(np.int32)

    @jax.jit
    def grad_fn(h, w, y):
        loss = lambda h, w: jnp.sum(entjax.fused_linear_cross_entropy(h, w, y, chunk_size=8))
        return jax.value_and_grad(loss, argnums=(0, 1))(h, w)

    value, (dh, dw) = jax.vmap(grad_fn)(hs, ws, ys)
    assert dh.shape == hs.shape
    assert dw.shape == ws.shape
    for k in range(batch):
        flat_h = hs[k].reshape(-1, D)
        ref_loss, _, (rdh, rdw, _) = ref_ce(flat_h, ws[k], None, ys[k].reshape(-1))
        np.testing.assert_allclose(value[k], ref_loss.sum(), rtol=1e-12)
        assert_rel(dh[k].reshape(-1, D), rdh, 1e-12)
        assert_rel(dw[k], rdw, 1e-12)


def test_ce_bfloat16_inputs(rng):
    """bf16 inputs: float32 loss, bf16 gradients, close to float64 on the same bf16 values."""
    h, w, b, y, cot = problem(rng, 300, n=32)
    h16, w16, b16 = (jnp.asarray(a, jnp.bfloat16) for a in (h, w, b))

    def fn(h, w, b):
        return entjax.fused_linear_cross_entropy(h, w, y, bias=b, chunk_size=64)

    loss, (dh, dw, db) = fused_vjp(fn, h16, w16, b16, cot.astype(np.float32))
    assert loss.dtype == jnp.float32
    assert dh.dtype == dw.dtype == db.dtype == jnp.bfloat16
    exact = [np.asarray(a, np.float64) for a in (h16, w16, b16)]
    ref_loss, _, (rdh, rdw, rdb) = ref_ce(*exact, y, cot=cot)
    assert_rel(loss, ref_loss, 1e-5)  # exact bf16 products, float32 accumulation
    assert_rel(dh, rdh, 2e-2)  # the backward GEMMs run in bf16
    assert_rel(dw, rdw, 2e-2)
    assert_rel(db, rdb, 2e-2)


def test_ce_large_logits_finite(rng):
    h, w, b, y, cot = problem(rng, 40, scale=1e3)  # logits of order 1e3-1e4

    def fn(h, w, b):
        return entjax.fused_linear_cross_entropy(h, w, y, bias=b, label_smoothing=0.1)

    loss, grads = fused_vjp(fn, h, w, b, cot)
    ref_loss, _, ref_grads = ref_ce(h, w, b, y, eps=0.1, cot=cot)
    assert np.all(np.isfinite(loss))
    assert_rel(loss, ref_loss, 1e-12)
    for a, e in zip(grads, ref_grads, strict=True):
        assert np.all(np.isfinite(a))
        assert_rel(a, e, 1e-10)


# --------------------------------------------------------------------------------------------
# Entropy.


@pytest.mark.parametrize(("weight_layout", "num_classes"), [("dv", 32), ("vd", 45)])
def test_entropy_matches_closed_form_and_entjax(rng, weight_layout, num_classes):
    h, w, b, _, cot = problem(rng, num_classes)

    @jax.jit
    def fn(h, w, b):
        return entjax.fused_linear_entropy(h, w, bias=b, weight_layout=weight_layout, chunk_size=8)

    ent, (dh, dw, db) = fused_vjp(fn, h, layout(w, weight_layout), b, cot)
    ref, (rdh, rdw, rdb) = ref_entropy(h, w, b, cot)
    assert_rel(ent, ref, 1e-12)
    assert_rel(dh, rdh, 1e-12)
    assert_rel(unlayout(dw, weight_layout), rdw, 1e-12)
    assert_rel(db, rdb, 1e-12)

    # float32 against entjax.entropy on materialised logits, values and gradients.
    h32, w32, b32 = (a.astype(np.float32) for a in (h, w, b))

    def naive(h, w, b):
        return entjax.entropy(h @ w + b[None, :])

    got = fused_vjp(fn, h32, layout(w32, weight_layout), b32, cot.astype(np.float32))
    want = fused_vjp(naive, h32, w32, b32, cot.astype(np.float32))
    assert_rel(got[0], want[0], 1e-5)
    assert_rel(got[1][0], want[1][0], 1e-5)
    assert_rel(unlayout(got[1][1], weight_layout), want[1][1], 1e-5)
    assert_rel(got[1][2], want[1][2], 1e-5)


def test_entropy_with_labels_base_and_masks(rng):
    h, w, _, y_all, _ = problem(rng, 33)
    y = y_all.copy()
    y[4] = -1
    where = np.array([True, False, True, True, True, True])
    out = jax.jit(
        lambda h, w: entjax.fused_linear_entropy(
            h, w, labels=y, ignore_index=-1, where=where, base=2, chunk_size=10
        )
    )(h, w)
    assert isinstance(out, entjax.FusedEntropy)
    keep = where & (y != -1)
    ref_ent, _ = ref_entropy(h, w, None, np.ones(N))
    ref_loss, _, _ = ref_ce(h, w, None, np.where(keep, y, 0), keep=keep)
    np.testing.assert_allclose(out.entropy, np.where(keep, ref_ent, 0) / np.log(2), rtol=1e-12)
    np.testing.assert_allclose(out.cross_entropy, ref_loss / np.log(2), rtol=1e-12)

    # Gradient of a mix of both outputs equals the sum of the two closed forms.
    def mix(h, w):
        o = entjax.fused_linear_entropy(h, w, labels=y_all, chunk_size=10)
        return jnp.sum(o.cross_entropy - 0.3 * o.entropy)

    dh, dw = jax.jit(jax.grad(mix, argnums=(0, 1)))(h, w)
    _, _, (cdh, cdw, _) = ref_ce(h, w, None, y_all)
    _, (edh, edw, _) = ref_entropy(h, w, None, np.ones(N))
    assert_rel(dh, cdh - 0.3 * edh, 1e-12)
    assert_rel(dw, cdw - 0.3 * edw, 1e-12)


def test_entropy_edges(rng):
    """Uniform logits give log V; large logits and masked classes stay finite."""
    _, w, b, _, cot = problem(rng, 50)
    ent = entjax.fused_linear_entropy(jnp.zeros((2, D)), w, chunk_size=16)
    np.testing.assert_allclose(ent, np.log(50), rtol=1e-12)
    h = 1e3 * rng.normal(size=(N, D))
    b[[3, 40]] = -np.inf
    fn = jax.jit(lambda h, w, b: entjax.fused_linear_entropy(h, w, bias=b, chunk_size=16))
    ent, grads = fused_vjp(fn, h, w, b, cot)
    finite = np.isfinite(b)
    ref, ref_grads = ref_entropy(h, w[:, finite], b[finite], cot)
    assert np.all(np.isfinite(ent))
    assert np.all(np.asarray(ent) >= 0)
    np.testing.assert_allclose(ent, ref, rtol=1e-9, atol=1e-12)
    assert_rel(grads[0], ref_grads[0], 1e-9)
    assert_rel(np.asarray(grads[1])[:, finite], ref_grads[1], 1e-9)
    assert np.all(np.asarray(grads[1])[:, ~finite] == 0.0)


# --------------------------------------------------------------------------------------------
# Memory: the design property, not a timing.


def test_fused_scratch_is_far_below_the_logits():
    n, d, v = 256, 64, 16384
    h = jax.ShapeDtypeStruct((n, d), jnp.float32)
    w = jax.ShapeDtypeStruct((d, v), jnp.float32)
    y = jax.ShapeDtypeStruct((n,), jnp.int32)

    def temp_bytes(loss):
        fn = jax.jit(jax.value_and_grad(lambda h, w, y: jnp.mean(loss(h, w, y)), argnums=(0, 1)))
        return fn.lower(h, w, y).compile().memory_analysis().temp_size_in_bytes

    def naive(h, w, y):
        with jax.numpy_rank_promotion("allow"):
            return entjax.softmax_cross_entropy_with_integer_labels(h @ w, y)

    fused = temp_bytes(lambda h, w, y: entjax.fused_linear_cross_entropy(h, w, y, chunk_size=1024))
    ent = temp_bytes(lambda h, w, y: entjax.fused_linear_entropy(h, w, chunk_size=1024))
    logits_bytes = n * v * 4
    assert temp_bytes(naive) >= logits_bytes  # the naive graph holds at least the logits
    assert fused < 0.25 * logits_bytes
    assert ent < 0.25 * logits_bytes


# --------------------------------------------------------------------------------------------
# Argument checks.


def test_argument_errors(rng):
    h, w, _, y, _ = problem(rng, 10)
    f = entjax.fused_linear_cross_entropy
    with pytest.raises(TypeError, match="`hidden`"):
        f(h.astype(np.int32), w, y)
    with pytest.raises(TypeError, match="`labels`"):
        f(h, w, y.astype(np.float32))
    with pytest.raises(ValueError, match="`weight`"):
        f(h, w.T, y)  # [V, D] given with the default "dv" layout
    with pytest.raises(ValueError, match="`weight_layout`"):
        f(h, w, y, weight_layout="vd_")
    with pytest.raises(ValueError, match="`labels`"):
        f(h, w, y[:-1])
    with pytest.raises(ValueError, match="`bias`"):
        f(h, w, y, bias=np.zeros(9))
    with pytest.raises(ValueError, match="`chunk_size`"):
        f(h, w, y, chunk_size=0)
    with pytest.raises(ValueError, match="`label_smoothing`"):
        f(h, w, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="`z_loss`"):
        f(h, w, y, z_loss=-1.0)
