"""Smoke tests of ``experiments/benchmarks``: quick runs write the expected JSON and tables.

No timing is asserted (timings belong to the benchmarks' reports, not to tests); the tests check
the structure of the JSON, that every timed quantity is a positive finite number, the Markdown
output, and that bad arguments end in one ``error:`` line and exit status 2.
"""

import json
import math
import pathlib
import subprocess
import sys

import pytest

from experiments.benchmarks import bench_ensemble, bench_fused, bench_gpu, bench_losses, common


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _check_common_payload(payload: dict, path, module: str) -> dict:
    """The JSON on disk equals what ``main`` returned and carries the shared blocks."""
    on_disk = json.loads(path.read_text())
    assert on_disk == payload
    assert on_disk["command"].startswith(f"python -m {module} ")
    env = on_disk["environment"]
    assert {"versions", "devices", "platform", "cpu_count", "load_average", "x64"} <= set(env)
    assert len(env["load_average"]) == 3
    timing = on_disk["timing"]
    assert _positive(timing["wall_seconds"])
    assert {"started_utc", "finished_utc", "load_average_start"} <= set(timing)
    assert on_disk["settings"]["quick"] is True
    assert on_disk["rows"]
    return on_disk


# --------------------------------------------------------------------------------------------
# common


def test_time_interleaved_rotates_the_start_and_returns_every_sample():
    order = []
    calls = {name: (lambda n=name: order.append(n)) for name in "abc"}
    samples = common.time_interleaved(calls, reps=3, warmup=1)
    assert order == list("abc" + "abc" + "bca" + "cab")
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in samples.values() for t in v)


def test_summarize_and_tables():
    stats = common.summarize([4.0, 1.0, 3.0, 2.0, 5.0], scale=10)
    assert stats == {"median": 30.0, "q25": 20.0, "q75": 40.0, "min": 10.0, "max": 50.0}
    twice = lambda r: None if r.get("x") is None else 2 * r["x"]
    columns = (("name", "name", "{}"), ("x", "x", "{:.1f}"), ("twice", twice, "{}"))
    rows = [{"name": "a", "x": 1.0}, {"name": "b", "x": None}]
    text = common.format_table(rows, columns).splitlines()
    assert text[0].split() == ["name", "x", "twice"]
    assert text[2].split() == ["a", "1.0", "2.0"]
    assert text[3].split() == ["b", "-", "-"]
    md = common.format_table([{"name": "a"}], columns[:2], markdown=True).splitlines()
    assert md == ["| name | x |", "|---|---|", "| a | - |"]


# --------------------------------------------------------------------------------------------
# bench_losses


def test_losses_quick_writes_expected_rows(tmp_path, capsys):
    out = tmp_path / "nested" / "bench.json"
    args = ["--quick", "--reps", "1", "--groups", "plain", "--out", str(out), "--markdown"]
    on_disk = _check_common_payload(bench_losses.main(args), out, bench_losses.MODULE)
    assert on_disk["settings"]["reps"] == 1
    assert on_disk["settings"]["groups"] == ["plain"]

    rows = {(r["group"], r["impl"], r["size"]) for r in on_disk["rows"]}
    sizes = ["{}x{}".format(*s) for s in bench_losses.QUICK_SIZES]
    assert rows == {(c.group, c.impl, s) for c in bench_losses.loss_cases() for s in sizes}
    for group in ("ce_int", "ce_soft", "ce_smooth", "entropy", "kl"):
        assert "entjax" in {impl for g, impl, _ in rows if g == group}
        assert any(impl.startswith("optax") for g, impl, _ in rows if g == group)

    for row in on_disk["rows"]:
        assert all(_positive(row[k]) for k in ("fwd_ms", "fwd_gbps", "fwd_x_pass"))
        assert row["fwd_ms_q25"] <= row["fwd_ms"] <= row["fwd_ms_q75"]
        if row["group"] == "baseline":
            assert "vag_ms" not in row
        else:
            assert all(_positive(row[k]) for k in ("vag_ms", "vag_ratio_optax", "fwd_ratio_optax"))
            assert row["vag_bytes"] > row["fwd_bytes"]

    for row in on_disk["rows"]:
        if row["group"] != "baseline":
            assert row["fwd_ratio_optax_q25"] <= row["fwd_ratio_optax"]
            assert row["fwd_ratio_optax"] <= row["fwd_ratio_optax_q75"]
            assert {"fwd_kernels", "vag_big_writes", "vag_exp_per_logit"} <= set(row)
            assert len(row["vag_samples_s"]) == len(row["vag_cpu_samples_s"]) == 1

    # --markdown prints the README summary; --from-json prints it (or the full table) again.
    summary = capsys.readouterr().out
    lines = summary.splitlines()
    headers = " | ".join("{} × {}".format(*s) for s in bench_losses.QUICK_SIZES)
    assert lines[0] == f"| entjax / optax | {headers} |"
    labels = [line.split(" | ")[0].lstrip("| ") for line in lines[2:12]]
    assert labels[:2] == ["integer-label CE, forward", "integer-label CE, value_and_grad"]
    assert len(labels) == 10
    assert labels[-1] == "entropy, value_and_grad"
    assert lines[-1].startswith("Command: `python -m experiments.benchmarks.bench_losses ")
    bench_losses.main(["--from-json", str(out), "--markdown"])
    assert capsys.readouterr().out == summary
    bench_losses.main(["--from-json", str(out)])
    table = capsys.readouterr().out
    assert "entjax" in table
    assert "read+write" in table
    assert "vag/optax" in table


