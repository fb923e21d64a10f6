"""Does an ensemble know what it doesn't know? Repeated deep ensembles against single models.

``R`` independent ensembles of ``K`` members (``--seeds R --members K``: R·K Flax NNX models with
their own initialisations and data orders) train together in one jitted, vmapped step sharded
over all devices, on scikit-learn's digits (8×8, MLP) or a real MNIST sample (28×28, CNN) with
two classes held out. Every reported number carries a 95% interval: over the R ensembles for
ensemble numbers, over the R·K members for single-model numbers (``ddof = 1``), and for OOD
detection also a bootstrap over test examples where that is the wider. A difference is claimed
only where the interval of the paired difference excludes zero.

* In distribution: accuracy, NLL, Brier, ECE of single models and ensembles, raw and
  temperature-scaled (T fit on the validation split by NLL; Guo et al. 2017).
* OOD detection (held-out classes, uniform noise, another dataset for MNIST, shifted test sets)
  by AUROC, AUPR (OOD positive) and FPR at 95% TPR of: single-model entropy, max-softmax
  (Hendrycks & Gimpel 2017), energy (Liu et al. 2020), the temperature-scaled single model, the
  k-NN distance in penultimate feature space (Sun et al. 2022), ensemble total entropy, ensemble
  max-softmax, mutual information and the mean pairwise KL; a raw-pixel 5-NN AUROC says how easy
  each set is.
* Shift (Ovadia et al. 2019): the four metrics against severity per shift family; accuracy
  against confidence (Lakshminarayanan et al. 2017); metrics against ensemble size over random
  member subsets; and the mechanism behind the rotation failure, checked with probes.

    python -m experiments.ensemble_entropy --out runs/ensemble
    python -m experiments.ensemble_entropy --dataset mnist --out runs/ensemble_mnist
    python -m experiments.ensemble_entropy --smoke --out runs/smoke      # seconds, for tests

Outputs in ``--out``: ``results.json``, ``report.md``, PNG figures, ``predictions.npz`` (every
member's logits on every set, with the ensemble layout) and ``checkpoints/`` (orbax).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any

import numpy as np

from experiments.core import (
    cli,
    data as data_lib,
    detection,
    entropy_curves,
    outputs,
    stats,
    training,
    uncertainty,
)
from experiments.core.cli import option
from experiments.core.models import ACTIVATIONS, MODELS, build_model
from experiments.core.runner import Experiment, Outcome

NAME = "ensemble_entropy"
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {
        "model": "mlp",
        "width": 128,
        "steps": 1500,
        "lr": 1e-3,
        "members": 8,
        "severities": (1, 2, 3, 4, 5),
    },
    "mnist": {
        "model": "cnn",
        "width": 16,
        "steps": 400,
        "lr": 3e-3,
        "members": 4,
        "severities": (1, 3, 5),
    },
}
SCORE_LABELS = {
    "single/entropy": "single-model entropy",
    "single/max_softmax": "single-model max-softmax",
    "single/energy": "single-model energy",
    "single/temperature_entropy": "temperature-scaled single model",
    "single/knn_distance": "single-model k-NN feature distance",
    "ensemble/total_entropy": "ensemble total entropy",
    "ensemble/max_softmax": "ensemble max-softmax",
    "ensemble/mutual_information": "ensemble mutual information",
    "ensemble/pairwise_kl": "ensemble mean pairwise KL",
}
VARIANTS = ("single", "single_ts", "ensemble", "ensemble_ts")
VARIANT_LABELS = {
    "single": "single model",
    "single_ts": "single, temp.-scaled",
    "ensemble": "ensemble",
    "ensemble_ts": "ensemble, temp.-scaled",
}
CLASSIFICATION = ("accuracy", "nll", "brier", "ece")
METRIC_LABELS = {"accuracy": "accuracy", "nll": "NLL", "brier": "Brier", "ece": "ECE"}
HIGHER_IS_BETTER = {"accuracy": True, "nll": False, "brier": False, "ece": False}
UNIT, POSITIVE = (0.0, 1.0), (0.0, None)
BOUNDS = {"accuracy": UNIT, "nll": POSITIVE, "brier": (0.0, 2.0), "ece": UNIT}
THRESHOLDS = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])

SMOKE = {
    "steps": 40,
    "lr": 1e-2,
    "width": 32,
    "batch_size": 32,
    "members": 4,
    "seeds": 2,
    "severities": (2, 5),
    "checkpoint_every": 10,
    "eval_every": 10,
    "ensemble_sizes": (1, 2),
    "bootstrap": 50,
    "subsets": 3,
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that affects the numbers (output paths, resume and progress do not).

    ``None`` for ``model``, ``width``, ``steps`` and ``lr`` means the dataset's default
    (:data:`DATASET_DEFAULTS`); the stored config holds the resolved values.
    """

    dataset: str = option(
        "digits", "digits (8×8, bundled) or mnist (28×28)", choices=("digits", "mnist")
    )
    data_dir: str | None = option(
        None,
        "directory with MNIST-format IDX files (default: the offline 5,000-image MNIST sample)",
    )
    ood_data_dir: str | None = option(
        None, "IDX files of another dataset (e.g. Fashion-MNIST) used as an OOD set for mnist"
    )
    model: str | None = option(
        None, "architecture (none: mlp for digits, cnn for mnist)", choices=MODELS
    )
    width: int | None = option(None, "hidden width (none: 128 for the MLP, 16 for the CNN)")
    depth: int = option(2, "MLP hidden layers")
    activation: str = option("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    members: int | None = option(None, "ensemble size K (none: 8 digits, 4 mnist)")
    seeds: int = option(5, "independent ensembles R (the intervals are over them)")
    steps: int | None = option(None, "training steps (none: 1500 digits, 400 mnist)")
    batch_size: int = option(64, "minibatch size per member")
    lr: float | None = option(None, "peak Adam learning rate (none: 1e-3 digits, 3e-3 mnist)")
    schedule: str = option("cosine", "learning-rate schedule", choices=training.SCHEDULES)
    warmup_steps: int = option(0, "linear warm-up steps")
    weight_decay: float = option(0.0, "AdamW weight decay (0: Adam)")
    seed: int = option(0, "seed of the initialisations and data orders")
    data_seed: int = option(0, "seed of the split and the OOD sets")
    heldout_classes: tuple[int, ...] = option((8, 9), "classes kept out of training (OOD)")
    severities: tuple[int, ...] | None = option(
        None, "shift severity levels in 1..5 (none: 1..5 digits, 1,3,5 mnist)"
    )
    num_bins: int = option(15, "ECE / reliability bins")
    knn_k: int = option(10, "k of the k-NN distance scores")
    bootstrap: int = option(
        200, "bootstrap resamples of test examples for the OOD metrics (0: off)"
    )
    subsets: int = option(10, "random member subsets per size k in the ensemble-size curves")
    ensemble_sizes: tuple[int, ...] | None = option(None, "sizes k of the size curves (none: 1..K)")
    checkpoint_every: int | None = option(None, "steps between checkpoints (none: steps / 4)")
    eval_every: int = option(100, "steps between the entropy-through-training evaluations")

    def __post_init__(self):
        cli.require_choice(self, "dataset", data_lib.DATASETS)
        for name, value in DATASET_DEFAULTS[self.dataset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        cli.require_positive(self, "lr")
        cli.require_positive(self, "weight_decay", "warmup_steps", allow_zero=True)
        for name in ("members", "seeds", "steps", "batch_size", "depth", "num_bins", "width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        for name in ("knn_k", "subsets", "eval_every"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.bootstrap >= 0, "--bootstrap must be >= 0")
        cli.require_choice(self, "model", MODELS)
        cli.require_choice(self, "activation", tuple(ACTIVATIONS))
        cli.require_choice(self, "schedule", training.SCHEDULES)
        cli.require_choice(self, "severities", range(1, 6))
        cli.require_choice(self, "heldout_classes", range(10))
        kept = 10 - len(set(self.heldout_classes))
        cli.require(kept >= 2, f"--heldout-classes leaves {kept} class(es) in-distribution; need 2")
        if self.ensemble_sizes is not None:
            cli.require_choice(self, "ensemble_sizes", range(1, self.members + 1))
        cli.require(
            self.checkpoint_every is None or self.checkpoint_every >= 0,
            "--checkpoint-every must be >= 0 (0: only at the end)",
        )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Ensemble sizes k of the size curves, always ending with K."""
        if self.ensemble_sizes is None:
            return tuple(range(1, self.members + 1))
        return tuple(sorted({int(k) for k in self.ensemble_sizes} | {self.members}))

    @property
    def num_models(self) -> int:
        return self.seeds * self.members


# --------------------------------------------------------------------------- evaluation sets


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

    def predictions_npz(self, logits: np.ndarray, config: Config) -> dict[str, np.ndarray]:
        """Every member's logits on every set, labels, set boundaries and the ensemble layout
        (member ``r·K + j`` is member ``j`` of ensemble ``r``)."""
        names = list(self.slices)
        return {
            "member_logits": logits.astype(np.float32),
            "labels": self.labels,
            "set_names": np.asarray(names),
            "set_start": np.asarray([self.slices[n].start for n in names]),
            "set_stop": np.asarray([self.slices[n].stop for n in names]),
            "labelled": np.asarray([n in self.labelled for n in names]),
            "ensembles": np.asarray(config.seeds),
            "members_per_ensemble": np.asarray(config.members),
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


# --------------------------------------------------------------------------- predictions


@dataclasses.dataclass(frozen=True)
class Predictions:
    """Member outputs on every set and the derived per-example quantities (float64)."""

    sets: EvalSets
    logits: np.ndarray  # (R·K, n, C)
    features: np.ndarray  # (R·K, n, d) penultimate layer
    train_features: np.ndarray  # (R·K, n_train, d)
    temperature: np.ndarray  # (R·K,) fit on the validation split
    ensemble_temperature: np.ndarray  # (R,)
    log_probs: dict[str, np.ndarray]  # variant -> (P, n, C)
    scores: dict[str, np.ndarray]  # "single/<name>" (R·K, n), "ensemble/<name>" (R, n)
    num_ensembles: int


def logits_and_features(members: training.Members):
    """One member's ``(logits, penultimate features)``: one forward pass for both."""

    def both(params, x):
        hidden = members.ensemble.module(params).features(x)
        return hidden[-1], hidden[-2].reshape(x.shape[0], -1)

    return both


def predict(members: training.Members, params: Any, data, config: Config) -> Predictions:
    """Run every member on every set and derive log-probabilities, temperatures and scores."""
    sets = EvalSets.build(data, config)
    both = logits_and_features(members)
    logits, features = members.predict(params, sets.images, both)
    _, train_features = members.predict(params, data.x_train, both)
    val, r = sets.slices["val"], config.seeds
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
    return Predictions(
        sets, logits, features, train_features, temperature, ens_t, log_probs, scores, r
    )


# --------------------------------------------------------------------------- in distribution


def classification_table(pred: Predictions, name: str, num_bins: int) -> dict[str, dict]:
    """Per variant and metric: the interval over replicates, and the raw per-replicate values."""
    s, labels = pred.sets.slices[name], pred.sets.labels_of(name)
    out = {}
    for variant in VARIANTS:
        values = uncertainty.classification(
            pred.log_probs[variant][:, s], labels, num_bins=num_bins
        )
        out[variant] = {
            m: {**stats.interval(v, bounds=BOUNDS[m]), "values": v} for m, v in values.items()
        }
    return out


def member_means(values: np.ndarray, num_ensembles: int) -> np.ndarray:
    """Mean over the members of each ensemble: ``(R·K,) -> (R,)``."""
    return np.asarray(values).reshape(num_ensembles, -1).mean(axis=1)


def in_distribution(pred: Predictions, config: Config) -> dict[str, Any]:
    """Test and validation tables, and paired comparisons on the test set."""
    test = classification_table(pred, "test", config.num_bins)
    r = pred.num_ensembles
    comparisons = {}
    for metric in CLASSIFICATION:
        single = member_means(test["single"][metric]["values"], r)
        single_ts = member_means(test["single_ts"][metric]["values"], r)
        comparisons[metric] = {
            "ensemble_minus_single": stats.paired(test["ensemble"][metric]["values"], single),
            "ensemble_ts_minus_single_ts": stats.paired(
                test["ensemble_ts"][metric]["values"], single_ts
            ),
            "single_ts_minus_single": stats.paired(
                test["single_ts"][metric]["values"], test["single"][metric]["values"]
            ),
        }
    entropy = pred.scores["single/entropy"][:, pred.sets.slices["test"]].mean(axis=1)
    ens = {
        k: pred.scores[f"ensemble/{k}"][:, pred.sets.slices["test"]].mean(axis=1)
        for k in ("total_entropy", "mutual_information")
    }
    return {
        "test": test,
        "val": classification_table(pred, "val", config.num_bins),
        "comparisons": comparisons,
        "mean_entropy": {
            "single": stats.interval(entropy, bounds=POSITIVE),
            "ensemble_total": stats.interval(ens["total_entropy"], bounds=POSITIVE),
            "ensemble_mutual_information": stats.interval(
                ens["mutual_information"], bounds=POSITIVE
            ),
        },
    }


def temperature_summary(pred: Predictions) -> dict[str, Any]:
    """Fitted temperatures and the validation NLL they were chosen by, before and after."""
    val, labels = pred.sets.slices["val"], pred.sets.labels_of("val")

    def nll(variant: str) -> np.ndarray:
        lp = pred.log_probs[variant][:, val]
        return -np.take_along_axis(lp, labels[None, :, None], -1)[..., 0].mean(axis=1)

    return {
        "single": stats.interval(pred.temperature, bounds=POSITIVE),
        "ensemble": stats.interval(pred.ensemble_temperature, bounds=POSITIVE),
        "val_nll": {v: stats.interval(nll(v), bounds=POSITIVE) for v in VARIANTS},
        "single_values": pred.temperature,
        "ensemble_values": pred.ensemble_temperature,
    }


# --------------------------------------------------------------------------- OOD detection


def raw_pixel_difficulty(data: data_lib.ImageData, pred: Predictions) -> dict[str, float]:
    """AUROC of the Euclidean 5-NN distance of raw pixels to the training images, per OOD set:
    how easy each set is without any model (1.0: trivially separable)."""
    distance = detection.knn_distance(data.x_train, pred.sets.images, k=5, normalize=False)
    test = distance[pred.sets.slices["test"]]
    return {
        name: float(detection.auroc(test, distance[pred.sets.slices[name]]))
        for name in pred.sets.ood_names
    }


def ood_block(pred: Predictions, name: str, *, bootstrap: int, seed: int) -> dict[str, Any]:
    """Every score's AUROC, AUPR and FPR@95 on set ``name`` (positive) against the test set,
    with intervals over replicates (and the example bootstrap), plus paired comparisons."""
    t, s = pred.sets.slices["test"], pred.sets.slices[name]
    scores, means = {}, {}
    for key, values in pred.scores.items():
        scores[key] = detection.replicate_intervals(
            values[:, t], values[:, s], bootstrap=bootstrap, seed=seed
        )
        scores[key]["mean_score"] = stats.interval(values[:, s].mean(axis=1))
        means[key] = scores[key]["auroc"]["mean"]
    best, second = sorted(means, key=lambda k: -means[k])[:2]
    pairs = {
        "best_vs_runner_up": (best, second),
        "mi_minus_total_entropy": ("ensemble/mutual_information", "ensemble/total_entropy"),
        "total_entropy_minus_single_entropy": ("ensemble/total_entropy", "single/entropy"),
        "mi_minus_single_entropy": ("ensemble/mutual_information", "single/entropy"),
    }
    comparisons = {
        label: {"a": ka, "b": kb, **compare_scores(pred, ka, kb, t, s, bootstrap, seed)}
        for label, (ka, kb) in pairs.items()
    }
    return {"num_examples": s.stop - s.start, "scores": scores, "comparisons": comparisons}


def compare_scores(pred, a: str, b: str, t: slice, s: slice, bootstrap: int, seed: int) -> dict:
    """Paired AUROC difference ``a − b`` (:func:`detection.paired_difference`): over members if
    both are single-model scores, else over ensembles (a single-model score enters as the mean
    over each ensemble's members), with the example bootstrap."""
    va, vb = pred.scores[a], pred.scores[b]
    r = pred.num_ensembles

    def per_ensemble(values: np.ndarray) -> np.ndarray:
        return member_means(values, r)

    mixed = len(va) != len(vb)
    return detection.paired_difference(
        (va[:, t], va[:, s]),
        (vb[:, t], vb[:, s]),
        reduce_a=per_ensemble if mixed and len(va) > r else None,
        reduce_b=per_ensemble if mixed and len(vb) > r else None,
        bootstrap=bootstrap,
        seed=seed,
    )


def ood_section(pred: Predictions, data, config: Config) -> dict[str, Any]:
    """OOD blocks for every set; the bootstrap only for the headline sets (it is the slow part)."""
    headline = set(pred.sets.headline(config.severities))
    difficulty = raw_pixel_difficulty(data, pred)
    out = {}
    for i, name in enumerate(pred.sets.ood_names):
        boot = config.bootstrap if name in headline else 0
        out[name] = ood_block(pred, name, bootstrap=boot, seed=config.seed + i)
        out[name]["raw_pixel_knn_auroc"] = difficulty[name]
        out[name]["headline"] = name in headline
    return out


# --------------------------------------------------------------------------- shift and size


def shift_curves(pred: Predictions, config: Config, clean: dict[str, dict]) -> dict[str, Any]:
    """Ovadia et al.'s view: each metric of each variant against severity, per shift family."""
    out: dict[str, Any] = {}
    for kind in data_lib.SHIFTS:
        tables = [clean] + [
            classification_table(pred, f"{kind}@{lv}", config.num_bins) for lv in config.severities
        ]
        out[kind] = {
            "severity": [0, *config.severities],
            "level": [0.0] + [data_lib.SHIFT_LEVELS[kind][s - 1] for s in config.severities],
            **{
                variant: {m: [_strip(t[variant][m]) for t in tables] for m in CLASSIFICATION}
                for variant in VARIANTS
            },
        }
    return out


def _strip(cell: dict) -> dict:
    return {k: v for k, v in cell.items() if k != "values"}


def confidence_curves(pred: Predictions, names: list[str]) -> dict[str, Any]:
    """Accuracy and fraction of examples kept above each confidence threshold, per set."""
    out: dict[str, Any] = {"thresholds": THRESHOLDS}
    for name in ["test", *names]:
        s = pred.sets.slices[name]
        labels = pred.sets.labels_of(name) if name in pred.sets.labelled else None
        entry = {}
        for variant in ("single", "ensemble"):
            curves = uncertainty.accuracy_vs_confidence(
                pred.log_probs[variant][:, s], labels, THRESHOLDS
            )
            entry[variant] = {
                key: [stats.interval(values[:, i], bounds=UNIT) for i in range(len(THRESHOLDS))]
                for key, values in curves.items()
            }
        out[name] = entry
    return out


def size_curves(pred: Predictions, config: Config) -> dict[str, Any]:
    """Test metrics and OOD AUROC of random k-member subsets of each ensemble (``subsets`` per
    k; the same subsets in every ensemble), averaged over subsets, intervals over ensembles."""
    r, k_all, t = pred.num_ensembles, config.members, pred.sets.slices["test"]
    sets = pred.sets.headline(config.severities)
    member_lp = pred.log_probs["single"]
    out: dict[str, Any] = {"k": list(config.sizes), "subsets": config.subsets, "ood_sets": sets}
    rows: dict[str, list] = {m: [] for m in CLASSIFICATION}
    auroc: dict[str, dict[str, list]] = {
        s: {n: [] for n in sets} for s in ("total_entropy", "mutual_information")
    }
    for k in config.sizes:
        subsets = uncertainty.random_subsets(k_all, k, config.subsets, seed=config.seed)
        index = (np.arange(r)[:, None, None] * k_all + subsets[None]).reshape(-1)
        groups = len(index) // k
        mix = uncertainty.mixture_log_probs(member_lp[index], groups)
        metrics = uncertainty.classification(
            mix[:, t], pred.sets.labels_of("test"), num_bins=config.num_bins
        )
        for m in CLASSIFICATION:
            rows[m].append(stats.interval(metrics[m].reshape(r, -1).mean(axis=1), bounds=BOUNDS[m]))
        scores = uncertainty.ensemble_scores(pred.logits[index], groups)
        for score, per_set in auroc.items():
            for n in sets:
                values = detection.auroc(scores[score][:, t], scores[score][:, pred.sets.slices[n]])
                per_set[n].append(stats.interval(values.reshape(r, -1).mean(axis=1), bounds=UNIT))
    out["test"] = rows
    out["auroc"] = auroc
    return out


# --------------------------------------------------------------------------- rotation


def rotation_mechanism(
    members: training.Members, params: Any, data: data_lib.ImageData, pred: Predictions, config
) -> dict[str, Any] | None:
    """Why rotated images are confidently misclassified, checked with three probes.

    1. Which class the ensembles, a logistic regression and a nearest-class-mean classifier (both
       on raw pixels) send the most rotated test images to.
    2. The ink profile: the images are drawn in a tall box, so the outer quarter of the columns
       is nearly empty and a 90° rotation empties the outer quarter of the rows; the class with
       the least ink there is where rotated images land.
    3. The counterfactual: blank the outer quarter rows of *unrotated* test images; if they are
       then sent to the same class, the ink profile alone explains the failure.
    """
    if "rotation" not in data_lib.SHIFTS or not config.severities:
        return None
    name = f"rotation@{max(config.severities)}"
    rotated = pred.sets.images[pred.sets.slices[name]]
    ens_pred = pred.log_probs["ensemble"][:, pred.sets.slices[name]].argmax(-1)  # (R, n)
    target = int(np.bincount(ens_pred.ravel(), minlength=data.num_classes).argmax())
    lr, ncm = _pixel_classifiers(data)
    quarter = data.image_shape[0] // 4
    blanked = data.x_test.copy()
    blanked[:, :quarter] = 0.0
    blanked[:, -quarter:] = 0.0
    blanked_lp = uncertainty.mixture_log_probs(
        uncertainty.log_probs(members.predict(params, blanked)), pred.num_ensembles
    )
    flat = lambda x: x.reshape(len(x), -1)
    outer_rows = lambda x: np.concatenate([x[:, :quarter], x[:, -quarter:]], axis=1).mean(
        axis=(1, 2, 3)
    )
    outer_cols = lambda x: np.concatenate([x[:, :, :quarter], x[:, :, -quarter:]], axis=2).mean(
        axis=(1, 2, 3)
    )
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


# --------------------------------------------------------------------------- claims


def _fmt_diff(d: dict, digits: int = 3) -> str:
    return f"{d['mean']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"


def claims(results: dict[str, Any]) -> list[str]:
    """The statements the intervals support (and the ones they do not), in words."""
    out = []
    comp = results["in_distribution"]["comparisons"]
    for metric in CLASSIFICATION:
        d = comp[metric]["ensemble_minus_single"]
        words = stats.verdict(
            d, a="the ensemble", b="its members", higher_is_better=HIGHER_IS_BETTER[metric]
        )
        out.append(
            f"Test {METRIC_LABELS[metric]}: {words} (ensemble − member mean {_fmt_diff(d, 4)})."
        )
    d = comp["ece"]["single_ts_minus_single"]
    out.append(
        "Temperature scaling (fit on validation): "
        + stats.verdict(d, a="the scaled single model", b="the raw one", higher_is_better=False)
        + f" in test ECE ({_fmt_diff(d, 4)})."
    )
    for name, block in results["ood"].items():
        if not block["headline"]:
            continue
        top = block["comparisons"]["best_vs_runner_up"]
        lead = stats.verdict(
            top, a=SCORE_LABELS[top["a"]], b=SCORE_LABELS[top["b"]], higher_is_better=True
        )
        d = block["comparisons"]["mi_minus_total_entropy"]
        words = stats.verdict(d, a="mutual information", b="total entropy", higher_is_better=True)
        out.append(
            f"{name}: highest mean AUROC {SCORE_LABELS[top['a']]} "
            f"({outputs.fmt(block['scores'][top['a']]['auroc'], 3)}); against the runner-up: "
            f"{lead} ({_fmt_diff(top)}); {words} (AUROC difference {_fmt_diff(d)}); "
            f"raw-pixel 5-NN AUROC {block['raw_pixel_knn_auroc']:.3f}."
        )
    return out


# --------------------------------------------------------------------------- the experiment


def training_summary(history: np.ndarray, points: int = 100) -> dict[str, Any]:
    """Training loss curve (mean over members, subsampled) and the final loss per member."""
    steps = history.shape[0]
    stride = max(steps // points, 1)
    idx = np.unique(np.concatenate([np.arange(0, steps, stride), [steps - 1]]))
    return {
        "loss_curve_step": (idx + 1).tolist(),
        "loss_curve_mean": history[idx].mean(axis=1).tolist(),
        "final_loss_per_member": history[-1].tolist(),
        "final_loss_mean_last_10pct": float(history[-max(steps // 10, 1) :].mean()),
    }


def _setup(config: Config, data: data_lib.ImageData):
    """The R·K initial members and their optimizer, as every run of ``config`` builds them."""

    def model_fn(rngs):
        return build_model(
            config.model,
            num_classes=data.num_classes,
            width=config.width,
            depth=config.depth,
            activation=config.activation,
            input_shape=data.image_shape,
            rngs=rngs,
        )

    members = training.Members.create(model_fn, config.num_models, seed=config.seed)
    tx = training.make_optimizer(
        config.lr,
        steps=config.steps,
        schedule=config.schedule,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
    )
    return members, tx


def train(config: Config, options: cli.RunOptions, data: data_lib.ImageData):
    """The R·K members trained together; returns the members and the training result."""
    members, tx = _setup(config, data)
    every = config.checkpoint_every
    groups = [
        list(range(r * config.members, (r + 1) * config.members)) for r in range(config.seeds)
    ]
    names = [f"ensemble {r} member {j}" for r in range(config.seeds) for j in range(config.members)]
    result = members.train(
        training.classification_objective(members.ensemble),
        tx,
        data={"image": data.x_train, "label": data.y_train},
        batch_size=config.batch_size,
        seed=config.seed,
        schedule=training.Schedule(
            config.steps,
            eval_every=config.eval_every,
            checkpoint_every=max(config.steps // 4, 1) if every is None else every,
        ),
        options=options,
        run_config=dataclasses.asdict(config),
        description=f"{config.seeds}×{config.members}×{config.model}",
        probe=entropy_curves.EntropyProbe(data.x_train, data.x_val, data.y_val, groups=groups),
        member_names=names,
    )
    return members, result


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A finished run, reloaded by :func:`load_run`: its config and its trained members."""

    config: Config
    members: training.Members
    params: Any  # the trained parameters, stacked on the member axis (R·K members)
    step: int  # the training step of the checkpoint they come from

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Every member's logits for images ``x`` ``(n, *image_shape)``: ``(R·K, n, C)``;
        member ``r·K + j`` is member ``j`` of ensemble ``r``."""
        return self.members.predict(self.params, np.asarray(x, np.float32))

    def features(self, x: np.ndarray) -> np.ndarray:
        """Every member's penultimate-layer features ``(R·K, n, d)`` (the k-NN score's input)."""
        both = logits_and_features(self.members)
        return self.members.predict(self.params, np.asarray(x, np.float32), both)[1]


def load_run(out: str) -> TrainedRun:
    """The config and the trained members of the run in ``out`` (its ``results.json`` and final
    checkpoint), without training or deleting anything::

        run = load_run("runs/ensemble")
        logits = run.logits(images)  # (R·K, n, C)
        u = entjax.ensemble_uncertainty(logits[: run.config.members], axis=0)  # ensemble 0
    """
    import json
    import os

    from experiments.core.checkpoints import Checkpoints

    with open(os.path.join(out, "results.json")) as f:
        stored = json.load(f)["config"]
    fields = {f.name for f in dataclasses.fields(Config)}
    config = Config(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields}
    )
    data = data_lib.load_dataset(
        config.dataset,
        seed=config.data_seed,
        heldout_classes=config.heldout_classes,
        data_dir=config.data_dir,
    )
    members, tx = _setup(config, data)
    params = members.ensemble.params
    like = {
        "params": params,
        "opt_state": training.init_opt_state(tx, params, members.mesh),
        "loss_history": np.zeros((config.steps, config.num_models), np.float32),
    }
    run_config = {**dataclasses.asdict(config), "checkpoint_name": ""}
    checkpoints = Checkpoints(os.path.join(out, "checkpoints"), run_config=run_config, resume=True)
    try:
        step = checkpoints.latest_step()
        if step is None:
            raise cli.ConfigError(f"{out} has no checkpoint to load (was the run finished?)")
        state, _ = checkpoints.restore(step, like)
    finally:
        checkpoints.close()
    return TrainedRun(config, members, state["params"], step)


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Train R ensembles of K members, then evaluate members and ensembles on every set."""
    data = data_lib.load_dataset(
        config.dataset,
        seed=config.data_seed,
        heldout_classes=config.heldout_classes,
        data_dir=config.data_dir,
    )
    t0 = time.perf_counter()
    members, result = train(config, options, data)
    train_seconds = time.perf_counter() - t0
    pred = predict(members, result.params, data, config)
    ind = in_distribution(pred, config)
    results: dict[str, Any] = {
        "data": {
            **data.summary(),
            "dataset": data.name,
            "source": data.source,
            "image_shape": list(data.image_shape),
        },
        "layout": {"ensembles": config.seeds, "members_per_ensemble": config.members},
        "temperature": temperature_summary(pred),
        "in_distribution": ind,
        "ood": ood_section(pred, data, config),
        "shift": shift_curves(pred, config, ind["test"]),
        "accuracy_vs_confidence": confidence_curves(pred, pred.sets.headline(config.severities)),
        "ensemble_size": size_curves(pred, config),
        "rotation_mechanism": rotation_mechanism(members, result.params, data, pred, config),
        "training": training_summary(result.loss_history),
        "entropy_curves": {
            data.name: entropy_curves.summarise(
                result.curves,
                result.loss_history,
                group_names=[f"ensemble {r}" for r in range(config.seeds)],
                max_entropy=math.log(data.num_classes),
            )
        },
    }
    results["claims"] = claims(results)
    return Outcome(
        results,
        arrays={"pred": pred},
        npz={"predictions": pred.sets.predictions_npz(pred.logits, config)},
        timing={
            "train_seconds_this_process": train_seconds,
            "evaluate_seconds": time.perf_counter() - t0 - train_seconds,
            "resumed_from_step": result.resumed_from_step,
        },
    )


# --------------------------------------------------------------------------- report


def _header(r: dict[str, Any]) -> list[str]:
    cfg, d = r["config"], r["data"]
    return [
        "# Ensemble entropy: single models vs deep ensembles",
        "",
        f"{cfg['seeds']} independent ensembles × {cfg['members']} {cfg['model']} members (width "
        f"{cfg['width']}), {cfg['steps']} steps, batch {cfg['batch_size']}, Adam lr {cfg['lr']} "
        f"({cfg['schedule']}), seed {cfg['seed']}. Data: {d['source']}; classes "
        f"{d['in_classes']} in-distribution ({d['num_train']} train / {d['num_val']} validation / "
        f"{d['num_test']} test), {d['heldout_classes']} held out. Devices: "
        f"{r['devices']['device_count']} × {r['devices']['backend']}. Entropies in nats.",
        "",
        "Every number is a mean with its 95% interval: over the "
        f"{cfg['seeds'] * cfg['members']} members (single models, ddof = 1) or the "
        f"{cfg['seeds']} ensembles; OOD intervals are the wider of that and a bootstrap over "
        "test examples. A difference is claimed only where its paired interval excludes 0.",
        "",
        "## What the intervals support",
        "",
        *[f"- {c}" for c in r["claims"]],
        "",
    ]


def _in_distribution(r: dict[str, Any]) -> list[str]:
    test, comp = r["in_distribution"]["test"], r["in_distribution"]["comparisons"]
    headers = ["metric", *(VARIANT_LABELS[v] for v in VARIANTS), "ensemble − single (paired)"]
    rows = [
        [m, *(test[v][m] for v in VARIANTS), _fmt_diff(comp[m]["ensemble_minus_single"], 4)]
        for m in CLASSIFICATION
    ]
    temp = r["temperature"]
    return [
        "## In-distribution test set",
        "",
        outputs.markdown_table(headers, rows),
        "",
        f"Temperatures fit on the validation split by NLL: single models T = "
        f"{outputs.fmt(temp['single'], 3)}, ensembles T = {outputs.fmt(temp['ensemble'], 3)}; "
        f"validation NLL single {outputs.fmt(temp['val_nll']['single'])} → "
        f"{outputs.fmt(temp['val_nll']['single_ts'])}, ensemble "
        f"{outputs.fmt(temp['val_nll']['ensemble'])} → "
        f"{outputs.fmt(temp['val_nll']['ensemble_ts'])}.",
        "",
    ]


def _ood_overview(r: dict[str, Any]) -> list[str]:
    keys = list(SCORE_LABELS)
    headers = ["OOD set", "raw-pixel 5-NN", *(SCORE_LABELS[k] for k in keys)]
    rows = [
        [name, b["raw_pixel_knn_auroc"], *(b["scores"][k]["auroc"]["mean"] for k in keys)]
        for name, b in r["ood"].items()
    ]
    return [
        "## Out of distribution: AUROC of every score on every set (means)",
        "",
        "OOD set positive against the clean test set; 0.5 = chance. The raw-pixel 5-NN column "
        "needs no model: where it is near 1.0 the set is too easy to rank the scores.",
        "",
        outputs.markdown_table(headers, rows, digits=3),
        "",
    ]


def _ood_details(r: dict[str, Any]) -> list[str]:
    lines = ["## OOD detection with intervals (headline sets)", ""]
    for name, b in r["ood"].items():
        if not b["headline"]:
            continue
        scores = b["scores"]
        rows = [
            [SCORE_LABELS[k], *(scores[k][m] for m in ("auroc", "aupr", "fpr95", "mean_score"))]
            for k in SCORE_LABELS
        ]
        lines += [
            f"**{name}** ({b['num_examples']} images; raw-pixel 5-NN AUROC "
            f"{b['raw_pixel_knn_auroc']:.3f})",
            "",
            outputs.markdown_table(
                ["score", "AUROC ↑", "AUPR ↑", "FPR@95 ↓", "mean score"], rows, 3
            ),
            "",
        ]
    return lines


def _shift(r: dict[str, Any]) -> list[str]:
    lines = ["## Shift: metrics against severity (Ovadia et al. 2019)", ""]
    columns = [
        ("accuracy", "single"),
        ("accuracy", "ensemble"),
        ("nll", "single"),
        ("nll", "single_ts"),
        ("nll", "ensemble"),
        ("nll", "ensemble_ts"),
        ("ece", "single"),
        ("ece", "single_ts"),
        ("ece", "ensemble"),
        ("ece", "ensemble_ts"),
        ("brier", "single"),
        ("brier", "ensemble"),
    ]
    headers = ["severity", "level"] + [f"{m} {VARIANT_LABELS[v]}" for m, v in columns]
    for kind, rows in r["shift"].items():
        table = [
            [
                str(sev),
                data_lib.level_label(kind, rows["level"][i]),
                *(rows[v][m][i] for m, v in columns),
            ]
            for i, sev in enumerate(rows["severity"])
        ]
        lines += [
            f"**{kind.replace('_', ' ')}**",
            "",
            outputs.markdown_table(headers, table, 3),
            "",
        ]
    return lines


def _confidence(r: dict[str, Any]) -> list[str]:
    acc = r["accuracy_vs_confidence"]
    picks = [i for i, t in enumerate(acc["thresholds"]) if t in (0.5, 0.9)]
    headers = [
        "set",
        "τ",
        "single: accuracy",
        "single: kept",
        "ensemble: accuracy",
        "ensemble: kept",
    ]
    rows = []
    for name in (n for n in acc if n != "thresholds"):
        for i in picks:
            cells = []
            for v in ("single", "ensemble"):
                cells += [
                    acc[name][v]["accuracy"][i] if "accuracy" in acc[name][v] else "—",
                    acc[name][v]["fraction"][i],
                ]
            rows.append([name, f"{acc['thresholds'][i]:g}", *cells])
    return [
        "## Accuracy against confidence (Lakshminarayanan et al. 2017)",
        "",
        "Examples with max-probability ≥ τ: their accuracy (labelled sets) and the fraction "
        "kept (for OOD sets, lower is better).",
        "",
        outputs.markdown_table(headers, rows, 3),
        "",
    ]


def _sizes(r: dict[str, Any]) -> list[str]:
    size = r["ensemble_size"]
    headers = ["k", "accuracy", "NLL", "ECE"]
    headers += [f"AUROC MI {n}" for n in size["ood_sets"]]
    table = [
        [
            str(k),
            *(size["test"][m][i] for m in ("accuracy", "nll", "ece")),
            *(size["auroc"]["mutual_information"][n][i] for n in size["ood_sets"]),
        ]
        for i, k in enumerate(size["k"])
    ]
    return [
        f"## Ensemble size ({size['subsets']} random member subsets per k, per ensemble)",
        "",
        outputs.markdown_table(headers, table, 3),
        "",
    ]


def _rotation(r: dict[str, Any]) -> list[str]:
    m = r["rotation_mechanism"]
    if m is None:
        return []
    frac, ink, blank = (
        m["fraction_to_target"],
        m["outer_quarter_ink"],
        m["blanked_outer_rows_to_target"],
    )
    target = m["target_digit"]
    least = r["data"]["in_classes"][int(np.argmin(ink["rows_by_class"]))]
    shared = min(frac["logistic_regression"], frac["nearest_class_mean"]) > 0.5
    profile = least == target and blank["ensemble"]["mean"] > 0.5
    lines = [
        f"## The rotation failure, probed ({m['set']})",
        "",
        f"The ensembles send {outputs.fmt(frac['ensemble'], 3)} of the rotated test images to "
        f"class {target} (mean total entropy {outputs.fmt(m['ensemble_entropy_on_rotated'], 3)} "
        f"nats); a logistic regression and a nearest-class-mean classifier on raw pixels send "
        f"{frac['logistic_regression']:.3f} and {frac['nearest_class_mean']:.3f} there"
        + (
            ": the failure is shared by simple models, so it is not ensemble similarity."
            if shared
            else "."
        ),
        "",
        f"Ink profile: the outer quarter of the columns of the training images holds "
        f"{ink['columns_of_training_images']:.3f} mean ink, the outer quarter of the rows "
        f"{ink['rows_of_training_images']:.3f}; after the rotation the outer rows hold "
        f"{ink['rows_of_rotated_images']:.3f}. The class with the least ink in the outer rows is "
        f"{least} ({min(ink['rows_by_class']):.3f}). Counterfactual: blanking the outer quarter "
        f"rows of *unrotated* test images sends {outputs.fmt(blank['ensemble'], 3)} of them to "
        f"class {target} under the ensembles and {blank['logistic_regression']:.3f} under the "
        "logistic regression.",
        "",
    ]
    if profile:
        lines += [
            "Mechanism: the images are drawn in a tall, narrow box, so a 90° rotation empties the "
            "outer rows; empty outer rows are, in these training data, the signature of class "
            f"{target}. The rotated set therefore lands deep inside that class's region of pixel "
            "space, far from any decision boundary: every model fit to these data is confident "
            "there, the members agree, and no entropy score (total or mutual information) can "
            "flag it. A feature-distance score still can, because the rotated images are far "
            "from the training images.",
            "",
        ]
    else:
        lines += [
            "The outer-row profile does not explain the failure on these data (the "
            "counterfactual does not reproduce it).",
            "",
        ]
    return lines


def report(r: dict[str, Any]) -> str:
    """The human-readable tables of ``report.md``."""
    final = r["training"]["final_loss_mean_last_10pct"]
    lines = _header(r) + _in_distribution(r) + _ood_overview(r) + _ood_details(r)
    lines += _shift(r) + _confidence(r) + _sizes(r) + _rotation(r)
    lines += [
        f"Final training loss (mean of the last 10% of steps, all members): {final:.4f}.",
        "",
        "Figures: `shift.png`, `ood_auroc.png`, `ensemble_size.png`, `accuracy_confidence.png`, "
        "`entropy_histograms.png`, `reliability.png`.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def _band(ax: Any, x: Any, cells: list[dict], label: str, style: str = "o-") -> None:
    mean = np.array([c["mean"] for c in cells], float)
    low = np.array([c["low"] for c in cells], float)
    high = np.array([c["high"] for c in cells], float)
    (line,) = ax.plot(x, mean, style, label=label, markersize=3)
    ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())


def _shift_figure(r: dict[str, Any]) -> Any:
    shift = r["shift"]
    fig, axes = outputs.new_figure(len(CLASSIFICATION), len(shift), size=(3.6, 2.6))
    fig.set_layout_engine("constrained")
    for j, (kind, rows) in enumerate(shift.items()):
        labels = [data_lib.level_label(kind, lv) for lv in rows["level"]]
        for i, metric in enumerate(CLASSIFICATION):
            ax = axes[i, j]
            for variant, style in zip(VARIANTS, ("o-", "o--", "s-", "s--"), strict=True):
                _band(ax, rows["severity"], rows[variant][metric], VARIANT_LABELS[variant], style)
            ax.set_xticks(rows["severity"], labels, fontsize=7)
            ax.set_ylabel(metric)
        axes[0, j].set_title(kind.replace("_", " "), fontsize=10)
        axes[-1, j].set_xlabel("shift level (0 = clean)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Under shift: mean and 95% interval (members: single; ensembles: ensemble)")
    return fig


def _ood_figure(r: dict[str, Any]) -> Any:
    names = [n for n, b in r["ood"].items() if b["headline"]]
    keys = list(SCORE_LABELS)
    fig, axes = outputs.new_figure(1, len(names), size=(2.6, 4.2))
    fig.set_layout_engine("constrained")
    for ax, name in zip(axes[0], names, strict=True):
        b = r["ood"][name]
        cells = [b["scores"][k]["auroc"] for k in keys]
        mean = np.array([c["mean"] for c in cells])
        err = np.array([[c["mean"] - c["low"], c["high"] - c["mean"]] for c in cells]).T
        colors = ["C0" if k.startswith("single") else "C1" for k in keys]
        ax.barh(np.arange(len(keys)), mean, xerr=err, color=colors, capsize=2)
        ax.axvline(b["raw_pixel_knn_auroc"], color="k", ls=":", lw=1, label="raw-pixel 5-NN")
        ax.axvline(0.5, color="0.6", lw=0.8)
        ax.set_xlim(0.0, 1.0)
        ax.set_title(name, fontsize=9)
        ax.set_yticks(
            np.arange(len(keys)),
            [SCORE_LABELS[k] for k in keys] if ax is axes[0, 0] else [],
            fontsize=7,
        )
        ax.invert_yaxis()
        ax.set_xlabel("AUROC")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle("OOD detection AUROC (blue: single model, orange: ensemble; 95% intervals)")
    return fig


def _size_figure(r: dict[str, Any]) -> Any:
    size = r["ensemble_size"]
    fig, axes = outputs.new_figure(1, 4, size=(3.4, 3.0))
    fig.set_layout_engine("constrained")
    for ax, metric in zip(axes[0][:2], ("nll", "ece"), strict=True):
        _band(ax, size["k"], size["test"][metric], "test")
        ax.set(title=f"test {metric}", xlabel="ensemble size k")
    for ax, score in zip(axes[0][2:], ("total_entropy", "mutual_information"), strict=True):
        for name in size["ood_sets"]:
            _band(ax, size["k"], size["auroc"][score][name], name)
        ax.set(title=f"AUROC, {score.replace('_', ' ')}", xlabel="ensemble size k", ylim=(0.0, 1.0))
    axes[0][3].legend(fontsize=6)
    return fig


def _confidence_figure(r: dict[str, Any]) -> Any:
    acc = r["accuracy_vs_confidence"]
    tau = acc["thresholds"]
    fig, axes = outputs.new_figure(1, 2, size=(4.4, 3.4))
    fig.set_layout_engine("constrained")
    for variant, style in (("single", "o-"), ("ensemble", "s-")):
        _band(axes[0, 0], tau, acc["test"][variant]["accuracy"], f"test, {variant}", style)
    for name in (n for n in acc if n != "thresholds"):
        _band(axes[0, 1], tau, acc[name]["ensemble"]["fraction"], f"{name} (ensemble)")
    axes[0, 0].set(xlabel="confidence threshold τ", ylabel="accuracy on examples with p ≥ τ")
    axes[0, 1].set(
        xlabel="confidence threshold τ", ylabel="fraction of examples with p ≥ τ", ylim=(0.0, 1.0)
    )
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].legend(fontsize=6)
    return fig


def _histogram_figure(pred: Predictions) -> Any:
    sl = pred.sets.slices
    compare = [n for n in pred.sets.headline(()) if n in sl] + [
        n for n in pred.sets.ood_names if n.startswith("rotation@")
    ][-1:]
    scores = {
        "single model (member 0) entropy": pred.scores["single/entropy"][0],
        "ensemble 0 total entropy": pred.scores["ensemble/total_entropy"][0],
        "ensemble 0 mutual information": pred.scores["ensemble/mutual_information"][0],
    }
    fig, axes = outputs.new_figure(1, 3, size=(4.4, 3.3))
    for ax, (title, values) in zip(axes[0], scores.items(), strict=True):
        per_set = {n: values[sl[n]] for n in ["test", *compare]}
        edges = np.linspace(0.0, max(float(np.max(v)) for v in per_set.values()) * 1.001 or 1, 31)
        for n, v in per_set.items():
            ax.hist(
                v,
                bins=edges,
                density=True,
                histtype="step",
                linewidth=1.5,
                label="in-distribution test" if n == "test" else n,
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("nats")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize=7)
    return fig


def _reliability_figure(pred: Predictions, num_bins: int) -> Any:
    from experiments.core import metrics

    t = pred.sets.slices["test"]
    fig, axes = outputs.new_figure(1, 4, size=(3.2, 3.2))
    fig.set_layout_engine("constrained")
    for ax, variant in zip(axes[0], VARIANTS, strict=True):
        ece, rel = metrics.calibration(
            pred.log_probs[variant][0, t], pred.sets.labels[t], num_bins=num_bins
        )
        counts, edges = np.asarray(rel["counts"]), np.asarray(rel["bin_edges"])
        acc = np.where(counts > 0, np.asarray(rel["accuracy"], float), np.nan)
        centers = 0.5 * (edges[:-1] + edges[1:])
        ax.bar(centers, np.nan_to_num(acc), width=np.diff(edges), edgecolor="k", alpha=0.7)
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ax.set(
            title=f"{VARIANT_LABELS[variant]} 0 (ECE {ece:.3f})",
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence",
        )
    axes[0][0].set_ylabel("accuracy")
    return fig


def figures(r: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    pred = arrays["pred"]
    return {
        "shift": _shift_figure(r),
        "ood_auroc": _ood_figure(r),
        "ensemble_size": _size_figure(r),
        "accuracy_confidence": _confidence_figure(r),
        "entropy_histograms": _histogram_figure(pred),
        "reliability": _reliability_figure(pred, r["config"]["num_bins"]),
    }


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
