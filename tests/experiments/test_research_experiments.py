"""The research experiments: their pieces against independent references, and ``--smoke`` runs.

Each experiment runs its ``--smoke`` configuration in-process (one import of JAX/Flax for all of
them) with the settings the scripts run under from the command line: float32 and numpy-style
rank promotion, not the float64 / strict promotion that conftest.py sets for library tests.
Values are checked against independent references written out with numpy/scipy (closed-form
gradients, the VAE-k and IWAE-k objectives, label smoothing, the square loss, Burda et al.'s
active-unit count, Student-t intervals, the validation choices) and against their valid ranges
otherwise.
"""

from __future__ import annotations

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compilation_cache import persistent_compilation_cache
from scipy import special, stats as scipy_stats

import entjax
from experiments import confidence_penalty, elbo, entropy_vs_mse, information_bottleneck
from experiments.core import models, sweeps, training

pytestmark = pytest.mark.usefixtures("script_jax_config")  # JAX defaults (tests/conftest.py)


def _load(out: pathlib.Path) -> dict:
    with open(out / "results.json") as f:
        return json.load(f)


def _assert_outputs(out: pathlib.Path, pngs: list[str]) -> dict:
    results = _load(out)
    assert (out / "report.md").read_text().startswith("# ")
    for name in pngs:
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 2000, name
    for key in ("config", "versions", "devices", "timing", "experiment"):
        assert key in results
    assert results["smoke"] is True
    _assert_entropy_curves(out, results)
    return results


def _assert_entropy_curves(out: pathlib.Path, results: dict) -> None:
    """Every experiment reports output entropy through training (figure, report, JSON)."""
    assert (out / "entropy_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Entropy through training" in (out / "report.md").read_text()
    for block in results["entropy_curves"].values():
        steps = block["steps"]
        assert steps[0] == 0
        assert steps[-1] == results["config"]["steps"]
        ceiling = block["max_entropy"]
        for series in block["series"].values():
            for key in ("entropy_train", "entropy_val"):
                values = np.asarray(series[key])
                assert values.shape == (len(steps),)
                assert np.all((values >= 0) & (values <= ceiling + 1e-6)), key
            assert isinstance(series["alarms"], list)


def _all_finite(tree) -> bool:
    if isinstance(tree, dict):
        return all(_all_finite(v) for v in tree.values())
    if isinstance(tree, list):
        return all(_all_finite(v) for v in tree)
    if isinstance(tree, float):
        return math.isfinite(tree)
    return tree is not None


def _t_interval(x) -> tuple[float, float, float]:
    """Mean and Student-t 95% interval written out with scipy (ddof = 1)."""
    x = np.asarray(x, np.float64)
    half = scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


def _without_timing(results: dict) -> dict:
    return {k: v for k, v in results.items() if k != "timing"}


# --------------------------------------------------------------------------- core/sweeps


def test_sweeps_interval_choose_compare_against_references():
    grid = training.member_grid(lam=(0.0, 0.5), seed=(0, 1, 2))
    values = np.array([1.0, 2.0, 4.0, 0.5, 0.25, 3.0])  # lam 0: seeds 0..2, then lam 0.5
    mean, low, high = _t_interval([1.0, 2.0, 4.0])
    got = sweeps.interval(values, grid, lam=0.0)
    assert (got["mean"], got["low"], got["high"]) == pytest.approx((mean, low, high))
    cols = sweeps.intervals(values, grid, "lam", (0.0, 0.5))
    assert cols["mean"] == pytest.approx([7 / 3, 3.75 / 3])
    assert sweeps.entry(cols, 1)["n"] == 3
    best, means = sweeps.choose(values, grid, "lam", (0.0, 0.5), higher_is_better=False)
    assert best == 0.5
    assert means == pytest.approx([7 / 3, 1.25])
    nan_scores = np.where(np.arange(6) == 4, np.nan, values)  # a diverged member
    assert sweeps.choose(nan_scores, grid, "lam", (0.0, 0.5), higher_is_better=False)[0] == 0.0
    diff = sweeps.compare(
        values, grid, {"lam": 0.0}, {"lam": 0.5}, names=("a", "b"), higher_is_better=True
    )
    ref = _t_interval(values[:3] - values[3:])
    assert (diff["mean"], diff["low"], diff["high"]) == pytest.approx(ref)
    assert diff["significant"] == (ref[1] > 0 or ref[2] < 0)
    assert "no significant difference" in diff["verdict"] or "better" in diff["verdict"]


def test_members_from_copies_the_chosen_members():
    def model_fn(rngs):
        return models.build_model("mlp", num_classes=3, width=4, rngs=rngs)

    base = training.Members.create(model_fn, 2, seed=0)
    copy = sweeps.members_from(base, [1, 0, 1])
    leaves = jax.tree.leaves(base.ensemble.params)
    for a, b in zip(leaves, jax.tree.leaves(copy.ensemble.params), strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a)[[1, 0, 1]])
    assert copy.num_members == 3


