"""Confidence penalty against label smoothing and temperature scaling, tuned on validation.

The regularised loss of Pereyra et al. (2017) is ``CE + λ · entjax.confidence_penalty(logits)``
= CE − λ H(p): a positive λ rewards predictive entropy and so fights over-confidence. It is
compared in one table with the two standard fixes of the same problem:

* **label smoothing** (Szegedy et al. 2016): cross-entropy against the smoothed target
  :math:`(1 - \\varepsilon)\\, \\mathrm{onehot}(y) + \\varepsilon / C`;
* **temperature scaling** (Guo et al. 2017): the plain cross-entropy model with its logits
  divided by the temperature :math:`T` that minimises the validation NLL
  (:func:`experiments.core.uncertainty.fit_temperature`), a post-hoc fix;

and with plain cross-entropy (λ = ε = 0). One member per (method, setting, seed), all trained
together in one vmapped step (λ and ε are per-member inputs of the entjax objective); member
``s`` of every setting starts from the same parameters. λ (any value of ``--lambdas``, λ = 0
— plain cross-entropy — included) and ε (``--smoothings``) are each chosen by the mean
**validation** NLL over seeds; the test split is used only to report. Reported on the test split,
per method: accuracy and NLL with 95% intervals over seeds *and* test examples (the
hierarchical bootstrap of :func:`experiments.core.stats.seeds_and_examples`), ECE and the mean
predictive entropy with Student-t intervals over ``--seeds`` seeds (``ddof = 1``); paired
differences against CE and CE + temperature scaling (accuracy and NLL from the per-example
differences of the same seed and test example, ECE by seed), and every λ against CE the same
way; a difference is claimed only where its interval excludes 0. The temperature fitted to
plain CE on validation says whether the problem is over- (T > 1) or underconfident (T < 1).

Datasets: ``digits`` (scikit-learn's ``load_digits``, all ten classes, MLP) and ``toy`` (points
x ~ N(0, I₂), label 1 iff x₀ + x₁ > 0, flipped with probability ``--toy-label-noise`` in every
split, few training points and a wide MLP: plain CE fits the flipped labels and is
overconfident, T > 1). For ``toy`` the predicted probability over the plane is plotted per λ.

Run ``python -m experiments.confidence_penalty`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``metrics_vs_lambda.png``, ``toy_surfaces.png`` and
``curves.png`` to ``--out``.
"""

from __future__ import annotations

from experiments.confidence_penalty import figures, report
from experiments.confidence_penalty.config import (
    DATASETS,
    METHOD_LABELS,
    METHODS,
    METRICS,
    NAME,
    SMOKE,
    Config,
)
from experiments.confidence_penalty.evaluate import (
    lambda_vs_ce,
    method_comparisons,
    per_example,
    scores,
    summarize,
)
from experiments.confidence_penalty.train import (
    load,
    make_loss_fn,
    member_grid,
    smoothed_cross_entropy,
    toy_points,
    train_and_evaluate,
)
from experiments.core.runner import Experiment

EXPERIMENT = Experiment(
    NAME, __doc__, Config, SMOKE, train_and_evaluate, report.report, figures.figures
)
main, run = EXPERIMENT.main, EXPERIMENT.run

__all__ = [
    "DATASETS",
    "EXPERIMENT",
    "METHODS",
    "METHOD_LABELS",
    "METRICS",
    "NAME",
    "SMOKE",
    "Config",
    "lambda_vs_ce",
    "load",
    "main",
    "make_loss_fn",
    "member_grid",
    "method_comparisons",
    "per_example",
    "run",
    "scores",
    "smoothed_cross_entropy",
    "summarize",
    "toy_points",
    "train_and_evaluate",
]
