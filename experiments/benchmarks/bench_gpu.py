"""One-command accelerator record: fused losses at LM scale, losses against optax, ensemble step.

On a GPU, ``python -m experiments.benchmarks.bench_gpu --out results/bench_gpu.json --markdown``
measures, in one process (a few minutes on one modern GPU):

1. **Fused linear losses** at N = 8192 tokens, D = 2048, V = 131072, bfloat16 hidden states
   and weight: :func:`entjax.fused_linear_cross_entropy` and :func:`entjax.fused_linear_entropy`
   against ``hidden @ weight`` followed by the entjax loss, ``value_and_grad`` with respect to
   hidden and weight; the time (naive and fused interleaved) and the memory: XLA's compiled
   scratch, and the device's peak bytes in use in a fresh process per configuration
   (``memory_stats()['peak_bytes_in_use']``, with preallocation off).
2. **Losses on materialised logits** at (8192, 131072), float32: integer-label cross-entropy
   and KL(p‖q) against optax (as in :mod:`experiments.benchmarks.bench_losses`).
3. **The vmapped R × K ensemble step** (R = 4 replicates of K = 8 members stacked on one axis,
   an MLP of width 512) against the same single-member step in a Python loop
   (:mod:`experiments.benchmarks.bench_ensemble`).

It writes the JSON (every sample, the device's name, the environment) and prints the tables,
as Markdown with ``--markdown``, followed by the command and the JSON file. ``--quick`` runs
the same code at sizes a CPU finishes in seconds (the smoke test runs it); on a CPU the memory
column is the process's peak RSS instead of device bytes.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks import bench_ensemble, bench_fused, bench_losses, common

MODULE = "experiments.benchmarks.bench_gpu"
FULL = {
    "fused": {"n": 8192, "d": 2048, "v": 131072, "dtype": "bfloat16", "chunks": (8192,)},
    "losses": {"n": 8192, "v": 131072},
    "ensemble": {"replicates": 4, "members": 8, "width": 512, "batch_size": 64, "inner": 20},
    "reps": 7,
}
QUICK = {
    "fused": {"n": 64, "d": 32, "v": 2048, "dtype": "bfloat16", "chunks": (512,)},
    "losses": {"n": 64, "v": 1000},
    "ensemble": {"replicates": 2, "members": 2, "width": 32, "batch_size": 16, "inner": 2},
    "reps": 2,
}
SECTIONS = ("fused", "losses", "ensemble")
MIB = 2**20


# --------------------------------------------------------------------------------------------
# 1. Fused linear losses.


def _fused_inputs(n: int, d: int, v: int, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((n, d), dtype=np.float32)
    weight = rng.standard_normal((d, v), dtype=np.float32) * np.float32(1 / np.sqrt(d))
    labels = rng.integers(0, v, size=n, dtype=np.int32)
    return (
        jnp.asarray(hidden, dtype=dtype),
        jnp.asarray(weight, dtype=dtype),
        jnp.asarray(labels),
    )


def _peak_memory_mib() -> tuple[float, str]:
    """The peak memory of this process so far: device bytes on an accelerator, else RSS."""
    device = jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / MIB, "device peak_bytes_in_use"
    return bench_fused._peak_rss_mib(), "process peak RSS (VmHWM)"


def _child(spec: Mapping[str, Any]) -> dict[str, Any]:
    """One fused-section configuration (or only its inputs) once; its peak memory."""
    args = _fused_inputs(spec["n"], spec["d"], spec["v"], spec["dtype"])
    jax.block_until_ready(args)
    if spec["impl"] != "inputs":
        vag = bench_fused._value_and_grad(spec["case"], spec["impl"], spec["chunk"], args)
        jax.block_until_ready(vag(*args))
    peak, kind = _peak_memory_mib()
    return {"peak_mib": peak, "memory_kind": kind}


def _peak_in_subprocess(spec: Mapping[str, Any]) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    }
    out = subprocess.run(
        [sys.executable, "-m", MODULE, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def fused_section(cfg: Mapping[str, Any], reps: int) -> list[dict[str, Any]]:
    """Naive and fused CE and entropy: time, XLA scratch and peak memory (fresh processes)."""
    n, d, v, dtype = cfg["n"], cfg["d"], cfg["v"], cfg["dtype"]
    args = _fused_inputs(n, d, v, dtype)
    base = {"n": n, "d": d, "v": v, "dtype": dtype}
    inputs_peak = _peak_in_subprocess({**base, "impl": "inputs", "case": "ce", "chunk": 0})
    rows = []
    for case in bench_fused.CASES:
        impls = {"naive": bench_fused._value_and_grad(case, "naive", 0, args)}
        for chunk in cfg["chunks"]:
            impls[f"fused/{chunk}"] = bench_fused._value_and_grad(case, "fused", chunk, args)
        calls = {key: functools.partial(vag, *args) for key, vag in impls.items()}
        samples = common.time_interleaved(calls, reps=reps, warmup=1)
        naive = common.summarize(samples["naive"])["median"]
        for key, vag in impls.items():
            impl, _, chunk = key.partition("/")
            stats = common.summarize(samples[key])
            peak = _peak_in_subprocess(
                {**base, "impl": impl, "case": case, "chunk": int(chunk or 0)}
            )
            rows.append(
                {
                    "section": "fused",
                    "case": case,
                    "impl": impl,
                    "chunk": int(chunk) if chunk else None,
                    "size": f"{n}x{d}x{v}",
                    "dtype": dtype,
                    "vag_ms": 1e3 * stats["median"],
                    "vag_ms_min_max": [1e3 * stats["min"], 1e3 * stats["max"]],
                    "vag_samples_s": samples[key],
                    "vag_ratio_naive": stats["median"] / naive,
                    "scratch_mib": vag.memory_analysis().temp_size_in_bytes / MIB,
                    "peak_mib": peak["peak_mib"],
                    "peak_inputs_mib": inputs_peak["peak_mib"],
                    "memory_kind": peak["memory_kind"],
                }
            )
        print(f"fused {case}: done", file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------------------------
# 2. Losses against optax, 3. ensemble step.


def losses_section(cfg: Mapping[str, Any], reps: int) -> list[dict[str, Any]]:
    """Integer-label CE and KL against optax on materialised float32 logits."""
    cases = [c for c in bench_losses.loss_cases() if c.group in ("baseline", "ce_int", "kl")]
    rows = bench_losses.bench_size((cfg["n"], cfg["v"]), cases, reps=reps)
    for row in rows:
        row["section"] = "losses"
        for mode in bench_losses.MODES:  # the raw samples are in the JSON of bench_losses
            row.pop(f"{mode}_cpu_samples_s", None)
    return rows


def ensemble_section(cfg: Mapping[str, Any], reps: int) -> list[dict[str, Any]]:
    """One vmapped step of R x K stacked members against the single-member step in a loop."""
    row = bench_ensemble.bench_width(
        model="mlp",
        width=cfg["width"],
        members=cfg["replicates"] * cfg["members"],
        batch_size=cfg["batch_size"],
        reps=reps,
        inner=cfg["inner"],
        seed=0,
    )
    return [{"section": "ensemble", "replicates": cfg["replicates"], "k": cfg["members"], **row}]


# --------------------------------------------------------------------------------------------
# Report.

FUSED_COLUMNS: tuple[common.Column, ...] = (
    ("case", "case", "{}"),
    ("impl", "impl", "{}"),
    ("chunk", "chunk", "{}"),
    ("N x D x V", "size", "{}"),
    ("dtype", "dtype", "{}"),
    ("vag ms", "vag_ms", "{:.1f}"),
    ("time/naive", "vag_ratio_naive", "{:.2f}"),
    ("XLA scratch MiB", "scratch_mib", "{:.0f}"),
    ("peak MiB", "peak_mib", "{:.0f}"),
    ("peak of inputs only MiB", "peak_inputs_mib", "{:.0f}"),
)
LOSS_COLUMNS: tuple[common.Column, ...] = (
    ("group", "group", "{}"),
    ("impl", "impl", "{}"),
    ("size", "size", "{}"),
    ("fwd ms", "fwd_ms", "{:.3g}"),
    ("vag ms", "vag_ms", "{:.3g}"),
    ("fwd/optax", "fwd_ratio_optax", "{:.2f}"),
    ("vag/optax", "vag_ratio_optax", "{:.2f}"),
    ("fwd GB/s", "fwd_gbps", "{:.0f}"),
    ("vag GB/s", "vag_gbps", "{:.0f}"),
)
ENSEMBLE_COLUMNS: tuple[common.Column, ...] = (
    ("R x K", lambda r: f"{r['replicates']} x {r['k']}", "{}"),
    ("width", "width", "{}"),
    ("vmapped ms/step", lambda r: 1e3 * r["vmapped_median_s"], "{:.3f}"),
    ("loop ms/step", lambda r: 1e3 * r["loop_median_s"], "{:.3f}"),
    ("ratio (median)", "ratio_median", "{:.3f}"),
    ("min", "ratio_min", "{:.3f}"),
    ("max", "ratio_max", "{:.3f}"),
)


def report(rows: Sequence[Mapping[str, Any]], *, markdown: bool) -> str:
    parts = []
    for section, columns in (
        ("fused", FUSED_COLUMNS),
        ("losses", LOSS_COLUMNS),
        ("ensemble", ENSEMBLE_COLUMNS),
    ):
        mine = [r for r in rows if r.get("section") == section]
        if section == "losses":
            mine = [r for r in mine if r["group"] != "baseline" or r["impl"].startswith("read+")]
        if mine:
            parts.append(common.format_table(mine, columns, markdown=markdown))
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = common.build_parser(MODULE, __doc__, default_out="results/bench_gpu.json")
    parser.add_argument(
        "--sections",
        type=common.choices_list(SECTIONS),
        default=SECTIONS,
        help=f"comma-separated sections to run (default {','.join(SECTIONS)})",
    )
    parser.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    args, run = common.start(parser, argv)
    if args.child:
        result = _child(json.loads(args.child))
        print(json.dumps(result))
        return result
    cfg = QUICK if args.quick else FULL
    reps = args.reps or cfg["reps"]
    device = jax.devices()[0]
    rows: list[dict[str, Any]] = []
    sections = {"fused": fused_section, "losses": losses_section, "ensemble": ensemble_section}
    for name in args.sections:
        rows += sections[name](cfg[name], reps)
    settings = {"quick": args.quick, "reps": reps, "sections": list(args.sections)}
    settings |= {name: dict(cfg[name]) for name in args.sections}
    device_info = {"platform": device.platform, "device_kind": device.device_kind}
    payload = common.outputs.to_jsonable(
        run.payload(settings=settings, rows=rows, device=device_info)
    )
    common.outputs.write_json(args.out, payload)
    print(f"Device: {device.device_kind} ({device.platform})\n")
    print(report(rows, markdown=args.markdown))
    print(f"\nCommand: `{run.command}`; JSON: `{args.out}`.")
    print(f"wrote {args.out}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
