"""Part 2: every (loss, start, learning rate, seed) member trained in one vmapped SGD step.

:func:`train_and_evaluate` runs part 1 (:mod:`.gradients`) and, unless ``gradients_only``,
part 2, whose members are summarised by :mod:`.evaluate`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import entjax
from experiments.core import cli, data as data_lib, entropy_curves, models, sweeps, training
from experiments.core.runner import Outcome
from experiments.entropy_vs_mse.config import NAME, Config
from experiments.entropy_vs_mse.evaluate import summarize
from experiments.entropy_vs_mse.gradients import LOSS_FNS, gradient_study


def member_grid(config: Config) -> list[dict[str, Any]]:
    return training.member_grid(
        loss=config.losses,
        scale=config.init_scales,
        lr=config.learning_rates,
        seed=tuple(range(config.seeds)),
    )


def make_loss_fn(ensemble: training.Ensemble, losses: Sequence[str]):
    """Per-member objective: ``batch["loss_id"]`` picks the loss (index into ``losses``) and the
    gradient is scaled by ``batch["lr"]`` while the value stays the loss itself:
    ``value = L``, ``∇ = lr · ∇L``, so ``optax.sgd(1.0)`` takes the step ``−lr · ∇L``.

    Members whose loss turns non-finite (too large a learning rate) are let diverge
    (``allow_divergence``); :func:`~experiments.entropy_vs_mse.evaluate.summarize` marks their
    setting diverged and never chooses it."""

    def apply_fn(params, batch):
        return {"logits": ensemble.apply(params, batch["image"])}

    def gated(index: int):
        def fn(logits, labels, loss_id):
            return jnp.where(loss_id == index, LOSS_FNS[losses[index]](logits, labels), 0.0)

        return fn

    terms = {
        name: entjax.term(gated(i), "logits", "label", "loss_id") for i, name in enumerate(losses)
    }
    objective = entjax.make_objective(apply_fn, terms, mask="mask")

    def loss_fn(params, batch, step=0):
        loss, aux = objective(params, batch, step)
        scaled = batch["lr"] * loss
        value = scaled + jax.lax.stop_gradient(loss - scaled)
        return value, aux

    return loss_fn


def scale_last_layer(params: nnx.State, scale: np.ndarray) -> nnx.State:
    """Multiply each member's ``head`` (last-layer) kernel and bias by ``scale[member]``."""

    def one(path, leaf):
        if any(getattr(k, "key", None) == "head" for k in path):
            return leaf * jnp.asarray(scale, leaf.dtype).reshape(-1, *[1] * (leaf.ndim - 1))
        return leaf

    return jax.tree_util.tree_map_with_path(one, params)


def logit_gradients(
    logits: jax.Array, labels: jax.Array, loss_ids: jax.Array, losses: Sequence[str]
) -> dict[str, jax.Array]:
    """Per member (``logits`` ``(M, N, C)``, member ``m`` trained with ``losses[loss_ids[m]]``):
    the mean over the N examples of |∂L/∂z_y| (the true logit), of ‖∂L/∂z‖₂ (all logits) and
    of the root-mean-square logit, each of the member's own per-example loss."""
    m, n, c = logits.shape
    z = logits.reshape(m * n, c)
    y = jnp.broadcast_to(labels, (m, n)).reshape(m * n)
    per_loss = []
    for name in losses:
        g = jax.grad(lambda z_, f=LOSS_FNS[name]: jnp.sum(f(z_, y)))(z).reshape(m, n, c)
        true = jnp.take_along_axis(g, jnp.broadcast_to(labels, (m, n))[..., None], -1)[..., 0]
        per_loss.append((jnp.abs(true).mean(-1), jnp.linalg.norm(g, axis=-1).mean(-1)))
    members = jnp.arange(m)
    grad_true = jnp.stack([t for t, _ in per_loss])[loss_ids, members]
    grad_norm = jnp.stack([g for _, g in per_loss])[loss_ids, members]
    rms = jnp.sqrt(jnp.mean(logits**2, axis=(1, 2)))
    return {"grad_true": grad_true, "grad_norm": grad_norm, "logit_rms": rms}


