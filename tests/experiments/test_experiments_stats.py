"""Holm's correction, the bootstrap p-value and the hierarchical (replicates × examples)
bootstrap of the OOD metrics, against written-out numpy / scipy / scikit-learn references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st
from sklearn.metrics import roc_auc_score

from experiments.core import detection, stats


def test_holm_against_the_step_down_written_out():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}
    got = stats.holm(p)
    # sorted: d 0.005·4 = 0.02, a 0.01·3 = 0.03, c 0.03·2 = 0.06, b max(0.06, 0.04·1) = 0.06
    assert [got[k]["p_holm"] for k in "abcd"] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [got[k]["rejected"] for k in "abcd"] == [True, False, False, True]
    assert stats.holm({"x": 0.7, "y": 0.9})["y"]["p_holm"] == 1.0  # capped at 1
    assert got["b"]["p"] == 0.04


def _t_interval(draws, estimate, units):
    """estimate ± t_{S-1} · sd(draws) · sqrt(S / (S - 1)), and the two-sided t p-value."""
    se = np.std(draws, ddof=1) * np.sqrt(units / (units - 1))
    t = st.t.ppf(0.975, units - 1)
    return (estimate - t * se, estimate + t * se), 2 * st.t.sf(abs(estimate) / se, units - 1)


def _hierarchical_reference(s_in, s_out, bootstrap, seed):
    """The same draws (indices, row counts), each resample rebuilt explicitly and scored with
    scikit-learn."""
    n_in, n_out = s_in.shape[1], s_out.shape[1]
    strata = np.r_[np.zeros(n_in, int), np.ones(n_out, int)]
    idx = stats.bootstrap_indices(n_in + n_out, seed=seed, num_resamples=bootstrap, strata=strata)
    rows = stats.row_counts(len(s_in), seed=seed, num_resamples=bootstrap)
    both = np.concatenate([s_in, s_out], axis=1)
    y = strata.astype(float)
    means = []
    for b in range(bootstrap):
        per_row = [roc_auc_score(y, both[r, idx[b]]) for r in range(len(s_in))]
        means.append(np.dot(rows[b], per_row) / len(s_in))
    return np.quantile(means, [0.025, 0.975]), np.asarray(means)


def test_combined_intervals_equal_an_explicit_hierarchical_bootstrap():
    rng = np.random.default_rng(4)
    s_in, s_out = rng.normal(size=(4, 50)), rng.normal(0.6, size=(4, 35))
    got = detection.combined_intervals(s_in, s_out, bootstrap=40, seed=2)["auroc"]
    _, draws = _hierarchical_reference(s_in, s_out, 40, 2)
    y = np.r_[np.zeros(50), np.ones(35)]
    per_row = [roc_auc_score(y, np.r_[s_in[r], s_out[r]]) for r in range(4)]
    (low, high), _ = _t_interval(draws, np.mean(per_row), 4)
    assert (got["low"], got["high"]) == pytest.approx((low, high), abs=1e-5)  # float32 metric
    assert got["mean"] == pytest.approx(np.mean(per_row), abs=1e-6)
    assert got["seeds_interval"] == pytest.approx(
        list(st.t.interval(0.95, 3, loc=np.mean(per_row), scale=st.sem(per_row))), abs=1e-6
    )


def test_combined_difference_pairs_rows_and_examples():
    rng = np.random.default_rng(6)
    s_in = rng.normal(size=(3, 60))
    out_a, out_b = rng.normal(1.0, size=(3, 40)), rng.normal(0.4, size=(3, 40))
    d = detection.combined_difference((s_in, out_a), (s_in, out_b), bootstrap=40, seed=1)
    _, ma = _hierarchical_reference(s_in, out_a, 40, 1)
    _, mb = _hierarchical_reference(s_in, out_b, 40, 1)
    diffs = ma - mb  # the same rows and examples in both
    (low, high), p = _t_interval(diffs, d["mean"], 3)
    assert (d["low"], d["high"]) == pytest.approx((low, high), abs=1e-5)
    assert d["p_value"] == pytest.approx(p, rel=1e-3)
    assert d["significant"] == (d["low"] > 0 or d["high"] < 0)
    assert d["mean"] > 0.1  # a real, detectable difference


def test_seeds_and_examples_against_an_explicit_two_level_resample():
    rng = np.random.default_rng(8)
    x = (rng.random((5, 40)) < 0.8).astype(float) - (rng.random((5, 40)) < 0.7)  # paired 0/±1
    got = stats.seeds_and_examples(x, seed=3, num_resamples=300)
    rows = stats.row_counts(5, seed=3, num_resamples=300)
    idx = stats.bootstrap_indices(40, seed=3, num_resamples=300)
    draws = []
    for b in range(300):
        seeds = np.repeat(np.arange(5), rows[b])  # the drawn seeds, with multiplicity
        draws.append(x[np.ix_(seeds, idx[b])].mean())
    (low, high), p = _t_interval(draws, x.mean(), 5)
    assert (got["low"], got["high"]) == pytest.approx((low, high))
    assert got["p_value"] == pytest.approx(p)
    assert got["mean"] == pytest.approx(x.mean())
    seed_means = x.mean(axis=1)
    t_low, t_high = st.t.interval(0.95, 4, loc=seed_means.mean(), scale=st.sem(seed_means))
    assert got["seeds_interval"] == pytest.approx([t_low, t_high])
    # Examples add variance that seeds alone miss: with identical seeds the t-interval is a
    # point, the combined one is not.
    same = np.repeat(x[:1], 5, axis=0)
    both = stats.seeds_and_examples(same, seed=0, num_resamples=300)
    assert both["seeds_interval"][0] == pytest.approx(both["seeds_interval"][1])
    assert both["high"] - both["low"] > 0.1


def test_seeds_and_examples_keeps_its_level_under_few_seeds():
    # A null where the seeds dominate: a percentile or normal bootstrap over 3-5 seeds rejects
    # 15-25 % of the time; t with S - 1 df on the rescaled standard error keeps about 5 %.
    rng = np.random.default_rng(0)
    for num_seeds in (3, 5):
        rejected = [
            stats.seeds_and_examples(
                rng.normal(size=(num_seeds, 1)) + 0.01 * rng.normal(size=(num_seeds, 40)),
                seed=i,
                num_resamples=200,
            )["significant"]
            for i in range(300)
        ]
        assert np.mean(rejected) < 0.09, (num_seeds, np.mean(rejected))
    # ... while a real effect (mean 1, seed sd 0.3) is found.
    x = 1.0 + 0.3 * rng.normal(size=(5, 1)) + rng.normal(size=(5, 40))
    assert stats.seeds_and_examples(x, num_resamples=300)["significant"]


def test_row_counts_really_resample_the_replicates():
    counts = stats.row_counts(4, seed=0, num_resamples=500)
    assert (counts.sum(axis=1) == 4).all()
    assert (counts != 1).any(axis=1).mean() > 0.8  # 1 - 4!/4^4 = 0.906 of draws are not all-once
    # A seed-only effect (examples identical within each seed) still gives a non-zero width.
    x = np.repeat(np.arange(4.0)[:, None], 30, axis=1)
    got = stats.seeds_and_examples(x, num_resamples=300)
    assert got["high"] - got["low"] > 1.0


def test_nan_draws_are_never_significant():
    x = np.random.default_rng(1).normal(1.0, 0.1, size=(4, 20))
    x[1, 3] = np.nan
    got = stats.seeds_and_examples(x, num_resamples=50)
    assert np.isnan(got["p_value"])
    assert not got["significant"]
    assert stats.holm({"a": float("nan"), "b": 0.001})["a"]["rejected"] is False
