"""The main experiment on 28×28 MNIST: the offline 5,000-image sample, the CNN, the extra OOD set.

A separate file from tests/test_ensemble_experiment.py so that pytest-xdist can run the two
subprocess-heavy files on different workers.
"""

from __future__ import annotations

import json
import pathlib

from _main_experiment import SMOKE, run

MNIST_SMOKE = [
    "--dataset",
    "mnist",
    "--width",
    "8",
    "--steps",
    "20",
    "--severities",
    "5",
    "--members",
    "2",
]


def test_mnist_smoke_runs_on_the_offline_sample(tmp_path: pathlib.Path):
    out = tmp_path / "mnist"
    codes, stderr = run([*SMOKE, *MNIST_SMOKE, "--out", str(out)])
    assert codes == [0], stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["model"] == "cnn"  # the mnist default
    assert results["data"]["image_shape"] == [28, 28, 1]
    assert results["data"]["num_train"] + results["data"]["num_val"] == 3200  # of 5,000 images
    assert "sklearn_digits_28x28" in results["ood"]
    assert results["ood"]["sklearn_digits_28x28"]["headline"]
    # the near-OOD sets of the 28×28 headline: other images that raw pixels barely tell apart
    assert results["ood"]["heldout_classes"]["num_examples"] == 1000  # every 8 and 9 of the sample
    near = {"heldout_classes", "class_blends", "sklearn_digits_28x28"}
    assert set(results["comparisons"]["near_ood_sets"]) == near
    for name in near:
        assert results["ood"][name]["raw_pixel_knn_auroc"] < 0.8
        assert results["ood"][name]["ranked"]
    accuracy = results["in_distribution"]["test"]["ensemble"]["accuracy"]["mean"]
    assert accuracy > 0.3  # 20 smoke steps: well above chance (1/8)
    assert (out / "shift.png").exists()
