"""Confidence penalty (CE − λ·H) sweep on digits and on a 2-D two-class toy problem.

The regularised loss of Pereyra et al. (2017) is ``CE + λ · entjax.confidence_penalty(logits)``
= CE − λ H(p): a positive λ rewards predictive entropy and so fights over-confidence. For every λ
in ``--lambdas`` and every seed, one member is trained; all members of a dataset train together
in one vmapped step (:mod:`experiments.ensemble`), λ being a per-member input of the entjax
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
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

import entjax
from experiments import data as data_lib
from experiments import ensemble as ens
from experiments import models, reporting, research

NAME = "confidence_penalty"
DATASETS = ("digits", "toy")
METRICS = ("accuracy", "nll", "ece", "mean_entropy")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    lambdas: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    seeds: int = 2
    datasets: tuple[str, ...] = DATASETS
    steps: int = 800
    batch_size: int = 64
    learning_rate: float = 3e-3
    width: int = 64
    toy_width: int = 16
    toy_train: int = 512
    toy_test: int = 2048
    eval_every: int = 100
    num_bins: int = 15


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
    num_classes: int
    input_shape: tuple[int, int, int]


def toy_points(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points x ~ N(0, I₂) as ``(n, 1, 2, 1)`` "images", label 1 iff x₀ + x₁ > 0."""
    x = np.random.default_rng([seed, 3000]).normal(size=(n, 2)).astype(np.float32)
    return x.reshape(n, 1, 2, 1), (x.sum(-1) > 0).astype(np.int32)


def load(name: str, config: Config) -> Split:
    if name == "digits":
        d = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
        return Split(d.x_train, d.y_train, d.x_test, d.y_test, d.num_classes, data_lib.IMAGE_SHAPE)
    if name == "toy":
        x_train, y_train = toy_points(config.toy_train, seed=config.seed)
        x_test, y_test = toy_points(config.toy_test, seed=config.seed + 1)
        return Split(x_train, y_train, x_test, y_test, 2, (1, 2, 1))
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


# --------------------------------------------------------------------------- training


def make_loss_fn(ensemble: ens.Ensemble):
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


def run_dataset(
    name: str,
    config: Config,
    out_dir: str,
    *,
    resume: bool,
    progress: bool,
    stop_after_step: int | None,
) -> dict[str, Any] | None:
    split = load(name, config)
    member_list = research.member_grid(lam=config.lambdas, seed=tuple(range(config.seeds)))
    k = len(member_list)
    mesh = research.mesh_for(k)
    width = config.width if name == "digits" else config.toy_width

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return models.build_model(
            "mlp",
            num_classes=split.num_classes,
            width=width,
            input_shape=split.input_shape,
            rngs=rngs,
        )

    ensemble = ens.init_ensemble(model_fn, k, seed=config.seed, mesh=mesh)
    tx = ens.make_optimizer(config.learning_rate, steps=config.steps)
    step_fn = ens.make_train_step(make_loss_fn(ensemble), tx, mesh)
    eval_logits = ens.make_eval_fn(ensemble.apply, mesh)
    n = len(split.y_train)
    batch_size = min(config.batch_size, n)

    def evaluate(params) -> dict[str, np.ndarray]:
        logits = ens.predict(eval_logits, params, split.x_test, mesh)
        return research.member_metrics(logits, split.y_test, num_bins=config.num_bins)

    result, curves = research.train_with_evals(
        step_fn=step_fn,
        params=ensemble.params,
        opt_state=ens.init_opt_state(tx, ensemble.params, mesh),
        data={"image": split.x_train, "label": split.y_train},
        indices_fn=lambda s: data_lib.ensemble_batch_indices(
            config.seed, s, num_members=k, n=n, batch_size=batch_size
        ),
        num_steps=config.steps,
        mesh=mesh,
        eval_fn=evaluate,
        eval_every=config.eval_every,
        checkpoint_dir=os.path.join(out_dir, "checkpoints", name),
        member_inputs={"lam": np.array([m["lam"] for m in member_list], np.float32)},
        resume=resume,
        run_config={**dataclasses.asdict(config), "dataset": name},
        progress=progress,
        description=f"{NAME}/{name}",
        stop_after_step=stop_after_step,
    )
    if result.stopped_early:
        return None
    final = {m: curves.metrics[m][-1] for m in METRICS}  # (K,)
    lam_of = np.array([m["lam"] for m in member_list])
    out: dict[str, Any] = {
        "num_classes": split.num_classes,
        "num_train": len(split.y_train),
        "num_test": len(split.y_test),
        "max_entropy": math.log(split.num_classes),
        "lambdas": list(config.lambdas),
        "per_lambda": {
            m: {
                "mean": [float(final[m][lam_of == lam].mean()) for lam in config.lambdas],
                "std": [float(final[m][lam_of == lam].std()) for lam in config.lambdas],
            }
            for m in METRICS
        },
        "eval_steps": curves.steps,
        "curves": {
            m: [curves.metrics[m][:, lam_of == lam].mean(1) for lam in config.lambdas]
            for m in METRICS
        },
        "final_train_loss": [
            float(result.loss_history[-1, lam_of == lam].mean()) for lam in config.lambdas
        ],
    }
    if name == "toy":
        g = np.linspace(-3.0, 3.0, 41, dtype=np.float32)
        gx, gy = np.meshgrid(g, g)
        grid = np.stack([gx.ravel(), gy.ravel()], -1).reshape(-1, 1, 2, 1)
        logits = ens.predict(eval_logits, result.params, grid, mesh)  # (K, G, 2)
        prob1 = np.asarray(jax.nn.softmax(logits, -1))[..., 1]
        first_seed = [i for i, m in enumerate(member_list) if m["seed"] == 0]
        out["surface"] = {
            "grid": g,
            "prob_class1": [np.round(prob1[i].reshape(len(g), len(g)), 4) for i in first_seed],
        }
    return out


