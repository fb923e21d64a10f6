"""Confidence penalty against label smoothing and temperature scaling, tuned on validation.

The regularised loss of Pereyra et al. (2017) is ``CE + λ · entjax.confidence_penalty(logits)``
= CE − λ H(p): a positive λ rewards predictive entropy and so fights over-confidence. It is
compared in one table with the two standard fixes of the same problem:

* **label smoothing** (Szegedy et al. 2016): cross-entropy against the smoothed target
  :math:`(1 - \\varepsilon)\\, \\mathrm{onehot}(y) + \\varepsilon / C`;
* **temperature scaling** (Guo et al. 2017): the plain cross-entropy model with its logits
  divided by the temperature :math:`T` that minimises the validation NLL
  (:func:`experiments.core.uncertainty.fit_temperature`), a post-hoc fix;

and with plain cross-entropy (λ = ε = 0). One member per (method, setting, seed), all trained
together in one vmapped step (λ and ε are per-member inputs of the entjax objective); member
``s`` of every setting starts from the same parameters. λ (among the positive values of
``--lambdas``) and ε (``--smoothings``) are each chosen by the mean **validation** NLL over
seeds; the test split is used only to report. Reported on the test split, per method: accuracy,
NLL, ECE and the mean predictive entropy — mean and Student-t 95% interval over ``--seeds``
seeds (``ddof = 1``) — and paired differences by seed against CE and CE + temperature scaling;
a difference is claimed only where its interval excludes 0. The whole λ sweep is reported too:
large λ over-regularises, predictions approach the uniform distribution (entropy → log C).

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
import jax.numpy as jnp
import numpy as np

import entjax
from experiments.core import (
    cli,
    data as data_lib,
    entropy_curves,
    metrics,
    models,
    outputs,
    sweeps,
    training,
    uncertainty,
)
from experiments.core.cli import option
from experiments.core.runner import Experiment, Outcome

NAME = "confidence_penalty"
DATASETS = ("digits", "toy")
METRICS = ("accuracy", "nll", "ece", "mean_entropy")
BOUNDS = {"accuracy": (0, 1), "nll": (0, None), "ece": (0, 1)}  # mean entropy: (0, log C)
METHODS = ("ce", "ce_ts", "cp", "ls")
METHOD_LABELS = {
    "ce": "cross-entropy",
    "ce_ts": "CE + temperature scaling",
    "cp": "confidence penalty",
    "ls": "label smoothing",
}


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    lambdas: tuple[float, ...] = option(
        (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0), "penalty weights λ >= 0 (0: plain CE)"
    )
    smoothings: tuple[float, ...] = option(
        (0.003, 0.01, 0.03, 0.1, 0.3), "label-smoothing ε in (0, 1)"
    )
    datasets: tuple[str, ...] = option(DATASETS, "datasets", choices=DATASETS)
    seeds: int = option(10, "members (seeds) per setting")
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
        cli.require(0.0 in self.lambdas, "--lambdas must include 0 (plain cross-entropy)")
        cli.require(any(v > 0 for v in self.lambdas), "--lambdas needs a value > 0")
        cli.require_all_positive(self, "smoothings")
        cli.require(all(v < 1 for v in self.smoothings), "--smoothings must lie in (0, 1)")
        cli.require_choice(self, "datasets", DATASETS)
        cli.require(len(self.datasets) > 0, "--datasets needs at least one dataset")
        for name in ("width", "toy_width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        for name in ("toy_train", "toy_test", "num_bins"):
            cli.require(getattr(self, name) >= 2, f"{cli.flag(name)} must be >= 2")

    @property
    def positive_lambdas(self) -> tuple[float, ...]:
        return tuple(v for v in self.lambdas if v > 0)


SMOKE = {
    "lambdas": (0.0, 1.0),
    "smoothings": (0.1,),
    "seeds": 2,
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
            input_shape=split.input_shape,
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
    out = summarise(result, grid, config, split, val_logits, test_logits)
    if name == "toy":
        out["surface"] = toy_surface(members, result.params, grid)
    return out


def scores(logits: np.ndarray, labels: np.ndarray, num_bins: int, temperature=None) -> dict:
    """Accuracy, NLL, ECE and mean entropy per member, of ``softmax(logits / T)``."""
    if temperature is not None:
        logits = logits / np.asarray(temperature, np.float32)[:, None, None]
    return metrics.member_summary(logits, labels, num_bins=num_bins)


def summarise(result, grid, config: Config, split: Split, val_logits, test_logits) -> dict:
    """Choices on validation, the method table on test, paired differences, the λ sweep."""
    bounds = {**BOUNDS, "mean_entropy": (0, math.log(split.num_classes))}
    val = scores(val_logits, split.y_val, config.num_bins)
    test = scores(test_logits, split.y_test, config.num_bins)
    temperature = uncertainty.fit_temperature(val_logits, split.y_val)
    test_ts = scores(test_logits, split.y_test, config.num_bins, temperature)
    lam, lam_val = sweeps.choose(
        val["nll"], grid, "value", config.positive_lambdas, higher_is_better=False, method="cp"
    )
    eps, eps_val = sweeps.choose(
        val["nll"], grid, "value", config.smoothings, higher_is_better=False, method="ls"
    )
    settings = {
        "ce": ({"method": "cp", "value": 0.0}, test),
        "ce_ts": ({"method": "cp", "value": 0.0}, test_ts),
        "cp": ({"method": "cp", "value": lam}, test),
        "ls": ({"method": "ls", "value": eps}, test),
    }
    table = {
        method: {m: sweeps.interval(v[m], grid, bounds=bounds[m], **where) for m in METRICS}
        for method, (where, v) in settings.items()
    }
    ce_where = settings["ce"][0]
    table["ce_ts"]["temperature"] = sweeps.interval(temperature, grid, bounds=(0, None), **ce_where)
    return {
        "num_classes": split.num_classes,
        "num_train": len(split.y_train),
        "num_val": len(split.y_val),
        "num_test": len(split.y_test),
        "max_entropy": math.log(split.num_classes),
        "chosen": {"lambda": lam, "smoothing": eps},
        "val_nll": {"lambdas": lam_val, "smoothings": eps_val},
        "methods": table,
        "comparisons": method_comparisons(settings, grid),
        "lambdas": list(config.lambdas),
        "per_lambda": {
            m: sweeps.intervals(
                test[m], grid, "value", config.lambdas, bounds=bounds[m], method="cp"
            )
            for m in METRICS
        },
        **training_curves(result, grid, config, lam, eps, split.num_classes),
    }


def training_curves(result, grid, config: Config, lam: float, eps: float, num_classes: int):
    """Validation curves per λ (mean over seeds) and the entropy block of CE and the choices."""
    c = result.curves
    lam_idx = [sweeps.where(grid, method="cp", value=v) for v in config.lambdas]
    return {
        "eval_steps": c.steps,
        "val_curves": {m: [c.metrics[m][:, i].mean(1) for i in lam_idx] for m in METRICS},
        "entropy_curves": entropy_curves.summarise(
            c,
            result.loss_history,
            series={
                "CE": list(sweeps.where(grid, method="cp", value=0.0)),
                f"CP λ={lam:g}": list(sweeps.where(grid, method="cp", value=lam)),
                f"LS ε={eps:g}": list(sweeps.where(grid, method="ls", value=eps)),
            },
            max_entropy=math.log(num_classes),
        ),
    }


PAIRS = (
    ("cp", "ce"),
    ("ls", "ce"),
    ("ce_ts", "ce"),
    ("cp", "ce_ts"),
    ("ls", "ce_ts"),
    ("cp", "ls"),
)


def method_comparisons(settings: dict, grid: list[dict]) -> list[dict[str, Any]]:
    """Paired differences by seed: each method against CE and against CE + temperature scaling."""
    out = []
    for a, b in PAIRS:
        (wa, va), (wb, vb) = settings[a], settings[b]
        ia, ib = sweeps.where(grid, **wa), sweeps.where(grid, **wb)
        row = {"a": a, "b": b}
        for m in ("accuracy", "nll", "ece"):
            row[m] = sweeps.compare_values(
                np.asarray(va[m])[ia],
                np.asarray(vb[m])[ib],
                names=(METHOD_LABELS[a], METHOD_LABELS[b]),
                higher_is_better=m == "accuracy",
            )
        out.append(row)
    return out


def toy_surface(members: training.Members, params: Any, grid: list[dict[str, Any]]) -> dict:
    """p(y=1 | x) on a 41 × 41 grid over [-3, 3]², for the seed-0 member of every λ."""
    g = np.linspace(-3.0, 3.0, 41, dtype=np.float32)
    gx, gy = np.meshgrid(g, g)
    points = np.stack([gx.ravel(), gy.ravel()], -1).reshape(-1, 1, 2, 1)
    prob1 = np.asarray(jax.nn.softmax(jnp.asarray(members.predict(params, points)), -1))[..., 1]
    first_seed = [i for i, m in enumerate(grid) if m["seed"] == 0 and m["method"] == "cp"]
    return {
        "grid": g,
        "lambdas": [grid[i]["value"] for i in first_seed],
        "prob_class1": [np.round(prob1[i].reshape(len(g), len(g)), 4) for i in first_seed],
    }


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    datasets = {name: run_dataset(name, config, options) for name in config.datasets}
    curves = {name: d.pop("entropy_curves") for name, d in datasets.items()}
    return Outcome({"datasets": datasets, "entropy_curves": curves})


# --------------------------------------------------------------------------- outputs


def _method_table(r: dict[str, Any]) -> str:
    chosen = {
        "ce": "λ = ε = 0",
        "ce_ts": f"T = {outputs.fmt(r['methods']['ce_ts']['temperature'], 2)}",
        "cp": f"λ = {r['chosen']['lambda']:g}",
        "ls": f"ε = {r['chosen']['smoothing']:g}",
    }
    rows = [[METHOD_LABELS[m], chosen[m], *(r["methods"][m][k] for k in METRICS)] for m in METHODS]
    headers = ["method", "setting (validation)", "accuracy", "NLL", "ECE", "mean entropy"]
    return outputs.markdown_table(headers, rows, digits=3)


def _comparison_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    for row in r["comparisons"]:
        parts = [
            f"{label} {outputs.fmt(row[m], 3)}" + ("" if row[m]["significant"] else " (n.s.)")
            for m, label in (("accuracy", "accuracy"), ("nll", "NLL"), ("ece", "ECE"))
        ]
        lines.append(
            f"- {METHOD_LABELS[row['a']]} − {METHOD_LABELS[row['b']]}: " + "; ".join(parts) + "."
        )
    return lines


def _sweep_table(r: dict[str, Any]) -> str:
    rows = [
        [f"{lam:g}", *(sweeps.entry(r["per_lambda"][m], i) for m in METRICS)]
        for i, lam in enumerate(r["lambdas"])
    ]
    return outputs.markdown_table(["λ", "accuracy", "NLL", "ECE", "mean entropy"], rows, digits=3)


def report(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = [
        "# Confidence penalty against label smoothing and temperature scaling",
        "",
        f"{config['seeds']} seeds per setting, {config['steps']} Adam steps (lr "
        f"{config['learning_rate']}, cosine). λ, ε and T are chosen on the validation split "
        "(mean validation NLL over seeds; T per member); test-set metrics, mean [95% interval] "
        "over seeds (Student t, ddof = 1). Entropy in nats.",
    ]
    for name, r in results["datasets"].items():
        lines += [
            "",
            f"## {name} ({r['num_classes']} classes, max entropy {r['max_entropy']:.3f} nats; "
            f"{r['num_train']} train / {r['num_val']} validation / {r['num_test']} test)",
            "",
            _method_table(r),
            "",
            "Paired differences by seed; (n.s.): the interval includes 0, no difference claimed.",
            "",
            *_comparison_lines(r),
            "",
            "The whole λ sweep (test split; for description, not for choosing):",
            "",
            _sweep_table(r),
        ]
    return "\n".join(lines)


def _lambda_axis(ax: Any, lambdas: Sequence[float]) -> None:
    positive = [lam for lam in lambdas if lam > 0]
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel("λ")


def _sweep_figure(results: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, len(METRICS), size=(3.6, 3.0))
    titles = {
        "accuracy": "test accuracy",
        "nll": "test NLL (nats)",
        "ece": "ECE",
        "mean_entropy": "mean entropy / log C",
    }
    for i, (name, r) in enumerate(results["datasets"].items()):
        lams = np.asarray(r["lambdas"], float)
        for ax, m in zip(axes[0], METRICS, strict=True):
            scale = r["max_entropy"] if m == "mean_entropy" else 1.0
            col = {
                k: np.asarray(v, float) / scale for k, v in r["per_lambda"][m].items() if k != "n"
            }
            err = np.stack([col["mean"] - col["low"], col["high"] - col["mean"]])
            ax.errorbar(
                lams, col["mean"], yerr=err, marker="o", capsize=2, color=f"C{i}", label=name
            )
            ax.axvline(r["chosen"]["lambda"], color=f"C{i}", ls=":", lw=0.8)
            ax.set_title(titles[m])
            _lambda_axis(ax, lams)
    axes[0, 0].legend()
    fig.suptitle("Confidence penalty sweep (test; 95% intervals; dotted: λ chosen on validation)")
    fig.tight_layout()
    return fig


def _curves_figure(results: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, len(results["datasets"]), size=(4.2, 3.2))
    for ax, (name, r) in zip(axes[0], results["datasets"].items(), strict=True):
        for lam, curve in zip(r["lambdas"], r["val_curves"]["nll"], strict=True):
            ax.plot(r["eval_steps"], curve, label=f"λ={lam:g}")
        ax.set_title(f"{name}: validation NLL during training")
        ax.set_xlabel("step")
        ax.set_yscale("log")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _toy_figure(toy: dict[str, Any]) -> Any:
    lams = toy["surface"]["lambdas"]
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
    return fig


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    out = {"metrics_vs_lambda": _sweep_figure(results), "curves": _curves_figure(results)}
    toy = results["datasets"].get("toy")
    if toy is not None and "surface" in toy:
        out["toy_surfaces"] = _toy_figure(toy)
    return out


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
