"""The configuration of ``information_plane``: its constants, :class:`Config` and ``SMOKE``."""

from __future__ import annotations

import dataclasses
import math

from experiments.core import cli, models, training
from experiments.core.cli import option

NAME = "information_plane"
ACTIVATIONS = ("tanh", "relu")
ESTIMATORS = ("binning", "kernel")
LOG2 = math.log(2.0)
COMPRESSION_THRESHOLD_BITS = 0.1  # a drop (peak − end) must exceed this, with its interval
CEILING_MARGIN_BITS = 0.25  # an estimate within this of log2 n is "at the ceiling"


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    activations: tuple[str, ...] = option(ACTIVATIONS, "hidden activations to compare")
    seeds: int = option(5, "independent seeds per activation; intervals are over them")
    width: int = option(8, "hidden units per layer")
    depth: int = option(3, "hidden layers")
    steps: int = option(6000, "Adam steps (constant learning rate)")
    learning_rate: float = option(1e-3, "Adam learning rate")
    eval_every: int = option(200, "steps between estimates (and checkpoints)")
    per_class: int = option(100, "measured training images per class")
    num_bins: tuple[int, ...] = option(
        (2, 4, 30), "bin counts over tanh's (-1, 1); ReLU uses the same bin widths"
    )
    relu_bin_cap: float = option(60.0, "upper end of the ReLU bins")
    noise_variances: tuple[float, ...] = option(
        (0.01, 0.1, 1.0), "σ² of the kernel estimator's noise"
    )

    def __post_init__(self):
        super().__post_init__()
        cli.require_positive(self, "relu_bin_cap")
        cli.require_all_positive(self, "noise_variances")
        cli.require_choice(self, "activations", tuple(models.ACTIVATIONS))
        cli.require(len(self.activations) > 0, "--activations needs at least one activation")
        for name in ("width", "depth", "per_class"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(len(self.num_bins) > 0, "--num-bins needs at least one bin count")
        cli.require(all(b >= 2 for b in self.num_bins), "--num-bins values must be >= 2")

    def settings(self) -> list[str]:
        """Names of the estimator settings: ``binning/B=..`` and ``kernel/σ²=..``."""
        return [f"binning/B={b}" for b in self.num_bins] + [
            f"kernel/σ²={v:g}" for v in self.noise_variances
        ]


SMOKE = {
    "seeds": 2,
    "width": 6,
    "depth": 2,
    "steps": 30,
    "batch_size": 32,
    "eval_every": 15,
    "per_class": 20,
    "num_bins": (2, 30),
    "noise_variances": (0.1,),
}
