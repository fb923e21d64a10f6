"""Benchmark the fused linear + cross-entropy (and entropy) against materialised logits.

For ``hidden [N, D]``, ``weight [D, V]`` and integer labels, float32, it compares

* ``naive``: ``entjax.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels)`` (and
  ``entjax.entropy(hidden @ weight)``), which builds the ``[N, V]`` logits and their gradient;
* ``fused``: :func:`entjax.fused_linear_cross_entropy` (and :func:`entjax.fused_linear_entropy`),
  which scans vocabulary chunks and never does,

on ``jax.value_and_grad`` of the mean loss with respect to ``hidden`` and ``weight``:

* XLA scratch: ``jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes``;
* process peak RSS (``VmHWM`` from ``/proc/self/status``; ``ru_maxrss`` elsewhere), each
  configuration in a fresh subprocess, beside the RSS of a subprocess that builds the same
  inputs and runs nothing (the difference includes XLA's compiler, not only the buffers);
* time: the median of ``reps`` runs after warm-up, naive and fused interleaved (the order
  alternates every repetition) in one process, with the min-max spread; also the forward pass
  alone, which splits the time into forward and backward.

Usage::

    python -m experiments.bench_fused --out results/bench_fused.json
    python -m experiments.bench_fused --time-vocab 32768     # time V=32768 only, memory for all
    python -m experiments.bench_fused --quick                    # small sizes, a smoke test
    python -m experiments.bench_fused --vocab 32768 --chunks 2048,4096,8192,16384

Goals (issue 5): fused scratch <= 5% of naive at V = 131072 and independent of V; time <= 1.2x
naive at V = 32768 on CPU. CPU timings are noisy, more so on a shared machine: read the spread.
:func:`run` returns the rows for other scripts (``experiments.bench_losses``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import entjax

FULL = {"n": 2048, "d": 512, "vocabs": (32768, 131072), "chunks": (2048,), "reps": 5}
QUICK = {"n": 256, "d": 64, "vocabs": (2048, 8192), "chunks": (1024,), "reps": 3}
MIB = 2**20


# --------------------------------------------------------------------------------------------
# The functions under test.


def _inputs(n: int, d: int, v: int, seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    # numpy draws float32 directly, so building the inputs does not itself set the peak RSS
    # (jax.random's bit generation would need several times the weight's size).
    rng = np.random.default_rng(seed)
    hidden = jnp.asarray(rng.standard_normal((n, d), dtype=np.float32))
    weight = rng.standard_normal((d, v), dtype=np.float32)
    weight *= np.float32(1 / np.sqrt(d))
    weight = jnp.asarray(weight)
    labels = jnp.asarray(rng.integers(0, v, size=n, dtype=np.int32))
    return hidden, weight, labels


def _loss(case: str, impl: str, chunk: int) -> Callable[..., jax.Array]:
    """The scalar mean loss ``(hidden, weight, labels) -> loss`` of one configuration."""
    if case == "ce" and impl == "naive":
        per_token = lambda h, w, y: entjax.softmax_cross_entropy_with_integer_labels(h @ w, y)
    elif case == "ce":
        per_token = lambda h, w, y: entjax.fused_linear_cross_entropy(h, w, y, chunk_size=chunk)
    elif impl == "naive":
        per_token = lambda h, w, y: entjax.entropy(h @ w)
    else:
        per_token = lambda h, w, y: entjax.fused_linear_entropy(h, w, chunk_size=chunk)
    return lambda h, w, y: jnp.mean(per_token(h, w, y))


def _compiled(case: str, impl: str, chunk: int, args) -> tuple[Any, Any]:
    """Jitted forward and value-and-grad (w.r.t. hidden and weight), both compiled."""
    loss = _loss(case, impl, chunk)
    fwd = jax.jit(loss).lower(*args).compile()
    vag = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*args).compile()
    return fwd, vag


def _temp_mib(compiled) -> float:
    return compiled.memory_analysis().temp_size_in_bytes / MIB


# --------------------------------------------------------------------------------------------
# Peak RSS in a fresh process.


def _child(spec: dict) -> dict:
    """Run one configuration once (or only build its inputs) and report the peak RSS."""
    args = _inputs(spec["n"], spec["d"], spec["v"])
    jax.block_until_ready(args)
    if spec["impl"] != "inputs":
        _, vag = _compiled(spec["case"], spec["impl"], spec["chunk"], args)
        jax.block_until_ready(vag(*args))
    return {"rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> float:
    """This process's peak RSS. On Linux ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` is
    not reset by ``execve``, so a child started by a large parent would report the parent's
    RSS at the fork."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MIB
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


