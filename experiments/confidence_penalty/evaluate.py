"""The analysis of ``confidence_penalty``: choices on validation, the method table on test,
paired differences, the λ sweep, the toy surface.

Everything reported is computed here, once; :mod:`.report` and :mod:`.figures` only read it.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.confidence_penalty.config import (
    BOUNDS,
    METHOD_LABELS,
    METRICS,
    PAIRS,
    Config,
)
from experiments.core import (
    data as data_lib,
    entropy_curves,
    metrics,
    sweeps,
    training,
    uncertainty,
)


def scores(logits: np.ndarray, labels: np.ndarray, num_bins: int, temperature=None) -> dict:
    """Accuracy, NLL, ECE and mean entropy per member, of ``softmax(logits / T)``."""
    if temperature is not None:
        logits = logits / np.asarray(temperature, np.float32)[:, None, None]
    return metrics.member_summary(logits, labels, num_bins=num_bins)


def summarize(
    result, grid, config: Config, split: data_lib.ImageData, val_logits, test_logits
) -> dict:
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
