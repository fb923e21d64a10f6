"""The configuration of ``information_bottleneck``: constants, :class:`Config` and ``SMOKE``."""

from __future__ import annotations

import dataclasses
import math

from experiments.core import cli, training
from experiments.core.cli import option

NAME = "information_bottleneck"
LOG2 = math.log(2.0)
METHODS = ("det", "cp", "vib")
METHOD_LABELS = {"det": "deterministic", "cp": "confidence penalty", "vib": "VIB"}
NAMES = ("izx_bits", "izx_mc_bits", "izy_bits", "ce_bits", "accuracy", "nll", "ece")
BOUNDS = {
    "accuracy": (0, 1),
    "ece": (0, 1),
    "nll": (0, None),
    "izx_bits": (0, None),
    "izx_mc_bits": (0, None),
}
NUM_BINS = 15


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    betas: tuple[float, ...] = option((1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), "VIB weights β > 0")
    cp_lambdas: tuple[float, ...] = option(
        (0.01, 0.03, 0.1, 0.3, 1.0), "confidence-penalty baseline weights λ > 0"
    )
    seeds: int = option(8, "independent seeds per setting; intervals are over them")
    latent_dim: int = option(16, "dimension of z")
    width: int = option(128, "encoder MLP width")
    steps: int = option(1500, "Adam steps")
    learning_rate: float = option(1e-3, "peak Adam learning rate (cosine schedule)")
    eval_every: int = option(250, "steps between evaluations (and checkpoints)")
    eval_samples: int = option(12, "latent samples per example at evaluation")
    mi_samples: int = option(
        4, "latent samples per image of the direct (Monte Carlo) I(X;Z) estimate"
    )

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "betas", "cp_lambdas")
        for name in ("latent_dim", "width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.eval_samples >= 1, "--eval-samples must be >= 1")
        cli.require(self.mi_samples >= 1, "--mi-samples must be >= 1")


SMOKE = {
    "betas": (1e-3, 1.0),
    "cp_lambdas": (0.1,),
    "seeds": 2,
    "latent_dim": 4,
    "width": 16,
    "steps": 20,
    "batch_size": 32,
    "eval_every": 10,
    "eval_samples": 2,
    "mi_samples": 2,
}
