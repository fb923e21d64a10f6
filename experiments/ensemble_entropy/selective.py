"""Selective classification and misclassification detection of the four variants.

Per labelled set (the test set and the worst severity of every shift) and per variant (single,
single_ts, ensemble, ensemble_ts; :data:`~experiments.ensemble_entropy.config.VARIANTS`):

* the AURC and E-AURC of abstaining by confidence (:func:`entjax.aurc`,
  :func:`entjax.excess_aurc`; Geifman et al. 2019), confidence = the max probability, ranked as
  ``−(1 − p_max)`` from :func:`entjax.max_softmax` so confident predictions are not tied at a
  float32 probability of 1 (ties that remain count by their expected value);
* the AUROC of each uncertainty score for telling wrong predictions (positive) from right ones
  (Hendrycks & Gimpel 2017): 1 − max-softmax, entropy and, for the ensemble, the mutual
  information (temperature scaling of the mixture leaves the members, hence the MI, unchanged).

Every value is computed per replicate (member or ensemble) in one jitted, vmapped call; the
intervals are over replicates (:func:`experiments.core.stats.interval`), and the ensemble is
compared with its own members (their mean per ensemble) by paired differences.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import entjax
from experiments.core import stats
from experiments.ensemble_entropy.config import VARIANTS, Config
from experiments.ensemble_entropy.evalsets import Predictions

UNIT = (0.0, 1.0)
SELECTIVE = ("aurc", "excess_aurc", "error_rate")
SCORES = dict.fromkeys(VARIANTS, ("max_softmax", "entropy"))
SCORES["ensemble"] = ("max_softmax", "entropy", "mutual_information")
PAIRS = {
    "ensemble_minus_single": ("ensemble", "single"),
    "ensemble_ts_minus_single_ts": ("ensemble_ts", "single_ts"),
}


@jax.jit
def _selective(log_probs: jax.Array, labels: jax.Array) -> tuple[dict, dict, jax.Array]:
    """Per replicate row of ``log_probs`` ``(P, n, C)``: AURC, E-AURC and error rate ``(P,)``,
    the scores ``(P, n)`` (larger = less trusted) and whether each prediction is right."""
    correct = jnp.argmax(log_probs, axis=-1) == labels
    unconfidence = entjax.max_softmax(log_probs)  # 1 − p_max without saturation
    values = {
        "aurc": entjax.aurc(-unconfidence, correct),
        "excess_aurc": entjax.excess_aurc(-unconfidence, correct),
        "error_rate": 1.0 - jnp.mean(correct, axis=-1),
    }
    scores = {"max_softmax": unconfidence, "entropy": entjax.entropy(log_probs)}
    return values, scores, correct


@jax.jit
def _misclassification_auroc(scores: jax.Array, correct: jax.Array) -> jax.Array:
    """AUROC of each row's score for wrong (positive) against right predictions: the package's
    :func:`entjax.auroc` with each row's own masks (NaN for a row without errors)."""
    return entjax.auroc(scores, scores, where=(correct, ~correct))


def variant_block(log_probs: np.ndarray, labels: np.ndarray, extra: dict[str, np.ndarray]):
    """Per-replicate selective values and misclassification AUROCs of one variant on one set
    (``extra``: more ``(P, n)`` scores, e.g. the ensemble's mutual information)."""
    values, scores, correct = _selective(
        jnp.asarray(log_probs, jnp.float32), jnp.asarray(labels, jnp.int32)
    )
    scores = {**scores, **{k: jnp.asarray(v, jnp.float32) for k, v in extra.items()}}
    out = {k: np.asarray(v, np.float64) for k, v in values.items()}
    auroc = {
        k: np.asarray(_misclassification_auroc(s, correct), np.float64) for k, s in scores.items()
    }
    return out, auroc


def labelled_sets(pred: Predictions, config: Config) -> list[str]:
    """The test set and the labelled headline sets (each shift at its worst severity)."""
    return ["test", *(n for n in pred.sets.headline(config.severities) if n in pred.sets.labelled)]


def selective_section(
    pred: Predictions, config: Config, *, names: list[str] | None = None
) -> dict[str, Any]:
    """``results["selective"]``: per set (``names``, default :func:`labelled_sets`), per variant,
    intervals of AURC, E-AURC, the error rate and the misclassification AUROC of every score;
    paired ensemble − single differences."""
    out: dict[str, Any] = {}
    for name in labelled_sets(pred, config) if names is None else names:
        s, labels = pred.sets.slices[name], pred.sets.labels_of(name)
        block: dict[str, Any] = {"num_examples": s.stop - s.start}
        raw: dict[str, dict[str, np.ndarray]] = {}
        for variant in VARIANTS:
            extra = {}
            if "mutual_information" in SCORES[variant]:
                extra["mutual_information"] = pred.scores["ensemble/mutual_information"][:, s]
            values, auroc = variant_block(pred.log_probs[variant][:, s], labels, extra)
            raw[variant] = values
            block[variant] = {
                **{k: {**stats.interval(v, bounds=UNIT), "values": v} for k, v in values.items()},
                "misclassification_auroc": {
                    k: {**stats.interval(v, bounds=UNIT), "values": v} for k, v in auroc.items()
                },
            }
        block["comparisons"] = {
            metric: {
                label: stats.paired(raw[a][metric], pred.layout.ensemble_means(raw[b][metric]))
                for label, (a, b) in PAIRS.items()
            }
            for metric in ("aurc", "excess_aurc")
        }
        out[name] = block
    return out


def risk_coverage_arrays(pred: Predictions) -> dict[str, dict[str, np.ndarray]]:
    """For the figure: the test-set risk-coverage curve of replicate 0 of every variant."""
    s, labels = pred.sets.slices["test"], pred.sets.labels_of("test")
    out = {}
    for variant in VARIANTS:
        lp = jnp.asarray(pred.log_probs[variant][:1, s], jnp.float32)
        correct = jnp.argmax(lp, axis=-1) == jnp.asarray(labels)
        curve = entjax.risk_coverage(-entjax.max_softmax(lp), correct)
        out[variant] = {
            "coverage": np.asarray(curve.coverage[0], np.float64),
            "risk": np.asarray(curve.risk[0], np.float64),
        }
    return out
