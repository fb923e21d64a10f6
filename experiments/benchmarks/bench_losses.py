"""Benchmark entjax's losses against optax and plain ``jax.numpy`` on materialised logits.

For each size ``(N, V)`` of float32 logits it times, jitted, in one process:

* the forward pass (per-example loss, then its mean) and ``jax.value_and_grad`` of the mean,
* for entjax's integer-label cross-entropy, entropy and KL divergence, optax's closest functions
  and a plain ``jnp`` version,
* two memory-bound baselines over the same logits: one read (``jnp.sum``) and one read plus one
  write into a fresh buffer (``x * 1.0000001``), the floor any loss or gradient pass has to pay.

Timing is the median of ``--reps`` repetitions after warm-up, every call of a size interleaved
round-robin (:func:`experiments.benchmarks.common.time_interleaved`). Each row reports the ratio
to the fastest optax variant of its group, the time as a multiple of the read+write pass, the
achieved bandwidth (the bytes the operation must at least move: inputs read once, the gradient
written once, divided by the time) and the XLA scratch memory of the compiled function.

Usage::

    python -m experiments.benchmarks.bench_losses              # (512, 1000) and (4096, 32000)
    python -m experiments.benchmarks.bench_losses --quick      # small size, few reps
    python -m experiments.benchmarks.bench_losses --reps 5 --out results/bench_losses.json
    python -m experiments.benchmarks.bench_losses --groups plain --markdown

CPU timings are noisy, more so on a machine shared with other work: the table reports the spread
(25th-75th percentile) beside each median; repeat the run before trusting a difference of a few
percent.

Case groups are functions ``(quick, reps) -> list[dict]``; :data:`CASE_GROUPS` names them
(``fused`` is :func:`experiments.benchmarks.bench_fused.run`) and :data:`COLUMNS` prints any of
their rows (missing cells print as ``-``), so the groups share one table and one JSON file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

import entjax
from experiments.benchmarks import common

MODULE = "experiments.benchmarks.bench_losses"
FULL_SIZES: tuple[tuple[int, int], ...] = ((512, 1000), (4096, 32000))
QUICK_SIZES: tuple[tuple[int, int], ...] = ((512, 1000),)
DEFAULT_REPS = 15
QUICK_REPS = 3
F32 = 4  # bytes per float32 element
MODES = ("fwd", "vag")


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


def _key(case: Case, mode: str) -> str:
    return f"{case.group}/{case.impl}/{mode}"


def _compile(
    cases: Sequence[Case], inputs: Mapping[str, tuple[jax.Array, ...]]
) -> tuple[dict[str, Callable[[], Any]], dict[str, float | None]]:
    """Zero-argument calls and XLA scratch (MiB) of every case's forward and gradient pass."""
    calls: dict[str, Callable[[], Any]] = {}
    scratch: dict[str, float | None] = {}
    for case in cases:
        args = inputs[case.group]
        passes = {"fwd": _forward(case)}
        if case.has_grad:
            passes["vag"] = _value_and_grad(case)
        for mode, fn in passes.items():
            calls[_key(case, mode)] = lambda f=fn, a=args: f(*a)
            scratch[_key(case, mode)] = _scratch_mib(fn, args)
    return calls, scratch


def _row(
    case: Case,
    size: tuple[int, int],
    times: Mapping[str, list[float]],
    scratch: Mapping[str, float | None],
    reps: int,
) -> dict[str, Any]:
    n, v = size
    row: dict[str, Any] = {
        "group": case.group,
        "impl": case.impl,
        "size": f"{n}x{v}",
        "n": n,
        "v": v,
        "reps": reps,
    }
    for mode in MODES:
        if _key(case, mode) not in times:
            continue
        stats = common.summarize(times[_key(case, mode)], scale=1e3)
        moved = (case.reads + (case.writes if mode == "fwd" else 1)) * n * v * F32
        row[f"{mode}_ms"] = stats["median"]
        row[f"{mode}_ms_q25"] = stats["q25"]
        row[f"{mode}_ms_q75"] = stats["q75"]
        row[f"{mode}_bytes"] = moved
        row[f"{mode}_gbps"] = moved / (stats["median"] * 1e-3) / 1e9
        row[f"{mode}_scratch_mib"] = scratch[_key(case, mode)]
    return row


