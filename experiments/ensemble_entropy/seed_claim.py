"""The seed's claim, tested per input: "the ensemble's predictive distribution typically has
higher entropy than any single model's".

For every evaluation set (the test set and every OOD set) and every input, with the ensemble
predictive the mixture ``p̄ = mean_j p_j`` of its ``K`` members:

* (i) ``H(p̄) > max_j H(p_j)``: the claim as stated, the real test;
* (ii) ``H(p̄) > mean_j H(p_j)``: a check, not a finding. Entropy is concave, so
  ``H(p̄) ≥ mean_j H(p_j)`` for every input (Jensen), with equality only where the members
  agree; the gap is the mutual information. ``jensen_violations`` counts inputs where the
  computed mixture entropy falls below the mean member entropy by more than float32 rounding
  (:data:`TOLERANCE`), and must be 0.

Each fraction is the mean of per-input 0/1 indicators over the ``R`` ensembles and the set's
inputs, with a 95% interval over both (:func:`experiments.core.stats.seeds_and_examples`, a
hierarchical bootstrap: ensembles, then inputs). Entropies are :func:`entjax.entropy` of the
member logits and :func:`entjax.ensemble_uncertainty` of each ensemble (one jitted call).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import entjax
from experiments.core import stats
from experiments.ensemble_entropy.config import Config
from experiments.ensemble_entropy.evalsets import Predictions

TOLERANCE = 1e-5  # nats: float32 rounding of entropies up to log C
UNIT = (0.0, 1.0)


@functools.partial(jax.jit, static_argnames="num_ensembles")
def _entropies(member_logits: jax.Array, num_ensembles: int) -> dict[str, jax.Array]:
    """Mixture, largest-member and mean-member entropy of every ensemble ``(R, n)``."""
    grouped = member_logits.reshape(num_ensembles, -1, *member_logits.shape[1:])  # (R, K, n, C)
    members = entjax.entropy(grouped)  # (R, K, n)
    u = jax.vmap(lambda g: entjax.ensemble_uncertainty(g, axis=0))(grouped)
    return {"ensemble": u.total, "max_member": members.max(axis=1), "mean_member": u.aleatoric}


def entropies(pred: Predictions) -> dict[str, np.ndarray]:
    """:func:`_entropies` of every ensemble on every example of every set, float64 ``(R, N)``."""
    out = _entropies(jnp.asarray(pred.logits, jnp.float32), pred.layout.ensembles)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def verdict(fraction: dict) -> str:
    """``typical`` where the whole interval of fraction (i) lies above one half, ``atypical``
    where it lies below, else ``undecided``."""
    if fraction["low"] > 0.5:
        return "typical"
    if fraction["high"] < 0.5:
        return "atypical"
    return "undecided"


def seed_claim_section(pred: Predictions, config: Config) -> dict[str, Any]:
    """``results["seed_claim"]``: per set, the fractions (i) and (ii) with their intervals over
    ensembles and inputs, the Jensen check and the mean entropies (intervals over ensembles)."""
    h = entropies(pred)
    names = ["test", *pred.sets.ood_names]
    out: dict[str, Any] = {"tolerance": TOLERANCE, "sets": {}}
    for i, name in enumerate(names):
        s = pred.sets.slices[name]
        ens, top, mean = h["ensemble"][:, s], h["max_member"][:, s], h["mean_member"][:, s]
        indicators = {
            "above_max_member": (ens > top).astype(np.float64),
            "above_mean_member": (ens > mean).astype(np.float64),
        }
        block: dict[str, Any] = {"num_examples": s.stop - s.start}
        for key, values in indicators.items():
            if config.bootstrap:
                block[key] = stats.seeds_and_examples(
                    values, seed=config.seed + i, num_resamples=config.bootstrap, bounds=UNIT
                )
            else:  # no example bootstrap: the interval over ensembles alone
                block[key] = stats.interval(values.mean(axis=1), bounds=UNIT)
            block[key]["per_ensemble"] = values.mean(axis=1)
        block["jensen_violations"] = int(np.sum(ens < mean - TOLERANCE))
        block["mean_entropy"] = {
            k: stats.interval(v.mean(axis=1), bounds=(0.0, None))
            for k, v in (("ensemble", ens), ("max_member", top), ("mean_member", mean))
        }
        block["verdict"] = verdict(block["above_max_member"])
        out["sets"][name] = block
    return out
