"""entjax.nnx: stacked NNX members against a Python loop over single members and plain optax."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import entjax

nnx = pytest.importorskip("flax.nnx")
import entjax.nnx as enx  # noqa: E402

K, N, D, C = 4, 6, 4, 3


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, *, dropout: float = 0.0):
        self.hidden = nnx.Linear(D, 8, rngs=rngs)
        self.drop = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(8, C, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(jax.nn.relu(self.hidden(x))))


def member(members, i):
    """Member ``i`` as an ordinary single module (its slice of every state leaf)."""
    graphdef, state = nnx.split(members)
    return nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))


def ce_loss(model, batch):
    logits = model(batch["x"])
    return entjax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()


def data(rng, *lead):
    x = rng.normal(size=(*lead, N, D)).astype(np.float32)
    y = rng.integers(0, C, size=(*lead, N)).astype(np.int32)
    return {"x": jnp.asarray(x), "y": jnp.asarray(y)}


# Global-norm clipping mixes leaves: it is right only with one optimiser state per member.
TX = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(0.05))


@functools.partial(jax.jit, static_argnums=0)
def _reference_step(graphdef, params, rest, opt_state, batch):
    """One plain optax step of one member (jitted: one compile serves every member and step)."""

    def loss(p):
        return ce_loss(nnx.merge(graphdef, p, rest), batch)

    value, grads = jax.value_and_grad(loss)(params)
    updates, opt_state = TX.update(grads, opt_state, params)
    return value, optax.apply_updates(params, updates), opt_state


def reference_steps(single, batches):
    """Plain optax steps of one member: ``[(loss, params_after)]`` for each batch."""
    graphdef, params, rest = nnx.split(single, nnx.Param, ...)
    opt_state = TX.init(params)
    out = []
    for batch in batches:
        value, params, opt_state = _reference_step(graphdef, params, rest, opt_state, batch)
        out.append((value, params))
    return out


def test_stack_initialises_members_independently():
    members = enx.stack(MLP, K, rngs=0)
    params = nnx.state(members, nnx.Param)
    for leaf in jax.tree.leaves(params):
        assert leaf.shape[0] == K
        flat = np.asarray(leaf).reshape(K, -1)
        if np.any(flat):  # biases start at zero in every member
            for i in range(K):
                for j in range(i):
                    assert not np.allclose(flat[i], flat[j]), "two members share an initialisation"
    assert members.hidden.kernel.shape == (K, D, 8)
    # Seeded: the same seed gives the same ensemble, an advanced Rngs another one.
    again = enx.stack(MLP, K, rngs=0)
    jax.tree.map(np.testing.assert_array_equal, nnx.state(again, nnx.Param), params)
    rngs = nnx.Rngs(0)
    first, second = enx.stack(MLP, K, rngs=rngs), enx.stack(MLP, K, rngs=rngs)
    assert not np.allclose(first.out.kernel, second.out.kernel)


@pytest.mark.parametrize("bad", [0, -1])
def test_stack_rejects_empty_ensembles(bad):
    with pytest.raises(ValueError, match=r"entjax\.nnx\.stack.*num_members"):
        enx.stack(MLP, bad, rngs=0)


def test_stack_rejects_non_integer_sizes():
    with pytest.raises(TypeError, match=r"entjax\.nnx\.stack"):
        enx.stack(MLP, 2.0, rngs=0)


def test_predict_equals_a_loop_over_members(rng):
    members = enx.stack(MLP, K, rngs=1)
    x = data(rng)["x"]
    out = enx.predict(members, x)
    assert out.shape == (K, N, C)
    loop = np.stack([member(members, i)(x) for i in range(K)])
    np.testing.assert_allclose(out, loop, rtol=1e-6, atol=1e-6)
    # Each member its own inputs.
    xs = data(rng, K)["x"]
    out = enx.predict(members, xs, member_inputs=True)
    loop = np.stack([member(members, i)(xs[i]) for i in range(K)])
    np.testing.assert_allclose(out, loop, rtol=1e-6, atol=1e-6)
    # Under nnx.jit, and in the layout entjax.ensemble_uncertainty reads.
    jitted = nnx.jit(enx.predict, static_argnames="member_inputs")
    np.testing.assert_allclose(jitted(members, x), enx.predict(members, x), rtol=1e-6, atol=1e-6)
    assert entjax.ensemble_uncertainty(out, axis=0).epistemic.shape == (N,)


def test_predict_and_train_step_check_the_member_axis(rng):
    members = enx.stack(MLP, K, rngs=1)
    opt = enx.optimizer(members, TX)
    with pytest.raises(ValueError, match=r"entjax\.nnx\.predict.*member axis of size 4"):
        enx.predict(members, data(rng)["x"], member_inputs=True)
    with pytest.raises(ValueError, match=r"entjax\.nnx\.train_step.*batch\['y'\]"):
        enx.train_step(members, opt, {**data(rng, K), "y": jnp.zeros(N)}, ce_loss,
                       shared_batch=False)  # fmt: skip


def test_optimizer_state_is_per_member():
    members = enx.stack(MLP, K, rngs=0)
    opt = enx.optimizer(members, optax.adam(1e-3))
    assert opt.step.shape == (K,)
    for leaf in jax.tree.leaves(nnx.state(opt)):
        assert leaf.shape[0] == K


@pytest.mark.parametrize("shared_batch", [True, False])
def test_train_step_equals_separate_optax_steps(rng, shared_batch):
    members = enx.stack(MLP, K, rngs=2)
    singles = [member(members, i) for i in range(K)]  # copies: same initialisation
    opt = enx.optimizer(members, TX)
    steps = 3
    batches = [data(rng) if shared_batch else data(rng, K) for _ in range(steps)]
    losses = [enx.train_step(members, opt, b, ce_loss, shared_batch=shared_batch) for b in batches]
    for i in range(K):
        own = batches if shared_batch else [jax.tree.map(lambda a, i=i: a[i], b) for b in batches]
        ref = reference_steps(singles[i], own)
        for t in range(steps):
            np.testing.assert_allclose(losses[t][i], ref[t][0], rtol=1e-5, atol=1e-5)
        got = nnx.state(member(members, i), nnx.Param)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), got, ref[-1][1]
        )
    assert np.all(np.asarray(opt.step) == steps)


def test_train_step_returns_aux_per_member(rng):
    members = enx.stack(MLP, K, rngs=3)
    opt = enx.optimizer(members, optax.sgd(0.1))

    def loss_with_aux(model, batch):
        logits = model(batch["x"])
        acc = jnp.mean(jnp.argmax(logits, -1) == batch["y"])
        return ce_loss(model, batch), {"accuracy": acc, "logits": logits}

    batch = data(rng)
    before = enx.predict(members, batch["x"])
    losses, aux = enx.train_step(members, opt, batch, loss_with_aux)
    assert losses.shape == (K,)
    assert aux["accuracy"].shape == (K,)
    np.testing.assert_allclose(aux["logits"], before, rtol=1e-6, atol=1e-6)


def test_train_step_takes_an_entjax_objective(rng):
    members = enx.stack(MLP, K, rngs=4)
    opt = enx.optimizer(members, optax.adam(1e-2))
    objective = entjax.make_objective(
        lambda model, batch: {"logits": model(batch["x"])},
        {
            "ce": entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "y"),
            "conf": entjax.term(entjax.confidence_penalty, "logits", weight=0.1),
        },
    )
    batch = data(rng)
    losses, aux = enx.train_step(members, opt, batch, objective)
    np.testing.assert_allclose(losses, aux["loss"])
    assert aux["terms"]["ce"].shape == (K,)


def test_members_with_dropout_use_their_own_streams(rng):
    members = enx.stack(lambda r: MLP(r, dropout=0.5), K, rngs=5)
    opt = enx.optimizer(members, optax.sgd(0.1))
    batch = data(rng)
    losses = enx.train_step(members, opt, batch, ce_loss)
    assert np.all(np.isfinite(losses))
    members.eval()  # deterministic: predict equals the loop again
    loop = np.stack([member(members, i)(batch["x"]) for i in range(K)])
    np.testing.assert_allclose(enx.predict(members, batch["x"]), loop, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("style", ["wrapper", "static_argnames"])
def test_train_step_compiles_once_under_nnx_jit(rng, style):
    traces = []

    def counted_loss(model, batch):
        traces.append(None)
        return ce_loss(model, batch)

    if style == "wrapper":

        @nnx.jit
        def step(members, opt, batch):
            return enx.train_step(members, opt, batch, counted_loss)

    else:
        jitted = nnx.jit(enx.train_step, static_argnames=("loss_fn", "shared_batch"))

        def step(members, opt, batch):
            return jitted(members, opt, batch, counted_loss, shared_batch=True)

    members = enx.stack(MLP, K, rngs=6)
    opt = enx.optimizer(members, TX)
    singles = [member(members, i) for i in range(K)]
    batches = [data(rng) for _ in range(3)]
    losses = [step(members, opt, b) for b in batches[:1]]
    after_first = len(traces)
    assert after_first >= 1
    losses += [step(members, opt, b) for b in batches[1:]]
    assert len(traces) == after_first, "the second call traced the step again"
    ref = reference_steps(singles[0], batches)
    np.testing.assert_allclose([loss[0] for loss in losses], [r[0] for r in ref], rtol=1e-5)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_import_entjax_does_not_import_flax():
    proc = _run("import entjax, sys; assert 'flax' not in sys.modules, 'flax was imported'")
    assert proc.returncode == 0, proc.stderr


def test_without_flax_entjax_works_and_entjax_nnx_names_the_extra():
    proc = _run(
        """
        import sys

        class NoFlax:  # as if Flax were not installed
            def find_spec(self, name, path=None, target=None):
                if name == "flax" or name.startswith("flax."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoFlax())
        import jax.numpy as jnp
        import entjax
        assert abs(float(entjax.entropy(jnp.zeros(2))) - 0.6931) < 1e-3
        assert "flax" not in sys.modules
        try:
            import entjax.nnx
        except ImportError as e:
            assert 'pip install "entjax[flax]"' in str(e), str(e)
        else:
            raise AssertionError("entjax.nnx imported without Flax")
        """
    )
    assert proc.returncode == 0, proc.stderr
