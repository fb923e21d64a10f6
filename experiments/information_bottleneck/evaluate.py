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


def mixture_mutual_information(
    key: jax.Array, mean: jax.Array, log_var: jax.Array, num_samples: int
) -> tuple[jax.Array, jax.Array]:
    r"""Direct Monte Carlo estimate of :math:`I(X;Z)` in nats, and its standard error.

    X is uniform over the :math:`N` rows and :math:`q(z \mid x_i) = \mathcal N(\mu_i,
    \mathrm{diag}\, e^{v_i})` (``mean``, ``log_var`` of shape ``(N, d)``), so Z is a mixture of
    :math:`N` Gaussians and

    .. math::
        I(X;Z) = \frac1N \sum_i \mathbb E_{z \sim q(z \mid x_i)}
          \Big[\log q(z \mid x_i) - \log \frac1N \sum_j q(z \mid x_j)\Big],

    estimated with ``num_samples`` draws of z per image (a ``lax.map`` over draws: ``(N, N, d)``
    memory). Every term is at most :math:`\log N` (the own component is in the mixture), so the
    estimate is too. The standard error is the Monte Carlo error alone (the N images are the
    whole population of X; the draws of different images are independent): NaN for one draw.
    """
    n = mean.shape[0]
    std = jnp.exp(0.5 * log_var)
    eps = jax.random.normal(key, (num_samples, *mean.shape), mean.dtype)
    eye = jnp.eye(n, dtype=bool)

    def one_draw(e):
        z = mean + std * e  # (N, d): one z per image
        diff = (z[:, None, :] - mean[None]) / std[None]  # (N_i, N_j, d)
        log_q = -0.5 * jnp.sum(diff**2 + log_var[None], axis=-1)  # the 2π constant cancels
        own = -0.5 * jnp.sum(e**2 + log_var, axis=-1)  # log q(z_i | x_i), exact in ε
        log_q = jnp.where(eye, own[:, None], log_q)
        return own - (jax.nn.logsumexp(log_q, axis=-1) - math.log(n))

    terms = jax.lax.map(one_draw, eps)  # (S, N)
    if num_samples < 2:
        return jnp.mean(terms), jnp.full((), jnp.nan, mean.dtype)
    # Only the draws are random (the N images are the population): the terms of different
    # images are independent, so Var = Σ_i Var_i / (S N²).
    se = jnp.sqrt(jnp.sum(jnp.var(terms, axis=0, ddof=1)) / num_samples) / n
    return jnp.mean(terms), se


def deterministic_mutual_information(mean: jax.Array) -> jax.Array:
    r"""Exact :math:`I(X;Z) = H(\mu(X))` in nats for a deterministic encoder ``z = mean``,
    X uniform over the rows: :math:`\frac1N \sum_i \log(N / c_i)`, :math:`c_i` the number of
    rows equal to row i (:math:`\log N` when the codes are distinct)."""
    n = mean.shape[0]
    counts = jnp.sum(jnp.all(mean[:, None, :] == mean[None], axis=-1), axis=-1)
    return jnp.mean(jnp.log(n / counts.astype(mean.dtype)))


def make_evaluator(
    ensemble: training.Ensemble,
    label_marginal: np.ndarray,
    num_samples: int,
    seed: int,
    mi_samples: int = 4,
):
    """Jitted ``(params, noise, x, y) -> {izx_bits, izx_mc_bits, izx_mc_se_bits, izy_bits,
    ce_bits, accuracy, nll, ece}``, each ``(K,)``; the predictive distribution is the mean of
    the per-sample softmaxes. ``izx_bits`` is the KL bound (the rate); ``izx_mc_bits`` the
    direct estimate of I(X;Z) with X uniform over the rows of ``x``
    (:func:`mixture_mutual_information` with ``mi_samples`` draws per image for a noisy member,
    :func:`deterministic_mutual_information` for ``noise = 0``), with its Monte Carlo standard
    error ``izx_mc_se_bits``; members run one after another (``lax.map``) to bound memory."""
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
        metrics = {
            "izx_bits": jnp.mean(b.izx_upper),
            "izy_bits": jnp.mean(b.izy_lower),
            "ce_bits": jnp.mean(b.ce) / LOG2,
            "accuracy": jnp.mean(jnp.argmax(log_pred, -1) == y),
            "nll": jnp.mean(entjax.negative_log_likelihood(log_pred, y)),
            "ece": entjax.expected_calibration_error(log_pred, y, num_bins=NUM_BINS),
        }
        return metrics, out["mean"], out["log_var"]

    def direct(args, key):
        mean, log_var, noise = args

        def noisy():
            # z = μ + noise · σ ε: the variance is noise² σ² (noise = 1 for every VIB member).
            lv = log_var + 2.0 * jnp.log(jnp.maximum(noise, 1e-30))
            return mixture_mutual_information(key, mean, lv, mi_samples)

        def exact():
            return deterministic_mutual_information(mean), jnp.zeros((), mean.dtype)

        return jax.lax.cond(noise > 0, noisy, exact)

    @jax.jit
    def evaluate_all(params, noise, x, y, key):
        metrics, mean, log_var = jax.vmap(one, in_axes=(0, 0, None, None, None))(
            params, noise, x, y, key
        )
        mi_key = jax.random.fold_in(key, 1)  # the same draws for every member
        mi, se = jax.lax.map(lambda a: direct(a, mi_key), (mean, log_var, noise))
        return {**metrics, "izx_mc_bits": mi / LOG2, "izx_mc_se_bits": se / LOG2}

    key = jax.random.key(seed + 7919)

    def evaluate(params, noise, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        out = evaluate_all(params, jnp.asarray(noise), jnp.asarray(x), jnp.asarray(y), key)
        return {k: np.asarray(to_host(v), np.float64) for k, v in out.items()}

    return evaluate


def summarize(final, grid, config: Config, marginal: np.ndarray, sizes: dict) -> dict[str, Any]:
    """Choices on validation; the method table and the β sweep on test (and train): the KL
    bound and the direct estimate of I(X;Z) side by side, and which bounds are vacuous."""
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
    ceiling = math.log2(sizes["test"])
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
        # Per β, the fraction of seeds whose KL bound is at or above log2 N (test): there the
        # bound says nothing about I(X;Z), which lies in [0, log2 N] whatever the encoder.
        "kl_above_ceiling_test": [
            float(
                np.mean(
                    final["test"]["izx_bits"][sweeps.where(grid, method="vib", value=b)] >= ceiling
                )
            )
            for b in config.betas
        ],
        "mc_se_max_bits": {
            split: float(np.max(final[split]["izx_mc_se_bits"])) for split in ("train", "test")
        },
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
            for m in ("izx_bits", "izx_mc_bits", "izy_bits", "accuracy")
        },
    }
