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
from scipy import special, stats as scipy_stats

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

    value, grads = jax.value_and_grad(lambda p: loss_fn(p, batch)[0])(params)
    ref_value, ref_grads = jax.value_and_grad(reference)(params)
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


def test_entropy_vs_mse_smoke(tmp_path):
    out = tmp_path / "evm"
    assert entropy_vs_mse.main(["--smoke", "--out", str(out), "--no-progress"]) == 0
    r = _assert_outputs(out, ["gradients", "training", "selection"])

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
    assert set(tr["groups"]) == {
        f"{loss}/{init}" for loss in cfg["losses"] for init in ("standard", "overconfident")
    }
    for grp in tr["groups"].values():
        # The choice: the best finite validation criterion (never a test number).
        crit = np.array([np.nan if c is None else c for c in grp["val_criterion"]])
        assert grp["chosen_lr"] == cfg["learning_rates"][int(np.nanargmax(crit))]
        steps = [
            m["steps_to_target"]
            for m in tr["members"]
            if m["loss"] == grp["loss"] and m["init"] == grp["init"] and m["lr"] == grp["chosen_lr"]
        ]
        reached = [s for s in steps if s is not None]
        assert grp["reached"] == len(reached)
        assert all(s in tr["eval_steps"] for s in reached)
        assert 0.0 <= grp["test_accuracy"]["low"] <= grp["test_accuracy"]["mean"] <= 1.0
        assert grp["test_nll"]["mean"] > 0.0
        assert len(grp["test_accuracy_curve"]) == len(tr["eval_steps"])
    # The overconfident start is more confident at step 0 than the standard one.
    std = tr["groups"]["ce/standard"]["initial_val_entropy"]["mean"]
    assert tr["groups"]["ce/overconfident"]["initial_val_entropy"]["mean"] < std - 0.1


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


def test_confidence_penalty_smoke_and_exact_resume(tmp_path):
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
        # The choices: argmin of the validation NLL over the positive λ and over ε.
        lams = [v for v in d["lambdas"] if v > 0]
        assert d["chosen"]["lambda"] == lams[int(np.argmin(d["val_nll"]["lambdas"]))]
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
        temperature = methods["ce_ts"]["temperature"]
        assert 0 <= temperature["low"] <= temperature["mean"] <= temperature["high"]
        assert temperature["mean"] > 0
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


def test_elbo_smoke(tmp_path):
    out = tmp_path / "elbo"
    assert elbo.main(["--smoke", "--out", str(out), "--no-progress"]) == 0
    r = _assert_outputs(out, ["curves", "comparison", "samples", "reconstructions"])
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
    per_seed = {
        a: [m["test_log_px"] for m in v["members"] if f"{m['objective'].upper()}-3" == a]
        for a in ("IWAE-3", "VAE-3")
    }
    ref = _t_interval(np.subtract(per_seed["IWAE-3"], per_seed["VAE-3"]))
    got = row["test_log_px"]
    assert (got["mean"], got["low"], got["high"]) == pytest.approx(ref)
