"""Uncertainty of reported numbers: intervals over seeds, paired differences, the bootstrap.

Every compared number in an experiment's report is a mean over independent seeds (or
ensembles) with a 95% interval, and a claim ("A is better than B") is made only where the
interval of the paired difference excludes zero:

* :func:`interval` — mean, sample standard deviation (``ddof=1``) and the Student-t interval
  ``mean ± t_{0.975, n-1} · s / √n`` over independent replicates;
* :func:`paired` — the same for the per-seed differences ``a - b`` of two methods evaluated on
  the same seeds, plus the verdict :func:`verdict` turns into words;
* :func:`bootstrap` — a percentile interval over resampled test examples, for statistics (AUROC,
  AUPR) whose uncertainty from a finite test set can exceed that over seeds.

Intervals are dictionaries ``{"mean", "low", "high", "std", "n"}`` so that they serialise to
JSON and print with :func:`experiments.core.outputs.fmt` as ``mean [low, high]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

CONFIDENCE = 0.95


def _t_quantile(df: int, confidence: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2.0, df))


def interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    bounds: tuple[float | None, float | None] = (None, None),
) -> dict:
    """Mean and Student-t ``confidence`` interval over independent replicates (``ddof=1``).

    ``bounds`` clips the interval to the quantity's range (e.g. ``(0, 1)`` for an accuracy): the
    t-interval is symmetric and can leave it with few replicates. One replicate gives a
    degenerate interval (``low = high = mean``, ``std`` NaN): there is no estimate of the
    spread, and :func:`verdict` then never claims a difference.
    """
    x = np.asarray(values, np.float64).ravel()
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "std": math.nan, "n": 0}
    mean = float(x.mean())
    if n == 1:
        return {"mean": mean, "low": mean, "high": mean, "std": math.nan, "n": 1}
    std = float(x.std(ddof=1))
    half = _t_quantile(n - 1, confidence) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds[0] is not None:
        low = max(low, bounds[0])
    if bounds[1] is not None:
        high = min(high, bounds[1])
    return {"mean": mean, "low": low, "high": high, "std": std, "n": n}


def paired(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
) -> dict:
    """Interval of the mean per-replicate difference ``a - b`` (same seeds, same order), with
    ``significant``: whether the interval excludes 0 (needs at least 2 replicates)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {a.shape} and {b.shape}")
    out = interval(a - b, confidence=confidence)
    out["significant"] = bool(out["n"] >= 2 and (out["low"] > 0 or out["high"] < 0))
    return out


def verdict(diff: dict, *, a: str, b: str, higher_is_better: bool) -> str:
    """Words for a :func:`paired` difference ``a - b``: a claim only if it is significant."""
    if not diff.get("significant"):
        return f"no significant difference between {a} and {b}"
    better = (diff["mean"] > 0) == higher_is_better
    return f"{a} is {'better' if better else 'worse'} than {b}"


def bootstrap(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    seed: int,
    num_resamples: int = 1000,
    confidence: float = CONFIDENCE,
    strata: np.ndarray | None = None,
) -> dict:
    """Percentile bootstrap interval of ``statistic(indices)`` over ``n`` examples.

    ``statistic`` receives an index array (a resample with replacement of ``range(n)``) and
    returns a number. ``strata`` (an integer label per example, e.g. in- vs out-of-distribution)
    resamples within each stratum, so both classes of a detection problem stay represented.
    """
    many = bootstrap_many(
        lambda idx: {"value": statistic(idx)},
        n,
        seed=seed,
        num_resamples=num_resamples,
        confidence=confidence,
        strata=strata,
    )
    return many["value"]


def bootstrap_indices(
    n: int, *, seed: int, num_resamples: int, strata: np.ndarray | None = None
) -> np.ndarray:
    """``(num_resamples, n)`` resamples with replacement of ``range(n)``, within each stratum.

    Row ``b`` holds stratum 0's resampled indices first, then stratum 1's, and so on (strata in
    sorted order), so with two strata ``row[:n_0]`` are stratum 0's examples. The draws are a
    pure function of ``seed``.
    """
    rng = np.random.default_rng([seed, 7])
    labels = np.zeros(n, int) if strata is None else np.asarray(strata)
    groups = [np.flatnonzero(labels == s) for s in np.unique(labels)]
    out = np.empty((num_resamples, n), np.intp)
    for b in range(num_resamples):
        out[b] = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
    return out


def percentile_interval(
    draws: np.ndarray, full: float, n: int, *, confidence: float = CONFIDENCE
) -> dict:
    """The percentile interval of bootstrap ``draws`` around the full-sample value ``full``."""
    draws = np.asarray(draws, np.float64)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return {
        "mean": float(full),
        "low": float(low),
        "high": float(high),
        "std": float(draws.std(ddof=1)),
        "n": n,
    }


def bootstrap_many(
    statistic: Callable[[np.ndarray], dict[str, float]],
    n: int,
    *,
    seed: int,
    num_resamples: int = 1000,
    confidence: float = CONFIDENCE,
    strata: np.ndarray | None = None,
) -> dict[str, dict]:
    """:func:`bootstrap` of several statistics computed together from the same resamples."""
    draws: dict[str, list[float]] = {}
    for idx in bootstrap_indices(n, seed=seed, num_resamples=num_resamples, strata=strata):
        for name, value in statistic(idx).items():
            draws.setdefault(name, []).append(value)
    full = statistic(np.arange(n))
    return {
        name: percentile_interval(np.asarray(values), full[name], n, confidence=confidence)
        for name, values in draws.items()
    }