def peak_rss_mib(spec: dict) -> float:
    """Peak RSS (MiB) of a fresh ``python -m experiments.bench_fused --child SPEC`` process."""
    out = subprocess.run(
        [sys.executable, "-m", "experiments.bench_fused", "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["rss_mib"]


# --------------------------------------------------------------------------------------------
# Timing.


def _time_interleaved(fns: dict[str, Callable], args, reps: int) -> dict[str, list[float]]:
    """Seconds per call for each function: one warm-up each, then ``reps`` alternating rounds."""
    for fn in fns.values():
        jax.block_until_ready(fn(*args))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            jax.block_until_ready(fns[name](*args))
            samples[name].append(time.perf_counter() - start)
    return samples


def _spread(samples: list[float]) -> str:
    return f"{min(samples):.3f}-{max(samples):.3f}"


def bench_vocab(
    n: int,
    d: int,
    v: int,
    chunks: Sequence[int],
    *,
    cases: Sequence[str] = ("ce", "entropy"),
    reps: int,
    rss: bool,
    timed: bool = True,
) -> list[dict]:
    """Rows for one vocabulary size: naive and fused (per chunk size) for each case.

    With ``timed=False`` only the memory columns are measured (times are ``None``).
    """
    args = _inputs(n, d, v)
    rows = []
    for case in cases:
        impls = {"naive": _compiled(case, "naive", 0, args)}
        for chunk in chunks:
            impls[f"fused/{chunk}"] = _compiled(case, "fused", chunk, args)
        if timed:
            vag_t = _time_interleaved({k: c[1] for k, c in impls.items()}, args, reps)
            fwd_t = _time_interleaved({k: c[0] for k, c in impls.items()}, args, reps)
            base_vag = statistics.median(vag_t["naive"])
        base_temp = _temp_mib(impls["naive"][1])
        base_rss = None
        if rss:
            spec = {"n": n, "d": d, "v": v, "case": case, "impl": "inputs", "chunk": 0}
            base_rss = peak_rss_mib(spec)
        for key, (fwd, vag) in impls.items():
            impl, _, chunk = key.partition("/")
            if timed:
                vag_s, fwd_s = statistics.median(vag_t[key]), statistics.median(fwd_t[key])
            row = {
                "group": f"fused_{case}" if case == "ce" else "fused_entropy",
                "case": case,
                "impl": impl,
                "chunk": int(chunk) if chunk else None,
                "size": f"{n}x{d}x{v}",
                "n": n,
                "d": d,
                "v": v,
                "dtype": "float32",
                "vag_ms": 1e3 * vag_s if timed else None,
                "vag_spread_s": _spread(vag_t[key]) if timed else None,
                "vag_samples_s": vag_t[key] if timed else None,
                "fwd_ms": 1e3 * fwd_s if timed else None,
                "bwd_ms": 1e3 * (vag_s - fwd_s) if timed else None,
                "vag_ratio_naive": vag_s / base_vag if timed else None,
                "temp_mib": _temp_mib(vag),
                "temp_mib_fwd": _temp_mib(fwd),
                "temp_ratio_naive": _temp_mib(vag) / base_temp,
                "logits_mib": n * v * 4 / MIB,
                "rss_inputs_mib": base_rss,
                "rss_mib": None,
                "scratch": f"{_temp_mib(fwd):.0f}/{_temp_mib(vag):.0f}",
            }
            if rss:
                spec = {"n": n, "d": d, "v": v, "case": case, "impl": impl}
                row["rss_mib"] = peak_rss_mib({**spec, "chunk": row["chunk"] or 0})
            rows.append(row)
            brief = {k: row[k] for k in ("case", "impl", "chunk", "size", "vag_ms", "temp_mib")}
            print(json.dumps({**brief, "rss_mib": row["rss_mib"]}), file=sys.stderr, flush=True)
    return rows


def run(
    quick: bool,
    reps: int | None = None,
    *,
    vocabs: Sequence[int] | None = None,
    chunks: Sequence[int] | None = None,
    cases: Sequence[str] = ("ce", "entropy"),
    rss: bool | None = None,
    time_vocabs: Sequence[int] | None = None,
) -> list[dict]:
    """All rows: for each vocabulary size, naive and fused, CE and entropy.

    Args:
      quick: small sizes and few repetitions (a smoke test) instead of N=2048, D=512,
        V in {32768, 131072}.
      reps: timed repetitions per implementation (default 5, quick 3).
      vocabs: vocabulary sizes (default from the mode).
      chunks: fused chunk sizes to compare (default 2048; quick 1024).
      cases: ``"ce"`` and/or ``"entropy"``.
      rss: measure peak RSS in fresh subprocesses (default: not in quick mode).
      time_vocabs: the vocabulary sizes to time (default: all); the others get memory only.

    Returns:
      One dict per (case, V, implementation, chunk size); keys as in :func:`format_table`.
    """
    cfg = QUICK if quick else FULL
    rows = []
    for v in vocabs or cfg["vocabs"]:
        rows += bench_vocab(
            cfg["n"],
            cfg["d"],
            v,
            chunks or cfg["chunks"],
            cases=cases,
            reps=reps or cfg["reps"],
            rss=(not quick) if rss is None else rss,
            timed=time_vocabs is None or v in time_vocabs,
        )
    return rows


# --------------------------------------------------------------------------------------------
# Report.

COLUMNS = (
    ("case", "case", "{}"),
    ("impl", "impl", "{}"),
    ("chunk", "chunk", "{}"),
    ("N x D x V", "size", "{}"),
    ("vag ms", "vag_ms", "{:.0f}"),
    ("min-max s", "vag_spread_s", "{}"),
    ("fwd ms", "fwd_ms", "{:.0f}"),
    ("bwd ms", "bwd_ms", "{:.0f}"),
    ("time/naive", "vag_ratio_naive", "{:.2f}"),
    ("temp MiB", "temp_mib", "{:.1f}"),
    ("temp/naive", "temp_ratio_naive", "{:.3f}"),
    ("RSS MiB", "rss_mib", "{:.0f}"),
    ("RSS inputs MiB", "rss_inputs_mib", "{:.0f}"),
)


def format_table(rows: Sequence[dict]) -> str:
    cells = [[h for h, _, _ in COLUMNS]]
    for r in rows:
        cells.append(["-" if r.get(k) is None else f.format(r[k]) for _, k, f in COLUMNS])
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=False)) for line in cells
    )


