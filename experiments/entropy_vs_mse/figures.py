"""The PNGs of ``entropy_vs_mse``, drawn from the results alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import outputs
from experiments.entropy_vs_mse.config import INITS, LOSS_LABELS


def _gradient_figure(g: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, 1, size=(5.0, 3.4))
    ax = axes[0, 0]
    ax.loglog(g["true_prob"], np.abs(g["grad_ce"]), "o-", label="cross-entropy")
    ax.loglog(g["true_prob"], np.abs(g["grad_mse"]), "s-", label="MSE on p (Brier)")
    ax.loglog(g["true_prob"], np.abs(g["grad_square"]), "^-", label="square loss on z")
    ax.invert_xaxis()
    ax.set_xlabel("probability of the true class (→ more confidently wrong)")
    ax.set_ylabel("|dL / d true logit|")
    ax.set_title("Gradient at a confidently wrong prediction")
    ax.legend()
    return fig


def _training_figure(tr: dict[str, Any], target: float) -> Any:
    fig, axes = outputs.new_figure(1, len(INITS), size=(4.6, 3.4))
    for col, init in enumerate(INITS):
        ax = axes[0, col]
        for i, g in enumerate(x for x in tr["groups"].values() if x["init"] == init):
            label = f"{LOSS_LABELS[g['loss']]} (lr {g['chosen_lr']:g})"
            ax.plot(tr["eval_steps"], g["test_accuracy_curve"], color=f"C{i}", label=label)
            ax.fill_between(
                tr["eval_steps"],
                g["test_accuracy_low"],
                g["test_accuracy_high"],
                color=f"C{i}",
                alpha=0.15,
            )
        ax.axhline(target, color="0.4", ls=":", lw=0.8)
        ax.set(xlabel="SGD step", ylabel="test accuracy", title=f"{init} start", ylim=(0, 1))
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        "Test accuracy at the validation-chosen learning rate (mean; band: min–max over seeds)"
    )
    fig.tight_layout()
    return fig


def _selection_figure(tr: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, 1, size=(5.0, 3.4))
    ax = axes[0, 0]
    for i, g in enumerate(tr["groups"].values()):
        style = "-" if g["init"] == "standard" else "--"
        ax.plot(
            tr["learning_rates"],
            g["val_criterion"],
            style,
            marker="o",
            color=f"C{i // 2}",
            label=f"{g['loss']}/{g['init']}",
        )
    ax.set(
        xscale="log", xlabel="SGD learning rate", ylabel="mean validation accuracy over training"
    )
    ax.set_title("Learning-rate choice (validation split)")
    ax.legend(fontsize=7)
    return fig


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    out = {"gradients": _gradient_figure(results["gradients"])}
    if "training" in results:
        target = results["config"]["target_accuracy"]
        out["training"] = _training_figure(results["training"], target)
        out["selection"] = _selection_figure(results["training"])
    return out
