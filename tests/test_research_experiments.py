"""Smoke runs of the research experiments: CLI, outputs, sane values, exact resume.

Each experiment runs its ``--smoke`` configuration in-process (one import of JAX/Flax for all of
them) with the settings the scripts run under from the command line: float32 and numpy-style
rank promotion, not the float64 / strict promotion that conftest.py sets for library tests.
Values are checked against independent references where one exists (closed-form gradients
recomputed with numpy, log C, H(Y), the ordering ELBO ≤ IWAE-k) and against their valid ranges
otherwise.
"""

from __future__ import annotations

import json
import math
import pathlib

import jax
import numpy as np
import pytest

from experiments import confidence_penalty, elbo, entropy_vs_mse, information_bottleneck

LOG10 = math.log(10.0)


@pytest.fixture(autouse=True)
def script_jax_config():
    """Run the experiments under JAX's defaults (what ``python -m experiments.X`` uses)."""
    saved = (jax.config.jax_enable_x64, jax.config.jax_numpy_rank_promotion)
    jax.config.update("jax_enable_x64", False)
    jax.config.update("jax_numpy_rank_promotion", "allow")
    yield
    jax.config.update("jax_enable_x64", saved[0])
    jax.config.update("jax_numpy_rank_promotion", saved[1])


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


def _without_timing(results: dict) -> dict:
    return {k: v for k, v in results.items() if k != "timing"}


def test_entropy_vs_mse_smoke(tmp_path):
    out = tmp_path / "evm"
    assert entropy_vs_mse.main(["--smoke", "--out", str(out), "--no-progress"]) == 0
    r = _assert_outputs(out, ["gradients", "training"])

    g = r["gradients"]
    t = np.asarray(g["wrong_logit"])
    # Independent reference: softmax of [0, t, 0, ..., 0] (10 classes), true class 0.
    z = np.zeros((len(t), 10))
    z[:, 1] = t
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(g["grad_ce"], p[:, 0] - 1.0, rtol=1e-9, atol=1e-12)
    mse = np.sum((p - np.eye(10)[0]) ** 2, axis=1)
    np.testing.assert_allclose(g["mse"], mse, rtol=1e-9, atol=1e-12)
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
    assert tr["eval_steps"][0] == 0
    assert tr["eval_steps"][-1] == r["config"]["steps"]
    assert set(tr["groups"]) == {
        "ce/standard",
        "ce/overconfident",
        "mse/standard",
        "mse/overconfident",
    }
    for grp in tr["groups"].values():
        assert 0.0 <= grp["final_test_accuracy"]["mean"] <= 1.0
        assert grp["final_test_nll"]["mean"] > 0.0
        assert len(grp["test_accuracy_curve"]) == len(tr["eval_steps"])
        curves = [grp[k] for k in ("test_accuracy_curve", "test_nll_curve", "train_loss_curve")]
        assert _all_finite(curves)
        # None = the smoke run never reached the target accuracy; else an evaluated step.
        assert all(s is None or s in tr["eval_steps"] for s in grp["steps_to_target"])


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
            assert 0.0 <= per["accuracy"]["mean"][i] <= 1.0
            assert 0.0 <= per["ece"]["mean"][i] <= 1.0
            assert per["nll"]["mean"][i] > 0.0
            assert 0.0 <= per["mean_entropy"]["mean"][i] <= math.log(num_classes) + 1e-6
        # Rewarding entropy (λ = 1) cannot give a *less* uncertain model than λ = 0.
        assert per["mean_entropy"]["mean"][1] > per["mean_entropy"]["mean"][0]
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


def test_information_bottleneck_smoke(tmp_path):
    out = tmp_path / "ib"
    assert information_bottleneck.main(["--smoke", "--out", str(out), "--no-progress"]) == 0
    r = _assert_outputs(out, ["information_plane", "curves"])
    ib = r["ib"]
    assert ib["betas"] == [1e-3, 1.0]
    assert ib["h_y_bits"] == pytest.approx(math.log2(10), abs=0.01)  # near-balanced digits
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
    assert len(ib["eval_steps"]) == len(ib["curves"]["izx_bits"][0])


def test_elbo_smoke(tmp_path):
    out = tmp_path / "elbo"
    assert elbo.main(["--smoke", "--out", str(out), "--no-progress"]) == 0
    r = _assert_outputs(out, ["curves", "samples", "reconstructions"])
    v = r["vae"]
    assert v["train_ks"] == [1, 5]
    assert v["eval_ks"] == [1, 5]
    assert _all_finite(v["test_bounds"])
    for i in range(len(v["train_ks"])):
        elbo_, iwae5 = (v["test_bounds"][f"k{k}"]["mean"][i] for k in (1, 5))
        ll = v["test_log_likelihood"]["mean"][i]
        # Bounds on log p(x) for 64 binary pixels: negative, above the uniform model, ordered.
        assert -64 * math.log(2) * 4 < elbo_ < 0.0
        assert elbo_ <= iwae5 + 0.05
        assert iwae5 <= ll + 0.05
        assert ll < 0.0
    # The train loss is the negated training bound, in nats per image.
    assert all(x > 0 for x in v["train_loss_final"]["mean"])
