"""The main experiment end to end: outputs, determinism, kill-and-resume, 8 devices, errors.

The experiment runs in subprocesses (``experiments.ensemble_entropy.main`` with ``--smoke``) so
it sees a fresh JAX (no x64 from conftest, its own device count). To keep compilation down, one
subprocess may run several invocations (they share JAX's in-process compile cache). JAX's
*persistent* compilation cache is deliberately not used: on CPU, an executable loaded from it
gave results differing in the last bits from a freshly compiled one, which would break the
bitwise "same seed, same results" guarantee. Numbers are checked against numpy re-computations
from the saved member logits.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import logsumexp

from experiments.core import data as data_lib
from experiments.core.cli import ConfigError
from experiments.core.training import make_mesh

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE = ["--smoke", "--no-progress"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("ensemble_experiment")


def _env(devices: int = 1) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR", "JAX_ENABLE_X64"):
        env.pop(key, None)
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


_DRIVER = """
import json, sys
from experiments.ensemble_entropy import main
for i, argv in enumerate(json.loads(sys.argv[1])):
    print(f"@@rc {i} {main(argv)}", flush=True)
"""


def _run(*invocations: list[str], devices: int = 1) -> tuple[list[int], str]:
    """Run ``main(argv)`` for each argv in ONE fresh Python process; return exit codes, stderr."""
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps([list(a) for a in invocations])],
        cwd=REPO,
        env=_env(devices),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = [int(line.split()[2]) for line in proc.stdout.splitlines() if line.startswith("@@rc")]
    assert len(codes) == len(invocations), proc.stdout[-2000:] + proc.stderr[-3000:]
    return codes, proc.stderr


def _results(out: pathlib.Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    results.pop("timing")  # the one run-dependent field
    return results


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}/{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, tree


@pytest.fixture(scope="module")
def smoke_run(workdir: pathlib.Path) -> pathlib.Path:
    """Two identical smoke invocations in one process: ``a`` (the reference) and ``a_again``."""
    codes, stderr = _run(
        [*SMOKE, "--out", str(workdir / "a")], [*SMOKE, "--out", str(workdir / "a_again")]
    )
    assert codes == [0, 0], stderr[-3000:]
    return workdir / "a"


# ----------------------------------------------------------------------------- in-process


def test_data_order_is_a_pure_function_of_seed_member_and_step():
    n, batch = 37, 8  # batches straddle epoch boundaries
    steps = [data_lib.batch_indices(3, 1, s, n=n, batch_size=batch) for s in range(10)]
    again = [data_lib.batch_indices(3, 1, s, n=n, batch_size=batch) for s in reversed(range(10))]
    np.testing.assert_array_equal(np.stack(steps), np.stack(again[::-1]))
    flat = np.concatenate(steps)  # 80 positions = 2 full epochs + 6
    for epoch in range(2):
        np.testing.assert_array_equal(np.sort(flat[epoch * n : (epoch + 1) * n]), np.arange(n))
    assert not np.array_equal(flat[:n], flat[n : 2 * n])  # reshuffled each epoch
    other = data_lib.batch_indices(3, 2, 0, n=n, batch_size=batch)
    assert not np.array_equal(other, steps[0])  # members see different orders


def test_mesh_requires_members_to_be_a_multiple_of_devices():
    import jax

    fake_eight = [jax.devices()[0]] * 8  # the check runs before the mesh is built
    with pytest.raises(ConfigError, match=r"members \(12\).*multiple.*devices \(8\)"):
        make_mesh(12, devices=fake_eight)
    assert issubclass(ConfigError, ValueError)
    n = len(jax.devices())
    assert make_mesh(8 * n).shape["ensemble"] == n


def test_shifts_change_images_monotonically():
    data = data_lib.load_digits_dataset(seed=0)
    assert set(np.unique(data.y_train)) == set(range(8))
    assert set(np.unique(data.y_heldout)) == {8, 9}
    diffs = {
        kind: [
            float(np.abs(data_lib.shift(data.x_test, kind, s) - data.x_test).mean())
            for s in range(6)
        ]
        for kind in data_lib.SHIFTS
    }
    for kind, d in diffs.items():
        assert d[0] == 0.0, kind
        assert all(b > a for a, b in itertools.pairwise(d)), (kind, d)


# ----------------------------------------------------------------------------- subprocesses


def test_smoke_run_writes_all_outputs(smoke_run: pathlib.Path):
    for name in ("entropy_histograms", "reliability", "severity", "ensemble_size"):
        png = (smoke_run / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert len(png) > 5000, name
    report = (smoke_run / "report.md").read_text()
    for heading in ("## In-distribution test set", "## Out of distribution", "## Ensemble size"):
        assert heading in report
    assert "| accuracy ↑ |" in report
    assert "heldout_classes" in report
    full = json.loads((smoke_run / "results.json").read_text())
    assert {"started_utc", "finished_utc", "resumed_from_step"} <= set(full["timing"])
    for key in ("jax", "flax", "optax", "entjax"):
        assert full["versions"][key]
    assert full["devices"]["device_count"] == 1
    assert full["config"]["members"] == 8
    assert full["smoke"] is True
    assert full["experiment"] == "ensemble_entropy"
    assert not list(smoke_run.glob(".*.tmp"))  # atomic writes leave no temporaries
    ood = full["ood"]
    assert {"heldout_classes", "noise", "rotation@5", "pixel_dropout@2"} <= set(ood)
    assert len(full["in_distribution"]["members"]) == 8
    assert full["ensemble_size"]["k"] == [1, 2, 8]
    # training did something: the ensemble beats chance (1/8) by a wide margin
    assert full["in_distribution"]["ensemble"]["accuracy"] > 0.5
    # entropy through training: every evaluation, the ensemble's decomposition, the figure
    block = full["entropy_curves"]["digits"]
    assert block["steps"] == list(range(0, 41, 10))
    series = block["series"]["all members"]
    assert series["entropy_val"][-1] < series["entropy_val"][0]  # the model grew confident
    mi = np.asarray(block["ensembles"]["mutual_information_val"])
    assert mi.shape == (1, 5)
    assert np.all(mi >= -1e-6)
    assert (smoke_run / "entropy_curves.png").exists()
    assert "## Entropy through training" in report


def test_smoke_numbers_match_numpy_recomputation(smoke_run: pathlib.Path):
    results = _results(smoke_run)
    pred = np.load(smoke_run / "predictions.npz")
    names = [str(n) for n in pred["set_names"]]
    sl = {
        n: slice(int(a), int(b))
        for n, a, b in zip(names, pred["set_start"], pred["set_stop"], strict=True)
    }
    logits = pred["member_logits"].astype(np.float64)  # (K, n, C)
    y = pred["labels"][sl["test"]]
    lt = logits[:, sl["test"]]

    log_p = lt - logsumexp(lt, axis=-1, keepdims=True)
    log_mix = logsumexp(log_p, axis=0) - math.log(len(lt))
    p_mix = np.exp(log_mix)
    ens = results["in_distribution"]["ensemble"]
    assert ens["accuracy"] == pytest.approx(np.mean(p_mix.argmax(-1) == y), abs=1e-12)
    assert ens["nll"] == pytest.approx(-np.mean(log_mix[np.arange(len(y)), y]), rel=1e-4)
    onehot = np.eye(p_mix.shape[-1])[y]
    assert ens["brier"] == pytest.approx(np.mean(np.sum((p_mix - onehot) ** 2, -1)), rel=1e-4)
    h_total = -np.sum(p_mix * log_mix, -1)
    h_members = -np.sum(np.exp(log_p) * log_p, -1)  # (K, n)
    assert ens["mean_entropy"] == pytest.approx(h_total.mean(), rel=1e-4)
    assert ens["mean_mutual_information"] == pytest.approx(
        (h_total - h_members.mean(0)).mean(), rel=1e-3, abs=1e-6
    )

    # ECE with 15 equal-width bins, written out
    conf, pred_y = p_mix.max(-1), p_mix.argmax(-1)
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(
        abs(np.mean(pred_y[bins == b] == y[bins == b]) - conf[bins == b].mean())
        * np.mean(bins == b)
        for b in range(15)
        if np.any(bins == b)
    )
    assert ens["ece"] == pytest.approx(ece, abs=1e-4)

    # per-member accuracy and the mean ± std over members
    member_acc = np.mean(lt.argmax(-1) == y, axis=1)
    single = results["in_distribution"]["single_model"]["accuracy"]
    assert single["mean"] == pytest.approx(member_acc.mean(), abs=1e-12)
    assert single["std"] == pytest.approx(member_acc.std(), abs=1e-12)

    # AUROC of ensemble total entropy, noise vs test, as a Mann–Whitney probability
    ln = logits[:, sl["noise"]]
    log_pn = ln - logsumexp(ln, axis=-1, keepdims=True)
    log_mix_n = logsumexp(log_pn, axis=0) - math.log(len(ln))
    h_noise = -np.sum(np.exp(log_mix_n) * log_mix_n, -1)
    greater = (h_noise[:, None] > h_total[None, :]).mean()
    ties = (h_noise[:, None] == h_total[None, :]).mean()
    auroc = results["ood"]["noise"]["auroc"]["ensemble_total_entropy"]
    assert auroc == pytest.approx(greater + 0.5 * ties, abs=2e-3)


def test_same_seed_gives_identical_results(workdir: pathlib.Path, smoke_run: pathlib.Path):
    again = _results(workdir / "a_again")
    assert again == _results(smoke_run)
    # and the comparison can fail: the training loss curve really depends on the data
    assert len(set(again["training"]["loss_curve_mean"])) > 10


def test_interrupted_then_resumed_run_is_identical(workdir: pathlib.Path, smoke_run: pathlib.Path):
    out = workdir / "resumed"
    # smoke: 40 steps, checkpoints every 10; stopping after 25 loses steps 21..25
    codes, stderr = _run([*SMOKE, "--out", str(out), "--stop-after-step", "25"])
    assert codes == [3], stderr[-3000:]
    assert not (out / "results.json").exists()
    assert (out / "checkpoints" / "20").is_dir()
    codes, stderr = _run([*SMOKE, "--out", str(out), "--resume"])  # a new process
    assert codes == [0], stderr[-3000:]
    timing = json.loads((out / "results.json").read_text())["timing"]
    assert timing["resumed_from_step"] == 20
    assert _results(out) == _results(smoke_run)
    # Resuming the finished run re-evaluates the final checkpoint: same numbers, exit 0;
    # resuming with another configuration is refused before anything is trained.
    codes, stderr = _run(
        [*SMOKE, "--out", str(out), "--resume"],
        [*SMOKE, "--out", str(out), "--resume", "--lr", "0.02"],
    )
    assert codes == [0, 2], stderr[-3000:]
    assert json.loads((out / "results.json").read_text())["timing"]["resumed_from_step"] == 40
    assert _results(out) == _results(smoke_run)
    assert "error: cannot resume from" in stderr
    assert "differs in lr" in stderr


def test_eight_devices_match_one_device_and_bad_member_count_fails(
    workdir: pathlib.Path, smoke_run: pathlib.Path
):
    out = workdir / "eight"
    codes, stderr = _run(
        [*SMOKE, "--out", str(workdir / "bad"), "--members", "12"],
        [*SMOKE, "--out", str(out)],
        devices=8,
    )
    assert codes == [2, 0], stderr[-3000:]
    assert "error: the number of ensemble members (12) must be a positive multiple" in stderr
    assert "multiple of the number of devices (8)" in stderr
    assert not (workdir / "bad" / "results.json").exists()
    eight, one = _results(out), _results(smoke_run)
    assert eight["devices"]["device_count"] == 8
    eight.pop("devices")
    one.pop("devices")
    a, b = dict(_leaves(eight)), dict(_leaves(one))
    assert a.keys() == b.keys()
    numeric = [k for k in a if isinstance(a[k], float)]
    assert len(numeric) > 500
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-4), key
        else:
            assert a[key] == b[key], key