def goals(rows: Sequence[dict]) -> dict[str, Any]:
    """The issue's goals, evaluated on the CE rows that exist."""
    fused = [r for r in rows if r["case"] == "ce" and r["impl"] == "fused"]
    out: dict[str, Any] = {}
    big = [r for r in fused if r["v"] == 131072]
    if big:
        out["scratch_ratio_at_131072"] = min(r["temp_ratio_naive"] for r in big)
        out["scratch_le_5pct"] = out["scratch_ratio_at_131072"] <= 0.05
    by_chunk: dict[int, set[float]] = {}
    for r in fused:
        by_chunk.setdefault(r["chunk"], set()).add(round(r["temp_mib"], 3))
    out["scratch_independent_of_v"] = all(len(s) == 1 for s in by_chunk.values())
    small = [r for r in fused if r["v"] == 32768 and r["vag_ratio_naive"] is not None]
    if small:
        out["time_ratio_at_32768"] = min(r["vag_ratio_naive"] for r in small)
        out["time_le_1p2"] = out["time_ratio_at_32768"] <= 1.2
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few reps")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--vocab", type=str, default=None, help="comma-separated V values")
    parser.add_argument("--chunks", type=str, default=None, help="comma-separated chunk sizes")
    parser.add_argument("--cases", type=str, default="ce,entropy")
    parser.add_argument("--no-rss", action="store_true", help="skip the subprocess RSS runs")
    parser.add_argument("--time-vocab", type=str, default=None, help="V values to time")
    parser.add_argument("--out", type=str, default=None, help="write the rows as JSON here")
    parser.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = _child(json.loads(args.child))
        print(json.dumps(result))
        return result
    ints = lambda s: [int(x) for x in s.split(",")] if s else None
    rows = run(
        args.quick,
        args.reps,
        vocabs=ints(args.vocab),
        chunks=ints(args.chunks),
        cases=tuple(args.cases.split(",")),
        rss=False if args.no_rss else None,
        time_vocabs=ints(args.time_vocab),
    )
    payload = {
        "command": " ".join([os.path.basename(sys.executable), "-m", "experiments.bench_fused"])
        + (" " + " ".join(sys.argv[1:]) if argv is None else " " + " ".join(argv)),
        "environment": {
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "devices": [str(x) for x in jax.devices()],
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_at_end": os.getloadavg(),
        },
        "goals": goals(rows),
        "rows": rows,
    }
    print(format_table(rows))
    print(json.dumps(payload["goals"], indent=1))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=1)
        os.replace(tmp, args.out)
    return payload


if __name__ == "__main__":
    main()
