"""Predictive uncertainty of members and ensembles: temperature scaling, scores, metrics.

Everything works on stacked host arrays with a leading *replicate* axis (members, or ensembles
of members), in float64 after one jitted pass each:

* :func:`fit_temperature` — :func:`entjax.fit_temperature` per replicate (Guo et al. 2017);
* :func:`log_probs` / :func:`mixture_log_probs` — per-member and ensemble log-probabilities
  (the ensemble predictive is the mean of the members' probabilities), with temperatures;
* :func:`single_scores` / :func:`ensemble_scores` — OOD scores, larger = more likely OOD:
  entropy, 1 − max-softmax (:func:`entjax.max_softmax`, which keeps confident examples apart
  where ``1 − exp(max log p)`` rounds to 0 in float32), energy ``−logsumexp(z)`` (Liu et al.
  2020), the mutual information and the mean pairwise KL of an ensemble (Lakshminarayanan et
  al. 2017), and the ensemble's energy: its members' mean energy;
* :func:`classification` — accuracy, NLL, Brier and ECE of each replicate on a labelled set;
* :func:`accuracy_vs_confidence` — accuracy of the examples with confidence ≥ τ and the fraction
  kept (Lakshminarayanan et al. 2017, Fig. 3).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import entjax


@jax.jit
def _fit_temperatures(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jax.vmap(entjax.fit_temperature, in_axes=(0, None))(logits, labels)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-replicate temperature ``T`` minimising the NLL of ``softmax(logits / T)``:
    :func:`entjax.fit_temperature` vmapped over the replicates of ``logits`` ``(P, n, C)``
    (log-probabilities are valid logits), ``labels`` ``(n,)``."""
    z = jnp.asarray(logits, jnp.float32)
    return np.asarray(_fit_temperatures(z, jnp.asarray(labels, jnp.int32)), np.float64)


@jax.jit
def _log_softmax(logits: jax.Array) -> jax.Array:
    return jax.nn.log_softmax(logits, axis=-1)


def log_probs(logits: np.ndarray, temperature: np.ndarray | None = None) -> np.ndarray:
    """``log softmax(logits / T)`` per replicate: ``(P, n, C)``, ``T`` ``(P,)`` or ``None``."""
    z = np.asarray(logits, np.float32)
    if temperature is not None:
        z = z / np.asarray(temperature, np.float32)[:, None, None]
    return np.asarray(_log_softmax(jnp.asarray(z)), np.float64)


@functools.partial(jax.jit, static_argnames="num_ensembles")
def _mixture(member_log_probs: jax.Array, num_ensembles: int) -> jax.Array:
    grouped = member_log_probs.reshape(num_ensembles, -1, *member_log_probs.shape[1:])
    return jax.vmap(lambda g: entjax.ensemble_log_probs(g, axis=0))(grouped)


def mixture_log_probs(member_log_probs: np.ndarray, num_ensembles: int) -> np.ndarray:
    """Log of the mean member probabilities of each ensemble: members ``(R·K, n, C)`` laid out
    ensemble-major (members ``r·K .. r·K + K − 1`` form ensemble ``r``) -> ``(R, n, C)``."""
    out = _mixture(jnp.asarray(member_log_probs, jnp.float32), num_ensembles)
    return np.asarray(out, np.float64)


@jax.jit
def _single_scores(logits: jax.Array, ts_log_probs: jax.Array) -> dict[str, jax.Array]:
    lse = jax.nn.logsumexp(logits, axis=-1)
    return {
        "entropy": entjax.entropy(logits),
        "max_softmax": entjax.max_softmax(logits),  # no float32 saturation at 1 - p = 0
        "energy": -lse,
        "temperature_entropy": entjax.entropy(ts_log_probs),
    }


def single_scores(logits: np.ndarray, ts_log_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-member OOD scores ``(P, n)``: entropy, 1 − max-softmax, energy, and the entropy of
    the temperature-scaled member."""
    out = _single_scores(jnp.asarray(logits, jnp.float32), jnp.asarray(ts_log_probs, jnp.float32))
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


@functools.partial(jax.jit, static_argnames="num_ensembles")
def _ensemble_scores(member_logits: jax.Array, num_ensembles: int) -> dict[str, jax.Array]:
    grouped = member_logits.reshape(num_ensembles, -1, *member_logits.shape[1:])

    def one(g):
        u = entjax.ensemble_uncertainty(g, axis=0)
        mix = entjax.ensemble_log_probs(g, axis=0)
        return {
            "total_entropy": u.total,
            "max_softmax": entjax.max_softmax(mix),  # log-probabilities are valid logits
            "mutual_information": u.epistemic,
            "pairwise_kl": entjax.pairwise_kl(g, axis=0),
            "energy": jnp.mean(-jax.nn.logsumexp(g, axis=-1), axis=0),
        }

    return jax.vmap(one)(grouped)


def ensemble_scores(member_logits: np.ndarray, num_ensembles: int) -> dict[str, np.ndarray]:
    """Per-ensemble OOD scores ``(R, n)``: total entropy, 1 − max of the mean prediction, the
    mutual information (epistemic part), the mean pairwise KL between members and the mean of
    the members' energies ``−logsumexp(z)`` (the logits' scale, which the ensemble's
    log-probabilities no longer carry)."""
    out = _ensemble_scores(jnp.asarray(member_logits, jnp.float32), num_ensembles)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


@functools.partial(jax.jit, static_argnames="num_bins")
def _classification(log_probs: jax.Array, labels: jax.Array, num_bins: int):
    def one(lp):
        return {
            "accuracy": jnp.mean(jnp.argmax(lp, axis=-1) == labels),
            "nll": jnp.mean(entjax.negative_log_likelihood(lp, labels)),
            "brier": jnp.mean(entjax.brier_score(lp, labels)),
            "ece": entjax.expected_calibration_error(lp, labels, num_bins=num_bins),
        }

    return jax.vmap(one)(log_probs)


def classification(log_probs: np.ndarray, labels: np.ndarray, *, num_bins: int) -> dict:
    """Accuracy, mean NLL, Brier and ECE (``num_bins`` equal-width bins) per replicate ``(P,)``."""
    out = _classification(
        jnp.asarray(log_probs, jnp.float32), jnp.asarray(labels, jnp.int32), num_bins
    )
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def accuracy_vs_confidence(
    log_probs: np.ndarray, labels: np.ndarray | None, thresholds: np.ndarray
) -> dict[str, np.ndarray]:
    """For each threshold τ: the fraction of examples with max-probability ≥ τ and (with
    labels) their accuracy (NaN where none is kept); arrays ``(P, len(thresholds))``."""
    conf = np.exp(np.max(log_probs, axis=-1))  # (P, n)
    kept = conf[..., None] >= np.asarray(thresholds)  # (P, n, T)
    out = {"fraction": kept.mean(axis=1)}
    if labels is not None:
        correct = (np.argmax(log_probs, axis=-1) == labels)[..., None]
        count = kept.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["accuracy"] = np.where(count > 0, (kept & correct).sum(axis=1) / count, np.nan)
    return out


def random_subsets(num_members: int, size: int, count: int, *, seed: int) -> np.ndarray:
    """``count`` distinct-as-possible random subsets of ``size`` members out of
    ``num_members`` (all of them when there are at most ``count``): ``(count, size)``."""
    import itertools

    total = math.comb(num_members, size)
    if total <= count:
        return np.asarray(list(itertools.combinations(range(num_members), size)))
    rng = np.random.default_rng([seed, size, 11])
    return np.stack([np.sort(rng.choice(num_members, size, replace=False)) for _ in range(count)])
