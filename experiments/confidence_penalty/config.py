"""The configuration of ``confidence_penalty``: its constants, :class:`Config` and ``SMOKE``."""

from __future__ import annotations

import dataclasses

from experiments.core import cli, training
from experiments.core.cli import option

NAME = "confidence_penalty"
DATASETS = ("digits", "toy")
METRICS = ("accuracy", "nll", "ece", "mean_entropy")
BOUNDS = {"accuracy": (0, 1), "nll": (0, None), "ece": (0, 1)}  # mean entropy: (0, log C)
METHODS = ("ce", "ce_ts", "cp", "ls")
METHOD_LABELS = {
    "ce": "cross-entropy",
    "ce_ts": "CE + temperature scaling",
    "cp": "confidence penalty",
    "ls": "label smoothing",
}
# Paired differences by seed: each method against CE and against CE + temperature scaling.
PAIRS = (
    ("cp", "ce"),
    ("ls", "ce"),
    ("ce_ts", "ce"),
    ("cp", "ce_ts"),
    ("ls", "ce_ts"),
    ("cp", "ls"),
)


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    lambdas: tuple[float, ...] = option(
        (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0), "penalty weights λ >= 0 (0: plain CE)"
    )
    smoothings: tuple[float, ...] = option(
        (0.003, 0.01, 0.03, 0.1, 0.3), "label-smoothing ε in (0, 1)"
    )
    datasets: tuple[str, ...] = option(DATASETS, "datasets", choices=DATASETS)
    seeds: int = option(10, "independent seeds per setting; intervals are over them")
    steps: int = option(800, "Adam steps")
    learning_rate: float = option(3e-3, "peak Adam learning rate (cosine schedule)")
    width: int = option(64, "MLP width (digits)")
    toy_width: int = option(64, "MLP width (toy)")
    toy_train: int = option(128, "toy training points (also the validation size)")
    toy_test: int = option(2048, "toy test points")
    toy_label_noise: float = option(
        0.2, "toy: probability that a label is flipped (train, validation and test alike)"
    )
    bootstrap_resamples: int = option(
        1000, "resamples of the hierarchical bootstrap over seeds and test examples"
    )
    num_bins: int = option(15, "ECE bins")

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "lambdas", allow_zero=True)
        cli.require(0.0 in self.lambdas, "--lambdas must include 0 (plain cross-entropy)")
        cli.require(any(v > 0 for v in self.lambdas), "--lambdas needs a value > 0")
        cli.require_all_positive(self, "smoothings")
        cli.require(all(v < 1 for v in self.smoothings), "--smoothings must lie in (0, 1)")
        cli.require_choice(self, "datasets", DATASETS)
        cli.require(len(self.datasets) > 0, "--datasets needs at least one dataset")
        for name in ("width", "toy_width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(0.0 <= self.toy_label_noise < 0.5, "--toy-label-noise must lie in [0, 0.5)")
        cli.require(self.bootstrap_resamples >= 100, "--bootstrap-resamples must be >= 100")
        for name in ("toy_train", "toy_test", "num_bins"):
            cli.require(getattr(self, name) >= 2, f"{cli.flag(name)} must be >= 2")


SMOKE = {
    "lambdas": (0.0, 1.0),
    "smoothings": (0.1,),
    "seeds": 2,
    "steps": 20,
    "batch_size": 32,
    "width": 16,
    "toy_width": 8,
    "toy_train": 64,
    "toy_test": 128,
    "eval_every": 10,
    "bootstrap_resamples": 200,
}
