"""``report.md`` of ``information_plane``, from the results alone."""

from __future__ import annotations

from typing import Any

from experiments.core import outputs
from experiments.information_plane.config import (
    CEILING_MARGIN_BITS,
    COMPRESSION_THRESHOLD_BITS,
    END_FRACTION,
    SATURATION_RULES,
)


def _layer_table(r: dict[str, Any], settings: list[str]) -> str:
    headers = ["estimator", "layer", "I(X;T) step 0", "I(X;T) peak", "I(X;T) end"]
    headers += ["rise (peak − step 0)", "drop (peak − end)", "end trend (bits/1000 steps)"]
    headers += ["verdict", "I(T;Y) end"]
    keys = (
        "ixt_initial",
        "ixt_peak",
        "ixt_final",
        "rise_bits",
        "compression_bits",
        "end_slope_bits_per_1000",
    )
    rows = [
        [setting, str(i + 1), *(lay[k] for k in keys), lay["verdict"], lay["ity_final"]]
        for setting in settings
        for i, lay in enumerate(r["settings"][setting]["layers"])
    ]
    return outputs.markdown_table(headers, rows, digits=2)


def _spread_table(r: dict[str, Any], act: str) -> str:
    lay = r["layers"]
    headers = ["layer", "activation SD s, step 0", "s, end"]
    keys = [("activation_sd", "initial"), ("activation_sd", "final")]
    if "saturated_fraction" in lay:
        rule = SATURATION_RULES[act]
        headers += [f"saturated ({rule}), step 0", "saturated, end", "dead units, end"]
        keys += [
            ("saturated_fraction", "initial"),
            ("saturated_fraction", "final"),
            ("dead_units", "final"),
        ]
    depth = len(lay["activation_sd"]["final"])
    rows = [[str(i + 1), *(lay[name][when][i] for name, when in keys)] for i in range(depth)]
    return outputs.markdown_table(headers, rows, digits=3)


def _trend_words(lay: dict[str, Any]) -> str:
    slope = lay["end_slope_bits_per_1000"]
    if lay["end_trend"] == "no significant trend":
        return ""
    value = outputs.fmt(slope, 3, signed=True)
    return f" (still {lay['end_trend']} at the end: {value} bits/1000 steps)"


def _summary_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    steps = results["config"]["steps"]
    for act in results["config"]["activations"]:
        r = results["activations"][act]
        for setting in results["settings"]:
            layers = r["settings"][setting]["layers"]
            words = ", ".join(
                f"layer {i + 1} {lay['verdict']}{_trend_words(lay)}" for i, lay in enumerate(layers)
            )
            start = (
                "at the ceiling at step 0"
                if all(lay["initial_at_ceiling"] for lay in layers)
                else "off the ceiling at step 0"
            )
            fit = [str(i + 1) for i, lay in enumerate(layers) if lay["fitting_visible"]]
            fitting = f"; fitting visible in layer(s) {', '.join(fit)}" if fit else ""
            lines.append(f"- {act}, {setting} ({start}{fitting}), within {steps} steps: {words}.")
    return lines


def report(results: dict[str, Any]) -> str:
    config, n = results["config"], results["num_train"]
    setup = (
        f"MLP {config['depth']}×{config['width']} on the {n} digits training images, "
        f"{config['steps']} Adam steps (lr {config['learning_rate']}, constant, batch "
        f"{config['batch_size']}), {config['seeds']} seeds, estimates every "
        f"{config['eval_every']} steps on {results['num_measured']} class-balanced training "
        f"images, in bits: mean [95% interval] over seeds (Student t, ddof = 1). **Ceiling** "
        f"log2 n = {results['log2_n']:.3f} bits for I(X;T); H(Y) = {results['h_y_bits']:.3f}. "
        "**Scales relative to each layer's spread**: s is the standard deviation of the layer's "
        "activations over the measured images and its units (pooled), per seed and step; "
        "binning/Δ=f·s cuts every unit into bins of width f·s anchored at 0 (no clipping), "
        "kernel/σ=f·s adds Gaussian noise of standard deviation f·s (the pairwise-distance "
        "bound). A change of the layer's scale alone moves neither estimate. Verdicts: "
        f"'compresses' when the 95% interval of the drop lies above {COMPRESSION_THRESHOLD_BITS}"
        " bits; 'does not compress' when it lies below and the estimate is off the ceiling; "
        f"'at the ceiling' when I(X;T) stays within {CEILING_MARGIN_BITS} bits of log2 n at its "
        "peak and end (the estimate cannot move: undetermined); else 'inconclusive'. **Every "
        f"verdict holds within the {config['steps']} steps trained**: the end trend is the "
        f"slope of I(X;T) over the last {END_FRACTION:.0%} of the steps (least squares per seed,"
        " bits per 1000 steps); where its interval excludes 0 the curve was still moving when "
        "training stopped."
    )
    lines = ["# Information plane of an MLP on digits", "", setup]
    for act in results["config"]["activations"]:
        r = results["activations"][act]
        lines += [
            "",
            f"## {act}",
            "",
            f"Test accuracy {outputs.fmt(r['final_test_accuracy'], 3)}, train accuracy "
            f"{outputs.fmt(r['final_train_accuracy'], 3)}; largest activation seen "
            f"{r['max_activation_seen']:.3f}.",
            "",
            "Spread and saturation per layer (the scale the estimates are relative to):",
            "",
            _spread_table(r, act),
            "",
            _layer_table(r, results["settings"]),
        ]
    lines += ["", "## Summary (claims only as far as the intervals and the ceiling allow)", ""]
    return "\n".join(lines + _summary_lines(results))