# --------------------------------------------------------------------------- entropy_vs_mse


def test_square_loss_and_per_member_learning_rate():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 4)).astype(np.float32)
    y = rng.integers(0, 4, 5)
    ref = np.mean((z - np.eye(4)[y]) ** 2, axis=-1)
    np.testing.assert_allclose(
        entropy_vs_mse.square_loss(jnp.asarray(z), jnp.asarray(y)), ref, rtol=1e-6
    )

    # The objective's value is the loss itself, its gradient lr times the loss's gradient.
    def model_fn(rngs):
        return models.build_model("mlp", num_classes=4, width=3, input_shape=(1, 2, 1), rngs=rngs)

    members = training.Members.create(model_fn, 1, seed=0)
    params = members.ensemble.member(0)
    batch = {
        "image": jnp.asarray(rng.normal(size=(5, 1, 2, 1)), jnp.float32),
        "label": jnp.asarray(y, jnp.int32),
        "mask": jnp.ones(5, bool),
        "loss_id": jnp.asarray(0),
        "lr": jnp.asarray(0.3),
    }
    loss_fn = entropy_vs_mse.make_loss_fn(members.ensemble, ("ce", "mse"))

    def reference(p):  # mean cross-entropy, written out with log-softmax
        logits = members.ensemble.apply(p, batch["image"])
        return -jnp.mean(
            jnp.take_along_axis(jax.nn.log_softmax(logits), batch["label"][:, None], 1)
        )

    # Jitted, as in training (op by op, each primitive would compile on its own).
    value, grads = jax.jit(jax.value_and_grad(lambda p: loss_fn(p, batch)[0]))(params)
    ref_value, ref_grads = jax.jit(jax.value_and_grad(reference))(params)
    assert float(value) == pytest.approx(float(ref_value), rel=1e-5)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        np.testing.assert_allclose(g, 0.3 * np.asarray(r), rtol=1e-4, atol=1e-7)


def test_overconfident_start_scales_only_the_last_layer():
    def model_fn(rngs):
        return models.build_model("mlp", num_classes=3, width=4, rngs=rngs)

    members = training.Members.create(model_fn, 2, seed=0)
    scaled = entropy_vs_mse.scale_last_layer(members.ensemble.params, np.array([1.0, 10.0]))
    flat = dict(jax.tree_util.tree_flatten_with_path(members.ensemble.params)[0])
    for path, leaf in jax.tree_util.tree_flatten_with_path(scaled)[0]:
        before = np.asarray(flat[path])
        factor = 10.0 if any(getattr(k, "key", None) == "head" for k in path) else 1.0
        np.testing.assert_allclose(np.asarray(leaf)[0], before[0], rtol=1e-6)
        np.testing.assert_allclose(np.asarray(leaf)[1], factor * before[1], rtol=1e-6)


