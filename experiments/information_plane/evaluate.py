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
    END_FRACTION,
    TANH_SATURATION,
    Config,
    binning_name,
    kernel_name,
)


def measurement_indices(labels: np.ndarray, per_class: int, *, seed: int) -> np.ndarray:
    """A class-balanced subset of ``labels``' indices: ``per_class`` of each class (fewer if a
    class is smaller: then the smallest class size for all), drawn with ``seed``, sorted."""
    classes, counts = np.unique(labels, return_counts=True)
    m = min(per_class, int(counts.min()))
    rng = np.random.default_rng([seed, 4000])
    picks = [rng.choice(np.flatnonzero(labels == c), m, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def activation_spread(acts: np.ndarray) -> np.ndarray:
    """The scale ``s`` of a layer: the standard deviation of its activations ``(..., n, d)``
    pooled over the n images and the d units (``ddof = 0``), shape ``acts.shape[:-2]``."""
    return np.asarray(acts, np.float64).std(axis=(-2, -1))


def standardize(acts: np.ndarray) -> np.ndarray:
    """``acts / s`` with ``s`` :func:`activation_spread` (a constant layer, ``s = 0``, is left
    as it is: it carries no information at any scale)."""
    s = activation_spread(acts)
    s = np.where(s > 0, s, 1.0)[..., None, None]
    return (np.asarray(acts, np.float64) / s).astype(np.float32)


def binned_estimates(acts: np.ndarray, labels: np.ndarray, *, width: float):
    """Binned I(X;T) and I(T;Y) in bits for ``acts`` ``(..., n, d)``, X the example index, with
    bins of ``width`` anchored at 0 (edges at the integer multiples of ``width``, so a ReLU's
    zeros share the bin ``[0, width)``); the bins cover every value (none is clipped)."""
    u = np.asarray(acts, np.float64) / width
    # Enough unit-width bins over (-m, m) for every value; m a power of two, so the estimator
    # compiles for a handful of bin counts only.
    m = 2 ** max(0, math.ceil(math.log2(float(np.max(np.abs(u), initial=0.0)) + 1.0)))
    u = u.astype(np.float32)
    n = u.shape[-2]
    ids = np.broadcast_to(np.arange(n, dtype=np.int32), u.shape[:-1])
    ys = np.broadcast_to(np.asarray(labels, np.int32), u.shape[:-1])
    # I(X;T) and I(T;Y) in one call (one compilation): stack the two discrete variables.
    both = entjax.binned_mutual_information(
        np.stack([ids, ys]),
        np.broadcast_to(u, (2, *u.shape)),
        num_bins=2 * m,
        value_range=(-float(m), float(m)),
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


def saturation(acts: np.ndarray, activation: str) -> dict[str, np.ndarray]:
    """Saturated activations of ``acts`` ``(..., n, d)``: ``saturated_fraction``, the fraction
    of the n·d values saturated (tanh: ``|a| > 0.99``; ReLU: ``a = 0``), and ``dead_units``, the
    fraction of the d units saturated on every one of the n images; each ``acts.shape[:-2]``.
    Empty for an activation without a rule."""
    acts = np.asarray(acts)
    if activation == "tanh":
        sat = np.abs(acts) > TANH_SATURATION
    elif activation == "relu":
        sat = acts <= 0.0
    else:
        return {}
    return {
        "saturated_fraction": sat.mean(axis=(-2, -1)).astype(np.float64),
        "dead_units": sat.all(axis=-2).mean(axis=-1).astype(np.float64),
    }


def plane_estimates(
    acts: np.ndarray,
    labels: np.ndarray,
    *,
    bin_width: float,
    kernel_width: float,
) -> dict[str, np.ndarray]:
    """I(X;T) and I(T;Y) in bits, binning and kernel, for activations ``acts`` ``(..., n, d)``,
    at scales relative to each layer's spread ``s`` (:func:`activation_spread`): bins of width
    ``bin_width · s`` anchored at 0, and kernel noise σ = ``kernel_width · s``.

    X is the example index (uniform over the n rows), ``labels`` ``(n,)`` the classes. Returns
    ``ixt_binning``, ``ity_binning``, ``ixt_kernel``, ``ity_kernel``, each of shape
    ``acts.shape[:-2]``, plus ``activation_sd`` (s) and ``max_activation``.
    """
    u = standardize(acts)
    ixt_b, ity_b = binned_estimates(u, labels, width=bin_width)
    ixt_k, ity_k = kernel_estimates(u, labels, noise_std=kernel_width)
    return {
        "ixt_binning": ixt_b,
        "ity_binning": ity_b,
        "ixt_kernel": ixt_k,
        "ity_kernel": ity_k,
        "activation_sd": activation_spread(acts),
        "max_activation": np.asarray(acts).max(axis=(-2, -1)).astype(np.float64),
    }


def sweep_estimates(acts: np.ndarray, labels: np.ndarray, activation: str, config: Config):
    """Every estimator setting of ``config`` on ``acts`` ``(..., n, d)`` standardised per layer:
    ``{"ixt/<setting>", "ity/<setting>"}`` arrays, the spread ``activation_sd``, the largest
    activation and (tanh, ReLU) the saturation of :func:`saturation`."""
    u = standardize(acts)
    out = {}
    for w in config.bin_widths:
        name = binning_name(w)
        out[f"ixt/{name}"], out[f"ity/{name}"] = binned_estimates(u, labels, width=w)
    for w in config.kernel_widths:
        name = kernel_name(w)
        out[f"ixt/{name}"], out[f"ity/{name}"] = kernel_estimates(u, labels, noise_std=w)
    out["activation_sd"] = activation_spread(acts)
    out["max_activation"] = np.asarray(acts).max(axis=(-2, -1)).astype(np.float64)
    out.update(saturation(acts, activation))
    return out


def end_slope(curves: np.ndarray, steps) -> np.ndarray:
    """Per row of ``curves`` ``(K, T)``: the least-squares slope against ``steps`` over the last
    ``END_FRACTION`` of training (the evaluations at steps ≥ (1 − END_FRACTION) · the last
    step; at least the last two), in units per 1000 steps."""
    steps = np.asarray(steps, np.float64)
    tail = steps >= (1.0 - END_FRACTION) * steps[-1]
    if tail.sum() < 2:
        tail[-2:] = True
    x = steps[tail] - steps[tail].mean()
    y = np.asarray(curves, np.float64)[:, tail]
    return 1000.0 * (y - y.mean(1, keepdims=True)) @ x / max(float(x @ x), 1e-300)


def layer_summary(ixt: np.ndarray, ity: np.ndarray, steps, ceiling: float) -> dict[str, Any]:
    """One layer's per-seed I(X;T) curves ``(K, T)``: start, peak (after step 0), end, the
    fitting rise, the compression drop and the end trend (:func:`end_slope`, bits per 1000
    steps) with intervals over seeds, and the verdict — which holds within the steps trained:
    a curve whose end trend is significantly up or down may still change."""
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
        "end_slope_bits_per_1000": stats.interval(end_slope(ixt, steps)),
        "initial_at_ceiling": bool(ixt[:, 0].mean() > near),
    }
    drop, slope = out["compression_bits"], out["end_slope_bits_per_1000"]
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
    if slope["n"] >= 2 and slope["low"] > 0:
        out["end_trend"] = "rising"
    elif slope["n"] >= 2 and slope["high"] < 0:
        out["end_trend"] = "falling"
    else:
        out["end_trend"] = "no significant trend"
    out["fitting_visible"] = bool(
        not out["initial_at_ceiling"] and out["rise_bits"]["low"] > COMPRESSION_THRESHOLD_BITS
    )
    return out


def _per_layer(values: np.ndarray, bounds=(None, None)) -> list[dict]:
    """Intervals over seeds, one per layer, of ``values`` ``(K, L)``."""
    return [stats.interval(values[:, i], bounds=bounds) for i in range(values.shape[1])]


def summarize(
    result: training.TrainResult,
    config: Config,
    activation: str,
    epochs_per_step: float,
    ceiling: float,
) -> dict[str, Any]:
    """Per estimator setting and layer: curves (mean over seeds), per-seed values, verdicts;
    per layer the activation spread and the saturation, at step 0 and at the end."""
    m = result.curves.metrics  # name -> (T, K, L) or (T, K)
    steps = np.asarray(result.curves.steps)
    out: dict[str, Any] = {
        "eval_steps": result.curves.steps,
        "eval_epochs": (steps * epochs_per_step).tolist(),
        "max_activation_seen": float(np.max(m["max_activation"])),
        "final_train_accuracy": stats.interval(m["train_accuracy"][-1], bounds=(0, 1)),
        "final_test_accuracy": stats.interval(m["test_accuracy"][-1], bounds=(0, 1)),
        "final_train_loss": stats.interval(result.loss_history[-1]),
        "layers": {},
        "settings": {},
    }
    for name in ("activation_sd", "saturated_fraction", "dead_units"):
        if name not in m:
            continue
        values = np.asarray(m[name], np.float64)  # (T, K, L)
        bounds = (0.0, None) if name == "activation_sd" else (0.0, 1.0)
        out["layers"][name] = {
            "curve": values.mean(1).T,  # (L, T), mean over seeds
            "initial": _per_layer(values[0], bounds),
            "final": _per_layer(values[-1], bounds),
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
