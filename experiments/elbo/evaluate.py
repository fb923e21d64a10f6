"""The analysis of ``elbo``: the bounds per member, log p(x), active units, per-arm intervals,
paired comparisons, the bound-order check, and the images the figures draw.

Everything reported is computed here, once; :mod:`.report` and :mod:`.figures` only read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.core import sweeps, training
from experiments.core.distributed import to_host
from experiments.elbo.config import (
    ACTIVE_THRESHOLD,
    EVAL_CHUNK,
    FINAL_CHUNK,
    MEASURES,
    Config,
    arm_name,
)
from experiments.elbo.models import bounds


def make_evaluator(ensemble: training.Ensemble, ks: Sequence[int], seed: int, chunk: int = 512):
    """``(params, x) -> {"elbo_k", "iwae_k" for k in ks}``: mean bounds (nats per image) per
    member, each k from its own fresh samples, in equal-sized chunks (one compilation)."""
    ks = tuple(sorted(set(ks)))

    def one(params, x, key):
        model = ensemble.module(params)
        out = {}
        for i, k in enumerate(ks):
            b = bounds(model(x, jax.random.fold_in(key, i), k))
            out[f"elbo_{k}"], out[f"iwae_{k}"] = b["elbo"], b["iwae"]
        return out

    @jax.jit
    def chunk_bounds(params, x, start):
        key = jax.random.fold_in(jax.random.key(seed + 104729), start)
        return jax.vmap(one, in_axes=(0, None, None))(params, x, key)

    def evaluate(params, x: np.ndarray) -> dict[str, np.ndarray]:
        n = len(x)
        size = min(chunk, n)
        pad = -n % size
        xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        sums: dict[str, np.ndarray] = {}
        for start in range(0, len(xp), size):
            out = chunk_bounds(params, jnp.asarray(xp[start : start + size]), start)
            valid = min(size, n - start)
            for name, v in out.items():
                v = np.asarray(to_host(v), np.float64)[:, :valid]
                sums[name] = sums.get(name, 0.0) + v.sum(-1)
        return {name: s_ / n for name, s_ in sums.items()}

    return evaluate


def active_units(posterior_means: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> np.ndarray:
    """Burda et al.'s count per member: dimensions j with :math:`\\mathrm{Var}_x(\\mu_j(x)) >`
    ``threshold`` (sample variance, ``ddof=1``), for means ``(K, n, d)``; returns ``(K,)``."""
    return (np.var(posterior_means, axis=1, ddof=1) > threshold).sum(axis=-1)


@dataclasses.dataclass(frozen=True)
class Evaluators:
    """Compiled once and shared by every arm (all arms have the same graph and member count)."""

    bounds: Any  # IWAE-k and VAE-k for k in eval_ks: validation curves, test bounds at the end
    final: Any  # from final_k samples: the log p(x) estimate and the ELBO
    posterior_mean: Any  # (params, x) -> E_q[z] = mu(x), for the active units

    @classmethod
    def build(cls, ensemble: training.Ensemble, config: Config) -> Evaluators:
        return cls(
            make_evaluator(ensemble, config.eval_ks, config.seed, chunk=EVAL_CHUNK),
            make_evaluator(ensemble, (config.final_k,), config.seed + 1, chunk=FINAL_CHUNK),
            lambda params, x: ensemble.module(params).encode(x)[0],
        )


def final_measures(
    members: training.Members,
    params: Any,
    evaluators: Evaluators,
    config: Config,
    x_test: np.ndarray,
    x_train_subset: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per member ``(K,)``: log p(x) and the ELBO on the test split and the training subset,
    the test IWAE-k, the active units."""
    test, train = evaluators.final(params, x_test), evaluators.final(params, x_train_subset)
    k = config.final_k
    out = {
        "test_log_px": test[f"iwae_{k}"],
        "train_log_px": train[f"iwae_{k}"],
        "gap": train[f"iwae_{k}"] - test[f"iwae_{k}"],
        "test_elbo": test[f"elbo_{k}"],
        "train_elbo": train[f"elbo_{k}"],
    }
    now = evaluators.bounds(params, x_test)
    out.update({f"test_iwae_{e}": now[f"iwae_{e}"] for e in config.eval_ks})
    means = members.predict(params, x_test, evaluators.posterior_mean)
    out["active_units"] = active_units(means)
    return out


