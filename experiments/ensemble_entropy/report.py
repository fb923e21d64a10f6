"""``report.md``: the tables and sentences of a finished run, read from its results only."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import data as data_lib, outputs
from experiments.ensemble_entropy import report_per_input
from experiments.ensemble_entropy.config import (
    CLASSIFICATION,
    METHOD_LABELS,
    SCORE_LABELS,
    VARIANT_LABELS,
    VARIANTS,
)


def _header(r: dict[str, Any]) -> list[str]:
    cfg, d = r["config"], r["data"]
    return [
        "# Ensemble entropy: single models vs deep ensembles",
        "",
        f"{cfg['seeds']} independent ensembles × {cfg['members']} {cfg['model']} members (width "
        f"{cfg['width']}), {cfg['steps']} steps, batch {cfg['batch_size']}, Adam lr {cfg['lr']} "
        f"({cfg['schedule']}), seed {cfg['seed']}. Data: {d['source']}; classes "
        f"{d['in_classes']} in-distribution ({d['num_train']} train / {d['num_val']} validation / "
        f"{d['num_test']} test), {d['heldout_classes']} held out. Devices: "
        f"{r['devices']['device_count']} × {r['devices']['backend']}. Entropies in nats.",
        "",
        "Every number is a mean with its 95% interval. Replicates are the "
        f"{cfg['seeds'] * cfg['members']} members for single models and the {cfg['seeds']} "
        "ensembles for ensembles; test accuracy, NLL and Brier and the OOD metrics of the "
        "headline and ranked sets add the test examples (a hierarchical bootstrap: "
        "replicates, then examples); ECE, the validation split, the shift curves and the "
        "other OOD sets are intervals over replicates only (Student-t, ddof = 1). A paired "
        "ensemble − single difference averages each ensemble's members first.",
        "",
        "## What the results support",
        "",
        _family_rule(r),
        "",
        *[f"- {c}" for c in r["claims"]],
        "",
    ]


def _family_rule(r: dict[str, Any]) -> str:
    fam = r["comparisons"]
    pairs = "; ".join(
        f"{SCORE_LABELS[a]} − {SCORE_LABELS[b]}" for a, b in fam["declared_ood"].values()
    )
    return (
        f"Confirmatory claims come from one family declared before the results: "
        f"{', '.join(fam['declared_in_distribution'])} on the test set, and the AUROC "
        f"differences {pairs} on the OOD sets a model is needed for ({fam['ranked_rule']}, "
        f"threshold {fam['solved_by_raw_pixels_at']}; here: "
        f"{', '.join(fam['ranked_sets']) or 'none'}), {fam['size']} tests in this run. A claim is "
        f"*confirmed* where Holm's adjusted p-value (two-sided, hierarchical bootstrap) is "
        f"≤ {fam['alpha']}; everything else is exploratory. Sets raw pixels solve are not ranked."
    )


def _in_distribution(r: dict[str, Any]) -> list[str]:
    test, comp = r["in_distribution"]["test"], r["in_distribution"]["comparisons"]
    headers = ["metric", *(VARIANT_LABELS[v] for v in VARIANTS), "ensemble − single (paired)"]
    rows = [
        [
            m,
            *(test[v][m] for v in VARIANTS),
            outputs.fmt(comp[m]["ensemble_minus_single"], 4, signed=True),
        ]
        for m in CLASSIFICATION
    ]
    temp = r["temperature"]
    return [
        "## In-distribution test set",
        "",
        outputs.markdown_table(headers, rows),
        "",
        "Accuracy, NLL and Brier: intervals over replicates and test examples (single models: "
        "the members are the replicates; the paired column: per-example differences, each "
        "ensemble's members averaged first). ECE is not a mean over examples: its intervals "
        "are over replicates only.",
        "",
        f"Temperatures fit on the validation split by NLL: single models T = "
        f"{outputs.fmt(temp['single'], 3)}, ensembles T = {outputs.fmt(temp['ensemble'], 3)}; "
        f"validation NLL single {outputs.fmt(temp['val_nll']['single'])} → "
        f"{outputs.fmt(temp['val_nll']['single_ts'])}, ensemble "
        f"{outputs.fmt(temp['val_nll']['ensemble'])} → "
        f"{outputs.fmt(temp['val_nll']['ensemble_ts'])}.",
        "",
    ]


def _present(r: dict[str, Any], *, methods: bool) -> list[str]:
    """The score keys of this run (with or without the cheap methods' ``<method>/`` scores)."""
    first = next(iter(r["ood"].values()))["scores"]
    own = ("single/", "ensemble/")
    return [k for k in SCORE_LABELS if k in first and (methods or k.startswith(own))]


def _ood_overview(r: dict[str, Any]) -> list[str]:
    keys = _present(r, methods=False)
    headers = ["OOD set", "raw-pixel 5-NN", *(SCORE_LABELS[k] for k in keys)]

    def label(name: str, b: dict) -> str:
        return name + (" *" if b["solved_by_raw_pixels"] else " (near)" if b["near_ood"] else "")

    rows = [
        [
            label(name, b),
            b["raw_pixel_knn_auroc"],
            *(b["scores"][k]["auroc"]["mean"] for k in keys),
        ]
        for name, b in r["ood"].items()
    ]
    return [
        "## Out of distribution: AUROC of every score on every set (means)",
        "",
        "OOD set positive against the clean test set; 0.5 = chance. The raw-pixel 5-NN column "
        "needs no model: where it reaches "
        f"{r['comparisons']['solved_by_raw_pixels_at']} (marked *) the set is solved by raw "
        "pixels and the scores are not ranked on it; a set of other images (not a shift) below "
        f"{r['comparisons']['near_ood_below']} (marked near) is near-OOD: raw pixels barely "
        "tell it from the test set.",
        "",
        outputs.markdown_table(headers, rows, digits=3),
        "",
    ]


def _ood_details(r: dict[str, Any]) -> list[str]:
    lines = ["## OOD detection with intervals (headline and ranked sets)", ""]
    for name, b in r["ood"].items():
        if not (b["headline"] or b["ranked"]):
            continue
        solved = "; solved by raw pixels: not ranked" if b["solved_by_raw_pixels"] else ""
        scores = b["scores"]
        rows = [
            [SCORE_LABELS[k], *(scores[k][m] for m in ("auroc", "aupr", "fpr95", "mean_score"))]
            for k in _present(r, methods=True)
        ]
        lines += [
            f"**{name}** ({b['num_examples']} images; raw-pixel 5-NN AUROC "
            f"{b['raw_pixel_knn_auroc']:.3f}{solved})",
            "",
            outputs.markdown_table(
                ["score", "AUROC ↑", "AUPR ↑", "FPR@95 ↓", "mean score"], rows, 3
            ),
            "",
        ]
    return lines + _family_table(r)


def _family_table(r: dict[str, Any]) -> list[str]:
    fam = r["comparisons"]
    rows = [
        [
            key,
            outputs.fmt(t, 4, signed=True),
            f"{t['p']:.2g}",
            f"{t['p_holm']:.2g}",
            "confirmed" if t["confirmed"] else "not confirmed",
        ]
        for key, t in fam["family"].items()
    ]
    return [
        f"## The declared comparisons ({fam['size']} tests, Holm at α = {fam['alpha']})",
        "",
        "OOD rows: paired AUROC difference a − b (declared names: mi = ensemble mutual "
        "information, total_entropy = ensemble total entropy, single_entropy = single-model "
        "entropy, single_ts_entropy = temperature-scaled single model; deep_minus_<method>: the "
        "deep ensemble's total entropy − that method's); in-distribution rows: "
        "ensemble − single model. 95% intervals and two-sided p-values from the hierarchical "
        "bootstrap (replicates, then test examples).",
        "",
        outputs.markdown_table(["comparison", "difference", "p", "Holm p", "verdict"], rows),
        "",
    ]


def _methods(r: dict[str, Any]) -> list[str]:
    """The methods side by side: budget, test metrics, OOD AUROC, the seed's claim."""
    sec = r.get("methods")
    if sec is None:
        return []
    names, rows = sec["methods"], sec["rows"]
    cfg = r["config"]
    budget = [
        [
            METHOD_LABELS[m],
            b["models_trained"],
            b["gradient_steps"],
            f"{b['gradient_steps_x_parameters']:.3g}",
            b["test_passes"],
        ]
        for m in names
        for b in [sec["budget"][m]]
    ]
    test = []
    for m in names:
        row = rows[m]
        d = row.get("deep_minus_method", {}).get("nll")
        test.append(
            [
                METHOD_LABELS[m],
                *(outputs.fmt(row["raw"][k], 4) for k in CLASSIFICATION),
                outputs.fmt(row["scaled"]["nll"], 4),
                outputs.fmt(row["aurc"], 4),
                outputs.fmt(row["excess_aurc"], 4),
                outputs.fmt(d, 4, signed=True) if d else "—",
            ]
        )
    lines = [
        "## Methods at a stated budget: " + ", ".join(METHOD_LABELS[m] for m in names),
        "",
        " ".join(
            [
                f"Every ensemble has K = {cfg['members']} members: the deep ensemble K "
                "independently trained models;",
                *(
                    [
                        "the snapshot ensemble the K cycle ends of one run with a cyclic cosine "
                        "learning rate (Huang et al. 2017);"
                    ]
                    if "snapshot" in names
                    else []
                ),
                *(
                    [
                        f"MC dropout K test-time passes of one run trained with dropout "
                        f"{sec['dropout']} (Gal & Ghahramani 2016), each pass one fixed mask per "
                        "unit;"
                    ]
                    if "mc_dropout" in names
                    else []
                ),
                f"one model has {sec['num_params']:,} parameters. The declared family includes "
                "the deep ensemble against each cheap method selected (`--methods`), so its size "
                "depends on that flag, fixed before any result is read. The cost of one ensemble:",
            ]
        ),
        "",
        outputs.markdown_table(
            ["method", "models trained", "gradient steps", "steps × parameters", "test passes"],
            budget,
        ),
        "",
        "Test set (intervals over replicates and test examples; ECE over replicates; AURC over "
        "replicates; the last column, exploratory, is the deep ensemble's NLL − this method's, "
        "paired by ensemble and example):",
        "",
        outputs.markdown_table(
            [
                "method",
                "accuracy ↑",
                "NLL ↓",
                "Brier ↓",
                "ECE ↓",
                "NLL, temp.-scaled ↓",
                "AURC ↓",
                "E-AURC ↓",
                "deep − method NLL",
            ],
            test,
        ),
        "",
    ]
    ranked = [n for n, b in r["ood"].items() if b["ranked"] or b["headline"]]
    cheap = [m for m in names if m not in ("single", "deep")]
    keys = ["single/entropy", "ensemble/total_entropy"]
    keys += [f"{m}/total_entropy" for m in names if m not in ("single", "deep")]
    keys += ["ensemble/mutual_information"]
    keys += [f"{m}/mutual_information" for m in names if m not in ("single", "deep")]
    ood_rows = [
        [
            name + (" *" if r["ood"][name]["solved_by_raw_pixels"] else ""),
            *(outputs.fmt(r["ood"][name]["scores"][k]["auroc"], 3) for k in keys),
        ]
        for name in ranked
    ]
    lines += [
        "OOD AUROC of each method's total entropy and mutual information (headline and ranked "
        "sets; * solved by raw pixels, not ranked"
        + (
            "; the declared comparisons of the deep ensemble with "
            + " and ".join(METHOD_LABELS[m] for m in cheap)
            + " are in the family below):"
            if cheap
            else "):"
        ),
        "",
        outputs.markdown_table(["OOD set", *(SCORE_LABELS[k] for k in keys)], ood_rows),
        "",
    ]
    claim_sets = ["test", *(n for n in ranked if r["ood"][n]["near_ood"])]
    claim_rows = [
        [
            METHOD_LABELS[m],
            *(
                f"{outputs.fmt(rows[m]['seed_claim'][n]['above_max_member'], 3)} "
                f"({rows[m]['seed_claim'][n]['verdict']})"
                for n in claim_sets
            ),
        ]
        for m in names
        if m != "single"
    ]
    lines += [
        "The seed's claim per method: the fraction of inputs whose ensemble entropy exceeds its "
        "largest member's (intervals over ensembles and inputs):",
        "",
        outputs.markdown_table(["method", *claim_sets], claim_rows),
        "",
    ]
    return lines


def _shift(r: dict[str, Any]) -> list[str]:
    lines = ["## Shift: metrics against severity (Ovadia et al. 2019)", ""]
    columns = [
        ("accuracy", "single"),
        ("accuracy", "ensemble"),
        ("nll", "single"),
        ("nll", "single_ts"),
        ("nll", "ensemble"),
        ("nll", "ensemble_ts"),
        ("ece", "single"),
        ("ece", "single_ts"),
        ("ece", "ensemble"),
        ("ece", "ensemble_ts"),
        ("brier", "single"),
        ("brier", "ensemble"),
    ]
    headers = ["severity", "level"] + [f"{m} {VARIANT_LABELS[v]}" for m, v in columns]
    for kind, rows in r["shift"].items():
        table = [
            [
                str(sev),
                data_lib.level_label(kind, rows["level"][i]),
                *(rows[v][m][i] for m, v in columns),
            ]
            for i, sev in enumerate(rows["severity"])
        ]
        lines += [
            f"**{kind.replace('_', ' ')}**",
            "",
            outputs.markdown_table(headers, table, 3),
            "",
        ]
    return lines


def _confidence(r: dict[str, Any]) -> list[str]:
    acc = r["accuracy_vs_confidence"]
    picks = [i for i, t in enumerate(acc["thresholds"]) if t in (0.5, 0.9)]
    headers = [
        "set",
        "τ",
        "single: accuracy",
        "single: kept",
        "ensemble: accuracy",
        "ensemble: kept",
    ]
    rows = []
    for name in (n for n in acc if n != "thresholds"):
        for i in picks:
            cells = []
            for v in ("single", "ensemble"):
                cells += [
                    acc[name][v]["accuracy"][i] if "accuracy" in acc[name][v] else "—",
                    acc[name][v]["fraction"][i],
                ]
            rows.append([name, f"{acc['thresholds'][i]:g}", *cells])
    return [
        "## Accuracy against confidence (Lakshminarayanan et al. 2017)",
        "",
        "Examples with max-probability ≥ τ: their accuracy (labelled sets) and the fraction "
        "kept (for OOD sets, lower is better).",
        "",
        outputs.markdown_table(headers, rows, 3),
        "",
    ]


def _sizes(r: dict[str, Any]) -> list[str]:
    size = r["ensemble_size"]
    headers = ["k", "accuracy", "NLL", "ECE"]
    headers += [f"AUROC MI {n}" for n in size["ood_sets"]]
    table = [
        [
            str(k),
            *(size["test"][m][i] for m in ("accuracy", "nll", "ece")),
            *(size["auroc"]["mutual_information"][n][i] for n in size["ood_sets"]),
        ]
        for i, k in enumerate(size["k"])
    ]
    return [
        f"## Ensemble size ({size['subsets']} random member subsets per k, per ensemble)",
        "",
        outputs.markdown_table(headers, table, 3),
        "",
    ]


def _rotation(r: dict[str, Any]) -> list[str]:
    m = r["rotation_mechanism"]
    if m is None:
        return []
    frac, ink, blank = (
        m["fraction_to_target"],
        m["outer_quarter_ink"],
        m["blanked_outer_rows_to_target"],
    )
    target = m["target_digit"]
    least = r["data"]["in_classes"][int(np.argmin(ink["rows_by_class"]))]
    shared = min(frac["logistic_regression"], frac["nearest_class_mean"]) > 0.5
    profile = least == target and blank["ensemble"]["mean"] > 0.5
    lines = [
        f"## The rotation failure, probed ({m['set']})",
        "",
        f"The ensembles send {outputs.fmt(frac['ensemble'], 3)} of the rotated test images to "
        f"class {target} (mean total entropy {outputs.fmt(m['ensemble_entropy_on_rotated'], 3)} "
        f"nats); a logistic regression and a nearest-class-mean classifier on raw pixels send "
        f"{frac['logistic_regression']:.3f} and {frac['nearest_class_mean']:.3f} there"
        + (
            ": the failure is shared by simple models, so it is not ensemble similarity."
            if shared
            else "."
        ),
        "",
        f"Ink profile: the outer quarter of the columns of the training images holds "
        f"{ink['columns_of_training_images']:.3f} mean ink, the outer quarter of the rows "
        f"{ink['rows_of_training_images']:.3f}; after the rotation the outer rows hold "
        f"{ink['rows_of_rotated_images']:.3f}. The class with the least ink in the outer rows is "
        f"{least} ({min(ink['rows_by_class']):.3f}). Counterfactual: blanking the outer quarter "
        f"rows of *unrotated* test images sends {outputs.fmt(blank['ensemble'], 3)} of them to "
        f"class {target} under the ensembles and {blank['logistic_regression']:.3f} under the "
        "logistic regression.",
        "",
    ]
    if profile:
        lines += [
            "Mechanism: the images are drawn in a tall, narrow box, so a 90° rotation empties the "
            "outer rows; empty outer rows are, in these training data, the signature of class "
            f"{target}. The rotated set therefore lands deep inside that class's region of pixel "
            "space, far from any decision boundary: every model fit to these data is confident "
            "there, the members agree, and no entropy score (total or mutual information) can "
            "flag it. A feature-distance score still can, because the rotated images are far "
            "from the training images.",
            "",
        ]
    else:
        lines += [
            "The outer-row profile does not explain the failure on these data (the "
            "counterfactual does not reproduce it).",
            "",
        ]
    return lines


def report(r: dict[str, Any]) -> str:
    """The human-readable tables of ``report.md``."""
    final = r["training"]["final_loss_mean_last_10pct"]
    lines = _header(r) + _in_distribution(r) + _methods(r) + _ood_overview(r) + _ood_details(r)
    lines += _shift(r) + _confidence(r) + _sizes(r) + _rotation(r)
    lines += report_per_input.selective(r) + report_per_input.seed_claim(r)
    lines += [
        f"Final training loss (mean of the last 10% of steps, deep-ensemble members): {final:.4f}.",
        "",
        "Figures: `shift.png`, `ood_auroc.png`, `ensemble_size.png`, `accuracy_confidence.png`, "
        "`entropy_histograms.png`, `reliability.png`, `risk_coverage.png`"
        + (", `methods.png`." if "methods" in r else "."),
    ]
    return "\n".join(lines)
