"""Pooling the main experiment's declared comparisons over replications (synthetic runs; the
command line on a real run's results is tested beside the smoke run, in
test_ensemble_experiment.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from experiments.core.cli import ConfigError
from experiments.ensemble_entropy import replicate


def _run(seed: int, heldout: list[int], family: dict[str, float], ranked=("heldout_classes",)):
    return {
        "experiment": "ensemble_entropy",
        "config": {
            "dataset": "mnist",
            "model": "cnn",
            "members": 4,
            "seeds": 5,
            "steps": 400,
            "seed": seed,
            "data_seed": seed,
            "heldout_classes": heldout,
        },
        "comparisons": {
            "ranked_sets": list(ranked),
            "family": {
                key: {
                    "set": key.split(":")[0],
                    "kind": "ood",
                    "comparison": key.split(": ")[-1],
                    "mean": value,
                    "confirmed": value > 0.02,
                }
                for key, value in family.items()
            },
        },
    }


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def test_pool_is_the_t_interval_over_replications_with_holm():
    estimates = {
        "heldout_classes: a": [0.031, 0.029, 0.033],
        "heldout_classes: b": [0.004, -0.006, 0.010],
        "rotation@5: a": [0.020, 0.018, 0.030],  # p = 0.02 alone: not after Holm
    }
    runs = [_run(r, [8 - r, 9 - r], {k: v[r] for k, v in estimates.items()}) for r in range(3)]
    runs[0]["comparisons"]["family"]["noise: a"] = runs[0]["comparisons"]["family"][
        "rotation@5: a"
    ]  # made in one run only: not pooled
    pooled = replicate.pool(runs)
    assert list(pooled["family"]) == list(estimates)
    assert pooled["not_in_every_run"] == ["noise: a"]
    assert pooled["replications"] == 3
    p_expected = []
    for key, values in estimates.items():
        test = pooled["family"][key]
        x = np.asarray(values)
        low, high = st.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=st.sem(x))
        assert test["mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert (test["low"], test["high"]) == pytest.approx((low, high), rel=1e-9)
        p = st.ttest_1samp(x, 0.0).pvalue
        assert test["p"] == pytest.approx(p, rel=1e-9)
        assert test["per_run"] == pytest.approx(values)
        p_expected.append(p)
    holm = _holm(np.asarray(p_expected))
    got = [pooled["family"][k]["p_holm"] for k in estimates]
    np.testing.assert_allclose(got, holm, rtol=1e-12)
    assert pooled["confirmed"] == [k for k, h in zip(estimates, holm, strict=True) if h <= 0.05]
    assert pooled["confirmed"] == ["heldout_classes: a"]  # consistent over the replications
    text = replicate.report(pooled)
    assert "over 3 replications" in text
    assert "noise: a" in text  # named as not pooled


def test_estimates_that_do_not_vary_are_never_confirmed():
    runs = [_run(r, [8 - r, 9 - r], {"heldout_classes: a": 0.05}) for r in range(3)]
    test = replicate.pool(runs)["family"]["heldout_classes: a"]
    assert np.isnan(test["p"])
    assert not test["confirmed"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda runs: runs[:1], "at least 2 runs"),
        (lambda runs: [runs[0], runs[0]], "share seed"),
        (
            lambda runs: [runs[0], {**runs[1], "config": {**runs[1]["config"], "steps": 40}}],
            "differs from run0 in steps",
        ),
        (
            lambda runs: [
                runs[0],
                {**runs[1], "config": {**runs[1]["config"], "heldout_classes": [9, 8]}},
            ],
            "share heldout_classes",
        ),
    ],
)
def test_runs_that_are_not_replications_are_refused(change, message):
    runs = change([_run(0, [8, 9], {"x: a": 0.1}), _run(1, [3, 5], {"x: a": 0.2})])
    with pytest.raises(ConfigError, match=message):
        replicate.check_replications(runs, [f"run{i}" for i in range(len(runs))])


def test_unreadable_or_foreign_results_are_refused(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        replicate.load_results(str(bad))
    (bad / "results.json").write_text('{"experiment": "elbo"}')
    with pytest.raises(ConfigError, match=r"not a result of experiments\.ensemble_entropy"):
        replicate.load_results(str(bad))
    with pytest.raises(ConfigError, match="no finished run"):
        replicate.load_results(str(tmp_path / "missing"))
