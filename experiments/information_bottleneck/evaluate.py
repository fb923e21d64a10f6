"""The analysis of ``information_bottleneck``: the bounds in bits, choices on validation, the
method table and the β sweep on test (and train), paired comparisons, curves.

Everything reported is computed here, once; :mod:`.report` and :mod:`.figures` only read it.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import entjax
from experiments.core import sweeps, training
from experiments.core.distributed import to_host
from experiments.information_bottleneck.config import (
    BOUNDS,
    LOG2,
    METHOD_LABELS,
    METHODS,
    NAMES,
    NUM_BINS,
    Config,
)


def make_evaluator(
    ensemble: training.Ensemble, label_marginal: np.ndarray, num_samples: int, seed: int
):
    """Jitted ``(params, noise, x, y) -> {izx_bits, izy_bits, ce_bits, accuracy, nll, ece}``,
    each ``(K,)``; the predictive distribution is the mean of the per-sample softmaxes."""
    marginal = jnp.asarray(label_marginal, jnp.float32)

    def one(params, noise, x, y, key):
        out = ensemble.module(params)(x, key, num_samples, noise)  # logits (S, n, C)
        b = entjax.vib_loss(
            out["logits"],
            y,
            out["mean"],
            out["log_var"],
            beta=0.0,
            label_marginal=marginal,
            sample_axis=0,
            base=2,
        )
        log_pred = jax.nn.logsumexp(jax.nn.log_softmax(out["logits"]), axis=0) - math.log(
            num_samples
        )
        return {
            "izx_bits": jnp.mean(b.izx_upper),
            "izy_bits": jnp.mean(b.izy_lower),
            "ce_bits": jnp.mean(b.ce) / LOG2,
            "accuracy": jnp.mean(jnp.argmax(log_pred, -1) == y),
            "nll": jnp.mean(entjax.negative_log_likelihood(log_pred, y)),
            "ece": entjax.expected_calibration_error(log_pred, y, num_bins=NUM_BINS),
        }

    vone = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None, None)))
    key = jax.random.key(seed + 7919)

    def evaluate(params, noise, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        out = vone(params, jnp.asarray(noise), jnp.asarray(x), jnp.asarray(y), key)
        return {k: np.asarray(to_host(v), np.float64) for k, v in out.items()}

    return evaluate


def summarize(final, grid, config: Config, marginal: np.ndarray, sizes: dict) -> dict[str, Any]:
    """Choices on validation; the method table and the β sweep on test (and train)."""
    beta, beta_val = sweeps.choose(
        final["val"]["nll"], grid, "value", config.betas, higher_is_better=False, method="vib"
    )
    lam, lam_val = sweeps.choose(
        final["val"]["nll"], grid, "value", config.cp_lambdas, higher_is_better=False, method="cp"
    )
    chosen = {"det": 0.0, "cp": lam, "vib": beta}

    def sweep(split: str) -> dict[str, dict]:
        return {
            m: sweeps.intervals(
                final[split][m],
                grid,
                "value",
                config.betas,
                bounds=BOUNDS.get(m, (None, None)),
                method="vib",
            )
            for m in NAMES
        }

    methods = {
        method: {
            m: sweeps.interval(
                final["test"][m],
                grid,
                bounds=BOUNDS.get(m, (None, None)),
                method=method,
                value=chosen[method],
            )
            for m in NAMES
        }
        for method in METHODS
    }
    return {
        "betas": list(config.betas),
        "cp_lambdas": list(config.cp_lambdas),
        "h_y_bits": float(-(marginal * np.log2(marginal)).sum()),
        "log2_n": {split: math.log2(n) for split, n in sizes.items()},
        "chosen": chosen,
        "val_nll": {"vib": beta_val, "cp": lam_val},
        "test": sweep("test"),
        "train": sweep("train"),
        "methods": methods,
        "comparisons": comparisons(final["test"], grid, chosen),
        "members": [
            {**m, **{f"test_{n_}": float(final["test"][n_][i]) for n_ in NAMES}}
            for i, m in enumerate(grid)
        ],
    }


def comparisons(test: dict, grid: list[dict], chosen: dict) -> list[dict[str, Any]]:
    """Paired differences by seed between the chosen VIB and the two baselines, and between the
    baselines."""
    out = []
    for a, b in (("vib", "det"), ("vib", "cp"), ("cp", "det")):
        row = {"a": a, "b": b}
        for m in ("accuracy", "nll", "ece"):
            row[m] = sweeps.compare(
                test[m],
                grid,
                {"method": a, "value": chosen[a]},
                {"method": b, "value": chosen[b]},
                names=(METHOD_LABELS[a], METHOD_LABELS[b]),
                higher_is_better=m == "accuracy",
            )
        out.append(row)
    return out


def curves(c: training.Curves, grid: list[dict], config: Config) -> dict[str, Any]:
    """Validation curves per β (mean over seeds)."""
    idx = [sweeps.where(grid, method="vib", value=b) for b in config.betas]
    return {
        "eval_steps": c.steps,
        "curves": {
            m: [c.metrics[m][:, i].mean(1) for i in idx]
            for m in ("izx_bits", "izy_bits", "accuracy")
        },
    }
