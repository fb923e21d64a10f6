"""The main experiment end to end: outputs, determinism, kill-and-resume, 2 processes × 2
devices, errors.

The experiment runs in subprocesses (``tests/_main_experiment.py``) so it sees a fresh JAX (no
x64 from conftest, its own device count); the smoke runs are session fixtures shared with the
multi-host test (``tests/experiments/conftest.py``). Numbers are checked against numpy
re-computations from the saved member logits.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import socket
import subprocess
import sys

import _main_experiment as main_exp
import numpy as np
import pytest
from scipy.special import logsumexp

from experiments.core import data as data_lib
from experiments.core.cli import ConfigError
from experiments.core.training import make_mesh


@pytest.fixture
def smoke_run(main_runs) -> pathlib.Path:
    """The reference smoke run (``tests/experiments/conftest.py::main_runs``)."""
    assert main_runs.codes["reference"] == 0, main_runs.stderr["reference"][-3000:]
    return main_runs.work / "a"


def _after(main_runs, name: str) -> pathlib.Path:
    """The ``results.json`` that invocation ``name`` left in its output directory."""
    out = {n: o for n, o, _ in main_exp.MAIN_INVOCATIONS}[name]
    return main_runs.work / f"{out}.after{main_runs.index[name]}.json"


# ----------------------------------------------------------------------------- in-process


def test_data_order_is_a_pure_function_of_seed_member_and_step():
    n, batch = 37, 8  # batches straddle epoch boundaries
    steps = [data_lib.batch_indices(3, 1, s, n=n, batch_size=batch) for s in range(10)]
    again = [data_lib.batch_indices(3, 1, s, n=n, batch_size=batch) for s in reversed(range(10))]
    np.testing.assert_array_equal(np.stack(steps), np.stack(again[::-1]))
    flat = np.concatenate(steps)  # 80 positions = 2 full epochs + 6
    for epoch in range(2):
        np.testing.assert_array_equal(np.sort(flat[epoch * n : (epoch + 1) * n]), np.arange(n))
    assert not np.array_equal(flat[:n], flat[n : 2 * n])  # reshuffled each epoch
    other = data_lib.batch_indices(3, 2, 0, n=n, batch_size=batch)
    assert not np.array_equal(other, steps[0])  # members see different orders


def test_mesh_requires_members_to_be_a_multiple_of_devices():
    import jax

    fake_eight = [jax.devices()[0]] * 8  # the check runs before the mesh is built
    with pytest.raises(ConfigError, match=r"members \(12\).*multiple.*devices \(8\)"):
        make_mesh(12, devices=fake_eight)
    assert issubclass(ConfigError, ValueError)
    n = len(jax.devices())
    assert make_mesh(8 * n).shape["ensemble"] == n


def test_shifts_change_images_monotonically():
    data = data_lib.load_digits_dataset(seed=0)
    assert set(np.unique(data.y_train)) == set(range(8))
    assert set(np.unique(data.y_heldout)) == {8, 9}
    diffs = {
        kind: [
            float(np.abs(data_lib.shift(data.x_test, kind, s) - data.x_test).mean())
            for s in range(6)
        ]
        for kind in data_lib.SHIFTS
    }
    for kind, d in diffs.items():
        assert d[0] == 0.0, kind
        assert all(b > a for a, b in itertools.pairwise(d)), (kind, d)


# ----------------------------------------------------------------------------- subprocesses


def test_smoke_run_writes_all_outputs(smoke_run: pathlib.Path):
    for name in (
        "shift",
        "ood_auroc",
        "ensemble_size",
        "accuracy_confidence",
        "entropy_histograms",
        "reliability",
        "entropy_curves",
        "risk_coverage",
        "methods",
    ):
        png = (smoke_run / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert len(png) > 5000, name
    report = (smoke_run / "report.md").read_text()
    for heading in (
        "## What the results support",
        "## The declared comparisons",
        "## In-distribution test set",
        "## Out of distribution",
        "## OOD detection with intervals",
        "## Shift: metrics against severity",
        "## Accuracy against confidence",
        "## Ensemble size",
        "## The rotation failure, probed",
        "## Entropy through training",
        "## Selective classification and misclassification detection",
        "## The seed's claim",
        "## Methods at a stated budget",
    ):
        assert heading in report, heading
    for column in ("AUROC ↑", "AUPR ↑", "FPR@95 ↓"):
        assert column in report
    for score in (
        "max-softmax",
        "energy",
        "temperature-scaled single model",
        "k-NN feature",
        "ensemble energy",
        "ensemble k-NN feature distance",
    ):
        assert score in report
    full = json.loads((smoke_run / "results.json").read_text())
    assert {"started_utc", "finished_utc", "resumed_from_step"} <= set(full["timing"])
    for key in ("jax", "flax", "optax", "entjax"):
        assert full["versions"][key]
    assert full["devices"]["device_count"] == 1
    assert (full["config"]["members"], full["config"]["seeds"]) == (4, 2)
    assert full["config"]["model"] == "mlp"  # the dataset default, resolved in the config
    assert full["smoke"] is True
    assert full["experiment"] == "ensemble_entropy"
    assert not list(smoke_run.glob(".*.tmp"))  # atomic writes leave no temporaries
    ood = full["ood"]
    assert {"heldout_classes", "class_blends", "noise", "rotation@5", "pixel_dropout@2"} <= set(ood)
    assert ood["heldout_classes"]["num_examples"] == 354  # every image of digits 8 and 9
    assert ood["class_blends"]["num_examples"] == 289  # one per test image
    assert ood["noise"]["headline"]
    assert ood["class_blends"]["headline"]
    assert not ood["rotation@2"]["headline"]
    assert full["ensemble_size"]["k"] == [1, 2, 4]
    test = full["in_distribution"]["test"]
    assert len(test["single"]["accuracy"]["values"]) == 8  # R·K members
    assert len(test["ensemble"]["accuracy"]["values"]) == 2  # R ensembles
    # training did something: the ensembles beat chance (1/8) by a wide margin
    assert test["ensemble"]["accuracy"]["mean"] > 0.5
    # entropy through training: every evaluation, each ensemble's decomposition, the figure
    block = full["entropy_curves"]["digits"]
    assert block["steps"] == list(range(0, 41, 10))
    assert set(block["series"]) == {"deep-ensemble members", "snapshot runs", "MC-dropout runs"}
    series = block["series"]["deep-ensemble members"]
    assert series["entropy_val"][-1] < series["entropy_val"][0]  # the models grew confident
    mi = np.asarray(block["ensembles"]["mutual_information_val"])
    assert mi.shape == (2, 5)
    assert np.all(mi >= -1e-6)


def _load_predictions(run: pathlib.Path):
    pred = np.load(run / "predictions.npz")
    names = [str(n) for n in pred["set_names"]]
    sl = {
        n: slice(int(a), int(b))
        for n, a, b in zip(names, pred["set_start"], pred["set_stop"], strict=True)
    }
    return pred, sl


def test_smoke_numbers_match_numpy_recomputation(smoke_run: pathlib.Path):
    """Recompute reported numbers from the saved member logits with numpy / scipy / sklearn."""
    from scipy import stats as st
    from sklearn.metrics import average_precision_score, roc_auc_score

    results = main_exp.results(smoke_run)
    pred, sl = _load_predictions(smoke_run)
    r, k = int(pred["ensembles"]), int(pred["members_per_ensemble"])
    logits = pred["member_logits"].astype(np.float64)  # (R·K, n, C)
    log_p = logits - logsumexp(logits, axis=-1, keepdims=True)
    log_mix = logsumexp(log_p.reshape(r, k, *log_p.shape[1:]), axis=1) - math.log(k)  # (R, n, C)
    y = pred["labels"][sl["test"]]
    test = results["in_distribution"]["test"]

    # ensemble accuracy and NLL per ensemble, then the t-interval over the R ensembles
    acc = (log_mix[:, sl["test"]].argmax(-1) == y).mean(axis=1)
    np.testing.assert_allclose(test["ensemble"]["accuracy"]["values"], acc, atol=1e-6)
    nll_ex = -np.take_along_axis(log_mix[:, sl["test"]], y[None, :, None], -1)[..., 0]  # (R, n)
    nll = nll_ex.mean(1)
    np.testing.assert_allclose(test["ensemble"]["nll"]["values"], nll, rtol=1e-4)
    low, high = st.t.interval(0.95, r - 1, loc=nll.mean(), scale=st.sem(nll))
    assert test["ensemble"]["nll"]["seeds_interval"][0] == pytest.approx(low, rel=1e-4)
    assert test["ensemble"]["nll"]["seeds_interval"][1] == pytest.approx(high, rel=1e-4)
    # the reported interval adds the test examples: ensembles drawn with replacement, then
    # the examples (the same for every ensemble), 2000 resamples written out; the interval from
    # those draws is stats.hierarchical's (tested against scipy in test_experiments_stats.py)
    from experiments.core import stats

    seed = results["config"]["seed"]
    rows = stats.row_counts(r, seed=seed, num_resamples=2000)
    idx = stats.bootstrap_indices(len(y), seed=seed, num_resamples=2000)
    draws = [nll_ex[np.ix_(np.repeat(np.arange(r), rows[b]), idx[b])].mean() for b in range(2000)]
    expected = stats.hierarchical(np.asarray(draws), nll_ex.mean(), r, bounds=(0.0, None))
    cell = test["ensemble"]["nll"]
    assert cell["mean"] == pytest.approx(nll_ex.mean(), rel=1e-4)
    assert (cell["low"], cell["high"]) == pytest.approx((expected["low"], expected["high"]), 1e-4)

    # the declared family: Holm over every test, OOD tests only on sets raw pixels do not solve
    fam = results["comparisons"]
    tests = fam["family"]
    assert fam["size"] == len(tests) >= 3
    ranked = [n for n, b in results["ood"].items() if b["ranked"]]
    assert ranked == fam["ranked_sets"]
    assert all(results["ood"][n]["raw_pixel_knn_auroc"] < 0.95 for n in ranked)
    near = [n for n, b in results["ood"].items() if b["raw_pixel_knn_auroc"] < 0.8 and "@" not in n]
    assert fam["near_ood_sets"] == near
    assert [n for n, b in results["ood"].items() if b["near_ood"]] == near
    ood_tests = {(t["set"], t["comparison"]) for t in tests.values() if t["kind"] == "ood"}
    assert ood_tests == {(n, c) for n in ranked for c in fam["declared_ood"]}
    p = np.array([t["p"] for t in tests.values()])
    order = np.argsort(p)
    holm = np.maximum.accumulate(np.minimum(1, (len(p) - np.arange(len(p))) * p[order]))
    got = np.array([t["p_holm"] for t in tests.values()])[order]
    np.testing.assert_allclose(got, holm, rtol=1e-12)
    assert [t["confirmed"] for t in tests.values()] == [t["p_holm"] <= 0.05 for t in tests.values()]
    for name, block in results["ood"].items():
        if not block["ranked"]:
            assert block["comparisons"] == {}, name

    # ECE of member 0, 15 equal-width bins, written out
    p0 = np.exp(log_p[0, sl["test"]])
    conf, pred_y = p0.max(-1), p0.argmax(-1)
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(
        abs(np.mean(pred_y[bins == b] == y[bins == b]) - conf[bins == b].mean())
        * np.mean(bins == b)
        for b in range(15)
        if np.any(bins == b)
    )
    assert test["single"]["ece"]["values"][0] == pytest.approx(ece, abs=1e-4)

    # OOD: ensemble-0 total entropy on noise vs test, by scikit-learn and a numpy FPR@95
    p_mix = np.exp(log_mix[0])
    h = -np.sum(p_mix * log_mix[0], axis=-1)
    h_in, h_out = h[sl["test"]], h[sl["noise"]]
    labels = np.r_[np.zeros(len(h_in)), np.ones(len(h_out))]
    block = results["ood"]["noise"]["scores"]["ensemble/total_entropy"]
    auroc = [roc_auc_score(labels, np.r_[h_in, h_out])]
    aupr = [average_precision_score(labels, np.r_[h_in, h_out])]
    thresholds = np.sort(h_out)[::-1]  # the highest threshold catching 95% of the OOD set
    t95 = next(t for t in thresholds if np.mean(h_out >= t) >= 0.95)
    fpr = [np.mean(h_in >= t95)]
    for e in range(1, r):
        pm = np.exp(log_mix[e])
        he = -np.sum(pm * log_mix[e], axis=-1)
        auroc.append(roc_auc_score(labels, np.r_[he[sl["test"]], he[sl["noise"]]]))
        aupr.append(average_precision_score(labels, np.r_[he[sl["test"]], he[sl["noise"]]]))
        out = he[sl["noise"]]
        t = next(t for t in np.sort(out)[::-1] if np.mean(out >= t) >= 0.95)
        fpr.append(np.mean(he[sl["test"]] >= t))
    assert block["auroc"]["mean"] == pytest.approx(np.mean(auroc), abs=2e-3)
    assert block["aupr"]["mean"] == pytest.approx(np.mean(aupr), abs=2e-3)
    assert block["fpr95"]["mean"] == pytest.approx(np.mean(fpr), abs=2e-3)

    # the ensemble's energy: the mean of its members' −logsumexp(z), per ensemble
    energy = -logsumexp(logits, axis=-1).reshape(r, k, -1).mean(axis=1)  # (R, n)
    auroc = [roc_auc_score(labels, np.r_[e[sl["test"]], e[sl["noise"]]]) for e in energy]
    block = results["ood"]["noise"]["scores"]["ensemble/energy"]
    assert block["auroc"]["mean"] == pytest.approx(np.mean(auroc), abs=2e-3)

    # temperature scaling lowers the validation NLL it was fit on, member by member
    yv = pred["labels"][sl["val"]]
    temps = np.asarray(results["temperature"]["single_values"])
    lv = logits[:, sl["val"]]
    raw = -np.take_along_axis(log_p[:, sl["val"]], yv[None, :, None], -1)[..., 0].mean(1)
    scaled_lp = lv / temps[:, None, None]
    scaled_lp -= logsumexp(scaled_lp, axis=-1, keepdims=True)
    scaled = -np.take_along_axis(scaled_lp, yv[None, :, None], -1)[..., 0].mean(1)
    assert np.all(scaled <= raw + 1e-6)
    assert np.any(scaled < raw - 1e-4)


def _np_aurc(confidence: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """AURC and E-AURC written out: most confident first, a tie group of ``g`` with ``e``
    errors giving ``m·e/g`` errors to its first ``m`` (the expected value of a random order)."""
    n = len(confidence)
    order = np.argsort(-confidence, kind="stable")
    c, err = confidence[order], 1.0 - correct[order]
    errors, total, start = np.empty(n), 0.0, 0
    while start < n:
        stop = start + 1
        while stop < n and c[stop] == c[start]:
            stop += 1
        g, e = stop - start, err[start:stop].sum()
        errors[start:stop] = total + np.arange(1, g + 1) * e / g
        total, start = total + e, stop
    k = np.arange(1, n + 1)
    aurc = float(np.mean(errors / k))
    right = int(correct.sum())
    oracle = float(np.sum((k[right:] - right) / k[right:]) / n)
    return aurc, aurc - oracle


def _np_entropy(log_p: np.ndarray) -> np.ndarray:
    return -np.sum(np.exp(log_p) * log_p, axis=-1)


def test_selective_seed_claim_and_features_match_numpy(smoke_run: pathlib.Path):
    """AURC / E-AURC, the misclassification AUROC, the seed's-claim fractions and the k-NN
    score, recomputed from ``predictions.npz`` (member logits and features) with numpy/sklearn."""
    from sklearn.metrics import roc_auc_score

    results = main_exp.results(smoke_run)
    pred, sl = _load_predictions(smoke_run)
    r, k = int(pred["ensembles"]), int(pred["members_per_ensemble"])
    logits = pred["member_logits"].astype(np.float64)
    log_p = logits - logsumexp(logits, axis=-1, keepdims=True)  # (R·K, n, C)
    grouped = log_p.reshape(r, k, *log_p.shape[1:])
    log_mix = logsumexp(grouped, axis=1) - math.log(k)  # (R, n, C)
    t, y = sl["test"], pred["labels"][sl["test"]]

    # selective classification on the test set: confidence = max probability
    block = results["selective"]["test"]
    for variant, lp in (("single", log_p), ("ensemble", log_mix)):
        aurc, eaurc, auroc_msp, auroc_h = [], [], [], []
        for row in lp[:, t]:
            correct = row.argmax(-1) == y
            a, e = _np_aurc(np.exp(row.max(-1)), correct)
            aurc.append(a)
            eaurc.append(e)
            wrong = ~correct
            auroc_msp.append(roc_auc_score(wrong, 1.0 - np.exp(row.max(-1))))
            auroc_h.append(roc_auc_score(wrong, _np_entropy(row)))
        np.testing.assert_allclose(block[variant]["aurc"]["values"], aurc, atol=1e-4)
        np.testing.assert_allclose(block[variant]["excess_aurc"]["values"], eaurc, atol=1e-4)
        mis = block[variant]["misclassification_auroc"]
        np.testing.assert_allclose(mis["max_softmax"]["values"], auroc_msp, atol=1e-3)
        np.testing.assert_allclose(mis["entropy"]["values"], auroc_h, atol=1e-3)
        assert block[variant]["aurc"]["mean"] == pytest.approx(np.mean(aurc), abs=1e-4)
    # the ensemble's mutual information as a misclassification score
    h_members = _np_entropy(grouped)  # (R, K, n)
    mi = _np_entropy(log_mix) - h_members.mean(axis=1)
    wrong = log_mix[:, t].argmax(-1) != y
    expected = [roc_auc_score(w, m[t]) for w, m in zip(wrong, mi, strict=True)]
    got = block["ensemble"]["misclassification_auroc"]["mutual_information"]["values"]
    np.testing.assert_allclose(got, expected, atol=1e-3)

    # the seed's claim: per ensemble, the fraction of inputs with H(mixture) > max / mean H
    claim = results["seed_claim"]["sets"]
    assert set(claim) == {n for n in sl if n != "val"}
    h_mix = _np_entropy(log_mix)
    for name, s in sl.items():
        if name == "val":
            continue
        n = s.stop - s.start
        above_max = (h_mix[:, s] > h_members[:, :, s].max(axis=1)).mean(axis=1)
        got = claim[name]["above_max_member"]
        np.testing.assert_allclose(got["per_ensemble"], above_max, atol=2.0 / n)
        assert got["mean"] == pytest.approx(above_max.mean(), abs=2.0 / n)
        assert got["low"] <= got["mean"] <= got["high"]
        # Jensen: the mixture's entropy is never below the mean member entropy
        assert np.all(h_mix[:, s] >= h_members[:, :, s].mean(axis=1) - 1e-9)
        assert claim[name]["jensen_violations"] == 0
        assert claim[name]["above_mean_member"]["mean"] == pytest.approx(1.0, abs=2.0 / n)

    # the k-NN feature distance, recomputed from the stored (float16) penultimate features
    features, train = pred["member_features"], pred["member_train_features"]
    assert features.shape[:2] == logits.shape[:2]
    assert train.shape[0] == r * k
    knn_k = int(pred["knn_k"])
    assert knn_k == results["config"]["knn_k"]

    def knn(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
        ref = reference.astype(np.float64)
        ref /= np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
        qry = queries.astype(np.float64)
        qry /= np.maximum(np.linalg.norm(qry, axis=1, keepdims=True), 1e-12)
        d = np.linalg.norm(qry[:, None, :] - ref[None, :, :], axis=-1)
        return np.sort(d, axis=1)[:, knn_k - 1]

    noise = sl["noise"]
    labels = np.r_[np.zeros(t.stop - t.start), np.ones(noise.stop - noise.start)]
    aurocs = [
        roc_auc_score(
            labels, np.r_[knn(train[m], features[m, t]), knn(train[m], features[m, noise])]
        )
        for m in range(r * k)
    ]
    reported = results["ood"]["noise"]["scores"]["single/knn_distance"]["auroc"]["mean"]
    assert reported == pytest.approx(np.mean(aurocs), abs=5e-3)
    # the ensemble's k-NN score: the mean of its members' distances
    member_knn = [
        np.r_[knn(train[m], features[m, t]), knn(train[m], features[m, noise])]
        for m in range(r * k)
    ]
    ensemble_knn = np.mean(np.reshape(member_knn, (r, k, -1)), axis=1)
    aurocs = [roc_auc_score(labels, e) for e in ensemble_knn]
    reported = results["ood"]["noise"]["scores"]["ensemble/knn_distance"]["auroc"]["mean"]
    assert reported == pytest.approx(np.mean(aurocs), abs=5e-3)


def test_methods_side_by_side_match_numpy(smoke_run: pathlib.Path):
    """The snapshot and MC-dropout ensembles: their saved member logits (R·K each) give the
    reported test accuracy and NLL, total-entropy AUROCs (scikit-learn) and seed's-claim
    fractions; the budget is the closed form; the declared family compares them with the deep
    ensemble on every ranked set; the final snapshot is the run's final model."""
    from sklearn.metrics import roc_auc_score

    results = main_exp.results(smoke_run)
    pred, sl = _load_predictions(smoke_run)
    sec = results["methods"]
    assert sec["methods"] == ["single", "deep", "snapshot", "mc_dropout"]
    r, k, steps = 2, 4, 40
    p = sec["num_params"]
    assert p == 64 * 32 + 32 + 32 * 32 + 32 + 32 * 8 + 8  # the smoke MLP (width 32, 8 classes)
    want = {"single": (1, 1), "deep": (k, k), "snapshot": (1, k), "mc_dropout": (1, k)}
    for m, (trained, passes) in want.items():
        b = sec["budget"][m]
        assert (b["models_trained"], b["test_passes"]) == (trained, passes)
        assert b["gradient_steps_x_parameters"] == trained * steps * p
    y = pred["labels"][sl["test"]]
    t, blends = sl["test"], sl["class_blends"]
    for m in ("snapshot", "mc_dropout"):
        logits = pred[f"{m}_member_logits"].astype(np.float64)
        assert logits.shape == pred["member_logits"].shape
        log_p = logits - logsumexp(logits, axis=-1, keepdims=True)
        log_mix = logsumexp(log_p.reshape(r, k, *log_p.shape[1:]), axis=1) - math.log(k)
        row = sec["rows"][m]
        acc = (log_mix[:, t].argmax(-1) == y).mean()
        nll = -np.take_along_axis(log_mix[:, t], y[None, :, None], -1)[..., 0]
        assert row["raw"]["accuracy"]["mean"] == pytest.approx(acc, abs=1e-6)
        assert row["raw"]["nll"]["mean"] == pytest.approx(nll.mean(), rel=1e-4)
        mix = np.exp(log_mix)
        total = -(mix * log_mix).sum(-1)  # (R, n)
        auroc = [
            roc_auc_score(
                np.r_[np.zeros(t.stop - t.start), np.ones(blends.stop - blends.start)],
                np.r_[total[i, t], total[i, blends]],
            )
            for i in range(r)
        ]
        got = results["ood"]["class_blends"]["scores"][f"{m}/total_entropy"]["auroc"]
        assert got["mean"] == pytest.approx(np.mean(auroc), abs=1e-6)
        member_h = -(np.exp(log_p) * log_p).sum(-1).reshape(r, k, -1)
        above = (total[:, t] > member_h[:, :, t].max(axis=1)).mean()
        assert row["seed_claim"]["test"]["above_max_member"]["mean"] == pytest.approx(above)
        assert row["seed_claim"]["test"]["jensen_violations"] == 0
        assert set(row["deep_minus_method"]) == {"accuracy", "nll", "brier"}
    # the snapshots differ from each other: K distinct cycle ends, not K copies
    snap = pred["snapshot_member_logits"][:k, t]
    assert all(not np.allclose(snap[0], snap[j]) for j in range(1, k))
    # each run's last snapshot is that run's final model: its mean validation entropy is the
    # training curve's final value for the snapshot run's slot (8 + r), not a deep member's
    curves = results["entropy_curves"]["digits"]["per_member"]["entropy_val"]
    val = sl["val"]
    for i in range(r):
        last = pred["snapshot_member_logits"][i * k + k - 1, val].astype(np.float64)
        lp = last - logsumexp(last, axis=-1, keepdims=True)
        h = -(np.exp(lp) * lp).sum(-1).mean()
        assert curves[8 + i][-1] == pytest.approx(h, rel=1e-4)
        assert all(curves[m][-1] != pytest.approx(h, rel=1e-4) for m in range(8))
    # the K MC-dropout passes are different networks: they disagree (mutual information > 0)
    mc = pred["mc_dropout_member_logits"][:k, t].astype(np.float64)
    assert all(not np.allclose(mc[0], mc[j]) for j in range(1, k))
    mi = results["ood"]["class_blends"]["scores"]["mc_dropout/mutual_information"]["mean_score"]
    assert mi["mean"] > 1e-4
    fam = results["comparisons"]["family"]
    for name in results["comparisons"]["ranked_sets"]:
        for m in ("snapshot", "mc_dropout"):
            test = fam[f"{name}: deep_minus_{m}_total_entropy"]
            assert (test["a"], test["b"]) == ("ensemble/total_entropy", f"{m}/total_entropy")


