"""Benchmark entjax's losses against optax and plain ``jax.numpy`` on materialised logits.

For each size ``(N, V)`` of float32 logits it times, jitted, in one process:

* the forward pass (per-example loss, then its mean) and ``jax.value_and_grad`` of the mean,
* for entjax's integer-label cross-entropy, entropy and KL divergence, optax's closest functions
  and a plain ``jnp`` version,
* two memory-bound baselines over the same logits: one read (``jnp.sum``) and one read plus one
  write into a fresh buffer (``x * 1.0000001``), the floor any loss or gradient pass has to pay.

Timing is the median of ``--reps`` repetitions after warm-up; within a repetition the
implementations run round-robin (the order rotates every repetition), so slow drifts of a shared
machine hit them all alike. Each row reports the ratio to the fastest optax variant of its group,
the time as a multiple of the read+write pass, the achieved bandwidth (the bytes the operation must
at least move: inputs read once, the gradient written once, divided by the time) and the XLA
scratch memory of the compiled function.

Usage::

    python -m experiments.bench_losses                 # (512, 1000) and (4096, 32000)
    python -m experiments.bench_losses --quick         # small size, few reps: a smoke test
    python -m experiments.bench_losses --reps 30 --out results/bench_losses.json

CPU timings are noisy, more so on a machine shared with other work: the table reports the spread
(25th-75th percentile) beside each median; repeat the run before trusting a difference of a few
percent.

Case groups are functions ``(quick, reps) -> list[dict]``; :data:`CASE_GROUPS` names them and
:func:`format_table` prints any rows that carry the keys of :data:`COLUMNS` (missing cells print
as ``-``), so other benchmarks can contribute rows to the same table and JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import entjax

FULL_SIZES: tuple[tuple[int, int], ...] = ((512, 1000), (4096, 32000))
QUICK_SIZES: tuple[tuple[int, int], ...] = ((512, 1000),)
DEFAULT_REPS = 15
QUICK_REPS = 3
WARMUP = 2
F32 = 4  # bytes per float32 element


# --------------------------------------------------------------------------------------------
# Cases.


@dataclasses.dataclass(frozen=True)
class Case:
    """One implementation of one quantity.

    ``loss(x, *consts)`` returns per-example values; the forward pass times its mean and the
    backward pass ``value_and_grad`` of that mean with respect to ``x``. ``reads`` is how many
    ``[N, V]`` float32 arrays the loss must read (1 for CE and entropy, 2 for KL). A case without
    a gradient (a baseline) sets ``has_grad=False`` and ``writes`` to the arrays it writes.
    """

    group: str
    impl: str
    loss: Callable[..., jax.Array]
    reads: int = 1
    writes: int = 0
    has_grad: bool = True
    reduce_mean: bool = True


def _jnp_ce(x: jax.Array, y: jax.Array) -> jax.Array:
    label_logit = jnp.take_along_axis(x, y[:, None], axis=-1)[:, 0]
    return jax.nn.logsumexp(x, axis=-1) - label_logit


def _jnp_entropy(x: jax.Array) -> jax.Array:
    return -jnp.sum(jax.nn.softmax(x) * jax.nn.log_softmax(x), axis=-1)


def _jnp_kl(q: jax.Array, p: jax.Array) -> jax.Array:
    log_p = jax.nn.log_softmax(p)
    return jnp.sum(jnp.exp(log_p) * (log_p - jax.nn.log_softmax(q)), axis=-1)


def loss_cases() -> list[Case]:
    """The plain-loss cases: CE with integer labels, entropy and KL (gradient w.r.t. q)."""
    return [
        Case("baseline", "read (sum)", lambda x: jnp.sum(x), has_grad=False, reduce_mean=False),
        Case(
            "baseline",
            "read+write (x*c)",
            lambda x: x * jnp.float32(1.0000001),
            writes=1,
            has_grad=False,
            reduce_mean=False,
        ),
        Case(
            "ce_int",
            "entjax",
            lambda x, y: entjax.softmax_cross_entropy_with_integer_labels(x, y),
        ),
        Case("ce_int", "optax", optax.losses.softmax_cross_entropy_with_integer_labels),
        Case("ce_int", "jnp", _jnp_ce),
        Case("entropy", "entjax", lambda x: entjax.entropy(x)),
        Case(
            "entropy",
            "optax safe_softmax_ce(x, softmax(x))",
            lambda x: optax.losses.safe_softmax_cross_entropy(x, jax.nn.softmax(x)),
        ),
        Case("entropy", "jnp", _jnp_entropy),
        # KL(p || q) with p the fixed target and q the differentiated prediction. optax's
        # argument order is the reverse of entjax's: optax.kl_divergence(log_q, p).
        Case("kl", "entjax", lambda q, p: entjax.kl_divergence(p, q), reads=2),
        Case(
            "kl",
            "optax kl_divergence(log_q, p)",
            lambda q, p: optax.losses.kl_divergence(jax.nn.log_softmax(q), jax.nn.softmax(p)),
            reads=2,
        ),
        Case(
            "kl",
            "optax kl_with_log_targets",
            lambda q, p: optax.losses.kl_divergence_with_log_targets(
                jax.nn.log_softmax(q), jax.nn.log_softmax(p)
            ),
            reads=2,
        ),
        Case("kl", "jnp", _jnp_kl, reads=2),
    ]


def _inputs(size: tuple[int, int], seed: int = 0) -> dict[str, tuple[jax.Array, ...]]:
    n, v = size
    kx, kp, ky = jax.random.split(jax.random.key(seed), 3)
    x = 3.0 * jax.random.normal(kx, (n, v), dtype=jnp.float32)
    p = 3.0 * jax.random.normal(kp, (n, v), dtype=jnp.float32)
    y = jax.random.randint(ky, (n,), 0, v, dtype=jnp.int32)
    return {"ce_int": (x, y), "entropy": (x,), "kl": (x, p), "baseline": (x,)}


# --------------------------------------------------------------------------------------------
# Timing.


def _forward(case: Case) -> Callable[..., jax.Array]:
    if not case.reduce_mean:
        return jax.jit(case.loss)
    return jax.jit(lambda *a: jnp.mean(case.loss(*a)))


def _value_and_grad(case: Case) -> Callable[..., Any]:
    return jax.jit(jax.value_and_grad(lambda *a: jnp.mean(case.loss(*a))))


def _scratch_mib(fn: Callable[..., Any], args: tuple[jax.Array, ...]) -> float | None:
    try:
        analysis = fn.lower(*args).compile().memory_analysis()  # type: ignore[attr-defined]
        return analysis.temp_size_in_bytes / 2**20
    except Exception:  # memory analysis is backend-dependent; report it when available
        return None


def time_round_robin(
    calls: dict[str, Callable[[], Any]], *, reps: int, warmup: int = WARMUP
) -> dict[str, list[float]]:
    """Seconds per call of each zero-argument ``calls[k]``, run round-robin ``reps`` times.

    Every call's output is blocked on before the clock stops. The starting implementation
    rotates with the repetition so that none is always first after a pause.
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            jax.block_until_ready(calls[name]())
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            jax.block_until_ready(calls[name]())
            times[name].append(time.perf_counter() - start)
    return times


