"""``report.md`` of ``entropy_vs_mse``, from the results alone."""

from __future__ import annotations

import math
from typing import Any

from experiments.core import outputs
from experiments.entropy_vs_mse.config import LOSS_LABELS, LOSSES


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


def _lr_cell(grp: dict[str, Any]) -> str:
    return f"{grp['chosen_lr']:g}" + (" (grid edge)" if grp["lr_at_grid_edge"] else "")


def _verdict_line(row: dict[str, Any]) -> str:
    d = row["steps_to_target"]
    if row["steps_pairs"] == row["seeds"]:
        parts = [f"steps to target {outputs.fmt(d, 0)}: {d['verdict']}"]
    else:
        parts = [f"steps to target: both reached it in {row['steps_pairs']}/{row['seeds']} seeds"]
    for key, label in (("test_accuracy", "final test accuracy"), ("test_nll", "final test NLL")):
        parts.append(f"{label} {outputs.fmt(row[key], 3)}: {row[key]['verdict']}")
    return f"- **{row['a']} − {row['b']}**: " + "; ".join(parts) + "."


def _label(g: dict[str, Any]) -> str:
    return f"{LOSS_LABELS[g['loss']]} / ×{g['scale']:g}"


def _stable_cell(g: dict[str, Any]) -> str:
    return "none" if g["largest_stable_lr"] is None else f"{g['largest_stable_lr']:g}"


def _reading_line(r: dict[str, Any]) -> str:
    (lo, hi), (g0, g1), (r0, r1) = r["scales"], r["grad_true_step0"], r["reached"]
    s0, s1 = (("none" if v is None else f"{v:g}") for v in r["largest_stable_lr"])
    return (
        f"- {LOSS_LABELS[r['loss']]}, ×{lo:g} → ×{hi:g}: measured |∂L/∂z_y| at step 0 "
        f"{g0:.3f} → {g1:.3f}; reached the target in {r0}/{r['seeds']} → {r1}/{r['seeds']} "
        f"seeds; largest non-diverging learning rate {s0} → {s1}."
    )


def _ordered(tr: dict[str, Any]) -> list[dict[str, Any]]:
    """The groups by loss, then by increasing scale (JSON may have sorted the keys)."""
    return sorted(tr["groups"].values(), key=lambda g: (LOSSES.index(g["loss"]), g["scale"]))


def _by_lr_table(tr: dict[str, Any]) -> str:
    rows = [
        [_label(g), *("diverged" if c is None else f"{c}/{g['seeds']}" for c in g["reached_by_lr"])]
        for g in _ordered(tr)
    ]
    return outputs.markdown_table(
        ["loss / scale", *(f"lr {r:g}" for r in tr["learning_rates"])], rows
    )


def _outcome_table(tr: dict[str, Any], config: dict[str, Any]) -> str:
    rows = [
        [
            _label(g),
            _lr_cell(g),
            _stable_cell(g),
            outputs.fmt(g["initial_val_entropy"], 3),
            _steps_cell(g),
            g["test_accuracy"],
            g["test_nll"],
        ]
        for g in _ordered(tr)
    ]
    target = f"steps to {config['target_accuracy']:.0%} test accuracy"
    headers = [
        "loss / scale",
        "lr",
        "largest non-diverging lr",
        "entropy at step 0 (nats)",
        target,
        "test accuracy",
        "test NLL",
    ]
    return outputs.markdown_table(headers, rows)


def _gradient_table(tr: dict[str, Any]) -> str:
    steps = tr["gradient_steps"]
    rows = [
        [
            _label(g),
            *(outputs.fmt(v, 3) for v in g["measured"]["grad_true"]),
            outputs.fmt(g["measured"]["grad_norm"][0], 3),
            outputs.fmt(g["measured"]["logit_rms"][0], 2),
        ]
        for g in _ordered(tr)
    ]
    headers = [
        "loss / scale",
        *(f"\\|∂L/∂z_y\\| at step {s}" for s in steps),
        "‖∂L/∂z‖ at step 0",
        "RMS logit at step 0",
    ]
    return outputs.markdown_table(headers, rows)


def _training_section(tr: dict[str, Any], config: dict[str, Any]) -> list[str]:
    lrs = ", ".join(f"{lr:g}" for lr in tr["learning_rates"])
    scales = ", ".join(f"{s:g}" for s in tr["init_scales"])
    return [
        f"## Training on digits (SGD, {config['steps']} steps, {config['seeds']} seeds)",
        "",
        f"The initial last-layer weights and bias are multiplied by a scale in {{{scales}}} "
        "(×1: the standard start; larger: a more confident initial network, free to shrink its "
        f"logits again). Learning rate per (loss, scale) chosen from {{{lrs}}} by the mean "
        f"validation accuracy over the evaluations (every {config['eval_every']} steps); "
        "'grid edge': the choice is the smallest or largest rate of the grid, so a better rate "
        "may lie outside it. Test numbers at the chosen rate, at the last step: mean [95% "
        "interval] over seeds. Entropy at step 0: mean validation predictive entropy of the "
        f"initial network (log 10 = {math.log(10):.3f} nats). Test NLL is that of softmax(z); "
        "the square loss on the logits does not fit probabilities, so its NLL is not a "
        "like-for-like number.",
        "",
        _outcome_table(tr, config),
        "",
        "Seeds that reached the target at each rate of the grid (test accuracy, for description "
        "only: the rate is chosen on validation; 'diverged': some seed's loss became "
        "non-finite):",
        "",
        _by_lr_table(tr),
        "",
        "Diverged at some seed, so never chosen: "
        + (", ".join(f"{a}/×{b:g} at lr {c:g}" for a, b, c in tr["diverged"]) or "none")
        + ".",
        "",
        "### Measured gradients during training",
        "",
        "At the chosen rate, on the validation split: the mean over examples of the magnitude "
        "of the member's own loss gradient on the true logit, |∂L/∂z_y|, at a few evaluation "
        "steps, and at step 0 the mean norm over all logits ‖∂L/∂z‖₂ and the root-mean-square "
        "logit (mean [95% interval] over seeds; the loss per unit of logit: nats for "
        "cross-entropy, unitless for the other two). Part 1's −2/C for the square loss holds "
        "at z_y = 0 only; in general its gradient is 2(z_y − 1)/C, so it grows with the logits.",
        "",
        _gradient_table(tr),
        "",
        "Readings, from the smallest to the largest scale:",
        "",
        *(_reading_line(r) for r in tr["readings"]),
        "",
        "These gradients are reported beside the outcomes above, at one chosen rate per "
        "setting; the experiment does not vary them independently, so it does not show which "
        "of them causes a difference in training speed.",
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
