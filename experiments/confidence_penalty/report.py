"""``report.md`` of ``confidence_penalty``, from the results alone."""

from __future__ import annotations

from typing import Any

from experiments.confidence_penalty.config import METHOD_LABELS, METHODS, METRICS
from experiments.core import outputs


def _method_table(r: dict[str, Any]) -> str:
    chosen = {
        "ce": "λ = ε = 0",
        "ce_ts": f"T = {outputs.fmt(r['methods']['ce_ts']['temperature'], 2)}",
        "cp": f"λ = {r['chosen']['lambda']:g}",
        "ls": f"ε = {r['chosen']['smoothing']:g}",
    }
    rows = [[METHOD_LABELS[m], chosen[m], *(r["methods"][m][k] for k in METRICS)] for m in METHODS]
    headers = ["method", "setting (validation)", "accuracy", "NLL", "ECE", "mean entropy"]
    return outputs.markdown_table(headers, rows, digits=3)


def _comparison_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    for row in r["comparisons"]:
        parts = [
            f"{label} {outputs.fmt(row[m], 3)}" + ("" if row[m]["significant"] else " (n.s.)")
            for m, label in (("accuracy", "accuracy"), ("nll", "NLL"), ("ece", "ECE"))
        ]
        lines.append(
            f"- {METHOD_LABELS[row['a']]} − {METHOD_LABELS[row['b']]}: " + "; ".join(parts) + "."
        )
    return lines


def _sweep_table(r: dict[str, Any]) -> str:
    rows = [
        [f"{lam:g}", *(outputs.interval_at(r["per_lambda"][m], i) for m in METRICS)]
        for i, lam in enumerate(r["lambdas"])
    ]
    return outputs.markdown_table(["λ", "accuracy", "NLL", "ECE", "mean entropy"], rows, digits=3)


def report(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = [
        "# Confidence penalty against label smoothing and temperature scaling",
        "",
        f"{config['seeds']} seeds per setting, {config['steps']} Adam steps (lr "
        f"{config['learning_rate']}, cosine). λ, ε and T are chosen on the validation split "
        "(mean validation NLL over seeds; T per member); test-set metrics, mean [95% interval] "
        "over seeds (Student t, ddof = 1). Entropy in nats.",
    ]
    for name, r in results["datasets"].items():
        lines += [
            "",
            f"## {name} ({r['num_classes']} classes, max entropy {r['max_entropy']:.3f} nats; "
            f"{r['num_train']} train / {r['num_val']} validation / {r['num_test']} test)",
            "",
            _method_table(r),
            "",
            "Paired differences by seed; (n.s.): the interval includes 0, no difference claimed.",
            "",
            *_comparison_lines(r),
            "",
            "The whole λ sweep (test split; for description, not for choosing):",
            "",
            _sweep_table(r),
        ]
    return "\n".join(lines)