def test_without_cheap_methods_the_deep_members_are_bitwise_the_same(main_runs, smoke_run):
    """``--methods deep`` trains 8 models instead of 12; the deep members' logits, their tables
    and scores are exactly the reference run's (dropout rate 0, the ordinary schedule and the
    member-indexed keys leave them untouched), and the report has no cheap-method rows."""
    assert main_runs.codes["deep_only"] == 0, main_runs.stderr["deep_only"][-3000:]
    out = main_runs.work / "deep_only"
    deep, ref = np.load(out / "predictions.npz"), np.load(smoke_run / "predictions.npz")
    np.testing.assert_array_equal(deep["member_logits"], ref["member_logits"])
    assert "snapshot_member_logits" not in deep
    a, b = main_exp.results(out), main_exp.results(smoke_run)
    assert a["in_distribution"] == b["in_distribution"]
    for name, block in a["ood"].items():
        assert block["scores"] == {
            k: v
            for k, v in b["ood"][name]["scores"].items()
            if k.split("/")[0] in ("single", "ensemble")
        }
    assert a["methods"]["methods"] == ["single", "deep"]
    assert a["comparisons"]["size"] < b["comparisons"]["size"]
    assert set(a["comparisons"]["declared_ood"]) == {
        "mi_minus_total_entropy",
        "total_entropy_minus_single_entropy",
        "mi_minus_single_entropy",
        "total_entropy_minus_single_ts_entropy",
    }
    report = (out / "report.md").read_text()
    assert "## Methods at a stated budget: single model, deep ensemble" in report
    assert "snapshot" not in report
    assert "MC dropout" not in report