def row_counts(rows: int, *, seed: int, num_resamples: int) -> np.ndarray:
    """``(num_resamples, rows)`` multiplicities of replicate rows drawn with replacement: the
    outer level of a hierarchical bootstrap (replicates, then examples within them)."""
    rng = np.random.default_rng([seed, 11])
    draws = rng.integers(0, rows, (num_resamples, rows))
    counts = np.zeros((num_resamples, rows), np.int64)
    np.add.at(counts, (np.arange(num_resamples)[:, None], draws), 1)
    return counts


def hierarchical(
    draws: np.ndarray,
    estimate: float,
    units: int,
    *,
    confidence: float = CONFIDENCE,
    bounds: tuple[float | None, float | None] = (None, None),
) -> dict:
    """Interval, standard error and two-sided p-value (of "the quantity is 0") from the draws of
    a hierarchical bootstrap that resampled ``units`` independent replicates (then examples).

    A bootstrap over few replicates is anti-conservative: the plug-in variance of a mean of
    ``S`` resampled units is ``(S - 1) / S`` of the unbiased one, and a normal or percentile
    interval ignores that the spread is itself estimated from ``S`` values. So the draws' standard
    deviation is scaled by ``sqrt(S / (S - 1))`` and the interval and p-value use Student's t with
    ``S - 1`` degrees of freedom: ``estimate ± t · se``, ``p = 2 P(T > |estimate| / se)``. With
    the example level negligible this is the usual t-test over replicates; the example level
    adds its variance on top. NaN draws (a NaN metric) give NaN, never a significant result.
    """
    from scipy import stats as st

    draws = np.asarray(draws, np.float64)
    out = {"mean": float(estimate), "n": units}
    if units < 2 or not np.all(np.isfinite(draws)) or not np.isfinite(estimate):
        nan = float("nan")
        return out | {
            "low": nan,
            "high": nan,
            "std": nan,
            "se": nan,
            "p_value": nan,
            "significant": False,
        }
    se = float(draws.std(ddof=1) * math.sqrt(units / (units - 1)))
    out["std"] = se * math.sqrt(units)  # the replicate-level spread this standard error implies
    t = float(st.t.ppf(0.5 + confidence / 2.0, units - 1))
    low, high = estimate - t * se, estimate + t * se
    if se > 0:
        p = float(2.0 * st.t.sf(abs(estimate) / se, units - 1))
    else:
        p = 0.0 if estimate != 0 else 1.0
    if bounds[0] is not None:
        low = max(low, bounds[0])
    if bounds[1] is not None:
        high = min(high, bounds[1])
    return out | {
        "low": float(low),
        "high": float(high),
        "se": se,
        "p_value": p,
        "significant": bool(p < 1.0 - confidence),
    }


def seeds_and_examples(
    values: np.ndarray,
    *,
    seed: int = 0,
    num_resamples: int = 2000,
    confidence: float = CONFIDENCE,
    bounds: tuple[float | None, float | None] = (None, None),
) -> dict:
    """Mean of per-example values ``(S, n)`` (S seeds × the same n test examples) with a 95%
    interval that includes both sources of variation: a hierarchical bootstrap drawing the seeds
    with replacement, then the examples (the same for every seed).

    For a paired comparison pass the per-example differences ``a - b`` of the same seeds and
    examples (e.g. correctness 0/1 for an accuracy difference); ``p_value`` is then the
    two-sided p-value of "no difference" and ``significant`` whether it is below 0.05 (the
    interval excludes 0); both from :func:`hierarchical` (t with ``S - 1`` degrees of freedom,
    so few seeds are not over-trusted). ``seeds_interval`` is the t interval over seeds alone.
    """
    x = np.asarray(values, np.float64)
    if x.ndim != 2:
        raise ValueError(f"values must be (seeds, examples), got shape {x.shape}")
    num_seeds, n = x.shape
    rows = row_counts(num_seeds, seed=seed, num_resamples=num_resamples)
    idx = bootstrap_indices(n, seed=seed, num_resamples=num_resamples)
    per_seed = np.stack([x[:, i].mean(axis=1) for i in idx])  # (B, S): every seed, resampled
    draws = (per_seed * rows).sum(axis=1) / num_seeds
    estimate = float(x.mean())
    out = hierarchical(draws, estimate, num_seeds, confidence=confidence, bounds=bounds)
    seeds = interval(x.mean(axis=1), confidence=confidence)
    out.update(
        examples=n,
        seeds_interval=[seeds["low"], seeds["high"]],
        interval="hierarchical bootstrap (seeds, then examples), t with seeds - 1 df",
    )
    return out


def holm(p_values: Mapping[str, float], *, alpha: float = 0.05) -> dict[str, dict]:
    """Holm's step-down correction of a declared family of tests (family-wise error ``alpha``).

    With the ``m`` p-values sorted, p_(1) <= ... <= p_(m), the adjusted value is
    p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)), and a test is rejected where
    p~ <= alpha (Holm 1979). Returns ``{name: {"p", "p_holm", "rejected"}}`` in input order.
    """
    names = list(p_values)
    p = np.asarray([p_values[k] for k in names], np.float64)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return {
        k: {"p": float(p[i]), "p_holm": float(adjusted[i]), "rejected": bool(adjusted[i] <= alpha)}
        for i, k in enumerate(names)
    }
