"""Does an ensemble know what it doesn't know? Repeated deep ensembles against single models.

``R`` independent ensembles of ``K`` members (``--seeds R --members K``: R·K Flax NNX models with
their own initialisations and data orders) train together in one jitted, vmapped step sharded
over all devices, on scikit-learn's digits (8×8, MLP) or a real MNIST sample (28×28, CNN) with
two classes held out. Every reported number carries a 95% interval over replicates (the R
ensembles for ensemble numbers, the R·K members for single-model numbers) and, for test accuracy,
NLL, Brier and the bootstrapped OOD sets, over the test examples too (a hierarchical bootstrap).
Confirmatory claims come from one family of comparisons declared in :mod:`.config`
(``PRIMARY_COMPARISONS``, on the OOD sets raw pixels do not solve) with Holm's correction;
everything else is labelled exploratory.

* Methods at a stated budget (:mod:`.methods`, ``--methods``): beside the deep ensembles, one
  snapshot run (cyclic cosine learning rate, K snapshots; Huang et al. 2017) and one MC-dropout
  run (K test-time passes; Gal & Ghahramani 2016) per ensemble, trained in the same vmapped
  program; each method evaluated as R ensembles of K members with the same code, its scores in
  the OOD tables and its comparison with the deep ensemble in the declared family.
* In distribution: accuracy, NLL, Brier, ECE of single models and ensembles, raw and
  temperature-scaled (T fit on the validation split by NLL; Guo et al. 2017).
* OOD detection (every image of the held-out classes, blends of two test images of different
  classes, uniform noise, another dataset for MNIST, shifted test sets) by AUROC, AUPR (OOD
  positive) and FPR at 95% TPR of: single-model entropy, max-softmax (Hendrycks & Gimpel 2017),
  energy (Liu et al. 2020), the temperature-scaled single model, the k-NN distance in
  penultimate feature space (Sun et al. 2022), ensemble total entropy, ensemble max-softmax,
  mutual information, the mean pairwise KL, and the ensemble's energy and k-NN distance (its
  members' means); a raw-pixel 5-NN AUROC says how easy each set is (a set of other images below
  0.8 is near-OOD).
* Shift (Ovadia et al. 2019): the four metrics against severity per shift family; accuracy
  against confidence (Lakshminarayanan et al. 2017); metrics against ensemble size over random
  member subsets; and the mechanism behind the rotation failure, checked with probes.
* Selective classification (:mod:`.selective`): AURC and E-AURC of abstaining by max
  probability, and each score's AUROC for telling wrong predictions from right ones, per variant.
* The seed's claim (:mod:`.seed_claim`), per input: how often the ensemble's entropy exceeds the
  largest member entropy (the test) and the mean member entropy (Jensen's inequality: always).
* Replication (:mod:`.replicate`): the declared comparisons of finished runs with their own
  seeds, data splits and held-out classes, pooled (t interval over the runs, Holm).

    python -m experiments.ensemble_entropy --out runs/ensemble
    python -m experiments.ensemble_entropy --dataset mnist --out runs/ensemble_mnist
    python -m experiments.ensemble_entropy --smoke --out runs/smoke      # seconds, for tests
    python -m experiments.ensemble_entropy.replicate RUN RUN ... --out runs/pooled

Outputs in ``--out``: ``results.json``, ``report.md``, PNG figures, ``predictions.npz`` (every
member's logits, the snapshot and MC-dropout members' logits and, in float16, the penultimate
features on every set and on the training images, so the k-NN score can be recomputed, with the
ensemble layout) and ``checkpoints/`` (orbax).

The package, in the layout of flax's ``examples/imagenet/``: :mod:`.config` (``Config``,
``SMOKE``, the R×K ``Layout``, labels), :mod:`.train` (``train_and_evaluate``), :mod:`.evalsets`
and :mod:`.evaluate` / :mod:`.methods` / :mod:`.rotation` / :mod:`.selective` /
:mod:`.seed_claim` (every number, computed once), :mod:`.report` and :mod:`.figures` (read
the results only), :mod:`.loader`
(``load_run``), :mod:`.replicate` (pooling replications).
"""

from __future__ import annotations

from experiments.core.runner import Experiment
from experiments.ensemble_entropy import figures, report
from experiments.ensemble_entropy.config import (
    DATASET_DEFAULTS as DATASET_DEFAULTS,
    NAME as NAME,
    SMOKE as SMOKE,
    Config as Config,
    Layout as Layout,
)
from experiments.ensemble_entropy.loader import TrainedRun as TrainedRun, load_run as load_run
from experiments.ensemble_entropy.train import train_and_evaluate as train_and_evaluate

EXPERIMENT = Experiment(
    NAME, __doc__, Config, SMOKE, train_and_evaluate, report.report, figures.figures
)
main, run = EXPERIMENT.main, EXPERIMENT.run

__all__ = [
    "DATASET_DEFAULTS",
    "EXPERIMENT",
    "NAME",
    "SMOKE",
    "Config",
    "Layout",
    "TrainedRun",
    "load_run",
    "main",
    "run",
    "train_and_evaluate",
]