def _checkpoint(out: pathlib.Path, step: int) -> dict:
    """The training state and curves a run's checkpoint of ``step`` holds, as saved."""
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(out / "checkpoints") as manager:
        return manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()),
        )


def test_same_seed_gives_identical_results(main_runs):
    """a_again: interrupted after step 15 (exit 3), then replaced with --overwrite: a fresh run
    from step 0 (its checkpoints deleted first), interrupted after step 25 like ``interrupted``:
    the same seed gives bitwise the same parameters, optimizer state, loss history and curves at
    step 20. (That the finished numbers are the same from the same state is the resume test's:
    the resumed run retrains steps 21..40 and evaluates, and equals the reference run.)"""
    import jax

    assert main_runs.codes["again_interrupted"] == 3
    assert main_runs.codes["overwrite"] == 3, main_runs.stderr["overwrite"][-3000:]
    assert "resumed from the checkpoint" not in main_runs.stderr["overwrite"]
    assert not (main_runs.work / "a_again" / "results.json").exists()
    again = _checkpoint(main_runs.work / "a_again", 20)
    first = _checkpoint(main_runs.work / "interrupted", 20)
    assert again["meta"] == first["meta"]
    leaves_a, _ = jax.tree.flatten_with_path(again["state"])
    leaves_b, _ = jax.tree.flatten_with_path(first["state"])
    assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
    assert len(leaves_a) > 10
    for (path, x), (_, y) in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))
    # and the comparison can fail: the parameters and the loss history depend on the data
    (history,) = [
        np.asarray(x) for p, x in leaves_a if jax.tree_util.keystr(p) == "['loss_history']"
    ]
    assert len(np.unique(history[:20])) > 10


