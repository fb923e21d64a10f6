"""Entropy, binary entropy and joint-table quantities against scipy/numpy references.

Every library call goes through ``jax.jit`` (compiled once per static configuration at module
level); references are float64 numpy/scipy written out independently of the implementation.
"""

import functools

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sps
import scipy.stats
from hypothesis import given, settings, strategies as st
from jax.test_util import check_grads

import entjax

PROPERTY = settings(max_examples=30, deadline=None, database=None)

entropy = jax.jit(entjax.entropy, static_argnames=("axis", "base"))
entropy_from_probs = jax.jit(entjax.entropy_from_probs, static_argnames=("axis", "base"))
binary_entropy = jax.jit(entjax.binary_entropy, static_argnames=("base",))
mutual_information = jax.jit(entjax.mutual_information, static_argnames=("base",))
conditional_entropy = jax.jit(entjax.conditional_entropy, static_argnames=("base",))


# ---------------------------------------------------------------------------------------------
# Independent float64 references.


def np_entropy_logits(x, axis=-1):
    p = sps.softmax(x, axis=axis)
    return -np.sum(sps.xlogy(p, p), axis=axis)


def np_binary_entropy(x):
    p = sps.expit(x)
    return -(sps.xlogy(p, p) + sps.xlogy(1 - p, 1 - p))


