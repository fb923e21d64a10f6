"""The information-plane experiment: its estimates against numpy written out, and a
``--smoke`` run of the whole script (CLI, outputs, values in their valid ranges).

The smoke run uses the settings the script runs under from the command line (float32,
numpy-style rank promotion), not the float64 / strict promotion that conftest.py sets.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _compilation_cache import persistent_compilation_cache
from scipy import stats as scipy_stats

from experiments import information_plane as ip

LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- numpy references


def _entropy_bits(symbols: np.ndarray) -> float:
    """Plug-in entropy (bits) of the rows of ``symbols`` ``(n, m)``."""
    _, counts = np.unique(symbols, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log2(p)))


def _binned_reference(t, labels, width):
    """Bins of ``width`` anchored at 0 (edges at its integer multiples, none clipped)."""
    codes = np.floor(t / width).astype(np.int64)  # (n, d)
    h_t = _entropy_bits(codes)
    h_y = _entropy_bits(labels[:, None])
    h_ty = _entropy_bits(np.concatenate([codes, labels[:, None]], axis=1))
    return h_t, h_t + h_y - h_ty  # I(X;T) = H(T) for distinct inputs; I(T;Y)


def _kernel_ub_bits(h, sigma):
    sq = np.sum((h[:, None, :] - h[None, :, :]) ** 2, axis=-1)
    k = np.exp(-sq / (2.0 * sigma**2))
    return float(-np.mean(np.log(k.mean(axis=1)))) / LOG2


def _activations(rng, activation, shape):
    """Continuous activations (float32): tanh in (-1, 1) with some saturated values, ReLU with
    zeros, a few large values and a scale far from 1 (which a relative scale must not see)."""
    pre = rng.normal(0.0, 1.5, size=shape)
    if activation == "tanh":
        return np.tanh(pre).astype(np.float32)
    return (25.0 * np.maximum(pre, 0.0) * np.where(rng.random(shape) < 0.05, 4.0, 1.0)).astype(
        np.float32
    )


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("balanced", [True, False])
def test_plane_estimates_match_numpy(activation, balanced):
    """Bins of width Δ·s anchored at 0 and kernel noise σ·s, s the pooled SD of the layer,
    against numpy and the kernel bound written out on the raw activations."""
    rng = np.random.default_rng(0)
    delta, frac = 1.0, 0.3  # coarse bins: many collisions, a non-trivial estimate
    n, d = 48, 3
    labels = np.repeat(np.arange(3), n // 3) if balanced else rng.integers(0, 3, n)
    labels = rng.permutation(labels).astype(np.int32)
    acts = _activations(rng, activation, (2, 2, n, d))
    got = ip.plane_estimates(acts, labels, bin_width=delta, kernel_width=frac)
    for name in (
        "ixt_binning",
        "ity_binning",
        "ixt_kernel",
        "ity_kernel",
        "activation_sd",
        "max_activation",
    ):
        assert got[name].shape == (2, 2), name
    for i in range(2):
        for j in range(2):
            t = acts[i, j].astype(np.float64)
            s = t.std()  # pooled over images and units, ddof = 0
            assert got["activation_sd"][i, j] == pytest.approx(s, rel=1e-6)
            ixt, ity = _binned_reference(t, labels, delta * s)
            assert got["ixt_binning"][i, j] == pytest.approx(ixt, abs=1e-5)
            assert got["ity_binning"][i, j] == pytest.approx(ity, abs=1e-5)
            ub = _kernel_ub_bits(t, frac * s)
            cond = sum(
                np.mean(labels == c) * _kernel_ub_bits(t[labels == c], frac * s)
                for c in np.unique(labels)
            )
            assert got["ixt_kernel"][i, j] == pytest.approx(ub, rel=1e-4)
            assert got["ity_kernel"][i, j] == pytest.approx(ub - cond, abs=1e-4)
            assert got["max_activation"][i, j] == pytest.approx(t.max())
    # Coarse bins must lose information relative to the ceiling log2 n (non-trivial case).
    assert np.all(got["ixt_binning"] < math.log2(n) - 0.1)


def test_relative_scales_ignore_the_layers_scale():
    """Multiplying a layer by a constant moves neither estimate (the scale is relative); at a
    fixed absolute bin width the same change would move I(X;T) a lot."""
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(4), 25).astype(np.int32)
    acts = rng.normal(size=(100, 2)).astype(np.float32)
    base = ip.plane_estimates(acts, labels, bin_width=0.5, kernel_width=0.3)
    grown = ip.plane_estimates(40.0 * acts, labels, bin_width=0.5, kernel_width=0.3)
    for name in ("ixt_binning", "ity_binning"):
        assert grown[name] == pytest.approx(base[name], abs=1e-9)
    for name in ("ixt_kernel", "ity_kernel"):
        assert grown[name] == pytest.approx(base[name], abs=1e-4)
    assert grown["activation_sd"] == pytest.approx(40.0 * base["activation_sd"], rel=1e-6)
    absolute = [
        _binned_reference(a.astype(np.float64), labels, 0.5)[0] for a in (acts, 40.0 * acts)
    ]
    assert absolute[1] - absolute[0] > 1.0


def test_saturation_fractions():
    tanh = np.array([[0.995, 0.0], [-0.999, 0.5], [1.0, -0.2], [0.999, 0.98]])  # (n=4, d=2)
    got = ip.saturation(tanh, "tanh")
    assert got["saturated_fraction"] == pytest.approx(4 / 8)
    assert got["dead_units"] == pytest.approx(1 / 2)  # unit 0 saturated on every image
    relu = np.array([[0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])  # unit 0 dead
    got = ip.saturation(relu, "relu")
    assert got["saturated_fraction"] == pytest.approx(4 / 6)
    assert got["dead_units"] == pytest.approx(1 / 3)
    batched = ip.saturation(np.stack([relu, np.ones_like(relu)]), "relu")
    assert batched["dead_units"] == pytest.approx([1 / 3, 0.0])
    assert ip.saturation(relu, "gelu") == {}


def test_end_slope_is_least_squares_over_the_last_quarter():
    steps = np.arange(0, 2001, 100)
    rng = np.random.default_rng(2)
    # Flat, then a slope of 0.5 bits per 1000 steps from step 1500, plus noise.
    curves = 3.0 + np.where(steps >= 1500, 0.0005 * (steps - 1500), 0.0)[None]
    curves = curves + rng.normal(0, 0.01, (3, len(steps)))
    got = ip.end_slope(curves, steps)
    tail = steps >= 1500
    ref = [1000 * np.polyfit(steps[tail], c[tail], 1)[0] for c in curves]
    assert got == pytest.approx(ref, rel=1e-9)
    assert got == pytest.approx(0.5, abs=0.1)


def test_measurement_indices_balanced_and_deterministic():
    labels = np.array([0] * 7 + [1] * 5 + [2] * 9)
    idx = ip.measurement_indices(labels, per_class=6, seed=3)
    assert np.array_equal(idx, ip.measurement_indices(labels, per_class=6, seed=3))
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert np.bincount(labels[idx]).tolist() == [5, 5, 5]  # capped by the smallest class
    assert np.bincount(labels[ip.measurement_indices(labels, 3, seed=0)]).tolist() == [3, 3, 3]


def test_sweep_estimates_equal_plane_estimates_per_setting():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 8).astype(np.int32)
    config = ip.Config(bin_widths=(2.0, 0.5), kernel_widths=(1.0, 0.3))
    for activation in ("tanh", "relu"):
        acts = _activations(rng, activation, (2, 24, 3))
        got = ip.sweep_estimates(acts, labels, activation, config)
        assert sorted(k[4:] for k in got if k.startswith("ixt/")) == sorted(config.settings())
        np.testing.assert_allclose(got["activation_sd"], acts.astype(np.float64).std((-2, -1)))
        np.testing.assert_allclose(
            got["saturated_fraction"], ip.saturation(acts, activation)["saturated_fraction"]
        )
        for b, k in zip(config.bin_widths, config.kernel_widths, strict=True):
            ref = ip.plane_estimates(acts, labels, bin_width=b, kernel_width=k)
            for q in ("ixt", "ity"):
                np.testing.assert_allclose(got[f"{q}/binning/Δ={b:g}s"], ref[f"{q}_binning"])
                np.testing.assert_allclose(got[f"{q}/kernel/σ={k:g}s"], ref[f"{q}_kernel"])


def _t_interval(x):
    x = np.asarray(x, np.float64)
    half = scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean() - half, x.mean() + half


def test_layer_summary_verdicts_and_intervals():
    steps = np.array([0, 10, 20, 30])
    ceiling = 10.0
    ity = np.zeros((3, 4))
    # Rises from 4 to a peak, then drops by about 2 bits in every seed: compresses.
    falls = np.array([[4.0, 8.0, 7.0, 6.0], [4.5, 8.2, 7.5, 6.1], [3.8, 7.9, 6.0, 5.9]])
    lay = ip.layer_summary(falls, ity, steps, ceiling)
    drops = falls[:, 1:].max(1) - falls[:, -1]
    assert (lay["compression_bits"]["low"], lay["compression_bits"]["high"]) == pytest.approx(
        _t_interval(drops)
    )
    assert lay["verdict"] == "compresses"
    assert lay["fitting_visible"] is True
    assert lay["ixt_peak_step"] == 10
    # Keeps rising, off the ceiling: does not compress.
    rises = np.array([[1.0, 2.0, 3.0, 4.0], [1.1, 2.2, 3.1, 4.2], [0.9, 1.8, 2.9, 3.9]])
    lay = ip.layer_summary(rises, ity, steps, ceiling)
    assert lay["verdict"] == "does not compress"
    # ... within the steps trained: it is still rising at the end (the last two evaluations
    # are the last quarter here), about 100 bits per 1000 steps.
    assert lay["end_trend"] == "rising"
    slopes = 1000 * (rises[:, -1] - rises[:, -2]) / 10
    lo_hi = (lay["end_slope_bits_per_1000"]["low"], lay["end_slope_bits_per_1000"]["high"])
    assert lo_hi == pytest.approx(_t_interval(slopes))
    # Pinned at the ceiling from step 0: undetermined, and no fitting phase can show.
    pinned = np.full((3, 4), ceiling - 0.01)
    lay = ip.layer_summary(pinned, ity, steps, ceiling)
    assert lay["verdict"] == "at the ceiling"
    assert lay["end_trend"] == "no significant trend"
    assert lay["initial_at_ceiling"] is True
    assert lay["fitting_visible"] is False
    # One seed drops, the others do not: the interval straddles the threshold.
    mixed = np.array([[1.0, 5.0, 5.0, 2.0], [1.0, 5.0, 5.0, 5.0], [1.0, 5.0, 5.0, 5.0]])
    assert ip.layer_summary(mixed, ity, steps, ceiling)["verdict"] == "inconclusive"


# --------------------------------------------------------------------------- smoke run


def test_smoke_run(tmp_path, script_jax_config):
    out = tmp_path / "ip"
    # A program the run compiles twice (the same for both activations) is compiled once.
    with persistent_compilation_cache(tmp_path / "jax_cache"):
        assert ip.main(["--smoke", "--out", str(out), "--no-progress"]) == 0
    with open(out / "results.json") as f:
        r = json.load(f)
    report = (out / "report.md").read_text()
    assert report.startswith("# Information plane")
    assert f"log2 n = {math.log2(r['num_measured']):.3f}" in report
    for name in ("information_plane", "ixt_vs_step", "saturation"):
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 2000
    assert r["smoke"] is True
    assert set(r["entropy_curves"]) == {"tanh", "relu"}
    assert (out / "entropy_curves.png").exists()
    cfg = r["config"]
    n = r["num_measured"]
    assert n == 10 * cfg["per_class"]
    assert r["log2_n"] == pytest.approx(math.log2(n))
    assert r["h_y_bits"] == pytest.approx(math.log2(10))  # balanced measurement set
    assert r["settings"] == [f"binning/Δ={b:g}s" for b in cfg["bin_widths"]] + [
        f"kernel/σ={v:g}s" for v in cfg["kernel_widths"]
    ]
    assert f"within the {cfg['steps']} steps trained" in report
    assert set(r["activations"]) == {"tanh", "relu"}
    eps = 1e-4
    for act, a in r["activations"].items():
        assert a["eval_steps"] == [0, cfg["eval_every"], cfg["steps"]]
        if act == "tanh":
            assert a["max_activation_seen"] <= 1.0
        # Per layer: the spread the scales are relative to, and the saturation (fractions).
        layers = a["layers"]
        assert set(layers) == {"activation_sd", "saturated_fraction", "dead_units"}
        for name, block in layers.items():
            curve = np.asarray(block["curve"])
            assert curve.shape == (cfg["depth"], 3)
            assert np.all(curve >= 0)
            if name != "activation_sd":
                assert np.all(curve <= 1)
                assert len(block["final"]) == cfg["depth"]
        # A unit dead on every image is among the saturated values: dead <= saturated.
        dead = np.asarray(layers["dead_units"]["curve"])
        assert np.all(dead <= np.asarray(layers["saturated_fraction"]["curve"]) + 1e-12)
        assert 0.0 <= a["final_test_accuracy"]["mean"] <= 1.0
        for setting in r["settings"]:
            s = a["settings"][setting]
            ixt, ity = np.asarray(s["ixt"]), np.asarray(s["ity"])
            per_seed = np.asarray(s["per_seed_ixt"])
            assert ixt.shape == ity.shape == (cfg["depth"], 3)
            assert per_seed.shape == (cfg["seeds"], cfg["depth"], 3)
            np.testing.assert_allclose(per_seed.mean(0), ixt)
            assert np.all(np.isfinite(ixt))
            assert np.all(np.isfinite(ity))
            assert np.all((ixt >= -eps) & (ixt <= r["log2_n"] + eps))
            if setting.startswith("binning"):
                # Plug-in: I(T;Y) <= min(H(T), H(Y)), and H(T) = I(X;T) here.
                assert np.all((ity >= -eps) & (ity <= r["h_y_bits"] + eps))
                assert np.all(ity <= ixt + eps)
            for i, lay in enumerate(s["layers"]):
                assert lay["ixt_final"]["mean"] == pytest.approx(ixt[i, -1])
                assert lay["end_trend"] in ("rising", "falling", "no significant trend")
                assert lay["verdict"] in (
                    "compresses",
                    "does not compress",
                    "at the ceiling",
                    "inconclusive",
                )
    # The finest tanh bins put every measured image in its own bin at step 0: at the ceiling.
    fine = r["activations"]["tanh"]["settings"][f"binning/Δ={min(cfg['bin_widths']):g}s"]
    assert fine["layers"][0]["initial_at_ceiling"] is True