def test_measured_logit_gradients_against_closed_forms():
    """|∂L/∂z_y|, ‖∂L/∂z‖ and the RMS logit of each member's own loss, against the gradients
    written out with numpy (CE: p − y; Brier: 2 p ⊙ ((p − y) − Σ_c p_c (p_c − y_c));
    square loss: 2 (z − y) / C)."""
    rng = np.random.default_rng(3)
    losses = ("ce", "mse", "square")
    z = (rng.normal(size=(4, 7, 5)) * np.array([1.0, 3.0, 10.0, 0.3])[:, None, None]).astype(
        np.float32
    )
    y = rng.integers(0, 5, 7)
    loss_ids = np.array([0, 1, 2, 1], np.int32)
    # Jitted with the loss ids fixed, as the experiment calls it.
    measure = jax.jit(lambda z, y: entropy_vs_mse.logit_gradients(z, y, loss_ids, losses))
    got = measure(jnp.asarray(z), jnp.asarray(y))
    zz = z.astype(np.float64)
    p = np.exp(zz - zz.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    onehot = np.eye(5)[y][None]
    grads = {
        "ce": p - onehot,
        "mse": 2 * p * ((p - onehot) - np.sum(p * (p - onehot), -1, keepdims=True)),
        "square": 2 * (zz - onehot) / 5,
    }
    for m, lid in enumerate(loss_ids):
        g = grads[losses[lid]][m]
        true = np.abs(g[np.arange(7), y]).mean()
        np.testing.assert_allclose(got["grad_true"][m], true, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(
            got["grad_norm"][m], np.linalg.norm(g, axis=-1).mean(), rtol=1e-4, atol=1e-7
        )
        np.testing.assert_allclose(got["logit_rms"][m], np.sqrt(np.mean(zz[m] ** 2)), rtol=1e-5)


def test_entropy_vs_mse_smoke(tmp_path):
    out = tmp_path / "evm"
    assert entropy_vs_mse.main(["--smoke", "--out", str(out), "--no-progress"]) == 0
    r = _assert_outputs(out, ["gradients", "training", "measured_gradients", "selection"])

    g = r["gradients"]
    t = np.asarray(g["wrong_logit"])
    # Independent reference: softmax of [0, t, 0, ..., 0] (10 classes), true class 0.
    z = np.zeros((len(t), 10))
    z[:, 1] = t
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(g["grad_ce"], p[:, 0] - 1.0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g["mse"], np.sum((p - np.eye(10)[0]) ** 2, axis=1), rtol=1e-9)
    np.testing.assert_allclose(g["grad_square"], -0.2, rtol=1e-12)  # 2 (z_y - 1) / C
    # Finite differences of the Brier score w.r.t. the true logit.
    h = 1e-6
    zp, zm = z.copy(), z.copy()
    zp[:, 0] += h
    zm[:, 0] -= h

    def brier(zz):
        q = np.exp(zz - zz.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        return np.sum((q - np.eye(10)[0]) ** 2, axis=1)

    np.testing.assert_allclose(g["grad_mse"], (brier(zp) - brier(zm)) / (2 * h), atol=1e-8)
    # The point of the experiment: CE's push stays near 1, MSE's vanishes.
    assert abs(g["grad_ce"][-1] + 1.0) < 1e-6
    assert abs(g["grad_mse"][-1]) < 1e-6
    assert np.all(np.diff(np.abs(g["grad_mse"])) < 0)

    tr = r["training"]
    cfg = r["config"]
    assert tr["eval_steps"] == list(range(0, cfg["steps"] + 1, cfg["eval_every"]))
    scales = cfg["init_scales"]
    assert set(tr["groups"]) == {f"{loss}/{s:g}" for loss in cfg["losses"] for s in scales}
    assert tr["gradient_steps"][0] == 0
    assert tr["gradient_steps"][-1] == cfg["steps"]
    for grp in tr["groups"].values():
        # The choice: the best finite validation criterion (never a test number).
        crit = np.array([np.nan if c is None else c for c in grp["val_criterion"]])
        assert grp["chosen_lr"] == cfg["learning_rates"][int(np.nanargmax(crit))]
        mine = [m for m in tr["members"] if m["loss"] == grp["loss"] and m["scale"] == grp["scale"]]
        steps = [m["steps_to_target"] for m in mine if m["lr"] == grp["chosen_lr"]]
        reached = [s for s in steps if s is not None]
        assert grp["reached"] == len(reached)
        assert all(s in tr["eval_steps"] for s in reached)
        # Per rate: seeds that reached the target, None where a seed diverged; the largest rate
        # with no diverged seed.
        for lr, count in zip(cfg["learning_rates"], grp["reached_by_lr"], strict=True):
            at = [m for m in mine if m["lr"] == lr]
            if any(m["diverged"] for m in at):
                assert count is None
            else:
                assert count == sum(m["steps_to_target"] is not None for m in at)
        stable = [
            lr
            for lr in cfg["learning_rates"]
            if not any(m["diverged"] for m in mine if m["lr"] == lr)
        ]
        assert grp["largest_stable_lr"] == (max(stable) if stable else None)
        assert 0.0 <= grp["test_accuracy"]["low"] <= grp["test_accuracy"]["mean"] <= 1.0
        assert grp["test_nll"]["mean"] > 0.0
        assert len(grp["test_accuracy_curve"]) == len(tr["eval_steps"])
        assert len(grp["grad_true_curve"]) == len(tr["eval_steps"])
        for key in ("grad_true", "grad_norm", "logit_rms"):
            assert len(grp["measured"][key]) == len(tr["gradient_steps"])
            assert all(v["mean"] >= 0 for v in grp["measured"][key])
        # |∂L/∂z_y| ≤ ‖∂L/∂z‖ example by example, so also on average.
        for t, n in zip(grp["measured"]["grad_true"], grp["measured"]["grad_norm"], strict=True):
            assert t["mean"] <= n["mean"] + 1e-6
        if grp["loss"] == "ce":  # |p_y − 1| ≤ 1
            assert all(v["mean"] <= 1.0 for v in grp["measured"]["grad_true"])
    # At step 0 a member of scale s has exactly s times the logits of the same seed at scale 1
    # (kernel and bias of the last layer scaled), whatever its loss and rate.
    for loss in cfg["losses"]:
        base = tr["groups"][f"{loss}/1"]["measured"]["logit_rms"][0]["mean"]
        for s in scales:
            got = tr["groups"][f"{loss}/{s:g}"]["measured"]["logit_rms"][0]["mean"]
            assert got == pytest.approx(s * base, rel=1e-3)
    # The more confident start is more confident at step 0.
    std = tr["groups"]["ce/1"]["initial_val_entropy"]["mean"]
    assert tr["groups"][f"ce/{max(scales):g}"]["initial_val_entropy"]["mean"] < std - 0.1
    assert [r["loss"] for r in tr["readings"]] == list(cfg["losses"])
    report = (out / "report.md").read_text()
    assert "### Measured gradients during training" in report
    assert "largest non-diverging lr" in report


# --------------------------------------------------------------------------- confidence_penalty


def test_smoothed_cross_entropy_matches_numpy():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(6, 5))
    y = rng.integers(0, 5, 6)
    log_p = z - special.logsumexp(z, axis=1, keepdims=True)
    for eps in (0.0, 0.1, 0.4):
        ref = -(1 - eps) * log_p[np.arange(6), y] - eps * log_p.mean(axis=1)
        got = confidence_penalty.smoothed_cross_entropy(
            jnp.asarray(z, jnp.float32), jnp.asarray(y), jnp.asarray(eps, jnp.float32)
        )
        np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_toy_label_noise_and_per_example_scores():
    _, clean = confidence_penalty.toy_points(20000, seed=5)
    x, noisy = confidence_penalty.toy_points(20000, seed=5, noise=0.2)
    np.testing.assert_array_equal(clean, (x.reshape(-1, 2).sum(-1) > 0).astype(np.int32))
    flipped = np.mean(clean != noisy)
    assert abs(flipped - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 20000)
    # Per-example correctness and NLL (scipy) average to the core's per-member metrics (entjax).
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 50, 4)).astype(np.float32) * 3
    labels = rng.integers(0, 4, 50)
    temperature = np.array([0.5, 1.0, 2.0])
    for t in (None, temperature):
        ex = confidence_penalty.per_example(logits, labels, t)
        ref = confidence_penalty.scores(logits, labels, 15, t)
        np.testing.assert_allclose(ex["accuracy"].mean(1), ref["accuracy"], rtol=1e-6)
        np.testing.assert_allclose(ex["nll"].mean(1), ref["nll"], rtol=1e-4)


