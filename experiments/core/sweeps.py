"""Reading a sweep by setting: intervals over seeds, choices on validation, paired comparisons.

A sweep's members are the rows of :func:`experiments.core.training.member_grid` (dicts such as
``{"lam": 0.1, "seed": 2}``), and every per-member number is an array with one value per row.
The research experiments read them the same way:

* :func:`where` — the members of one setting (the fields given fixed), in seed order;
* :func:`interval` / :func:`intervals` — mean and Student-t 95% interval over those members
  (:func:`experiments.core.stats.interval`, ``ddof=1``), for one setting or for every value of
  one field (as columns ``{"mean": [...], "low": [...], "high": [...], "std": [...], "n": [...]}``,
  :func:`entry` picks one out);
* :func:`choose` — the value of a field whose members have the best *mean validation score*
  (ties: the first in the order given). Only validation scores go in: test numbers are reported
  for the setting chosen here, never used to choose it;
* :func:`compare` — the per-seed paired difference of two settings with its interval and the
  verdict of :func:`experiments.core.stats.verdict` (a claim only where the interval excludes 0).

Members initialised as copies of chosen members of another set (every setting of seed ``s``
starting from the same parameters: common random numbers for the paired differences) come from
:func:`experiments.core.training.members_from` (building members and meshes is training's job);
the name stays importable from here for the experiments that call ``sweeps.members_from``.

Pairs are matched by ``seed``: the same seed index of two settings. Where the two settings'
members were initialised and fed independently, the per-seed differences are still independent
and identically distributed, so the paired Student-t interval stays valid (it just gains nothing
from common random numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.core import outputs, stats
from experiments.core.training import members_from as members_from

Grid = Sequence[Mapping[str, Any]]
FIELDS = ("mean", "low", "high", "std", "n")


def where(grid: Grid, **match: Any) -> np.ndarray:
    """Indices of the members whose fields equal ``match``, ordered by their ``seed``."""
    idx = [i for i, m in enumerate(grid) if all(m.get(k) == v for k, v in match.items())]
    if not idx:
        raise ValueError(f"no member has {match}")
    return np.asarray(sorted(idx, key=lambda i: grid[i].get("seed", 0)), int)


def interval(
    values: np.ndarray, grid: Grid, *, bounds: tuple = (None, None), **match: Any
) -> dict[str, Any]:
    """:func:`~experiments.core.stats.interval` of ``values[where(grid, **match)]``."""
    return stats.interval(np.asarray(values, np.float64)[where(grid, **match)], bounds=bounds)


def intervals(
    values: np.ndarray,
    grid: Grid,
    field: str,
    settings: Sequence[Any],
    *,
    bounds: tuple = (None, None),
    **match: Any,
) -> dict[str, list]:
    """One :func:`interval` per value of ``field`` in ``settings`` (the other ``match`` fields
    fixed), as columns ``{"mean": [...], "low": [...], ...}``."""
    cols = [interval(values, grid, bounds=bounds, **{field: s}, **match) for s in settings]
    return {key: [c[key] for c in cols] for key in FIELDS}


def entry(columns: Mapping[str, Sequence[Any]], i: int) -> dict[str, Any]:
    """The ``i``-th interval of :func:`intervals`' columns, as one interval dict."""
    return outputs.interval_at({k: columns[k] for k in FIELDS if k in columns}, i)


def choose(
    scores: np.ndarray,
    grid: Grid,
    field: str,
    settings: Sequence[Any],
    *,
    higher_is_better: bool,
    **match: Any,
) -> tuple[Any, list[float]]:
    """The value of ``field`` with the best mean ``scores`` over its members, and every mean.

    ``scores`` must be validation scores: this is the experiments' one model-selection rule.
    """
    values = np.asarray(scores, np.float64)
    means = [float(np.mean(values[where(grid, **{field: s}, **match)])) for s in settings]
    finite = np.where(np.isfinite(means), means, -np.inf if higher_is_better else np.inf)
    best = int(np.argmax(finite) if higher_is_better else np.argmin(finite))
    return settings[best], means


def compare(
    values: np.ndarray,
    grid: Grid,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    *,
    names: tuple[str, str],
    higher_is_better: bool,
) -> dict[str, Any]:
    """Paired difference ``a − b`` over seeds of two settings, with ``significant`` and the
    ``verdict`` sentence (``names`` label the two settings)."""
    ia, ib = where(grid, **a), where(grid, **b)
    seeds_a = [grid[i].get("seed") for i in ia]
    seeds_b = [grid[i].get("seed") for i in ib]
    if seeds_a != seeds_b:
        raise ValueError(f"{a} and {b} have different seeds: {seeds_a} vs {seeds_b}")
    values = np.asarray(values, np.float64)
    return compare_values(values[ia], values[ib], names=names, higher_is_better=higher_is_better)


def compare_values(
    a: np.ndarray, b: np.ndarray, *, names: tuple[str, str], higher_is_better: bool
) -> dict[str, Any]:
    """:func:`compare` for two per-seed arrays already in seed order."""
    diff = stats.paired(a, b)
    diff["verdict"] = stats.verdict(diff, a=names[0], b=names[1], higher_is_better=higher_is_better)
    return diff
