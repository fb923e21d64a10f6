"""The one training loop, :func:`fit`, and what it runs on: its :class:`Schedule`, results, errors.

:func:`fit` shows a progress bar with the live loss, runs an evaluation hook at step 0, every
``eval_every`` steps and at the end (its values become the run's :class:`Curves`), saves orbax
checkpoints (:mod:`experiments.core.checkpoints`) and resumes from them, and stops on the first
non-finite loss (:class:`TrainingDiverged`) unless a sweep allows divergence. The data order is a
pure function of ``(seed, member, step)`` (:func:`experiments.core.data.batch_indices`), so a
resumed run is bitwise identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from experiments.core.distributed import to_host
from experiments.core.outputs import is_writer
from experiments.core.training.mesh import member_sharding, replicated

if TYPE_CHECKING:
    from experiments.core.checkpoints import Checkpoints

PyTree = Any
EvalFn = Callable[[PyTree], Mapping[str, np.ndarray]]


class StoppedEarly(Exception):
    """Training stopped at ``--stop-after-step`` (a simulated interruption); resume continues."""

    def __init__(self, step: int):
        super().__init__(f"stopped after step {step} (--stop-after-step); continue with --resume")
        self.step = step


class TrainingDiverged(RuntimeError):
    """A member's training loss became non-finite; the checkpoints before it are kept."""


@dataclasses.dataclass
class Curves:
    """Evaluation results at ``steps``: ``metrics[name]`` has shape ``(len(steps), K, ...)``."""

    steps: list[int]
    metrics: dict[str, np.ndarray]

    @classmethod
    def from_points(cls, points: Mapping[int, Mapping[str, np.ndarray]]) -> Curves:
        steps = sorted(points)
        names = list(points[steps[0]]) if steps else []
        return cls(steps, {n: np.stack([np.asarray(points[s][n]) for s in steps]) for n in names})

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "metrics": {k: v.tolist() for k, v in self.metrics.items()}}

    def final(self) -> dict[str, np.ndarray]:
        """The values at the last evaluated step."""
        return {k: v[-1] for k, v in self.metrics.items()}


def _points_from_json(saved: Mapping[str, Any]) -> dict[int, dict[str, np.ndarray]]:
    return {
        int(s): {k: np.asarray(v[i], dtype=np.float64) for k, v in saved["metrics"].items()}
        for i, s in enumerate(saved["steps"])
    }


