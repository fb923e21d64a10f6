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
from scipy import special

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
    stats,
    sweeps,
    training,
    uncertainty,
)

EXAMPLE_METRICS = ("accuracy", "nll")  # means of per-example values: seeds × examples intervals


def scores(logits: np.ndarray, labels: np.ndarray, num_bins: int, temperature=None) -> dict:
    """Accuracy, NLL, ECE and mean entropy per member, of ``softmax(logits / T)``."""
    if temperature is not None:
        logits = logits / np.asarray(temperature, np.float32)[:, None, None]
    return metrics.member_summary(logits, labels, num_bins=num_bins)


def per_example(logits: np.ndarray, labels: np.ndarray, temperature=None) -> dict[str, np.ndarray]:
    """Per member and test example ``(M, n)``: correctness (0/1) and NLL (nats) of
    ``softmax(logits / T)``."""
    z = np.asarray(logits, np.float64)
    if temperature is not None:
        z = z / np.asarray(temperature, np.float64)[:, None, None]
    log_p = z - special.logsumexp(z, axis=-1, keepdims=True)
    labels = np.asarray(labels)
    nll = -np.take_along_axis(log_p, np.broadcast_to(labels, z.shape[:2])[..., None], -1)[..., 0]
    return {"accuracy": (z.argmax(-1) == labels).astype(np.float64), "nll": nll}


def summarize(
    result, grid, config: Config, split: data_lib.ImageData, val_logits, test_logits
) -> dict:
    """Choices on validation, the method table on test, paired differences, the λ sweep.

    Accuracy and NLL (means over test examples) get intervals over seeds *and* test examples
    (:func:`experiments.core.stats.seeds_and_examples`, per-example differences for the paired
    comparisons); ECE and mean entropy, which are not per-example means, over seeds alone."""
    bounds = {**BOUNDS, "mean_entropy": (0, math.log(split.num_classes))}
    val = scores(val_logits, split.y_val, config.num_bins)
    test = scores(test_logits, split.y_test, config.num_bins)
    temperature = uncertainty.fit_temperature(val_logits, split.y_val)
    test_ts = scores(test_logits, split.y_test, config.num_bins, temperature)
    examples = per_example(test_logits, split.y_test)
    examples_ts = per_example(test_logits, split.y_test, temperature)
    lam, lam_val = sweeps.choose(
        val["nll"], grid, "value", config.lambdas, higher_is_better=False, method="cp"
    )
    eps, eps_val = sweeps.choose(
        val["nll"], grid, "value", config.smoothings, higher_is_better=False, method="ls"
    )
    settings = {
        "ce": ({"method": "cp", "value": 0.0}, test, examples),
        "ce_ts": ({"method": "cp", "value": 0.0}, test_ts, examples_ts),
        "cp": ({"method": "cp", "value": lam}, test, examples),
        "ls": ({"method": "ls", "value": eps}, test, examples),
    }
    boot = {"seed": config.seed, "num_resamples": config.bootstrap_resamples}
    table = {}
    for method, (where, v, ex) in settings.items():
        idx = sweeps.where(grid, **where)
        table[method] = {
            m: (
                stats.seeds_and_examples(ex[m][idx], bounds=bounds[m], **boot)
                if m in EXAMPLE_METRICS
                else sweeps.interval(v[m], grid, bounds=bounds[m], **where)
            )
            for m in METRICS
        }
    ce_where = settings["ce"][0]
    table["ce_ts"]["temperature"] = sweeps.interval(temperature, grid, bounds=(0, None), **ce_where)
    per_seed_t = temperature[sweeps.where(grid, **ce_where)]
    return {
        "num_classes": split.num_classes,
        "num_train": len(split.y_train),
        "num_val": len(split.y_val),
        "num_test": len(split.y_test),
        "max_entropy": math.log(split.num_classes),
        "chosen": {"lambda": lam, "smoothing": eps},
        "val_nll": {"lambdas": lam_val, "smoothings": eps_val},
        "methods": table,
        "ce_overconfident_seeds": int(np.sum(per_seed_t > 1.0)),
        "comparisons": method_comparisons(settings, grid, boot),
        "lambdas": list(config.lambdas),
        "per_lambda": {
            m: sweeps.intervals(
                test[m], grid, "value", config.lambdas, bounds=bounds[m], method="cp"
            )
            for m in METRICS
        },
        "lambda_vs_ce": lambda_vs_ce(test, examples, grid, config.lambdas, boot),
        **training_curves(result, grid, config, lam, eps, split.num_classes),
    }


def training_curves(result, grid, config: Config, lam: float, eps: float, num_classes: int):
    """Validation curves per λ (mean over seeds) and the entropy block of CE and the choices."""
    c = result.curves
    lam_idx = [sweeps.where(grid, method="cp", value=v) for v in config.lambdas]
    return {
        "eval_steps": c.steps,
        "val_curves": {m: [c.metrics[m][:, i].mean(1) for i in lam_idx] for m in METRICS},
        "entropy_curves": entropy_curves.summarize(
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


def paired_row(va, vb, ea, eb, ia, ib, names, boot) -> dict[str, Any]:
    """``a − b`` for accuracy and NLL over seeds and test examples (per-example differences of
    the same seed and image), for ECE over seeds (Student t)."""
    row: dict[str, Any] = {}
    for m in ("accuracy", "nll", "ece"):
        higher = m == "accuracy"
        if m in EXAMPLE_METRICS:
            d = stats.seeds_and_examples(ea[m][ia] - eb[m][ib], **boot)
            d["verdict"] = stats.verdict(d, a=names[0], b=names[1], higher_is_better=higher)
            d["examples"] = int(ea[m].shape[1])
        else:
            d = sweeps.compare_values(
                np.asarray(va[m])[ia], np.asarray(vb[m])[ib], names=names, higher_is_better=higher
            )
            d["interval"] = "Student t over seeds"
        row[m] = d
    return row


def method_comparisons(settings: dict, grid: list[dict], boot: dict) -> list[dict[str, Any]]:
    """Paired differences: each method against CE and against CE + temperature scaling."""
    out = []
    for a, b in PAIRS:
        (wa, va, ea), (wb, vb, eb) = settings[a], settings[b]
        ia, ib = sweeps.where(grid, **wa), sweeps.where(grid, **wb)
        names = (METHOD_LABELS[a], METHOD_LABELS[b])
        out.append({"a": a, "b": b, **paired_row(va, vb, ea, eb, ia, ib, names, boot)})
    return out


def lambda_vs_ce(test, examples, grid, lambdas, boot) -> list[dict[str, Any]]:
    """Every λ > 0 against plain CE (λ = 0) of the same seed, paired as :func:`paired_row`."""
    i0 = sweeps.where(grid, method="cp", value=0.0)
    rows = []
    for lam in (v for v in lambdas if v > 0):
        il = sweeps.where(grid, method="cp", value=lam)
        names = (f"λ = {lam:g}", "CE")
        rows.append(
            {"lambda": lam, **paired_row(test, test, examples, examples, il, i0, names, boot)}
        )
    return rows


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
