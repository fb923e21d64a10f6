"""Evaluation metrics on host arrays of logits, computed with entjax (jitted) and sklearn.

Per-example quantities come from entjax (NLL, Brier, entropy, the ensemble decomposition), the
reductions over a dataset happen here, AUROC comes from ``sklearn.metrics.roc_auc_score``.

To keep compilation to a handful of programs, evaluate every set at once: concatenate all
evaluation sets along the example axis, call :func:`per_example` once, then slice per set on the
host; dataset-level calibration (ECE, reliability bins) takes a ``where`` mask that selects one
set, so every call has the same shapes and reuses one compiled program.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import entjax

NUM_BINS = 15


class MemberScores(NamedTuple):
    """Per-example scores of every member, each ``(K, n)``; nats."""

    entropy: np.ndarray
    nll: np.ndarray
    brier: np.ndarray
    correct: np.ndarray


class EnsembleScores(NamedTuple):
    """Per-example scores of one ensemble's mean predictive distribution, each ``(n,)``."""

    log_probs: np.ndarray  # (n, C)
    total: np.ndarray  # entropy of the mean prediction
    aleatoric: np.ndarray  # mean member entropy
    epistemic: np.ndarray  # mutual information = total - aleatoric
    nll: np.ndarray
    brier: np.ndarray
    correct: np.ndarray


class PerExample(NamedTuple):
    """:func:`per_example`'s result: members, ensembles by size, and the full ensemble's
    mean pairwise KL (``None`` for a single member)."""

    members: MemberScores
    ensembles: dict[int, EnsembleScores]
    pairwise_kl: np.ndarray | None


@functools.partial(jax.jit, static_argnames=("sizes",))
def _per_example(member_logits: jax.Array, labels: jax.Array, sizes: tuple[int, ...]):
    member_labels = jnp.broadcast_to(labels, member_logits.shape[:-1])
    members = MemberScores(
        entropy=entjax.entropy(member_logits),
        nll=entjax.negative_log_likelihood(member_logits, member_labels),
        brier=entjax.brier_score(member_logits, member_labels),
        correct=jnp.argmax(member_logits, axis=-1) == labels,
    )
    # Only the ensemble reductions are unrolled over k; per-example functions of the ensemble
    # predictive run once, on the stacked sizes (keeps the compiled program small).
    parts = [entjax.ensemble_uncertainty(member_logits[:k], axis=0) for k in sizes]
    lp = jnp.stack([entjax.ensemble_log_probs(member_logits[:k], axis=0) for k in sizes])
    size_labels = jnp.broadcast_to(labels, lp.shape[:-1])
    nll = entjax.negative_log_likelihood(lp, size_labels)
    brier = entjax.brier_score(lp, size_labels)
    correct = jnp.argmax(lp, axis=-1) == labels
    ensembles = {
        k: EnsembleScores(lp[i], *parts[i], nll[i], brier[i], correct[i])
        for i, k in enumerate(sizes)
    }
    k = sizes[-1]
    pairwise = entjax.pairwise_kl(member_logits[:k], axis=0) if k > 1 else None
    return members, ensembles, pairwise


def per_example(
    member_logits: np.ndarray, labels: np.ndarray, *, sizes: Sequence[int] | None = None
) -> PerExample:
    """Per-example scores for ``(K, n, C)`` member logits and ``(n,)`` labels, in one jit.

    Every member's entropy, NLL, Brier score and correctness; for each ensemble of the first
    ``k`` members, ``k`` in ``sizes`` (default ``1..K``), the entropy decomposition, NLL, Brier,
    correctness and log-probabilities of its mean prediction; and for the largest ``k > 1`` the
    mean pairwise KL between members. Labels of unlabelled examples may be any valid class
    index (their label-based values are meaningless and must be sliced away).
    """
    sizes = tuple(range(1, len(member_logits) + 1)) if sizes is None else tuple(sizes)
    out = _per_example(
        jnp.asarray(member_logits, jnp.float32), jnp.asarray(labels, jnp.int32), sizes
    )
    members, ensembles, pairwise = jax.tree.map(np.asarray, out)
    return PerExample(
        MemberScores(*members),
        {k: EnsembleScores(*v) for k, v in ensembles.items()},
        pairwise,
    )


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


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve for telling OOD (positive) from in-distribution by a score where
    larger means "more likely OOD" (entropy, mutual information). 0.5 = chance; ties count half."""
    from sklearn.metrics import roc_auc_score

    scores = np.concatenate([np.asarray(in_scores), np.asarray(out_scores)]).astype(np.float64)
    labels = np.concatenate([np.zeros(len(in_scores)), np.ones(len(out_scores))])
    return float(roc_auc_score(labels, scores))


def mean_std(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{"mean", "std"}`` over members (population std, 0 for a single member)."""
    arr = np.asarray(values, np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std())}


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


def group_mean_std(
    values: np.ndarray, group_of: Sequence[Any], groups: Sequence[Any]
) -> dict[str, list[float]]:
    """``{"mean": [...], "std": [...]}`` of ``values`` ``(K, ...)`` over the members whose
    ``group_of[m]`` equals each of ``groups`` in turn (population std)."""
    values, group_of = np.asarray(values), np.asarray(group_of)
    picked = [values[group_of == g] for g in groups]
    return {
        "mean": [float(v.mean()) for v in picked],
        "std": [float(v.std()) for v in picked],
    }
