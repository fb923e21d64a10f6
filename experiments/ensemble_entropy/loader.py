"""A finished run, reloaded: its config and its trained members (no training, nothing deleted)."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from experiments.core import cli, training
from experiments.core.checkpoints import Checkpoints
from experiments.ensemble_entropy.config import Config
from experiments.ensemble_entropy.evalsets import logits_and_features
from experiments.ensemble_entropy.train import _setup


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A finished run, reloaded by :func:`load_run`: its config and its trained members."""

    config: Config
    members: training.Members
    params: Any  # the trained parameters, stacked on the member axis (R·K members)
    step: int  # the training step of the checkpoint they come from

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Every member's logits for images ``x`` ``(n, *image_shape)``: ``(R·K, n, C)`` in the
        run's :attr:`~experiments.ensemble_entropy.config.Config.layout` (member ``r·K + j`` is
        member ``j`` of ensemble ``r``)."""
        return self.members.predict(self.params, np.asarray(x, np.float32))

    def features(self, x: np.ndarray) -> np.ndarray:
        """Every member's penultimate-layer features ``(R·K, n, d)`` (the k-NN score's input)."""
        both = logits_and_features(self.members)
        return self.members.predict(self.params, np.asarray(x, np.float32), both)[1]


def load_run(out: str) -> TrainedRun:
    """The config and the trained members of the run in ``out`` (its ``results.json`` and final
    checkpoint), without training or deleting anything::

        run = load_run("runs/ensemble")
        logits = run.logits(images)  # (R·K, n, C)
        u = entjax.ensemble_uncertainty(logits[run.config.layout.members_of(0)], axis=0)
    """
    with open(os.path.join(out, "results.json")) as f:
        stored = json.load(f)["config"]
    fields = {f.name for f in dataclasses.fields(Config)}
    config = Config(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields}
    )
    members, tx = _setup(config, config.load_data())
    params = members.ensemble.params
    like = {
        "params": params,
        "opt_state": training.init_opt_state(tx, params, members.mesh),
        "loss_history": np.zeros((config.steps, config.num_models), np.float32),
    }
    run_config = {**dataclasses.asdict(config), "checkpoint_name": ""}
    checkpoints = Checkpoints(os.path.join(out, "checkpoints"), run_config=run_config, resume=True)
    try:
        step = checkpoints.latest_step()
        if step is None:
            raise cli.ConfigError(f"{out} has no checkpoint to load (was the run finished?)")
        state, _ = checkpoints.restore(step, like)
    finally:
        checkpoints.close()
    return TrainedRun(config, members, state["params"], step)