def build_members(config: Config, grid: list[dict], num_classes: int) -> training.Members:
    """Member (loss, scale, lr, seed) starts from seed ``seed``'s parameters, its last layer
    (kernel and bias) multiplied by ``scale``."""

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return models.build_model("mlp", num_classes=num_classes, width=config.width, rngs=rngs)

    base = training.Members.create(model_fn, config.seeds, seed=config.seed)
    members = sweeps.members_from(base, [m["seed"] for m in grid])
    scale = np.array([m["scale"] for m in grid], np.float32)
    params = scale_last_layer(members.ensemble.params, scale)
    params = jax.device_put(params, training.member_sharding(members.mesh))
    return training.Members(dataclasses.replace(members.ensemble, params=params), members.mesh)


def train_losses(config: Config, options: cli.RunOptions) -> dict[str, Any]:
    """Train every (loss, scale, lr, seed) member; choose lr on validation; test summaries;
    the measured logit gradients on validation at every evaluation."""
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    grid = member_grid(config)
    members = build_members(config, grid, data.num_classes)
    x_eval = np.concatenate([data.x_val, data.x_test])
    y_eval = np.concatenate([data.y_val, data.y_test])
    n_val = len(data.y_val)
    nll = jax.jit(entjax.negative_log_likelihood)
    loss_ids = np.array([config.losses.index(m["loss"]) for m in grid], np.int32)
    gradients = jax.jit(lambda z, y: logit_gradients(z, y, loss_ids, config.losses))

    def evaluate(params) -> dict[str, np.ndarray]:
        logits = members.predict(params, x_eval)
        correct = logits.argmax(-1) == y_eval[None]
        losses = np.asarray(nll(logits, np.broadcast_to(y_eval, logits.shape[:2])))
        measured = gradients(jnp.asarray(logits[:, :n_val]), jnp.asarray(data.y_val))
        return {
            "val_accuracy": correct[:, :n_val].mean(-1),
            "test_accuracy": correct[:, n_val:].mean(-1),
            "test_nll": losses[:, n_val:].mean(-1),
            **{f"val_{k}": np.asarray(v) for k, v in measured.items()},
        }

    result = members.train_sweep(
        make_loss_fn(members.ensemble, config.losses),
        config,
        options,
        data={"image": data.x_train, "label": data.y_train},
        tx=optax.sgd(1.0),
        description=NAME,
        member_inputs={
            "loss_id": loss_ids,
            "lr": np.array([m["lr"] for m in grid], np.float32),
        },
        evaluate=evaluate,
        member_names=training.member_names(grid),
        probe=entropy_curves.EntropyProbe(data.x_train, data.x_val, data.y_val),
        allow_divergence=True,
    )
    summary = summarize(result, grid, config)
    series = {
        f"{g['loss']}/×{g['scale']:g}": list(
            sweeps.where(grid, loss=g["loss"], scale=g["scale"], lr=g["chosen_lr"])
        )
        for g in summary["groups"].values()
    }
    units = {"ce": "nats", "mse": "unitless", "square": "unitless"}  # Brier, square loss: not logs
    summary["entropy_curves"] = entropy_curves.summarize(
        result.curves,
        result.loss_history,
        series=series,
        max_entropy=math.log(data.num_classes),
        loss_unit={name: units[name.split("/")[0]] for name in series},
    )
    return summary


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Part 1 (gradients, closed forms checked) and, unless ``gradients_only``, part 2."""
    results: dict[str, Any] = {"gradients": gradient_study(config.num_classes)}
    if not config.gradients_only:
        results["training"] = train_losses(config, options)
        results["entropy_curves"] = {"digits": results["training"].pop("entropy_curves")}
    return Outcome(results)
