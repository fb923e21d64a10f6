"""Benchmark entjax's losses against optax and plain ``jax.numpy`` on materialised logits.

For each size ``(N, V)`` of float32 logits it times, jitted, in one process:

* the forward pass (per-example loss, then its mean) and ``jax.value_and_grad`` of the mean,
* for entjax's cross-entropy with integer labels, with soft labels and with label smoothing,
  its entropy and its KL divergence, optax's closest functions and a plain ``jnp`` version,
* two memory-bound baselines over the same logits: one read (``jnp.sum``) and one read plus one
  write into a fresh buffer (``x * 1.0000001``), the floor any loss or gradient pass has to pay.

Every call of a size is interleaved round-robin in one process
(:func:`experiments.benchmarks.common.time_interleaved`); a sample averages ``inner``
back-to-back calls (100 at 128 x 10, 1 from 2^18 logits up: microsecond calls are otherwise
dominated by thread wake-ups), and both wall and process CPU time are recorded. Each row reports
its ratio to the fastest optax variant of its group as the median of the per-round ratios (so
load shared by the two calls cancels) with their quartiles, the time as a multiple of the
read+write pass, the achieved bandwidth (the bytes the operation must at least move: inputs
read once, the gradient written once, divided by the time), the XLA scratch memory of the
compiled function, and what its optimized HLO executes: kernels, ``[N, V]`` arrays written
and ``exp`` per logit (fusions inside a ``while`` body, the rarely taken fallbacks, excluded).

Usage::

    python -m experiments.benchmarks.bench_losses --out results/bench_losses.json --markdown
    python -m experiments.benchmarks.bench_losses --quick      # small sizes, few reps
    python -m experiments.benchmarks.bench_losses --sizes 4096x32000 --reps 7
    python -m experiments.benchmarks.bench_losses --from-json results/bench_losses.json --markdown

``--markdown`` prints the README table (entjax / optax per size, forward and
``value_and_grad``) followed by the command and the JSON file it came from; ``--from-json``
prints it again from a finished run without timing anything.

CPU timings are noisy, more so on a machine shared with other work: read the quartiles, and
the load average recorded in the JSON, before trusting a difference of a few percent.

Case groups are functions ``(quick, reps) -> list[dict]``; :data:`CASE_GROUPS` names them
(``fused`` is :func:`experiments.benchmarks.bench_fused.run`) and :data:`COLUMNS` prints any of
their rows (missing cells print as ``-``), so the groups share one table and one JSON file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

import entjax
from experiments.benchmarks import common

MODULE = "experiments.benchmarks.bench_losses"
FULL_SIZES: tuple[tuple[int, int], ...] = (
    (128, 10),
    (1024, 10),
    (1024, 1000),
    (512, 4096),
    (4096, 32000),
)
QUICK_SIZES: tuple[tuple[int, int], ...] = ((128, 10), (512, 1000))
QUICK_REPS = 3
LABEL_SMOOTHING = 0.1
F32 = 4  # bytes per float32 element
MODES = ("fwd", "vag")


def default_reps(n: int, v: int) -> int:
    """Timed rounds at size ``(n, v)``: 200, or 7 from 2^26 logits (a call takes ~1 s)."""
    return 7 if n * v >= 1 << 26 else 200


def inner_calls(n: int, v: int) -> int:
    """Back-to-back calls per sample: enough for a sample of ~0.3 ms or more, at most 100."""
    return max(1, min(100, (1 << 18) // (n * v)))


# --------------------------------------------------------------------------------------------
# Cases.


@dataclasses.dataclass(frozen=True)
class Case:
    """One implementation of one quantity.

    ``loss(x, *consts)`` returns per-example values; the forward pass times its mean and the
    backward pass ``value_and_grad`` of that mean with respect to ``x``. ``reads`` is how many
    ``[N, V]`` float32 arrays the loss must read (1 for CE and entropy, 2 for KL and soft
    labels). A case without a gradient (a baseline) sets ``has_grad=False`` and ``writes`` to
    the arrays it writes.
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


def _optax_smoothed(x: jax.Array, y: jax.Array) -> jax.Array:
    targets = optax.smooth_labels(jax.nn.one_hot(y, x.shape[-1], dtype=x.dtype), LABEL_SMOOTHING)
    return optax.losses.softmax_cross_entropy(x, targets)


