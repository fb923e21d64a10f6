"""Benchmark the fused linear + cross-entropy (and entropy) against materialised logits.

For ``hidden [N, D]``, ``weight [D, V]`` and integer labels, float32, it compares

* ``naive``: ``entjax.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels)`` (and
  ``entjax.entropy(hidden @ weight)``), which builds the ``[N, V]`` logits and their gradient;
* ``fused``: :func:`entjax.fused_linear_cross_entropy` (and :func:`entjax.fused_linear_entropy`),
  which scans vocabulary chunks and never does,

on ``jax.value_and_grad`` of the mean loss with respect to ``hidden`` and ``weight``:

* XLA scratch: ``jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes``;
* process peak RSS (``VmHWM`` from ``/proc/self/status``; ``ru_maxrss`` elsewhere), each
  configuration in a fresh subprocess (``python -m experiments.benchmarks.bench_fused --child
  SPEC``), beside the RSS of a subprocess that builds the same inputs and runs nothing (the
  difference includes XLA's compiler, not only the buffers);
* time: the median of ``reps`` runs after warm-up, naive and fused interleaved round-robin in one
  process (:func:`experiments.benchmarks.common.time_interleaved`), with the min-max spread; also
  the forward pass alone, which splits the time into forward and backward.

Usage::

    python -m experiments.benchmarks.bench_fused --out results/bench_fused.json
    python -m experiments.benchmarks.bench_fused --time-vocab 32768  # time V=32768, memory all
    python -m experiments.benchmarks.bench_fused --quick             # small sizes, a smoke test
    python -m experiments.benchmarks.bench_fused --vocab 32768 --chunks 2048,4096,8192,16384

Targets (:func:`goals`): fused scratch <= 5% of naive at V = 131072 and independent of V; time
<= 1.2x naive at V = 32768 on CPU. CPU timings are noisy, more so on a shared machine: read the
spread. :func:`run` returns the rows for other scripts (``bench_losses --groups fused``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import entjax
from experiments.benchmarks import common

MODULE = "experiments.benchmarks.bench_fused"
FULL = {"n": 2048, "d": 512, "vocabs": (32768, 131072), "chunks": (2048,), "reps": 5}
QUICK = {"n": 256, "d": 64, "vocabs": (2048, 8192), "chunks": (1024,), "reps": 3}
CASES = ("ce", "entropy")
WARMUP = 1  # a call at V = 131072 takes seconds on CPU
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


def _value_and_grad(case: str, impl: str, chunk: int, args) -> Any:
    """Jitted value-and-grad (w.r.t. hidden and weight), compiled."""
    loss = _loss(case, impl, chunk)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*args).compile()


def _compiled(case: str, impl: str, chunk: int, args) -> tuple[Any, Any]:
    """Jitted forward and value-and-grad (w.r.t. hidden and weight), both compiled."""
    fwd = jax.jit(_loss(case, impl, chunk)).lower(*args).compile()
    return fwd, _value_and_grad(case, impl, chunk, args)


def _temp_mib(compiled) -> float:
    return compiled.memory_analysis().temp_size_in_bytes / MIB


# --------------------------------------------------------------------------------------------
# Peak RSS in a fresh process.


def _child(spec: dict) -> dict:
    """Run one configuration once (or only build its inputs) and report the peak RSS."""
    args = _inputs(spec["n"], spec["d"], spec["v"])
    jax.block_until_ready(args)
    if spec["impl"] != "inputs":
        vag = _value_and_grad(spec["case"], spec["impl"], spec["chunk"], args)
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
    """Peak RSS (MiB) of a fresh ``python -m experiments.benchmarks.bench_fused --child SPEC``."""
    out = subprocess.run(
        [sys.executable, "-m", MODULE, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["rss_mib"]


# --------------------------------------------------------------------------------------------
# Timing and rows.

UNTIMED = dict.fromkeys(
    ("vag_ms", "vag_spread_s", "vag_samples_s", "fwd_ms", "bwd_ms", "vag_ratio_naive")
)


def _time_impls(impls: Mapping[str, tuple[Any, Any]], args, reps: int) -> dict[str, dict]:
    """Per-call seconds of every implementation's value-and-grad, then of its forward pass."""
    samples = {}
    for mode, index in (("vag", 1), ("fwd", 0)):
        calls = {key: functools.partial(fns[index], *args) for key, fns in impls.items()}
        samples[mode] = common.time_interleaved(calls, reps=reps, warmup=WARMUP)
    return samples


def _time_columns(samples: Mapping[str, dict], key: str) -> dict[str, Any]:
    vag = common.summarize(samples["vag"][key])
    fwd = common.summarize(samples["fwd"][key])
    naive = common.summarize(samples["vag"]["naive"])
    return {
        "vag_ms": 1e3 * vag["median"],
        "vag_spread_s": f"{vag['min']:.3f}-{vag['max']:.3f}",
        "vag_samples_s": samples["vag"][key],
        "fwd_ms": 1e3 * fwd["median"],
        "bwd_ms": 1e3 * (vag["median"] - fwd["median"]),
        "vag_ratio_naive": vag["median"] / naive["median"],
    }


def _memory_columns(fwd, vag, naive_vag, logits_elems: int) -> dict[str, Any]:
    return {
        "temp_mib": _temp_mib(vag),
        "temp_mib_fwd": _temp_mib(fwd),
        "temp_ratio_naive": _temp_mib(vag) / _temp_mib(naive_vag),
        "logits_mib": logits_elems * 4 / MIB,
        "scratch": f"{_temp_mib(fwd):.0f}/{_temp_mib(vag):.0f}",
    }