def _add_ratios(rows: Sequence[dict[str, Any]]) -> None:
    """Each time as a ratio to its group's fastest optax variant and to the read+write pass."""
    pass_ms = next(r["fwd_ms"] for r in rows if r["impl"] == "read+write (x*c)")
    for group in {r["group"] for r in rows}:
        members = [r for r in rows if r["group"] == group]
        optax_rows = [r for r in members if r["impl"].startswith("optax")]
        for mode in MODES:
            best = min((r[f"{mode}_ms"] for r in optax_rows if f"{mode}_ms" in r), default=None)
            for r in members:
                if f"{mode}_ms" not in r:
                    continue
                if best is not None:
                    r[f"{mode}_ratio_optax"] = r[f"{mode}_ms"] / best
                r[f"{mode}_x_pass"] = r[f"{mode}_ms"] / pass_ms


def bench_size(size: tuple[int, int], cases: Sequence[Case], *, reps: int) -> list[dict]:
    """Time every case at one size, all interleaved, and return one row per case."""
    calls, scratch = _compile(cases, _inputs(size))
    times = common.time_interleaved(calls, reps=reps)
    rows = [_row(case, size, times, scratch, reps) for case in cases]
    _add_ratios(rows)
    return rows


def plain_losses(quick: bool, reps: int) -> list[dict]:
    """Case group: entjax vs optax vs jnp for CE, entropy and KL, with memory baselines."""
    rows = []
    for size in QUICK_SIZES if quick else FULL_SIZES:
        rows += bench_size(size, loss_cases(), reps=reps)
    return rows


def fused_losses(quick: bool, reps: int) -> list[dict]:
    """Fused linear + CE / entropy vs ``hidden @ weight`` + entjax (``bench_fused``)."""
    from experiments.benchmarks import bench_fused

    return bench_fused.run(quick, reps)


CASE_GROUPS: dict[str, Callable[[bool, int], list[dict]]] = {
    "plain": plain_losses,
    "fused": fused_losses,
}


# --------------------------------------------------------------------------------------------
# Reporting.


def _iqr(mode: str) -> Callable[[Mapping[str, Any]], str | None]:
    def cell(row: Mapping[str, Any]) -> str | None:
        if f"{mode}_ms_q25" not in row:
            return None
        return f"{row[f'{mode}_ms_q25']:.2f}-{row[f'{mode}_ms_q75']:.2f}"

    return cell


def _scratch(row: Mapping[str, Any]) -> str | None:
    parts = [row.get("fwd_scratch_mib"), row.get("vag_scratch_mib")]
    if all(p is None for p in parts):
        return None
    return "/".join("-" if p is None else f"{p:.1f}" for p in parts)


COLUMNS: tuple[common.Column, ...] = (
    # (header, key or function of the row, format)
    ("group", "group", "{}"),
    ("impl", "impl", "{}"),
    ("size", "size", "{}"),
    ("fwd ms", "fwd_ms", "{:.2f}"),
    ("fwd q25-q75", _iqr("fwd"), "{}"),
    ("vag ms", "vag_ms", "{:.2f}"),
    ("vag q25-q75", _iqr("vag"), "{}"),
    ("fwd/optax", "fwd_ratio_optax", "{:.2f}"),
    ("vag/optax", "vag_ratio_optax", "{:.2f}"),
    ("fwd×pass", "fwd_x_pass", "{:.2f}"),
    ("vag×pass", "vag_x_pass", "{:.2f}"),
    ("fwd GB/s", "fwd_gbps", "{:.1f}"),
    ("vag GB/s", "vag_gbps", "{:.1f}"),
    ("scratch MiB fwd/vag", _scratch, "{}"),
    ("vag/naive", "vag_ratio_naive", "{:.2f}"),
    ("scratch/naive", "temp_ratio_naive", "{:.3f}"),
    ("peak RSS MiB", "rss_mib", "{:.0f}"),
)


def format_table(rows: Sequence[Mapping[str, Any]], *, markdown: bool = False) -> str:
    """The table of ``rows`` from any case group (see :data:`COLUMNS`)."""
    return common.format_table(rows, COLUMNS, markdown=markdown)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = common.build_parser(MODULE, __doc__, default_out="results/bench_losses.json")
    parser.add_argument(
        "--groups",
        type=common.choices_list(tuple(CASE_GROUPS)),
        default=tuple(CASE_GROUPS),
        help=f"comma-separated case groups to run (default {','.join(CASE_GROUPS)})",
    )
    args, run = common.start(parser, argv)
    reps = args.reps or (QUICK_REPS if args.quick else DEFAULT_REPS)
    rows: list[dict] = []
    for name in args.groups:
        rows += CASE_GROUPS[name](args.quick, reps)
    settings = {"quick": args.quick, "reps": reps, "warmup": common.WARMUP, "groups": args.groups}
    return run.finish(args.out, COLUMNS, markdown=args.markdown, settings=settings, rows=rows)


if __name__ == "__main__":
    main()