def test_confidence_penalty_smoke_and_exact_resume(tmp_path):
    # The interrupted and the resumed runs load the toy programs the full run compiled.
    with persistent_compilation_cache(tmp_path / "jax_cache"):
        _confidence_penalty_smoke_and_exact_resume(tmp_path)


def _confidence_penalty_smoke_and_exact_resume(tmp_path: pathlib.Path) -> None:
    full = tmp_path / "full"
    assert confidence_penalty.main(["--smoke", "--out", str(full), "--no-progress"]) == 0
    r = _assert_outputs(full, ["metrics_vs_lambda", "curves", "toy_surfaces"])
    assert set(r["datasets"]) == {"digits", "toy"}
    for name, d in r["datasets"].items():
        num_classes = 10 if name == "digits" else 2
        assert d["max_entropy"] == pytest.approx(math.log(num_classes))
        assert d["lambdas"] == [0.0, 1.0]
        per = d["per_lambda"]
        assert _all_finite(per)
        for i in range(len(d["lambdas"])):
            assert 0.0 <= per["accuracy"]["low"][i] <= per["accuracy"]["high"][i] <= 1.0
            assert per["nll"]["mean"][i] > 0.0
            assert 0.0 <= per["mean_entropy"]["mean"][i] <= math.log(num_classes) + 1e-6
        # Rewarding entropy (λ = 1) cannot give a *less* uncertain model than λ = 0.
        assert per["mean_entropy"]["mean"][1] > per["mean_entropy"]["mean"][0]
        # The choices: argmin of the validation NLL over every λ (0 included) and over ε.
        assert d["chosen"]["lambda"] == d["lambdas"][int(np.argmin(d["val_nll"]["lambdas"]))]
        assert len(d["val_nll"]["lambdas"]) == len(d["lambdas"])
        # Each λ > 0 against CE: the paired per-example mean difference equals the difference of
        # the per-seed means of the sweep table (computed from the member metrics).
        for row in d["lambda_vs_ce"]:
            i = d["lambdas"].index(row["lambda"])
            for m in ("accuracy", "nll", "ece"):
                ref = per[m]["mean"][i] - per[m]["mean"][0]
                assert row[m]["mean"] == pytest.approx(ref, abs=1e-5)
                assert row[m]["low"] <= row[m]["mean"] <= row[m]["high"]
                assert row[m]["significant"] == (row[m]["low"] > 0 or row[m]["high"] < 0)
            assert row["accuracy"]["examples"] == d["num_test"]
            assert row["accuracy"]["interval"].startswith("hierarchical bootstrap")
        assert (
            d["chosen"]["smoothing"]
            == r["config"]["smoothings"][int(np.argmin(d["val_nll"]["smoothings"]))]
        )
        methods = d["methods"]
        assert set(methods) == {"ce", "ce_ts", "cp", "ls"}
        # Temperature scaling never changes the argmax: same accuracy as CE, seed by seed.
        assert methods["ce_ts"]["accuracy"]["mean"] == pytest.approx(
            methods["ce"]["accuracy"]["mean"]
        )
        # Accuracy and NLL of the table: over seeds and examples; same means as the sweep at λ = 0.
        assert methods["ce"]["accuracy"]["mean"] == pytest.approx(per["accuracy"]["mean"][0])
        assert methods["ce"]["nll"]["mean"] == pytest.approx(per["nll"]["mean"][0], rel=1e-4)
        assert methods["ce"]["accuracy"]["interval"].startswith("hierarchical bootstrap")
        temperature = methods["ce_ts"]["temperature"]
        assert 0 <= temperature["low"] <= temperature["mean"] <= temperature["high"]
        assert temperature["mean"] > 0
        assert 0 <= d["ce_overconfident_seeds"] <= r["config"]["seeds"]
        assert [(c["a"], c["b"]) for c in d["comparisons"]][:2] == [("cp", "ce"), ("ls", "ce")]
    toy = r["datasets"]["toy"]
    surface = np.asarray(toy["surface"]["prob_class1"])
    assert surface.shape == (2, 41, 41)
    assert np.all((surface >= 0) & (surface <= 1))

    # Kill after 10 of 20 steps, resume: identical results apart from timing.
    part = tmp_path / "resumed"
    args = ["--smoke", "--datasets", "toy", "--out", str(part), "--no-progress"]
    assert confidence_penalty.main([*args, "--stop-after-step", "10"]) == 3
    assert not (part / "results.json").exists()
    assert confidence_penalty.main([*args, "--resume"]) == 0
    resumed = _load(part)
    # The toy members do not depend on whether digits ran first: compare with the full run.
    assert _without_timing(resumed)["datasets"]["toy"] == toy


