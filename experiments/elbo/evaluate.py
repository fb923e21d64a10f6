"""The analysis of ``elbo``: the bounds per member, log p(x), active units, per-arm intervals,
paired comparisons, the bound-order check, the convergence check of the log p(x) estimate, and
the images the figures draw.

Everything reported is computed here, once; :mod:`.report` and :mod:`.figures` only read it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from experiments.core import stats, sweeps, training
from experiments.core.distributed import to_host
from experiments.elbo.config import (
    ACTIVE_THRESHOLD,
    EVAL_CHUNK,
    FINAL_CHUNK,
    MAX_ENTROPY,
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


def make_log_weights(ensemble: training.Ensemble, num_samples: int, chunk: int, seed: int):
    """``(member params, x) -> {"log_weights": (n, num_samples), "elbo": (n,)}``: importance
    log-weights :math:`\\log w_s = \\log p(x \\mid z_s) + \\log p(z_s) - \\log q(z_s \\mid x)`,
    :math:`z_s \\sim q(z \\mid x)`, and the ELBO (reconstruction averaged over the same samples,
    analytic KL), drawn ``chunk`` samples at a time (a ``lax.map`` over ``num_samples // chunk``
    chunks: the memory of one chunk, one compiled program). For
    :meth:`~experiments.core.training.Members.predict`, which maps it over the members."""
    if num_samples % chunk:
        raise ValueError(f"chunk {chunk} must divide num_samples {num_samples}")
    key = jax.random.key(seed + 7919)

    def log_weights(params, x):
        model = ensemble.module(params)

        def draw(i):
            out = model(x, jax.random.fold_in(key, i), chunk)
            return out["log_weights"], out["log_lik"].mean(axis=0)  # (chunk, n), (n,)

        lw, rec = jax.lax.map(draw, jnp.arange(num_samples // chunk))
        mean, log_var = model.encode(x)
        kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)
        return {"log_weights": lw.reshape(num_samples, -1).T, "elbo": rec.mean(axis=0) - kl}

    return log_weights


def iwae_estimates(log_weights: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """``{k: (...)}`` from log-weights ``(..., N)``: IWAE-k
    :math:`\\log \\frac1k \\sum_{s \\in b} w_s` averaged over the ``N // k`` disjoint blocks
    ``b`` of k samples, an unbiased estimate of :math:`\\mathbb E[\\mathcal L_k]` (each k
    from the same N draws, so differences between k are paired). Float64."""
    lw = np.asarray(log_weights, np.float64)
    n = lw.shape[-1]
    out = {}
    for k in sorted(set(ks)):
        if n % k:
            raise ValueError(f"k = {k} must divide the {n} samples")
        blocks = lw.reshape(*lw.shape[:-1], n // k, k)
        out[k] = (special.logsumexp(blocks, axis=-1) - math.log(k)).mean(axis=-1)
    return out


def active_units(posterior_means: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> np.ndarray:
    """Burda et al.'s count per member: dimensions j with :math:`\\mathrm{Var}_x(\\mu_j(x)) >`
    ``threshold`` (sample variance, ``ddof=1``), for means ``(K, n, d)``; returns ``(K,)``."""
    return (np.var(posterior_means, axis=1, ddof=1) > threshold).sum(axis=-1)


@dataclasses.dataclass(frozen=True)
class Evaluators:
    """Compiled once and shared by every arm (all arms have the same graph and member count;
    ``predict`` is one :class:`~experiments.core.training.Members`' method, whose compilation
    cache every arm's parameters then share)."""

    bounds: Any  # IWAE-k and VAE-k for k in eval_ks: validation curves, test bounds at the end
    final: Any  # (params, x) -> final_k log-weights and the ELBO: the log p(x) estimates
    check: Any  # (params, x) -> max(check_ks) log-weights: the convergence check
    posterior_mean: Any  # (params, x) -> E_q[z] = mu(x), for the active units
    predict: Any  # Members.predict of the base members (a lax.map over members on CPU)

    @classmethod
    def build(cls, base: training.Members, config: Config) -> Evaluators:
        ensemble, top = base.ensemble, max(config.check_ks)
        return cls(
            make_evaluator(ensemble, config.eval_ks, config.seed, chunk=EVAL_CHUNK),
            make_log_weights(
                ensemble, config.final_k, math.gcd(config.final_k, FINAL_CHUNK), config.seed
            ),
            make_log_weights(ensemble, top, config.check_chunk, config.seed + 1),
            lambda params, x: ensemble.module(params).encode(x)[0],
            base.predict,
        )


def final_measures(
    params: Any,
    evaluators: Evaluators,
    config: Config,
    x_test: np.ndarray,
    x_train_subset: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per member ``(K,)``: log p(x) (IWAE-``final_k``) and the ELBO on the test split and the
    training subset, the test IWAE-k, the active units; and per member and test image
    ``(K, n)``: the test log p(x) and ELBO (for intervals over seeds and images)."""
    k = config.final_k

    def final(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = evaluators.predict(params, x, evaluators.final)  # all images, FINAL_CHUNK samples
        return iwae_estimates(out["log_weights"], (k,))[k], np.asarray(out["elbo"], np.float64)

    (test, test_elbo), (train, train_elbo) = final(x_test), final(x_train_subset)
    out = {
        "test_log_px": test.mean(1),
        "train_log_px": train.mean(1),
        "gap": train.mean(1) - test.mean(1),
        "test_elbo": test_elbo.mean(1),
        "train_elbo": train_elbo.mean(1),
    }
    now = evaluators.bounds(params, x_test)
    out.update({f"test_iwae_{e}": now[f"iwae_{e}"] for e in config.eval_ks})
    means = evaluators.predict(params, x_test, evaluators.posterior_mean)
    out["active_units"] = active_units(means)
    return out, {"test_log_px": test, "test_elbo": test_elbo}


def check_estimates(
    params: Any, evaluators: Evaluators, config: Config, x_check: np.ndarray
) -> dict[int, np.ndarray]:
    """The convergence check of one arm: ``{k: (K, n)}`` IWAE-k per member and check image for
    every k in ``check_ks``, all from the same ``max(check_ks)`` samples per image."""
    out = evaluators.predict(params, x_check, evaluators.check)
    return iwae_estimates(out["log_weights"], config.check_ks)  # (K, n, N) -> {k: (K, n)}


def pairs(config: Config) -> list[tuple[tuple[str, int], tuple[str, int]]]:
    """The compared arms: IWAE-k − VAE-k for each k > 1, then VAE-k − ELBO and IWAE-k − ELBO."""
    out = []
    for k in (k for k in config.train_ks if k > 1):
        out.append((("iwae", k), ("vae", k)))
        if 1 in config.train_ks:
            out += [(("vae", k), ("elbo", 1)), (("iwae", k), ("elbo", 1))]
    return out


def reference_k(config: Config) -> int:
    """The k whose distance to the largest check k sizes the claims: ``final_k`` where it is a
    smaller check k, else the largest check k below ``final_k`` (or the smallest)."""
    ks = sorted(set(config.check_ks))
    return max((k for k in ks[:-1] if k <= config.final_k), default=ks[0])


def convergence(checks: dict[tuple[str, int], dict[int, np.ndarray]], config: Config) -> dict:
    """The convergence check over arms: per arm and k the IWAE-k estimate on the check images,
    the remaining rise from the reference k (:func:`reference_k`) to the largest, and log p(x)
    compared at the largest k. Intervals over seeds and check images together
    (:func:`experiments.core.stats.seeds_and_examples`; per-example differences when paired).

    A comparison's ``claimed`` is True where its interval excludes 0 *and* its near end
    exceeds the upper end of the losing arm's rise (IWAE-top − IWAE-ref): that arm's estimate
    was still rising by about that much, so a smaller gain could be an unconverged estimate.
    """
    ks = sorted(set(config.check_ks))
    top, ref = ks[-1], reference_k(config)
    arms = config.arms()

    def hier(values: np.ndarray, bounds=(None, None)) -> dict:
        return stats.seeds_and_examples(values, seed=config.seed, bounds=bounds)

    rise = {a: hier(checks[a][top] - checks[a][ref]) for a in arms}
    per_arm = {
        arm_name(*a): {
            "estimates": {f"k{k}": hier(checks[a][k], bounds=(None, 0)) for k in ks},
            "rise": rise[a],
            "rise_from_first": hier(checks[a][top] - checks[a][ks[0]]),
        }
        for a in arms
    }
    rows = []
    for a, b in pairs(config):
        d = hier(checks[a][top] - checks[b][top])
        loser = b if d["mean"] > 0 else a
        near = d["low"] if d["mean"] > 0 else -d["high"]
        rows.append(
            {
                "a": arm_name(*a),
                "b": arm_name(*b),
                "difference": d,
                "loser_rise_high": rise[loser]["high"],
                "claimed": bool(d["significant"] and near > rise[loser]["high"]),
            }
        )
    return {
        "ks": ks,
        "top_k": top,
        "reference_k": ref,
        "num_images": int(next(iter(checks.values()))[top].shape[1]),
        "arms": per_arm,
        "comparisons": rows,
    }


def comparisons(
    values: dict[str, np.ndarray],
    grid: list[dict],
    config: Config,
    per_image: dict[tuple[str, int], dict[str, np.ndarray]] | None = None,
) -> list[dict]:
    """IWAE-k − VAE-k for each k > 1 and VAE-k / IWAE-k − ELBO, on every measure: the paired
    difference over seeds, except for the measures in ``per_image`` (``{arm: {measure: (K, n)}}``,
    the same test images for every arm), whose per-image differences get an interval over seeds
    and test images together (:func:`experiments.core.stats.seeds_and_examples`)."""
    out = []
    for a, b in pairs(config):
        names = (arm_name(*a), arm_name(*b))
        row = {"a": names[0], "b": names[1]}
        for m in MEASURES:
            if per_image is not None and m in per_image[a]:
                d = stats.seeds_and_examples(per_image[a][m] - per_image[b][m], seed=config.seed)
                d["verdict"] = stats.verdict(d, a=names[0], b=names[1], higher_is_better=True)
                row[m] = d
                continue
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
    """Per arm: intervals over seeds of every measure; comparisons; the bound-order check; the
    convergence check (``runs[arm]["check"]``, :func:`convergence`), which also sizes the
    comparisons of the test log p(x): ``exceeds_rise`` where the near end of the interval is
    beyond the losing arm's remaining rise."""
    arms = config.arms()
    check = convergence({a: runs[a]["check"] for a in arms}, config)
    rows = comparisons(values, grid, config, {a: runs[a]["per_image"] for a in arms})
    for row in rows:
        d = row["test_log_px"]
        loser = row["b"] if d["mean"] > 0 else row["a"]
        near = d["low"] if d["mean"] > 0 else -d["high"]
        d["exceeds_rise"] = bool(d["significant"] and near > check["arms"][loser]["rise"]["high"])

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
        "comparisons": rows,
        "convergence": check,
        "max_entropy": MAX_ENTROPY,
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
