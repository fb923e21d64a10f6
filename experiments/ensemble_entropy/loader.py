"""A finished run, reloaded: its config and every method's trained members (no training, nothing
deleted)."""

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
from experiments.ensemble_entropy.methods import method_members
from experiments.ensemble_entropy.train import _setup, run_config


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A finished run, reloaded by :func:`load_run`: its config and its trained members."""

    config: Config
    methods: dict[str, tuple[training.Members, Any]]  # per method: R·K members, their params
    step: int  # the training step of the checkpoint they come from

    @property
    def members(self) -> training.Members:
        """The deep ensemble's members."""
        return self.methods["deep"][0]

    @property
    def params(self) -> Any:
        """The deep ensemble's trained parameters, stacked on the member axis (R·K)."""
        return self.methods["deep"][1]

    def logits(self, x: np.ndarray, method: str = "deep") -> np.ndarray:
        """Every member's logits for images ``x`` ``(n, *image_shape)``: ``(R·K, n, C)`` in the
        run's :attr:`~experiments.ensemble_entropy.config.Config.layout` (member ``r·K + j`` is
        member ``j`` of ensemble ``r``; of a snapshot ensemble: snapshot ``j`` of run ``r``; of
        MC dropout: test-time pass ``j`` of run ``r``)."""
        members, params = self._method(method)
        return members.predict(params, np.asarray(x, np.float32))

    def features(self, x: np.ndarray, method: str = "deep") -> np.ndarray:
        """Every member's penultimate-layer features ``(R·K, n, d)`` (the k-NN score's input)."""
        members, params = self._method(method)
        return members.predict(params, np.asarray(x, np.float32), logits_and_features(members))[1]

    def _method(self, method: str) -> tuple[training.Members, Any]:
        if method not in self.methods:
            raise cli.ConfigError(
                f"TrainedRun: this run has the methods {list(self.methods)}, not {method!r}"
            )
        return self.methods[method]


def load_run(out: str) -> TrainedRun:
    """The config and the trained members of the run in ``out`` (its ``results.json`` and final
    checkpoint), without training or deleting anything::

        run = load_run("runs/ensemble")
        logits = run.logits(images)  # (R·K, n, C)
        u = entjax.ensemble_uncertainty(logits[run.config.layout.members_of(0)], axis=0)
    """
    path = os.path.join(out, "results.json")
    if not os.path.isfile(path):
        raise cli.ConfigError(
            f"{out} has no results.json: the run has not finished (finish it with --resume)"
        )
    with open(path) as f:
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
        "loss_history": np.zeros((config.steps, members.num_members), np.float32),
    }
    stored_config = {**run_config(config, members.num_members), "checkpoint_name": ""}
    checkpoints = Checkpoints(
        os.path.join(out, "checkpoints"), run_config=stored_config, resume=True
    )
    try:
        step = checkpoints.latest_step()
        if step is None or step < config.steps:
            raise cli.ConfigError(
                f"{out} has no final checkpoint (step {config.steps}; latest: {step}): finish "
                "the run with --resume first"
            )
        state, _ = checkpoints.restore(step, like)
    finally:
        checkpoints.close()
    trained = method_members(members, state["params"], state["opt_state"], config)
    return TrainedRun(config, trained, step)
