"""The entropy probe's alarm rules on constructed curves, with expectations worked out by hand.

Every curve here is a function of the training step; a test samples it at the evaluation steps
it needs (every 10, 50 or 250 of 500 steps), so the same underlying curve can be checked under
different evaluation intervals.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

from experiments.core import entropy_alarms, entropy_curves, entropy_report

T = 500
LOG_C = math.log(10)


def sample(curve, every: int) -> tuple[list[int], list[float]]:
    steps = list(range(0, T + 1, every))
    return steps, [float(curve(s)) for s in steps]


def rules(found: list[dict]) -> list[str]:
    return [a["rule"] for a in found]


def overconfident_start(peak: float):
    """1.176 nats at step 0 (an overconfident start), ``peak`` at step 10, then a slow decay."""
    return lambda s: 1.176 if s == 0 else peak * math.exp(-(s - 10) / 1000)


# --------------------------------------------------------------------------- (a) entropy rise


@pytest.mark.parametrize("peak", [2.254, 1.783, 1.605])  # square loss, CE, Brier (the review)
def test_rise_at_the_very_first_evaluation_fires(peak):
    steps, h = sample(overconfident_start(peak), 10)
    found = entropy_alarms.alarms(steps, h, max_entropy=LOG_C)
    assert rules(found) == ["entropy_rise"]
    alarm = found[0]
    # the best pair in the first 10 % of training (50 steps) is step 0 → step 10
    assert alarm["steps"] == [0, 10]
    assert alarm["step"] == 10
    assert alarm["from"] == pytest.approx(1.176)
    assert alarm["to"] == pytest.approx(peak)
    assert alarm["rise"] == pytest.approx(peak - 1.176)
    # max(25 % of 1.176, 5 % of log 10) = max(0.294, 0.1151)
    assert alarm["threshold"] == pytest.approx(0.294)
    assert alarm["window_steps"] == pytest.approx(50.0)


def test_rise_below_the_threshold_and_falling_curves_stay_quiet():
    # +0.1 nats from 0.8 (12.5 %) at step 200: below max(0.2, 0.115)
    steps, h = sample(lambda s: 0.8 if s < 200 else 0.9, 10)
    assert entropy_alarms.alarms(steps, h, max_entropy=LOG_C) == []
    steps, h = sample(lambda s: 2.2 * math.exp(-s / 100), 10)
    assert entropy_alarms.alarms(steps, h, max_entropy=LOG_C) == []


def test_without_a_ceiling_the_floor_is_005_nats():
    # 0.1 → 0.16 nats: +60 %, +0.06 nats > max(0.025, 0.05)
    steps, h = sample(lambda s: 0.1 if s < 300 else 0.16, 10)
    found = entropy_alarms.alarms(steps, h)
    assert rules(found) == ["entropy_rise"]
    assert found[0]["steps"] == [290, 300]
    assert found[0]["threshold"] == pytest.approx(0.05)
    # with log 10 as the ceiling the floor is 0.115 nats: quiet
    assert entropy_alarms.alarms(steps, h, max_entropy=LOG_C) == []


def test_one_abrupt_rise_is_one_alarm_and_two_are_two():
    def curve(s):
        return 0.5 + (0.5 if 100 <= s < 300 else 0.0) + (0.6 if s >= 400 else 0.0)

    steps, h = sample(curve, 10)
    found = entropy_alarms.alarms(steps, h, max_entropy=LOG_C)
    assert rules(found) == ["entropy_rise", "entropy_rise"]
    assert [a["steps"] for a in found] == [[90, 100], [390, 400]]
    assert [a["rise"] for a in found] == pytest.approx([0.5, 0.6])


def test_rise_verdict_does_not_depend_on_the_evaluation_interval():
    # a jump 1.0 → 2.2 nats at step 10, then a slow decay: every 10 steps the rise is 0 → 10;
    # every 50 steps the evaluations are 0 and 50, and the rise is 2.2·e^(-0.05) − 1.0
    def jump(s):
        return 1.0 if s < 10 else 2.2 * math.exp(-s / 1000)

    fine = entropy_alarms.alarms(*sample(jump, 10), max_entropy=LOG_C)
    coarse = entropy_alarms.alarms(*sample(jump, 50), max_entropy=LOG_C)
    assert rules(fine) == rules(coarse) == ["entropy_rise"]
    assert fine[0]["rise"] == pytest.approx(2.2 * math.exp(-0.01) - 1.0)
    assert coarse[0]["steps"] == [0, 50]
    assert coarse[0]["rise"] == pytest.approx(2.2 * math.exp(-0.05) - 1.0)

    # a steady rise of 0.4 nats over the whole run is 0.04 nats per 10 % of training: quiet at
    # every interval, although consecutive evaluations 250 steps apart differ by 0.2 (+100 %)
    def drift(s):
        return 0.2 + 0.4 * s / T

    for every in (10, 50, 250):
        assert entropy_alarms.alarms(*sample(drift, every), max_entropy=LOG_C) == [], every


# --------------------------------------------------------------------------- (b) at the ceiling


def falling_loss(s_first: float = 1.0, s_last: float = 0.1) -> np.ndarray:
    """Per-step training loss falling linearly from ``s_first`` (step 1) to ``s_last`` (T)."""
    return np.linspace(s_first, s_last, T)


def test_stuck_at_the_ceiling_while_the_loss_falls_fires():
    steps, h = sample(lambda s: 0.99 * LOG_C, 10)
    loss = falling_loss()
    found = entropy_alarms.alarms(steps, h, train_loss=loss, max_entropy=LOG_C)
    assert rules(found) == ["stuck_at_ceiling"]
    alarm = found[0]
    assert alarm["steps"] == [375, 500]  # the last 25 % of 500 steps
    assert alarm["min_fraction_of_ceiling"] == pytest.approx(0.99)
    # loss_i = 1 − 0.9·i/499, i = 0..499; the first and last 50 steps have means at i = 24.5
    # and i = 474.5
    assert alarm["train_loss_first"] == pytest.approx(1 - 0.9 * 24.5 / 499)
    assert alarm["train_loss_last"] == pytest.approx(1 - 0.9 * 474.5 / 499)


@pytest.mark.parametrize(
    ("curve", "loss"),
    [
        (lambda s: 0.99 * LOG_C, np.full(T, 0.5)),  # at the ceiling but the loss is flat
        (lambda s: 0.85 * LOG_C, falling_loss()),  # falling loss, entropy below 90 % of log C
        (lambda s: 0.99 * LOG_C if s < 350 else 0.5, falling_loss()),  # left the ceiling
    ],
)
def test_stuck_rule_stays_quiet_otherwise(curve, loss):
    steps, h = sample(curve, 10)
    assert entropy_alarms.alarms(steps, h, train_loss=loss, max_entropy=LOG_C) == []


def test_stuck_rule_needs_the_ceiling_and_the_loss():
    steps, h = sample(lambda s: 0.99 * LOG_C, 10)
    assert entropy_alarms.alarms(steps, h, train_loss=falling_loss()) == []
    assert entropy_alarms.alarms(steps, h, max_entropy=LOG_C) == []


def test_stuck_verdict_does_not_depend_on_the_evaluation_interval():
    def curve(s):
        return 0.95 * LOG_C + 0.04 * LOG_C * math.cos(s / 37)

    for every in (10, 50):
        steps, h = sample(curve, every)
        found = entropy_alarms.alarms(steps, h, train_loss=falling_loss(), max_entropy=LOG_C)
        assert rules(found) == ["stuck_at_ceiling"], every


# --------------------------------------------------------------------------- (c) NLL up, H down


def later_half(first: float, last: float):
    """Flat until T/2, then linear from ``first`` to ``last`` at T (breakpoints at multiples
    of 50, so sampling every 10 or 50 steps gives the same interpolated curve)."""
    return lambda s: first if s <= T / 2 else first + (last - first) * (s - T / 2) / (T / 2)


def band_means(first: float, last: float) -> tuple[float, float]:
    """Means over [250, 300] and [450, 500] of :func:`later_half`: the curve at 10 % and 90 %
    of the later half."""
    return first + (last - first) * 0.1, first + (last - first) * 0.9


@pytest.mark.parametrize("every", [10, 50])
def test_nll_up_while_entropy_down_fires(every):
    # the review's deterministic VIB: NLL 0.161 → 0.167, entropy 0.108 → 0.072
    steps, nll = sample(later_half(0.161, 0.167), every)
    _, h = sample(later_half(0.108, 0.072), every)
    found = entropy_alarms.alarms(steps, h, nll_val=nll, max_entropy=LOG_C)
    assert rules(found) == ["nll_up_entropy_down"]
    alarm = found[0]
    nll_a, nll_b = band_means(0.161, 0.167)  # 0.1616 → 0.1664: +0.0048 (+3.0 %)
    h_a, h_b = band_means(0.108, 0.072)  # 0.1044 → 0.0756: −28 %
    assert (alarm["nll_from"], alarm["nll_to"]) == pytest.approx((nll_a, nll_b))
    assert (alarm["from"], alarm["to"]) == pytest.approx((h_a, h_b))
    assert alarm["steps"] == [250, 500]
    assert alarm["bands"] == [[250, 300], [450, 500]]


@pytest.mark.parametrize(
    ("nll", "entropy"),
    [
        ((0.17, 0.16), (0.108, 0.072)),  # NLL falls with the entropy: healthy
        ((0.161, 0.167), (0.072, 0.108)),  # NLL up with the entropy up: not overconfidence
        ((0.161, 0.1625), (0.108, 0.072)),  # NLL +0.9 % (band means +0.7 %): within 2 %
        ((0.161, 0.167), (0.108, 0.104)),  # entropy −3.7 % (band means −3.0 %): within 10 %
    ],
)
def test_nll_rule_stays_quiet_otherwise(nll, entropy):
    steps, n = sample(later_half(*nll), 10)
    _, h = sample(later_half(*entropy), 10)
    assert entropy_alarms.alarms(steps, h, nll_val=n, max_entropy=LOG_C) == []


def test_nll_rule_needs_the_nll():
    steps, h = sample(later_half(0.108, 0.072), 10)
    assert entropy_alarms.alarms(steps, h, max_entropy=LOG_C) == []


# --------------------------------------------------------------------------- edges


def test_non_finite_evaluations_are_skipped_and_short_curves_get_no_alarm():
    steps, h = sample(overconfident_start(2.254), 10)
    h[5] = float("nan")
    assert rules(entropy_alarms.alarms(steps, h, max_entropy=LOG_C)) == ["entropy_rise"]
    assert entropy_alarms.alarms([0], [1.0], max_entropy=LOG_C) == []
    assert entropy_alarms.alarms([0, 10], [float("nan"), 1.0], max_entropy=LOG_C) == []


def test_bernoulli_nll_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 6))  # (K, n, D)
    targets = (rng.random(size=(4, 2, 3, 1)) > 0.5).astype(np.float32)  # (n, 2, 3, 1) images
    y = targets.reshape(4, 6)
    p = 1 / (1 + np.exp(-logits))
    expected = -(y * np.log(p) + (1 - y) * np.log1p(-p)).sum(-1)
    got = entropy_curves.bernoulli_nll(logits.astype(np.float32), targets)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# --------------------------------------------------------------------------- summary, report


def summary_block():
    """Two series through summarize: "ce" starts overconfident; "brier" sits at log C."""
    steps = list(range(0, T + 1, 10))
    rise = [overconfident_start(2.254)(s) for s in steps]
    stuck = [0.99 * LOG_C] * len(steps)
    entropy_val = np.array([rise, rise, stuck, stuck]).T  # (E, K): members 0, 1 | 2, 3
    nll_val = np.full_like(entropy_val, 0.3)
    curves = types.SimpleNamespace(
        steps=steps,
        metrics={"entropy_train": entropy_val, "entropy_val": entropy_val, "nll_val": nll_val},
    )
    history = np.repeat(falling_loss()[:, None], 4, axis=1)
    return entropy_curves.summarize(
        curves,
        history,
        series={"ce": [0, 1], "brier": [2, 3]},
        max_entropy=LOG_C,
        loss_unit={"ce": "nats", "brier": "unitless"},
    )


def test_summarize_records_the_alarms_and_keeps_the_old_fields():
    block = summary_block()
    ce, brier = block["series"]["ce"], block["series"]["brier"]
    assert rules(ce["alarms"]) == ["entropy_rise"]  # the loss falls, but H is far from log C
    assert rules(brier["alarms"]) == ["stuck_at_ceiling"]
    assert (ce["train_loss"]["unit"], brier["train_loss"]["unit"]) == ("nats", "unitless")
    for key in ("entropy_train", "entropy_val", "nll_val", "train_loss_window", "train_loss"):
        assert key in ce
    assert set(block["rules"]) == {"entropy_rise", "stuck_at_ceiling", "nll_up_entropy_down"}
    assert block["rule"] == entropy_curves.RULE
    assert (block["rise_window_steps"], block["max_eval_gap"]) == (50.0, 10)


def test_report_says_when_evaluations_are_coarser_than_the_rise_window():
    block = summary_block()
    assert "coarser than rule (a)'s window" not in entropy_report.report_section({"r": block})
    block["max_eval_gap"] = 100  # 100 steps apart, window 50: a jump is read at 50 % of its size
    text = entropy_report.report_section({"r": block})
    assert (
        "Evaluations up to 100 steps apart are coarser than rule (a)'s window of 50 steps" in text
    )
    assert "at 50% of its size" in text


def test_report_lists_every_series_and_says_no_alarm():
    block = summary_block()
    quiet = dict(block["series"]["ce"], alarms=[])
    block["series"]["quiet"] = quiet
    text = entropy_report.report_section({"digits": block})
    assert "| ce | **(a) entropy rise** | 0–10 |" in text
    assert "| brier | **(b) stuck near max entropy** | 375–500 |" in text
    assert "| quiet | no alarm | — | — |" in text


def test_figure_units_log_axis_and_legend_outside():
    block = summary_block()
    fig = entropy_report.figure({"digits": block})
    entropy_ax, nll_ax, loss_ax, legend_ax = fig.axes[:4]
    twin = fig.axes[4]  # the unitless (Brier) loss has its own axis
    assert "nats" in entropy_ax.get_ylabel()
    assert "nats" in nll_ax.get_ylabel()
    assert loss_ax.get_ylabel() == "training loss (nats)"
    assert twin.get_ylabel().startswith("training loss (unitless")
    assert entropy_ax.get_xlabel() == "training step"
    # entropy from 0.99·log 10 down to 1.176·e^-0.49 ≈ 1.38: under a decade, linear axis
    assert entropy_ax.get_yscale() == "linear"
    assert legend_ax.get_legend() is not None
    assert not legend_ax.axison
    assert all(ax.get_legend() is None for ax in (entropy_ax, nll_ax, loss_ax))

    block["series"]["ce"]["entropy_val"] = np.geomspace(2.0, 0.01, len(block["steps"]))
    fig = entropy_report.figure({"digits": block})
    assert fig.axes[0].get_yscale() == "log"  # 2.0 → 0.01 spans two decades