def test_interrupted_then_resumed_run_is_identical(main_runs, smoke_run: pathlib.Path):
    codes, err = main_runs.codes, main_runs.stderr
    interrupted = main_runs.work / "interrupted"  # exit 3 after step 25, left as it was
    assert codes["interrupted"] == codes["resumed_interrupted"] == 3
    assert not (interrupted / "results.json").exists()
    assert (interrupted / "checkpoints" / "20").is_dir()
    assert not (interrupted / "checkpoints" / "30").exists()
    # Resumed, it restarts from step 20 and matches the uninterrupted run exactly.
    assert codes["resume"] == 0, err["resume"][-3000:]
    assert "resumed from the checkpoint of step 20" in err["resume"]
    assert main_exp.results(_after(main_runs, "resume")) == main_exp.results(smoke_run)
    timing = json.loads(_after(main_runs, "resume").read_text())["timing"]
    assert timing["resumed_from_step"] == 20
    # Resuming the finished run re-evaluates its final checkpoint: the same numbers, exit 0.
    assert codes["resume_finished"] == 0, err["resume_finished"][-3000:]
    assert "resumed from the checkpoint of step 40" in err["resume_finished"]
    assert main_exp.results(_after(main_runs, "resume_finished")) == main_exp.results(smoke_run)
    # Resuming with another configuration is refused before anything is trained.
    assert codes["resume_other_config"] == 2
    assert "error: cannot resume from" in err["resume_other_config"]
    assert "differs in lr" in err["resume_other_config"]
    # The same command again without --resume never deletes the earlier run: one error line
    # naming --resume and --overwrite, exit 2, the run's results and checkpoints untouched.
    assert codes["rerun_refused"] == 2
    refused = [line for line in err["rerun_refused"].splitlines() if "already holds a run" in line]
    assert len(refused) == 1, err["rerun_refused"][-3000:]
    assert refused[0].startswith("error: ")
    assert "--resume" in refused[0]
    assert "--overwrite" in refused[0]
    assert (main_runs.work / "resumed" / "checkpoints" / "40").is_dir()
    assert main_exp.results(_after(main_runs, "rerun_refused")) == main_exp.results(smoke_run)