def comparisons(values: dict[str, np.ndarray], grid: list[dict], config: Config) -> list[dict]:
    """IWAE-k − VAE-k for each k > 1 and VAE-k / IWAE-k − ELBO, on every measure."""
    pairs = []
    for k in (k for k in config.train_ks if k > 1):
        pairs.append((("iwae", k), ("vae", k)))
        if 1 in config.train_ks:
            pairs += [(("vae", k), ("elbo", 1)), (("iwae", k), ("elbo", 1))]
    out = []
    for a, b in pairs:
        names = (arm_name(*a), arm_name(*b))
        row = {"a": names[0], "b": names[1]}
        for m in MEASURES:
            row[m] = sweeps.compare(
                values[m],
                grid,
                {"objective": a[0], "k": a[1]},
                {"objective": b[0], "k": b[1]},
                names=names,
                higher_is_better=m != "gap",
            )
        out.append(row)
    return out


def summarize(
    values: dict[str, np.ndarray], grid: list[dict], config: Config, runs: dict
) -> dict[str, Any]:
    """Per arm: intervals over seeds of every measure; comparisons; the bound-order check."""
    arms = config.arms()

    def per_arm(m: str) -> dict[str, list]:
        # log-probabilities of binary images are <= 0; at most latent_dim units are active.
        bounds = {"active_units": (0, config.latent_dim), "gap": (None, None)}.get(m, (None, 0))
        cols = [sweeps.interval(values[m], grid, bounds=bounds, objective=o, k=k) for o, k in arms]
        return {key: [c[key] for c in cols] for key in sweeps.FIELDS}

    eval_ks = sorted(set(config.eval_ks))
    # ELBO <= IWAE-k (k > 1) <= IWAE-final_k, member by member; IWAE-1 is the one-sample ELBO.
    ordered = np.stack(
        [
            values["test_elbo"],
            *(values[f"test_iwae_{e}"] for e in eval_ks if 1 < e < config.final_k),
            values["test_log_px"],
        ]
    )
    return {
        "arms": [arm_name(*a) for a in arms],
        "arm_ks": [k for _, k in arms],
        "train_ks": list(config.train_ks),
        "eval_ks": eval_ks,
        "final_k": config.final_k,
        "active_threshold": ACTIVE_THRESHOLD,
        "measures": {m: per_arm(m) for m in values},
        "test_log_likelihood": per_arm("test_log_px"),
        "test_elbo": per_arm("test_elbo"),
        "test_bounds": {f"k{e}": per_arm(f"test_iwae_{e}") for e in eval_ks},
        "comparisons": comparisons(values, grid, config),
        "bound_order_holds": bool(np.all(np.diff(ordered, axis=0) >= -0.05)),
        "eval_steps": runs[arms[0]]["curves"].steps,
        "val_curves": {
            arm_name(*a): {
                n: runs[a]["curves"].metrics[n].mean(1)
                for n in runs[a]["curves"].metrics
                if n.startswith(("elbo_", "iwae_"))
            }
            for a in arms
        },
        "members": [
            {**m, **{k_: float(v[i]) for k_, v in values.items()}} for i, m in enumerate(grid)
        ],
    }


def sample_images(
    members: training.Members, params: Any, x_test: np.ndarray, config: Config
) -> dict[str, np.ndarray]:
    """Decoded prior samples and test reconstructions of seed 0 of an arm, for the figures."""
    model = members.ensemble.module(members.member_params(params, 0))
    z = jax.random.normal(jax.random.key(config.seed + 3), (32, config.latent_dim))
    samples = np.asarray(jax.nn.sigmoid(model.decode(z))).reshape(-1, 8, 8)
    mean, _ = model.encode(jnp.asarray(x_test[:16]))
    recon = np.asarray(jax.nn.sigmoid(model.decode(mean))).reshape(-1, 8, 8)
    return {"samples": samples, "originals": x_test[:16, ..., 0], "reconstructions": recon}
