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
from experiments.ensemble_entropy import significance
from experiments.ensemble_entropy.config import (
    CLASSIFICATION,
    METRIC_LABELS,
    NEAR_OOD_BELOW,
    PER_EXAMPLE,
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


def classification_table(
    pred: Predictions, name: str, num_bins: int, *, examples_seed: int | None = None
) -> dict[str, dict]:
    """Per variant and metric: the interval over replicates, and the raw per-replicate values.

    With ``examples_seed``, accuracy, NLL and Brier get the interval over replicates *and* test
    examples (:func:`significance.example_intervals`; single models: the R·K members are the
    replicates); ECE keeps the interval over replicates."""
    s, labels = pred.sets.slices[name], pred.sets.labels_of(name)
    out = {}
    for variant in VARIANTS:
        lp = pred.log_probs[variant][:, s]
        values = uncertainty.classification(lp, labels, num_bins=num_bins)
        out[variant] = {
            m: {**stats.interval(v, bounds=BOUNDS[m]), "values": v} for m, v in values.items()
        }
        if examples_seed is not None:
            both = significance.example_intervals(lp, labels, seed=examples_seed)
            for m, cell in both.items():
                out[variant][m] = {**cell, "values": values[m]}
    return out


def in_distribution(pred: Predictions, config: Config) -> dict[str, Any]:
    """Test and validation tables, and paired comparisons on the test set.

    Accuracy, NLL and Brier (test table and ensemble − single differences) carry the example
    term (:mod:`~experiments.ensemble_entropy.significance`); ECE and the validation table are
    intervals over replicates only. Temperature scaling leaves the argmax, hence the accuracy,
    unchanged: its accuracy comparisons would repeat the raw ones and are not made."""
    test = classification_table(pred, "test", config.num_bins, examples_seed=config.seed)
    layout, t, labels = pred.layout, pred.sets.slices["test"], pred.sets.labels_of("test")
    lp = {v: pred.log_probs[v][:, t] for v in VARIANTS}
    seed = config.seed
    per_example = {
        "ensemble_minus_single": significance.example_difference(
            lp["ensemble"], lp["single"], labels, layout, seed=seed
        ),
        "ensemble_ts_minus_single_ts": significance.example_difference(
            lp["ensemble_ts"], lp["single_ts"], labels, layout, seed=seed
        ),
    }
    single_ts = significance.per_example(lp["single_ts"], labels)
    single = significance.per_example(lp["single"], labels)
    comparisons: dict[str, dict] = {}
    for metric in CLASSIFICATION:
        if metric in PER_EXAMPLE:
            entry = {k: d[metric] for k, d in per_example.items()}
            if metric == "accuracy":  # the scaled variants' accuracies are the raw ones
                del entry["ensemble_ts_minus_single_ts"]
            else:
                entry["single_ts_minus_single"] = stats.seeds_and_examples(
                    single_ts[metric] - single[metric],
                    seed=seed,
                    num_resamples=significance.EXAMPLE_RESAMPLES,
                )
        else:  # ECE: over replicates only (single-model values averaged per ensemble)
            values = {v: test[v][metric]["values"] for v in VARIANTS}
            entry = {
                "ensemble_minus_single": stats.paired(
                    values["ensemble"], layout.ensemble_means(values["single"])
                ),
                "ensemble_ts_minus_single_ts": stats.paired(
                    values["ensemble_ts"], layout.ensemble_means(values["single_ts"])
                ),
                "single_ts_minus_single": stats.paired(values["single_ts"], values["single"]),
            }
            for d in entry.values():
                d["interval"] = "replicates only"
        comparisons[metric] = entry

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


def ood_block(
    pred: Predictions, name: str, *, bootstrap: int, seed: int, ranked: bool
) -> dict[str, Any]:
    """Every score's AUROC, AUPR and FPR@95 on set ``name`` (positive) against the test set,
    with intervals over replicates (and, with ``bootstrap``, the test examples:
    :func:`significance.ood_intervals`). On a ``ranked`` set (one raw pixels do not solve) with
    the bootstrap, the declared comparisons and, exploratory, the best score against the
    runner-up."""
    t, s = pred.sets.slices["test"], pred.sets.slices[name]
    scores, means = {}, {}
    for key, values in pred.scores.items():
        scores[key] = significance.ood_intervals(
            values[:, t], values[:, s], bootstrap=bootstrap, seed=seed
        )
        scores[key]["mean_score"] = stats.interval(values[:, s].mean(axis=1))
        means[key] = scores[key]["auroc"]["mean"]
    comparisons = {}
    if ranked and bootstrap:
        pairs = significance.declared_pairs(pred.scores)
        best, second = sorted(means, key=lambda k: -means[k])[:2]
        pairs["best_vs_runner_up"] = (best, second)
        comparisons = {
            label: {
                "declared": label != "best_vs_runner_up",
                **significance.compare_scores(
                    pred.scores, pred.layout, ka, kb, t, s, bootstrap=bootstrap, seed=seed
                ),
            }
            for label, (ka, kb) in pairs.items()
        }
    return {
        "num_examples": s.stop - s.start,
        "ranked": ranked,
        "scores": scores,
        "comparisons": comparisons,
    }


def ood_section(pred: Predictions, data, config: Config) -> dict[str, Any]:
    """OOD blocks for every set; the bootstrap only for the headline and the ranked sets (it is
    the slow part). A set whose raw-pixel 5-NN AUROC reaches the declared threshold is reported,
    not ranked (:func:`significance.ranked_sets` says which sets are ranked)."""
    headline = pred.sets.headline(config.severities)
    difficulty = raw_pixel_difficulty(data, pred)
    ranked = significance.ranked_sets(difficulty, headline)
    out = {}
    for i, name in enumerate(pred.sets.ood_names):
        boot = config.bootstrap if name in headline or name in ranked else 0
        out[name] = ood_block(
            pred, name, bootstrap=boot, seed=config.seed + i, ranked=name in ranked
        )
        out[name]["raw_pixel_knn_auroc"] = difficulty[name]
        out[name]["solved_by_raw_pixels"] = significance.solved_by_raw_pixels(difficulty[name])
        # near-OOD: a set of other images (not a shift of the test images) that raw pixels
        # barely tell from the test set
        out[name]["near_ood"] = "@" not in name and bool(difficulty[name] < NEAR_OOD_BELOW)
        out[name]["headline"] = name in headline
    return out


# --------------------------------------------------------------------------- curves


def shift_curves(pred: Predictions, config: Config) -> dict[str, Any]:
    """Ovadia et al.'s view: each metric of each variant against severity, per shift family
    (intervals over replicates only, the clean test set included, so the points compare)."""
    out: dict[str, Any] = {}
    clean = classification_table(pred, "test", config.num_bins)
    for kind in data_lib.SHIFTS:
        tables = [clean] + [
            classification_table(pred, f"{kind}@{lv}", config.num_bins) for lv in config.severities
        ]
        out[kind] = {
            "severity": [0, *config.severities],
            "level": [0.0] + [data_lib.SHIFT_LEVELS[kind][s - 1] for s in config.severities],
            **{
                variant: {
                    m: [without_values(t[variant][m]) for t in tables] for m in CLASSIFICATION
                }
                for variant in VARIANTS
            },
        }
    return out


def without_values(cell: dict) -> dict:
    """An interval cell without its per-replicate ``values`` (for tables that repeat it)."""
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


def _family_words(test: dict) -> str:
    """A declared comparison in words, with its difference, p and Holm-adjusted p."""
    numbers = (
        f"{outputs.fmt(test, 4 if test['kind'] == 'in_distribution' else 3, signed=True)}, "
        f"p = {test['p']:.2g}, Holm p = {test['p_holm']:.2g}"
    )
    if test["kind"] == "in_distribution":
        m = test["metric"]
        better = (test["mean"] > 0) == HIGHER_IS_BETTER[m]
        what = f"the ensemble is {'better' if better else 'worse'} than its members"
        if not test["confirmed"]:
            what = "no confirmed difference between the ensemble and its members"
        return f"test {METRIC_LABELS[m]}: {what} (ensemble − member mean {numbers})"
    a, b = SCORE_LABELS[test["a"]], SCORE_LABELS[test["b"]]
    hi, lo = (a, b) if test["mean"] > 0 else (b, a)
    what = f"{hi} detects better than {lo}"
    if not test["confirmed"]:
        what = f"no confirmed difference between {a} and {b}"
    return f"{test['set']}: {what} (AUROC {a} − {b} {numbers})"


def claims(results: dict[str, Any]) -> list[str]:
    """The statements the results support, in words: the declared comparisons that survive
    Holm's correction are *confirmed*; the declared ones that do not are listed as such; every
    other comparison is *exploratory*; sets raw pixels solve are *not ranked*."""
    fam = results["comparisons"]
    tests = fam["family"]
    out = [
        f"Confirmed (declared family of {fam['size']} tests, Holm at α = {fam['alpha']}): "
        + _family_words(t)
        + "."
        for t in tests.values()
        if t["confirmed"]
    ]
    out += [
        f"Not confirmed (declared): {_family_words(t)}."
        for t in tests.values()
        if not t["confirmed"]
    ]
    comp = results["in_distribution"]["comparisons"]
    d = comp["ece"]["ensemble_minus_single"]
    out.append(
        "Exploratory (ECE, intervals over ensembles only): "
        + stats.verdict(d, a="the ensemble", b="its members", higher_is_better=False)
        + f" in test ECE ({outputs.fmt(d, 4, signed=True)})."
    )
    d = comp["ece"]["single_ts_minus_single"]
    out.append(
        "Exploratory (temperature scaling, fit on validation): "
        + stats.verdict(d, a="the scaled single model", b="the raw one", higher_is_better=False)
        + f" in test ECE ({outputs.fmt(d, 4, signed=True)})."
    )
    for name, block in results["ood"].items():
        if not (block["headline"] or block["ranked"]):
            continue
        if block["solved_by_raw_pixels"]:
            out.append(
                f"{name}: solved by raw pixels (5-NN AUROC {block['raw_pixel_knn_auroc']:.3f} "
                f"≥ {fam['solved_by_raw_pixels_at']}): not ranked."
            )
            continue
        top = block["comparisons"].get("best_vs_runner_up")
        if top is None:  # no bootstrap: no comparisons
            continue
        lead = stats.verdict(
            top, a=SCORE_LABELS[top["a"]], b=SCORE_LABELS[top["b"]], higher_is_better=True
        )
        out.append(
            f"Exploratory (chosen after seeing the results, uncorrected): {name}: highest mean "
            f"AUROC {SCORE_LABELS[top['a']]} "
            f"({outputs.fmt(block['scores'][top['a']]['auroc'], 3)}); against the runner-up: "
            f"{lead} ({outputs.fmt(top, 3, signed=True)}, p = {top['p_value']:.2g})."
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
