"""The PNGs of ``confidence_penalty``, drawn from the results alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.confidence_penalty.config import METRICS
from experiments.core import outputs


def _lambda_axis(ax: Any, lambdas: Sequence[float]) -> None:
    positive = [lam for lam in lambdas if lam > 0]
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel("λ (penalty weight, unitless)")


def _sweep_figure(results: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, len(METRICS), size=(3.6, 3.0))
    titles = {
        "accuracy": "test accuracy (fraction)",
        "nll": "test NLL (nats)",
        "ece": "ECE (fraction)",
        "mean_entropy": "mean entropy / log C (fraction)",
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
            ax.set_ylabel(titles[m])
            _lambda_axis(ax, lams)
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.suptitle(
        "Confidence penalty sweep (test; 95% intervals over seeds; dotted: λ chosen on validation)"
    )
    fig.tight_layout()
    return fig


def _curves_figure(results: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, len(results["datasets"]), size=(4.2, 3.2))
    for ax, (name, r) in zip(axes[0], results["datasets"].items(), strict=True):
        for lam, curve in zip(r["lambdas"], r["val_curves"]["nll"], strict=True):
            ax.plot(r["eval_steps"], curve, label=f"λ={lam:g}")
        ax.set_title(f"{name}: validation NLL during training")
        ax.set_xlabel("Adam step (count)")
        ax.set_ylabel("validation NLL (nats)")
        ax.set_yscale("log")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def _toy_figure(toy: dict[str, Any]) -> Any:
    lams = toy["surface"]["lambdas"]
    fig, axes = outputs.new_figure(1, len(lams), size=(2.7, 2.6))
    g = np.asarray(toy["surface"]["grid"])
    for ax, lam, prob in zip(axes[0], lams, toy["surface"]["prob_class1"], strict=True):
        im = ax.contourf(g, g, np.asarray(prob), levels=np.linspace(0, 1, 11), cmap="RdBu_r")
        ax.plot([-3, 3], [3, -3], "k--", lw=0.8)
        ax.set_title(f"λ={lam:g}")
        ax.set_xlabel("x₀ (input units)")
        if ax is axes[0, 0]:
            ax.set_ylabel("x₁ (input units)")
        else:
            ax.tick_params(labelleft=False)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="p(y=1 | x)")
    fig.suptitle("Toy problem: p(y=1 | x) for seed 0; dashed: true boundary", y=1.06)
    return fig


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    out = {"metrics_vs_lambda": _sweep_figure(results), "curves": _curves_figure(results)}
    toy = results["datasets"].get("toy")
    if toy is not None and "surface" in toy:
        out["toy_surfaces"] = _toy_figure(toy)
    return out
