"""Output entropy through training: the probe every experiment's evaluation hook runs.

"Throughout training, you can track how output entropy changes": a steady fall means the model
grows confident, an abrupt rise signals a mismatch or instability. :class:`EntropyProbe` measures,
at every evaluation of :func:`experiments.core.training.fit`, each member's mean predictive
entropy on a fixed subset of the training set and on the validation split (with the validation
NLL when targets are given), and for ensembles the entropy of the ensemble's mean prediction and
the members' mutual information. :func:`summarize` turns those curves and the per-step training
loss into the ``entropy_curves`` block of ``results.json``, with the alarm rules of
:func:`experiments.core.entropy_alarms.alarms` applied. This module holds the data only; the
Markdown section and the figure every experiment gets are
:mod:`experiments.core.entropy_report`'s.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import entjax
from experiments.core.entropy_alarms import RISE_WINDOW, RULE, RULES, THRESHOLDS, alarms

TRAIN_SUBSET = 512


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """Predictive entropy (nats) of categorical logits ``(..., C)``."""
    return entjax.entropy(logits)


def bernoulli_entropy(logits: jax.Array) -> jax.Array:
    """Entropy (nats) of independent Bernoulli outputs ``(..., D)``, summed over ``D``."""
    return jnp.sum(entjax.binary_entropy(logits), axis=-1)


def categorical_nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example NLL (nats) of integer ``labels`` ``(n,)`` under logits ``(..., n, C)``."""
    return entjax.negative_log_likelihood(logits, jnp.broadcast_to(labels, logits.shape[:-1]))


