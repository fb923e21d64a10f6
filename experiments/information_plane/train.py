"""Training of ``information_plane``: one ensemble of ``seeds`` MLPs per activation, the plane
estimated by :mod:`.evaluate` at every evaluation of the training loop."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.core import cli, data as data_lib, entropy_curves, models, training
from experiments.core.runner import Outcome
from experiments.information_plane.config import NAME, Config
from experiments.information_plane.evaluate import (
    measurement_indices,
    summarize,
    sweep_estimates,
)


def run_activation(
    activation: str,
    config: Config,
    split: data_lib.DigitsData,
    measure: np.ndarray,
    options: cli.RunOptions,
) -> dict[str, Any]:
    """Train ``config.seeds`` MLPs with ``activation``, estimating the plane every eval."""

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return models.build_model(
            "mlp",
            num_classes=split.num_classes,
            width=config.width,
            depth=config.depth,
            activation=activation,
            rngs=rngs,
        )

    members = training.Members.create(model_fn, config.seeds, seed=config.seed)

    def hidden(params, x):  # (n, depth, width): every hidden layer, logits dropped
        return jnp.stack(members.ensemble.module(params).features(x)[:-1], axis=1)

    eval_x = np.concatenate([split.x_train, split.x_test])  # one shape: one compilation
    eval_y = np.concatenate([split.y_train, split.y_test])
    n = len(split.y_train)

    def evaluate(params) -> dict[str, np.ndarray]:
        acts = members.predict(params, split.x_train[measure], hidden)  # (K, m, L, w)
        est = sweep_estimates(np.moveaxis(acts, 2, 1), split.y_train[measure], activation, config)
        correct = np.argmax(members.predict(params, eval_x), -1) == eval_y
        est["train_accuracy"] = correct[:, :n].mean(-1)
        est["test_accuracy"] = correct[:, n:].mean(-1)
        return est

    result = members.train_sweep(
        training.classification_objective(members.ensemble),
        config,
        options,
        data={"image": split.x_train, "label": split.y_train},
        tx=training.make_optimizer(config.learning_rate, steps=config.steps, schedule="constant"),
        run_config={**dataclasses.asdict(config), "activation": activation},
        name=activation,
        description=f"{NAME}/{activation}",
        evaluate=evaluate,
        probe=entropy_curves.EntropyProbe(split.x_train, split.x_val, split.y_val),
    )
    out = summarize(result, config, activation, config.batch_size / n, math.log2(len(measure)))
    out["entropy_curves"] = entropy_curves.summarize(
        result.curves, result.loss_history, max_entropy=math.log(split.num_classes)
    )
    return out


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """One ensemble per activation on a shared class-balanced measurement subset."""
    split = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    measure = measurement_indices(split.y_train, config.per_class, seed=config.seed)
    freq = np.bincount(split.y_train[measure]) / len(measure)
    freq = freq[freq > 0]
    per_act = {
        act: run_activation(act, config, split, measure, options) for act in config.activations
    }
    return Outcome(
        {
            "num_train": len(split.y_train),
            "num_measured": len(measure),
            "log2_n": math.log2(len(measure)),
            "h_y_bits": float(-np.sum(freq * np.log2(freq))),
            "settings": config.settings(),
            "activations": per_act,
            "entropy_curves": {act: r.pop("entropy_curves") for act, r in per_act.items()},
        }
    )
