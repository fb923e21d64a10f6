"""Snapshot ensembles and MC dropout as the main experiment trains them, against written-out
references: the cyclic cosine against its closed form, the snapshot buffer against a hand-run
loop, the deep members' updates against plain ``optax.adam``, dropout's thinned networks against
the activation-mask forward pass, and the configuration's refusals."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from experiments.core import models
from experiments.core.cli import ConfigError
from experiments.core.training import make_optimizer, snapshots
from experiments.ensemble_entropy import Config, methods


def _closed_form(t: int, peak: float, steps: int, cycles: int) -> float:
    starts = [math.floor(j * steps / cycles) for j in range(cycles + 1)]
    j = max(i for i in range(cycles) if starts[i] <= t)
    return 0.5 * peak * (1 + math.cos(math.pi * (t - starts[j]) / (starts[j + 1] - starts[j])))


@pytest.mark.parametrize(("steps", "cycles"), [(40, 4), (1500, 8), (7, 7), (10, 1)])
def test_cyclic_cosine_matches_its_closed_form(steps, cycles):
    schedule = jax.jit(snapshots.cyclic_cosine(0.3, steps=steps, cycles=cycles))
    got = np.asarray([schedule(t) for t in range(steps)])
    want = [_closed_form(t, 0.3, steps, cycles) for t in range(steps)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # every cycle restarts at the peak
    for b in snapshots.cycle_bounds(steps, cycles)[:-1]:
        assert got[b] == pytest.approx(0.3)
    if cycles == 1:  # one cycle is optax's cosine decay
        ref = optax.cosine_decay_schedule(0.3, steps)
        np.testing.assert_allclose(got, [ref(t) for t in range(steps)], rtol=1e-5, atol=1e-7)


def test_cycle_bounds_refuse_more_cycles_than_steps():
    with pytest.raises(ValueError, match="cycle_bounds"):
        snapshots.cycle_bounds(3, 4)


def _grad(w):
    return jax.grad(lambda v: jnp.sum((v - jnp.arange(3.0)) ** 4 + jnp.sin(v)))(w)


def test_snapshot_and_deep_members_in_one_vmapped_optimizer():
    """Member 0 follows the cosine schedule (it must equal plain ``optax.adam``), member 1 the
    cyclic one, and the buffer holds member 1's parameters after each cycle's last step, as a
    hand-run loop of Adam's direction with the closed-form rate gives them."""
    steps, cycles, lr = 20, 4, 0.05
    tx = make_optimizer(lr, steps=steps, snapshot_cycles=cycles)
    w0 = jnp.asarray([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    state = jax.vmap(tx.init)(w0)
    flags = jnp.asarray([False, True])

    @jax.jit
    def step(w, state):
        def one(w, s, flag):
            u, s = optax.with_extra_args_support(tx).update(_grad(w), s, w, snapshot=flag)
            return optax.apply_updates(w, u), s

        return jax.vmap(one)(w, state, flags)

    w = w0
    for _ in range(steps):
        w, state = step(w, state)

    adam = optax.adam(optax.cosine_decay_schedule(lr, steps))
    ref, s = w0[0], adam.init(w0[0])
    direction = optax.scale_by_adam()
    v, ds = w0[1], direction.init(w0[1])
    kept = []
    ends = set(snapshots.cycle_bounds(steps, cycles)[1:].tolist())
    for t in range(steps):
        u, s = adam.update(_grad(ref), s, ref)
        ref = optax.apply_updates(ref, u)
        d, ds = direction.update(_grad(v), ds, v)
        v = v - _closed_form(t, lr, steps, cycles) * d
        if t + 1 in ends:
            kept.append(v)
    np.testing.assert_allclose(w[0], ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(w[1], v, rtol=1e-5, atol=1e-6)
    buffer = snapshots.snapshots_of(state)
    assert buffer.shape == (2, cycles, 3)
    np.testing.assert_allclose(buffer[1], np.stack(kept), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(buffer[1, -1], w[1], rtol=0, atol=0)  # the last is the final


def test_snapshots_of_a_state_without_a_buffer_is_an_error():
    with pytest.raises(ValueError, match="snapshots_of"):
        snapshots.snapshots_of(optax.adam(0.1).init(jnp.zeros(2)))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_a_thinned_network_is_the_forward_pass_with_that_dropout_mask(name):
    """One 0/1 mask per unit applied to the activations (written out here) equals the network
    whose following weight rows :meth:`thinned` scaled, for the logits and the features."""
    model = models.build_model(name, num_classes=5, width=8, rngs=nnx.Rngs(3))
    x = jax.random.normal(jax.random.key(1), (6, 8, 8, 1))
    rate = 0.4
    masks = [
        (np.random.default_rng(i).random(u) > rate).astype(np.float32)
        for i, u in enumerate(model.dropout_units())
    ]

    def hook(h, layer, mask_shape):  # a unit's mask over its channel / unit (last) axis
        return h * masks[layer].reshape((1,) * (h.ndim - 1) + (-1,)) / (1 - rate)

    want = [np.asarray(a) for a in model.features(x, dropout=hook)]
    model.thinned([jnp.asarray(m) for m in masks], rate)
    got = [np.asarray(a) for a in model.features(x)]
    np.testing.assert_allclose(got[-1], want[-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[-2], want[-2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_dropout_at_rate_zero_changes_no_value_or_gradient(name):
    model = models.build_model(name, num_classes=5, width=8, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))

    def loss(p, rate):
        hook = models.dropout(jax.random.key(7), rate)
        return jnp.sum(nnx.merge(graphdef, p)(x, dropout=hook) ** 2)

    def plain(p):
        return jnp.sum(nnx.merge(graphdef, p)(x) ** 2)

    assert float(loss(params, 0.0)) == float(plain(params))
    g0, g = jax.grad(loss)(params, 0.0), jax.grad(plain)(params)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_dropout_keeps_one_minus_rate_and_preserves_the_mean():
    h = jnp.ones((400, 250))
    out = np.asarray(models.dropout(jax.random.key(0), 0.3)(h, 0, h.shape))
    kept = out > 0
    assert kept.mean() == pytest.approx(0.7, abs=0.01)  # 100,000 draws: sd 0.0014
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)
    assert out.mean() == pytest.approx(1.0, abs=0.015)
    # a channel mask: one draw per (example, channel), the same at every position
    img = jnp.ones((50, 4, 4, 6))
    out = np.asarray(models.dropout(jax.random.key(1), 0.5)(img, 0, (50, 1, 1, 6)))
    assert (out == out[:, :1, :1, :]).all()


def test_method_slots_and_refusals():
    c = Config(members=4, seeds=3)
    assert c.slots == {
        "deep": list(range(12)),
        "snapshot": [12, 13, 14],
        "mc_dropout": [15, 16, 17],
    }
    assert c.num_models == 18
    assert len(c.model_names()) == 18
    assert Config(members=4, seeds=3, methods=("deep",)).num_models == 12
    only = Config(members=4, seeds=3, methods=("mc_dropout", "deep"))
    assert only.slots["mc_dropout"] == [12, 13, 14]
    assert "snapshot" not in only.slots
    for kwargs, message in [
        ({"methods": ("snapshot",)}, "--methods must include deep"),
        ({"methods": ("deep", "bagging")}, "--methods must be one of"),
        ({"dropout": 1.0}, r"--dropout must lie in \(0, 1\)"),
        ({"steps": 3, "members": 4}, r"--steps \(3\) must be >= --members \(4\)"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Config(**kwargs)
    Config(steps=3, members=4, methods=("deep", "mc_dropout"))  # no snapshot: fine


def test_a_missing_snapshot_input_is_an_error_not_the_ordinary_schedule():
    tx = make_optimizer(0.1, steps=4, snapshot_cycles=2)
    w = jnp.zeros(2)
    with pytest.raises(TypeError, match="snapshot"):
        optax.with_extra_args_support(tx).update(jnp.ones(2), tx.init(w), w, snapshots=True)


@pytest.mark.parametrize(
    ("models", "devices", "want"), [(12, 1, 12), (12, 4, 12), (10, 4, 12), (50, 8, 56), (30, 4, 32)]
)
def test_the_trained_axis_is_padded_to_the_devices(models, devices, want):
    assert methods.padded_size(models, devices) == want


def test_padding_members_train_as_plain_deep_members():
    c = Config(members=2, seeds=3)  # 6 deep + 3 snapshot + 3 MC dropout = 12, padded to 16
    inputs = methods.member_inputs(c, 16)
    snapshot = inputs["optimizer"]["snapshot"]
    np.testing.assert_array_equal(np.flatnonzero(snapshot), [6, 7, 8])
    np.testing.assert_array_equal(np.flatnonzero(inputs["dropout_rate"]), [9, 10, 11])
    np.testing.assert_allclose(inputs["dropout_rate"][9:12], c.dropout)
    np.testing.assert_array_equal(inputs["member"], np.arange(16))
    names = c.model_names(16)
    assert names[6] == "snapshot ensemble run 0"
    assert names[12:] == ["padding 0", "padding 1", "padding 2", "padding 3"]
    assert "optimizer" not in methods.member_inputs(Config(methods=("deep", "mc_dropout")), 50)
