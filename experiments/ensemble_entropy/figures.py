"""The PNG figures of a finished run, drawn from its results and the arrays evaluation stored
(:func:`experiments.ensemble_entropy.evaluate.figure_arrays`); nothing is computed here."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import data as data_lib, outputs
from experiments.ensemble_entropy.config import (
    CLASSIFICATION,
    METHOD_LABELS,
    SCORE_LABELS,
    VARIANT_LABELS,
    VARIANTS,
)


def _band(ax: Any, x: Any, cells: list[dict], label: str, style: str = "o-") -> None:
    mean = np.array([c["mean"] for c in cells], float)
    low = np.array([c["low"] for c in cells], float)
    high = np.array([c["high"] for c in cells], float)
    (line,) = ax.plot(x, mean, style, label=label, markersize=3)
    ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())


def _shift_figure(r: dict[str, Any]) -> Any:
    shift = r["shift"]
    fig, axes = outputs.new_figure(len(CLASSIFICATION), len(shift), size=(3.6, 2.6))
    fig.set_layout_engine("constrained")
    for j, (kind, rows) in enumerate(shift.items()):
        labels = [data_lib.level_label(kind, lv) for lv in rows["level"]]
        for i, metric in enumerate(CLASSIFICATION):
            ax = axes[i, j]
            for variant, style in zip(VARIANTS, ("o-", "o--", "s-", "s--"), strict=True):
                _band(ax, rows["severity"], rows[variant][metric], VARIANT_LABELS[variant], style)
            ax.set_xticks(rows["severity"], labels, fontsize=7)
            ax.set_ylabel(metric)
        axes[0, j].set_title(kind.replace("_", " "), fontsize=10)
        axes[-1, j].set_xlabel("shift level (0 = clean)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Under shift: mean and 95% interval (members: single; ensembles: ensemble)")
    return fig


def _ood_figure(r: dict[str, Any]) -> Any:
    names = [n for n, b in r["ood"].items() if b["headline"]]
    keys = [k for k in SCORE_LABELS if k in r["ood"][names[0]]["scores"]]
    color = {"single": "C0", "ensemble": "C1", "snapshot": "C2", "mc_dropout": "C3"}
    fig, axes = outputs.new_figure(1, len(names), size=(2.6, 4.2))
    fig.set_layout_engine("constrained")
    for ax, name in zip(axes[0], names, strict=True):
        b = r["ood"][name]
        cells = [b["scores"][k]["auroc"] for k in keys]
        mean = np.array([c["mean"] for c in cells])
        err = np.array([[c["mean"] - c["low"], c["high"] - c["mean"]] for c in cells]).T
        colors = [color[k.split("/")[0]] for k in keys]
        ax.barh(np.arange(len(keys)), mean, xerr=err, color=colors, capsize=2)
        ax.axvline(b["raw_pixel_knn_auroc"], color="k", ls=":", lw=1, label="raw-pixel 5-NN")
        ax.axvline(0.5, color="0.6", lw=0.8)
        ax.set_xlim(0.0, 1.0)
        ax.set_title(name, fontsize=9)
        ax.set_yticks(
            np.arange(len(keys)),
            [SCORE_LABELS[k] for k in keys] if ax is axes[0, 0] else [],
            fontsize=7,
        )
        ax.invert_yaxis()
        ax.set_xlabel("AUROC")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        "OOD detection AUROC (blue: single model, orange: deep ensemble, green: snapshot "
        "ensemble, red: MC dropout; 95% intervals)"
    )
    return fig


def _methods_figure(r: dict[str, Any]) -> Any:
    """Test NLL and ECE of each method, and its total-entropy AUROC on every ranked set."""
    sec = r["methods"]
    names = sec["methods"]
    ranked = [n for n, b in r["ood"].items() if b["ranked"]]
    fig, axes = outputs.new_figure(1, 3, size=(3.8, 3.2))
    fig.set_layout_engine("constrained")
    y = np.arange(len(names))
    for ax, metric, unit in ((axes[0, 0], "nll", "nats"), (axes[0, 1], "ece", "fraction")):
        cells = [sec["rows"][m]["raw"][metric] for m in names]
        mean = np.array([c["mean"] for c in cells])
        err = np.array([[c["mean"] - c["low"], c["high"] - c["mean"]] for c in cells]).T
        ax.errorbar(mean, y, xerr=err, fmt="o", capsize=3)
        ax.set_yticks(y, [METHOD_LABELS[m] for m in names] if metric == "nll" else [])
        ax.invert_yaxis()
        ax.set_xlabel(f"test {METRIC_NAMES[metric]} ({unit})")
    ax = axes[0, 2]
    keys = {"single": "single/entropy", "deep": "ensemble/total_entropy"}
    step = 0.8 / len(names)
    for i, m in enumerate(names):
        key = keys.get(m, f"{m}/total_entropy")
        cells = [r["ood"][n]["scores"][key]["auroc"] for n in ranked]
        mean = np.array([c["mean"] for c in cells])
        err = np.array([[c["mean"] - c["low"], c["high"] - c["mean"]] for c in cells]).T
        at = np.arange(len(ranked)) + i * step
        ax.errorbar(mean, at, xerr=err, fmt="o", capsize=2, label=METHOD_LABELS[m])
    ax.set_yticks(np.arange(len(ranked)) + 0.4 - step / 2, ranked, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("AUROC of the (total) entropy (unitless; 0.5 = chance)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    fig.suptitle("Methods side by side (K members each; 95% intervals; ranked OOD sets)")
    return fig


METRIC_NAMES = {"nll": "NLL", "ece": "ECE"}


def _size_figure(r: dict[str, Any]) -> Any:
    size = r["ensemble_size"]
    fig, axes = outputs.new_figure(1, 4, size=(3.4, 3.0))
    fig.set_layout_engine("constrained")
    for ax, metric in zip(axes[0][:2], ("nll", "ece"), strict=True):
        _band(ax, size["k"], size["test"][metric], "test")
        ax.set(title=f"test {metric}", xlabel="ensemble size k")
    for ax, score in zip(axes[0][2:], ("total_entropy", "mutual_information"), strict=True):
        for name in size["ood_sets"]:
            _band(ax, size["k"], size["auroc"][score][name], name)
        ax.set(title=f"AUROC, {score.replace('_', ' ')}", xlabel="ensemble size k", ylim=(0.0, 1.0))
    axes[0][3].legend(fontsize=6)
    return fig


def _confidence_figure(r: dict[str, Any]) -> Any:
    acc = r["accuracy_vs_confidence"]
    tau = acc["thresholds"]
    fig, axes = outputs.new_figure(1, 2, size=(4.4, 3.4))
    fig.set_layout_engine("constrained")
    for variant, style in (("single", "o-"), ("ensemble", "s-")):
        _band(axes[0, 0], tau, acc["test"][variant]["accuracy"], f"test, {variant}", style)
    for name in (n for n in acc if n != "thresholds"):
        _band(axes[0, 1], tau, acc[name]["ensemble"]["fraction"], f"{name} (ensemble)")
    axes[0, 0].set(xlabel="confidence threshold τ", ylabel="accuracy on examples with p ≥ τ")
    axes[0, 1].set(
        xlabel="confidence threshold τ", ylabel="fraction of examples with p ≥ τ", ylim=(0.0, 1.0)
    )
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].legend(fontsize=6)
    return fig


def _histogram_figure(histograms: dict[str, dict[str, np.ndarray]]) -> Any:
    fig, axes = outputs.new_figure(1, 3, size=(4.4, 3.3))
    for ax, (title, per_set) in zip(axes[0], histograms.items(), strict=True):
        edges = np.linspace(0.0, max(float(np.max(v)) for v in per_set.values()) * 1.001 or 1, 31)
        for n, v in per_set.items():
            ax.hist(
                v,
                bins=edges,
                density=True,
                histtype="step",
                linewidth=1.5,
                label="in-distribution test" if n == "test" else n,
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("nats")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize=7)
    return fig


def _reliability_figure(reliability: dict[str, dict[str, Any]]) -> Any:
    fig, axes = outputs.new_figure(1, 4, size=(3.2, 3.2))
    fig.set_layout_engine("constrained")
    for ax, variant in zip(axes[0], VARIANTS, strict=True):
        rel = reliability[variant]
        counts, edges = np.asarray(rel["counts"]), np.asarray(rel["bin_edges"])
        acc = np.where(counts > 0, np.asarray(rel["accuracy"], float), np.nan)
        centers = 0.5 * (edges[:-1] + edges[1:])
        ax.bar(centers, np.nan_to_num(acc), width=np.diff(edges), edgecolor="k", alpha=0.7)
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ax.set(
            title=f"{VARIANT_LABELS[variant]} 0 (ECE {rel['ece']:.3f})",
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence",
        )
    axes[0][0].set_ylabel("accuracy")
    return fig


def _risk_coverage_figure(r: dict[str, Any], curves: dict[str, dict[str, np.ndarray]]) -> Any:
    """Left: the test risk-coverage curves of replicate 0 of every variant; right: the
    fraction of inputs whose ensemble entropy exceeds the largest member entropy, per set."""
    fig, axes = outputs.new_figure(1, 2, size=(4.6, 3.6))
    fig.set_layout_engine("constrained")
    ax = axes[0, 0]
    for variant, style in zip(VARIANTS, ("-", "--", "-", "--"), strict=True):
        c = curves[variant]
        aurc = r["selective"]["test"][variant]["aurc"]["values"][0]
        label = f"{VARIANT_LABELS[variant]} 0 (AURC {aurc:.3f})"
        ax.plot(c["coverage"], c["risk"], style, label=label, lw=1.2)
    ax.set(xlabel="coverage", ylabel="risk (error rate of the kept)", xlim=(0, 1), ylim=(0, None))
    ax.set_title("test: risk against coverage", fontsize=10)
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    sets = r["seed_claim"]["sets"]
    cells = [b["above_max_member"] for b in sets.values()]
    mean = np.array([c["mean"] for c in cells])
    err = np.array([[c["mean"] - c["low"], c["high"] - c["mean"]] for c in cells]).T
    ax.barh(np.arange(len(cells)), mean, xerr=np.maximum(err, 0.0), capsize=2, color="C2")
    ax.axvline(0.5, color="0.5", lw=0.8, ls=":")
    ax.set_yticks(np.arange(len(cells)), list(sets), fontsize=6)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="fraction of inputs")
    ax.set_title("H(ensemble) > max member H (95% interval)", fontsize=10)
    return fig


def figures(r: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    """Every figure of ``r``; ``arrays`` from
    :func:`~experiments.ensemble_entropy.evaluate.figure_arrays`."""
    return {
        "shift": _shift_figure(r),
        "ood_auroc": _ood_figure(r),
        **({"methods": _methods_figure(r)} if "methods" in r else {}),
        "ensemble_size": _size_figure(r),
        "accuracy_confidence": _confidence_figure(r),
        "entropy_histograms": _histogram_figure(arrays["entropy_histograms"]),
        "reliability": _reliability_figure(arrays["reliability"]),
        **(
            {"risk_coverage": _risk_coverage_figure(r, arrays["risk_coverage"])}
            if "risk_coverage" in arrays and "selective" in r
            else {}
        ),
    }
