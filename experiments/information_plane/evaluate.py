"""The estimates and the analysis of ``information_plane``: binned and kernel I(X;T), I(T;Y)
in bits, and per (activation, estimator setting, layer) the curves, intervals and verdicts.

Everything reported is computed here, once; :mod:`.report` and :mod:`.figures` only read it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import entjax
from experiments.core import stats, training
from experiments.information_plane.config import (
    CEILING_MARGIN_BITS,
    COMPRESSION_THRESHOLD_BITS,
    Config,
)


def measurement_indices(labels: np.ndarray, per_class: int, *, seed: int) -> np.ndarray:
    """A class-balanced subset of ``labels``' indices: ``per_class`` of each class (fewer if a
    class is smaller: then the smallest class size for all), drawn with ``seed``, sorted."""
    classes, counts = np.unique(labels, return_counts=True)
    m = min(per_class, int(counts.min()))
    rng = np.random.default_rng([seed, 4000])
    picks = [rng.choice(np.flatnonzero(labels == c), m, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def bin_setup(activation: str, *, num_bins: int, relu_bin_cap: float) -> tuple[int, tuple]:
    """``(num_bins, value_range)`` giving bins of width ``2 / num_bins`` for this activation.

    tanh: ``num_bins`` bins over ``(-1, 1)``. ReLU (and anything unbounded): bins of the same
    width from 0 up to the first multiple of the width at or above ``relu_bin_cap``.
    """
    width = 2.0 / num_bins
    if activation == "tanh":
        return num_bins, (-1.0, 1.0)
    bins = max(1, math.ceil(relu_bin_cap / width - 1e-9))
    return bins, (0.0, bins * width)


def binned_estimates(acts: np.ndarray, labels: np.ndarray, *, bins: int, value_range: tuple):
    """Binned I(X;T) and I(T;Y) in bits for ``acts`` ``(..., n, d)``, X the example index."""
    acts = np.asarray(acts, np.float32)
    n = acts.shape[-2]
    ids = np.broadcast_to(np.arange(n, dtype=np.int32), acts.shape[:-1])
    ys = np.broadcast_to(np.asarray(labels, np.int32), acts.shape[:-1])
    # I(X;T) and I(T;Y) in one call (one compilation): stack the two discrete variables.
    both = entjax.binned_mutual_information(
        np.stack([ids, ys]),
        np.broadcast_to(acts, (2, *acts.shape)),
        num_bins=bins,
        value_range=value_range,
        base=2,
    )
    both = np.asarray(both, np.float64)
    return both[0], both[1]


def kernel_estimates(acts: np.ndarray, labels: np.ndarray, *, noise_std: float):
    """Kernel I(X;T) upper bound and the I(T;Y) plug-in in bits for ``acts`` ``(..., n, d)``."""
    acts = np.asarray(acts, np.float32)
    lead, n = acts.shape[:-2], acts.shape[-2]
    labels = np.asarray(labels, np.int32)

    def kernel(h: np.ndarray) -> np.ndarray:
        return np.asarray(entjax.kernel_mi_upper_bound(h, noise_std=noise_std, base=2), np.float64)

    ixt = kernel(acts)
    classes, counts = np.unique(labels, return_counts=True)
    weights = counts / n
    if np.all(counts == counts[0]):  # balanced: all classes in one call (one compilation)
        order = np.argsort(labels, kind="stable")
        grouped = acts[..., order, :].reshape(*lead, len(classes), counts[0], acts.shape[-1])
        conditional = kernel(grouped) @ weights
    else:
        conditional = sum(
            w * kernel(acts[..., labels == c, :]) for c, w in zip(classes, weights, strict=True)
        )
    return ixt, ixt - conditional


def plane_estimates(
    acts: np.ndarray,
    labels: np.ndarray,
    *,
    activation: str,
    num_bins: int,
    relu_bin_cap: float,
    noise_std: float,
) -> dict[str, np.ndarray]:
    """I(X;T) and I(T;Y) in bits, binning and kernel, for activations ``acts`` ``(..., n, d)``.

    X is the example index (uniform over the n rows), ``labels`` ``(n,)`` the classes. Returns
    ``ixt_binning``, ``ity_binning``, ``ixt_kernel``, ``ity_kernel``, each of shape
    ``acts.shape[:-2]``, plus ``max_activation`` (the largest activation value).
    """
    bins, value_range = bin_setup(activation, num_bins=num_bins, relu_bin_cap=relu_bin_cap)
    ixt_b, ity_b = binned_estimates(acts, labels, bins=bins, value_range=value_range)
    ixt_k, ity_k = kernel_estimates(acts, labels, noise_std=noise_std)
    return {
        "ixt_binning": ixt_b,
        "ity_binning": ity_b,
        "ixt_kernel": ixt_k,
        "ity_kernel": ity_k,
        "max_activation": np.asarray(acts).max(axis=(-2, -1)).astype(np.float64),
    }


def sweep_estimates(acts: np.ndarray, labels: np.ndarray, activation: str, config: Config):
    """Every estimator setting of ``config``: ``{"ixt/<setting>", "ity/<setting>"}`` arrays."""
    out = {}
    for b in config.num_bins:
        bins, value_range = bin_setup(activation, num_bins=b, relu_bin_cap=config.relu_bin_cap)
        name = f"binning/B={b}"
        out[f"ixt/{name}"], out[f"ity/{name}"] = binned_estimates(
            acts, labels, bins=bins, value_range=value_range
        )
    for v in config.noise_variances:
        name = f"kernel/σ²={v:g}"
        out[f"ixt/{name}"], out[f"ity/{name}"] = kernel_estimates(
            acts, labels, noise_std=math.sqrt(v)
        )
    out["max_activation"] = np.asarray(acts).max(axis=(-2, -1)).astype(np.float64)
    return out


def layer_summary(ixt: np.ndarray, ity: np.ndarray, steps, ceiling: float) -> dict[str, Any]:
    """One layer's per-seed I(X;T) curves ``(K, T)``: start, peak (after step 0), end, the
    fitting rise and the compression drop with intervals over seeds, and the verdict."""
    after0 = slice(1, None) if ixt.shape[1] > 1 else slice(None)
    peak = ixt[:, after0].max(axis=1)
    mean_curve = ixt.mean(0)
    near = ceiling - CEILING_MARGIN_BITS
    within = (0.0, ceiling)  # every I(X;T) estimate lies in [0, log2 n]
    out = {
        "ixt_initial": stats.interval(ixt[:, 0], bounds=within),
        "ixt_peak": stats.interval(peak, bounds=within),
        "ixt_peak_step": int(steps[int(np.argmax(mean_curve[after0])) + (after0.start or 0)]),
        "ixt_final": stats.interval(ixt[:, -1], bounds=within),
        "ity_final": stats.interval(ity[:, -1]),
        "rise_bits": stats.interval(peak - ixt[:, 0]),
        "compression_bits": stats.interval(peak - ixt[:, -1], bounds=(0.0, None)),
        "initial_at_ceiling": bool(ixt[:, 0].mean() > near),
    }
    drop = out["compression_bits"]
    at_ceiling = peak.mean() > near and ixt[:, -1].mean() > near
    if drop["n"] >= 2 and drop["low"] > COMPRESSION_THRESHOLD_BITS:
        verdict = "compresses"
    elif at_ceiling:
        verdict = "at the ceiling"
    elif drop["n"] >= 2 and drop["high"] < COMPRESSION_THRESHOLD_BITS:
        verdict = "does not compress"
    else:
        verdict = "inconclusive"
    out["verdict"] = verdict
    out["fitting_visible"] = bool(
        not out["initial_at_ceiling"] and out["rise_bits"]["low"] > COMPRESSION_THRESHOLD_BITS
    )
    return out


def summarize(
    result: training.TrainResult,
    config: Config,
    activation: str,
    epochs_per_step: float,
    ceiling: float,
) -> dict[str, Any]:
    """Per estimator setting and layer: curves (mean over seeds), per-seed values, verdicts."""
    m = result.curves.metrics  # name -> (T, K, L) or (T, K)
    steps = np.asarray(result.curves.steps)
    out: dict[str, Any] = {
        "eval_steps": result.curves.steps,
        "eval_epochs": (steps * epochs_per_step).tolist(),
        "relu_bins": {
            f"B={b}": bin_setup(activation, num_bins=b, relu_bin_cap=config.relu_bin_cap)
            for b in config.num_bins
        },
        "max_activation_seen": float(np.max(m["max_activation"])),
        "final_train_accuracy": stats.interval(m["train_accuracy"][-1], bounds=(0, 1)),
        "final_test_accuracy": stats.interval(m["test_accuracy"][-1], bounds=(0, 1)),
        "final_train_loss": stats.interval(result.loss_history[-1]),
        "settings": {},
    }
    for setting in config.settings():
        ixt = np.moveaxis(m[f"ixt/{setting}"], 0, -1)  # (K, L, T)
        ity = np.moveaxis(m[f"ity/{setting}"], 0, -1)
        out["settings"][setting] = {
            "ixt": ixt.mean(0),  # (L, T), mean over seeds
            "ity": ity.mean(0),
            "per_seed_ixt": ixt,
            "layers": [
                layer_summary(ixt[:, i], ity[:, i], steps, ceiling) for i in range(ixt.shape[1])
            ],
        }
    return out
