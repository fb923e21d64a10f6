"""vib_loss against numpy references, and the β trade-off on a tiny training run."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special as sps

import entjax

vib = jax.jit(entjax.vib_loss, static_argnames=("num_classes", "sample_axis", "base"))


def np_ce(logits, labels):
    logp = logits - sps.logsumexp(logits, axis=-1, keepdims=True)
    return -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


def np_kl_std_normal(m, lv):
    return 0.5 * np.sum(np.exp(lv) + m**2 - 1 - lv, axis=-1)


@pytest.fixture
def data(rng):
    logits = rng.normal(size=(6, 4)) * 2
    labels = rng.integers(0, 4, size=6)
    mean, log_var = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    return logits, labels, mean, log_var


def test_fields_match_numpy(data):
    logits, labels, mean, log_var = data
    out = vib(logits, labels, mean, log_var, beta=0.3)
    ce, kl = np_ce(logits, labels), np_kl_std_normal(mean, log_var)
    np.testing.assert_allclose(out.ce, ce, rtol=1e-12)
    np.testing.assert_allclose(out.kl, kl, rtol=1e-12)
    np.testing.assert_allclose(out.loss, ce + 0.3 * kl, rtol=1e-12)
    np.testing.assert_allclose(out.izx_upper, kl, rtol=1e-12)
    np.testing.assert_allclose(out.izy_lower, np.log(4) - ce, rtol=1e-12)
    # Bits, an explicit label marginal, and num_classes.
    marginal = np.array([0.1, 0.2, 0.3, 0.4])
    h_y = -np.sum(marginal * np.log(marginal))
    out2 = vib(logits, labels, mean, log_var, beta=0.3, label_marginal=marginal, base=2)
    np.testing.assert_allclose(out2.izx_upper, kl / np.log(2), rtol=1e-12)
    np.testing.assert_allclose(out2.izy_lower, (h_y - ce) / np.log(2), rtol=1e-12)
    np.testing.assert_allclose(out2.loss, ce + 0.3 * kl, rtol=1e-12)  # the loss stays in nats
    out3 = vib(logits, labels, mean, log_var, num_classes=10)
    np.testing.assert_allclose(out3.izy_lower, np.log(10) - ce, rtol=1e-12)


def test_beta_zero_is_cross_entropy(data):
    logits, labels, mean, log_var = data
    out = vib(logits, labels, mean, log_var, beta=0.0)
    np.testing.assert_array_equal(out.loss, out.ce)
    np.testing.assert_allclose(out.loss, np_ce(logits, labels), rtol=1e-12)
    # ... even when the KL is infinite (variance overflow), and with zero gradient to the encoder.
    big = np.full_like(log_var, 1e4)
    out = vib(logits, labels, mean, big, beta=0.0)
    np.testing.assert_allclose(out.loss, np_ce(logits, labels), rtol=1e-12)
    g = jax.grad(lambda m: entjax.vib_loss(logits, labels, m, big, beta=0.0).loss.sum())(mean)
    np.testing.assert_array_equal(g, 0.0)


def test_sample_axis_and_where(data, rng):
    _, labels, mean, log_var = data
    logits = rng.normal(size=(5, 6, 4))  # 5 latent samples
    out = vib(logits, labels, mean, log_var, sample_axis=0)
    ref = np.mean([np_ce(logits[s], labels) for s in range(5)], axis=0)
    np.testing.assert_allclose(out.ce, ref, rtol=1e-12)
    out1 = vib(np.moveaxis(logits, 0, 1), labels, mean, log_var, sample_axis=1)
    np.testing.assert_allclose(out1.ce, ref, rtol=1e-12)
    where = np.array([True, False, True, True, False, True])
    masked = jax.jit(functools.partial(entjax.vib_loss, where=where))(
        logits[0], labels, mean, log_var
    )
    for field in masked:
        np.testing.assert_array_equal(np.asarray(field)[~where], 0.0)
    np.testing.assert_allclose(masked.ce[where], np_ce(logits[0], labels)[where], rtol=1e-12)


def test_errors(data):
    logits, labels, mean, log_var = data
    with pytest.raises(TypeError, match="labels"):
        entjax.vib_loss(logits, labels.astype(float), mean, log_var)
    with pytest.raises(ValueError, match="batch shape"):
        entjax.vib_loss(logits, labels, mean[:3], log_var[:3])
    with pytest.raises(ValueError, match="label_marginal"):
        entjax.vib_loss(logits, labels, mean, log_var, label_marginal=np.ones(3) / 3)


def _train_vib(beta, key, x, y, steps=200):
    k_enc, k_dec = jax.random.split(jax.random.key(0))
    params = {
        "enc": 0.3 * jax.random.normal(k_enc, (x.shape[1], 4)),  # -> mean[2], log_var[2]
        "dec": 0.3 * jax.random.normal(k_dec, (2, 3)),
    }
    opt = optax.adam(3e-2)

    def loss_fn(params, key):
        h = x @ params["enc"]
        mean, log_var = h[:, :2], h[:, 2:]
        z = entjax.reparameterize(key, mean, log_var)
        out = entjax.vib_loss(z @ params["dec"], y, mean, log_var, beta=beta)
        return jnp.mean(out.loss), out

    def step(carry, key):
        params, state = carry
        grads, _ = jax.grad(loss_fn, has_aux=True)(params, key)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
    _, out = loss_fn(params, jax.random.key(99))
    return jnp.mean(out.kl), jnp.mean(out.ce)


def test_kl_term_falls_as_beta_grows():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 5)) * 2.0
    y = np.repeat(np.arange(3), 32)
    x = centers[y] + rng.normal(size=(96, 5))
    betas = jnp.array([1e-3, 3e-2, 0.3, 3.0])
    kl, ce = jax.jit(jax.vmap(_train_vib, in_axes=(0, None, None, None)))(
        betas, jax.random.key(1), jnp.asarray(x), jnp.asarray(y)
    )
    kl, ce = np.asarray(kl), np.asarray(ce)
    assert np.all(np.diff(kl) < 0), (kl, ce)
    # The trade-off: less information about X costs predictive cross-entropy.
    assert ce[-1] > ce[0] + 0.1, (kl, ce)
    assert kl[0] > 10 * kl[-1], (kl, ce)


def test_low_precision_inputs_computed_in_float32(data):
    logits, labels, mean, log_var = (np.asarray(a) for a in data)
    bf = functools.partial(jnp.asarray, dtype=jnp.bfloat16)
    out = vib(bf(logits), labels, bf(mean), bf(log_var), beta=0.5)
    for field in out:
        assert field.dtype == jnp.float32
    ref = np_ce(np.float64(bf(logits)), labels) + 0.5 * np_kl_std_normal(
        np.float64(bf(mean)), np.float64(bf(log_var))
    )
    np.testing.assert_allclose(out.loss, ref, rtol=1e-5)
