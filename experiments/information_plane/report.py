"""``report.md`` of ``information_plane``, from the results alone."""

from __future__ import annotations

from typing import Any

from experiments.core import outputs
from experiments.information_plane.config import CEILING_MARGIN_BITS, COMPRESSION_THRESHOLD_BITS


def _layer_table(r: dict[str, Any], settings: list[str]) -> str:
    headers = ["estimator", "layer", "I(X;T) step 0", "I(X;T) peak", "I(X;T) end"]
    headers += ["rise (peak − step 0)", "drop (peak − end)", "verdict", "I(T;Y) end"]
    keys = ("ixt_initial", "ixt_peak", "ixt_final", "rise_bits", "compression_bits")
    rows = [
        [setting, str(i + 1), *(lay[k] for k in keys), lay["verdict"], lay["ity_final"]]
        for setting in settings
        for i, lay in enumerate(r["settings"][setting]["layers"])
    ]
    return outputs.markdown_table(headers, rows, digits=2)


def _summary_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for act, r in results["activations"].items():
        for setting in results["settings"]:
            layers = r["settings"][setting]["layers"]
            words = ", ".join(f"layer {i + 1} {lay['verdict']}" for i, lay in enumerate(layers))
            start = (
                "at the ceiling at step 0"
                if all(lay["initial_at_ceiling"] for lay in layers)
                else "off the ceiling at step 0"
            )
            fit = [str(i + 1) for i, lay in enumerate(layers) if lay["fitting_visible"]]
            fitting = f"; fitting visible in layer(s) {', '.join(fit)}" if fit else ""
            lines.append(f"- {act}, {setting} ({start}{fitting}): {words}.")
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
        "Binning with B bins has width 2/B (B bins over tanh's (−1, 1), the same width for "
        "ReLU up to the cap); kernel: noise variance σ². Verdicts: 'compresses' when the 95% "
        f"interval of the drop lies above {COMPRESSION_THRESHOLD_BITS} bits; 'does not "
        "compress' when it lies below and the estimate is off the ceiling; 'at the ceiling' "
        f"when I(X;T) stays within {CEILING_MARGIN_BITS} bits of log2 n at its peak and end "
        "(the estimate cannot move: undetermined); else 'inconclusive'."
    )
    lines = ["# Information plane of an MLP on digits", "", setup]
    for act, r in results["activations"].items():
        clip = ""
        if act != "tanh":
            high = max(v[1][1] for v in r["relu_bins"].values())
            clipped = r["max_activation_seen"] > high
            what = "larger values were clipped into the last bin" if clipped else "no clipping"
            clip = f" (bins cover (0, {high:.3f}); {what})"
        lines += [
            "",
            f"## {act}",
            "",
            f"Test accuracy {outputs.fmt(r['final_test_accuracy'], 3)}, train accuracy "
            f"{outputs.fmt(r['final_train_accuracy'], 3)}; largest activation seen "
            f"{r['max_activation_seen']:.3f}{clip}.",
            "",
            _layer_table(r, results["settings"]),
        ]
    lines += ["", "## Summary (claims only as far as the intervals and the ceiling allow)", ""]
    return "\n".join(lines + _summary_lines(results))
