"""The configuration of ``entropy_vs_mse``: its constants, :class:`Config` and ``SMOKE``."""

from __future__ import annotations

import dataclasses

from experiments.core import cli, training
from experiments.core.cli import option

NAME = "entropy_vs_mse"
LOSSES = ("ce", "mse", "square")
LOSS_LABELS = {"ce": "cross-entropy", "mse": "Brier (MSE on p)", "square": "square loss on z"}
INIT_SCALES = (1.0, 3.0, 10.0, 30.0)  # initial last-layer scale; 1 is the standard start
WRONG_LOGITS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0)  # the gradient study
BOUNDS = {
    "test_accuracy": (0, 1),
    "test_nll": (0, None),
    "initial_val_entropy": (0, None),
    "grad_true": (0, None),
    "grad_norm": (0, None),
}
GRADIENT_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 1.0)  # where in training the measured gradient is read


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    num_classes: int = option(10, "classes in the gradient study")
    losses: tuple[str, ...] = option(LOSSES, "training losses: ce, mse (Brier), square (logits)")
    steps: int = option(300, "SGD steps")
    learning_rates: tuple[float, ...] = option(
        (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
        "SGD learning-rate grid (constant rate; chosen on validation per loss and scale)",
    )
    learning_rate: float = option(
        1e-3, "not used: every member trains at its rate of --learning-rates"
    )
    width: int = option(64, "MLP width")
    seeds: int = option(6, "independent seeds per (loss, scale, lr); intervals are over them")
    init_scales: tuple[float, ...] = option(
        INIT_SCALES,
        "initial last-layer weights and bias times each of these (must include 1: the standard "
        "start); larger: a more confident initial network",
    )
    eval_every: int = option(10, "steps between evaluations")
    checkpoint_every: int = option(150, "steps between checkpoints")
    target_accuracy: float = option(0.9, "test accuracy whose first step is reported")
    gradients_only: bool = option(False, "skip the training part")

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "init_scales")
        cli.require(1.0 in self.init_scales, "--init-scales must include 1 (the standard start)")
        cli.require_all_positive(self, "learning_rates")
        cli.require_choice(self, "losses", LOSSES)
        cli.require("ce" in self.losses, "--losses must include ce (the reference)")
        cli.require(self.width >= 1, "--width must be >= 1")
        cli.require(self.checkpoint_every >= 1, "--checkpoint-every must be >= 1")
        cli.require(self.num_classes >= 2, "--num-classes must be >= 2")
        cli.require(0.0 < self.target_accuracy <= 1.0, "--target-accuracy must lie in (0, 1]")

    @property
    def schedule(self) -> training.Schedule:
        every = self.checkpoint_every
        return training.Schedule(self.steps, eval_every=self.eval_every, checkpoint_every=every)


SMOKE = {
    "steps": 20,
    "batch_size": 32,
    "width": 16,
    "seeds": 2,
    "eval_every": 10,
    "learning_rates": (0.1, 1.0),
    "init_scales": (1.0, 10.0),
}
