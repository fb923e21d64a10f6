"""Glue shared by the research experiments (confidence penalty, information bottleneck, ELBO,
entropy vs MSE): a common command line, training with periodic evaluation, and output writing.

Training itself is :func:`experiments.ensemble.train` (vmapped members, orbax checkpoints,
resume, progress bar). :func:`train_with_evals` only runs it in segments of ``eval_every`` steps
(a checkpoint at each segment end, resumed by the next segment) and evaluates the members between
segments, so every experiment gets learning curves; the curves are stored next to the
checkpoints, so ``--resume`` continues them too and a resumed run gives the same curves as an
uninterrupted one.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import entjax
from experiments import ensemble as ens
from experiments import reporting

CURVES_FILE = "curves.json"


# --------------------------------------------------------------------------- command line


def parser_from_config(
    config_cls: type, description: str, *, smoke_help: str = "tiny configuration for tests"
) -> argparse.ArgumentParser:
    """An argument parser with one ``--field`` per field of the dataclass ``config_cls``.

    Tuples become comma-separated lists, booleans ``--flag/--no-flag``. The common flags:
    ``--out DIR``, ``--resume``, ``--smoke`` and ``--no-progress``.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default=None, help="output directory (default runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--smoke", action="store_true", help=smoke_help)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--stop-after-step",
        type=int,
        default=None,
        help="simulate an interruption: stop after this step without writing results",
    )
    for field in dataclasses.fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else float
            p.add_argument(
                flag, type=_list_of(kind), default=None, help=f"comma-separated (default {default})"
            )
        else:
            p.add_argument(flag, type=type(default), default=None, help=f"(default {default})")
    return p


def _list_of(kind: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        return tuple(kind(v) for v in text.split(",") if v.strip())

    return parse


def config_from_args(args: argparse.Namespace, config_cls: type, smoke: Mapping[str, Any]) -> Any:
    """Defaults, then the ``--smoke`` overrides, then explicit command-line values."""
    values = dict(smoke) if args.smoke else {}
    for field in dataclasses.fields(config_cls):
        value = getattr(args, field.name)
        if value is not None:
            values[field.name] = value
    return config_cls(**values)


# --------------------------------------------------------------------------- training


def mesh_for(num_members: int) -> Any:
    """The ``"ensemble"`` mesh over all devices when ``num_members`` divides evenly, else one."""
    devices = jax.devices()
    if num_members % len(devices):
        devices = devices[:1]
    return ens.make_mesh(num_members, devices)


@dataclasses.dataclass
class Curves:
    """Evaluation results at steps ``steps``: ``metrics[name]`` is ``(len(steps), K, ...)``."""

    steps: list[int]
    metrics: dict[str, np.ndarray]

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "metrics": {k: v.tolist() for k, v in self.metrics.items()}}


def _latest_checkpoint(directory: str) -> int | None:
    if not os.path.isdir(directory):
        return None
    steps = [int(d) for d in os.listdir(directory) if d.isdigit()]
    return max(steps) if steps else None