# --------------------------------------------------------------------------- information_bottleneck


def test_information_bottleneck_smoke(tmp_path):
    out = tmp_path / "ib"
    assert information_bottleneck.main(["--smoke", "--out", str(out), "--no-progress"]) == 0
    r = _assert_outputs(out, ["information_plane", "curves"])
    ib = r["ib"]
    assert ib["betas"] == [1e-3, 1.0]
    assert ib["h_y_bits"] == pytest.approx(math.log2(10), abs=0.01)  # near-balanced digits
    # The ceiling of I(X;Z): log2 of the number of images of each split (360 test digits).
    assert ib["log2_n"]["test"] == pytest.approx(math.log2(360))
    assert ib["log2_n"]["train"] == pytest.approx(math.log2(1077))
    assert "log2 N = 8.49 bits" in (out / "report.md").read_text()
    assert _all_finite(ib["test"])
    assert _all_finite(ib["train"])
    for split in ("test", "train"):
        for i in range(len(ib["betas"])):
            assert ib[split]["izx_bits"]["mean"][i] >= 0.0
            assert ib[split]["izy_bits"]["mean"][i] <= ib["h_y_bits"] + 1e-6
            # The lower bound is H(Y) - CE, in bits.
            lhs = ib[split]["izy_bits"]["mean"][i]
            rhs = ib["h_y_bits"] - ib[split]["ce_bits"]["mean"][i]
            assert lhs == pytest.approx(rhs, abs=1e-4)
            assert 0.0 <= ib[split]["accuracy"]["mean"][i] <= 1.0
    assert ib["chosen"]["vib"] == ib["betas"][int(np.argmin(ib["val_nll"]["vib"]))]
    assert ib["chosen"]["cp"] == ib["cp_lambdas"][int(np.argmin(ib["val_nll"]["cp"]))]
    assert set(ib["methods"]) == {"det", "cp", "vib"}
    # The method table's VIB row is the β sweep's row of the chosen β.
    i = ib["betas"].index(ib["chosen"]["vib"])
    assert ib["methods"]["vib"]["nll"]["mean"] == pytest.approx(ib["test"]["nll"]["mean"][i])
    det = [m["test_accuracy"] for m in ib["members"] if m["method"] == "det"]
    assert ib["methods"]["det"]["accuracy"]["mean"] == pytest.approx(np.mean(det))
    assert len(ib["eval_steps"]) == len(ib["curves"]["izx_bits"][0])
    # The direct I(X;Z) estimate: within [0, log2 N] on every split and member, exactly
    # log2 N for the deterministic encoders of distinct images, never above the KL bound by
    # more than its Monte Carlo error, and in the report and the curves beside the bound.
    for split in ("test", "train"):
        mc = np.asarray(ib[split]["izx_mc_bits"]["mean"])
        assert np.all((mc >= -1e-3) & (mc <= ib["log2_n"][split] + 1e-4))
        kl = np.asarray(ib[split]["izx_bits"]["mean"])
        assert np.all(mc <= kl + 3 * ib["mc_se_max_bits"][split] + 1e-4)
    for method in ("det", "cp"):
        direct = ib["methods"][method]["izx_mc_bits"]["mean"]
        assert direct == pytest.approx(ib["log2_n"]["test"], abs=1e-4)
    assert len(ib["curves"]["izx_mc_bits"]) == len(ib["betas"])
    assert len(ib["kl_above_ceiling_test"]) == len(ib["betas"])
    report = (out / "report.md").read_text()
    assert "I(X;Z) direct (test)" in report
    assert "KL bound (test)" in report
    assert "only says the rate is at the ceiling" not in report


