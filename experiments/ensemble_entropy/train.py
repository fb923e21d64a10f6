"""Training and the whole run: ``train_and_evaluate(config, options)`` (flax's layout).

The R·K deep-ensemble members (:class:`~experiments.ensemble_entropy.config.Layout`) and the
cheap methods' runs (:attr:`~experiments.ensemble_entropy.config.Config.slots`,
:mod:`~experiments.ensemble_entropy.methods`) are built by :func:`_setup` (the same setup
:func:`~experiments.ensemble_entropy.loader.load_run` rebuilds) and trained together by
:meth:`experiments.core.training.Members.train`; everything after training is
:mod:`~experiments.ensemble_entropy.evaluate`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from experiments.core import cli, data as data_lib, entropy_curves, outputs, training
from experiments.core.models import build_model
from experiments.core.runner import Outcome
from experiments.ensemble_entropy import evaluate, methods, selective, significance
from experiments.ensemble_entropy.config import Config
from experiments.ensemble_entropy.evalsets import EvalSets, features_npz, predict
from experiments.ensemble_entropy.rotation import blanked_test_logits, probes, rotation_mechanism
from experiments.ensemble_entropy.seed_claim import seed_claim_section

# The entropy-curve series: each method's trained models.
SERIES = {
    "deep": "deep-ensemble members",
    "snapshot": "snapshot runs",
    "mc_dropout": "MC-dropout runs",
}


def _setup(config: Config, data: data_lib.ImageData):
    """The initial models of every method (:attr:`Config.slots`) and their optimizer, as every
    run of ``config`` builds them."""

    def model_fn(rngs):
        return build_model(
            config.model,
            num_classes=data.num_classes,
            width=config.width,
            depth=config.depth,
            activation=config.activation,
            input_shape=data.image_shape,
            rngs=rngs,
        )

    members = training.Members.create(model_fn, methods.trained_size(config), seed=config.seed)
    tx = training.make_optimizer(
        config.lr,
        steps=config.steps,
        schedule=config.schedule,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        snapshot_cycles=config.members if "snapshot" in config.methods else None,
    )
    return members, tx


def train(config: Config, options: cli.RunOptions, data: data_lib.ImageData):
    """Every method's models trained together; returns the members and the training result."""
    members, tx = _setup(config, data)
    layout, every = config.layout, config.checkpoint_every
    result = members.train(
        methods.objective(members.ensemble, config),
        tx,
        data={"image": data.x_train, "label": data.y_train},
        batch_size=config.batch_size,
        seed=config.seed,
        schedule=training.Schedule(
            config.steps,
            eval_every=config.eval_every,
            checkpoint_every=max(config.steps // 4, 1) if every is None else every,
        ),
        options=options,
        run_config=run_config(config, members.num_members),
        description=f"{config.seeds}×{config.members}×{config.model}",
        probe=entropy_curves.EntropyProbe(
            data.x_train, data.x_val, data.y_val, groups=layout.groups()
        ),
        member_names=config.model_names(members.num_members),
        member_inputs=methods.member_inputs(config, members.num_members),
    )
    return members, result


def run_config(config: Config, trained: int) -> dict[str, Any]:
    """What the checkpoints must agree on to be resumed or loaded: the config and the length of
    the trained member axis (padded to the devices: :func:`methods.trained_size`)."""
    return {**dataclasses.asdict(config), "trained_models": trained}


def training_summary(history: np.ndarray, config: Config) -> dict[str, Any]:
    """The deep members' final training loss and its mean over the last 10% of steps, and the
    latter per method (the loss curves are the entropy-curve block's ``train_loss``)."""
    last = history[-max(history.shape[0] // 10, 1) :]
    deep = config.slots["deep"]
    return {
        "final_loss_per_member": history[-1, deep].tolist(),
        "final_loss_mean_last_10pct": float(last[:, deep].mean()),
        "final_loss_mean_last_10pct_per_method": {
            m: float(last[:, idx].mean()) for m, idx in config.slots.items()
        },
    }


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Train R ensembles of K members, then evaluate members and ensembles on every set.

    In a multi-process run every process trains and runs the members on the evaluation sets
    (the member axis is sharded across them) and derives the predictions' scores; the
    statistics over them (tables, intervals, curves, comparisons) are computed by process 0
    alone, the one that writes: the others return empty ``results``.
    """
    data = config.load_data()
    t0 = time.perf_counter()
    members, result = train(config, options, data)
    train_seconds = time.perf_counter() - t0
    trained = methods.method_members(members, result.params, result.opt_state, config)
    sets = EvalSets.build(data, config)
    preds = {m: predict(mm, mp, data, config, sets=sets) for m, (mm, mp) in trained.items()}
    blanked_logits = blanked_test_logits(*trained["deep"], data) if probes(config) else None
    timing = {
        "train_seconds_this_process": train_seconds,
        "resumed_from_step": result.resumed_from_step,
    }
    if not outputs.is_writer():
        # Everything that runs the (sharded) members is done, by every process; what follows is
        # host statistics on the gathered predictions, which process 0 alone needs (it writes).
        timing["evaluate_seconds"] = time.perf_counter() - t0 - train_seconds
        return Outcome({}, timing=timing)
    # the deep ensemble's predictions, with the cheap methods' ensemble scores beside its own
    pred = dataclasses.replace(preds["deep"], scores=methods.merged_scores(preds))
    ind = evaluate.in_distribution(pred, config)
    results: dict[str, Any] = {
        "data": {
            **data.summary(),
            "dataset": data.name,
            "source": data.source,
            "image_shape": list(data.image_shape),
        },
        "layout": {**config.layout.to_json(), "methods": list(preds)},
        "temperature": evaluate.temperature_summary(pred),
        "in_distribution": ind,
        "ood": evaluate.ood_section(pred, data, config),
        "shift": evaluate.shift_curves(pred, config),
        "accuracy_vs_confidence": evaluate.confidence_curves(
            pred, pred.sets.headline(config.severities)
        ),
        "ensemble_size": evaluate.size_curves(pred, config),
        "rotation_mechanism": rotation_mechanism(blanked_logits, data, pred, config),
        "training": training_summary(result.loss_history, config),
        "entropy_curves": {
            data.name: entropy_curves.summarize(
                result.curves,
                result.loss_history,
                series={SERIES[m]: config.slots[m] for m in config.slots},
                group_names=config.layout.ensemble_names(),
                max_entropy=math.log(data.num_classes),
            )
        },
    }
    results["selective"] = selective.selective_section(pred, config)
    results["seed_claim"] = seed_claim_section(pred, config)
    results["methods"] = methods.methods_section(
        preds,
        config,
        num_params=methods.count_params(members),
        deep_results={
            "test": ind["test"],
            "selective": results["selective"]["test"],
            "seed_claim": results["seed_claim"],
        },
    )
    results["comparisons"] = significance.family(ind, results["ood"])  # declared, Holm
    results["claims"] = evaluate.claims(results)
    arrays = evaluate.figure_arrays(pred, config)
    arrays["risk_coverage"] = selective.risk_coverage_arrays(pred)
    return Outcome(
        results,
        arrays=arrays,
        npz={
            "predictions": {
                **pred.sets.predictions_npz(pred.logits, config.layout),
                **features_npz(pred, config.knn_k),
                **{
                    f"{m}_member_logits": p.logits.astype(np.float32)
                    for m, p in preds.items()
                    if m != "deep"
                },
            }
        },
        timing={**timing, "evaluate_seconds": time.perf_counter() - t0 - train_seconds},
    )
