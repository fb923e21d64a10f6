"""Part 2's analysis: the learning rate chosen on validation, test summaries, paired comparisons.

Everything reported is computed here, once; :mod:`.report` and :mod:`.figures` only read it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.core import sweeps, training
from experiments.entropy_vs_mse.config import BOUNDS, INITS, LOSS_LABELS, Config


def steps_to_reach(steps: Sequence[int], accuracy: np.ndarray, target: float) -> float:
    """First evaluated step at which ``accuracy`` reaches ``target`` (NaN if never)."""
    hit = np.nonzero(np.asarray(accuracy) >= target)[0]
    return float(steps[hit[0]]) if len(hit) else math.nan


def summarize(
    result: training.TrainResult, grid: list[dict[str, Any]], config: Config
) -> dict[str, Any]:
    """Per (loss, start): the lr chosen on validation and, at it, the test summaries; paired
    differences against cross-entropy from the same start."""
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
    groups, chosen = {}, {}
    for loss in config.losses:
        for init in INITS:
            lr, means = sweeps.choose(
                criterion,
                grid,
                "lr",
                config.learning_rates,
                higher_is_better=True,
                loss=loss,
                init=init,
            )
            chosen[loss, init] = lr
            groups[f"{loss}/{init}"] = group_summary(values, m, grid, loss, init, lr, means)
    return {
        "eval_steps": steps,
        "learning_rates": list(config.learning_rates),
        "groups": groups,
        "comparisons": comparisons(values, grid, config, chosen),
        "diverged": sorted(
            {(g["loss"], g["init"], g["lr"]) for g, d in zip(grid, diverged, strict=True) if d}
        ),
        "members": [
            {**g, "steps_to_target": reach[i], "diverged": bool(diverged[i])}
            for i, g in enumerate(grid)
        ],
    }


def group_summary(values, m, grid, loss, init, lr, means) -> dict[str, Any]:
    """One (loss, start) at its chosen lr: intervals of every value, curves (mean over seeds)."""
    setting = {"loss": loss, "init": init, "lr": lr}
    idx = sweeps.where(grid, **setting)
    acc = m["test_accuracy"][:, idx]
    return {
        **setting,
        "chosen_lr": lr,
        "val_criterion": means,
        "reached": int(np.isfinite(values["steps_to_target"][idx]).sum()),
        "seeds": len(idx),
        **{
            key: sweeps.interval(v, grid, bounds=BOUNDS.get(key, (None, None)), **setting)
            for key, v in values.items()
        },
        "test_accuracy_curve": acc.mean(1),
        "test_accuracy_low": acc.min(1),
        "test_accuracy_high": acc.max(1),
        "val_accuracy_curve": m["val_accuracy"][:, idx].mean(1),
    }


def comparisons(values, grid, config: Config, chosen) -> list[dict[str, Any]]:
    """Each other loss against cross-entropy from the same start, and each loss from the
    overconfident start against itself from the standard one, at their chosen rates."""
    pairs = []
    for init in INITS:
        for loss in (x for x in config.losses if x != "ce"):
            names = (f"{LOSS_LABELS[loss]} ({init})", f"cross-entropy ({init})")
            pairs.append(((loss, init), ("ce", init), names))
    for loss in config.losses:
        names = (f"{LOSS_LABELS[loss]} (overconfident)", f"{LOSS_LABELS[loss]} (standard)")
        pairs.append(((loss, "overconfident"), (loss, "standard"), names))
    return [compare_pair(values, grid, a, b, names, chosen) for a, b, names in pairs]


def compare_pair(values, grid, a, b, names, chosen) -> dict[str, Any]:
    """Paired differences by seed of (loss, start) ``a`` − ``b`` at their chosen rates."""
    wa = {"loss": a[0], "init": a[1], "lr": chosen[a]}
    wb = {"loss": b[0], "init": b[1], "lr": chosen[b]}
    row: dict[str, Any] = {"a": names[0], "b": names[1]}
    for key, higher in (("steps_to_target", False), ("test_accuracy", True), ("test_nll", False)):
        row[key] = sweeps.compare(values[key], grid, wa, wb, names=names, higher_is_better=higher)
    reach = values["steps_to_target"]
    both = np.isfinite(reach[sweeps.where(grid, **wa)]) & np.isfinite(
        reach[sweeps.where(grid, **wb)]
    )
    row["steps_pairs"], row["seeds"] = int(both.sum()), len(both)
    return row