def test_members_that_do_not_divide_over_four_devices_are_refused(tmp_path):
    """2 ensembles × 3 members on 4 devices: the deep members (6) must divide over the devices,
    checked before any training (the cheap methods' runs are padded to the devices, the deep
    ones are not): one error line, exit 2, nothing written."""
    codes, stderr = main_exp.run(
        [*main_exp.SMOKE, "--out", str(tmp_path / "bad"), "--members", "3"], devices=4
    )
    assert codes == [2], stderr[-3000:]
    assert "error: the number of ensemble members (6) must be a positive multiple" in stderr
    assert "multiple of the number of devices (4)" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "bad" / "results.json").exists()


def assert_match_within_sharding_tolerance(sharded: dict, one: dict) -> None:
    """Every number of a run sharded over several devices equals the one-device run's up to
    float32 reduction order; every other leaf (counts, names, claims) exactly."""
    sharded, one = dict(sharded), dict(one)
    sharded.pop("devices")
    one.pop("devices")
    a, b = dict(main_exp.leaves(sharded)), dict(main_exp.leaves(one))
    assert a.keys() == b.keys()
    numeric = [k for k in a if isinstance(a[k], float)]
    assert len(numeric) > 500
    for key in a:
        if isinstance(a[key], float):
            # Interval bounds amplify float32 rounding by the t quantile (12.7 for 2 seeds), and
            # ECE jumps when rounding moves an example across a bin edge (1/289 of a gap); a
            # bootstrap standard error (se) spreads like the bounds.
            # Temperature-scaled values inherit the fitted T, found on a flat float32 NLL.
            bound = (
                key.endswith(("/low", "/high", "/std", "/se")) or "interval" in key or "ece" in key
            )
            bound = bound or "_ts/" in key or "temperature" in key
            tol = {"rel": 1e-3, "abs": 2e-3} if bound else {"rel": 1e-4, "abs": 1e-4}
            assert a[key] == pytest.approx(b[key], **tol), key
        else:
            assert a[key] == b[key], key


