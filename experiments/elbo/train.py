"""Data and training of ``elbo``: every (objective, k) arm is its own set of ``seeds`` members.

Member ``s`` of every arm starts from the same initialisation and sees the same minibatches and
the same sampling noise; the final measures and their comparisons are :mod:`.evaluate`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from flax import nnx

import entjax
from experiments.core import cli, data as data_lib, entropy_curves, sweeps, training
from experiments.core.runner import Outcome
from experiments.elbo.config import MAX_ENTROPY, NAME, Config, arm_name
from experiments.elbo.evaluate import (
    Evaluators,
    check_estimates,
    final_measures,
    sample_images,
    summarize,
)
from experiments.elbo.models import VAE, bounds


def make_loss_fn(ensemble: training.Ensemble, seed: int, objective: str, k: int):
    """``−bound`` of one arm, drawing exactly ``k`` samples; the key depends on (member, step)
    only, so member ``s`` of every arm sees the same noise."""
    which = "iwae" if objective == "iwae" else "elbo"

    def apply_fn(params, batch):
        return bounds(ensemble.module(params)(batch["image"], batch["key"], k))

    objective_fn = entjax.make_objective(
        apply_fn, {"neg_bound": entjax.term(lambda b: -b, which)}, mask="mask"
    )

    def loss_fn(params, batch, step=0):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), batch["member"]), step)
        return objective_fn(params, {**batch, "key": key}, step)

    return loss_fn


def binarize(images: np.ndarray, threshold: float) -> np.ndarray:
    return (images > threshold).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_subset: np.ndarray  # as many training images as test images, for the train log p(x)


def load(config: Config) -> Splits:
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    x_train = binarize(data.x_train, config.threshold)
    x_test = binarize(data.x_test, config.threshold)
    pick = np.random.default_rng([config.seed, 5000]).permutation(len(x_train))[: len(x_test)]
    return Splits(x_train, binarize(data.x_val, config.threshold), x_test, x_train[np.sort(pick)])


def train_arm(
    arm: tuple[str, int],
    members: training.Members,
    evaluators: Evaluators,
    config: Config,
    splits: Splits,
    options: cli.RunOptions,
) -> dict[str, Any]:
    """Train the ``config.seeds`` members of one arm; their final measures, the convergence
    check on the first ``check_images`` test images, curves, params."""
    objective, k = arm
    name = f"{objective}{k}"
    result = members.train_sweep(
        make_loss_fn(members.ensemble, config.seed, objective, k),
        config,
        options,
        data={"image": splits.train},
        run_config={**dataclasses.asdict(config), "arm": name},
        name=name,
        description=f"{NAME}/{arm_name(objective, k)}",
        member_inputs={"member": np.arange(config.seeds, dtype=np.int32)},
        evaluate=lambda p: evaluators.bounds(p, splits.val),
        probe=entropy_curves.EntropyProbe(
            splits.train,
            splits.val,
            splits.val,  # the targets of the reconstruction NLL (nll_val)
            apply=lambda params, x: members.ensemble.module(params).reconstruct(x),
            entropy=entropy_curves.bernoulli_entropy,
            nll=entropy_curves.bernoulli_nll,
        ),
    )
    final, per_image = final_measures(
        result.params, evaluators, config, splits.test, splits.train_subset
    )
    check = check_estimates(result.params, evaluators, config, splits.test[: config.check_images])
    final["check_log_px"] = check[max(config.check_ks)].mean(axis=1)
    return {
        "final": final,
        "per_image": per_image,
        "check": check,
        "curves": result.curves,
        "loss_history": result.loss_history,
        "params": result.params,
    }


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Train every arm; per-arm intervals, paired comparisons, samples of the last arm."""
    splits = load(config)
    arms = config.arms()

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return VAE(latent_dim=config.latent_dim, width=config.width, rngs=rngs)

    # One initialisation for every arm: member s of each arm starts from the same parameters.
    base = training.Members.create(model_fn, config.seeds, seed=config.seed)
    members = {arm: sweeps.members_from(base, range(config.seeds)) for arm in arms}
    evaluators = Evaluators.build(base, config)
    runs = {arm: train_arm(arm, members[arm], evaluators, config, splits, options) for arm in arms}
    grid = [{"objective": o, "k": k, "seed": s} for (o, k) in arms for s in range(config.seeds)]
    values = {
        m: np.concatenate([runs[arm]["final"][m] for arm in arms]) for m in runs[arms[0]]["final"]
    }
    vae = summarize(values, grid, config, runs)
    shown = arms[-1]  # the largest k's IWAE arm by construction; not chosen by a test number
    images = sample_images(members[shown], runs[shown]["params"], splits.test, config)
    images["image_arm"] = arm_name(*shown)
    curves = {
        arm_name(*arm): entropy_curves.summarize(
            runs[arm]["curves"], runs[arm]["loss_history"], max_entropy=MAX_ENTROPY
        )
        for arm in arms
    }
    return Outcome({"vae": vae, "entropy_curves": curves}, arrays=images)