def _mixture_mi_reference(mean, log_var, eps) -> float:
    """I(X;Z) in nats from the draws ``eps`` ``(S, N, d)``, written out with scipy: the
    log-density of every draw under every component, then the mixture by logsumexp."""
    mean, log_var, eps = (np.asarray(a, np.float64) for a in (mean, log_var, eps))
    std = np.exp(0.5 * log_var)
    z = mean + std * eps  # (S, N, d)
    logq = scipy_stats.norm.logpdf(z[:, :, None, :], mean[None, None], std[None, None]).sum(-1)
    n = mean.shape[0]
    own = np.einsum("sii->si", logq)
    return float(np.mean(own - (special.logsumexp(logq, axis=-1) - math.log(n))))


def test_mixture_mutual_information_against_scipy_and_limits():
    est = jax.jit(information_bottleneck.mixture_mutual_information, static_argnums=3)
    key = jax.random.key(3)
    rng = np.random.default_rng(4)
    n, d, s = 12, 3, 5
    mean = rng.normal(0, 1.0, (n, d)).astype(np.float32)
    log_var = rng.normal(-1.0, 0.7, (n, d)).astype(np.float32)  # heteroscedastic
    mi, se = est(key, jnp.asarray(mean), jnp.asarray(log_var), s)
    eps = jax.random.normal(key, (s, n, d), jnp.float32)  # the estimator's own draws
    assert float(mi) == pytest.approx(_mixture_mi_reference(mean, log_var, eps), abs=2e-4)
    assert 0.0 < float(se) < float(mi)
    # The standard error is the spread of the estimate over independent draws.
    again = [float(est(jax.random.key(100 + i), mean, log_var, s)[0]) for i in range(40)]
    assert 0.6 < np.std(again, ddof=1) / float(se) < 1.6
    # Never above log N, and never above the KL bound E_i KL(q(z|x_i) || N(0, I)) by more than
    # the Monte Carlo error (I(X;Z) = bound − KL(q(z) || N(0, I)) in expectation).
    kl = 0.5 * np.sum(mean**2 + np.exp(log_var) - 1.0 - log_var, axis=1).mean()
    assert float(mi) <= math.log(n) + 1e-6
    assert float(mi) <= kl + 3 * float(se)
    # Identical encoders: Z does not depend on X, I = 0 exactly (every draw's mixture is its
    # own component).
    same = jnp.broadcast_to(jnp.asarray(mean[:1]), (n, d))
    same_lv = jnp.broadcast_to(jnp.asarray(log_var[:1]), (n, d))
    assert float(est(key, same, same_lv, s)[0]) == pytest.approx(0.0, abs=1e-5)
    # Well-separated encoders: every draw is explained by its own component, I = log N; with
    # tiny variances (a KL bound in the hundreds of bits) the estimate still stops at log N.
    far = jnp.asarray(100.0 * np.arange(n)[:, None] * np.ones((1, d)), jnp.float32)
    for lv in (0.0, -40.0):
        got = float(est(key, far, jnp.full((n, d), lv, jnp.float32), s)[0])
        assert got == pytest.approx(math.log(n), abs=1e-5)


def test_mixture_mutual_information_two_components_against_quadrature():
    """1-D, N = 2, unequal variances: I = (1/2) Σ_i ∫ q_i log(q_i / m) with m the mixture, by
    numerical integration; the Monte Carlo estimate within 4 standard errors of it."""
    from scipy import integrate

    mean = np.array([[0.0], [1.5]])
    std = np.array([[1.0], [0.5]])
    q = [scipy_stats.norm(mean[i, 0], std[i, 0]) for i in range(2)]

    def integrand(z, i):
        log_m = np.logaddexp(q[0].logpdf(z), q[1].logpdf(z)) - math.log(2)
        return q[i].pdf(z) * (q[i].logpdf(z) - log_m)

    exact = sum(0.5 * integrate.quad(integrand, -20, 20, args=(i,))[0] for i in range(2))
    assert 0.1 < exact < math.log(2) - 0.1  # overlapping: strictly between 0 and log 2
    mi, se = information_bottleneck.mixture_mutual_information(
        jax.random.key(0),
        jnp.asarray(mean, jnp.float32),
        jnp.asarray(2 * np.log(std), jnp.float32),
        100_000,
    )
    assert abs(float(mi) - exact) < 4 * float(se) + 1e-4
    assert float(se) < 0.01


def test_deterministic_mutual_information_counts_codes():
    codes = jnp.asarray([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0], [3.0, 3.0]], jnp.float32)
    # Symbols a, a, b, c with X uniform: H = 1/2 log 2 + 1/4 log 4 + 1/4 log 4 = 1.5 bits.
    got = float(information_bottleneck.deterministic_mutual_information(codes)) / math.log(2)
    assert got == pytest.approx(1.5, abs=1e-6)
    distinct = jnp.asarray(np.arange(10.0)[:, None], jnp.float32)
    got = float(information_bottleneck.deterministic_mutual_information(distinct))
    assert got == pytest.approx(math.log(10), abs=1e-6)