def loss_cases() -> list[Case]:
    """The plain-loss cases: CE (integer, soft and smoothed labels), entropy and KL (gradient
    with respect to q)."""
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
        Case("ce_soft", "entjax", lambda x, t: entjax.softmax_cross_entropy(x, t), reads=2),
        Case("ce_soft", "optax", optax.losses.softmax_cross_entropy, reads=2),
        Case(
            "ce_smooth",
            "entjax",
            lambda x, y: entjax.softmax_cross_entropy_with_integer_labels(
                x, y, label_smoothing=LABEL_SMOOTHING
            ),
        ),
        Case("ce_smooth", "optax smooth_labels + softmax_ce", _optax_smoothed),
        Case("entropy", "entjax", lambda x: entjax.entropy(x)),
        Case(
            "entropy",
            "optax safe_softmax_ce(x, softmax(x))",
            lambda x: optax.losses.safe_softmax_cross_entropy(x, jax.nn.softmax(x)),
        ),
        Case("entropy", "jnp", _jnp_entropy),
        # KL(p || q) with p the fixed target and q the differentiated prediction. optax's
        # argument order is the reverse of entjax's: optax.kl_divergence(log_q, p).
        Case("kl", "entjax", lambda q, p: entjax.categorical_kl(p, q), reads=2),
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
    soft = jax.nn.softmax(p)
    return {
        "ce_int": (x, y),
        "ce_soft": (x, soft),
        "ce_smooth": (x, y),
        "entropy": (x,),
        "kl": (x, p),
        "baseline": (x,),
    }


# --------------------------------------------------------------------------------------------
# Compilation and what the compiled program executes.


def _forward(case: Case) -> Callable[..., jax.Array]:
    if not case.reduce_mean:
        return jax.jit(case.loss)
    return jax.jit(lambda *a: jnp.mean(case.loss(*a)))


def _value_and_grad(case: Case) -> Callable[..., Any]:
    return jax.jit(jax.value_and_grad(lambda *a: jnp.mean(case.loss(*a))))