def test_a_finished_run_reloads_and_scores_new_images(smoke_run, script_jax_config):
    """``load_run`` gives the stored config and callable trained members: their logits on the
    test images equal the saved member logits, without training or deleting anything."""
    from experiments.ensemble_entropy import load_run

    before = sorted(p.relative_to(smoke_run) for p in smoke_run.rglob("*"))
    run = load_run(str(smoke_run))
    assert (run.config.members, run.config.seeds, run.step) == (4, 2, 40)
    c = run.config
    data = data_lib.load_dataset(
        c.dataset, seed=c.data_seed, heldout_classes=c.heldout_classes, data_dir=c.data_dir
    )
    pred, sl = _load_predictions(smoke_run)
    np.testing.assert_allclose(
        run.logits(data.x_test), pred["member_logits"][:, sl["test"]], rtol=1e-5, atol=1e-5
    )
    for method in ("snapshot", "mc_dropout"):
        np.testing.assert_allclose(
            run.logits(data.x_test, method),
            pred[f"{method}_member_logits"][:, sl["test"]],
            rtol=1e-5,
            atol=1e-5,
        )
    with pytest.raises(ConfigError, match="TrainedRun: this run has the methods"):
        run.logits(data.x_test, "bagging")
    features = run.features(data.x_test[:7])
    assert features.shape == (8, 7, c.width)
    assert np.isfinite(features).all()
    assert sorted(p.relative_to(smoke_run) for p in smoke_run.rglob("*")) == before


