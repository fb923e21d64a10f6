"""The PNGs of ``elbo``, drawn from the results and the saved images alone."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from experiments.core import outputs
from experiments.elbo.config import LABELS

UNITS = {
    "test_log_px": "nats / image",
    "test_elbo": "nats / image",
    "active_units": "latent dimensions",
}


def _grid(ax: Any, images: np.ndarray, cols: int) -> None:
    images = np.asarray(images)
    rows = math.ceil(len(images) / cols)
    canvas = np.full((rows * 9 + 1, cols * 9 + 1), 0.35)  # grey separators
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[1 + r * 9 : 1 + r * 9 + 8, 1 + c * 9 : 1 + c * 9 + 8] = img
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _curves_figure(r: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, len(r["arms"]), size=(3.4, 3.0))
    steps = r["eval_steps"][1:]  # step 0 (random init) is far below and would squash the rest
    for ax, arm in zip(axes[0], r["arms"], strict=True):
        curves = r["val_curves"][arm]
        for e in r["eval_ks"]:
            label = f"IWAE-{e}" if e > 1 else "IWAE-1 (MC ELBO)"
            ax.plot(steps, np.asarray(curves[f"iwae_{e}"], float)[1:], label=label)
        ax.set_title(f"trained with {arm}", fontsize=10)
        ax.set_xlabel("step (Adam updates)")
        ax.set_ylabel("validation bound (nats / image)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle("Validation bounds during training (mean over seeds; from the first evaluation)")
    fig.tight_layout()
    return fig


def _comparison_figure(r: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, 3, size=(3.6, 3.0))
    for ax, m in zip(axes[0], ("test_log_px", "test_elbo", "active_units"), strict=True):
        cols = r["measures"][m]
        x = np.arange(len(r["arms"]))
        mean = np.asarray(cols["mean"], float)
        err = np.stack([mean - np.asarray(cols["low"], float), np.asarray(cols["high"]) - mean])
        ax.errorbar(x, mean, yerr=err, fmt="o", capsize=3)
        ax.set_xticks(x, r["arms"], rotation=30, fontsize=8)
        ax.set_xlabel("trained with")
        ax.set_title(LABELS[m], fontsize=10)
        ax.set_ylabel(UNITS[m])
    fig.suptitle(
        f"Test measures per arm (mean, 95% interval over seeds; log p(x) is IWAE-{r['final_k']})"
    )
    fig.tight_layout()
    return fig


def _convergence_figure(r: dict[str, Any]) -> Any:
    """IWAE-k against k on the check images, absolute and as the rise to the largest k."""
    c = r["convergence"]
    ks = np.asarray(c["ks"], float)
    fig, axes = outputs.new_figure(1, 2, size=(4.4, 3.4))
    for i, arm in enumerate(r["arms"]):
        est = [c["arms"][arm]["estimates"][f"k{k}"] for k in c["ks"]]
        mean = np.asarray([e["mean"] for e in est], float)
        err = np.abs(np.stack([mean - [e["low"] for e in est], [e["high"] for e in est] - mean]))
        x = ks * (1.0 + 0.04 * (i - (len(r["arms"]) - 1) / 2))  # side by side on the log axis
        axes[0, 0].errorbar(x, mean, yerr=err, fmt="o-", ms=3, capsize=2, label=arm)
        axes[0, 1].plot(ks, mean[-1] - mean, "o-", ms=3, label=arm)
    axes[0, 0].set_ylabel("IWAE-k estimate of log p(x) (nats / image)")
    axes[0, 0].set_title("estimate (95% interval: seeds and images)", fontsize=9)
    axes[0, 1].set_ylabel(f"IWAE-{c['top_k']} − IWAE-k (nats / image)")
    axes[0, 1].set_title(f"still to rise up to k = {c['top_k']} (means)", fontsize=9)
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in c["ks"]])
        ax.minorticks_off()
        ax.set_xlabel("importance samples k (log scale)")
    axes[0, 1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(f"Convergence of the log p(x) estimate ({c['num_images']} test images)")
    fig.tight_layout()
    return fig


def figures(results: dict[str, Any], images: dict[str, Any]) -> dict[str, Any]:
    r = results["vae"]
    out = {
        "curves": _curves_figure(r),
        "comparison": _comparison_figure(r),
        "convergence": _convergence_figure(r),
    }
    fig, axes = outputs.new_figure(1, 1, size=(4.0, 2.2))
    _grid(axes[0, 0], images["samples"], 8)
    axes[0, 0].set_title(f"Samples ({images['image_arm']}, seed 0): decoded z ~ N(0, I)")
    out["samples"] = fig
    fig, axes = outputs.new_figure(2, 1, size=(4.0, 1.3))
    _grid(axes[0, 0], images["originals"], 16)
    axes[0, 0].set_title("test images (binarised)")
    _grid(axes[1, 0], images["reconstructions"], 16)
    axes[1, 0].set_title("reconstructions (decoder at the posterior mean)")
    out["reconstructions"] = fig
    return out
