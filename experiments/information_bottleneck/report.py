"""``report.md`` of ``information_bottleneck``, from the results alone."""

from __future__ import annotations

from typing import Any

from experiments.core import outputs
from experiments.information_bottleneck.config import METHOD_LABELS, METHODS


def _capped(col: dict[str, list], i: int, ceiling: float) -> str:
    """The stored KL bound shown as ``min(bound, log2 N)``: above the ceiling it says no more."""
    return f"{min(col['mean'][i], ceiling):.2f}"


def _sweep_table(r: dict[str, Any]) -> str:
    test, train = r["test"], r["train"]
    rows = [
        [
            f"{beta:g}",
            outputs.interval_at(test["accuracy"], i),
            outputs.interval_at(test["izx_bits"], i),
            _capped(test["izx_bits"], i, r["log2_n"]["test"]),
            outputs.interval_at(test["izy_bits"], i),
            outputs.interval_at(train["izx_bits"], i),
            _capped(train["izx_bits"], i, r["log2_n"]["train"]),
            outputs.interval_at(train["izy_bits"], i),
        ]
        for i, beta in enumerate(r["betas"])
    ]
    headers = [
        "β",
        "test accuracy",
        "I(X;Z) ≤ KL (test)",
        "min(KL, log2 N) (test)",
        "I(Z;Y) ≥ (test)",
        "I(X;Z) ≤ KL (train)",
        "min(KL, log2 N) (train)",
        "I(Z;Y) ≥ (train)",
    ]
    return outputs.markdown_table(headers, rows, digits=3)


def _method_table(r: dict[str, Any]) -> str:
    setting = {
        "det": "β = 0, no noise",
        "cp": f"λ = {r['chosen']['cp']:g}",
        "vib": f"β = {r['chosen']['vib']:g}",
    }
    rows = [
        [METHOD_LABELS[m], setting[m], *(r["methods"][m][k] for k in ("accuracy", "nll", "ece"))]
        for m in METHODS
    ]
    return outputs.markdown_table(
        ["method", "setting (validation)", "test accuracy", "test NLL (nats)", "test ECE"],
        rows,
        digits=3,
    )


def _comparison_lines(r: dict[str, Any]) -> list[str]:
    return [
        f"- {METHOD_LABELS[row['a']]} − {METHOD_LABELS[row['b']]}: "
        + "; ".join(
            f"{label} {outputs.fmt(row[m], 3)} ({row[m]['verdict']})"
            for m, label in (("accuracy", "accuracy"), ("nll", "NLL"), ("ece", "ECE"))
        )
        + "."
        for row in r["comparisons"]
    ]


def report(results: dict[str, Any]) -> str:
    r, config = results["ib"], results["config"]
    ceil = r["log2_n"]
    return "\n".join(
        [
            "# Variational information bottleneck on digits",
            "",
            f"Latent dim {config['latent_dim']}, encoder MLP width {config['width']}, "
            f"{config['steps']} Adam steps, {config['seeds']} seeds per setting; mean [95% "
            f"interval] over seeds (Student t, ddof = 1). H(Y) = {r['h_y_bits']:.3f} bits (the "
            f"ceiling of I(Z;Y)); the ceiling of I(X;Z) is log2 N = {ceil['test']:.2f} bits for "
            f"the test split and {ceil['train']:.2f} for the training split (X uniform over the "
            "images), so a KL bound above it only says the rate is at the ceiling.",
            "",
            "## Methods (β and λ chosen by validation NLL; test split)",
            "",
            _method_table(r),
            "",
            "Paired differences by seed (a claim only where the interval excludes 0):",
            "",
            *_comparison_lines(r),
            "",
            "## The β sweep",
            "",
            _sweep_table(r),
        ]
    )
