"""make_objective / term / value_fn: gradients, schedules, masks, optax (incl. L-BFGS), vmap, jit.

References are hand-written sums of the terms (jax.nn / numpy) and scikit-learn's
LogisticRegression for the L-BFGS test.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special as sps
from sklearn.linear_model import LogisticRegression

import entjax

NUM_CLASSES = 3


def apply_fn(params, batch):
    h = batch["x"] @ params["w"] + params["b"][None, :]
    return {"logits": h, "mean": h[:, :2], "log_var": 0.1 * h[:, 1:3]}


def make_params(key, d=4, c=NUM_CLASSES):
    k1, k2 = jax.random.split(key)
    return {"w": jax.random.normal(k1, (d, c)), "b": 0.1 * jax.random.normal(k2, (c,))}


def make_batch(rng, n=8, d=4):
    return {
        "x": jnp.asarray(rng.normal(size=(n, d))),
        "label": jnp.asarray(rng.integers(0, NUM_CLASSES, size=n)),
    }


SCHEDULE = optax.linear_schedule(0.0, 0.1, 1000)


def objective(**kw):
    return entjax.make_objective(
        apply_fn,
        {
            "ce": entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "label"),
            "conf": entjax.term(entjax.confidence_penalty, "logits", weight=SCHEDULE),
            "kl": entjax.term(entjax.gaussian_kl, "mean", "log_var", weight=0.5),
        },
        **kw,
    )


@jax.jit  # one compile per batch shape instead of op-by-op dispatch
def hand_written(params, batch, conf_weight, row_weights=None):
    """The same objective written out with jax.nn primitives (no entjax)."""
    h = batch["x"] @ params["w"] + params["b"][None, :]
    logp = jax.nn.log_softmax(h)
    ce = -jnp.take_along_axis(logp, batch["label"][:, None], axis=1)[:, 0]
    neg_h = jnp.sum(jnp.exp(logp) * logp, axis=1)
    m, lv = h[:, :2], 0.1 * h[:, 1:3]
    kl = 0.5 * jnp.sum(jnp.exp(lv) + m**2 - 1 - lv, axis=1)
    per_example = ce + conf_weight * neg_h + 0.5 * kl
    if row_weights is None:
        return jnp.mean(per_example)
    return jnp.sum(row_weights * per_example) / jnp.sum(row_weights)


def test_value_and_gradients_equal_hand_written_sum(rng):
    params, batch = make_params(jax.random.key(0)), make_batch(rng)
    loss_fn = objective()
    (loss, aux), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params, batch, 400)
    ref, ref_grads = jax.jit(jax.value_and_grad(hand_written))(params, batch, 0.04)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    chex.assert_trees_all_close(grads, ref_grads, rtol=1e-10, atol=1e-12)
    assert set(aux) == {"loss", "terms", "weights"}
    np.testing.assert_allclose(aux["loss"], loss)
    total = sum(aux["weights"][k] * aux["terms"][k] for k in ("ce", "conf", "kl"))
    np.testing.assert_allclose(total, loss, rtol=1e-12)


@pytest.fixture(scope="module")
def jitted_objective():
    """One compiled objective for every step (the step is traced)."""
    return jax.jit(objective())


@pytest.mark.parametrize("step", [0, 250, 1000, 5000])
def test_scheduled_weight_takes_schedule_value(rng, step, jitted_objective):
    params, batch = make_params(jax.random.key(0)), make_batch(rng)
    _, aux = jitted_objective(params, batch, jnp.asarray(step))
    expected = 0.1 * min(step / 1000, 1.0)  # linear warm-up to 0.1 over 1000 steps, then flat
    np.testing.assert_allclose(aux["weights"]["conf"], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(aux["weights"]["ce"], 1.0)
    np.testing.assert_allclose(aux["weights"]["kl"], 0.5)
    np.testing.assert_allclose(aux["loss"], hand_written(params, batch, expected), rtol=1e-12)


def test_masked_mean_equals_mean_over_unmasked_rows(rng):
    params, batch = make_params(jax.random.key(0)), make_batch(rng, n=10)
    keep = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0, 1], bool)
    sub = {k: v[keep] for k, v in batch.items()}
    padded = dict(batch, mask=jnp.asarray(keep))
    # Padding rows hold garbage: an out-of-range label (NaN CE) and huge inputs.
    padded["label"] = padded["label"].at[~keep].set(-1)
    padded["x"] = padded["x"].at[2].set(1e30)
    loss_fn = jax.jit(objective(mask="mask"))
    loss, aux = loss_fn(params, padded, 100)
    ref = hand_written(params, sub, 0.01)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    # Gradients through masked rows: their values are dropped with a double where; these rows
    # produce finite junk, and the gradient equals the gradient on the kept rows.
    clean = dict(batch, mask=jnp.asarray(keep))
    g = jax.jit(jax.grad(lambda p: objective(mask="mask")(p, clean, 100)[0]))(params)
    g_ref = jax.jit(jax.grad(lambda p: hand_written(p, sub, 0.01)))(params)
    chex.assert_trees_all_close(g, g_ref, rtol=1e-10, atol=1e-12)
    # Per-term reductions are masked too.
    logp = sps.log_softmax(np.asarray(apply_fn(params, sub)["logits"]), axis=1)
    ce_ref = -np.mean(logp[np.arange(keep.sum()), np.asarray(sub["label"])])
    np.testing.assert_allclose(aux["terms"]["ce"], ce_ref, rtol=1e-12)


def test_float_weights_and_sum_reduction(rng):
    params, batch = make_params(jax.random.key(0)), make_batch(rng)
    w = jnp.asarray(rng.uniform(0.0, 2.0, size=8)).at[3].set(0.0)
    loss, _ = jax.jit(objective(mask="weights"))(params, dict(batch, weights=w), 1000)
    np.testing.assert_allclose(loss, hand_written(params, batch, 0.1, w), rtol=1e-12)
    summed, _ = jax.jit(objective(reduction="sum"))(params, batch, 1000)
    np.testing.assert_allclose(summed, 8 * hand_written(params, batch, 0.1), rtol=1e-12)


def test_per_token_values_with_per_sequence_mask(rng):
    # Values of shape [batch, time], a mask of shape [batch]: the mean over kept tokens.
    logits = jnp.asarray(rng.normal(size=(4, 5, 3)))
    labels = jnp.asarray(rng.integers(0, 3, size=(4, 5)))
    keep = np.array([True, False, True, True])
    loss_fn = entjax.make_objective(
        lambda p, b: p * b["logits"],
        {"ce": entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "output", "y")},
        mask="m",
    )
    loss, _ = jax.jit(loss_fn)(1.0, {"logits": logits, "y": labels, "m": jnp.asarray(keep)})
    ce = -np.take_along_axis(
        sps.log_softmax(np.asarray(logits), -1), np.asarray(labels)[..., None], -1
    )
    np.testing.assert_allclose(loss, ce[keep].mean(), rtol=1e-12)


def test_inputs_prefixes_kwargs_user_callables_and_params(rng):
    params, batch = make_params(jax.random.key(0)), make_batch(rng)
    batch["logits"] = jnp.zeros((8, 3))  # shadowed by the model output unless forced
    l2 = 1e-2

    def weight_decay(p):
        return 0.5 * sum(jnp.sum(jnp.square(v)) for v in jax.tree.leaves(p))

    loss_fn = entjax.make_objective(
        apply_fn,
        {
            "ce": entjax.term(
                entjax.softmax_cross_entropy_with_integer_labels,
                "output.logits",
                "label",
                label_smoothing=0.2,
            ),
            "uniform_ce": entjax.term(
                entjax.softmax_cross_entropy_with_integer_labels, "batch.logits", "batch.label"
            ),
            "user": lambda out, b: jnp.sum(out["logits"] ** 2, axis=1),
            "l2": entjax.term(weight_decay, "params", weight=l2),
        },
    )
    loss, aux = jax.jit(loss_fn)(params, batch)
    h = np.asarray(apply_fn(params, batch)["logits"])
    logp = sps.log_softmax(h, axis=1)
    y = np.asarray(batch["label"])
    ce = np.mean(0.8 * -logp[np.arange(8), y] + 0.2 * -logp.mean(1))
    user = np.mean(np.sum(h**2, 1))
    wd = 0.5 * sum(np.sum(np.asarray(v) ** 2) for v in jax.tree.leaves(params))
    np.testing.assert_allclose(aux["terms"]["ce"], ce, rtol=1e-12)
    np.testing.assert_allclose(aux["terms"]["uniform_ce"], np.log(3), rtol=1e-12)
    np.testing.assert_allclose(aux["terms"]["user"], user, rtol=1e-12)
    np.testing.assert_allclose(aux["terms"]["l2"], wd, rtol=1e-12)  # global: not averaged
    np.testing.assert_allclose(loss, ce + np.log(3) + user + l2 * wd, rtol=1e-12)


def test_errors(rng):
    params, batch = make_params(jax.random.key(0)), make_batch(rng)
    bad = entjax.make_objective(apply_fn, {"x": entjax.term(entjax.entropy, "nope")})
    with pytest.raises(KeyError, match="nope"):
        bad(params, batch)
    with pytest.raises(ValueError, match="reduction"):
        entjax.make_objective(
            apply_fn, {"x": entjax.term(entjax.entropy, "logits")}, reduction="avg"
        )
    with pytest.raises(TypeError, match="inputs"):
        entjax.term(entjax.entropy, 3)
    vib = entjax.make_objective(
        apply_fn, {"v": entjax.term(entjax.vib_loss, "logits", "label", "mean", "log_var")}
    )
    with pytest.raises(TypeError, match="VIBLoss"):
        vib(make_params(jax.random.key(0), c=4), make_batch(rng))
    with pytest.raises(ValueError, match="mask"):
        objective(mask="m")(params, dict(batch, m=jnp.ones(3, bool)))


def test_zero_weight_term_with_infinite_value_contributes_nothing(rng):
    params, batch = make_params(jax.random.key(0)), make_batch(rng)
    loss_fn = entjax.make_objective(
        apply_fn,
        {
            "ce": entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "label"),
            "inf": entjax.term(lambda h: jnp.full(h.shape[0], jnp.inf), "logits", weight=SCHEDULE),
        },
    )
    (loss, _), g = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, 0)
    assert np.isfinite(loss)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(g))


def test_jit_train_step_does_not_retrace_across_steps(rng):
    params, batch = make_params(jax.random.key(0)), make_batch(rng)
    loss_fn = objective()
    opt = optax.adam(1e-2)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def train_step(params, state, batch, step):
        (_, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, step)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, aux

    state = opt.init(params)
    losses, weights = [], []
    for step in range(30):
        arg = step if step % 2 else jnp.asarray(step)  # Python ints and arrays alike
        params, state, aux = train_step(params, state, batch, arg)
        losses.append(float(aux["loss"]))
        weights.append(float(aux["weights"]["conf"]))
    np.testing.assert_allclose(weights, 1e-4 * np.arange(30), rtol=1e-12, atol=1e-15)
    assert losses[-1] < losses[0]


def test_vmap_over_stacked_ensemble_parameters(rng):
    batch = make_batch(rng)
    members = [make_params(jax.random.key(i)) for i in range(3)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    loss_fn = objective(mask="mask")
    batch["mask"] = jnp.asarray(rng.random(8) > 0.3)
    vg = jax.jit(jax.vmap(jax.value_and_grad(loss_fn, has_aux=True), in_axes=(0, None, None)))
    (loss, aux), grads = vg(stacked, batch, 700)
    assert loss.shape == (3,)
    single = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    for i, p in enumerate(members):
        (li, ai), gi = single(p, batch, 700)
        np.testing.assert_allclose(loss[i], li, rtol=1e-12)
        np.testing.assert_allclose(aux["terms"]["conf"][i], ai["terms"]["conf"], rtol=1e-12)
        member = jax.tree.map(functools.partial(lambda i, x: x[i], i), grads)
        chex.assert_trees_all_close(member, gi, rtol=1e-12)


def test_value_and_grad_from_state_with_linesearch(rng):
    params, batch = make_params(jax.random.key(0)), make_batch(rng)
    loss_fn = objective()
    f = entjax.value_fn(loss_fn, batch, step=1000)
    np.testing.assert_allclose(f(params), hand_written(params, batch, 0.1), rtol=1e-12)
    solver = optax.chain(
        optax.sgd(1.0),
        optax.scale_by_backtracking_linesearch(max_backtracking_steps=20, store_grad=True),
    )
    state = solver.init(params)
    value_and_grad = optax.value_and_grad_from_state(f)
    first = float(f(params))

    @jax.jit
    def step(params, state):
        value, grad = value_and_grad(params, state=state)
        updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(params, updates), state

    for _ in range(10):
        params, state = step(params, state)
    assert float(f(params)) < first - 0.1
    # has_aux=False gives the same scalar function through functools.partial.
    plain = entjax.make_objective(
        apply_fn,
        {"ce": entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "label")},
        has_aux=False,
    )
    np.testing.assert_allclose(
        functools.partial(plain, batch=batch)(params),
        jnp.mean(
            entjax.softmax_cross_entropy_with_integer_labels(
                apply_fn(params, batch)["logits"], batch["label"]
            )
        ),
    )


def test_lbfgs_logistic_regression_matches_sklearn():
    rng = np.random.default_rng(0)
    n, d, C = 300, 5, 0.5
    x = rng.normal(size=(n, d))
    w_true = rng.normal(size=d)
    y = (rng.random(n) < sps.expit(x @ w_true + 0.3)).astype(np.int64)

    ref = LogisticRegression(C=C, tol=1e-12, solver="newton-cholesky", max_iter=1000).fit(x, y)

    # sklearn minimises sum_i CE_i + ||w||^2 / (2C), intercept unpenalised.
    loss_fn = entjax.make_objective(
        lambda p, b: b["x"] @ p["w"] + p["b"],
        {
            "bce": entjax.term(entjax.sigmoid_binary_cross_entropy, "output", "y"),
            "l2": entjax.term(lambda p: 0.5 * jnp.sum(p["w"] ** 2), "params", weight=1.0 / C),
        },
        reduction="sum",
    )
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(y, jnp.float64)}
    f = entjax.value_fn(loss_fn, batch)
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(f)

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), length=60)
        return params

    params = run({"w": jnp.zeros(d), "b": jnp.zeros(())})
    np.testing.assert_allclose(params["w"], ref.coef_[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(params["b"], ref.intercept_[0], atol=1e-4, rtol=0)
    grad_norm = optax.tree.norm(jax.jit(jax.grad(f))(params))
    assert grad_norm < 1e-6, grad_norm


def test_string_keyword_arguments_are_batch_fields(rng):
    """``term(ce, "logits", "label", where="mask")``: the mask reaches the loss's own ``where=``,
    so masked rows are out of the value *and* the gradient, even where they would be infinite."""
    params, batch = make_params(jax.random.key(0)), make_batch(rng)
    mask = jnp.asarray(rng.random(8) < 0.6).at[0].set(False)
    label = batch["label"].at[0].set(-5)  # an out-of-range label on a masked row: NaN unmasked
    batch = dict(batch, label=label, mask=mask)
    ce = entjax.softmax_cross_entropy_with_integer_labels
    loss_fn = entjax.make_objective(
        apply_fn,
        {"ce": entjax.term(ce, "logits", "label", where="mask", label_smoothing=0.1)},
        mask="mask",
    )
    (loss, aux), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params, batch, 0)

    def reference(p):  # the mean over the kept rows, written out with numpy-side indexing
        keep = np.flatnonzero(np.asarray(mask))
        logits = apply_fn(p, batch)["logits"][keep]
        return jnp.mean(ce(logits, label[keep], label_smoothing=0.1))

    want, want_grads = jax.jit(jax.value_and_grad(reference))(params)
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    np.testing.assert_allclose(aux["terms"]["ce"], want, rtol=1e-12)
    for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-14)
    missing = entjax.make_objective(apply_fn, {"ce": entjax.term(ce, "logits", "label", where="m")})
    with pytest.raises(KeyError, match="'m' not found"):
        missing(params, batch)


@pytest.mark.parametrize(
    ("weight", "error", "match"),
    [
        ("0.1", TypeError, r"term: `weight` must be a number.*got '0.1' \(str\)"),
        (True, TypeError, r"term: `weight` must be a number"),
        (None, TypeError, r"term: `weight` must be a number"),
        (1j, TypeError, r"term: `weight` must be a number"),
        (np.array(["a"]), TypeError, r"term: `weight` must be real-valued"),
        (jnp.ones(2), ValueError, r"term: `weight` must be a scalar, got shape \(2,\)"),
    ],
)
def test_bad_weights_name_term_and_the_fix(weight, error, match):
    with pytest.raises(error, match=match) as info:
        entjax.term(entjax.entropy, "logits", weight=weight)
    assert "optax.linear_schedule" in str(info.value)  # the fix is named


def test_good_weights_are_accepted():
    for weight in (0, 0.5, np.float32(0.1), jnp.asarray(2.0), jnp.bfloat16(1.0), SCHEDULE):
        assert entjax.term(entjax.entropy, "logits", weight=weight).weight is weight
