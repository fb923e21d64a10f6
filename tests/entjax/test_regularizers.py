"""confidence_penalty against a numpy entropy reference, with masks and extreme logits."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sps
from jax.test_util import check_grads

import entjax

penalty = jax.jit(entjax.confidence_penalty, static_argnames=("axis", "base"))


def np_neg_entropy(x, axis=-1):
    p = sps.softmax(x, axis=axis)
    return np.sum(sps.xlogy(p, p), axis=axis)


def test_is_negative_entropy(rng):
    x = rng.normal(size=(5, 4)) * 3
    np.testing.assert_allclose(penalty(x), np_neg_entropy(x), rtol=1e-12)
    np.testing.assert_allclose(penalty(x.T, axis=0), np_neg_entropy(x), rtol=1e-12)
    np.testing.assert_allclose(penalty(x, base=2), np_neg_entropy(x) / np.log(2), rtol=1e-12)
    # Bounds: -log C (uniform) <= penalty <= 0.
    assert float(penalty(np.zeros(4))) == pytest.approx(-np.log(4), rel=1e-12)
    assert np.all(np.asarray(penalty(x)) <= 0)
    assert np.all(np.asarray(penalty(x)) >= -np.log(4))


def test_ce_minus_lambda_entropy_and_its_gradient(rng):
    x, y, lam = rng.normal(size=(6, 3)), rng.integers(0, 3, size=6), 0.3

    def reg_loss(x):
        ce = entjax.softmax_cross_entropy_with_integer_labels(x, y)
        return jnp.mean(ce + lam * entjax.confidence_penalty(x))

    # Hand-written CE - lam * H and its analytic gradient (softmax - onehot) - lam * dH/dx,
    # with dH/dx_c = -p_c (log p_c + H).
    p = sps.softmax(x, axis=-1)
    logp = np.log(p)
    h = -np.sum(p * logp, -1)
    ref = np.mean(-logp[np.arange(6), y] - lam * h)
    grad_h = -p * (logp + h[:, None])
    ref_grad = ((p - np.eye(3)[y]) - lam * grad_h) / 6
    value, grad = jax.jit(jax.value_and_grad(reg_loss))(x)
    np.testing.assert_allclose(value, ref, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)


def test_masks_and_extremes_are_finite():
    x = jnp.array([[0.0, 0.0, -jnp.inf], [1e4, -1e4, 0.0], [0.0, 0.0, 0.0]], jnp.float32)
    where = jnp.array([[True, True, True], [True, True, True], [False, False, False]])
    out = penalty(x, where=where)
    np.testing.assert_allclose(out, [-np.log(2), 0.0, 0.0], atol=1e-6)
    g = jax.jit(jax.grad(lambda x: entjax.confidence_penalty(x, where=where).sum()))(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g[2], 0.0)
    # Per-example mask equals dropping the rows.
    rows = jnp.array([True, False, True])
    kept = jax.jit(functools.partial(entjax.confidence_penalty, where=rows))(x[:, :2])
    np.testing.assert_allclose(kept[0], np_neg_entropy(np.zeros(2)))
    assert float(kept[1]) == 0.0
    check_grads(jax.jit(entjax.confidence_penalty), (np.array([[0.3, -1.0, 2.0]]),), order=2)


def test_dtypes():
    assert penalty(jnp.zeros(3, jnp.bfloat16)).dtype == jnp.float32
    with pytest.raises(TypeError, match="logits"):
        entjax.confidence_penalty(jnp.zeros(3, jnp.int32))