def _summary(samples: list[float]) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile in milliseconds."""
    ms = np.asarray(samples) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 25)), float(np.percentile(ms, 75))


def bench_size(size: tuple[int, int], cases: Sequence[Case], *, reps: int) -> list[dict]:
    """Time every case at one size, all interleaved, and return one row per case."""
    n, v = size
    inputs = _inputs(size)
    calls: dict[str, Callable[[], Any]] = {}
    scratch: dict[tuple[str, str], dict[str, float | None]] = {}
    for case in cases:
        args = inputs[case.group]
        fwd = _forward(case)
        calls[f"{case.group}/{case.impl}/fwd"] = lambda f=fwd, a=args: f(*a)
        scratch[case.group, case.impl] = {"fwd": _scratch_mib(fwd, args)}
        if case.has_grad:
            vag = _value_and_grad(case)
            calls[f"{case.group}/{case.impl}/vag"] = lambda f=vag, a=args: f(*a)
            scratch[case.group, case.impl]["vag"] = _scratch_mib(vag, args)
    times = time_round_robin(calls, reps=reps)

    elem_bytes = n * v * F32
    rows = []
    for case in cases:
        row: dict[str, Any] = {
            "group": case.group,
            "impl": case.impl,
            "size": f"{n}x{v}",
            "n": n,
            "v": v,
            "reps": reps,
        }
        for mode in ("fwd", "vag"):
            key = f"{case.group}/{case.impl}/{mode}"
            if key not in times:
                continue
            med, q25, q75 = _summary(times[key])
            moved = (case.reads + (case.writes if mode == "fwd" else 1)) * elem_bytes
            row[f"{mode}_ms"] = med
            row[f"{mode}_ms_q25"] = q25
            row[f"{mode}_ms_q75"] = q75
            row[f"{mode}_bytes"] = moved
            row[f"{mode}_gbps"] = moved / (med * 1e-3) / 1e9
            row[f"{mode}_scratch_mib"] = scratch[case.group, case.impl][mode]
        rows.append(row)

    pass_ms = next(r["fwd_ms"] for r in rows if r["impl"] == "read+write (x*c)")
    for group in {r["group"] for r in rows}:
        members = [r for r in rows if r["group"] == group]
        optax_rows = [r for r in members if r["impl"].startswith("optax")]
        for mode in ("fwd", "vag"):
            best = min((r[f"{mode}_ms"] for r in optax_rows if f"{mode}_ms" in r), default=None)
            for r in members:
                if f"{mode}_ms" not in r:
                    continue
                if best is not None:
                    r[f"{mode}_ratio_optax"] = r[f"{mode}_ms"] / best
                r[f"{mode}_x_pass"] = r[f"{mode}_ms"] / pass_ms
    return rows


def plain_losses(quick: bool, reps: int) -> list[dict]:
    """Case group: entjax vs optax vs jnp for CE, entropy and KL, with memory baselines."""
    rows = []
    for size in QUICK_SIZES if quick else FULL_SIZES:
        rows += bench_size(size, loss_cases(), reps=reps)
    return rows


def fused_losses(quick: bool, reps: int) -> list[dict]:
    """Fused linear + CE / entropy vs ``hidden @ weight`` + entjax (experiments.bench_fused)."""
    from experiments import bench_fused

    return bench_fused.run(quick, reps)


CASE_GROUPS: dict[str, Callable[[bool, int], list[dict]]] = {
    "plain": plain_losses,
    "fused": fused_losses,
}


# --------------------------------------------------------------------------------------------
# Reporting.

COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (header, key, format)
    ("group", "group", "{}"),
    ("impl", "impl", "{}"),
    ("size", "size", "{}"),
    ("fwd ms", "fwd_ms", "{:.2f}"),
    ("fwd q25-q75", "fwd_iqr", "{}"),
    ("vag ms", "vag_ms", "{:.2f}"),
    ("vag q25-q75", "vag_iqr", "{}"),
    ("fwd/optax", "fwd_ratio_optax", "{:.2f}"),
    ("vag/optax", "vag_ratio_optax", "{:.2f}"),
    ("fwd×pass", "fwd_x_pass", "{:.2f}"),
    ("vag×pass", "vag_x_pass", "{:.2f}"),
    ("fwd GB/s", "fwd_gbps", "{:.1f}"),
    ("vag GB/s", "vag_gbps", "{:.1f}"),
    ("scratch MiB fwd/vag", "scratch", "{}"),
    ("vag/naive", "vag_ratio_naive", "{:.2f}"),
    ("scratch/naive", "temp_ratio_naive", "{:.3f}"),
    ("peak RSS MiB", "rss_mib", "{:.0f}"),
)


def _cell(row: dict, key: str, fmt: str) -> str:
    if key.endswith("_iqr"):
        mode = key[:3]
        if f"{mode}_ms_q25" not in row:
            return "-"
        return f"{row[f'{mode}_ms_q25']:.2f}-{row[f'{mode}_ms_q75']:.2f}"
    if key == "scratch":
        parts = [row.get("fwd_scratch_mib"), row.get("vag_scratch_mib")]
        if all(p is None for p in parts):
            return "-"
        return "/".join("-" if p is None else f"{p:.1f}" for p in parts)
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table of ``rows`` (any dicts with some of the keys in :data:`COLUMNS`)."""
    cells = [[h for h, _, _ in COLUMNS]]
    cells += [[_cell(r, k, f) for _, k, f in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _environment() -> dict[str, Any]:
    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "cpu_count": os.cpu_count(),
        "x64": bool(jax.config.jax_enable_x64),
    }


def write_json(path: str, payload: dict) -> None:
    """Write ``payload`` as JSON atomically (a temporary file renamed into place)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small size, few reps (smoke test)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per case")
    parser.add_argument("--out", default="results/bench_losses.json", help="JSON output path")
    parser.add_argument(
        "--groups",
        default=",".join(CASE_GROUPS),
        help=f"comma-separated case groups to run, from {sorted(CASE_GROUPS)}",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    reps = args.reps if args.reps is not None else (QUICK_REPS if args.quick else DEFAULT_REPS)
    if reps < 1:
        parser.error("--reps must be >= 1")

    groups = [g for g in args.groups.split(",") if g]
    unknown = sorted(set(groups) - set(CASE_GROUPS))
    if unknown:
        parser.error(f"unknown --groups {unknown}; choose from {sorted(CASE_GROUPS)}")

    rows: list[dict] = []
    for name in groups:
        rows += CASE_GROUPS[name](args.quick, reps)
    payload = {
        "command": " ".join(["python -m experiments.bench_losses", *argv]),
        "quick": args.quick,
        "reps": reps,
        "warmup": WARMUP,
        "environment": _environment(),
        "rows": rows,
    }
    print(format_table(rows))
    write_json(args.out, payload)
    print(f"\nwrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