def np_mutual_information(joint):
    px = joint.sum(-1, keepdims=True)
    py = joint.sum(-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(joint) - np.log(px) - np.log(py)  # logs first: no underflow in px*py
        return np.where(joint > 0, joint * log_ratio, 0.0).sum((-2, -1))


def np_conditional_entropy(joint):
    # H(Y|X) = H(X, Y) - H(X), each written out as -sum p log p.
    hxy = -sps.xlogy(joint, joint).sum((-2, -1))
    px = joint.sum(-1)
    hx = -sps.xlogy(px, px).sum(-1)
    return hxy - hx


def random_table(rng, shape, zero_frac=0.3):
    t = rng.random(shape) * (rng.random(shape) > zero_frac)
    t[..., 0, 0] += 0.1  # never an all-zero table
    return t / t.sum((-2, -1), keepdims=True)


# ---------------------------------------------------------------------------------------------
# Known values.


def test_textbook_entropy_of_logits():
    h = entropy(jnp.array([2.0, 1.0, 0.1], jnp.float32))
    assert h.dtype == jnp.float32
    assert round(float(h), 4) == 0.8467
    # A widely copied tutorial prints 0.9686 for this; that value is wrong.
    assert abs(float(h) - 0.9686) > 0.1


def test_fair_coin_is_one_bit():
    assert float(binary_entropy(jnp.float32(0.0), base=2)) == pytest.approx(1.0, abs=1e-7)
    assert float(entropy(jnp.zeros(2, jnp.float32), base=2)) == pytest.approx(1.0, abs=1e-7)
    assert float(entropy_from_probs(jnp.array([0.5, 0.5]), base=2)) == pytest.approx(1.0)


def test_uniform_entropy_is_log_k():
    for k in (1, 2, 7):
        assert float(entropy(jnp.zeros(k))) == pytest.approx(np.log(k), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Against scipy.


def test_entropy_matches_scipy(rng):
    x = rng.normal(size=(4, 3, 6)) * 3
    want = scipy.stats.entropy(sps.softmax(x, axis=-1), axis=-1)
    np.testing.assert_allclose(entropy(jnp.asarray(x)), want, rtol=1e-12)
    want0 = scipy.stats.entropy(sps.softmax(x, axis=0), axis=0)
    np.testing.assert_allclose(entropy(jnp.asarray(x), axis=0), want0, rtol=1e-12)


def test_entropy_tuple_axis_flattens_classes(rng):
    x = rng.normal(size=(2, 3, 4))
    want = scipy.stats.entropy(sps.softmax(x.reshape(2, 12), axis=-1), axis=-1)
    np.testing.assert_allclose(entropy(jnp.asarray(x), axis=(1, 2)), want, rtol=1e-12)
    # Axis order must not matter for a joint class axis.
    np.testing.assert_allclose(entropy(jnp.asarray(x), axis=(2, 1)), want, rtol=1e-12)


def test_entropy_from_probs_matches_scipy_with_zeros(rng):
    p = rng.random((5, 6)) * (rng.random((5, 6)) > 0.4)
    p[:, 0] += 0.05
    p /= p.sum(-1, keepdims=True)
    want = scipy.stats.entropy(p, axis=-1)
    np.testing.assert_allclose(entropy_from_probs(jnp.asarray(p)), want, rtol=1e-12)
    np.testing.assert_allclose(
        entropy_from_probs(jnp.asarray(p), base=2), scipy.stats.entropy(p, axis=-1, base=2)
    )


def test_binary_entropy_matches_formula(rng):
    x = rng.normal(size=(17,)) * 6
    np.testing.assert_allclose(binary_entropy(jnp.asarray(x)), np_binary_entropy(x), rtol=1e-12)
    np.testing.assert_allclose(
        binary_entropy(jnp.asarray(x), base=2), np_binary_entropy(x) / np.log(2), rtol=1e-12
    )


def test_binary_entropy_equals_two_class_entropy(rng):
    x = rng.normal(size=(9,)) * 4
    two = np.stack([x, np.zeros_like(x)], -1)  # softmax([x, 0]) = [sigmoid(x), 1 - sigmoid(x)]
    np.testing.assert_allclose(binary_entropy(jnp.asarray(x)), np_entropy_logits(two), rtol=1e-12)


def test_binary_entropy_where():
    x = jnp.array([0.0, 1.0, -2.0])
    got = binary_entropy(x, where=jnp.array([True, False, True]))
    want = np_binary_entropy(np.array([0.0, 1.0, -2.0])) * np.array([1, 0, 1])
    np.testing.assert_allclose(got, want, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Joint tables.


@pytest.mark.parametrize("shape", [(4, 5), (3, 2, 4, 3)])
def test_mutual_information_matches_numpy(rng, shape):
    t = random_table(rng, shape)
    np.testing.assert_allclose(
        mutual_information(jnp.asarray(t)), np_mutual_information(t), rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(
        mutual_information(jnp.asarray(t), base=2),
        np_mutual_information(t) / np.log(2),
        rtol=1e-10,
        atol=1e-14,
    )
    # I(X;Y) = H(X) + H(Y) - H(X,Y) through scipy.
    hx = scipy.stats.entropy(t.sum(-1), axis=-1)
    hy = scipy.stats.entropy(t.sum(-2), axis=-1)
    hxy = scipy.stats.entropy(t.reshape(*t.shape[:-2], -1), axis=-1)
    np.testing.assert_allclose(mutual_information(jnp.asarray(t)), hx + hy - hxy, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 5), (3, 2, 4, 3)])
def test_conditional_entropy_matches_numpy(rng, shape):
    t = random_table(rng, shape)
    np.testing.assert_allclose(
        conditional_entropy(jnp.asarray(t)), np_conditional_entropy(t), rtol=1e-10, atol=1e-14
    )
    # Chain rule: H(Y|X) = sum_x p(x) H(Y | X=x).
    px = t.sum(-1)
    cond = t / np.where(px > 0, px, 1.0)[..., None]
    want = np.sum(px * scipy.stats.entropy(np.where(px[..., None] > 0, cond, 1.0), axis=-1), -1)
    np.testing.assert_allclose(conditional_entropy(jnp.asarray(t)), want, atol=1e-12)
    np.testing.assert_allclose(
        conditional_entropy(jnp.asarray(t), base=2), np_conditional_entropy(t) / np.log(2)
    )


def test_joint_known_values():
    copy = jnp.array([[0.5, 0.0], [0.0, 0.5]])
    assert float(mutual_information(copy, base=2)) == pytest.approx(1.0, abs=1e-12)
    assert float(conditional_entropy(copy)) == pytest.approx(0.0, abs=1e-12)
    indep = jnp.full((2, 2), 0.25)
    assert float(mutual_information(indep)) == pytest.approx(0.0, abs=1e-12)
    assert float(conditional_entropy(indep, base=2)) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Properties (hypothesis; fixed shapes so each jitted function compiles once).

K = 5
logit_rows = hnp.arrays(
    np.float64, (3, K), elements=st.floats(-20, 20, allow_nan=False, allow_infinity=False)
)


@PROPERTY
@given(logit_rows)
def test_entropy_bounds(x):
    h = np.asarray(entropy(jnp.asarray(x)))
    assert np.all(h >= 0)
    assert np.all(h <= np.log(K) + 1e-12)
    np.testing.assert_allclose(h, np_entropy_logits(x), rtol=1e-9, atol=1e-12)


@PROPERTY
@given(logit_rows)
def test_base_two_is_nats_over_log_two(x):
    np.testing.assert_allclose(
        entropy(jnp.asarray(x), base=2), entropy(jnp.asarray(x)) / np.log(2), rtol=1e-13
    )
    np.testing.assert_allclose(
        binary_entropy(jnp.asarray(x), base=2),
        binary_entropy(jnp.asarray(x)) / np.log(2),
        rtol=1e-13,
    )


@PROPERTY
@given(logit_rows, st.lists(st.booleans(), min_size=K, max_size=K).filter(any))
def test_entropy_where_equals_slicing(x, keep):
    keep = np.array(keep)
    mask = np.broadcast_to(keep, x.shape)
    sliced = entropy(jnp.asarray(x[:, keep]))
    np.testing.assert_allclose(entropy(jnp.asarray(x), where=jnp.asarray(mask)), sliced, rtol=1e-12)
    np.testing.assert_allclose(sliced, np_entropy_logits(x[:, keep]), rtol=1e-9, atol=1e-12)
    p = sps.softmax(x, axis=-1)
    np.testing.assert_allclose(
        entropy_from_probs(jnp.asarray(p), where=jnp.asarray(mask)),
        -sps.xlogy(p[:, keep], p[:, keep]).sum(-1),
        rtol=1e-12,
        atol=1e-15,
    )


@PROPERTY
@given(
    hnp.arrays(np.float64, (2, 3, 4), elements=st.floats(-10, 10)),
    st.sampled_from([0, 1, -2]),
)
def test_entropy_invariant_to_axis(x, axis):
    base = np.asarray(entropy(jnp.asarray(x), axis=-1))
    moved = jnp.asarray(np.moveaxis(x, -1, axis))
    np.testing.assert_allclose(entropy(moved, axis=axis), base, rtol=1e-12)
    p = sps.softmax(x, axis=-1)
    np.testing.assert_allclose(
        entropy_from_probs(jnp.asarray(np.moveaxis(p, -1, axis)), axis=axis),
        entropy_from_probs(jnp.asarray(p)),
        rtol=1e-12,
    )


tables = hnp.arrays(np.float64, (2, 3, 4), elements=st.floats(0, 1)).filter(
    lambda t: np.all(t.sum((-2, -1)) > 1e-3)
)


@PROPERTY
@given(tables)
def test_mutual_information_nonnegative(t):
    t = t / t.sum((-2, -1), keepdims=True)
    mi = np.asarray(mutual_information(jnp.asarray(t)))
    assert np.all(mi >= 0)
    np.testing.assert_allclose(mi, np_mutual_information(t), rtol=1e-8, atol=1e-12)
    h = np.asarray(conditional_entropy(jnp.asarray(t)))
    assert np.all(h >= -1e-12)
    assert np.all(h <= np.log(4) + 1e-12)


@PROPERTY
@given(
    hnp.arrays(np.float64, (2, 3), elements=st.floats(0, 1)).filter(
        lambda a: np.all(a.sum(-1) > 0)
    ),
    hnp.arrays(np.float64, (2, 4), elements=st.floats(0, 1)).filter(
        lambda a: np.all(a.sum(-1) > 0)
    ),
)
def test_mutual_information_zero_for_independent_tables(px, py):
    px = px / px.sum(-1, keepdims=True)
    py = py / py.sum(-1, keepdims=True)
    joint = px[:, :, None] * py[:, None, :]
    mi = np.asarray(mutual_information(jnp.asarray(joint)))
    assert np.all(mi >= 0)  # I(X;Y) >= 0 must hold exactly, not only up to rounding
    np.testing.assert_allclose(mi, 0.0, atol=1e-12)
    # ... and then H(Y|X) = H(Y).
    np.testing.assert_allclose(
        conditional_entropy(jnp.asarray(joint)), scipy.stats.entropy(py, axis=-1), atol=1e-12
    )


# ---------------------------------------------------------------------------------------------
# Gradients.


def _interior_inputs(rng):
    x = rng.normal(size=(3, 4))
    p = sps.softmax(rng.normal(size=(3, 4)), -1)
    t = 0.5 + rng.random((2, 3, 4))  # interior point: finite differences stay in the simplex
    return x, p, t / t.sum((-2, -1), keepdims=True)


GRAD_CASES = {
    "entropy": (entjax.entropy, 0),
    "entropy_axis0_bits": (functools.partial(entjax.entropy, axis=0, base=2), 0),
    "entropy_from_probs": (entjax.entropy_from_probs, 1),
    "binary_entropy": (entjax.binary_entropy, 0),
    "mutual_information": (entjax.mutual_information, 2),
    "conditional_entropy": (entjax.conditional_entropy, 2),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_check_grads(rng, name):
    fn, which = GRAD_CASES[name]
    arg = jnp.asarray(_interior_inputs(rng)[which])
    check_grads(jax.jit(fn), (arg,), order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-6, rtol=1e-6)


def test_check_grads_second_order(rng):
    x = jnp.asarray(_interior_inputs(rng)[0])
    check_grads(jax.jit(entjax.entropy), (x,), order=2, modes=("fwd", "rev"), eps=1e-5)


def test_entropy_gradient_closed_form(rng):
    x = rng.normal(size=(4, 6)) * 2
    p = sps.softmax(x, -1)
    h = -sps.xlogy(p, p).sum(-1, keepdims=True)
    want = -p * (np.log(p) + h)
    grad = jax.jit(jax.grad(lambda z: entjax.entropy(z).sum()))
    np.testing.assert_allclose(grad(jnp.asarray(x)), want, rtol=1e-10, atol=1e-14)
    jac = jax.jit(jax.jacfwd(entjax.entropy))(jnp.asarray(x[0]))
    np.testing.assert_allclose(jac, want[0], rtol=1e-10, atol=1e-14)


def test_entropy_from_probs_gradient_closed_form(rng):
    p = sps.softmax(rng.normal(size=(3, 5)), -1)
    grad = jax.jit(jax.grad(lambda q: entjax.entropy_from_probs(q).sum()))
    np.testing.assert_allclose(grad(jnp.asarray(p)), -(np.log(p) + 1), rtol=1e-12)


def test_binary_entropy_gradient_closed_form(rng):
    # dH/dx = -x sigmoid(x) sigmoid(-x)
    x = rng.normal(size=(8,)) * 4
    grad = jax.jit(jax.vmap(jax.grad(entjax.binary_entropy)))
    np.testing.assert_allclose(
        grad(jnp.asarray(x)), -x * sps.expit(x) * sps.expit(-x), rtol=1e-10, atol=1e-15
    )


# ---------------------------------------------------------------------------------------------
# Transformations.


def test_vmap_matches_batch(rng):
    x = jnp.asarray(rng.normal(size=(5, 4)))
    np.testing.assert_allclose(jax.jit(jax.vmap(entjax.entropy))(x), entropy(x), rtol=1e-14)
    t = jnp.asarray(random_table(rng, (3, 2, 3)))
    np.testing.assert_allclose(
        jax.jit(jax.vmap(entjax.mutual_information))(t), mutual_information(t), rtol=1e-14
    )