def test_hlo_profile_counts_kernels_writes_and_exps():
    import jax
    import jax.numpy as jnp

    x = jnp.ones((8, 16), jnp.float32)
    fn = jax.jit(lambda x: jnp.exp(x) * 2.0 + jnp.sum(jnp.exp(x)))
    profile = bench_losses.hlo_profile(fn.lower(x).compile().as_text(), (8, 16))
    assert profile["big_writes"] >= 1
    assert profile["exp_per_logit"] >= 1
    assert profile["kernels"] >= profile["big_writes"]


def test_losses_fused_group_reports_naive_and_fused(tmp_path, capsys):
    out = tmp_path / "bench_fused.json"
    args = ["--quick", "--reps", "1", "--groups", "fused", "--out", str(out), "--markdown"]
    rows = bench_losses.main(args)["rows"]
    assert {(r["group"], r["impl"]) for r in rows} == {
        (g, i) for g in ("fused_ce", "fused_entropy") for i in ("naive", "fused")
    }
    chunked = [r for r in rows if r["impl"] == "fused" and r["v"] >= 4 * r["chunk"]]
    assert chunked, "the quick sizes should include a vocabulary of several chunks"
    for row in rows:
        assert _positive(row["vag_ms"])
    for row in chunked:
        # Scratch is O(N x chunk): well below the [N, V] logits once V spans several chunks.
        assert row["temp_mib"] < 0.5 * row["logits_mib"]
    printed = capsys.readouterr().out
    assert "| vag/naive |" in printed
    assert f"JSON: `{out}`" in printed


# --------------------------------------------------------------------------------------------
# bench_fused


def test_fused_quick_markdown(tmp_path, capsys):
    out = tmp_path / "fused.json"
    args = ["--quick", "--reps", "2", "--vocab", "1024", "--chunks", "256", "--cases", "ce"]
    payload = bench_fused.main([*args, "--out", str(out), "--markdown"])
    on_disk = _check_common_payload(payload, out, bench_fused.MODULE)
    assert on_disk["settings"]["vocabs"] == [1024]
    assert on_disk["goals"]["scratch_independent_of_v"] is True
    assert [(r["impl"], r["chunk"]) for r in on_disk["rows"]] == [("naive", None), ("fused", 256)]
    for row in on_disk["rows"]:
        assert all(_positive(row[k]) for k in ("vag_ms", "fwd_ms", "temp_mib", "vag_ratio_naive"))
        assert len(row["vag_samples_s"]) == 2
        assert row["rss_mib"] is None  # quick mode skips the subprocesses

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| case | impl | chunk |")
    assert lines[1].startswith("|---|")
    assert lines[2].startswith("| ce | naive |")
    assert lines[-1] == f"Command: `{on_disk['command']}`; JSON: `{out}`."


