"""Benchmark: one jitted, vmapped K-member train step vs K jitted single-model steps in a loop.

Both sides run the same per-member step (entjax objective, Adam, on-device batch gather, donated
buffers) on the same data; the loop side calls ``jax.jit(member_step)`` once per member, one after
another. Measurements are interleaved in one process (vmapped block, loop block, alternating which
goes first) and repeated, so background load hits both sides alike; the spread is reported.

    python -m experiments.bench_ensemble --out runs/bench_ensemble
    python -m experiments.bench_ensemble --smoke --out /tmp/bench      # seconds

Writes ``bench.json`` (every repeat, medians, ratios, config, versions, devices) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments import data as data_lib
from experiments import reporting


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.bench_ensemble",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="runs/bench_ensemble")
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument(
        "--widths", default="128,512", help="hidden widths; the first is the experiment default"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7, help="interleaved measurement rounds")
    p.add_argument("--inner", type=int, default=20, help="vmapped steps per round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny: 2 repeats of 3 steps")
    return p


def bench_width(
    *, model: str, width: int, members: int, batch_size: int, repeats: int, inner: int, seed: int
) -> dict[str, Any]:
    """Time the vmapped K-member step against K single-member steps at one width."""
    import jax
    from flax import nnx

    from experiments import ensemble as ens_lib
    from experiments.models import build_model

    data = data_lib.load_digits_dataset(seed=0)
    mesh = ens_lib.make_mesh(members)

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return build_model(model, num_classes=data.num_classes, width=width, rngs=rngs)

    ens = ens_lib.init_ensemble(model_fn, members, seed=seed, mesh=mesh)
    loss_fn = ens_lib.classification_objective(ens)
    tx = ens_lib.make_optimizer(1e-3, steps=10_000)
    n = len(data.y_train)
    idx = data_lib.ensemble_batch_indices(seed, 0, num_members=members, n=n, batch_size=batch_size)
    dev_data = jax.device_put(
        {"image": data.x_train, "label": data.y_train}, ens_lib.replicated(mesh)
    )
    step0 = jax.device_put(np.asarray(0, np.int32))

    # vmapped: all members in one call
    vstep = ens_lib.make_train_step(loss_fn, tx, mesh)
    v_params = ens.params
    v_opt = ens_lib.init_opt_state(tx, v_params, mesh)
    v_idx = jax.device_put(idx, ens_lib.member_sharding(mesh))

    # loop: the same member step, jitted alone, called once per member
    sstep = jax.jit(ens_lib.make_member_step(loss_fn, tx), donate_argnums=(0, 1))
    s_params = [ens.member(m) for m in range(members)]
    s_params = [jax.tree.map(lambda a: a.copy(), p) for p in s_params]
    s_opt = [tx.init(p) for p in s_params]
    s_idx = [jax.device_put(idx[m]) for m in range(members)]

    def run_vmapped(steps: int) -> float:
        nonlocal v_params, v_opt
        t0 = time.perf_counter()
        for _ in range(steps):
            v_params, v_opt, loss, _ = vstep(v_params, v_opt, dev_data, v_idx, {}, step0)
        jax.block_until_ready((v_params, v_opt, loss))
        return (time.perf_counter() - t0) / steps

    def run_loop(steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            for m in range(members):
                s_params[m], s_opt[m], loss, _ = sstep(
                    s_params[m], s_opt[m], dev_data, s_idx[m], {}, step0
                )
        jax.block_until_ready((s_params, s_opt, loss))
        return (time.perf_counter() - t0) / steps

    t0 = time.perf_counter()
    run_vmapped(2)  # compile + warm up
    compile_v = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_loop(2)
    compile_s = time.perf_counter() - t0

    vm, lp = [], []
    for r in range(repeats):
        if r % 2 == 0:
            vm.append(run_vmapped(inner))
            lp.append(run_loop(inner))
        else:
            lp.append(run_loop(inner))
            vm.append(run_vmapped(inner))
    ratios = [v / s for v, s in zip(vm, lp, strict=True)]
    num_params = sum(int(np.prod(a.shape[1:])) for a in jax.tree.leaves(ens.params))
    return {
        "model": model,
        "width": width,
        "members": members,
        "batch_size": batch_size,
        "params_per_member": num_params,
        "repeats": repeats,
        "steps_per_repeat": inner,
        "vmapped_step_s": vm,
        "loop_of_single_steps_s": lp,
        "ratio_per_repeat": ratios,
        "vmapped_median_s": statistics.median(vm),
        "loop_median_s": statistics.median(lp),
        "ratio_of_medians": statistics.median(vm) / statistics.median(lp),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "first_calls_s": {"vmapped": compile_v, "loop": compile_s},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.repeats, args.inner, args.widths = 2, 3, "32"
    widths = [int(w) for w in args.widths.split(",") if w]
    started, t0 = reporting.utc_now(), time.perf_counter()
    rows = []
    for width in widths:
        rows.append(
            bench_width(
                model=args.model,
                width=width,
                members=args.members,
                batch_size=args.batch_size,
                repeats=args.repeats,
                inner=args.inner,
                seed=args.seed,
            )
        )
        r = rows[-1]
        print(
            f"{args.model} width {width:4d} K={args.members}: "
            f"vmapped {1e3 * r['vmapped_median_s']:.3f} ms/step, "
            f"loop of {args.members} single steps {1e3 * r['loop_median_s']:.3f} ms/step,"
            f" ratio {r['ratio_median']:.3f} (min {r['ratio_min']:.3f}, max {r['ratio_max']:.3f})",
            file=sys.stderr,
        )
    result = {
        "benchmark": "vmapped K-member train step vs K single-member jitted steps",
        "goal": "vmapped <= 0.5x loop at the default configuration (first width) on CPU",
        "goal_met_at_default": rows[0]["ratio_median"] <= 0.5,
        "results": rows,
        "versions": reporting.versions(),
        "devices": reporting.device_info(),
        "cpu_count": os.cpu_count(),
        reporting.TIMING_KEY: {
            "started_utc": started,
            "wall_seconds": time.perf_counter() - t0,
            "command": reporting.command_line(),
            "note": "timings are wall-clock on a possibly shared machine; see the spread",
        },
    }
    reporting.write_json(os.path.join(args.out, "bench.json"), result)
    table = reporting.markdown_table(
        ["model", "width", "K", "vmapped ms/step", "loop ms/step", "ratio (median)", "min", "max"],
        [
            [
                r["model"],
                str(r["width"]),
                str(r["members"]),
                1e3 * r["vmapped_median_s"],
                1e3 * r["loop_median_s"],
                r["ratio_median"],
                r["ratio_min"],
                r["ratio_max"],
            ]
            for r in rows
        ],
        digits=3,
    )
    reporting.write_text(os.path.join(args.out, "bench.md"), table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