# --------------------------------------------------------------------------- outputs


def make_report(results: dict[str, Any], config: Config) -> str:
    lines = [
        "# Confidence penalty: CE − λ·H",
        "",
        f"{config.seeds} seed(s) per λ, {config.steps} Adam steps (lr {config.learning_rate}, "
        "cosine); test-set metrics, mean ± std over seeds. Entropy in nats.",
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
            reporting.markdown_table(["λ", "accuracy", "NLL", "ECE", "mean entropy"], rows),
        ]
    return "\n".join(lines)


def _lambda_axis(ax: Any, lambdas: Sequence[float]) -> None:
    positive = [lam for lam in lambdas if lam > 0]
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel("λ")


def make_figures(results: dict[str, Any]) -> dict[str, Any]:
    figures = {}
    fig, axes = reporting.new_figure(1, len(METRICS), size=(3.6, 3.0))
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
    figures["metrics_vs_lambda"] = fig

    fig, axes = reporting.new_figure(1, len(results["datasets"]), size=(4.2, 3.2))
    for ax, (name, r) in zip(axes[0], results["datasets"].items(), strict=True):
        for lam, curve in zip(r["lambdas"], r["curves"]["nll"], strict=True):
            ax.plot(r["eval_steps"], curve, label=f"λ={lam:g}")
        ax.set_title(f"{name}: test NLL during training")
        ax.set_xlabel("step")
        ax.set_yscale("log")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    figures["curves"] = fig

    toy = results["datasets"].get("toy")
    if toy is not None and "surface" in toy:
        lams = toy["lambdas"]
        fig, axes = reporting.new_figure(1, len(lams), size=(2.6, 2.5))
        g = np.asarray(toy["surface"]["grid"])
        for ax, lam, prob in zip(axes[0], lams, toy["surface"]["prob_class1"], strict=True):
            im = ax.contourf(g, g, np.asarray(prob), levels=np.linspace(0, 1, 11), cmap="RdBu_r")
            ax.plot([-3, 3], [3, -3], "k--", lw=0.8)
            ax.set_title(f"λ={lam:g}")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="p(y=1 | x)")
        fig.suptitle("Toy problem: p(y=1 | x) for seed 0; dashed: true boundary", y=1.06)
        figures["toy_surfaces"] = fig
    return figures


def run(
    config: Config,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    smoke: bool = False,
    stop_after_step: int | None = None,
) -> dict[str, Any] | None:
    """Train and evaluate every dataset, write the outputs; ``None`` if stopped early."""
    started = time.time()
    datasets = {}
    for name in config.datasets:
        r = run_dataset(
            name,
            config,
            out_dir,
            resume=resume,
            progress=progress,
            stop_after_step=stop_after_step,
        )
        if r is None:
            return None
        datasets[name] = r
    results = {"experiment": NAME, "datasets": datasets}
    results.update(research.run_metadata(config, smoke=smoke, started=started))
    results = reporting.to_jsonable(results)
    research.write_outputs(out_dir, results, make_report(results, config), make_figures(results))
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    return research.cli_main(
        argv,
        doc=__doc__,
        name=NAME,
        config_cls=Config,
        smoke=SMOKE,
        run=run,
        make_report=make_report,
    )


if __name__ == "__main__":
    main()
