"""Data, objective and training of ``confidence_penalty``: one vmapped step for every member.

One member per (method, setting, seed): λ and ε are per-member inputs of the entjax objective.
The choices on validation and the test summaries are :mod:`.evaluate`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

import entjax
from experiments.confidence_penalty.config import DATASETS, NAME, Config
from experiments.confidence_penalty.evaluate import summarize, toy_surface
from experiments.core import (
    cli,
    data as data_lib,
    entropy_curves,
    metrics,
    models,
    sweeps,
    training,
)
from experiments.core.runner import Outcome


def toy_points(n: int, *, seed: int, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points x ~ N(0, I₂) as ``(n, 1, 2, 1)`` "images", label 1 iff x₀ + x₁ > 0, each
    label flipped with probability ``noise`` (so the Bayes classifier is right with probability
    1 − ``noise`` and no calibrated model is confident)."""
    rng = np.random.default_rng([seed, 3000])
    x = rng.normal(size=(n, 2)).astype(np.float32)
    flip = rng.random(n) < noise
    return x.reshape(n, 1, 2, 1), ((x.sum(-1) > 0) ^ flip).astype(np.int32)


def load(name: str, config: Config) -> data_lib.ImageData:
    """``digits`` (all ten classes) or ``toy``, as the core's :class:`ImageData`."""
    if name == "digits":
        return data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    if name == "toy":
        noise = config.toy_label_noise
        x_train, y_train = toy_points(config.toy_train, seed=config.seed, noise=noise)
        x_test, y_test = toy_points(config.toy_test, seed=config.seed + 1, noise=noise)
        x_val, y_val = toy_points(config.toy_train, seed=config.seed + 2, noise=noise)
        return data_lib.ImageData(
            x_train,
            y_train,
            x_val,
            y_val,
            x_test,
            y_test,
            in_classes=(0, 1),
            heldout_classes=(),
            x_heldout=x_test[:0],
            y_heldout=y_test[:0],
            name="toy",
            source=f"x ~ N(0, I2), label 1 iff x0 + x1 > 0, flipped with probability {noise:g}",
        )
    raise cli.ConfigError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def smoothed_cross_entropy(logits: jax.Array, labels: jax.Array, eps: jax.Array) -> jax.Array:
    """Cross-entropy against :math:`(1 - \\varepsilon)\\,\\mathrm{onehot}(y) + \\varepsilon / C`
    with a traced ε (PyTorch's ``label_smoothing``; ε = 0 is plain cross-entropy)."""
    num_classes = logits.shape[-1]
    target = (1.0 - eps) * jax.nn.one_hot(labels, num_classes) + eps / num_classes
    return entjax.softmax_cross_entropy(logits, target)


def make_loss_fn(ensemble: training.Ensemble):
    """``CE_ε + λ · confidence_penalty`` with ``eps`` and ``lam`` per-member batch fields."""

    def apply_fn(params, batch):
        return {"logits": ensemble.apply(params, batch["image"])}

    def penalty(logits, lam):
        return lam * entjax.confidence_penalty(logits)

    return entjax.make_objective(
        apply_fn,
        {
            "ce": entjax.term(smoothed_cross_entropy, "logits", "label", "eps"),
            "penalty": entjax.term(penalty, "logits", "lam"),
        },
        mask="mask",
    )


def member_grid(config: Config) -> list[dict[str, Any]]:
    """CE (λ = 0) and the confidence penalty share ``method="cp"``; then label smoothing."""
    seeds = tuple(range(config.seeds))
    cp = training.member_grid(method=("cp",), value=config.lambdas, seed=seeds)
    return cp + training.member_grid(method=("ls",), value=config.smoothings, seed=seeds)


def run_dataset(name: str, config: Config, options: cli.RunOptions) -> dict[str, Any]:
    """Train one member per (method, setting, seed) on dataset ``name``; choose on validation."""
    split = load(name, config)
    grid = member_grid(config)
    width = config.width if name == "digits" else config.toy_width

    def model_fn(rngs):
        return models.build_model(
            "mlp",
            num_classes=split.num_classes,
            width=width,
            input_shape=split.image_shape,
            rngs=rngs,
        )

    base = training.Members.create(model_fn, config.seeds, seed=config.seed)
    members = sweeps.members_from(base, [m["seed"] for m in grid])

    def evaluate(params) -> dict[str, np.ndarray]:
        logits = members.predict(params, split.x_val)
        return metrics.member_summary(logits, split.y_val, num_bins=config.num_bins)

    result = members.train_sweep(
        make_loss_fn(members.ensemble),
        config,
        options,
        data={"image": split.x_train, "label": split.y_train},
        run_config={**dataclasses.asdict(config), "dataset": name},
        name=name,
        description=f"{NAME}/{name}",
        member_inputs={
            "lam": np.array([m["value"] if m["method"] == "cp" else 0.0 for m in grid], np.float32),
            "eps": np.array([m["value"] if m["method"] == "ls" else 0.0 for m in grid], np.float32),
        },
        evaluate=evaluate,
        member_names=training.member_names(grid),
        probe=entropy_curves.EntropyProbe(split.x_train, split.x_val, split.y_val),
    )
    val_logits = members.predict(result.params, split.x_val)
    test_logits = members.predict(result.params, split.x_test)
    out = summarize(result, grid, config, split, val_logits, test_logits)
    if name == "toy":
        out["surface"] = toy_surface(members, result.params, grid)
    return out


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    datasets = {name: run_dataset(name, config, options) for name in config.datasets}
    curves = {name: d.pop("entropy_curves") for name, d in datasets.items()}
    return Outcome({"datasets": datasets, "entropy_curves": curves})
