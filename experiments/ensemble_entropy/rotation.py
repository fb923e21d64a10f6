"""The mechanism behind the rotation failure, checked with probes (part of the evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.core import data as data_lib, stats, training, uncertainty
from experiments.ensemble_entropy.config import Config
from experiments.ensemble_entropy.evalsets import Predictions
from experiments.ensemble_entropy.evaluate import POSITIVE, UNIT


def probes(config: Config) -> bool:
    """Whether the run has a rotated set to probe (its most severe rotation)."""
    return "rotation" in data_lib.SHIFTS and bool(config.severities)


def blank_outer_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with the outer quarter of its rows (top and bottom) set to 0."""
    quarter = x.shape[1] // 4
    blanked = x.copy()
    blanked[:, :quarter] = 0.0
    blanked[:, -quarter:] = 0.0
    return blanked


def blanked_test_logits(members: training.Members, params: Any, data: data_lib.ImageData):
    """Every member's logits ``(R·K, n_test, C)`` on the test images with their outer quarter
    rows blanked: the counterfactual of :func:`rotation_mechanism`, the one part of it that runs
    the (sharded) members, so every process of a multi-process run takes part."""
    return members.predict(params, blank_outer_rows(data.x_test))


def rotation_mechanism(
    blanked_logits: np.ndarray | None,
    data: data_lib.ImageData,
    pred: Predictions,
    config: Config,
) -> dict[str, Any] | None:
    """Why rotated images are confidently misclassified, checked with three probes.

    1. Which class the ensembles, a logistic regression and a nearest-class-mean classifier (both
       on raw pixels) send the most rotated test images to.
    2. The ink profile: the images are drawn in a tall box, so the outer quarter of the columns
       is nearly empty and a 90° rotation empties the outer quarter of the rows; the class with
       the least ink there is where rotated images land.
    3. The counterfactual: blank the outer quarter rows of *unrotated* test images; if they are
       then sent to the same class, the ink profile alone explains the failure (the members'
       logits on them: ``blanked_logits``, from :func:`blanked_test_logits`).
    """
    if not probes(config):
        return None
    name = f"rotation@{max(config.severities)}"
    rotated = pred.sets.images[pred.sets.slices[name]]
    ens_pred = pred.log_probs["ensemble"][:, pred.sets.slices[name]].argmax(-1)  # (R, n)
    target = int(np.bincount(ens_pred.ravel(), minlength=data.num_classes).argmax())
    lr, ncm = _pixel_classifiers(data)
    quarter = data.image_shape[0] // 4
    blanked = blank_outer_rows(data.x_test)
    blanked_lp = uncertainty.mixture_log_probs(
        uncertainty.log_probs(blanked_logits), pred.layout.ensembles
    )

    def flat(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1)

    def outer_rows(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[:, :quarter], x[:, -quarter:]], axis=1).mean(axis=(1, 2, 3))

    def outer_cols(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[:, :, :quarter], x[:, :, -quarter:]], axis=2).mean(axis=(1, 2, 3))

    return {
        "set": name,
        "target_class": target,
        "target_digit": data.in_classes[target],
        "fraction_to_target": {
            "ensemble": stats.interval((ens_pred == target).mean(axis=1), bounds=UNIT),
            "logistic_regression": float(np.mean(lr.predict(flat(rotated)) == target)),
            "nearest_class_mean": float(np.mean(ncm(flat(rotated)) == target)),
        },
        "ensemble_entropy_on_rotated": stats.interval(
            pred.scores["ensemble/total_entropy"][:, pred.sets.slices[name]].mean(axis=1),
            bounds=POSITIVE,
        ),
        "outer_quarter_ink": {
            "columns_of_training_images": float(outer_cols(data.x_train).mean()),
            "rows_of_training_images": float(outer_rows(data.x_train).mean()),
            "rows_of_rotated_images": float(outer_rows(rotated).mean()),
            "rows_by_class": [
                float(outer_rows(data.x_train[data.y_train == c]).mean())
                for c in range(data.num_classes)
            ],
        },
        "blanked_outer_rows_to_target": {
            "ensemble": stats.interval((blanked_lp.argmax(-1) == target).mean(axis=1), bounds=UNIT),
            "logistic_regression": float(np.mean(lr.predict(flat(blanked)) == target)),
        },
    }


def _pixel_classifiers(data: data_lib.ImageData):
    from sklearn.linear_model import LogisticRegression

    x = data.x_train.reshape(len(data.x_train), -1)
    lr = LogisticRegression(max_iter=2000).fit(x, data.y_train)
    means = np.stack([x[data.y_train == c].mean(axis=0) for c in range(data.num_classes)])

    def ncm(q: np.ndarray) -> np.ndarray:
        return ((q[:, None, :] - means[None]) ** 2).sum(-1).argmin(axis=1)

    return lr, ncm
