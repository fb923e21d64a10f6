"""Smoke test of experiments/bench_losses.py: `--quick` runs and writes the expected rows.

No timing is asserted (timings belong to the benchmark's report, not to tests); the test checks
the structure of the JSON and that every timed quantity is a positive finite number.
"""

import json
import math

from experiments import bench_losses


def test_quick_writes_expected_rows(tmp_path, capsys):
    out = tmp_path / "nested" / "bench.json"
    payload = bench_losses.main(["--quick", "--reps", "1", "--groups", "plain", "--out", str(out)])
    on_disk = json.loads(out.read_text())
    assert on_disk["rows"] == payload["rows"]
    assert on_disk["quick"] is True
    assert on_disk["reps"] == 1

    rows = {(r["group"], r["impl"], r["size"]) for r in on_disk["rows"]}
    size = "{}x{}".format(*bench_losses.QUICK_SIZES[0])
    expected = {(c.group, c.impl, size) for c in bench_losses.loss_cases()}
    assert rows == expected
    for group in ("ce_int", "entropy", "kl"):
        assert {impl for g, impl, _ in rows if g == group} >= {"entjax", "jnp"}
        assert any(impl.startswith("optax") for g, impl, _ in rows if g == group)

    for row in on_disk["rows"]:
        assert row["fwd_ms"] > 0
        assert math.isfinite(row["fwd_ms"])
        assert row["fwd_gbps"] > 0
        assert row["fwd_x_pass"] > 0
        if row["group"] == "baseline":
            assert "vag_ms" not in row
        else:
            assert row["vag_ms"] > 0
            assert math.isfinite(row["vag_ms"])
            assert row["vag_ratio_optax"] > 0
            assert row["fwd_ratio_optax"] > 0
            assert row["vag_bytes"] > row["fwd_bytes"]

    table = capsys.readouterr().out
    assert "entjax" in table
    assert "read+write" in table
    assert "vag/optax" in table


def test_quick_fused_group_reports_naive_and_fused(tmp_path):
    out = tmp_path / "bench_fused.json"
    payload = bench_losses.main(["--quick", "--reps", "1", "--groups", "fused", "--out", str(out)])
    rows = payload["rows"]
    assert {(r["group"], r["impl"]) for r in rows} == {
        (g, i) for g in ("fused_ce", "fused_entropy") for i in ("naive", "fused")
    }
    chunked = [r for r in rows if r["impl"] == "fused" and r["v"] >= 4 * r["chunk"]]
    assert chunked, "the quick sizes should include a vocabulary of several chunks"
    for row in rows:
        assert row["vag_ms"] > 0
        assert math.isfinite(row["vag_ms"])
    for row in chunked:
        # Scratch is O(N x chunk): well below the [N, V] logits once V spans several chunks.
        assert row["temp_mib"] < 0.5 * row["logits_mib"]
    assert "vag/naive" in bench_losses.format_table(rows)
