"""Benchmark: one jitted, vmapped K-member train step vs K jitted single-model steps in a loop.

Both sides run the same per-member step (entjax objective, Adam, on-device batch gather, donated
buffers) on the same data; the loop side calls ``jax.jit(member_step)`` once per member, one after
another. A measurement is a block of ``--inner`` steps; the vmapped and the loop blocks are
interleaved round-robin in one process (:func:`experiments.benchmarks.common.time_interleaved`)
and repeated ``--reps`` times, so background load hits both sides alike; the spread is reported.

Usage::

    python -m experiments.benchmarks.bench_ensemble --reps 9 --out results/bench_ensemble.json
    python -m experiments.benchmarks.bench_ensemble --smoke --out /tmp/bench.json     # seconds
    python -m experiments.benchmarks.bench_ensemble --markdown      # the table for the README

Writes the JSON (every repeat, medians, ratios, settings, environment) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from experiments.benchmarks import common

MODULE = "experiments.benchmarks.bench_ensemble"
DEFAULTS = {"reps": 7, "inner": 20, "widths": (128, 512)}
SMOKE = {"reps": 2, "inner": 3, "widths": (32,)}


def build_parser() -> argparse.ArgumentParser:
    p = common.build_parser(MODULE, __doc__, default_out="results/bench_ensemble.json")
    p.add_argument("--repeats", dest="reps", type=common.positive_int, help=argparse.SUPPRESS)
    p.add_argument("--members", type=common.positive_int, default=8, help="K (default 8)")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument(
        "--widths",
        type=common.positive_ints,
        default=None,
        help=f"hidden widths, the first the experiment default (default {DEFAULTS['widths']})",
    )
    p.add_argument("--batch-size", type=common.positive_int, default=64, help="(default 64)")
    p.add_argument(
        "--inner", type=common.positive_int, default=None, help="steps per timed block (20)"
    )
    p.add_argument("--seed", type=int, default=0)
    return p


@dataclasses.dataclass
class Setup:
    """What both sides share: the stacked ensemble, objective, optimizer, data and indices."""

    ensemble: Any
    loss_fn: Callable[..., Any]
    tx: Any
    mesh: Any
    data: dict[str, Any]
    indices: np.ndarray
    step: Any


def _setup(*, model: str, width: int, members: int, batch_size: int, seed: int) -> Setup:
    import jax
    from flax import nnx

    from experiments.core import data as data_lib, training
    from experiments.core.models import build_model

    data = data_lib.load_digits_dataset(seed=0)
    mesh = training.make_mesh(members)

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return build_model(model, num_classes=data.num_classes, width=width, rngs=rngs)

    ensemble = training.init_ensemble(model_fn, members, seed=seed, mesh=mesh)
    n = len(data.y_train)
    return Setup(
        ensemble=ensemble,
        loss_fn=training.classification_objective(ensemble),
        tx=training.make_optimizer(1e-3, steps=10_000),
        mesh=mesh,
        data=jax.device_put(
            {"image": data.x_train, "label": data.y_train}, training.replicated(mesh)
        ),
        indices=data_lib.ensemble_batch_indices(
            seed, 0, num_members=members, n=n, batch_size=batch_size
        ),
        step=jax.device_put(np.asarray(0, np.int32)),
    )


def _vmapped(s: Setup) -> Callable[[int], Any]:
    """``run(steps)``: that many steps of all members in one call each; returns the outputs."""
    import jax

    from experiments.core import training

    train_step = training.make_train_step(s.loss_fn, s.tx, s.mesh)
    params = s.ensemble.params
    opt = training.init_opt_state(s.tx, params, s.mesh)
    indices = jax.device_put(s.indices, training.member_sharding(s.mesh))

    def run(steps: int) -> Any:
        nonlocal params, opt
        for _ in range(steps):
            params, opt, loss, _ = train_step(params, opt, s.data, indices, {}, s.step)
        return params, opt, loss

    return run


def _loop(s: Setup) -> Callable[[int], Any]:
    """``run(steps)``: that many steps of each member, one jitted single-member call each."""
    import jax

    from experiments.core import training

    member_step = jax.jit(training.make_member_step(s.loss_fn, s.tx), donate_argnums=(0, 1))
    members = range(s.ensemble.num_members)
    # Plain single-device copies of the parameters and the data (not arrays on the ensemble's
    # mesh): the step's outputs then have its inputs' types, so it compiles once, not again at
    # its second call.
    stacked = jax.tree.map(np.asarray, s.ensemble.params)
    params = [jax.tree.map(lambda a, m=m: jax.device_put(a[m]), stacked) for m in members]
    data = jax.tree.map(lambda a: jax.device_put(np.asarray(a)), s.data)
    opt = [s.tx.init(p) for p in params]
    indices = [jax.device_put(s.indices[m]) for m in members]

    def run(steps: int) -> Any:
        for _ in range(steps):
            for m in members:
                params[m], opt[m], loss, _ = member_step(
                    params[m], opt[m], data, indices[m], {}, s.step
                )
        return params, opt, loss

    return run


def bench_width(
    *, model: str, width: int, members: int, batch_size: int, reps: int, inner: int, seed: int
) -> dict[str, Any]:
    """Time the vmapped K-member step against K single-member steps at one width."""
    import jax

    s = _setup(model=model, width=width, members=members, batch_size=batch_size, seed=seed)
    runners = {"vmapped": _vmapped(s), "loop": _loop(s)}  # both built before either donates
    first = {name: common.time_call(functools.partial(r, 2)) for name, r in runners.items()}
    calls = {name: functools.partial(r, inner) for name, r in runners.items()}
    samples = common.time_interleaved(calls, reps=reps, warmup=0)  # warmed up by `first`
    vm = [t / inner for t in samples["vmapped"]]
    lp = [t / inner for t in samples["loop"]]
    ratios = [v / s for v, s in zip(vm, lp, strict=True)]
    vm_med, lp_med = common.summarize(vm)["median"], common.summarize(lp)["median"]
    ratio = common.summarize(ratios)
    leaves = jax.tree.leaves(s.ensemble.params)
    return {
        "model": model,
        "width": width,
        "members": members,
        "batch_size": batch_size,
        "params_per_member": sum(int(np.prod(a.shape[1:])) for a in leaves),
        "repeats": reps,
        "steps_per_repeat": inner,
        "vmapped_step_s": vm,
        "loop_of_single_steps_s": lp,
        "ratio_per_repeat": ratios,
        "vmapped_median_s": vm_med,
        "loop_median_s": lp_med,
        "ratio_of_medians": vm_med / lp_med,
        "ratio_median": ratio["median"],
        "ratio_min": ratio["min"],
        "ratio_max": ratio["max"],
        "first_calls_s": first,
    }


def _ms(key: str) -> Callable[[dict], float]:
    return lambda row: 1e3 * row[key]


COLUMNS: tuple[common.Column, ...] = (
    ("model", "model", "{}"),
    ("width", "width", "{}"),
    ("K", "members", "{}"),
    ("vmapped ms/step", _ms("vmapped_median_s"), "{:.3f}"),
    ("loop ms/step", _ms("loop_median_s"), "{:.3f}"),
    ("ratio (median)", "ratio_median", "{:.3f}"),
    ("min", "ratio_min", "{:.3f}"),
    ("max", "ratio_max", "{:.3f}"),
)


def _log(r: dict) -> None:
    print(
        f"{r['model']} width {r['width']:4d} K={r['members']}: "
        f"vmapped {1e3 * r['vmapped_median_s']:.3f} ms/step, "
        f"loop of {r['members']} single steps {1e3 * r['loop_median_s']:.3f} ms/step, "
        f"ratio {r['ratio_median']:.3f} (min {r['ratio_min']:.3f}, max {r['ratio_max']:.3f})",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> dict:
    args, run = common.start(build_parser(), argv)
    mode = SMOKE if args.quick else DEFAULTS
    settings = {
        "quick": args.quick,
        "model": args.model,
        "members": args.members,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "reps": args.reps or mode["reps"],
        "inner": args.inner or mode["inner"],
        "widths": args.widths or mode["widths"],
    }
    rows = []
    for width in settings["widths"]:
        keys = ("model", "members", "batch_size", "reps", "inner", "seed")
        rows.append(bench_width(width=width, **{k: settings[k] for k in keys}))
        _log(rows[-1])
    return run.finish(
        args.out,
        COLUMNS,
        markdown=args.markdown,
        settings=settings,
        rows=rows,
        benchmark="vmapped K-member train step vs K single-member jitted steps",
        goal="vmapped <= 0.5x loop at the default configuration (first width) on CPU",
        goal_met_at_default=rows[0]["ratio_median"] <= 0.5,
    )


if __name__ == "__main__":
    main()