def bernoulli_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-example NLL (nats) of binary ``targets`` ``(n, ...)`` under independent Bernoulli
    logits ``(..., n, D)``, summed over ``D`` (the targets are flattened to ``(n, D)``)."""
    pixels = jnp.reshape(targets, logits.shape[-2:]).astype(logits.dtype)
    return jnp.sum(entjax.sigmoid_binary_cross_entropy(logits, pixels), axis=-1)


@jax.jit
def _ensemble_scores(group_logits: jax.Array) -> dict[str, jax.Array]:
    """Mean total entropy and mutual information of ensembles ``(G, M, n, C)``."""
    u = jax.vmap(lambda lg: entjax.ensemble_uncertainty(lg, axis=0))(group_logits)
    return {"entropy": jnp.mean(u.total, axis=-1), "mi": jnp.mean(u.epistemic, axis=-1)}


@dataclasses.dataclass(frozen=True)
class EntropyProbe:
    """What to measure at each evaluation; call :meth:`bind` with the members to get the hook.

    Attributes:
      train_x: training inputs; the first :data:`TRAIN_SUBSET` are measured (a fixed subset, so
        the curve is not the noise of a changing batch).
      val_x, val_y: the validation split (``val_y`` optional: the targets of the validation NLL,
        ``nll_val``; class labels by default, the binary inputs themselves with
        :func:`bernoulli_nll`).
      apply: per-member ``(params, x) -> outputs`` (default: the model's logits).
      entropy: per-example entropy of those outputs (default categorical; see
        :func:`bernoulli_entropy`).
      nll: per-example NLL ``(outputs, val_y) -> (..., n)`` (default :func:`categorical_nll`).
      groups: member indices of each ensemble, for the ensemble entropy and mutual information.
      postprocess: applied to the ``(K, n, ...)`` outputs before the entropy (e.g. a per-member
        logit scale).
    """

    train_x: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray | None = None
    apply: Callable[..., jax.Array] | None = None
    entropy: Callable[[jax.Array], jax.Array] = categorical_entropy
    groups: Sequence[Sequence[int]] | None = None
    postprocess: Callable[[np.ndarray], np.ndarray] | None = None
    nll: Callable[[jax.Array, jax.Array], jax.Array] = categorical_nll

    def bind(self, members: Any) -> Callable[[Any], dict[str, np.ndarray]]:
        """The evaluation hook ``params -> {name: array}`` for :func:`training.fit`."""
        train_x = self.train_x[:TRAIN_SUBSET]
        entropy = jax.jit(lambda out: jnp.mean(self.entropy(out), axis=-1))
        nll = jax.jit(lambda out, y: jnp.mean(self.nll(out, y), axis=-1))

        def probe(params: Any) -> dict[str, np.ndarray]:
            train_out = members.predict(params, train_x, self.apply)
            val_out = members.predict(params, self.val_x, self.apply)
            if self.postprocess is not None:
                train_out, val_out = self.postprocess(train_out), self.postprocess(val_out)
            out = {
                "entropy_train": np.asarray(entropy(train_out), np.float64),
                "entropy_val": np.asarray(entropy(val_out), np.float64),
            }
            if self.val_y is not None:
                value = nll(jnp.asarray(val_out), jnp.asarray(self.val_y))
                out["nll_val"] = np.asarray(value, np.float64)
            if self.groups is not None:
                grouped = jnp.asarray(val_out[np.asarray(self.groups)])
                ens = _ensemble_scores(grouped)
                out["ensemble_entropy_val"] = np.asarray(ens["entropy"], np.float64)
                out["mutual_information_val"] = np.asarray(ens["mi"], np.float64)
            return out

        return probe


# --------------------------------------------------------------------------- summary


def _window_losses(loss_history: np.ndarray, steps: Sequence[int], members: list[int]) -> list:
    """Mean training loss of ``members`` over the steps since the previous evaluation."""
    out: list[float | None] = [None]
    for prev, step in itertools.pairwise(steps):
        window = loss_history[prev:step][:, members]
        out.append(float(np.mean(window)) if window.size else None)
    return out


def _loss_curve(loss_history: np.ndarray, members: list[int], unit: str, points: int = 400):
    """The per-step training loss of ``members`` (mean), subsampled to about ``points``."""
    steps = len(loss_history)
    idx = np.unique(np.linspace(0, steps - 1, min(points, steps)).round().astype(int))
    mean = loss_history[idx][:, members].mean(axis=1)
    return {"step": (idx + 1).tolist(), "mean": mean, "unit": unit}


def summarize(
    curves: Any,
    loss_history: np.ndarray,
    *,
    series: Mapping[str, Sequence[int]] | None = None,
    group_names: Sequence[str] | None = None,
    max_entropy: float | None = None,
    loss_unit: str | Mapping[str, str] = "nats",
) -> dict[str, Any]:
    """The block of one training run: per-member curves, series means, alarms, the rules.

    ``series`` names groups of members whose mean is reported and drawn (default: all members);
    ``group_names`` labels the probe's ensembles; ``max_entropy`` is the ceiling (log C);
    ``loss_unit`` is the unit of the training loss (``"nats"`` for log-losses, e.g.
    ``"unitless"`` for the Brier score), one for all series or one per series name.
    Experiments put one block per training run under ``results["entropy_curves"][name]``; the
    runner adds :func:`experiments.core.entropy_report.report_section` and ``.figure`` for them.
    """
    m, steps = curves.metrics, list(curves.steps)
    series = dict(series or {"all members": list(range(m["entropy_val"].shape[1]))})
    member_keys = [k for k in ("entropy_train", "entropy_val", "nll_val") if k in m]
    out: dict[str, Any] = {
        "rule": RULE,
        "rules": dict(RULES),
        "thresholds": dict(THRESHOLDS),
        "steps": steps,
        "rise_window_steps": RISE_WINDOW * (steps[-1] - steps[0]) if steps else 0.0,
        "max_eval_gap": int(np.max(np.diff(steps))) if len(steps) > 1 else 0,
        "max_entropy": max_entropy,
        "per_member": {key: m[key].T for key in member_keys},
        "series": {},
    }
    history = np.asarray(loss_history, np.float64)
    for name, members in series.items():
        idx = list(members)
        unit = loss_unit if isinstance(loss_unit, str) else loss_unit[name]
        entry: dict[str, Any] = {key: m[key][:, idx].mean(axis=1) for key in member_keys}
        entry["train_loss_window"] = _window_losses(history, steps, idx)
        entry["alarms"] = alarms(
            steps,
            entry["entropy_val"],
            nll_val=entry.get("nll_val"),
            train_loss=history[:, idx].mean(axis=1),
            max_entropy=max_entropy,
        )
        entry["train_loss"] = _loss_curve(history, idx, unit)
        out["series"][name] = entry
    if "ensemble_entropy_val" in m:
        count = m["ensemble_entropy_val"].shape[1]
        out["ensembles"] = {
            "names": list(group_names or [f"ensemble {g}" for g in range(count)]),
            "entropy_val": m["ensemble_entropy_val"].T,
            "mutual_information_val": m["mutual_information_val"].T,
        }
    return out
