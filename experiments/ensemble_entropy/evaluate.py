"""The evaluation: every number of ``results.json`` is computed here, once.

In distribution (classification metrics of the four variants, paired comparisons, temperatures),
OOD detection (every score on every set, with intervals and paired differences), the shift,
confidence and ensemble-size curves, the claims the intervals support, and the few arrays the
figures draw (reliability bins, score histograms). The rotation probes are in
:mod:`experiments.ensemble_entropy.rotation`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import data as data_lib, detection, metrics, outputs, stats, uncertainty
from experiments.ensemble_entropy.config import (
    CLASSIFICATION,
    METRIC_LABELS,
    SCORE_LABELS,
    VARIANTS,
    Config,
)
from experiments.ensemble_entropy.evalsets import Predictions

HIGHER_IS_BETTER = {"accuracy": True, "nll": False, "brier": False, "ece": False}
UNIT, POSITIVE = (0.0, 1.0), (0.0, None)
BOUNDS = {"accuracy": UNIT, "nll": POSITIVE, "brier": (0.0, 2.0), "ece": UNIT}
THRESHOLDS = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])


# --------------------------------------------------------------------------- in distribution


def classification_table(pred: Predictions, name: str, num_bins: int) -> dict[str, dict]:
    """Per variant and metric: the interval over replicates, and the raw per-replicate values."""
    s, labels = pred.sets.slices[name], pred.sets.labels_of(name)
    out = {}
    for variant in VARIANTS:
        values = uncertainty.classification(
            pred.log_probs[variant][:, s], labels, num_bins=num_bins
        )
        out[variant] = {
            m: {**stats.interval(v, bounds=BOUNDS[m]), "values": v} for m, v in values.items()
        }
    return out


def in_distribution(pred: Predictions, config: Config) -> dict[str, Any]:
    """Test and validation tables, and paired comparisons on the test set."""
    test = classification_table(pred, "test", config.num_bins)
    per_ensemble = pred.layout.ensemble_means
    comparisons = {}
    for metric in CLASSIFICATION:
        single = per_ensemble(test["single"][metric]["values"])
        single_ts = per_ensemble(test["single_ts"][metric]["values"])
        comparisons[metric] = {
            "ensemble_minus_single": stats.paired(test["ensemble"][metric]["values"], single),
            "ensemble_ts_minus_single_ts": stats.paired(
                test["ensemble_ts"][metric]["values"], single_ts
            ),
            "single_ts_minus_single": stats.paired(
                test["single_ts"][metric]["values"], test["single"][metric]["values"]
            ),
        }
    t = pred.sets.slices["test"]

    def mean_on_test(score: str) -> dict:
        return stats.interval(pred.scores[score][:, t].mean(axis=1), bounds=POSITIVE)

    return {
        "test": test,
        "val": classification_table(pred, "val", config.num_bins),
        "comparisons": comparisons,
        "mean_entropy": {
            "single": mean_on_test("single/entropy"),
            "ensemble_total": mean_on_test("ensemble/total_entropy"),
            "ensemble_mutual_information": mean_on_test("ensemble/mutual_information"),
        },
    }


def temperature_summary(pred: Predictions) -> dict[str, Any]:
    """Fitted temperatures and the validation NLL they were chosen by, before and after."""
    val, labels = pred.sets.slices["val"], pred.sets.labels_of("val")

    def nll(variant: str) -> np.ndarray:
        lp = pred.log_probs[variant][:, val]
        return -np.take_along_axis(lp, labels[None, :, None], -1)[..., 0].mean(axis=1)

    return {
        "single": stats.interval(pred.temperature, bounds=POSITIVE),
        "ensemble": stats.interval(pred.ensemble_temperature, bounds=POSITIVE),
        "val_nll": {v: stats.interval(nll(v), bounds=POSITIVE) for v in VARIANTS},
        "single_values": pred.temperature,
        "ensemble_values": pred.ensemble_temperature,
    }


# --------------------------------------------------------------------------- OOD detection


def raw_pixel_difficulty(data: data_lib.ImageData, pred: Predictions) -> dict[str, float]:
    """AUROC of the Euclidean 5-NN distance of raw pixels to the training images, per OOD set:
    how easy each set is without any model (1.0: trivially separable)."""
    distance = detection.knn_distance(data.x_train, pred.sets.images, k=5, normalize=False)
    test = distance[None, pred.sets.slices["test"]]  # one replicate row
    return {
        name: float(detection.auroc(test, distance[None, pred.sets.slices[name]])[0])
        for name in pred.sets.ood_names
    }


def ood_block(pred: Predictions, name: str, *, bootstrap: int, seed: int) -> dict[str, Any]:
    """Every score's AUROC, AUPR and FPR@95 on set ``name`` (positive) against the test set,
    with intervals over replicates (and the example bootstrap), plus paired comparisons."""
    t, s = pred.sets.slices["test"], pred.sets.slices[name]
    scores, means = {}, {}
    for key, values in pred.scores.items():
        scores[key] = detection.replicate_intervals(
            values[:, t], values[:, s], bootstrap=bootstrap, seed=seed
        )
        scores[key]["mean_score"] = stats.interval(values[:, s].mean(axis=1))
        means[key] = scores[key]["auroc"]["mean"]
    best, second = sorted(means, key=lambda k: -means[k])[:2]
    pairs = {
        "best_vs_runner_up": (best, second),
        "mi_minus_total_entropy": ("ensemble/mutual_information", "ensemble/total_entropy"),
        "total_entropy_minus_single_entropy": ("ensemble/total_entropy", "single/entropy"),
        "mi_minus_single_entropy": ("ensemble/mutual_information", "single/entropy"),
    }
    comparisons = {
        label: {"a": ka, "b": kb, **compare_scores(pred, ka, kb, t, s, bootstrap, seed)}
        for label, (ka, kb) in pairs.items()
    }
    return {"num_examples": s.stop - s.start, "scores": scores, "comparisons": comparisons}


def compare_scores(pred, a: str, b: str, t: slice, s: slice, bootstrap: int, seed: int) -> dict:
    """Paired AUROC difference ``a − b`` (:func:`detection.paired_difference`): over members if
    both are single-model scores, else over ensembles (a single-model score enters as the mean
    over each ensemble's members), with the example bootstrap."""
    va, vb = pred.scores[a], pred.scores[b]
    layout = pred.layout

    def reduce(values: np.ndarray):
        per_member = len(va) != len(vb) and len(values) == layout.size
        return layout.ensemble_means if per_member else None

    return detection.paired_difference(
        (va[:, t], va[:, s]),
        (vb[:, t], vb[:, s]),
        reduce_a=reduce(va),
        reduce_b=reduce(vb),
        bootstrap=bootstrap,
        seed=seed,
    )


def ood_section(pred: Predictions, data, config: Config) -> dict[str, Any]:
    """OOD blocks for every set; the bootstrap only for the headline sets (it is the slow part)."""
    headline = set(pred.sets.headline(config.severities))
    difficulty = raw_pixel_difficulty(data, pred)
    out = {}
    for i, name in enumerate(pred.sets.ood_names):
        boot = config.bootstrap if name in headline else 0
        out[name] = ood_block(pred, name, bootstrap=boot, seed=config.seed + i)
        out[name]["raw_pixel_knn_auroc"] = difficulty[name]
        out[name]["headline"] = name in headline
    return out


# --------------------------------------------------------------------------- curves


def shift_curves(pred: Predictions, config: Config, clean: dict[str, dict]) -> dict[str, Any]:
    """Ovadia et al.'s view: each metric of each variant against severity, per shift family."""
    out: dict[str, Any] = {}
    for kind in data_lib.SHIFTS:
        tables = [clean] + [
            classification_table(pred, f"{kind}@{lv}", config.num_bins) for lv in config.severities
        ]
        out[kind] = {
            "severity": [0, *config.severities],
            "level": [0.0] + [data_lib.SHIFT_LEVELS[kind][s - 1] for s in config.severities],
            **{
                variant: {m: [_strip(t[variant][m]) for t in tables] for m in CLASSIFICATION}
                for variant in VARIANTS
            },
        }
    return out


def _strip(cell: dict) -> dict:
    return {k: v for k, v in cell.items() if k != "values"}


def confidence_curves(pred: Predictions, names: list[str]) -> dict[str, Any]:
    """Accuracy and fraction of examples kept above each confidence threshold, per set."""
    out: dict[str, Any] = {"thresholds": THRESHOLDS}
    for name in ["test", *names]:
        s = pred.sets.slices[name]
        labels = pred.sets.labels_of(name) if name in pred.sets.labelled else None
        entry = {}
        for variant in ("single", "ensemble"):
            curves = uncertainty.accuracy_vs_confidence(
                pred.log_probs[variant][:, s], labels, THRESHOLDS
            )
            entry[variant] = {
                key: [stats.interval(values[:, i], bounds=UNIT) for i in range(len(THRESHOLDS))]
                for key, values in curves.items()
            }
        out[name] = entry
    return out


def size_curves(pred: Predictions, config: Config) -> dict[str, Any]:
    """Test metrics and OOD AUROC of random k-member subsets of each ensemble (``subsets`` per
    k; the same subsets in every ensemble), averaged over subsets, intervals over ensembles."""
    layout, t = pred.layout, pred.sets.slices["test"]
    sets = pred.sets.headline(config.severities)
    member_lp = pred.log_probs["single"]
    out: dict[str, Any] = {"k": list(config.sizes), "subsets": config.subsets, "ood_sets": sets}
    rows: dict[str, list] = {m: [] for m in CLASSIFICATION}
    auroc: dict[str, dict[str, list]] = {
        s: {n: [] for n in sets} for s in ("total_entropy", "mutual_information")
    }
    for k in config.sizes:
        subsets = uncertainty.random_subsets(layout.members, k, config.subsets, seed=config.seed)
        index = layout.subsets(subsets)
        groups = len(index) // k
        mix = uncertainty.mixture_log_probs(member_lp[index], groups)
        values = uncertainty.classification(
            mix[:, t], pred.sets.labels_of("test"), num_bins=config.num_bins
        )
        for m in CLASSIFICATION:
            rows[m].append(stats.interval(layout.ensemble_means(values[m]), bounds=BOUNDS[m]))
        scores = uncertainty.ensemble_scores(pred.logits[index], groups)
        for score, per_set in auroc.items():
            for n in sets:
                aurocs = detection.auroc(scores[score][:, t], scores[score][:, pred.sets.slices[n]])
                per_set[n].append(stats.interval(layout.ensemble_means(aurocs), bounds=UNIT))
    out["test"] = rows
    out["auroc"] = auroc
    return out


# --------------------------------------------------------------------------- claims


def claims(results: dict[str, Any]) -> list[str]:
    """The statements the intervals support (and the ones they do not), in words."""
    out = []
    comp = results["in_distribution"]["comparisons"]
    for metric in CLASSIFICATION:
        d = comp[metric]["ensemble_minus_single"]
        words = stats.verdict(
            d, a="the ensemble", b="its members", higher_is_better=HIGHER_IS_BETTER[metric]
        )
        out.append(
            f"Test {METRIC_LABELS[metric]}: {words} (ensemble − member mean "
            f"{outputs.fmt(d, 4, signed=True)})."
        )
    d = comp["ece"]["single_ts_minus_single"]
    out.append(
        "Temperature scaling (fit on validation): "
        + stats.verdict(d, a="the scaled single model", b="the raw one", higher_is_better=False)
        + f" in test ECE ({outputs.fmt(d, 4, signed=True)})."
    )
    for name, block in results["ood"].items():
        if not block["headline"]:
            continue
        top = block["comparisons"]["best_vs_runner_up"]
        lead = stats.verdict(
            top, a=SCORE_LABELS[top["a"]], b=SCORE_LABELS[top["b"]], higher_is_better=True
        )
        d = block["comparisons"]["mi_minus_total_entropy"]
        words = stats.verdict(d, a="mutual information", b="total entropy", higher_is_better=True)
        out.append(
            f"{name}: highest mean AUROC {SCORE_LABELS[top['a']]} "
            f"({outputs.fmt(block['scores'][top['a']]['auroc'], 3)}); against the runner-up: "
            f"{lead} ({outputs.fmt(top, 3, signed=True)}); {words} (AUROC difference "
            f"{outputs.fmt(d, 3, signed=True)}); raw-pixel 5-NN AUROC "
            f"{block['raw_pixel_knn_auroc']:.3f}."
        )
    return out


# --------------------------------------------------------------------------- for the figures


def figure_arrays(pred: Predictions, config: Config) -> dict[str, Any]:
    """What the figures draw besides ``results``: the reliability bins (and ECE) of replicate 0
    of each variant on the test set, and the per-example entropy scores of member 0 / ensemble 0
    on the test set, the non-shift OOD sets and the strongest rotation."""
    sl, labels = pred.sets.slices, pred.sets.labels_of("test")
    reliability = {}
    for variant in VARIANTS:
        ece, bins = metrics.calibration(
            pred.log_probs[variant][0, sl["test"]], labels, num_bins=config.num_bins
        )
        reliability[variant] = {"ece": ece, **bins}
    rotations = [n for n in pred.sets.ood_names if n.startswith("rotation@")]
    shown = ["test", *pred.sets.headline(()), *rotations[-1:]]
    scores = {
        "single model (member 0) entropy": pred.scores["single/entropy"][0],
        "ensemble 0 total entropy": pred.scores["ensemble/total_entropy"][0],
        "ensemble 0 mutual information": pred.scores["ensemble/mutual_information"][0],
    }
    histograms = {title: {n: v[sl[n]] for n in shown} for title, v in scores.items()}
    return {"reliability": reliability, "entropy_histograms": histograms}
