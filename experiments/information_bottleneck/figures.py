"""The PNGs of ``information_bottleneck``, drawn from the results alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import outputs
from experiments.information_bottleneck.config import METHOD_LABELS

_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": 7, "frameon": False}


def _col(r: dict[str, Any], split: str, name: str) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, float) for k, v in r[split][name].items() if k != "n"}


def _errorbar(ax: Any, x: np.ndarray, col: dict[str, np.ndarray], **kwargs: Any) -> None:
    err = np.stack([col["mean"] - col["low"], col["high"] - col["mean"]])
    ax.errorbar(x, col["mean"], yerr=err, capsize=2, **kwargs)


def _plane_axes(ax: Any, r: dict[str, Any]) -> Any:
    """I(Z;Y) lower bound against the direct I(X;Z) estimate, test (o) and train (x)."""
    log_betas = np.log10(np.asarray(r["betas"], float))
    sc = None
    for split, marker in (("test", "o"), ("train", "x")):
        izx = _col(r, split, "izx_mc_bits")["mean"]
        izy = _col(r, split, "izy_bits")["mean"]
        ax.plot(izx, izy, "-", color="0.6", lw=0.6, zorder=1)
        sc = ax.scatter(
            izx, izy, c=log_betas, cmap="viridis", marker=marker, zorder=3, label=f"VIB, {split}"
        )
    ax.axhline(r["h_y_bits"], color="gray", ls=":", lw=0.8, label="H(Y) (ceiling of I(Z;Y))")
    ax.axvline(r["log2_n"]["test"], color="C3", ls="--", lw=0.9, label="log2 N (test)")
    ax.axvline(r["log2_n"]["train"], color="C1", ls="--", lw=0.9, label="log2 N (train)")
    ax.set(xlabel="I(X;Z), direct estimate (bits)", ylabel="I(Z;Y) lower bound (bits)")
    ax.set_title("Information plane (mean over seeds)", fontsize=9)
    ax.legend(**_OUTSIDE)
    return sc


def _plane_figure(r: dict[str, Any]) -> Any:
    betas = np.asarray(r["betas"], float)
    fig, axes = outputs.new_figure(1, 3, size=(4.6, 3.6))
    fig.set_layout_engine("constrained")
    fig.colorbar(_plane_axes(axes[0, 0], r), ax=axes[0, 0], label="log10 β", location="bottom")
    ax = axes[0, 1]
    _errorbar(ax, betas, _col(r, "test", "izx_mc_bits"), marker="o", label="direct estimate")
    _errorbar(ax, betas, _col(r, "test", "izx_bits"), marker="s", ls="--", label="KL bound")
    ceiling = r["log2_n"]["test"]
    top = max(ceiling, float(np.max(_col(r, "test", "izx_bits")["high"]))) * 1.5
    ax.axhspan(ceiling, top, color="C3", alpha=0.08, label="bound vacuous (> log2 N)")
    ax.axhline(ceiling, color="C3", ls="--", lw=0.9, label="log2 N (test)")
    ax.set(xscale="log", yscale="log", xlabel="β", ylabel="I(X;Z), test (bits)")
    ax.set_ylim(top=top)
    ax.set_title("I(X;Z): direct estimate and KL bound", fontsize=9)
    ax.legend(**_OUTSIDE)
    ax = axes[0, 2]
    _errorbar(ax, betas, _col(r, "test", "accuracy"), marker="o", label="VIB")
    for i, m in enumerate(("det", "cp")):
        acc = r["methods"][m]["accuracy"]
        ax.axhspan(
            acc["low"],
            acc["high"],
            color=f"C{i + 1}",
            alpha=0.2,
            label=f"{METHOD_LABELS[m]} (95% interval)",
        )
    ax.axvline(r["chosen"]["vib"], color="0.4", ls=":", lw=0.9, label="β chosen (val)")
    ax.set(xscale="log", xlabel="β", ylabel="test accuracy (fraction)")
    ax.legend(**_OUTSIDE)
    fig.suptitle("Variational information bottleneck on digits (bars: 95% intervals over seeds)")
    return fig


def _curves_figure(r: dict[str, Any]) -> Any:
    betas = np.asarray(r["betas"], float)
    fig, axes = outputs.new_figure(1, 2, size=(4.6, 3.4))
    fig.set_layout_engine("constrained")
    c = r["curves"]
    for i, (b, mc, kl, acc) in enumerate(
        zip(betas, c["izx_mc_bits"], c["izx_bits"], c["accuracy"], strict=True)
    ):
        axes[0, 0].plot(r["eval_steps"], mc, color=f"C{i}", label=f"β={b:g} direct")
        axes[0, 0].plot(r["eval_steps"], kl, color=f"C{i}", ls=":", label=f"β={b:g} KL bound")
        axes[0, 1].plot(r["eval_steps"], acc, color=f"C{i}", label=f"β={b:g}")
    axes[0, 0].axhline(r["log2_n"]["val"], color="k", ls="--", lw=0.9, label="log2 N (val)")
    axes[0, 0].set(ylabel="I(X;Z), validation (bits)", yscale="log")
    axes[0, 0].set_title("solid: direct estimate; dotted: KL bound", fontsize=9)
    axes[0, 0].legend(**{**_OUTSIDE, "fontsize": 6})
    axes[0, 1].set(ylabel="validation accuracy (fraction)")
    axes[0, 1].legend(**_OUTSIDE)
    for ax in axes[0]:
        ax.set_xlabel("training step (steps)")
    return fig


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    r = results["ib"]
    return {"information_plane": _plane_figure(r), "curves": _curves_figure(r)}