# --------------------------------------------------------------------------- elbo


def test_vae_k_and_iwae_k_objectives_against_numpy():
    rng = np.random.default_rng(2)
    k, n, d = 7, 3, 2
    log_lik = rng.normal(-20, 2, size=(k, n))
    log_w = rng.normal(-22, 3, size=(k, n))
    mean, log_var = rng.normal(size=(n, d)), rng.normal(0, 0.3, size=(n, d))
    out = elbo.bounds(
        {
            "log_lik": jnp.asarray(log_lik, jnp.float32),
            "log_weights": jnp.asarray(log_w, jnp.float32),
            "mean": jnp.asarray(mean, jnp.float32),
            "log_var": jnp.asarray(log_var, jnp.float32),
        }
    )
    kl = 0.5 * np.sum(np.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)
    np.testing.assert_allclose(out["elbo"], log_lik.mean(0) - kl, rtol=1e-5)
    np.testing.assert_allclose(
        out["iwae"], special.logsumexp(log_w, axis=0) - math.log(k), rtol=1e-5
    )


def test_active_units_is_burdas_criterion():
    rng = np.random.default_rng(3)
    means = rng.normal(size=(2, 50, 4)) * np.array([1.0, 0.3, 0.05, 0.0])
    ref = [(np.var(m, axis=0, ddof=1) > 0.01).sum() for m in means]
    assert elbo.active_units(means).tolist() == ref == [2, 2]


def test_vae_log_likelihood_is_minus_the_binary_cross_entropy():
    rng = np.random.default_rng(5)
    logits = jnp.asarray(rng.normal(0, 5, size=(3, 4, 64)), jnp.float32)
    pixels = jnp.asarray(rng.random((4, 64)) < 0.4, jnp.float32)
    ref = -jnp.sum(entjax.sigmoid_binary_cross_entropy(logits, pixels), axis=-1)
    np.testing.assert_allclose(elbo.bernoulli_log_lik(logits, pixels), ref, rtol=1e-6)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"check_ks": (70, 300)}, "every --check-ks must divide the largest"),
        ({"check_ks": (500,)}, "--check-ks needs at least two values"),
        ({"check_chunk": 300}, "--check-chunk must divide the largest --check-ks"),
        ({"check_images": 1}, "--check-images must be >= 2"),
    ],
)
def test_elbo_convergence_check_config_is_validated(overrides, message):
    from experiments.core.cli import ConfigError

    with pytest.raises(ConfigError, match=message):
        elbo.Config(**overrides)


def test_iwae_estimates_average_disjoint_blocks():
    rng = np.random.default_rng(4)
    log_w = rng.normal(-30, 4, size=(2, 3, 20))
    got = elbo.iwae_estimates(log_w, (1, 5, 20))
    for k in (1, 5, 20):
        ref = np.mean(
            [
                special.logsumexp(log_w[..., b : b + k], axis=-1) - math.log(k)
                for b in range(0, 20, k)
            ],
            axis=0,
        )
        np.testing.assert_allclose(got[k], ref, rtol=1e-12)
    np.testing.assert_allclose(got[1], log_w.mean(-1), rtol=1e-12)  # IWAE-1: the mean log-weight
    with pytest.raises(ValueError, match="must divide"):
        elbo.iwae_estimates(log_w, (3,))


def _exact_log_px(members: training.Members, x: np.ndarray) -> np.ndarray:
    """log p(x) of a 1-d latent VAE by quadrature: a 4001-point grid on [-10, 10]."""
    z = np.linspace(-10.0, 10.0, 4001)
    pixels = x.reshape(len(x), -1).astype(np.float64)
    log_prior = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    out = []
    for i in range(members.num_members):
        model = members.ensemble.module(members.member_params(members.ensemble.params, i))
        logits = np.asarray(model.decode(jnp.asarray(z[:, None], jnp.float32)), np.float64)
        log_lik = -(np.logaddexp(0.0, logits)[None] - pixels[:, None] * logits[None]).sum(-1)
        out.append(special.logsumexp(log_lik + log_prior, axis=1) + math.log(z[1] - z[0]))
    return np.stack(out)  # (K, n)