def test_an_unfinished_run_is_not_loaded(main_runs, script_jax_config):
    """A run interrupted after step 25 (last checkpoint 20 of 40) has snapshot slots of cycles
    not yet run: ``load_run`` refuses it, naming --resume, instead of returning them or failing
    with a traceback."""
    from experiments.ensemble_entropy import load_run

    with pytest.raises(ConfigError, match=r"no results.json: the run has not finished.*--resume"):
        load_run(str(main_runs.work / "interrupted"))


# ----------------------------------------------------------------------------- multi-host
#
# Multi-host: the smoke experiment as 2 JAX processes × 2 CPU devices on localhost.
#
# The two processes coordinate through ``jax.distributed`` on a free port of 127.0.0.1 (never any
# other address), shard the member axis over the 4 global devices, checkpoint into the shared
# ``--out`` and must resume an interrupted run across processes, exit 0 even when process 0
# takes longer to write its outputs than JAX's shutdown barrier waits (here shortened to 3 s,
# with process 0 delayed by 6 s: without the runner's closing barrier process 1 reaches the
# shutdown barrier first and both abort), and give the numbers of the one-device reference run
# up to float32 reduction order. It is the suite's end-to-end run over several devices: one
# process with 4 devices runs the same sharding code (mesh, shardings, orbax's sharded saves)
# and differs from this pair only where the process count matters (host transfers, barriers,
# the writer), which every one-device run takes; so only the refusal above starts one (a full
# run there would be a third cold smoke run).
#
# In this file (not its own) so that it shares the one-device session run on one xdist worker.

