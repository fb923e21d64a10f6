"""Confidence penalty (CE − λ·H) sweep on digits and on a 2-D two-class toy problem.

The regularised loss of Pereyra et al. (2017) is ``CE + λ · entjax.confidence_penalty(logits)``
= CE − λ H(p): a positive λ rewards predictive entropy and so fights over-confidence. For every λ
in ``--lambdas`` and every seed, one member is trained; all members of a dataset train together
in one vmapped step (:mod:`experiments.core.training`), λ being a per-member input of the entjax
objective. On the test set we report accuracy, NLL, ECE and the mean predictive entropy against
λ. Large λ over-regularises: predictions approach the uniform distribution (entropy → log C),
NLL and ECE grow, and eventually accuracy drops too.

Datasets: ``digits`` (scikit-learn's ``load_digits``, all ten classes, MLP) and ``toy`` (points
x ~ N(0, I₂), label 1 iff x₀ + x₁ > 0, small MLP; separable, so unregularised CE drives the
confidence towards 1). For ``toy`` the predicted probability over the plane is plotted per λ.

Run ``python -m experiments.confidence_penalty`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``metrics_vs_lambda.png``, ``toy_surfaces.png`` and
``curves.png`` to ``--out``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

import entjax
from experiments.core import (
    cli,
    data as data_lib,
    entropy_curves,
    metrics,
    models,
    outputs,
    training,
)
from experiments.core.cli import option
from experiments.core.runner import Experiment, Outcome

NAME = "confidence_penalty"
DATASETS = ("digits", "toy")
METRICS = ("accuracy", "nll", "ece", "mean_entropy")


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    lambdas: tuple[float, ...] = option(
        (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0), "penalty weights λ >= 0"
    )
    datasets: tuple[str, ...] = option(DATASETS, "datasets", choices=DATASETS)
    steps: int = option(800, "Adam steps")
    learning_rate: float = option(3e-3, "peak Adam learning rate (cosine schedule)")
    width: int = option(64, "MLP width (digits)")
    toy_width: int = option(16, "MLP width (toy)")
    toy_train: int = option(512, "toy training points")
    toy_test: int = option(2048, "toy test points")
    num_bins: int = option(15, "ECE bins")

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "lambdas", allow_zero=True)
        cli.require_choice(self, "datasets", DATASETS)
        cli.require(len(self.datasets) > 0, "--datasets needs at least one dataset")
        for name in ("width", "toy_width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        for name in ("toy_train", "toy_test", "num_bins"):
            cli.require(getattr(self, name) >= 2, f"{cli.flag(name)} must be >= 2")


SMOKE = {
    "lambdas": (0.0, 1.0),
    "seeds": 1,
    "steps": 20,
    "batch_size": 32,
    "width": 16,
    "toy_width": 8,
    "toy_train": 64,
    "toy_test": 128,
    "eval_every": 10,
}


# --------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    input_shape: tuple[int, int, int]


def toy_points(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points x ~ N(0, I₂) as ``(n, 1, 2, 1)`` "images", label 1 iff x₀ + x₁ > 0."""
    x = np.random.default_rng([seed, 3000]).normal(size=(n, 2)).astype(np.float32)
    return x.reshape(n, 1, 2, 1), (x.sum(-1) > 0).astype(np.int32)


def load(name: str, config: Config) -> Split:
    if name == "digits":
        d = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
        return Split(
            d.x_train,
            d.y_train,
            d.x_test,
            d.y_test,
            d.x_val,
            d.y_val,
            d.num_classes,
            data_lib.IMAGE_SHAPE,
        )
    if name == "toy":
        x_train, y_train = toy_points(config.toy_train, seed=config.seed)
        x_test, y_test = toy_points(config.toy_test, seed=config.seed + 1)
        x_val, y_val = toy_points(config.toy_train, seed=config.seed + 2)
        return Split(x_train, y_train, x_test, y_test, x_val, y_val, 2, (1, 2, 1))
    raise cli.ConfigError(f"unknown dataset {name!r}; expected one of {DATASETS}")


