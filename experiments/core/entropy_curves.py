"""Output entropy through training: the probe every experiment's evaluation hook runs.

"Throughout training, you can track how output entropy changes": a steady fall means the model
grows confident, an abrupt rise signals a mismatch or instability. :class:`EntropyProbe` measures,
at every evaluation of :func:`experiments.core.training.fit`, each member's mean predictive
entropy on a fixed subset of the training set and on the validation split (with the validation
NLL when targets are given), and for ensembles the entropy of the ensemble's mean prediction and
the members' mutual information. :func:`summarize` turns those curves and the per-step training
loss into the ``entropy_curves`` block of ``results.json``, with the alarm rules below applied
by :func:`alarms`. This module holds the data only; the Markdown section and the figure every
experiment gets are :mod:`experiments.core.entropy_report`'s.

**Alarm rules.** Each series (a member group's mean) is checked by three rules that read the
curves against the *fraction of training* (``T`` training steps), never against the spacing of
the evaluations: between evaluations a curve is read linearly interpolated, so the same curve
evaluated every 10 or every 50 steps gets the same verdict (up to what the coarser sampling
cannot see: evaluations further apart than rule (a)'s window show a rise spread over their gap,
which the report states). ``log C`` below is the ceiling ``max_entropy`` given to
:func:`summarize` (``D log 2`` for ``D`` Bernoulli outputs).

* ``entropy_rise`` (a): the validation entropy rises, within any window of
  :data:`RISE_WINDOW` ``· T`` steps, by more than ``max(`` :data:`RISE_REL` ``· H(start),``
  :data:`RISE_FLOOR` ``· log C)`` (0.05 nats without a ceiling) — from any step, the first
  evaluation (step 0) included, whatever the training loss does.
* ``stuck_at_ceiling`` (b): over the last :data:`CEILING_TAIL` of training the validation entropy
  never drops below :data:`CEILING_FRACTION` ``· log C`` while the mean training loss of the last
  :data:`LOSS_EDGE` of the steps is more than :data:`LOSS_FALL` below that of the first
  :data:`LOSS_EDGE`: the loss falls, the outputs stay near uniform.
* ``nll_up_entropy_down`` (c): over the later half of training, the validation NLL averaged over
  the band ``[0.5, 0.6] · T`` rises to the band ``[0.9, 1] · T`` by more than
  ``max(`` :data:`NLL_RISE_REL` ``· NLL, 0.001 nats)`` while the validation entropy over the same
  bands falls by more than ``max(`` :data:`ENTROPY_FALL_REL` ``· H, 0.001 nats)``: overconfidence
  / overfitting.

Each alarm is ``{"rule", "steps": [first, last], "step": last, "from", "to", ...}`` with the
entropy at the two ends (nats) and the rule's own numbers.
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

RISE_WINDOW = 0.10
RISE_REL = 0.25
RISE_FLOOR = 0.05
RISE_FLOOR_NATS = 0.05
CEILING_TAIL = 0.25
CEILING_FRACTION = 0.90
LOSS_EDGE = 0.10
LOSS_FALL = 0.05
LATER_HALF = 0.5
BAND = 0.10
NLL_RISE_REL = 0.02
ENTROPY_FALL_REL = 0.10
MIN_CHANGE_NATS = 0.001

RULES = {
    "entropy_rise": (
        f"(a) validation entropy rises by more than max({RISE_REL:.0%} of its value, "
        f"{RISE_FLOOR:.0%} of the max entropy) within {RISE_WINDOW:.0%} of the training steps, "
        "from any step, the first evaluation included"
    ),
    "stuck_at_ceiling": (
        f"(b) validation entropy stays at ≥ {CEILING_FRACTION:.0%} of the max entropy (log C; "
        f"D log 2 for D Bernoulli outputs) over the last "
        f"{CEILING_TAIL:.0%} of training while the training loss of the last {LOSS_EDGE:.0%} of "
        f"steps is more than {LOSS_FALL:.0%} below that of the first {LOSS_EDGE:.0%}"
    ),
    "nll_up_entropy_down": (
        f"(c) over the later half of training, validation NLL rises by more than "
        f"max({NLL_RISE_REL:.0%}, {MIN_CHANGE_NATS} nats) while validation entropy falls by more "
        f"than max({ENTROPY_FALL_REL:.0%}, {MIN_CHANGE_NATS} nats), comparing the means over "
        f"{LATER_HALF:.0%}–{LATER_HALF + BAND:.0%} and {1 - BAND:.0%}–100% of training"
    ),
}
RULE = "; ".join(RULES.values())
THRESHOLDS = {
    "rise_window": RISE_WINDOW,
    "rise_rel": RISE_REL,
    "rise_floor_of_ceiling": RISE_FLOOR,
    "rise_floor_nats_without_ceiling": RISE_FLOOR_NATS,
    "ceiling_tail": CEILING_TAIL,
    "ceiling_fraction": CEILING_FRACTION,
    "loss_edge": LOSS_EDGE,
    "loss_fall": LOSS_FALL,
    "later_half": LATER_HALF,
    "band": BAND,
    "nll_rise_rel": NLL_RISE_REL,
    "entropy_fall_rel": ENTROPY_FALL_REL,
    "min_change_nats": MIN_CHANGE_NATS,
}
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


# --------------------------------------------------------------------------- alarm rules


def _finite_curve(steps: Sequence[float], values: Sequence[float] | None):
    """The evaluations of a curve with a finite value, as float arrays (None if < 2)."""
    if values is None:
        return None
    s, v = np.asarray(steps, float), np.asarray(values, float)
    keep = np.isfinite(v)
    return (s[keep], v[keep]) if keep.sum() >= 2 else None


def _step(x: float) -> int:
    return round(float(x))


def _band_mean(s: np.ndarray, v: np.ndarray, lo: float, hi: float) -> float:
    """Mean of the linearly interpolated curve over steps ``[lo, hi]`` (exact trapezoid)."""
    if hi <= lo:
        return float(np.interp(lo, s, v))
    x = np.unique(np.concatenate([[lo, hi], s[(s > lo) & (s < hi)]]))
    y = np.interp(x, s, v)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / (hi - lo))


def _rise_alarms(s: np.ndarray, h: np.ndarray, ceiling: float | None) -> list[dict]:
    """Rule (a): the largest rise of the interpolated entropy within windows of ``W`` steps.

    The best pair ``a < b ≤ a + W`` of a piecewise-linear curve has ``a`` at an evaluation or at
    an evaluation minus ``W``, and ``b`` at an evaluation or at ``a + W``: those candidates are
    exact. Overlapping firing windows are one alarm, reported at its largest rise (the shortest
    window among equal rises)."""
    span = s[-1] - s[0]
    if span <= 0:
        return []
    window = RISE_WINDOW * span
    floor = RISE_FLOOR * ceiling if ceiling else RISE_FLOOR_NATS
    hits = []
    for a in np.unique(np.clip(np.concatenate([s, s - window]), s[0], s[-1])):
        ends = np.unique(np.append(s[(s > a) & (s <= a + window)], min(a + window, s[-1])))
        ends = ends[ends > a]
        if not len(ends):
            continue
        h_a, h_ends = float(np.interp(a, s, h)), np.interp(ends, s, h)
        j = int(np.argmax(h_ends))
        threshold = float(max(floor, RISE_REL * h_a))
        if h_ends[j] - h_a > threshold:
            hits.append((float(a), float(ends[j]), h_a, float(h_ends[j]), threshold))
    clusters: list[list[tuple]] = []
    for hit in sorted(hits):
        if clusters and hit[0] <= max(end for _, end, *_ in clusters[-1]):
            clusters[-1].append(hit)
        else:
            clusters.append([hit])
    out = []
    for cluster in clusters:
        # the largest rise; among equal rises the shortest window (the most abrupt)
        a, b, h_a, h_b, threshold = max(cluster, key=lambda hit: (hit[3] - hit[2], hit[0] - hit[1]))
        out.append(
            {
                "rule": "entropy_rise",
                "steps": [_step(a), _step(b)],
                "step": _step(b),
                "from": h_a,
                "to": h_b,
                "rise": h_b - h_a,
                "threshold": threshold,
                "window_steps": float(window),
            }
        )
    return out


def _stuck_alarm(s, h, train_loss, ceiling) -> list[dict]:
    """Rule (b): entropy ≥ CEILING_FRACTION · log C over the last CEILING_TAIL while the loss
    falls (first vs last LOSS_EDGE of the steps)."""
    if not ceiling or train_loss is None:
        return []
    loss = np.asarray(train_loss, float)[int(s[0]) : int(s[-1])]
    loss = loss[np.isfinite(loss)]
    if len(loss) < 2:
        return []
    edge = max(1, int(np.ceil(LOSS_EDGE * len(loss))))
    first, last = float(np.mean(loss[:edge])), float(np.mean(loss[-edge:]))
    lo = s[-1] - CEILING_TAIL * (s[-1] - s[0])
    tail = np.interp(np.concatenate([[lo], s[s > lo]]), s, h)
    fraction = float(np.min(tail)) / float(ceiling)
    if fraction < CEILING_FRACTION or not last < (1 - LOSS_FALL) * first:
        return []
    return [
        {
            "rule": "stuck_at_ceiling",
            "steps": [_step(lo), _step(s[-1])],
            "step": _step(s[-1]),
            "from": float(tail[0]),
            "to": float(tail[-1]),
            "min_fraction_of_ceiling": fraction,
            "ceiling": float(ceiling),
            "train_loss_first": first,
            "train_loss_last": last,
        }
    ]


def _overfit_alarm(s, h, nll_curve) -> list[dict]:
    """Rule (c): over the later half, the validation NLL rises while the entropy falls (means
    of the interpolated curves over the bands ``[0.5, 0.6]·T`` and ``[0.9, 1]·T``)."""
    if nll_curve is None:
        return []
    s0, span = s[0], s[-1] - s[0]
    if span <= 0:
        return []
    start = (s0 + LATER_HALF * span, s0 + (LATER_HALF + BAND) * span)
    end = (s0 + (1 - BAND) * span, s[-1])
    n_s, n_v = nll_curve
    nll_a, nll_b = _band_mean(n_s, n_v, *start), _band_mean(n_s, n_v, *end)
    h_a, h_b = _band_mean(s, h, *start), _band_mean(s, h, *end)
    nll_up = nll_b - nll_a > max(MIN_CHANGE_NATS, NLL_RISE_REL * abs(nll_a))
    h_down = h_a - h_b > max(MIN_CHANGE_NATS, ENTROPY_FALL_REL * h_a)
    if not (nll_up and h_down):
        return []
    return [
        {
            "rule": "nll_up_entropy_down",
            "steps": [_step(start[0]), _step(end[1])],
            "step": _step(end[1]),
            "from": h_a,
            "to": h_b,
            "nll_from": nll_a,
            "nll_to": nll_b,
            "bands": [[_step(x) for x in start], [_step(x) for x in end]],
        }
    ]


def alarms(
    steps: Sequence[float],
    entropy_val: Sequence[float],
    *,
    nll_val: Sequence[float] | None = None,
    train_loss: Sequence[float] | None = None,
    max_entropy: float | None = None,
) -> list[dict[str, Any]]:
    """The alarms of one series under the :data:`RULES`, ordered by their first step.

    Args:
      steps: the evaluation steps (increasing; the first is usually 0).
      entropy_val: the mean validation entropy (nats) at each step.
      nll_val: the mean validation NLL (nats) at each step; without it rule (c) is not checked.
      train_loss: the mean training loss of every step, ``train_loss[i]`` that of step ``i + 1``;
        without it rule (b) is not checked.
      max_entropy: the ceiling ``log C``; without it rule (b) is not checked and rule (a) uses a
        0.05-nat floor.

    Non-finite values (a diverged member) are skipped; a curve with fewer than two finite
    evaluations gets no alarm.
    """
    curve = _finite_curve(steps, entropy_val)
    if curve is None:
        return []
    s, h = curve
    found = _rise_alarms(s, h, max_entropy)
    found += _stuck_alarm(s, h, train_loss, max_entropy)
    found += _overfit_alarm(s, h, _finite_curve(steps, nll_val))
    return sorted(found, key=lambda a: (a["steps"][0], a["rule"]))


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
