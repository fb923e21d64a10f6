"""The alarm rules of the output-entropy curves (:mod:`experiments.core.entropy_curves`).

**Alarm rules.** Each series (a member group's mean) is checked by three rules that read the
curves against the *fraction of training* (``T`` training steps), never against the spacing of
the evaluations: between evaluations a curve is read linearly interpolated, so the same curve
evaluated every 10 or every 50 steps gets the same verdict (up to what the coarser sampling
cannot see: evaluations further apart than rule (a)'s window show a rise spread over their gap,
which the report states). ``log C`` below is the ceiling ``max_entropy`` given to
:func:`~experiments.core.entropy_curves.summarize` (``D log 2`` for ``D`` Bernoulli outputs).

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

from collections.abc import Sequence
from typing import Any

import numpy as np

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
