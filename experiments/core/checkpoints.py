"""Orbax checkpoints of a training run: open, save, restore, with the run's config beside them.

A checkpoint at step ``s`` holds the training state (a pytree of sharded arrays and host arrays:
parameters, optimizer state, loss history) and a JSON ``meta`` item (the run configuration and the
evaluation curves so far), written together by one ``orbax.checkpoint.CheckpointManager`` with
synchronous saves. In a multi-process run every process calls the same methods on the same
directory (a shared filesystem, the ``--out`` of the run): orbax writes each process's shards and
synchronises the processes itself. Nothing here deletes an earlier run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from experiments.core import distributed
from experiments.core.cli import ConfigError


def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


class Checkpoints:
    """The checkpoints of one training run in ``directory``.

    Args:
      directory: where the step directories live (created if needed).
      run_config: a JSON-able description of everything that affects the numbers; stored in
        every checkpoint, and a resume from a checkpoint written with another config is refused.
      resume: keep existing checkpoints (and restore from them); otherwise the directory must be
        empty or absent (a :class:`ConfigError` otherwise: nothing is ever deleted here; the
        runner's ``--overwrite`` removes an earlier run's checkpoints first).
      keep: how many recent checkpoints to keep.
    """

    def __init__(
        self, directory: str, *, run_config: Mapping[str, Any], resume: bool, keep: int = 2
    ):
        import orbax.checkpoint as ocp

        self.directory = os.path.abspath(directory)
        self.run_config = json.loads(_canonical(run_config))
        if not resume and os.path.isdir(self.directory) and os.listdir(self.directory):
            raise ConfigError(
                f"{self.directory} holds checkpoints of an earlier run; pass --resume to continue "
                "it or --overwrite to replace it"
            )
        distributed.barrier(f"checkpoints-ready:{self.directory}")  # all checked before any write
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or ``None``."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, curves: Mapping[str, Any]) -> None:
        """Save ``state`` (a pytree) and the JSON-able ``curves`` as step ``step``."""
        import orbax.checkpoint as ocp

        meta = {"run_config": self.run_config, "curves": curves}
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._manager.save(step, args=args, force=True)
        self._manager.wait_until_finished()

    def restore(self, step: int, like: Any) -> tuple[Any, dict[str, Any]]:
        """The state saved at ``step`` (with the shapes, dtypes and shardings of ``like``) and
        its curves. Raises :class:`ConfigError` if it was written with another configuration."""
        import orbax.checkpoint as ocp

        meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        saved = meta["meta"]["run_config"]
        if _canonical(saved) != _canonical(self.run_config):
            changed = sorted(
                k
                for k in {*saved, *self.run_config}
                if saved.get(k, "<unset>") != self.run_config.get(k, "<unset>")
            )
            raise ConfigError(
                f"cannot resume from {self.directory}: its checkpoints were written with another "
                f"configuration (differs in {', '.join(changed)}); drop --resume to start afresh"
            )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
        state = jax.tree.map(
            lambda a, b: np.asarray(a) if isinstance(b, np.ndarray) else a,
            restored["state"],
            like,
        )
        return state, meta["meta"]["curves"]

    def close(self) -> None:
        self._manager.close()
