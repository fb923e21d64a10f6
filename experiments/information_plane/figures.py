"""The PNGs of ``information_plane``, drawn from the results alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import outputs
from experiments.information_plane.config import SATURATION_RULES

_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": 7, "frameon": False}
_MARKERS = "os^Dv<>p*h"


def _plane_axes(ax: Any, r: dict[str, Any], setting: str, results: dict[str, Any], sc_args):
    steps = np.asarray(r["eval_steps"], float)
    ixt = np.asarray(r["settings"][setting]["ixt"], float)
    ity = np.asarray(r["settings"][setting]["ity"], float)
    sc = None
    for layer in range(ixt.shape[0]):
        ax.plot(ixt[layer], ity[layer], "-", color="0.6", lw=0.7, zorder=1)
        sc = ax.scatter(
            ixt[layer],
            ity[layer],
            c=steps,
            marker=_MARKERS[layer % len(_MARKERS)],
            s=14,
            zorder=2,
            label=f"layer {layer + 1}",
            **sc_args,
        )
    ceiling, h_y = results["log2_n"], results["h_y_bits"]
    ax.axvline(ceiling, color="C3", ls="--", lw=1.0, label="ceiling log2 n")
    ax.axhline(h_y, color="0.3", ls=":", lw=0.8, label="H(Y)")
    # Never clip the curves: the limits cover the data and both ceilings.
    ax.set_xlim(min(0.0, np.nanmin(ixt)) - 0.1, max(ceiling, np.nanmax(ixt)) * 1.03)
    ax.set_ylim(min(0.0, np.nanmin(ity)) - 0.05, max(h_y, np.nanmax(ity)) * 1.06)
    ax.set(xlabel="I(X;T) (bits)", ylabel="I(T;Y) (bits)")
    return sc


def _plane_figure(results: dict[str, Any]) -> Any:
    acts, settings = list(results["config"]["activations"]), results["settings"]
    vmax = max(max(results["activations"][a]["eval_steps"][-1] for a in acts), 1)
    sc_args = {"cmap": "viridis", "vmin": 0.0, "vmax": vmax}
    fig, axes = outputs.new_figure(len(settings), len(acts), size=(3.8, 3.0))
    fig.set_layout_engine("constrained")
    sc = None
    for col, act in enumerate(acts):
        for row, setting in enumerate(settings):
            ax = axes[row, col]
            sc = _plane_axes(ax, results["activations"][act], setting, results, sc_args)
            ax.set_title(f"{act}, {setting}", fontsize=9)
    axes[0, -1].legend(**_OUTSIDE)  # the same entries in every panel: one legend, outside
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), label="training step (steps)", shrink=0.6)
    fig.suptitle(
        "Information plane, mean over seeds (s: the layer's activation SD at that step; "
        "dashed: ceiling log2 n; dotted: H(Y))"
    )
    return fig


def _ixt_figure(results: dict[str, Any]) -> Any:
    acts, settings = list(results["config"]["activations"]), results["settings"]
    fig, axes = outputs.new_figure(len(settings), len(acts), size=(3.8, 2.6))
    fig.set_layout_engine("constrained")
    for col, act in enumerate(acts):
        r = results["activations"][act]
        for row, setting in enumerate(settings):
            ax = axes[row, col]
            per_seed = np.asarray(r["settings"][setting]["per_seed_ixt"], float)  # (K, L, T)
            for layer in range(per_seed.shape[1]):
                for k in range(per_seed.shape[0]):
                    ax.plot(
                        r["eval_steps"],
                        per_seed[k, layer],
                        color=f"C{layer}",
                        lw=0.6,
                        label=f"layer {layer + 1}" if k == 0 else None,
                    )
            ax.axhline(results["log2_n"], color="C3", ls="--", lw=1.0, label="ceiling log2 n")
            ax.set(xlabel="training step (steps)", ylabel="I(X;T) (bits)")
            ax.set_title(f"{act}, {setting} (each seed)", fontsize=9)
    axes[0, -1].legend(**_OUTSIDE)
    return fig


def _saturation_figure(results: dict[str, Any]) -> Any:
    acts = list(results["config"]["activations"])
    fig, axes = outputs.new_figure(2, len(acts), size=(3.8, 2.8))
    fig.set_layout_engine("constrained")
    for col, act in enumerate(acts):
        r = results["activations"][act]
        steps = r["eval_steps"]
        lay = r["layers"]
        sd = np.asarray(lay["activation_sd"]["curve"], float)  # (L, T)
        for layer in range(sd.shape[0]):
            axes[0, col].plot(steps, sd[layer], color=f"C{layer}", label=f"layer {layer + 1}")
        axes[0, col].set(
            xlabel="training step (steps)", ylabel="activation SD s (activation units)"
        )
        axes[0, col].set_ylim(bottom=0)
        axes[0, col].set_title(f"{act}: spread s, mean over seeds", fontsize=9)
        ax = axes[1, col]
        if "saturated_fraction" in lay:
            sat = np.asarray(lay["saturated_fraction"]["curve"], float)
            dead = np.asarray(lay["dead_units"]["curve"], float)
            for layer in range(sat.shape[0]):
                ax.plot(steps, sat[layer], color=f"C{layer}", label=f"layer {layer + 1}")
                ax.plot(steps, dead[layer], color=f"C{layer}", ls=":")
            ax.set_title(
                f"{act}: saturated ({SATURATION_RULES[act]}); dotted: dead units", fontsize=9
            )
            ax.set_ylim(-0.02, 1.02)
        else:
            ax.set_title(f"{act}: no saturation rule", fontsize=9)
        ax.set(xlabel="training step (steps)", ylabel="fraction saturated (0–1)")
    axes[0, -1].legend(**_OUTSIDE)
    return fig


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    return {
        "information_plane": _plane_figure(results),
        "ixt_vs_step": _ixt_figure(results),
        "saturation": _saturation_figure(results),
    }
