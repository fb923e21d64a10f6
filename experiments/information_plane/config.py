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
END_FRACTION = 0.25  # the end trend: slope of I(X;T) over the last quarter of the steps
# Saturated activations: tanh beyond ±0.99; ReLU exactly 0 (inactive; a unit inactive on every
# measured image is dead). Other activations have no rule and report none.
TANH_SATURATION = 0.99
SATURATION_RULES = {"tanh": "a beyond ±0.99", "relu": "a = 0"}


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
    bin_widths: tuple[float, ...] = option(
        (2.0, 1.0, 0.25),
        "bin widths Δ as fractions of the layer's activation SD at that step",
    )
    kernel_widths: tuple[float, ...] = option(
        (1.0, 0.3, 0.1),
        "kernel noise σ as fractions of the layer's activation SD at that step",
    )

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "bin_widths", "kernel_widths")
        cli.require_choice(self, "activations", tuple(models.ACTIVATIONS))
        cli.require(len(self.activations) > 0, "--activations needs at least one activation")
        for name in ("width", "depth", "per_class"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")

    def settings(self) -> list[str]:
        """Names of the estimator settings, ``binning/Δ=..s`` and ``kernel/σ=..s`` (s: the
        layer's activation SD at that step)."""
        return [binning_name(w) for w in self.bin_widths] + [
            kernel_name(w) for w in self.kernel_widths
        ]


def binning_name(width: float) -> str:
    return f"binning/Δ={width:g}s"


def kernel_name(width: float) -> str:
    return f"kernel/σ={width:g}s"


SMOKE = {
    "seeds": 2,
    "width": 6,
    "depth": 2,
    "steps": 30,
    "batch_size": 32,
    "eval_every": 15,
    "per_class": 20,
    "bin_widths": (2.0, 0.1),
    "kernel_widths": (0.3,),
}