def test_fused_memory_only_with_peak_rss_subprocesses():
    # Untimed (memory columns only), each configuration's peak RSS from a fresh
    # ``python -m experiments.benchmarks.bench_fused --child`` process.
    rows = bench_fused.run(
        True, 1, vocabs=(512,), chunks=(256,), cases=("ce",), rss=True, time_vocabs=()
    )
    assert [r["impl"] for r in rows] == ["naive", "fused"]
    for row in rows:
        assert _positive(row["rss_mib"])
        assert _positive(row["rss_inputs_mib"])
        assert _positive(row["temp_mib"])
        assert row["vag_ms"] is None
        assert row["vag_ratio_naive"] is None


# --------------------------------------------------------------------------------------------
# bench_ensemble


def test_ensemble_smoke(tmp_path, capsys):
    out = tmp_path / "ensemble.json"
    payload = bench_ensemble.main(["--smoke", "--members", "2", "--out", str(out), "--markdown"])
    on_disk = _check_common_payload(payload, out, bench_ensemble.MODULE)
    assert on_disk["settings"]["reps"] == bench_ensemble.SMOKE["reps"]
    assert isinstance(on_disk["goal_met_at_default"], bool)
    (row,) = on_disk["rows"]
    assert (row["width"], row["members"]) == (32, 2)
    for key in ("vmapped_step_s", "loop_of_single_steps_s", "ratio_per_repeat"):
        assert len(row[key]) == row["repeats"]
        assert all(_positive(t) for t in row[key])
    assert all(_positive(row[k]) for k in ("vmapped_median_s", "loop_median_s", "ratio_median"))
    assert row["ratio_min"] <= row["ratio_median"] <= row["ratio_max"]
    assert all(_positive(t) for t in row["first_calls_s"].values())
    assert "| mlp | 32 | 2 |" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# bench_gpu (its --quick sizes on CPU)


def test_gpu_record_quick(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    payload = bench_gpu.main(["--quick", "--out", str(out), "--markdown"])
    on_disk = _check_common_payload(payload, out, bench_gpu.MODULE)
    assert on_disk["device"]["platform"] == "cpu"
    by_section = {s: [r for r in on_disk["rows"] if r["section"] == s] for s in bench_gpu.SECTIONS}
    fused = by_section["fused"]
    assert {(r["case"], r["impl"]) for r in fused} == {
        (c, i) for c in bench_fused.CASES for i in ("naive", "fused")
    }
    for row in fused:
        assert all(_positive(row[k]) for k in ("vag_ms", "peak_mib", "peak_inputs_mib"))
        assert row["peak_mib"] >= row["peak_inputs_mib"] * 0.9
        assert row["memory_kind"] == "process peak RSS (VmHWM)"
    assert {r["group"] for r in by_section["losses"]} == {"baseline", "ce_int", "kl"}
    (ensemble,) = by_section["ensemble"]
    assert _positive(ensemble["ratio_median"])
    printed = capsys.readouterr().out
    assert printed.startswith("Device: ")
    assert "| ce | fused |" in printed
    assert printed.rstrip().endswith(f"JSON: `{out}`.")


# --------------------------------------------------------------------------------------------
# bad arguments


@pytest.mark.parametrize(
    ("main", "args"),
    [
        (bench_losses.main, ["--reps", "0"]),
        (bench_losses.main, ["--groups", "plain,bogus"]),
        (bench_fused.main, ["--vocab", "1024,x"]),
        (bench_fused.main, ["--cases", "mse"]),
        (bench_ensemble.main, ["--members", "0"]),
        (bench_ensemble.main, ["--no-such-flag"]),
        (bench_losses.main, ["--sizes", "12x"]),
        (bench_gpu.main, ["--sections", "fused,bogus"]),
    ],
)
def test_bad_argument_is_one_error_line(main, args, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path / "never.json")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert not (tmp_path / "never.json").exists()


def test_bad_argument_from_the_command_line():
    module = "experiments.benchmarks.bench_losses"
    cmd = [sys.executable, "-m", module, "--reps", "0"]
    root = pathlib.Path(__file__).resolve().parents[2]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=root)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"error: argument --reps: must be >= 1, got 0 (see python -m {module} --help)"
    ]
