"""Dataset-level metrics of host arrays of logits, computed with entjax in one jitted call each.

* :func:`calibration` — ECE and reliability bins of the examples selected by a ``where`` mask (so
  every evaluation set reuses one compiled program);
* :func:`member_summary` — accuracy, NLL, ECE and mean predictive entropy of each member.

OOD detection metrics are in :mod:`experiments.core.detection` (the package's
:func:`entjax.auroc` and friends), temperature scaling and scores in
:mod:`experiments.core.uncertainty`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import entjax

NUM_BINS = 15


@functools.partial(jax.jit, static_argnames=("num_bins",))
def _calibration(logits: jax.Array, labels: jax.Array, where: jax.Array, num_bins: int):
    ece = entjax.expected_calibration_error(logits, labels, num_bins=num_bins, where=where)
    bins = entjax.reliability_bins(logits, labels, num_bins=num_bins, where=where)
    return ece, bins


def calibration(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    where: np.ndarray | None = None,
    num_bins: int = NUM_BINS,
) -> tuple[float, dict[str, np.ndarray]]:
    """ECE and reliability bins (``counts``, ``accuracy``, ``confidence``, ``bin_edges``) of the
    examples selected by ``where`` (default all), equal-width bins over the max probability."""
    if where is None:
        where = np.ones(len(labels), bool)
    ece, bins = _calibration(
        jnp.asarray(logits, jnp.float32),
        jnp.asarray(labels, jnp.int32),
        jnp.asarray(where, bool),
        num_bins,
    )
    return float(ece), {name: np.asarray(getattr(bins, name)) for name in bins._fields}


@functools.partial(jax.jit, static_argnames=("num_bins",))
def _member_summary(logits: jax.Array, labels: jax.Array, num_bins: int) -> dict[str, jax.Array]:
    def one(lg: jax.Array) -> dict[str, jax.Array]:
        return {
            "accuracy": jnp.mean(jnp.argmax(lg, axis=-1) == labels),
            "nll": jnp.mean(entjax.negative_log_likelihood(lg, labels)),
            "ece": entjax.expected_calibration_error(lg, labels, num_bins=num_bins),
            "mean_entropy": jnp.mean(entjax.entropy(lg)),
        }

    return jax.vmap(one)(logits)


def member_summary(
    member_logits: np.ndarray, labels: np.ndarray, *, num_bins: int = NUM_BINS
) -> dict[str, np.ndarray]:
    """Accuracy, mean NLL, ECE and mean predictive entropy (nats) of each member, ``(K,)`` each,
    for ``member_logits`` ``(K, n, C)`` and integer ``labels`` ``(n,)``; one compiled call."""
    out = _member_summary(
        jnp.asarray(member_logits, jnp.float32), jnp.asarray(labels, jnp.int32), num_bins
    )
    return {k: np.asarray(v, np.float64) for k, v in out.items()}
