"""Out-of-distribution detection: scores' AUROC, AUPR and FPR at 95% TPR, fast enough to bootstrap.

Conventions (Hendrycks & Gimpel 2017): the OOD set is the positive class and a score is larger
for "more likely OOD" (entropy, 1 − max-softmax, negative max-logit, a feature distance).

The metrics themselves are the package's (:func:`entjax.auroc`, :func:`entjax.aupr`,
:func:`entjax.fpr_at_tpr`, equal to scikit-learn's), jitted once over replicate rows:

* :func:`per_replicate` — AUROC, AUPR and FPR@95 of each replicate row;
* :func:`replicate_intervals` — their means with intervals over replicates, with an optional
  stratified bootstrap over examples (the uncertainty a finite test set adds);
* :func:`paired_difference` — the paired difference of two scores' metric;
* :func:`knn_distance` — the k-th nearest-neighbour distance of L2-normalised features to a
  reference (training) set (Sun et al. 2022), a non-entropy OOD score.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import entjax
from experiments.core import stats

METRICS = ("auroc", "aupr", "fpr95")


@jax.jit
def _metrics(in_scores: jax.Array, out_scores: jax.Array) -> dict[str, jax.Array]:
    return {
        "auroc": entjax.auroc(in_scores, out_scores),
        "aupr": entjax.aupr(in_scores, out_scores),
        "fpr95": entjax.fpr_at_tpr(in_scores, out_scores, tpr=0.95),
    }


_auroc = jax.jit(entjax.auroc)  # the AUROC alone (ensemble-size curves), not all three metrics


def _as_scores(x: np.ndarray) -> jax.Array:
    """Host scores as a JAX array: float32 in the experiments (float64 where x64 is enabled)."""
    return jnp.asarray(np.asarray(x, np.float64))


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> np.ndarray:
    """:func:`entjax.auroc` over the last axis of host arrays (jitted), as float64."""
    return np.asarray(_auroc(_as_scores(in_scores), _as_scores(out_scores)), np.float64)


def per_replicate(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, np.ndarray]:
    """AUROC, AUPR and FPR@95 of each replicate's score: inputs ``(R, n_in)``, ``(R, n_out)``."""
    s_in, s_out = np.atleast_2d(in_scores), np.atleast_2d(out_scores)
    out = _metrics(_as_scores(s_in), _as_scores(s_out))
    return {name: np.asarray(out[name], np.float64) for name in METRICS}


def replicate_intervals(
    in_scores: np.ndarray, out_scores: np.ndarray, *, bootstrap: int = 0, seed: int = 0
) -> dict[str, dict]:
    """Each metric's mean over the ``R`` replicates (rows) with its 95% interval over them.

    With ``bootstrap`` resamples, the examples are also resampled (within the in and the out
    set, the same resample for every replicate) and the percentile interval of the replicate
    mean is computed; the reported ``low``/``high`` are those of the wider of the two intervals
    (``interval_from`` says which), the other is kept beside them.
    """
    s_in, s_out = np.atleast_2d(in_scores), np.atleast_2d(out_scores)
    values = per_replicate(s_in, s_out)
    out = {name: stats.interval(v, bounds=(0.0, 1.0)) for name, v in values.items()}
    if not bootstrap:
        return out
    strata = np.r_[np.zeros(s_in.shape[1], int), np.ones(s_out.shape[1], int)]
    both = np.concatenate([s_in, s_out], axis=1)

    def mean_metrics(idx: np.ndarray) -> dict[str, float]:
        a, b = both[:, idx[strata[idx] == 0]], both[:, idx[strata[idx] == 1]]
        return {k: float(np.mean(v)) for k, v in per_replicate(a, b).items()}

    boots = stats.bootstrap_many(
        mean_metrics, both.shape[1], seed=seed, num_resamples=bootstrap, strata=strata
    )
    for name, boot in boots.items():
        seeds = dict(out[name])
        wider = stats.wider(seeds, {**boot, "mean": seeds["mean"]})
        out[name] = {
            **seeds,
            "low": wider["low"],
            "high": wider["high"],
            "interval_from": "seeds" if wider is seeds else "bootstrap",
            "seeds_interval": [seeds["low"], seeds["high"]],
            "bootstrap_interval": [boot["low"], boot["high"]],
        }
    return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_distance(
    reference: np.ndarray, queries: np.ndarray, *, k: int, normalize: bool = True
) -> np.ndarray:
    """Distance from each query to its ``k``-th nearest reference point (Sun et al. 2022:
    larger = more likely OOD); rows L2-normalised first unless ``normalize=False``.

    numpy: a BLAS matmul for the squared distances and ``np.partition`` for the k-th smallest,
    in chunks of queries (measured 6× faster on CPU than a jitted ``top_k``)."""
    if not 1 <= k <= len(reference):
        raise ValueError(f"k must lie in 1..{len(reference)}, got {k}")
    prep = _unit_rows if normalize else (lambda x: np.asarray(x, np.float32).reshape(len(x), -1))
    ref, qry = prep(reference), prep(queries)
    ref_sq = np.sum(ref * ref, axis=1)
    out = []
    for start in range(0, len(qry), 4096):
        q = qry[start : start + 4096]
        sq = np.sum(q * q, axis=1)[:, None] + ref_sq[None, :] - 2.0 * q @ ref.T
        out.append(np.sqrt(np.maximum(np.partition(sq, k - 1, axis=1)[:, k - 1], 0.0)))
    return np.concatenate(out)


def paired_difference(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    *,
    reduce_a: Callable[[np.ndarray], np.ndarray] | None = None,
    reduce_b: Callable[[np.ndarray], np.ndarray] | None = None,
    metric: str = "auroc",
    bootstrap: int = 0,
    seed: int = 0,
) -> dict:
    """Paired difference of ``metric`` between scores ``a`` and ``b``, each ``(in, out)`` with
    replicate rows, on the same examples.

    Over replicates: :func:`experiments.core.stats.paired` of the per-replicate values (after
    ``reduce_*``, e.g. a single model's members averaged per ensemble so that both sides have one
    value per ensemble). With ``bootstrap`` resamples of the examples (the same resample for
    both scores), also the percentile interval of the difference of the means; the difference
    is ``significant`` only if both intervals exclude 0.
    """
    ra, rb = reduce_a or (lambda v: v), reduce_b or (lambda v: v)
    out = stats.paired(ra(per_replicate(*a)[metric]), rb(per_replicate(*b)[metric]))
    if not bootstrap:
        return out
    n_in = a[0].shape[-1]
    strata = np.r_[np.zeros(n_in, int), np.ones(a[1].shape[-1], int)]
    both_a, both_b = np.concatenate(a, axis=-1), np.concatenate(b, axis=-1)

    def diff(idx: np.ndarray) -> dict[str, float]:
        ins, outs = idx[strata[idx] == 0], idx[strata[idx] == 1]
        va = ra(per_replicate(both_a[:, ins], both_a[:, outs])[metric])
        vb = rb(per_replicate(both_b[:, ins], both_b[:, outs])[metric])
        return {"difference": float(np.mean(va) - np.mean(vb))}

    boot = stats.bootstrap_many(
        diff, len(strata), seed=seed, num_resamples=bootstrap, strata=strata
    )["difference"]
    out["bootstrap_interval"] = [boot["low"], boot["high"]]
    out["significant"] = bool(out["significant"] and (boot["low"] > 0 or boot["high"] < 0))
    out["low"], out["high"] = min(out["low"], boot["low"]), max(out["high"], boot["high"])
    return out
