"""Intervals that include the test examples, and the declared family of comparisons (issue 22).

* In distribution: accuracy, NLL and Brier are means of per-example values, so their intervals
  are :func:`stats.seeds_and_examples` (a hierarchical bootstrap over replicates, then the test
  examples). Single-model rows are the R·K members, each an independent replicate (its own
  initialisation and data order); ensemble rows are the R ensembles. A paired ensemble − single
  difference is formed per example, the single-model value averaged over the K members of each
  ensemble first, so both sides have one row per ensemble. ECE is not a mean of per-example
  values: it keeps its Student-t interval over replicates.
* OOD detection: on the bootstrapped (headline) sets every metric's interval is
  :func:`detection.combined_intervals` (replicates, then examples) and a comparison is
  :func:`detection.combined_difference`, with a p-value.
* :func:`family`: the comparisons declared in :data:`~experiments.ensemble_entropy.config.
  PRIMARY_COMPARISONS` and :data:`~experiments.ensemble_entropy.config.PRIMARY_IN_DISTRIBUTION`,
  on the headline OOD sets a model is needed for, with Holm's correction over all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import detection, stats
from experiments.ensemble_entropy.config import (
    FAMILY_ALPHA,
    NEAR_OOD_BELOW,
    PER_EXAMPLE,
    PRIMARY_COMPARISONS,
    PRIMARY_IN_DISTRIBUTION,
    SOLVED_BY_RAW_PIXELS,
    Layout,
)

UNIT = (0.0, 1.0)
BOUNDS = {"accuracy": UNIT, "nll": (0.0, None), "brier": (0.0, 2.0)}
# Resamples of the in-distribution hierarchical bootstrap (cheap: one mean per resample).
EXAMPLE_RESAMPLES = 2000


def per_example(log_probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Correctness (0/1), NLL and Brier score (sum over classes) of every example: ``(P, n)``."""
    lp = np.asarray(log_probs, np.float64)
    y = np.asarray(labels)
    picked = np.take_along_axis(lp, y[None, :, None], -1)[..., 0]
    onehot = np.eye(lp.shape[-1])[y]
    return {
        "accuracy": (lp.argmax(-1) == y).astype(np.float64),
        "nll": -picked,
        "brier": np.sum((np.exp(lp) - onehot) ** 2, axis=-1),
    }


def example_intervals(log_probs: np.ndarray, labels: np.ndarray, *, seed: int) -> dict[str, dict]:
    """Per metric of :data:`PER_EXAMPLE`: mean and 95% interval over replicate rows and the test
    examples together (:func:`stats.seeds_and_examples`); the t-interval over rows alone is
    ``seeds_interval``."""
    values = per_example(log_probs, labels)
    return {
        m: stats.seeds_and_examples(
            values[m], seed=seed, num_resamples=EXAMPLE_RESAMPLES, bounds=BOUNDS[m]
        )
        for m in PER_EXAMPLE
    }


def example_difference(
    a: np.ndarray, b: np.ndarray, labels: np.ndarray, layout: Layout, *, seed: int
) -> dict[str, dict]:
    """Paired ``a − b`` per :data:`PER_EXAMPLE` metric from per-example differences: ``a`` the
    ``(R, n, C)`` ensembles' log-probabilities, ``b`` the ``(R·K, n, C)`` members' (averaged per
    ensemble, example by example). Hierarchical bootstrap over ensembles and examples."""
    va, vb = per_example(a, labels), per_example(b, labels)
    return {
        m: stats.seeds_and_examples(
            va[m] - layout.ensemble_means(vb[m]), seed=seed, num_resamples=EXAMPLE_RESAMPLES
        )
        for m in PER_EXAMPLE
    }


# --------------------------------------------------------------------------- OOD


def ood_intervals(in_scores: np.ndarray, out_scores: np.ndarray, *, bootstrap: int, seed: int):
    """AUROC, AUPR and FPR@95 with :func:`detection.combined_intervals` where ``bootstrap`` > 0,
    else the Student-t interval over replicates only (``interval`` says which)."""
    if bootstrap:
        return detection.combined_intervals(in_scores, out_scores, bootstrap=bootstrap, seed=seed)
    values = detection.per_replicate(in_scores, out_scores)
    return {
        m: {**stats.interval(v, bounds=UNIT), "interval": "replicates only"}
        for m, v in values.items()
    }


