"""The shared experiments core: one-line configuration errors, divergence, outputs, schedules."""

from __future__ import annotations

import json
import os
import stat

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import (
    confidence_penalty,
    elbo,
    ensemble_entropy,
    entropy_vs_mse,
    information_plane,
)
from experiments.core import cli, entropy_curves, entropy_report, outputs, runner, training
from experiments.core.checkpoints import Checkpoints

pytestmark = pytest.mark.usefixtures("script_jax_config")  # JAX defaults (tests/conftest.py)


BAD_ARGUMENTS = [
    (ensemble_entropy, ["--heldout-classes", "12"], "--heldout-classes must be one of"),
    (ensemble_entropy, ["--heldout-classes", "0,1,2,3,4,5,6,7,8,9"], "leaves 0 class(es)"),
    (ensemble_entropy, ["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (ensemble_entropy, ["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
    (ensemble_entropy, ["--steps", "abc"], "argument --steps: invalid int value: 'abc'"),
    (ensemble_entropy, ["--members", "0"], "--members must be >= 1"),
    (ensemble_entropy, ["--severities", "2,7"], "--severities must be one of"),
    (ensemble_entropy, ["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    (ensemble_entropy, ["--bogus"], "unrecognized arguments: --bogus"),
    (ensemble_entropy, ["--ensemble-sizes", "9"], "--ensemble-sizes must be one of"),
    (ensemble_entropy, ["--batch-size", "100000"], "--batch-size must lie in 1..865"),
    (ensemble_entropy, ["--stop-after-step", "0"], "--stop-after-step must be >= 1"),
    (confidence_penalty, ["--lambdas", "0,-1"], "--lambdas values must be finite numbers >= 0"),
    (confidence_penalty, ["--datasets", "mnist"], "--datasets must be one of"),
    (confidence_penalty, ["--toy-label-noise", "0.5"], "--toy-label-noise must lie in [0, 0.5)"),
    (entropy_vs_mse, ["--init-scales", "3,10"], "--init-scales must include 1"),
    (elbo, ["--threshold", "2"], "--threshold must lie in (0, 1)"),
    (information_plane, ["--activations", "sigmoid"], "--activations must be one of"),
]


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    BAD_ARGUMENTS,
    ids=[f"{m.__name__.split('.')[-1]}:{' '.join(a)}" for m, a, _ in BAD_ARGUMENTS],
)
def test_bad_configuration_is_one_error_line_and_exit_2(module, argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    code = module.main([*argv, "--smoke", "--no-progress", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert not (out / "results.json").exists()
    assert not (out / "checkpoints" / "1").exists()  # nothing was trained


def test_help_lists_shared_flags_and_typed_options(capsys):
    assert ensemble_entropy.main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--resume", "--smoke", "--seed", "--no-progress", "--distributed"):
        assert flag in text
    assert "--heldout-classes LIST" in text
    assert "independent ensembles R" in text
    assert "(default 5)" in text


def test_config_resolution_order():
    parser = cli.build_parser("p", "d", ensemble_entropy.Config, default_out="runs/x")
    smoke = ensemble_entropy.SMOKE
    config, options = cli.parse_config(parser, ensemble_entropy.Config, smoke, ["--smoke"])
    assert config.steps == smoke["steps"]
    assert config.depth == ensemble_entropy.Config().depth  # not overridden by smoke
    config, options = cli.parse_config(
        parser,
        ensemble_entropy.Config,
        smoke,
        ["--smoke", "--steps", "7", "--checkpoint-every", "none"],
    )
    assert (config.steps, config.checkpoint_every, options.smoke) == (7, None, True)
    assert options.out == "runs/x"
    assert config.width == smoke["width"]
    assert config.severities == smoke["severities"]


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_respect_the_umask(tmp_path, umask):
    saved = os.umask(umask)
    outputs._umask.cache_clear()
    try:
        outputs.write_json(str(tmp_path / "r.json"), {"x": np.float32(1.5), "bad": float("nan")})
        outputs.write_npz(str(tmp_path / "a.npz"), {"a": np.arange(3)})
    finally:
        os.umask(saved)
        outputs._umask.cache_clear()
    for name in ("r.json", "a.npz"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask
    assert json.loads((tmp_path / "r.json").read_text()) == {"bad": None, "x": 1.5}
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["a"], np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "r.json"]  # no temporaries


# --------------------------------------------------------------------------- the loop


def _toy_step(nan_member: int | None, nan_step: int):
    """A fake vmapped step: parameters count the steps; one member's loss turns NaN."""

    def step(params, opt_state, data, idx, inputs, step):
        loss = jnp.full((2,), 1.0) / (step + 1.0)
        if nan_member is not None:
            loss = loss.at[nan_member].set(jnp.where(step + 1 >= nan_step, jnp.nan, 1.0))
        return {"w": params["w"] + 1.0}, opt_state, loss, {}

    return step


def _fit(tmp_path, schedule, *, nan_member=None, nan_step=0, resume=False, evaluate=None):
    mesh = training.make_mesh(2, jax.devices()[:1])
    params = jax.device_put({"w": jnp.zeros((2, 3))}, training.member_sharding(mesh))
    opt_state = jax.device_put({"c": jnp.zeros((2,))}, training.member_sharding(mesh))
    ckpt = Checkpoints(str(tmp_path / "ckpt"), run_config={"a": 1}, resume=resume)
    try:
        return training.fit(
            _toy_step(nan_member, nan_step),
            params,
            opt_state,
            data={"x": np.zeros((4, 1), np.float32)},
            indices_fn=lambda s: np.zeros((2, 2), np.int32),
            mesh=mesh,
            schedule=schedule,
            checkpoints=ckpt,
            evaluate=evaluate,
            member_names=["alpha", "beta"],
            progress=False,
        ), ckpt
    finally:
        ckpt.close()


def test_non_finite_loss_stops_naming_step_and_member_and_keeps_last_good_checkpoint(tmp_path):
    schedule = training.Schedule(20, checkpoint_every=5, log_every=3)
    with pytest.raises(training.TrainingDiverged) as info:
        _fit(tmp_path, schedule, nan_member=1, nan_step=12)
    message = str(info.value)
    assert "the loss of beta is nan at step 12" in message
    assert "last good checkpoint (step 10)" in message
    ckpt = Checkpoints(str(tmp_path / "ckpt"), run_config={"a": 1}, resume=True)
    assert ckpt.latest_step() == 10  # nothing written after the divergence
    ckpt.close()


def test_eval_hook_curves_and_exact_resume(tmp_path):
    seen = []

    def evaluate(params):
        seen.append(float(params["w"][0, 0]))
        return {"w": np.asarray(params["w"][:, 0]) * 0.5}

    schedule = training.Schedule(10, eval_every=4, checkpoint_every=4, stop_after_step=6)
    with pytest.raises(training.StoppedEarly):
        _fit(tmp_path, schedule, evaluate=evaluate)
    assert seen == [0.0, 4.0]  # step 0 and 4; stopped after 6
    full = dataclasses_replace(schedule, stop_after_step=None)
    result, _ = _fit(tmp_path, full, evaluate=evaluate, resume=True)
    assert result.resumed_from_step == 4
    assert result.curves.steps == [0, 4, 8, 10]
    np.testing.assert_array_equal(result.curves.metrics["w"][:, 0], [0.0, 2.0, 4.0, 5.0])
    np.testing.assert_allclose(result.loss_history[:, 0], 1.0 / np.arange(1, 11))
    # A finished run resumed: no step is trained again, the curves are complete.
    again, _ = _fit(tmp_path, full, evaluate=evaluate, resume=True)
    assert again.resumed_from_step == 10
    assert again.curves.steps == result.curves.steps
    np.testing.assert_array_equal(again.params["w"], result.params["w"])


def test_resume_with_another_config_is_refused(tmp_path):
    _fit(tmp_path, training.Schedule(4, checkpoint_every=2))
    ckpt = Checkpoints(str(tmp_path / "ckpt"), run_config={"a": 2}, resume=True)
    with pytest.raises(cli.ConfigError, match=r"another configuration \(differs in a\)"):
        ckpt.restore(ckpt.latest_step(), {"w": np.zeros(1)})
    ckpt.close()


def test_a_fresh_start_never_deletes_earlier_checkpoints(tmp_path):
    _fit(tmp_path, training.Schedule(4, checkpoint_every=2))
    saved = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    with pytest.raises(cli.ConfigError, match=r"holds checkpoints.*--resume.*--overwrite"):
        Checkpoints(str(tmp_path / "ckpt"), run_config={"a": 1}, resume=False)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == saved


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_schedule_steps():
    s = training.Schedule(10, eval_every=4, checkpoint_every=3)
    assert [t for t in range(11) if s.evaluates(t)] == [0, 4, 8, 10]
    assert [t for t in range(1, 11) if s.checkpoints(t)] == [3, 6, 9, 10]
    assert [t for t in range(11) if training.Schedule(10).evaluates(t)] == [0, 10]


def test_runner_maps_divergence_to_exit_1(tmp_path, capsys):
    def diverge(config, options):
        raise training.TrainingDiverged("training diverged: the loss of member 0 is nan")

    exp = runner.Experiment(
        "toy", "Toy.", ensemble_entropy.Config, {}, diverge, lambda r: "", lambda r, a: {}
    )
    assert exp.main(["--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: training diverged: the loss of member 0 is nan"]


def test_member_grid_and_names():
    grid = training.member_grid(lam=(0.0, 1.0), seed=(0, 1))
    assert grid == [
        {"lam": 0.0, "seed": 0},
        {"lam": 0.0, "seed": 1},
        {"lam": 1.0, "seed": 0},
        {"lam": 1.0, "seed": 1},
    ]
    assert training.member_names(grid)[2] == "member 2 (lam=1.0, seed=0)"


# --------------------------------------------------------------------------- entropy curves


def test_probe_and_summary_against_numpy(tmp_path):
    from scipy.special import log_softmax

    from experiments.core import models

    def model_fn(rngs):
        return models.build_model("mlp", num_classes=3, width=4, input_shape=(1, 2, 1), rngs=rngs)

    members = training.Members.create(model_fn, 4, seed=0)
    rng = np.random.default_rng(0)
    train_x = rng.normal(size=(6, 1, 2, 1)).astype(np.float32)
    val_x = rng.normal(size=(5, 1, 2, 1)).astype(np.float32)
    val_y = rng.integers(0, 3, size=5).astype(np.int32)
    probe = entropy_curves.EntropyProbe(train_x, val_x, val_y, groups=[[0, 1], [2, 3]])
    out = probe.bind(members)(members.ensemble.params)
    logits = members.predict(members.ensemble.params, val_x).astype(np.float64)
    logp = log_softmax(logits, axis=-1)
    h = -(np.exp(logp) * logp).sum(-1)  # (K, n)
    np.testing.assert_allclose(out["entropy_val"], h.mean(-1), rtol=1e-5)
    np.testing.assert_allclose(out["nll_val"], -logp[:, np.arange(5), val_y].mean(-1), rtol=1e-5)
    for g, idx in enumerate([[0, 1], [2, 3]]):
        p_mix = np.exp(logp[idx]).mean(0)
        total = -(p_mix * np.log(p_mix)).sum(-1)
        np.testing.assert_allclose(out["ensemble_entropy_val"][g], total.mean(), rtol=1e-5)
        mi = total - h[idx].mean(0)
        np.testing.assert_allclose(out["mutual_information_val"][g], mi.mean(), atol=1e-6)

    curves = training.Curves.from_points({0: out, 10: out})
    history = np.linspace(2.0, 1.0, 10 * 4).reshape(10, 4).astype(np.float32)
    block = entropy_curves.summarize(
        curves, history, series={"a": [0, 1], "b": [2, 3]}, max_entropy=np.log(3)
    )
    np.testing.assert_allclose(block["series"]["a"]["entropy_val"], [h[:2].mean()] * 2, 1e-5)
    assert block["series"]["b"]["train_loss_window"][1] == pytest.approx(history[:, 2:].mean())
    assert block["steps"] == [0, 10]
    # untrained members sit at log 3 while the loss falls 2 → 1: rule (b), nothing else
    assert [a["rule"] for a in block["series"]["a"]["alarms"]] == ["stuck_at_ceiling"]
    text = entropy_report.report_section({"run": block})
    assert "| a | **(b) stuck near max entropy** | 8–10 |" in text
    block["series"]["a"]["alarms"] = []
    text = entropy_report.report_section({"run": block})
    assert "## Entropy through training" in text
    assert "| a | no alarm | — | — |" in text
    assert "`entropy_rise`" in text


# --------------------------------------------------------------------------- statistics


def test_interval_matches_scipy_t_interval():
    from scipy import stats as st

    from experiments.core import stats

    x = np.array([0.91, 0.93, 0.90, 0.94, 0.92])
    got = stats.interval(x)
    low, high = st.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=st.sem(x))
    assert got["mean"] == pytest.approx(x.mean())
    assert (got["low"], got["high"]) == pytest.approx((low, high))
    assert got["std"] == pytest.approx(x.std(ddof=1))
    one = stats.interval([0.5])
    assert one["low"] == one["high"] == 0.5
    assert np.isnan(one["std"])


def test_paired_difference_and_verdict():
    from scipy import stats as st

    from experiments.core import stats

    a = np.array([0.20, 0.22, 0.19, 0.25, 0.21])
    b = a + np.array([0.05, 0.04, 0.06, 0.05, 0.05])  # b is consistently larger
    diff = stats.paired(a, b)
    res = st.ttest_rel(a, b)
    low, high = res.confidence_interval(0.95)
    assert (diff["low"], diff["high"]) == pytest.approx((low, high))
    assert diff["significant"]
    assert stats.verdict(diff, a="A", b="B", higher_is_better=False) == "A is better than B"
    noise = stats.paired(a, a + np.array([0.01, -0.01, 0.02, -0.02, 0.0]))
    assert not noise["significant"]
    assert stats.verdict(noise, a="A", b="B", higher_is_better=False).startswith("no significant")


def test_bootstrap_interval_covers_the_statistic():
    from experiments.core import stats

    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, size=400)
    boot = stats.bootstrap(lambda idx: float(x[idx].mean()), len(x), seed=0, num_resamples=400)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert boot["low"] < x.mean() < boot["high"]
    assert boot["high"] - boot["low"] == pytest.approx(2 * 1.96 * se, rel=0.2)
    strata = np.repeat([0, 1], 200)
    seen = []
    stats.bootstrap(
        lambda idx: seen.append(np.bincount(strata[idx])) or 0.0,
        400,
        seed=1,
        num_resamples=5,
        strata=strata,
    )
    assert all(list(c) == [200, 200] for c in seen[:-1])  # each stratum keeps its size


# --------------------------------------------------------------------------- OOD metrics


@pytest.mark.parametrize("ties", [False, True])
def test_detection_metrics_match_sklearn_and_a_written_out_fpr95(ties):
    from sklearn.metrics import average_precision_score, roc_auc_score

    from experiments.core import detection

    rng = np.random.default_rng(3)
    s_in = rng.normal(size=(4, 60))
    s_out = rng.normal(0.8, size=(4, 45))
    if ties:  # scores with many exact ties, as max-softmax has when it saturates
        s_in, s_out = np.round(s_in), np.round(s_out)
    got = detection.per_replicate(s_in, s_out)
    # The experiments run in float32 (JAX's default): the package's metrics, exact against
    # scikit-learn in float64 (tests/test_detection.py), are float32-rounded here.
    for i in range(4):
        y = np.r_[np.zeros(60), np.ones(45)]
        s = np.r_[s_in[i], s_out[i]]
        assert got["auroc"][i] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
        assert got["aupr"][i] == pytest.approx(average_precision_score(y, s), abs=1e-6)
        # FPR@95: the largest threshold that flags >= 95% of the OOD scores, brute force
        best = max(t for t in np.unique(s) if np.mean(s_out[i] >= t) >= 0.95)
        assert got["fpr95"][i] == pytest.approx(np.mean(s_in[i] >= best), abs=1e-6)
    boot = detection.combined_intervals(s_in, s_out, bootstrap=50, seed=0)
    assert boot["auroc"]["mean"] == pytest.approx(got["auroc"].mean())
    assert boot["auroc"]["low"] <= got["auroc"].mean() <= boot["auroc"]["high"]


def test_knn_distance_against_brute_force():
    from experiments.core import detection

    rng = np.random.default_rng(0)
    ref, qry = rng.normal(size=(50, 6)), rng.normal(size=(9, 6))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    d = np.linalg.norm(unit(qry)[:, None] - unit(ref)[None], axis=-1)
    np.testing.assert_allclose(detection.knn_distance(ref, qry, k=3), np.sort(d, 1)[:, 2], 1e-5)
    raw = np.linalg.norm(qry[:, None] - ref[None], axis=-1)
    np.testing.assert_allclose(
        detection.knn_distance(ref, qry, k=1, normalize=False), raw.min(1), rtol=1e-4
    )


def test_temperature_fit_minimises_validation_nll():
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    from experiments.core import uncertainty

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=300)
    logits = rng.normal(size=(3, 300, 5))
    logits[:, np.arange(300), labels] += 2.0
    logits *= np.array([0.3, 1.0, 4.0])[:, None, None]  # under-, well- and over-confident
    temps = uncertainty.fit_temperature(logits, labels)

    def nll(z, t):
        return -log_softmax(z / t, axis=-1)[np.arange(300), labels].mean()

    for i in range(3):
        ref = minimize_scalar(
            lambda lt, z=logits[i]: nll(z, np.exp(lt)),
            bounds=(-3, 3),
            method="bounded",
            options={"xatol": 1e-8},
        )
        assert temps[i] == pytest.approx(np.exp(ref.x), rel=1e-3)
        assert nll(logits[i], temps[i]) <= nll(logits[i], 1.0)
    assert temps[0] < 1.0 < temps[2]  # sharpens the under-confident, softens the over-confident


def test_accuracy_vs_confidence_and_subsets():
    from experiments.core import uncertainty

    rng = np.random.default_rng(0)
    lp = np.log(rng.dirichlet(np.ones(4), size=(2, 50)))
    labels = rng.integers(0, 4, size=50)
    tau = np.array([0.0, 0.4, 0.7])
    got = uncertainty.accuracy_vs_confidence(lp, labels, tau)
    for p in range(2):
        for j, t in enumerate(tau):
            kept = np.exp(lp[p]).max(-1) >= t
            assert got["fraction"][p, j] == pytest.approx(kept.mean())
            expected = np.mean(lp[p][kept].argmax(-1) == labels[kept]) if kept.any() else np.nan
            np.testing.assert_allclose(got["accuracy"][p, j], expected)
    subsets = uncertainty.random_subsets(8, 3, 10, seed=0)
    assert subsets.shape == (10, 3)
    assert all(len(set(s)) == 3 and max(s) < 8 for s in subsets.tolist())
    assert uncertainty.random_subsets(4, 2, 10, seed=0).shape == (6, 2)  # all C(4, 2)


def test_combined_difference_over_replicates_and_reduced_rows():
    from scipy import stats as st
    from sklearn.metrics import roc_auc_score

    from experiments.core import detection

    rng = np.random.default_rng(5)
    s_in = rng.normal(size=(4, 80))
    out_a, out_b = rng.normal(1.2, size=(4, 60)), rng.normal(0.8, size=(4, 60))
    d = detection.combined_difference((s_in, out_a), (s_in, out_b), bootstrap=100, seed=0)
    y = np.r_[np.zeros(80), np.ones(60)]

    def auc(inn, out):
        return roc_auc_score(y, np.r_[inn, out])

    diffs = [auc(s_in[i], out_a[i]) - auc(s_in[i], out_b[i]) for i in range(4)]
    low, high = st.t.interval(0.95, 3, loc=np.mean(diffs), scale=st.sem(diffs))
    assert d["mean"] == pytest.approx(np.mean(diffs), abs=1e-6)
    assert d["seeds_interval"] == pytest.approx([low, high], abs=1e-5)
    assert d["significant"] == (d["low"] > 0 or d["high"] < 0)
    assert 0.0 <= d["p_value"] <= 1.0
    # A per-member score against a per-ensemble one: the members (4 rows = 2 ensembles × 2)
    # averaged per ensemble, so both sides have one value per ensemble.
    pairs = lambda v: v.reshape(2, 2).mean(axis=1)
    e = detection.combined_difference(
        (s_in[:2], out_a[:2]), (s_in, out_b), bootstrap=50, seed=1, reduce_b=pairs
    )
    per_ensemble = [
        auc(s_in[r], out_a[r]) - np.mean([auc(s_in[m], out_b[m]) for m in (2 * r, 2 * r + 1)])
        for r in range(2)
    ]
    assert e["mean"] == pytest.approx(np.mean(per_ensemble), abs=1e-6)
    assert e["n"] == 2