def test_iwae_k_estimate_rises_with_k_to_the_exact_log_px():
    """The convergence check's estimator on a model whose log p(x) is known (a 1-d latent, by
    quadrature): E[IWAE-k] is non-decreasing in k and IWAE-5000 reaches log p(x)."""
    members = training.Members.create(
        lambda rngs: elbo.VAE(latent_dim=1, width=8, rngs=rngs), 2, seed=0
    )
    x = (np.random.default_rng(0).random((6, 8, 8, 1)) < 0.3).astype(np.float32)
    fn = elbo.make_log_weights(members.ensemble, 5000, 500, seed=0)
    out = members.predict(members.ensemble.params, x, fn)
    assert out["log_weights"].shape == (2, 6, 5000)
    ks = (1, 10, 100, 1000, 5000)
    est = elbo.iwae_estimates(out["log_weights"], ks)
    exact = _exact_log_px(members, x)
    # The ELBO from the same samples (analytic KL) is below log p(x), near the mean log-weight.
    assert np.all(out["elbo"] < exact)
    np.testing.assert_allclose(out["elbo"], est[1], atol=0.2)
    means = [float(np.mean(est[k])) for k in ks]
    assert np.all(np.diff(means) >= -0.005), means  # in expectation: averaged over 12 (x, member)
    assert means[-1] <= float(exact.mean()) + 0.01  # a lower bound in expectation
    assert means[0] < float(exact.mean()) - 1.0  # the one-sample ELBO is far below
    np.testing.assert_allclose(est[5000], exact, atol=0.05)
    assert abs(means[-1] - float(exact.mean())) < 0.02


def test_elbo_smoke(tmp_path):
    out = tmp_path / "elbo"
    assert elbo.main(["--smoke", "--out", str(out), "--no-progress"]) == 0
    r = _assert_outputs(out, ["curves", "comparison", "convergence", "samples", "reconstructions"])
    v = r["vae"]
    assert v["arms"] == ["VAE-3", "IWAE-3"]  # the control beside IWAE-k for the same k
    assert "| VAE-3 |" in (out / "report.md").read_text()
    assert _all_finite(v["measures"])
    latent = r["config"]["latent_dim"]
    for m in v["members"]:
        # Bounds on log p(x) for 64 binary pixels: negative, above the uniform model, ordered.
        assert -64 * math.log(2) * 4 < m["test_elbo"] < 0.0
        assert m["test_elbo"] <= m["test_iwae_3"] + 0.05 <= m["test_log_px"] + 0.1
        assert m["test_log_px"] < 0.0
        assert m["gap"] == pytest.approx(m["train_log_px"] - m["test_log_px"])
        assert 0 <= m["active_units"] <= latent
    assert v["bound_order_holds"] is True
    row = v["comparisons"][0]
    assert (row["a"], row["b"]) == ("IWAE-3", "VAE-3")

    def per_seed(measure):
        return {
            a: [m[measure] for m in v["members"] if f"{m['objective'].upper()}-3" == a]
            for a in ("IWAE-3", "VAE-3")
        }

    # Measures of the training subset: a Student-t interval over the per-seed differences.
    train = per_seed("train_log_px")
    ref = _t_interval(np.subtract(train["IWAE-3"], train["VAE-3"]))
    got = row["train_log_px"]
    assert (got["mean"], got["low"], got["high"]) == pytest.approx(ref)
    # Test log p(x): per-image differences, an interval over seeds and test images together,
    # whose mean is the mean per-seed difference (the same test images for every member).
    test = per_seed("test_log_px")
    got = row["test_log_px"]
    assert got["interval"].startswith("hierarchical bootstrap")
    assert got["mean"] == pytest.approx(np.mean(np.subtract(test["IWAE-3"], test["VAE-3"])))
    assert got["low"] <= got["mean"] <= got["high"]
    # The convergence check: IWAE-k for k in check_ks on check_images test images per member.
    c = v["convergence"]
    assert (c["ks"], c["top_k"], c["reference_k"], c["num_images"]) == ([5, 20, 40], 40, 20, 16)
    assert "## Convergence of the log p(x) estimate" in (out / "report.md").read_text()
    assert "64 ln 2 = 44.36 nats" in (out / "report.md").read_text()
    for arm in v["arms"]:
        est = c["arms"][arm]["estimates"]
        assert est["k5"]["mean"] <= est["k20"]["mean"] + 0.05 <= est["k40"]["mean"] + 0.1
        assert c["arms"][arm]["rise"]["mean"] == pytest.approx(
            est["k40"]["mean"] - est["k20"]["mean"], abs=1e-9
        )
    for m in v["members"]:
        assert m["check_log_px"] < 0.0
    crow = c["comparisons"][0]
    d = crow["difference"]
    loser = crow["b"] if d["mean"] > 0 else crow["a"]
    assert crow["loser_rise_high"] == c["arms"][loser]["rise"]["high"]
    near = d["low"] if d["mean"] > 0 else -d["high"]
    assert crow["claimed"] == (d["significant"] and near > crow["loser_rise_high"])
    # The full-test IWAE-final_k difference is claimed only beyond the losing arm's rise.
    loser = row["b"] if got["mean"] > 0 else row["a"]
    near = got["low"] if got["mean"] > 0 else -got["high"]
    assert got["exceeds_rise"] == (got["significant"] and near > c["arms"][loser]["rise"]["high"])