def case_rows(
    case: str, args, chunks: Sequence[int], *, reps: int, rss: bool, timed: bool
) -> list[dict]:
    """Rows for one case at one size: naive, then fused per chunk size.

    With ``timed=False`` only the memory columns are measured (times are ``None``); with
    ``rss=False`` the peak-RSS columns are ``None``.
    """
    (n, d), v = args[0].shape, args[1].shape[1]
    impls = {"naive": _compiled(case, "naive", 0, args)}
    impls |= {f"fused/{chunk}": _compiled(case, "fused", chunk, args) for chunk in chunks}
    samples = _time_impls(impls, args, reps) if timed else {}
    spec = {"n": n, "d": d, "v": v, "case": case}
    rss_inputs = peak_rss_mib({**spec, "impl": "inputs", "chunk": 0}) if rss else None
    rows = []
    for key, (fwd, vag) in impls.items():
        impl, _, chunk = key.partition("/")
        row = {
            "group": f"fused_{case}",
            "case": case,
            "impl": impl,
            "chunk": int(chunk) if chunk else None,
            "size": f"{n}x{d}x{v}",
            "n": n,
            "d": d,
            "v": v,
            "dtype": "float32",
            "reps": reps if timed else None,
            **(_time_columns(samples, key) if timed else UNTIMED),
            **_memory_columns(fwd, vag, impls["naive"][1], n * v),
            "rss_inputs_mib": rss_inputs,
            "rss_mib": None,
        }
        if rss:
            row["rss_mib"] = peak_rss_mib({**spec, "impl": impl, "chunk": int(chunk or 0)})
        rows.append(row)
        brief = {k: row[k] for k in ("case", "impl", "chunk", "size", "vag_ms", "temp_mib")}
        print(json.dumps({**brief, "rss_mib": row["rss_mib"]}), file=sys.stderr, flush=True)
    return rows


def settings(
    quick: bool,
    reps: int | None = None,
    *,
    vocabs: Sequence[int] | None = None,
    chunks: Sequence[int] | None = None,
    cases: Sequence[str] = CASES,
    rss: bool | None = None,
    time_vocabs: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The full configuration of a run; ``None`` picks the mode's default.

    Args:
      quick: small sizes and few repetitions (a smoke test) instead of N=2048, D=512,
        V in {32768, 131072}.
      reps: timed repetitions per implementation (default 5, quick 3).
      vocabs: vocabulary sizes (default from the mode).
      chunks: fused chunk sizes to compare (default 2048; quick 1024).
      cases: ``"ce"`` and/or ``"entropy"``.
      rss: measure peak RSS in fresh subprocesses (default: not in quick mode).
      time_vocabs: the vocabulary sizes to time (default: all); the others get memory only.
    """
    mode = QUICK if quick else FULL
    vocabs = tuple(vocabs or mode["vocabs"])
    return {
        "quick": quick,
        "n": mode["n"],
        "d": mode["d"],
        "vocabs": vocabs,
        "chunks": tuple(chunks or mode["chunks"]),
        "cases": tuple(cases),
        "reps": reps or mode["reps"],
        "warmup": WARMUP,
        "rss": (not quick) if rss is None else rss,
        "time_vocabs": vocabs if time_vocabs is None else tuple(time_vocabs),
    }


def run(quick: bool, reps: int | None = None, **options: Any) -> list[dict]:
    """All rows of :func:`settings` ``(quick, reps, **options)``: for each vocabulary size,
    naive and fused, CE and entropy; keys as in :data:`COLUMNS`."""
    return run_settings(settings(quick, reps, **options))


def run_settings(cfg: Mapping[str, Any]) -> list[dict]:
    rows = []
    for v in cfg["vocabs"]:
        args = _inputs(cfg["n"], cfg["d"], v)
        for case in cfg["cases"]:
            timed = v in cfg["time_vocabs"]
            rows += case_rows(
                case, args, cfg["chunks"], reps=cfg["reps"], rss=cfg["rss"], timed=timed
            )
    return rows


# --------------------------------------------------------------------------------------------
# Report.

COLUMNS: tuple[common.Column, ...] = (
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


def goals(rows: Sequence[dict]) -> dict[str, Any]:
    """The targets of the fused loss, evaluated on the CE rows that exist."""
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
    parser = common.build_parser(MODULE, __doc__, default_out="results/bench_fused.json")
    parser.add_argument("--vocab", type=common.positive_ints, default=None, help="V values")
    parser.add_argument("--chunks", type=common.positive_ints, default=None, help="chunk sizes")
    parser.add_argument("--cases", type=common.choices_list(CASES), default=CASES)
    parser.add_argument("--no-rss", action="store_true", help="skip the subprocess RSS runs")
    parser.add_argument("--time-vocab", type=common.positive_ints, default=None, help="V to time")
    parser.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    args, run_info = common.start(parser, argv)
    if args.child:
        result = _child(json.loads(args.child))
        print(json.dumps(result))
        return result
    cfg = settings(
        args.quick,
        args.reps,
        vocabs=args.vocab,
        chunks=args.chunks,
        cases=args.cases,
        rss=False if args.no_rss else None,
        time_vocabs=args.time_vocab,
    )
    rows = run_settings(cfg)
    payload = run_info.finish(
        args.out, COLUMNS, markdown=args.markdown, settings=cfg, rows=rows, goals=goals(rows)
    )
    print(json.dumps(payload["goals"], indent=1), file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
