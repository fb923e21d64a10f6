"""``report.md``'s per-input sections: selective classification and misclassification
detection, and the seed's claim that an ensemble's entropy exceeds its members'; read from the
results only."""

from __future__ import annotations

from typing import Any

from experiments.core import outputs
from experiments.ensemble_entropy.config import (
    VARIANT_LABELS,
    VARIANTS,
)

MISCLASSIFICATION_SCORES = {
    "max_softmax": "1 − max-softmax",
    "entropy": "entropy",
    "mutual_information": "mutual information",
}


def _test_first(blocks: dict[str, Any]) -> list[tuple[str, Any]]:
    """The per-set blocks, the test set first (``results.json`` may store them sorted)."""
    return sorted(blocks.items(), key=lambda item: item[0] != "test")


def _milli(cell: dict) -> dict:
    """An interval (or paired difference) in units of 10⁻³, for the small AURCs."""
    return {k: cell[k] * 1e3 for k in ("mean", "low", "high")}


def selective(r: dict[str, Any]) -> list[str]:
    if "selective" not in r:
        return []
    lines = [
        "## Selective classification and misclassification detection",
        "",
        "Abstaining on the least confident predictions (confidence = max probability): AURC, the "
        "area under the risk-coverage curve, and E-AURC, its excess over an oracle ranking "
        "(Geifman et al. 2019; lower is better; both in units of 10⁻³). Misclassification "
        "AUROC: each score's AUROC for telling wrong predictions (positive) from right ones "
        "(Hendrycks & Gimpel 2017; higher is better). Intervals over members or ensembles; the "
        "ensemble's mutual information is the same with or without temperature scaling of the "
        "mixture.",
        "",
    ]
    scores = list(MISCLASSIFICATION_SCORES)
    headers = ["variant", "error rate", "AURC ×10³ ↓", "E-AURC ×10³ ↓"]
    headers += [f"AUROC {MISCLASSIFICATION_SCORES[k]} ↑" for k in scores]
    for name, block in _test_first(r["selective"]):
        rows = [
            [
                VARIANT_LABELS[v],
                block[v]["error_rate"],
                *(outputs.fmt(_milli(block[v][m]), 2) for m in ("aurc", "excess_aurc")),
                *(block[v]["misclassification_auroc"].get(k, "—") for k in scores),
            ]
            for v in VARIANTS
        ]
        comp = block["comparisons"]

        def diff(metric: str, pair: str, comp: dict = comp) -> str:
            d = comp[metric][pair]
            mark = " (significant)" if d["significant"] else ""
            return outputs.fmt(_milli(d), 2, signed=True) + mark

        lines += [
            f"**{name}** ({block['num_examples']} images)",
            "",
            outputs.markdown_table(headers, rows, 3),
            "",
            "Ensemble − its members' mean (paired over ensembles, ×10³): AURC "
            f"{diff('aurc', 'ensemble_minus_single')}, E-AURC "
            f"{diff('excess_aurc', 'ensemble_minus_single')}; temperature-scaled: AURC "
            f"{diff('aurc', 'ensemble_ts_minus_single_ts')}, E-AURC "
            f"{diff('excess_aurc', 'ensemble_ts_minus_single_ts')}.",
            "",
        ]
    return lines


def seed_claim(r: dict[str, Any]) -> list[str]:
    if "seed_claim" not in r:
        return []
    claim = r["seed_claim"]
    headers = [
        "set",
        "(i) H(ensemble) > max member H",
        "verdict",
        "(ii) H(ensemble) > mean member H",
        "Jensen violations",
        "mean H ensemble",
        "mean max member H",
        "mean member H",
    ]
    rows = [
        [
            name,
            b["above_max_member"],
            b["verdict"],
            b["above_mean_member"],
            str(b["jensen_violations"]),
            *(b["mean_entropy"][k] for k in ("ensemble", "max_member", "mean_member")),
        ]
        for name, b in _test_first(claim["sets"])
    ]
    return [
        "## The seed's claim: is the ensemble's entropy higher than any single model's?",
        "",
        "Per input, with the ensemble predictive the mean of its members' distributions: the "
        "fraction of inputs where the ensemble's entropy exceeds (i) the largest member entropy "
        "— the claim as stated, the real test — and (ii) the mean member entropy. (ii) is a "
        "check, not a finding: entropy is concave, so the mixture's entropy is at least the "
        "mean member entropy for every input (Jensen), with equality only where the members "
        "agree; the gap is the mutual information. Jensen violations counts inputs below it by "
        f"more than {claim['tolerance']:g} nats (float32 rounding) and must be 0. Intervals "
        "over ensembles and inputs (hierarchical bootstrap); verdict: typical where the whole "
        "interval of (i) lies above 1/2, atypical where below.",
        "",
        outputs.markdown_table(headers, rows, 3),
        "",
    ]
