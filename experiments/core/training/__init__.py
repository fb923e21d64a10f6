"""Training: K Flax NNX members trained together in one jitted, vmapped, sharded step.

One module per job, every name re-exported here (``training.X``):

* :mod:`.mesh` — the ``"ensemble"`` mesh axis over all devices and its two shardings;
* :mod:`.ensemble` — stacked NNX init (:class:`Ensemble`) and the standard classification loss;
* :mod:`.optim` — the optimiser and the train step, ``jit(vmap(member_step))`` over members;
* :mod:`.loop` — :func:`fit`, the one training loop (:class:`Schedule`, :class:`Curves`,
  :class:`TrainResult`, :class:`TrainingDiverged`, :class:`StoppedEarly`);
* :mod:`.members` — :class:`Members`, the setup every experiment starts from, and
  :class:`SweepConfig`, the options every sweep shares;
* :mod:`.grids` — a sweep's members as a grid of settings (:func:`member_grid`).
"""

from experiments.core.training.ensemble import Ensemble, classification_objective, init_ensemble
from experiments.core.training.grids import member_grid, member_names
from experiments.core.training.loop import (
    Curves,
    EvalFn,
    PyTree,
    Schedule,
    StoppedEarly,
    TrainingDiverged,
    TrainResult,
    fit,
)
from experiments.core.training.members import Members, SweepConfig, members_from
from experiments.core.training.mesh import AXIS, make_mesh, member_sharding, replicated
from experiments.core.training.optim import (
    SCHEDULES,
    LossFn,
    gather_batch,
    init_opt_state,
    make_member_step,
    make_optimizer,
    make_train_step,
)

__all__ = [
    "AXIS",
    "SCHEDULES",
    "Curves",
    "Ensemble",
    "EvalFn",
    "LossFn",
    "Members",
    "PyTree",
    "Schedule",
    "StoppedEarly",
    "SweepConfig",
    "TrainResult",
    "TrainingDiverged",
    "classification_objective",
    "fit",
    "gather_batch",
    "init_ensemble",
    "init_opt_state",
    "make_member_step",
    "make_mesh",
    "make_optimizer",
    "make_train_step",
    "member_grid",
    "member_names",
    "member_sharding",
    "members_from",
    "replicated",
]