MH_SMOKE = ["-m", "experiments.ensemble_entropy", "--smoke", "--no-progress"]
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mh_env(devices: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(main_exp.REPO), env.get("PYTHONPATH")])),
        **main_exp.cache_env(),
        **extra,
    )
    return env


def _two_processes(out: pathlib.Path, *args: str, **extra: str) -> list[subprocess.Popen]:
    port = _free_port()
    procs = []
    for pid in range(2):
        env = _mh_env(
            2,
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(pid),
            **extra,
        )
        cmd = [sys.executable, *MH_SMOKE, "--out", str(out), *args]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=main_exp.REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    results = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=TIMEOUT_S)
            results.append((p.returncode, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return results


def test_two_processes_interrupted_resumed_with_a_slow_writer_match_one_device(
    tmp_path, smoke_run: pathlib.Path
):
    out = tmp_path / "two"
    # Interrupted after step 25 of 40: every process stops (exit 3) with the checkpoint of
    # step 20 in the shared output directory, and no results.
    for code, err in _finish(_two_processes(out, "--stop-after-step", "25")):
        assert code == 3, err[-3000:]
    assert (out / "checkpoints" / "20").is_dir()
    assert not (out / "results.json").exists()
    # Resumed by two new processes, process 0 taking 6 s longer to write its outputs than
    # JAX's shutdown barrier (3 s here) waits: all exit 0.
    slow = {"ENTJAX_TEST_OUTPUT_DELAY_S": "6", "ENTJAX_SHUTDOWN_TIMEOUT_S": "3"}
    finished = _finish(_two_processes(out, "--resume", **slow))
    for code, err in finished:
        assert code == 0, err[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["timing"]["resumed_from_step"] == 20
    assert results["devices"]["process_count"] == 2
    assert results["devices"]["device_count"] == 4
    # the member axis sharded over 4 devices of 2 processes: the one-device reference run's
    # numbers, up to float32 reduction order
    assert_match_within_sharding_tolerance(main_exp.results(out), main_exp.results(smoke_run))
    assert "wrote" in finished[0][1]
    assert "wrote" not in finished[1][1]  # process 0 alone writes


def test_replications_of_the_smoke_run_are_pooled_by_the_command_line(smoke_run, tmp_path, capsys):
    """``python -m experiments.ensemble_entropy.replicate`` on real results: the smoke run, and a
    copy presented as a replication with other seeds and held-out classes, its declared estimates
    shifted by +0.01; a run twice, a missing run and an existing output are refused (exit 2)."""
    from scipy import stats as st

    from experiments.ensemble_entropy import replicate

    t_1 = st.t.ppf(0.975, 1)
    other = tmp_path / "rep1"
    other.mkdir()
    results = json.loads((smoke_run / "results.json").read_text())
    results["config"].update(seed=1, data_seed=1, heldout_classes=[3, 5])
    for test in results["comparisons"]["family"].values():
        test["mean"] += 0.01
    (other / "results.json").write_text(json.dumps(results))
    out = tmp_path / "pooled"
    assert replicate.main([str(smoke_run), str(other), "--out", str(out)]) == 0
    pooled = json.loads((out / "pooled.json").read_text())
    family = main_exp.results(smoke_run)["comparisons"]["family"]
    assert list(pooled["family"]) == list(family)
    for key, test in pooled["family"].items():
        d = family[key]["mean"]
        assert test["per_run"] == pytest.approx([d, d + 0.01])
        assert test["mean"] == pytest.approx(d + 0.005)
        half = t_1 * (0.01 / math.sqrt(2)) / math.sqrt(2)  # t(0.975, 1) · s / √2
        assert (test["low"], test["high"]) == pytest.approx((d + 0.005 - half, d + 0.005 + half))
    assert "# The declared comparisons over 2 replications" in (out / "pooled.md").read_text()
    capsys.readouterr()
    refused = [
        [str(smoke_run), str(smoke_run), "--out", str(tmp_path / "x")],  # not replications
        [str(smoke_run), str(tmp_path / "missing"), "--out", str(tmp_path / "y")],
        [str(smoke_run), str(other), "--out", str(out)],  # pooled.json exists: no --overwrite
    ]
    for argv in refused:
        assert replicate.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith("error: ")
    assert replicate.main([str(smoke_run), str(other), "--out", str(out), "--overwrite"]) == 0
