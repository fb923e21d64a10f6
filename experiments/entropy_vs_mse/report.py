"""``report.md`` of ``entropy_vs_mse``, from the results alone."""

from __future__ import annotations

import math
from typing import Any

from experiments.core import outputs
from experiments.entropy_vs_mse.config import LOSS_LABELS


def _gradient_section(g: dict[str, Any], num_classes: int) -> list[str]:
    rows = [
        [f"{t:g}", f"{q:.4f}", f"{py:.2e}", f"{gc:.4f}", f"{gm:.2e}", f"{gs:.4f}"]
        for t, q, py, gc, gm, gs in zip(
            g["wrong_logit"],
            g["wrong_prob"],
            g["true_prob"],
            g["grad_ce"],
            g["grad_mse"],
            g["grad_square"],
            strict=True,
        )
    ]
    headers = [
        "wrong logit t",
        "p(wrong)",
        "p(true)",
        "dCE/dz_true",
        "dBrier/dz_true",
        "dSq/dz_true",
    ]
    return [
        f"## Gradient w.r.t. the true-class logit ({num_classes} classes)",
        "",
        "One wrong class has logit t, the others (true class included) 0.",
        "",
        outputs.markdown_table(headers, rows),
        "",
        f"Largest |jax.grad − closed form|: {g['max_abs_error']:.2e}.",
        "",
    ]


def _steps_cell(grp: dict[str, Any]) -> str:
    if grp["reached"] == grp["seeds"]:
        return outputs.fmt(grp["steps_to_target"], 0)
    return f"reached in {grp['reached']}/{grp['seeds']} seeds"


def _verdict_line(row: dict[str, Any]) -> str:
    d = row["steps_to_target"]
    if row["steps_pairs"] == row["seeds"]:
        parts = [f"steps to target {outputs.fmt(d, 0)}: {d['verdict']}"]
    else:
        parts = [f"steps to target: both reached it in {row['steps_pairs']}/{row['seeds']} seeds"]
    for key, label in (("test_accuracy", "final test accuracy"), ("test_nll", "final test NLL")):
        parts.append(f"{label} {outputs.fmt(row[key], 3)}: {row[key]['verdict']}")
    return f"- **{row['a']} − {row['b']}**: " + "; ".join(parts) + "."


def _training_section(tr: dict[str, Any], config: dict[str, Any]) -> list[str]:
    lrs = ", ".join(f"{lr:g}" for lr in tr["learning_rates"])
    rows = [
        [
            f"{LOSS_LABELS[g['loss']]} / {g['init']}",
            f"{g['chosen_lr']:g}",
            outputs.fmt(g["initial_val_entropy"], 3),
            _steps_cell(g),
            g["test_accuracy"],
            g["test_nll"],
        ]
        for g in tr["groups"].values()
    ]
    target = f"steps to {config['target_accuracy']:.0%} test accuracy"
    return [
        f"## Training on digits (SGD, {config['steps']} steps, {config['seeds']} seeds)",
        "",
        f"Learning rate per (loss, start) chosen from {{{lrs}}} by the mean validation accuracy "
        f"over the evaluations (every {config['eval_every']} steps); the overconfident start "
        f"multiplies the initial last-layer weights by {config['init_scale']:g}. Test numbers at "
        "the chosen rate, at the last step: mean [95% interval] over seeds. Entropy at step 0: "
        f"mean validation predictive entropy of the initial network, nats (log 10 = "
        f"{math.log(10):.3f}). Test NLL is that of softmax(z); the square loss on the logits "
        "does not fit probabilities, so its NLL is not a like-for-like number.",
        "",
        outputs.markdown_table(
            ["loss / start", "lr", "entropy at step 0", target, "test accuracy", "test NLL"], rows
        ),
        "",
        "Diverged at some seed, so never chosen: "
        + (", ".join(f"{a}/{b} at lr {c:g}" for a, b, c in tr["diverged"]) or "none")
        + ".",
        "",
        "Paired differences by seed (a claim only where the interval excludes 0):",
        "",
        *(_verdict_line(row) for row in tr["comparisons"]),
    ]


def report(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = ["# Cross-entropy vs MSE for classification", ""]
    lines += _gradient_section(results["gradients"], config["num_classes"])
    if "training" in results:
        lines += _training_section(results["training"], config)
    return "\n".join(lines)
