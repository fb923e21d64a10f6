"""The VIB model, its objective and the training of ``information_bottleneck``.

One member per (method, β or λ, seed), all trained together in one vmapped step; the bounds,
choices and comparisons are :mod:`.evaluate`'s.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from flax import nnx

import entjax
from experiments.core import cli, data as data_lib, entropy_curves, models, sweeps, training
from experiments.core.runner import Outcome
from experiments.information_bottleneck.config import METHOD_LABELS, NAME, Config
from experiments.information_bottleneck.evaluate import curves, make_evaluator, summarize


class VIB(nnx.Module):
    """Stochastic encoder (MLP → mean, log-variance) and linear softmax decoder."""

    def __init__(self, num_classes: int, *, latent_dim: int, width: int, rngs: nnx.Rngs):
        self.encoder = models.build_model("mlp", num_classes=2 * latent_dim, width=width, rngs=rngs)
        self.decoder = nnx.Linear(latent_dim, num_classes, rngs=rngs)
        self.latent_dim = latent_dim

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = self.encoder(x)
        return h[..., : self.latent_dim], h[..., self.latent_dim :]

    def __call__(self, x, key, num_samples: int | None = None, noise: jax.Array = 1.0):
        """Logits of ``z = μ + noise · σ ε`` (``noise = 0``: the deterministic ``z = μ``)."""
        mean, log_var = self.encode(x)
        z = entjax.reparameterize(key, mean, log_var, num_samples=num_samples)
        z = mean + noise * (z - mean)
        return {"logits": self.decoder(z), "mean": mean, "log_var": log_var}


def member_grid(config: Config) -> list[dict[str, Any]]:
    seeds = tuple(range(config.seeds))
    return (
        training.member_grid(method=("det",), value=(0.0,), seed=seeds)
        + training.member_grid(method=("cp",), value=config.cp_lambdas, seed=seeds)
        + training.member_grid(method=("vib",), value=config.betas, seed=seeds)
    )


def make_loss_fn(ensemble: training.Ensemble, seed: int):
    """``vib_loss + λ · confidence_penalty`` with per-member ``beta``, ``lam`` and ``noise``;
    the sampling key is a function of (seed index, step), shared by every setting."""

    def apply_fn(params, batch):
        return ensemble.module(params)(batch["image"], batch["key"], noise=batch["noise"])

    def loss(logits, labels, mean, log_var, beta):
        return entjax.vib_loss(logits, labels, mean, log_var, beta=beta).loss

    def penalty(logits, lam):
        return lam * entjax.confidence_penalty(logits)

    objective = entjax.make_objective(
        apply_fn,
        {
            "vib": entjax.term(loss, "logits", "label", "mean", "log_var", "beta"),
            "penalty": entjax.term(penalty, "logits", "lam"),
        },
        mask="mask",
    )

    def loss_fn(params, batch, step=0):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), batch["seed"]), step)
        return objective(params, {**batch, "key": key}, step)

    return loss_fn


def mean_logits(ensemble: training.Ensemble):
    """Per-member logits of the decoder at the posterior mean ``z = μ(x)``: the deterministic
    members' prediction, and the noise-free one of the VIB members (the probe sees no noise
    switch, so every member is probed the same way)."""

    def apply(params, x):
        model = ensemble.module(params)
        return model.decoder(model.encode(x)[0])

    return apply


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Train every (method, setting, seed); choose β and λ on validation; report on test."""
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    grid = member_grid(config)

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return VIB(data.num_classes, latent_dim=config.latent_dim, width=config.width, rngs=rngs)

    base = training.Members.create(model_fn, config.seeds, seed=config.seed)
    members = sweeps.members_from(base, [m["seed"] for m in grid])
    marginal = np.bincount(data.y_train, minlength=data.num_classes) / len(data.y_train)
    evaluator = make_evaluator(
        members.ensemble, marginal, config.eval_samples, config.seed, config.mi_samples
    )
    inputs = {
        "beta": np.array([m["value"] if m["method"] == "vib" else 0.0 for m in grid], np.float32),
        "lam": np.array([m["value"] if m["method"] == "cp" else 0.0 for m in grid], np.float32),
        "noise": np.array([m["method"] == "vib" for m in grid], np.float32),
        "seed": np.array([m["seed"] for m in grid], np.int32),
    }
    result = members.train_sweep(
        make_loss_fn(members.ensemble, config.seed),
        config,
        options,
        data={"image": data.x_train, "label": data.y_train},
        description=NAME,
        member_inputs=inputs,
        evaluate=lambda p: evaluator(p, inputs["noise"], data.x_val, data.y_val),
        member_names=training.member_names(grid),
        probe=entropy_curves.EntropyProbe(
            data.x_train,
            data.x_val,
            data.y_val,
            apply=mean_logits(members.ensemble),
        ),
    )
    splits = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}
    final = {s: evaluator(result.params, inputs["noise"], *xy) for s, xy in splits.items()}
    final["val"] = result.curves.final()
    sizes = {"val": len(data.y_val), **{s: len(xy[1]) for s, xy in splits.items()}}
    ib = summarize(final, grid, config, marginal, sizes)
    ib.update(curves(result.curves, grid, config))
    block = entropy_curves.summarize(
        result.curves,
        result.loss_history,
        series={
            f"{METHOD_LABELS[m]}{'' if m == 'det' else ' ' + symbol + f'={v:g}'}": list(
                sweeps.where(grid, method=m, value=v)
            )
            for m, symbol, v in (
                ("det", "", 0.0),
                ("cp", "λ", ib["chosen"]["cp"]),
                ("vib", "β", ib["chosen"]["vib"]),
            )
        },
        max_entropy=math.log(data.num_classes),
    )
    return Outcome({"ib": ib, "entropy_curves": {"digits": block}})
