"""The one runner: every experiment is an :class:`Experiment` and runs through :func:`run`.

An experiment module declares a typed ``Config`` (fields made with
:func:`experiments.core.cli.option`, validated in ``__post_init__``), its ``SMOKE`` overrides, and
three functions, in the layout of flax's ``examples/``:

* ``train_and_evaluate(config, options) -> Outcome`` — all the science: data, models, training
  through :mod:`experiments.core.training`, evaluation; returns the JSON-able results (plus, in
  :class:`Outcome`, host arrays the figures need and ``.npz`` files to save);
* ``report(results) -> str`` — the Markdown of ``report.md``;
* ``figures(results, arrays) -> {name: matplotlib Figure}`` — the PNGs.

Results that carry ``entropy_curves`` blocks (:mod:`experiments.core.entropy_curves`, one per
training run, from the probe of the evaluation hook) get the entropy-through-training section of
the report and ``entropy_curves.png`` (:mod:`experiments.core.entropy_report`) from the runner.

The runner does the rest, the same way for all: the command line, distributed initialisation,
timing, the run-metadata block, atomic outputs written by process 0, a barrier so that no process
races ahead to JAX's shutdown while process 0 is writing, and the exit status: 0 on success,
2 with one line ``error: ...`` for a bad configuration (before any training), 1 with one line
for a diverged run, 3 after a simulated interruption (``--stop-after-step``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from experiments.core import cli, distributed, entropy_report, outputs
from experiments.core.cli import ConfigError, RunOptions

EXIT_OK, EXIT_DIVERGED, EXIT_CONFIG, EXIT_STOPPED = 0, 1, 2, 3
# Test hook: seconds process 0 waits before writing, to check that the other processes wait too.
OUTPUT_DELAY_ENV = "ENTJAX_TEST_OUTPUT_DELAY_S"


@dataclasses.dataclass
class Outcome:
    """What ``train_and_evaluate`` returns."""

    results: dict[str, Any]  # becomes results.json (with the run-metadata block)
    arrays: dict[str, Any] = dataclasses.field(default_factory=dict)  # for the figures only
    npz: dict[str, Mapping[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    timing: dict[str, Any] = dataclasses.field(default_factory=dict)  # run-dependent extras


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment: its name, config, smoke overrides and its three functions."""

    name: str
    doc: str
    config_cls: type
    smoke: Mapping[str, Any]
    train_and_evaluate: Callable[[Any, RunOptions], Outcome]
    report: Callable[[dict[str, Any]], str]
    figures: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]

    @property
    def default_out(self) -> str:
        return f"runs/{self.name}"

    def run(
        self,
        config: Any = None,
        out: str | None = None,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = True,
        smoke: bool = False,
        stop_after_step: int | None = None,
    ) -> dict[str, Any]:
        """Run from Python (a notebook, a script); returns the results written to ``out``."""
        options = RunOptions(
            out=out or self.default_out,
            resume=resume,
            overwrite=overwrite,
            smoke=smoke,
            progress=progress,
            stop_after_step=stop_after_step,
        )
        return run(self, self.config_cls() if config is None else config, options)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The command line: ``python -m experiments.<name> [flags]``; returns the exit status."""
        return main(self, argv)


def run(experiment: Experiment, config: Any, options: RunOptions) -> dict[str, Any]:
    """Train, evaluate and write every output of ``experiment``; return the results.

    In a multi-process run an experiment may leave its statistics to process 0, which writes
    them (the main experiment does): the other processes then return results without them,
    and exit 0 even if process 0 fails while computing or writing them.

    Raises :class:`ConfigError`, :class:`~experiments.core.training.TrainingDiverged` or
    :class:`~experiments.core.training.StoppedEarly` (the command line turns them into exit
    statuses).
    """
    distributed.maybe_initialize(options.distributed)
    _claim_output_directory(options)
    started, t0 = outputs.utc_now(), time.perf_counter()
    try:
        outcome = experiment.train_and_evaluate(config, options)
        timing = {
            "started_utc": started,
            "finished_utc": outputs.utc_now(),
            "wall_seconds_before_outputs": round(time.perf_counter() - t0, 2),
            "out": os.path.abspath(options.out),
            **outcome.timing,
        }
        results = {"experiment": experiment.name, **outcome.results}
        results.update(outputs.run_metadata(config, smoke=options.smoke, timing=timing))
        results = outputs.to_jsonable(results)
        if outputs.is_writer():
            time.sleep(float(os.environ.get(OUTPUT_DELAY_ENV, 0)))
            write_outputs(options.out, results, experiment, outcome)
    finally:
        # Every process waits here for process 0's outputs (also on errors, so that no process
        # reaches JAX's shutdown barrier, whose timeout is short, long before the others).
        distributed.barrier(f"{experiment.name}:done")
    return results


def _claim_output_directory(options: RunOptions) -> None:
    """Refuse to start a fresh run over an earlier one, unless asked: ``--resume`` continues it,
    ``--overwrite`` replaces it (its checkpoints are deleted, by process 0, before anything is
    trained; its result files are overwritten when the new ones are written)."""
    previous = [
        name
        for name in ("results.json", "checkpoints")
        if os.path.exists(os.path.join(options.out, name))
    ]
    if previous and not options.resume:
        if not options.overwrite:
            raise ConfigError(
                f"{options.out} already holds a run ({', '.join(previous)}); pass --resume to "
                "continue it or --overwrite to replace it, or choose another --out"
            )
        if outputs.is_writer():
            shutil.rmtree(os.path.join(options.out, "checkpoints"), ignore_errors=True)
    distributed.barrier(f"claimed:{os.path.abspath(options.out)}")


def write_outputs(out: str, results: dict[str, Any], experiment: Experiment, outcome: Outcome):
    """results.json, report.md, one PNG per figure and the ``.npz`` files, each atomically."""
    os.makedirs(out, exist_ok=True)
    outputs.write_json(os.path.join(out, "results.json"), results)
    outputs.write_text(os.path.join(out, "report.md"), full_report(experiment, results) + "\n")
    figures = experiment.figures(results, outcome.arrays)
    if "entropy_curves" in results:
        figures["entropy_curves"] = entropy_report.figure(results["entropy_curves"])
    for name, fig in figures.items():
        outputs.save_figure(fig, os.path.join(out, f"{name}.png"))
    for name, arrays in outcome.npz.items():
        outputs.write_npz(os.path.join(out, f"{name}.npz"), arrays)


def full_report(experiment: Experiment, results: dict[str, Any]) -> str:
    """The experiment's report, then the entropy-through-training section every run has."""
    text = experiment.report(results).rstrip()
    if "entropy_curves" in results:
        text += "\n\n" + entropy_report.report_section(results["entropy_curves"])
    return text.rstrip()


def main(experiment: Experiment, argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run, print the report; errors are one line and an exit status."""
    from experiments.core.training import StoppedEarly, TrainingDiverged

    prog = f"python -m experiments.{experiment.name}"
    parser = cli.build_parser(
        prog,
        experiment.doc.split("\n\n")[0],
        experiment.config_cls,
        default_out=experiment.default_out,
    )
    try:
        config, options = cli.parse_config(parser, experiment.config_cls, experiment.smoke, argv)
        results = run(experiment, config, options)
    except SystemExit as e:  # argparse: --help, or its one-line error
        return int(e.code or 0)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except StoppedEarly as e:
        print(str(e), file=sys.stderr)
        return EXIT_STOPPED
    if outputs.is_writer():
        print(full_report(experiment, results))
        print(f"\nwrote {options.out}/results.json, report.md and figures", file=sys.stderr)
    return EXIT_OK
