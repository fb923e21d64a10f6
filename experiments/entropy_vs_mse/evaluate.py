"""Part 2's analysis: the learning rate chosen on validation, test summaries, the measured logit
gradients, paired comparisons.

Everything reported is computed here, once; :mod:`.report` and :mod:`.figures` only read it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.core import sweeps, training
from experiments.entropy_vs_mse.config import BOUNDS, GRADIENT_FRACTIONS, LOSS_LABELS, Config

GRADIENT_KEYS = ("grad_true", "grad_norm", "logit_rms")  # measured on validation, per evaluation


def steps_to_reach(steps: Sequence[int], accuracy: np.ndarray, target: float) -> float:
    """First evaluated step at which ``accuracy`` reaches ``target`` (NaN if never)."""
    hit = np.nonzero(np.asarray(accuracy) >= target)[0]
    return float(steps[hit[0]]) if len(hit) else math.nan


def gradient_steps(steps: Sequence[int], fractions: Sequence[float] = GRADIENT_FRACTIONS):
    """Indices of the evaluations nearest to ``fractions`` of training (no repeats), in order."""
    steps = np.asarray(steps, float)
    idx = [int(np.argmin(np.abs(steps - f * steps[-1]))) for f in fractions]
    return sorted(set(idx))


def group_key(loss: str, scale: float) -> str:
    return f"{loss}/{scale:g}"


def summarize(
    result: training.TrainResult, grid: list[dict[str, Any]], config: Config
) -> dict[str, Any]:
    """Per (loss, scale): the lr chosen on validation and, at it, the test summaries and the
    measured gradients; paired differences against cross-entropy at the same scale and against
    the same loss at scale 1."""
    m, steps = result.curves.metrics, result.curves.steps
    diverged = result.diverged_at > 0
    criterion = m["val_accuracy"][1:].mean(0)  # area under the validation curve after step 0
    criterion = np.where(diverged, np.nan, criterion)  # a diverged setting is never chosen
    reach = np.array(
        [
            steps_to_reach(steps, m["test_accuracy"][:, i], config.target_accuracy)
            for i in range(len(grid))
        ]
    )
    values = {
        "steps_to_target": reach,
        "test_accuracy": m["test_accuracy"][-1],
        "test_nll": m["test_nll"][-1],
        "initial_val_entropy": m["entropy_val"][0],  # from the entropy probe: the start
    }
    at = gradient_steps(steps)
    groups, chosen = {}, {}
    for loss in config.losses:
        for scale in config.init_scales:
            lr, means = sweeps.choose(
                criterion,
                grid,
                "lr",
                config.learning_rates,
                higher_is_better=True,
                loss=loss,
                scale=scale,
            )
            chosen[loss, scale] = lr
            groups[group_key(loss, scale)] = group_summary(
                values, m, grid, loss, scale, lr, means, at, config, diverged
            )
    return {
        "readings": readings(groups, config),
        "eval_steps": steps,
        "gradient_steps": [int(steps[i]) for i in at],
        "learning_rates": list(config.learning_rates),
        "init_scales": list(config.init_scales),
        "groups": groups,
        "comparisons": comparisons(values, grid, config, chosen),
        "diverged": sorted(
            {(g["loss"], g["scale"], g["lr"]) for g, d in zip(grid, diverged, strict=True) if d}
        ),
        "members": [
            {**g, "steps_to_target": reach[i], "diverged": bool(diverged[i])}
            for i, g in enumerate(grid)
        ],
    }


def group_summary(
    values, m, grid, loss, scale, lr, means, at, config, diverged_members
) -> dict[str, Any]:
    """One (loss, scale) at its chosen lr: intervals of every value, the measured gradients at
    the evaluations ``at``, curves (mean over seeds), the largest rate of the grid at which no
    seed diverged."""
    setting = {"loss": loss, "scale": scale, "lr": lr}
    idx = sweeps.where(grid, **setting)
    acc = m["test_accuracy"][:, idx]
    lrs = list(config.learning_rates)
    diverged = [
        bool(diverged_members[sweeps.where(grid, loss=loss, scale=scale, lr=r)].any()) for r in lrs
    ]
    stable = [r for r, d in zip(lrs, diverged, strict=True) if not d]
    measured = {
        key: [
            sweeps.interval(m[f"val_{key}"][i], grid, bounds=BOUNDS.get(key, (0, None)), **setting)
            for i in at
        ]
        for key in GRADIENT_KEYS
    }
    return {
        **setting,
        "chosen_lr": lr,
        # the choice sits at an end of the grid: a better rate may lie outside it
        "lr_at_grid_edge": len(lrs) > 1 and lr in (min(lrs), max(lrs)),
        "val_criterion": means,
        "largest_stable_lr": max(stable) if stable else None,
        # descriptive only (test accuracy; never used to choose): seeds reaching the target at
        # every rate of the grid, None where some seed diverged
        "reached_by_lr": [
            None
            if d
            else int(
                np.isfinite(
                    values["steps_to_target"][sweeps.where(grid, loss=loss, scale=scale, lr=r)]
                ).sum()
            )
            for r, d in zip(lrs, diverged, strict=True)
        ],
        "reached": int(np.isfinite(values["steps_to_target"][idx]).sum()),
        "seeds": len(idx),
        **{
            key: sweeps.interval(v, grid, bounds=BOUNDS.get(key, (None, None)), **setting)
            for key, v in values.items()
        },
        "measured": measured,
        "grad_true_curve": m["val_grad_true"][:, idx].mean(1),
        "test_accuracy_curve": acc.mean(1),
        "test_accuracy_low": acc.min(1),
        "test_accuracy_high": acc.max(1),
        "val_accuracy_curve": m["val_accuracy"][:, idx].mean(1),
    }


def comparisons(values, grid, config: Config, chosen) -> list[dict[str, Any]]:
    """Each other loss against cross-entropy at the same scale, and each loss at a scale > 1
    against itself at scale 1, at their chosen rates."""
    pairs = []
    for scale in config.init_scales:
        for loss in (x for x in config.losses if x != "ce"):
            names = (f"{LOSS_LABELS[loss]} (×{scale:g})", f"cross-entropy (×{scale:g})")
            pairs.append(((loss, scale), ("ce", scale), names))
    for loss in config.losses:
        for scale in (s for s in config.init_scales if s != 1.0):
            names = (f"{LOSS_LABELS[loss]} (×{scale:g})", f"{LOSS_LABELS[loss]} (×1)")
            pairs.append(((loss, scale), (loss, 1.0), names))
    return [compare_pair(values, grid, a, b, names, chosen) for a, b, names in pairs]


def compare_pair(values, grid, a, b, names, chosen) -> dict[str, Any]:
    """Paired differences by seed of (loss, scale) ``a`` − ``b`` at their chosen rates."""
    wa = {"loss": a[0], "scale": a[1], "lr": chosen[a]}
    wb = {"loss": b[0], "scale": b[1], "lr": chosen[b]}
    row: dict[str, Any] = {"a": names[0], "b": names[1]}
    for key, higher in (("steps_to_target", False), ("test_accuracy", True), ("test_nll", False)):
        row[key] = sweeps.compare(values[key], grid, wa, wb, names=names, higher_is_better=higher)
    reach = values["steps_to_target"]
    both = np.isfinite(reach[sweeps.where(grid, **wa)]) & np.isfinite(
        reach[sweeps.where(grid, **wb)]
    )
    row["steps_pairs"], row["seeds"] = int(both.sum()), len(both)
    return row


def readings(groups: dict[str, dict[str, Any]], config: Config) -> list[dict[str, Any]]:
    """Per loss, its smallest against its largest scale: the measured |∂L/∂z_y| at step 0 (mean
    over seeds), the seeds that reached the target, the largest non-diverging rate."""
    lo, hi = min(config.init_scales), max(config.init_scales)
    out = []
    for loss in config.losses:
        a, b = groups[group_key(loss, lo)], groups[group_key(loss, hi)]
        out.append(
            {
                "loss": loss,
                "scales": [lo, hi],
                "grad_true_step0": [
                    a["measured"]["grad_true"][0]["mean"],
                    b["measured"]["grad_true"][0]["mean"],
                ],
                "reached": [a["reached"], b["reached"]],
                "seeds": a["seeds"],
                "largest_stable_lr": [a["largest_stable_lr"], b["largest_stable_lr"]],
            }
        )
    return out