# --------------------------------------------------------------------------- training


def make_loss_fn(ensemble: training.Ensemble):
    """``CE + lam · confidence_penalty`` with ``lam`` a per-member batch field."""

    def apply_fn(params, batch):
        return {"logits": ensemble.apply(params, batch["image"])}

    def penalty(logits, lam):
        return lam * entjax.confidence_penalty(logits)

    return entjax.make_objective(
        apply_fn,
        {
            "ce": entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "label"),
            "penalty": entjax.term(penalty, "logits", "lam"),
        },
        mask="mask",
    )


def run_dataset(name: str, config: Config, options: cli.RunOptions) -> dict[str, Any]:
    """Train one member per (λ, seed) on dataset ``name``; test metrics against λ."""
    split = load(name, config)
    grid = training.member_grid(lam=config.lambdas, seed=tuple(range(config.seeds)))
    width = config.width if name == "digits" else config.toy_width

    def model_fn(rngs):
        return models.build_model(
            "mlp",
            num_classes=split.num_classes,
            width=width,
            input_shape=split.input_shape,
            rngs=rngs,
        )

    members = training.Members.create(model_fn, len(grid), seed=config.seed)

    def evaluate(params) -> dict[str, np.ndarray]:
        logits = members.predict(params, split.x_test)
        return metrics.member_summary(logits, split.y_test, num_bins=config.num_bins)

    result = members.train_sweep(
        make_loss_fn(members.ensemble),
        config,
        options,
        data={"image": split.x_train, "label": split.y_train},
        run_config={**dataclasses.asdict(config), "dataset": name},
        name=name,
        description=f"{NAME}/{name}",
        member_inputs={"lam": np.array([m["lam"] for m in grid], np.float32)},
        evaluate=evaluate,
        member_names=training.member_names(grid),
        probe=entropy_curves.EntropyProbe(split.x_train, split.x_val, split.y_val),
    )
    out = summarise(result, grid, config, split)
    if name == "toy":
        out["surface"] = toy_surface(members, result.params, grid)
    return out


def summarise(
    result: training.TrainResult, grid: list[dict[str, Any]], config: Config, split: Split
) -> dict[str, Any]:
    """Final test metrics per λ (mean ± std over seeds) and the curves, averaged over seeds."""
    curves = result.curves
    lam_of = [m["lam"] for m in grid]
    lams = config.lambdas
    final = curves.final()
    by_lam = lambda values: [
        np.asarray(values)[:, np.asarray(lam_of) == lam].mean(1) for lam in lams
    ]
    return {
        "num_classes": split.num_classes,
        "num_train": len(split.y_train),
        "num_test": len(split.y_test),
        "max_entropy": math.log(split.num_classes),
        "lambdas": list(lams),
        "per_lambda": {m: metrics.group_mean_std(final[m], lam_of, lams) for m in METRICS},
        "eval_steps": curves.steps,
        "curves": {m: by_lam(curves.metrics[m]) for m in METRICS},
        "final_train_loss": metrics.group_mean_std(result.loss_history[-1], lam_of, lams)["mean"],
        "entropy_curves": entropy_curves.summarise(
            curves,
            result.loss_history,
            series=entropy_curves.series_by(grid, "lam", "λ"),
            max_entropy=math.log(split.num_classes),
        ),
    }


def toy_surface(members: training.Members, params: Any, grid: list[dict[str, Any]]) -> dict:
    """p(y=1 | x) on a 41 × 41 grid over [-3, 3]², for the seed-0 member of every λ."""
    g = np.linspace(-3.0, 3.0, 41, dtype=np.float32)
    gx, gy = np.meshgrid(g, g)
    points = np.stack([gx.ravel(), gy.ravel()], -1).reshape(-1, 1, 2, 1)
    prob1 = np.asarray(jax.nn.softmax(members.predict(params, points), -1))[..., 1]
    first_seed = [i for i, m in enumerate(grid) if m["seed"] == 0]
    return {
        "grid": g,
        "prob_class1": [np.round(prob1[i].reshape(len(g), len(g)), 4) for i in first_seed],
    }


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    datasets = {name: run_dataset(name, config, options) for name in config.datasets}
    curves = {name: d.pop("entropy_curves") for name, d in datasets.items()}
    return Outcome({"datasets": datasets, "entropy_curves": curves})


