"""The PNGs of ``entropy_vs_mse``, drawn from the results alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import outputs
from experiments.entropy_vs_mse.config import LOSS_LABELS, LOSSES


def _outside_legend(ax: Any, **kw: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=7, **kw)


def _gradient_figure(g: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, 1, size=(5.0, 3.4))
    ax = axes[0, 0]
    ax.loglog(g["true_prob"], np.abs(g["grad_ce"]), "o-", label="cross-entropy")
    ax.loglog(g["true_prob"], np.abs(g["grad_mse"]), "s-", label="MSE on p (Brier)")
    ax.loglog(g["true_prob"], np.abs(g["grad_square"]), "^-", label="square loss on z")
    ax.invert_xaxis()
    ax.set_xlabel("probability of the true class (unitless; → more confidently wrong)")
    ax.set_ylabel("|∂L/∂z_true| (loss per unit logit)")
    ax.set_title("Gradient at a confidently wrong prediction (one example)")
    _outside_legend(ax)
    return fig


def _groups_at(tr: dict[str, Any], scale: float) -> list[dict[str, Any]]:
    groups = [g for g in tr["groups"].values() if g["scale"] == scale]
    return sorted(groups, key=lambda g: LOSSES.index(g["loss"]))


def _training_figure(tr: dict[str, Any], target: float) -> Any:
    scales = tr["init_scales"]
    fig, axes = outputs.new_figure(1, len(scales), size=(3.6, 3.8))
    for col, scale in enumerate(scales):
        ax = axes[0, col]
        for i, g in enumerate(_groups_at(tr, scale)):
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
        ax.set(
            xlabel="SGD step (count)",
            ylabel="test accuracy (fraction)",
            title=f"last layer ×{scale:g} at init",
            ylim=(0, 1),
        )
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    fig.suptitle(
        "Test accuracy at the validation-chosen learning rate (mean; band: min–max over seeds; "
        "dotted: target)"
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def _measured_figure(tr: dict[str, Any]) -> Any:
    scales = tr["init_scales"]
    fig, axes = outputs.new_figure(1, len(scales), size=(3.6, 3.8))
    for col, scale in enumerate(scales):
        ax = axes[0, col]
        for i, g in enumerate(_groups_at(tr, scale)):
            curve = np.asarray(g["grad_true_curve"], float)
            label = f"{LOSS_LABELS[g['loss']]} (lr {g['chosen_lr']:g})"
            ax.plot(
                tr["eval_steps"], np.where(curve > 0, curve, np.nan), color=f"C{i}", label=label
            )
        ax.set_yscale("log")
        ax.set(
            xlabel="SGD step (count)",
            ylabel="mean |∂L/∂z_y| (loss per unit logit)",
            title=f"last layer ×{scale:g} at init",
        )
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    fig.suptitle("Measured gradient on the true logit at the chosen rate (mean over seeds)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def _selection_figure(tr: dict[str, Any]) -> Any:
    scales = tr["init_scales"]
    fig, axes = outputs.new_figure(1, len(scales), size=(3.6, 3.8))
    for col, scale in enumerate(scales):
        ax = axes[0, col]
        for i, g in enumerate(_groups_at(tr, scale)):
            crit = np.array([np.nan if c is None else c for c in g["val_criterion"]], float)
            ax.plot(
                tr["learning_rates"], crit, marker="o", color=f"C{i}", label=LOSS_LABELS[g["loss"]]
            )
        ax.set(
            xscale="log",
            xlabel="SGD learning rate (per step)",
            ylabel="mean val. accuracy (fraction)",
            title=f"last layer ×{scale:g} at init",
            ylim=(0, 1),
        )
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    fig.suptitle("Learning-rate choice on the validation split (missing point: diverged)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    out = {"gradients": _gradient_figure(results["gradients"])}
    if "training" in results:
        target = results["config"]["target_accuracy"]
        out["training"] = _training_figure(results["training"], target)
        out["measured_gradients"] = _measured_figure(results["training"])
        out["selection"] = _selection_figure(results["training"])
    return out
