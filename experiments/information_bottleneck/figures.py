"""The PNGs of ``information_bottleneck``, drawn from the results alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import outputs
from experiments.information_bottleneck.config import METHOD_LABELS


def _plane_axes(ax: Any, r: dict[str, Any]) -> Any:
    betas = np.asarray(r["betas"], float)
    izx = np.asarray(r["test"]["izx_bits"]["mean"], float)
    izy = np.asarray(r["test"]["izy_bits"]["mean"], float)
    sc = ax.scatter(izx, izy, c=np.log10(betas), cmap="viridis", zorder=3, label="test")
    ax.plot(izx, izy, "k-", lw=0.6, alpha=0.5)
    tr_izx = np.asarray(r["train"]["izx_bits"]["mean"], float)
    tr_izy = np.asarray(r["train"]["izy_bits"]["mean"], float)
    ax.scatter(tr_izx, tr_izy, c=np.log10(betas), cmap="viridis", marker="x", label="train")
    ax.axhline(r["h_y_bits"], color="gray", ls=":", lw=0.8, label="H(Y)")
    ax.axvline(r["log2_n"]["test"], color="C3", ls="--", lw=0.9, label="log2 N (test)")
    ax.axvline(r["log2_n"]["train"], color="C1", ls="--", lw=0.9, label="log2 N (train)")
    ax.set_xscale("log")
    ax.set(xlabel="I(X;Z) upper bound (bits)", ylabel="I(Z;Y) lower bound (bits)")
    ax.set_title("Information plane (o test, x train)")
    ax.legend(fontsize=7, loc="lower right")
    return sc


def _plane_figure(r: dict[str, Any]) -> Any:
    betas = np.asarray(r["betas"], float)
    fig, axes = outputs.new_figure(1, 3, size=(4.4, 3.6))
    fig.colorbar(_plane_axes(axes[0, 0], r), ax=axes[0, 0], label="log10 β")
    for ax, m, label in (
        (axes[0, 1], "izx_bits", "I(X;Z) upper bound (test, bits)"),
        (axes[0, 2], "accuracy", "test accuracy"),
    ):
        col = {k: np.asarray(v, float) for k, v in r["test"][m].items() if k != "n"}
        err = np.stack([col["mean"] - col["low"], col["high"] - col["mean"]])
        ax.errorbar(betas, col["mean"], yerr=err, marker="o", capsize=2, label="VIB")
        ax.set(xscale="log", xlabel="β", ylabel=label)
    axes[0, 1].axhline(r["log2_n"]["test"], color="C3", ls="--", lw=0.9, label="log2 N (test)")
    axes[0, 1].set_yscale("log")
    axes[0, 1].legend(fontsize=7)
    for i, m in enumerate(("det", "cp")):
        acc = r["methods"][m]["accuracy"]
        axes[0, 2].axhspan(
            acc["low"],
            acc["high"],
            color=f"C{i + 1}",
            alpha=0.2,
            label=f"{METHOD_LABELS[m]} (95% interval)",
        )
    axes[0, 2].axvline(r["chosen"]["vib"], color="0.4", ls=":", lw=0.9, label="β chosen (val)")
    axes[0, 2].legend(fontsize=7)
    fig.suptitle("Variational information bottleneck on digits (bars: 95% intervals over seeds)")
    fig.tight_layout()
    return fig


def _curves_figure(r: dict[str, Any]) -> Any:
    betas = np.asarray(r["betas"], float)
    fig, axes = outputs.new_figure(1, 2, size=(4.2, 3.2))
    for b, izx_c, acc_c in zip(
        betas, r["curves"]["izx_bits"], r["curves"]["accuracy"], strict=True
    ):
        axes[0, 0].plot(r["eval_steps"], izx_c, label=f"β={b:g}")
        axes[0, 1].plot(r["eval_steps"], acc_c, label=f"β={b:g}")
    axes[0, 0].axhline(r["log2_n"]["val"], color="C3", ls="--", lw=0.9, label="log2 N (val)")
    axes[0, 0].set(ylabel="I(X;Z) upper bound (validation, bits)", yscale="log")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].set(ylabel="validation accuracy")
    for ax in axes[0]:
        ax.set_xlabel("step")
    axes[0, 1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    r = results["ib"]
    return {"information_plane": _plane_figure(r), "curves": _curves_figure(r)}