# --------------------------------------------------------------------------- outputs


def report(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = [
        "# Confidence penalty: CE − λ·H",
        "",
        f"{config['seeds']} seed(s) per λ, {config['steps']} Adam steps (lr "
        f"{config['learning_rate']}, cosine); test-set metrics, mean ± std over seeds. "
        "Entropy in nats.",
    ]
    for name, r in results["datasets"].items():
        rows = []
        for i, lam in enumerate(r["lambdas"]):
            rows.append(
                [f"{lam:g}"]
                + [
                    {"mean": r["per_lambda"][m]["mean"][i], "std": r["per_lambda"][m]["std"][i]}
                    for m in METRICS
                ]
            )
        lines += [
            "",
            f"## {name} ({r['num_classes']} classes, max entropy {r['max_entropy']:.3f} nats)",
            "",
            outputs.markdown_table(["λ", "accuracy", "NLL", "ECE", "mean entropy"], rows),
        ]
    return "\n".join(lines)


def _lambda_axis(ax: Any, lambdas: Sequence[float]) -> None:
    positive = [lam for lam in lambdas if lam > 0]
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel("λ")


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    out = {}
    fig, axes = outputs.new_figure(1, len(METRICS), size=(3.6, 3.0))
    titles = {
        "accuracy": "test accuracy",
        "nll": "test NLL (nats)",
        "ece": "ECE",
        "mean_entropy": "mean entropy / log C",
    }
    for name, r in results["datasets"].items():
        lams = r["lambdas"]
        for ax, m in zip(axes[0], METRICS, strict=True):
            mean = np.asarray(r["per_lambda"][m]["mean"], float)
            std = np.asarray(r["per_lambda"][m]["std"], float)
            if m == "mean_entropy":
                mean, std = mean / r["max_entropy"], std / r["max_entropy"]
            ax.errorbar(lams, mean, yerr=std, marker="o", capsize=2, label=name)
            ax.set_title(titles[m])
            _lambda_axis(ax, lams)
    axes[0, 0].legend()
    fig.suptitle("Confidence penalty sweep (test set)")
    fig.tight_layout()
    out["metrics_vs_lambda"] = fig

    fig, axes = outputs.new_figure(1, len(results["datasets"]), size=(4.2, 3.2))
    for ax, (name, r) in zip(axes[0], results["datasets"].items(), strict=True):
        for lam, curve in zip(r["lambdas"], r["curves"]["nll"], strict=True):
            ax.plot(r["eval_steps"], curve, label=f"λ={lam:g}")
        ax.set_title(f"{name}: test NLL during training")
        ax.set_xlabel("step")
        ax.set_yscale("log")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    out["curves"] = fig

    toy = results["datasets"].get("toy")
    if toy is not None and "surface" in toy:
        lams = toy["lambdas"]
        fig, axes = outputs.new_figure(1, len(lams), size=(2.6, 2.5))
        g = np.asarray(toy["surface"]["grid"])
        for ax, lam, prob in zip(axes[0], lams, toy["surface"]["prob_class1"], strict=True):
            im = ax.contourf(g, g, np.asarray(prob), levels=np.linspace(0, 1, 11), cmap="RdBu_r")
            ax.plot([-3, 3], [3, -3], "k--", lw=0.8)
            ax.set_title(f"λ={lam:g}")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="p(y=1 | x)")
        fig.suptitle("Toy problem: p(y=1 | x) for seed 0; dashed: true boundary", y=1.06)
        out["toy_surfaces"] = fig
    return out


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