def compare_scores(
    scores: dict[str, np.ndarray],
    layout: Layout,
    a: str,
    b: str,
    t: slice,
    s: slice,
    *,
    bootstrap: int,
    seed: int,
) -> dict:
    """Paired AUROC difference ``a − b`` (:func:`detection.combined_difference`): over members if
    both are single-model scores, else over ensembles (a single-model score enters as the mean
    over each ensemble's members), with the examples resampled too; two-sided ``p_value``."""
    va, vb = scores[a], scores[b]

    def reduce(values: np.ndarray):
        per_member = len(va) != len(vb) and len(values) == layout.size
        return layout.ensemble_means if per_member else None

    return {
        "a": a,
        "b": b,
        **detection.combined_difference(
            (va[:, t], va[:, s]),
            (vb[:, t], vb[:, s]),
            reduce_a=reduce(va),
            reduce_b=reduce(vb),
            bootstrap=bootstrap,
            seed=seed,
        ),
    }


def declared_pairs(score_names) -> dict[str, tuple[str, str]]:
    """The declared OOD comparisons whose two scores this run has."""
    return {k: ab for k, ab in PRIMARY_COMPARISONS.items() if set(ab) <= set(score_names)}


def solved_by_raw_pixels(raw_pixel_auroc: float) -> bool:
    """Whether a set needs no model: its raw-pixel 5-NN AUROC reaches the declared threshold."""
    return raw_pixel_auroc >= SOLVED_BY_RAW_PIXELS


def ranked_sets(difficulty: dict[str, float], headline: list[str]) -> list[str]:
    """The OOD sets the scores are ranked (and the declared comparisons made) on, by a rule that
    reads no model: every headline set raw pixels do not solve and, per shift family, the most
    severe level they do not solve (on digits every family's worst level is solved)."""
    out = [n for n in headline if not solved_by_raw_pixels(difficulty[n])]
    families: dict[str, list[tuple[int, str]]] = {}
    for name in difficulty:
        if "@" in name and not solved_by_raw_pixels(difficulty[name]):
            kind, level = name.split("@")
            families.setdefault(kind, []).append((int(level), name))
    out += [max(levels)[1] for levels in families.values()]
    return [n for n in difficulty if n in set(out)]  # in set order, once each


# --------------------------------------------------------------------------- the family


def family(in_distribution: dict[str, Any], ood: dict[str, Any]) -> dict[str, Any]:
    """Every declared comparison of this run with its p-value, Holm's adjusted p-value over the
    whole family and the verdict (``confirmed``: rejected at :data:`FAMILY_ALPHA`)."""
    tests: dict[str, dict] = {}
    for metric in PRIMARY_IN_DISTRIBUTION:
        d = in_distribution["comparisons"][metric]["ensemble_minus_single"]
        tests[f"test set: {metric}, ensemble − single"] = {
            "kind": "in_distribution",
            "set": "test",
            "metric": metric,
            "comparison": "ensemble_minus_single",
            **_summary(d),
        }
    for name, block in ood.items():
        if not block["ranked"]:
            continue
        for label in PRIMARY_COMPARISONS:
            d = block["comparisons"].get(label)
            if d is None:
                continue
            tests[f"{name}: {label}"] = {
                "kind": "ood",
                "set": name,
                "metric": "auroc",
                "comparison": label,
                "a": d["a"],
                "b": d["b"],
                **_summary(d),
            }
    holm = stats.holm({k: v["p"] for k, v in tests.items()}, alpha=FAMILY_ALPHA)
    for key, test in tests.items():
        test["p_holm"] = holm[key]["p_holm"]
        test["confirmed"] = holm[key]["rejected"]
    not_ranked = {n: b["raw_pixel_knn_auroc"] for n, b in ood.items() if b["solved_by_raw_pixels"]}
    return {
        "alpha": FAMILY_ALPHA,
        "correction": "Holm (1979) over the whole declared family",
        # the declared pairs this run can make (the cheap methods' only with --methods)
        "declared_ood": {
            k: list(v) for k, v in declared_pairs(next(iter(ood.values()))["scores"]).items()
        },
        "declared_in_distribution": [f"{m}: ensemble − single" for m in PRIMARY_IN_DISTRIBUTION],
        "solved_by_raw_pixels_at": SOLVED_BY_RAW_PIXELS,
        "ranked_sets": [n for n, b in ood.items() if b["ranked"]],
        "ranked_rule": (
            "headline sets with raw-pixel 5-NN AUROC below the threshold, and per shift family "
            "the most severe level below it"
        ),
        "solved_by_raw_pixels": not_ranked,
        "near_ood_below": NEAR_OOD_BELOW,
        "near_ood_sets": [n for n, b in ood.items() if b["near_ood"]],
        "size": len(tests),
        "family": tests,
        "confirmed": [k for k, v in tests.items() if v["confirmed"]],
    }


def _summary(d: dict) -> dict:
    return {
        "mean": d["mean"],
        "low": d["low"],
        "high": d["high"],
        "p": d["p_value"],
        "interval": d.get("interval", ""),
    }
