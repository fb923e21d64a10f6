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

import jax
import jax.numpy as jnp
import numpy as np

import entjax

NUM_BINS = 15


@functools.partial(jax.jit, static_argnames=("sizes",))
def _per_example(
    member_logits: jax.Array, labels: jax.Array, sizes: tuple[int, ...]
) -> dict[str, jax.Array]:
    member_labels = jnp.broadcast_to(labels, member_logits.shape[:-1])
    out: dict[str, jax.Array] = {
        "member_entropy": entjax.entropy(member_logits),
        "member_nll": entjax.negative_log_likelihood(member_logits, member_labels),
        "member_brier": entjax.brier_score(member_logits, member_labels),
        "member_correct": jnp.argmax(member_logits, axis=-1) == labels,
    }
    # Only the ensemble reductions are unrolled over k; per-example functions of the ensemble
    # predictive run once, vmapped over the stacked sizes (keeps the compiled program small).
    lps, parts = [], []
    for k in sizes:
        u = entjax.ensemble_uncertainty(member_logits[:k], axis=0)
        lps.append(entjax.ensemble_log_probs(member_logits[:k], axis=0))
        parts.append(jnp.stack([u.total, u.aleatoric, u.epistemic]))
    lp = jnp.stack(lps)  # (S, n, C)
    size_labels = jnp.broadcast_to(labels, lp.shape[:-1])
    nll = entjax.negative_log_likelihood(lp, size_labels)
    brier = entjax.brier_score(lp, size_labels)
    correct = jnp.argmax(lp, axis=-1) == labels
    for i, k in enumerate(sizes):
        out[f"k{k}_log_probs"] = lp[i]
        out[f"k{k}_total"], out[f"k{k}_aleatoric"], out[f"k{k}_epistemic"] = parts[i]
        out[f"k{k}_nll"] = nll[i]
        out[f"k{k}_brier"] = brier[i]
        out[f"k{k}_correct"] = correct[i]
    if sizes[-1] > 1:
        k = sizes[-1]
        out[f"k{k}_pairwise_kl"] = entjax.pairwise_kl(member_logits[:k], axis=0)
    return out


def per_example(
    member_logits: np.ndarray, labels: np.ndarray, *, sizes: tuple[int, ...] | None = None
) -> dict[str, np.ndarray]:
    """Per-example quantities for ``(K, n, C)`` member logits and ``(n,)`` labels, in one jit.

    Per member ``(K, n)``: ``member_entropy``, ``member_nll``, ``member_brier``,
    ``member_correct``. For each ensemble of the first ``k`` members, ``k`` in ``sizes``
    (default ``1..K``), ``(n,)`` arrays ``k{k}_total`` (entropy of the mean predictive),
    ``k{k}_aleatoric`` (mean member entropy), ``k{k}_epistemic`` (mutual information),
    ``k{k}_nll``, ``k{k}_brier``, ``k{k}_correct``, and ``k{k}_log_probs`` ``(n, C)``; for the
    largest k > 1 also ``k{k}_pairwise_kl``. Nats. Labels of unlabelled examples may be any valid
    class index (their label-based values are meaningless and should be sliced away).
    """
    K = member_logits.shape[0]
    sizes = tuple(range(1, K + 1)) if sizes is None else tuple(sizes)
    out = _per_example(
        jnp.asarray(member_logits, jnp.float32), jnp.asarray(labels, jnp.int32), sizes
    )
    return {k: np.asarray(v) for k, v in out.items()}


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
