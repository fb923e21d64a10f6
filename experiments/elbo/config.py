"""The configuration of ``elbo``: its constants, :class:`Config` and ``SMOKE``."""

from __future__ import annotations

import dataclasses
import math

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
EVAL_CHUNK = 128  # images per call of the bounds: fixed shapes, one compilation for every split
# Importance samples per step of the final estimates, over all images at once (each image its
# own noise): 36k rows per step on the 360 test images, near the check's 500 samples × 100.
FINAL_CHUNK = 100
MAX_ENTROPY = NUM_PIXELS * math.log(2.0)  # nats: 64 ln 2, the entropy of 64 fair binary pixels


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
    check_ks: tuple[int, ...] = option(
        (50, 500, 1000, 5000),
        "IWAE-k of the convergence check of log p(x); each k divides the largest",
    )
    check_images: int = option(100, "test images of the convergence check")
    check_chunk: int = option(500, "importance samples drawn at once in the check (memory)")
    checkpoint_every: int = option(
        0, "steps between checkpoints of an arm (0: at its end only; an arm takes about a minute)"
    )

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "train_ks", "eval_ks")
        cli.require(len(set(self.train_ks)) == len(self.train_ks), "--train-ks must be distinct")
        for name in ("latent_dim", "width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.final_k >= 1, "--final-k must be >= 1")
        cli.require(0.0 < self.threshold < 1.0, "--threshold must lie in (0, 1)")
        cli.require_all_positive(self, "check_ks")
        top = max(self.check_ks)
        cli.require(
            all(top % k == 0 for k in self.check_ks), "every --check-ks must divide the largest"
        )
        cli.require(self.check_images >= 2, "--check-images must be >= 2")
        cli.require(self.checkpoint_every >= 0, "--checkpoint-every must be >= 0")
        cli.require(len(set(self.check_ks)) >= 2, "--check-ks needs at least two values")
        cli.require(
            self.check_chunk >= 1 and top % self.check_chunk == 0,
            "--check-chunk must divide the largest --check-ks",
        )

    @property
    def schedule(self) -> training.Schedule:
        every = self.checkpoint_every
        return training.Schedule(self.steps, eval_every=self.eval_every, checkpoint_every=every)

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
    "check_ks": (5, 20, 40),
    "check_images": 16,
    "check_chunk": 20,
}


def arm_name(objective: str, k: int) -> str:
    return "ELBO" if objective == "elbo" else f"{objective.upper()}-{k}"
