"""The evaluation sets and every member's predictions on them.

:class:`EvalSets` concatenates the test and validation splits and every OOD set along the example
axis (one forward pass per member for all of them); :func:`predict` runs the members and derives
the per-example quantities the evaluation reads (:class:`Predictions`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from experiments.core import data as data_lib, detection, training, uncertainty
from experiments.ensemble_entropy.config import Config, Layout


@dataclasses.dataclass(frozen=True)
class EvalSets:
    """All evaluation sets concatenated along the example axis, with their slices and labels.

    Unlabelled sets (held-out classes, noise, another dataset) get label 0 as a placeholder;
    their label-based values are never reported.
    """

    images: np.ndarray
    labels: np.ndarray
    slices: dict[str, slice]
    labelled: frozenset[str]

    @staticmethod
    def build(data: data_lib.ImageData, config: Config) -> EvalSets:
        sets = {"test": data.x_test, "val": data.x_val}
        ood = data_lib.ood_sets(
            data, config.severities, seed=config.data_seed, extra=other_datasets(data, config)
        )
        sets.update(ood)
        labels = {"test": data.y_test, "val": data.y_val}
        labels.update({name: data.y_test for name in ood if "@" in name})
        slices, parts, start = {}, [], 0
        for name, x in sets.items():
            slices[name] = slice(start, start + len(x))
            parts.append(labels.get(name, np.zeros(len(x), np.int32)))
            start += len(x)
        return EvalSets(
            np.concatenate(list(sets.values())),
            np.concatenate(parts).astype(np.int32),
            slices,
            frozenset(labels),
        )

    @property
    def ood_names(self) -> list[str]:
        return [n for n in self.slices if n not in ("test", "val")]

    def headline(self, severities: tuple[int, ...]) -> list[str]:
        """The OOD sets with full tables: all but the shifts, and each shift at its worst."""
        names = [n for n in self.ood_names if "@" not in n]
        if severities:
            names += [f"{kind}@{max(severities)}" for kind in data_lib.SHIFTS]
        return names

    def labels_of(self, name: str) -> np.ndarray:
        return self.labels[self.slices[name]]

    def predictions_npz(self, logits: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
        """Every member's logits on every set, labels, set boundaries and the ensemble layout
        (:class:`~experiments.ensemble_entropy.config.Layout`)."""
        names = list(self.slices)
        return {
            "member_logits": logits.astype(np.float32),
            "labels": self.labels,
            "set_names": np.asarray(names),
            "set_start": np.asarray([self.slices[n].start for n in names]),
            "set_stop": np.asarray([self.slices[n].stop for n in names]),
            "labelled": np.asarray([n in self.labelled for n in names]),
            **{k: np.asarray(v) for k, v in layout.to_json().items()},
        }


def other_datasets(data: data_lib.ImageData, config: Config) -> dict[str, np.ndarray]:
    """Different datasets as OOD sets: for MNIST, scikit-learn's digits drawn in MNIST's frame,
    and the IDX files of ``--ood-data-dir`` (e.g. Fashion-MNIST) if given."""
    if data.name != "mnist":
        return {}
    n = len(data.x_test)
    sets = {"sklearn_digits_28x28": data_lib.digits_as_mnist(n)}
    if config.ood_data_dir is not None:
        images, _ = data_lib.read_idx_dataset(config.ood_data_dir)
        sets["ood_data_dir"] = images[-n:]
    return sets


@dataclasses.dataclass(frozen=True)
class Predictions:
    """Member outputs on every set and the derived per-example quantities (float64)."""

    sets: EvalSets
    layout: Layout
    logits: np.ndarray  # (R·K, n, C)
    features: np.ndarray  # (R·K, n, d) penultimate layer
    train_features: np.ndarray  # (R·K, n_train, d)
    temperature: np.ndarray  # (R·K,) fit on the validation split
    ensemble_temperature: np.ndarray  # (R,)
    log_probs: dict[str, np.ndarray]  # variant -> (R·K or R, n, C)
    scores: dict[str, np.ndarray]  # "single/<name>" (R·K, n), "ensemble/<name>" (R, n)


def features_npz(pred: Predictions, knn_k: int) -> dict[str, np.ndarray]:
    """The k-NN score's inputs for ``predictions.npz``: every member's penultimate features on
    every set and on the training images (float16, member axis first: ``(R·K, n, d)``) and its
    ``k``, so the score can be recomputed from the file
    (:func:`experiments.core.detection.knn_distance` of ``member_train_features[m]`` and
    ``member_features[m]``)."""
    return {
        "member_features": pred.features.astype(np.float16),
        "member_train_features": pred.train_features.astype(np.float16),
        "knn_k": np.asarray(knn_k),
    }


def logits_and_features(members: training.Members):
    """One member's ``(logits, penultimate features)``: one forward pass for both."""

    def both(params, x):
        hidden = members.ensemble.module(params).features(x)
        return hidden[-1], hidden[-2].reshape(x.shape[0], -1)

    return both


def predict(
    members: training.Members, params: Any, data, config: Config, *, sets: EvalSets | None = None
) -> Predictions:
    """Run every member (R·K of them, in ``config.layout``) on every set (``sets``, built from
    ``data`` if not given) and derive log-probabilities, temperatures and scores."""
    sets = EvalSets.build(data, config) if sets is None else sets
    both = logits_and_features(members)
    logits, features = members.predict(params, sets.images, both)
    _, train_features = members.predict(params, data.x_train, both)
    val, r = sets.slices["val"], config.layout.ensembles
    temperature = uncertainty.fit_temperature(logits[:, val], sets.labels[val])
    member_lp = uncertainty.log_probs(logits)
    member_ts = uncertainty.log_probs(logits, temperature)
    mix = uncertainty.mixture_log_probs(member_lp, r)
    ens_t = uncertainty.fit_temperature(mix[:, val], sets.labels[val])
    log_probs = {
        "single": member_lp,
        "single_ts": member_ts,
        "ensemble": mix,
        "ensemble_ts": uncertainty.log_probs(mix, ens_t),
    }
    scores = {f"single/{k}": v for k, v in uncertainty.single_scores(logits, member_ts).items()}
    scores["single/knn_distance"] = np.stack(
        [
            detection.knn_distance(train_features[m], features[m], k=config.knn_k)
            for m in range(len(logits))
        ]
    ).astype(np.float64)
    for k, v in uncertainty.ensemble_scores(logits, r).items():
        scores[f"ensemble/{k}"] = v
    # the ensemble's k-NN score: its members' mean distance (each in its own feature space)
    scores["ensemble/knn_distance"] = config.layout.ensemble_means(scores["single/knn_distance"])
    return Predictions(
        sets, config.layout, logits, features, train_features, temperature, ens_t, log_probs, scores
    )