@dataclasses.dataclass
class TrainResult:
    params: nnx.State
    opt_state: optax.OptState
    loss_history: np.ndarray  # (steps, K) float32: per-step, per-member training loss
    curves: Curves  # the evaluation hook's values (empty without a hook)
    resumed_from_step: int | None

    @property
    def diverged_at(self) -> np.ndarray:
        """Per member, the first step (1-based) whose loss was non-finite; 0 if none was."""
        bad = ~np.isfinite(self.loss_history)
        return np.where(bad.any(axis=0), bad.argmax(axis=0) + 1, 0)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When :func:`fit` evaluates, checkpoints, logs and (for tests) stops."""

    num_steps: int
    eval_every: int = 0  # 0: evaluate at step 0 and at the end only
    checkpoint_every: int = 0  # 0: checkpoint at the end only
    log_every: int = 25
    stop_after_step: int | None = None

    def evaluates(self, step: int) -> bool:
        every = self.eval_every
        return step in (0, self.num_steps) or bool(every and step % every == 0)

    def checkpoints(self, step: int) -> bool:
        every = self.checkpoint_every
        return step == self.num_steps or bool(every and step % every == 0)


class _Loop:
    """State of one :func:`fit` call: the host-side loss history, curve points, checkpoints."""

    def __init__(self, schedule, checkpoints, evaluate, member_names, num_members, tolerate):
        self.schedule = schedule
        self.tolerate = tolerate  # let members diverge (a learning-rate sweep) instead of raising
        self.checkpoints = checkpoints
        self.evaluate = evaluate
        self.member_names = member_names
        self.history = np.full((schedule.num_steps, num_members), np.nan, np.float32)
        self.points: dict[int, dict[str, np.ndarray]] = {}
        self.pending: list[tuple[int, jax.Array]] = []
        self.last_saved: int | None = None

    def flush(self) -> None:
        """Fetch the pending losses to the host; raise on the first non-finite one."""
        steps = [step for step, _ in self.pending]
        for step, loss in self.pending:
            self.history[step] = np.asarray(to_host(loss))
        self.pending.clear()
        bad = np.argwhere(~np.isfinite(self.history[steps]))
        if len(bad) and not self.tolerate:
            row, member = (int(v) for v in bad[0])
            step = steps[row]
            name = self.member_names[member] if self.member_names else f"member {member}"
            kept = (
                f"the last good checkpoint (step {self.last_saved}) is kept in "
                f"{self.checkpoints.directory}"
                if self.last_saved is not None and self.checkpoints is not None
                else "no checkpoint had been written yet"
            )
            raise TrainingDiverged(
                f"training diverged: the loss of {name} is {self.history[step, member]} at step "
                f"{step + 1}; {kept}. Lower the learning rate or check the inputs."
            )

    def record(self, step: int, params: PyTree) -> None:
        if self.evaluate is not None and step not in self.points:
            # float64 on the host, as after the JSON round trip of a resume: identical curves.
            self.points[step] = {
                k: np.asarray(v, np.float64) for k, v in self.evaluate(params).items()
            }

    def save(self, step: int, params: PyTree, opt_state: PyTree) -> None:
        if self.checkpoints is None:
            return
        self.flush()
        state = {"params": params, "opt_state": opt_state, "loss_history": self.history}
        self.checkpoints.save(step, state, Curves.from_points(self.points).to_json())
        self.last_saved = step

    def restore(self, params: PyTree, opt_state: PyTree) -> tuple[PyTree, PyTree, int | None]:
        latest = self.checkpoints.latest_step() if self.checkpoints is not None else None
        if latest is None:
            return params, opt_state, None
        like = {"params": params, "opt_state": opt_state, "loss_history": self.history}
        state, curves = self.checkpoints.restore(latest, like)
        self.history = np.array(state["loss_history"], np.float32)
        self.points = {s: v for s, v in _points_from_json(curves).items() if s <= latest}
        self.last_saved = latest
        return state["params"], state["opt_state"], latest


def _progress_bar(total: int, initial: int, description: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    show = enabled and sys.stderr.isatty() and is_writer()
    return tqdm(
        total=total, initial=initial, desc=description, disable=not show, dynamic_ncols=True
    )


def fit(
    step_fn: Callable[..., tuple[PyTree, PyTree, jax.Array, Any]],
    params: PyTree,
    opt_state: PyTree,
    *,
    data: Mapping[str, np.ndarray],
    indices_fn: Callable[[int], np.ndarray],
    mesh: Mesh,
    schedule: Schedule,
    member_inputs: Mapping[str, np.ndarray] | None = None,
    evaluate: EvalFn | None = None,
    checkpoints: Checkpoints | None = None,
    member_names: Sequence[str] | None = None,
    progress: bool = True,
    description: str = "train",
    allow_divergence: bool = False,
) -> TrainResult:
    """Run ``schedule.num_steps`` steps of ``step_fn`` (from :func:`.optim.make_train_step`).

    ``indices_fn(step) -> (K, batch)`` indices into ``data`` must be a pure function of the step
    (that is what makes a resume exact). ``evaluate(params) -> {name: (K, ...) host array}`` runs
    at step 0, every ``schedule.eval_every`` steps and at the end; ``checkpoints`` (when given)
    are restored from and saved to at ``schedule.checkpoint_every`` and the end, with the curves.

    Raises:
      StoppedEarly: after ``schedule.stop_after_step`` steps (checkpoints so far are kept).
      TrainingDiverged: at the first non-finite training loss (naming the step and member),
        before any checkpoint of the diverged state is written; with ``allow_divergence``
        (a sweep over settings some of which are expected to diverge) training goes on and
        :attr:`TrainResult.diverged_at` says which members diverged when.
    """
    ms, rep = member_sharding(mesh), replicated(mesh)
    num_members = int(jax.tree.leaves(params)[0].shape[0])
    loop = _Loop(schedule, checkpoints, evaluate, member_names, num_members, allow_divergence)
    params, opt_state, resumed_from = loop.restore(params, opt_state)
    start = resumed_from or 0
    if resumed_from is not None and is_writer():
        print(f"{description}: resumed from the checkpoint of step {start}", file=sys.stderr)
    inputs = jax.device_put(dict(member_inputs or {}), ms)
    data_dev = jax.device_put(dict(data), rep)
    if start == 0:
        loop.record(0, params)
    bar = _progress_bar(schedule.num_steps, start, description, progress)
    for step in range(start, schedule.num_steps):
        idx = jax.device_put(np.asarray(indices_fn(step), np.int32), ms)
        step_array = jax.device_put(np.asarray(step, np.int32), rep)
        params, opt_state, loss, _ = step_fn(params, opt_state, data_dev, idx, inputs, step_array)
        loop.pending.append((step, loss))
        done = step + 1
        if done % schedule.log_every == 0 or done == schedule.num_steps:
            loop.flush()
            bar.set_postfix(loss=f"{float(np.mean(loop.history[step])):.4f}", refresh=False)
        bar.update(1)
        if schedule.evaluates(done):
            loop.flush()
            loop.record(done, params)
        if schedule.checkpoints(done):
            loop.save(done, params, opt_state)
        stop = schedule.stop_after_step
        if stop is not None and stop <= done < schedule.num_steps:
            bar.close()
            raise StoppedEarly(done)
    bar.close()
    loop.flush()
    if resumed_from == schedule.num_steps:
        loop.record(schedule.num_steps, params)  # a finished run resumed: curves are complete
    return TrainResult(
        params=params,
        opt_state=opt_state,
        loss_history=loop.history,
        curves=Curves.from_points(loop.points),
        resumed_from_step=resumed_from,
    )
