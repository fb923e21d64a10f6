"""``report.md`` of ``confidence_penalty``, from the results alone."""

from __future__ import annotations

from typing import Any

from experiments.confidence_penalty.config import METHOD_LABELS, METHODS, METRICS
from experiments.core import outputs


def _lambda_cell(lam: float) -> str:
    return "λ = 0 (plain CE)" if lam == 0 else f"λ = {lam:g}"


def _method_table(r: dict[str, Any]) -> str:
    chosen = {
        "ce": "λ = ε = 0",
        "ce_ts": f"T = {outputs.fmt(r['methods']['ce_ts']['temperature'], 2)}",
        "cp": _lambda_cell(r["chosen"]["lambda"]),
        "ls": f"ε = {r['chosen']['smoothing']:g}",
    }
    rows = [[METHOD_LABELS[m], chosen[m], *(r["methods"][m][k] for k in METRICS)] for m in METHODS]
    headers = [
        "method",
        "setting (validation)",
        "accuracy",
        "NLL (nats)",
        "ECE",
        "mean entropy (nats)",
    ]
    return outputs.markdown_table(headers, rows, digits=3)


def _temperature_line(r: dict[str, Any]) -> str:
    t = r["methods"]["ce_ts"]["temperature"]
    seeds = r["methods"]["ce_ts"]["temperature"]["n"]
    if t["low"] > 1:
        verdict = "T > 1: plain cross-entropy is overconfident here"
    elif t["high"] < 1:
        verdict = "T < 1: plain cross-entropy is underconfident here"
    else:
        verdict = "the interval includes 1: no over- or underconfidence shown"
    return (
        f"Temperature fitted on validation to plain cross-entropy: T = {outputs.fmt(t, 2)} "
        f"(Student t over seeds; T > 1 in {r['ce_overconfident_seeds']}/{seeds} seeds); "
        f"{verdict}."
    )


def _diff_cell(d: dict[str, Any]) -> str:
    return outputs.fmt(d, 3) + ("" if d["significant"] else " (n.s.)")


def _comparison_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    same = r["chosen"]["lambda"] == 0  # the chosen "confidence penalty" is plain CE
    for row in r["comparisons"]:
        if same and {row["a"], row["b"]} == {"cp", "ce"}:
            lines.append(
                f"- {METHOD_LABELS[row['a']]} − {METHOD_LABELS[row['b']]}: λ = 0 was chosen, so "
                "these are the same members (difference 0 by construction)."
            )
            continue
        parts = [
            f"{label} {_diff_cell(row[m])}"
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
    headers = ["λ", "accuracy", "NLL (nats)", "ECE", "mean entropy (nats)"]
    return outputs.markdown_table(headers, rows, digits=3)


def _versus_ce_table(r: dict[str, Any]) -> str:
    rows = [
        [f"{row['lambda']:g}", *(_diff_cell(row[m]) for m in ("accuracy", "nll", "ece"))]
        for row in r["lambda_vs_ce"]
    ]
    headers = ["λ", "Δ accuracy", "Δ NLL (nats)", "Δ ECE"]
    return outputs.markdown_table(headers, rows)


def _direction_line(r: dict[str, Any], m: str, label: str, higher_is_better: bool) -> str:
    up = [
        row["lambda"] for row in r["lambda_vs_ce"] if row[m]["significant"] and row[m]["mean"] > 0
    ]
    down = [
        row["lambda"] for row in r["lambda_vs_ce"] if row[m]["significant"] and row[m]["mean"] < 0
    ]
    better, worse = (up, down) if higher_is_better else (down, up)

    def names(values):
        return ", ".join(f"{v:g}" for v in values) or "none"

    return f"- {label}: better than CE at λ ∈ {{{names(better)}}}, worse at λ ∈ {{{names(worse)}}}."


def _dataset_section(name: str, r: dict[str, Any]) -> list[str]:
    examples = r["num_test"]
    return [
        "",
        f"## {name} ({r['num_classes']} classes, max entropy {r['max_entropy']:.3f} nats; "
        f"{r['num_train']} train / {r['num_val']} validation / {examples} test)",
        "",
        _method_table(r),
        "",
        _temperature_line(r),
        "",
        f"Accuracy and NLL: mean [95% interval] over seeds *and* the {examples} test examples "
        "(hierarchical bootstrap: seeds, then examples); ECE and mean entropy: over seeds "
        "(Student t). One test example is 1/"
        f"{examples} = {1 / examples:.4f} of accuracy.",
        "",
        "Paired differences (a − b; accuracy and NLL from per-example differences of the same "
        "seed and test example, bootstrapped over seeds and examples; ECE by seed); (n.s.): the "
        "interval includes 0, no difference claimed.",
        "",
        *_comparison_lines(r),
        "",
        "The whole λ sweep (test split; for description, not for choosing; mean [95% "
        "interval] over seeds alone, Student t — the test examples held fixed):",
        "",
        _sweep_table(r),
        "",
        "Each λ against plain cross-entropy (λ = 0), paired as above:",
        "",
        _versus_ce_table(r),
        "",
        _direction_line(r, "accuracy", "accuracy", True),
        _direction_line(r, "nll", "NLL", False),
        _direction_line(r, "ece", "ECE", False),
    ]


def report(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = [
        "# Confidence penalty against label smoothing and temperature scaling",
        "",
        f"{config['seeds']} seeds per setting, {config['steps']} Adam steps (lr "
        f"{config['learning_rate']}, cosine). λ (λ = 0, plain cross-entropy, included), ε and "
        "T are chosen on the validation split (mean validation NLL over seeds; T per member); "
        "the test split only reports. Entropy in nats. The toy labels are flipped with "
        f"probability {config['toy_label_noise']:g} (train, validation and test alike).",
    ]
    for name, r in results["datasets"].items():
        lines += _dataset_section(name, r)
    return "\n".join(lines)
