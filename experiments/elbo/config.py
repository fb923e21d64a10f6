"""The configuration of ``elbo``: its constants, :class:`Config` and ``SMOKE``."""

from __future__ import annotations

import dataclasses

from experiments.core import cli, training
from experiments.core.cli import option

NAME = "elbo"
NUM_PIXELS = 64
ACTIVE_THRESHOLD = 0.01  # Burda et al.: a unit is active when Cov_x(E_q[z_j]) > 0.01
MEASURES = ("test_log_px", "train_log_px", "gap", "test_elbo", "active_units")
LABELS = {
    "test_log_px": "test log p(x)",
    "train_log_px": "train log p(x)",
    "gap": "train − test",
    "test_elbo": "test ELBO",
    "active_units": "active units",
}
EVAL_CHUNK, FINAL_CHUNK = 128, 20  # fixed chunk shapes: one compilation for every split


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    train_ks: tuple[int, ...] = option(
        (1, 5, 50), "sample counts: 1 trains the ELBO; each k > 1 trains VAE-k and IWAE-k"
    )
    seeds: int = option(5, "independent seeds per (objective, k); intervals are over them")
    latent_dim: int = option(16, "dimension of z")
    width: int = option(64, "encoder / decoder MLP width")
    steps: int = option(2000, "Adam steps")
    learning_rate: float = option(3e-3, "peak Adam learning rate (cosine schedule)")
    eval_every: int = option(250, "steps between evaluations (and checkpoints)")
    eval_ks: tuple[int, ...] = option((1, 5, 50), "IWAE-k recorded on the validation split")
    final_k: int = option(1000, "importance samples of the final log p(x) estimates")
    threshold: float = option(0.5, "binarisation threshold of the pixels")

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "train_ks", "eval_ks")
        cli.require(len(set(self.train_ks)) == len(self.train_ks), "--train-ks must be distinct")
        for name in ("latent_dim", "width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.final_k >= 1, "--final-k must be >= 1")
        cli.require(0.0 < self.threshold < 1.0, "--threshold must lie in (0, 1)")

    def arms(self) -> list[tuple[str, int]]:
        """``(objective, k)`` of every trained arm: ``("elbo", 1)``, ``("vae", k)``, ..."""
        out = []
        for k in self.train_ks:
            out += [("elbo", 1)] if k == 1 else [("vae", k), ("iwae", k)]
        return out


SMOKE = {
    "train_ks": (3,),
    "seeds": 2,
    "latent_dim": 2,
    "width": 16,
    "steps": 20,
    "batch_size": 32,
    "eval_every": 10,
    "eval_ks": (1, 3),
    "final_k": 20,
}


def arm_name(objective: str, k: int) -> str:
    return "ELBO" if objective == "elbo" else f"{objective.upper()}-{k}"