_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%(\S+) = (\S+) (\w[\w-]*)\(.*?calls=%([\w.-]+)", re.M)


def hlo_profile(hlo_text: str, size: tuple[int, int]) -> dict[str, int]:
    """What the entry computation of an optimized HLO module executes, per call.

    ``kernels``: fusions (and custom calls) launched by the entry computation; ``big_writes``:
    those whose result is an ``[N, V]`` array; ``exp_per_logit``: ``exponential`` ops on
    ``[N, V]`` values inside them. A ``while`` loop counts as one kernel and its body is not
    counted: in entjax it is the fallback that runs only when a fast path's check fails.
    """
    computations = _computations(hlo_text)
    entry = next((body for name, body in computations.items() if name.startswith("ENTRY ")), "")
    shape = f"[{size[0]},{size[1]}]"
    kernels = big = exps = 0
    for line in entry.splitlines():
        m = _INSTRUCTION.match(line)
        if m is None:
            if re.search(r"= \S+ while\(", line):
                kernels += 1
            continue
        kernels += 1
        _, out_shape, _, called = m.groups()
        big += shape in out_shape
        body = computations.get(called, "")
        exps += sum(shape in op for op in re.findall(r"= (\S+) exponential\(", body))
    return {"kernels": kernels, "big_writes": int(big), "exp_per_logit": exps}


def _computations(hlo_text: str) -> dict[str, str]:
    """The computations of an HLO module's text, by name (the entry one as ``ENTRY <name>``)."""
    out: dict[str, str] = {}
    for block in re.split(r"\n(?=%|ENTRY )", hlo_text):
        header = block.split(" ", 2)
        if block.startswith("ENTRY "):
            out["ENTRY " + header[1]] = block
        elif block.startswith("%"):
            out[header[0][1:]] = block
    return out


def _compiled_facts(fn: Callable[..., Any], args, size) -> dict[str, Any]:
    try:
        compiled = fn.lower(*args).compile()  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - lowering is backend-dependent
        return {"scratch_mib": None}
    facts: dict[str, Any] = {"scratch_mib": None}
    # Memory analysis and the HLO text are backend-dependent: report them when available.
    with contextlib.suppress(Exception):
        facts["scratch_mib"] = compiled.memory_analysis().temp_size_in_bytes / 2**20
    with contextlib.suppress(Exception):
        facts.update(hlo_profile(compiled.as_text(), size))
    return facts


def _key(case: Case, mode: str) -> str:
    return f"{case.group}/{case.impl}/{mode}"


def _compile(
    cases: Sequence[Case], inputs: Mapping[str, tuple[jax.Array, ...]], size: tuple[int, int]
) -> tuple[dict[str, Callable[[], Any]], dict[str, dict[str, Any]]]:
    """Zero-argument calls and compiled facts (scratch, HLO profile) of every case and pass."""
    calls: dict[str, Callable[[], Any]] = {}
    facts: dict[str, dict[str, Any]] = {}
    for case in cases:
        args = inputs[case.group]
        passes = {"fwd": _forward(case)}
        if case.has_grad:
            passes["vag"] = _value_and_grad(case)
        for mode, fn in passes.items():
            calls[_key(case, mode)] = lambda f=fn, a=args: f(*a)
            facts[_key(case, mode)] = _compiled_facts(fn, args, size)
    return calls, facts


# --------------------------------------------------------------------------------------------
# Timing and rows.


def _row(
    case: Case,
    size: tuple[int, int],
    times: Mapping[str, list[float]],
    cpu: Mapping[str, list[float]],
    facts: Mapping[str, dict[str, Any]],
    reps: int,
    inner: int,
) -> dict[str, Any]:
    n, v = size
    row: dict[str, Any] = {
        "group": case.group,
        "impl": case.impl,
        "size": f"{n}x{v}",
        "n": n,
        "v": v,
        "reps": reps,
        "inner": inner,
    }
    for mode in MODES:
        key = _key(case, mode)
        if key not in times:
            continue
        stats = common.summarize(times[key], scale=1e3)
        moved = (case.reads + (case.writes if mode == "fwd" else 1)) * n * v * F32
        row[f"{mode}_ms"] = stats["median"]
        row[f"{mode}_ms_q25"] = stats["q25"]
        row[f"{mode}_ms_q75"] = stats["q75"]
        row[f"{mode}_cpu_ms"] = common.summarize(cpu[key], scale=1e3)["median"]
        row[f"{mode}_samples_s"] = times[key]
        row[f"{mode}_cpu_samples_s"] = cpu[key]
        row[f"{mode}_bytes"] = moved
        row[f"{mode}_gbps"] = moved / (stats["median"] * 1e-3) / 1e9
        fact = facts[key]
        row[f"{mode}_scratch_mib"] = fact.get("scratch_mib")
        for name in ("kernels", "big_writes", "exp_per_logit"):
            if name in fact:
                row[f"{mode}_{name}"] = fact[name]
    return row


def _add_ratios(rows: Sequence[dict[str, Any]]) -> None:
    """Each time as a ratio to its group's fastest optax variant and to the read+write pass.

    The ratio to optax is the median (and quartiles) of the per-round ratios of the two
    interleaved samples, for wall and for CPU time.
    """
    pass_ms = next(r["fwd_ms"] for r in rows if r["impl"] == "read+write (x*c)")
    for group in {r["group"] for r in rows}:
        members = [r for r in rows if r["group"] == group]
        optax_rows = [r for r in members if r["impl"].startswith("optax")]
        for mode in MODES:
            timed_optax = [r for r in optax_rows if f"{mode}_ms" in r]
            best = min(timed_optax, key=lambda r: r[f"{mode}_ms"], default=None)
            for r in members:
                if f"{mode}_ms" not in r:
                    continue
                r[f"{mode}_x_pass"] = r[f"{mode}_ms"] / pass_ms
                if best is None:
                    continue
                wall = common.paired_ratios(r[f"{mode}_samples_s"], best[f"{mode}_samples_s"])
                cpu = common.paired_ratios(
                    r[f"{mode}_cpu_samples_s"], best[f"{mode}_cpu_samples_s"]
                )
                r[f"{mode}_ratio_optax"] = wall["median"]
                r[f"{mode}_ratio_optax_q25"] = wall["q25"]
                r[f"{mode}_ratio_optax_q75"] = wall["q75"]
                r[f"{mode}_ratio_optax_cpu"] = cpu["median"]
                r[f"{mode}_optax_ref"] = best["impl"]


def bench_size(size: tuple[int, int], cases: Sequence[Case], *, reps: int | None) -> list[dict]:
    """Time every case at one size, all interleaved, and return one row per case."""
    reps = reps or default_reps(*size)
    inner = inner_calls(*size)
    calls, facts = _compile(cases, _inputs(size), size)
    cpu: dict[str, list[float]] = {}
    times = common.time_interleaved(calls, reps=reps, inner=inner, cpu_samples=cpu)
    rows = [_row(case, size, times, cpu, facts, reps, inner) for case in cases]
    _add_ratios(rows)
    print(f"timed {size[0]}x{size[1]}: {reps} rounds x {inner} calls", file=sys.stderr)
    return rows


def plain_losses(
    quick: bool, reps: int | None, sizes: Sequence[tuple[int, int]] | None = None
) -> list[dict]:
    """Case group: entjax vs optax vs jnp for the losses, with memory baselines."""
    if sizes is None:
        sizes = QUICK_SIZES if quick else FULL_SIZES
    if quick and reps is None:
        reps = QUICK_REPS
    rows = []
    for size in sizes:
        rows += bench_size(size, loss_cases(), reps=reps)
    return rows


def fused_losses(
    quick: bool, reps: int | None, sizes: Sequence[tuple[int, int]] | None = None
) -> list[dict]:
    """Fused linear + CE / entropy vs ``hidden @ weight`` + entjax (``bench_fused``)."""
    from experiments.benchmarks import bench_fused

    return bench_fused.run(quick, reps)


CASE_GROUPS: dict[str, Callable[..., list[dict]]] = {
    "plain": plain_losses,
    "fused": fused_losses,
}


# --------------------------------------------------------------------------------------------
# Reporting.


def _iqr(mode: str) -> Callable[[Mapping[str, Any]], str | None]:
    def cell(row: Mapping[str, Any]) -> str | None:
        if f"{mode}_ms_q25" not in row:
            return None
        return f"{row[f'{mode}_ms_q25']:.3g}-{row[f'{mode}_ms_q75']:.3g}"

    return cell


def _scratch(row: Mapping[str, Any]) -> str | None:
    parts = [row.get("fwd_scratch_mib"), row.get("vag_scratch_mib")]
    if all(p is None for p in parts):
        return None
    return "/".join("-" if p is None else f"{p:.1f}" for p in parts)


def _hlo(row: Mapping[str, Any]) -> str | None:
    keys = ("kernels", "big_writes", "exp_per_logit")
    parts = [[row.get(f"{mode}_{k}") for k in keys] for mode in MODES]
    if all(v is None for part in parts for v in part):
        return None
    return " / ".join(",".join("-" if v is None else str(v) for v in part) for part in parts)


COLUMNS: tuple[common.Column, ...] = (
    # (header, key or function of the row, format)
    ("group", "group", "{}"),
    ("impl", "impl", "{}"),
    ("size", "size", "{}"),
    ("fwd ms", "fwd_ms", "{:.3g}"),
    ("fwd q25-q75", _iqr("fwd"), "{}"),
    ("vag ms", "vag_ms", "{:.3g}"),
    ("vag q25-q75", _iqr("vag"), "{}"),
    ("fwd/optax", "fwd_ratio_optax", "{:.2f}"),
    ("vag/optax", "vag_ratio_optax", "{:.2f}"),
    ("fwd/optax cpu", "fwd_ratio_optax_cpu", "{:.2f}"),
    ("vag/optax cpu", "vag_ratio_optax_cpu", "{:.2f}"),
    ("fwd×pass", "fwd_x_pass", "{:.2f}"),
    ("vag×pass", "vag_x_pass", "{:.2f}"),
    ("fwd GB/s", "fwd_gbps", "{:.1f}"),
    ("vag GB/s", "vag_gbps", "{:.1f}"),
    ("scratch MiB fwd/vag", _scratch, "{}"),
    ("kernels,[N,V] writes,exp fwd / vag", _hlo, "{}"),
    ("vag/naive", "vag_ratio_naive", "{:.2f}"),
    ("scratch/naive", "temp_ratio_naive", "{:.3f}"),
    ("peak RSS MiB", "rss_mib", "{:.0f}"),
)

SUMMARY_GROUPS = (
    ("ce_int", "integer-label CE"),
    ("ce_soft", "soft-label CE"),
    ("ce_smooth", f"CE, label smoothing {LABEL_SMOOTHING}"),
    ("kl", "KL(p‖q)"),
    ("entropy", "entropy"),
)


def format_table(rows: Sequence[Mapping[str, Any]], *, markdown: bool = False) -> str:
    """The table of ``rows`` from any case group (see :data:`COLUMNS`)."""
    return common.format_table(rows, COLUMNS, markdown=markdown)


def summary_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The README table: entjax / fastest optax per size, forward and ``value_and_grad``.

    Each cell is the median of the per-round ratios (wall time) and its quartiles.
    """
    sizes = sorted({(r["n"], r["v"]) for r in rows if "n" in r}, key=lambda s: s[0] * s[1])
    headers = ["entjax / optax", *(f"{n} × {v}" for n, v in sizes)]
    lines = []
    for group, label in SUMMARY_GROUPS:
        mine = {(r["n"], r["v"]): r for r in rows if r["group"] == group and r["impl"] == "entjax"}
        if not mine:
            continue
        for mode, name in (("fwd", "forward"), ("vag", "value_and_grad")):
            cells = [f"{label}, {name}"]
            for size in sizes:
                r = mine.get(size)
                if r is None or f"{mode}_ratio_optax" not in r:
                    cells.append("-")
                    continue
                cells.append(
                    f"{r[f'{mode}_ratio_optax']:.2f} "
                    f"({r[f'{mode}_ratio_optax_q25']:.2f}–{r[f'{mode}_ratio_optax_q75']:.2f})"
                )
            lines.append(cells)
    return common.format_table(
        [dict(zip(headers, cells, strict=True)) for cells in lines],
        [(h, h, "{}") for h in headers],
        markdown=True,
    )


def _print_summary(payload: Mapping[str, Any], out: str) -> None:
    """The README tables of a run: the summary of the plain losses, then any other rows (the
    fused group) in full, then the command and the JSON file they came from."""
    plain = [r for r in payload["rows"] if r["group"] in dict(SUMMARY_GROUPS)]
    other = [r for r in payload["rows"] if r["group"] not in dict(SUMMARY_GROUPS)]
    other = [r for r in other if r["group"] != "baseline"]
    if plain:
        print(summary_markdown(plain))
    if other:
        print(("\n" if plain else "") + format_table(other, markdown=True))
    env = payload.get("environment", {})
    load = env.get("load_average")
    load_text = "" if load is None else f", load average {load[0]:.2f} at the end"
    print(f"\nCommand: `{payload['command']}`; JSON: `{out}`{load_text}.")


def main(argv: Sequence[str] | None = None) -> dict:
    parser = common.build_parser(MODULE, __doc__, default_out="results/bench_losses.json")
    parser.add_argument(
        "--groups",
        type=common.choices_list(tuple(CASE_GROUPS)),
        default=("plain",),
        help=f"comma-separated case groups to run (default plain; choose from "
        f"{','.join(CASE_GROUPS)})",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="comma-separated NxV sizes of the plain group (default: the mode's)",
    )
    parser.add_argument(
        "--from-json",
        default=None,
        help="print the tables of a finished run's JSON instead of timing anything",
    )
    args, run = common.start(parser, argv)
    if args.from_json:
        with open(args.from_json) as f:
            payload = json.load(f)
        if args.markdown:
            _print_summary(payload, args.from_json)
        else:
            print(format_table(payload["rows"]))
        return payload
    reps = args.reps
    rows: list[dict] = []
    for name in args.groups:
        rows += CASE_GROUPS[name](args.quick, reps, args.sizes)
    settings = {
        "quick": args.quick,
        "reps": reps if reps else ("default_reps(n, v)" if not args.quick else QUICK_REPS),
        "inner": "inner_calls(n, v)",
        "warmup": common.WARMUP,
        "groups": args.groups,
        "sizes": [list(s) for s in (args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES))],
        "label_smoothing": LABEL_SMOOTHING,
    }
    if not args.markdown:
        return run.finish(args.out, COLUMNS, markdown=False, settings=settings, rows=rows)
    payload = outputs_payload(run, args.out, settings, rows)
    _print_summary(payload, args.out)
    return payload


def outputs_payload(run: common.Run, out: str, settings, rows) -> dict:
    """Write the JSON as :meth:`common.Run.finish` does, without printing the full table."""
    from experiments.core import outputs

    payload = outputs.to_jsonable(run.payload(settings=settings, rows=rows))
    outputs.write_json(out, payload)
    print(f"wrote {out}", file=sys.stderr)
    return payload


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for part in text.split(","):
        dims = part.lower().split("x")
        if len(dims) != 2:
            raise argparse.ArgumentTypeError(f"expected NxV sizes, got {part!r}")
        out.append((common.positive_int(dims[0]), common.positive_int(dims[1])))
    return tuple(out)


if __name__ == "__main__":
    main()