def _load_curves(directory: str) -> dict[int, dict[str, np.ndarray]]:
    path = os.path.join(directory, CURVES_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        saved = json.load(f)
    return {
        int(s): {k: np.asarray(v[i], np.float64) for k, v in saved["metrics"].items()}
        for i, s in enumerate(saved["steps"])
    }


def _as_curves(points: Mapping[int, Mapping[str, np.ndarray]]) -> Curves:
    steps = sorted(points)
    names = list(points[steps[0]]) if steps else []
    return Curves(steps, {n: np.stack([np.asarray(points[s][n]) for s in steps]) for n in names})


def train_with_evals(
    *,
    step_fn: Callable[..., Any],
    params: Any,
    opt_state: Any,
    data: Mapping[str, np.ndarray],
    indices_fn: Callable[[int], np.ndarray],
    num_steps: int,
    mesh: Any,
    eval_fn: Callable[[Any], Mapping[str, np.ndarray]],
    eval_every: int,
    checkpoint_dir: str,
    member_inputs: Mapping[str, np.ndarray] | None = None,
    resume: bool = False,
    run_config: Mapping[str, Any] | None = None,
    progress: bool = True,
    description: str = "train",
    stop_after_step: int | None = None,
) -> tuple[ens.TrainResult, Curves]:
    """:func:`experiments.ensemble.train` with ``eval_fn(params)`` at step 0, every
    ``eval_every`` steps and at the end.

    ``eval_fn`` returns host arrays with a leading member axis. Checkpoints are written at every
    evaluation (into ``checkpoint_dir``, with the curves so far); ``resume`` continues both.
    ``stop_after_step`` simulates an interruption after that step (for tests).
    """
    eval_every = max(1, min(eval_every, num_steps))
    start = _latest_checkpoint(checkpoint_dir) if resume else None
    points = _load_curves(checkpoint_dir) if start is not None else {}
    points = {s: v for s, v in points.items() if start is not None and s <= start}
    start = start or 0
    boundaries = sorted({*range(eval_every, num_steps, eval_every), num_steps})
    boundaries = [b for b in boundaries if b > start] or [num_steps]
    if start and start not in points:
        # Interrupted between a checkpoint and its curve point: restore, evaluate, go on.
        boundaries.insert(0, start)
    if stop_after_step is not None:
        boundaries = sorted({b for b in boundaries if b <= stop_after_step} | {stop_after_step})

    def evaluate(p: Any) -> dict[str, np.ndarray]:
        # float64 on the host, as after a JSON round trip: resumed curves are identical.
        return {k: np.asarray(v, np.float64) for k, v in eval_fn(p).items()}

    if start == 0:
        points[0] = evaluate(params)

    result = None
    for i, stop in enumerate(boundaries):
        result = ens.train(
            step_fn=step_fn,
            params=params,
            opt_state=opt_state,
            data=data,
            indices_fn=indices_fn,
            num_steps=num_steps,
            mesh=mesh,
            member_inputs=member_inputs,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=eval_every,
            resume=resume or i > 0,
            run_config=run_config,
            stop_after_step=stop if stop < num_steps else None,
            progress=progress,
            description=description,
        )
        params, opt_state = result.params, result.opt_state
        if result.completed_steps not in points:
            points[result.completed_steps] = evaluate(params)
        reporting.write_json(
            os.path.join(checkpoint_dir, CURVES_FILE), _as_curves(points).to_json()
        )
    assert result is not None
    return result, _as_curves(points)


# --------------------------------------------------------------------------- metrics


@functools.partial(jax.jit, static_argnames=("num_bins",))
def _member_metrics(logits: jax.Array, labels: jax.Array, num_bins: int) -> dict[str, jax.Array]:
    def one(lg: jax.Array) -> dict[str, jax.Array]:
        return {
            "accuracy": jnp.mean(jnp.argmax(lg, axis=-1) == labels),
            "nll": jnp.mean(entjax.negative_log_likelihood(lg, labels)),
            "ece": entjax.expected_calibration_error(lg, labels, num_bins=num_bins),
            "mean_entropy": jnp.mean(entjax.entropy(lg)),
        }

    return jax.vmap(one)(logits)


def member_metrics(
    member_logits: np.ndarray, labels: np.ndarray, *, num_bins: int = 15
) -> dict[str, np.ndarray]:
    """Accuracy, mean NLL, ECE and mean predictive entropy (nats) of each member: ``(K,)`` each,
    for ``member_logits`` ``(K, n, C)`` and integer ``labels`` ``(n,)``; one compiled call."""
    out = _member_metrics(
        jnp.asarray(member_logits, jnp.float32), jnp.asarray(labels, jnp.int32), num_bins
    )
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


# --------------------------------------------------------------------------- outputs


def run_metadata(config: Any, *, smoke: bool, started: float) -> dict[str, Any]:
    """The provenance block every results.json carries (config, versions, devices, timing)."""
    return {
        "config": dataclasses.asdict(config),
        "smoke": smoke,
        "versions": reporting.versions(),
        "devices": reporting.device_info(),
        reporting.TIMING_KEY: {
            "finished_utc": reporting.utc_now(),
            "seconds": round(time.time() - started, 2),
            "command": reporting.command_line(),
        },
    }


def write_outputs(
    out_dir: str,
    results: Mapping[str, Any],
    report_md: str,
    figures: Mapping[str, Any],
) -> dict[str, str]:
    """Atomically write ``results.json``, ``report.md`` and one PNG per figure; returns paths."""
    paths = {"results": os.path.join(out_dir, "results.json")}
    reporting.write_json(paths["results"], results)
    paths["report"] = os.path.join(out_dir, "report.md")
    reporting.write_text(paths["report"], report_md.rstrip() + "\n")
    for name, fig in figures.items():
        paths[name] = os.path.join(out_dir, f"{name}.png")
        reporting.save_figure(fig, paths[name])
    return paths


def member_grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """The Cartesian product of named axes as a list of member descriptions, first axis slowest.

    >>> member_grid(lam=(0.0, 1.0), seed=(0, 1))[1:3]
    [{'lam': 0.0, 'seed': 1}, {'lam': 1.0, 'seed': 0}]
    """
    rows: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        rows = [{**row, name: v} for row in rows for v in values]
    return rows


def cli_main(
    argv: Sequence[str] | None,
    *,
    doc: str,
    name: str,
    config_cls: type,
    smoke: Mapping[str, Any],
    run: Callable[..., dict[str, Any] | None],
    make_report: Callable[[dict[str, Any], Any], str],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    run_kwargs: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The shared command line of the research experiments: parse, run, print the report.

    ``run(config, out_dir, *, resume, progress, smoke, stop_after_step, **run_kwargs(args))``
    returns the results, or ``None`` when it stopped early at ``--stop-after-step``.
    """
    parser = parser_from_config(config_cls, doc.splitlines()[0])
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args, config_cls, smoke)
    out = args.out or f"runs/{name}"
    results = run(
        config,
        out,
        resume=args.resume,
        progress=not args.no_progress,
        smoke=args.smoke,
        stop_after_step=args.stop_after_step,
        **(run_kwargs(args) if run_kwargs is not None else {}),
    )
    if results is None:
        print(f"stopped after step {args.stop_after_step}; continue with --resume", file=sys.stderr)
        return None
    print(make_report(results, config))
    print(f"\nwrote {out}/results.json, report.md and PNGs", file=sys.stderr)
    return results
