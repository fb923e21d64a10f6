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
``s`` of every setting starts from the same parameters. λ (among the positive values of
``--lambdas``) and ε (``--smoothings``) are each chosen by the mean **validation** NLL over
seeds; the test split is used only to report. Reported on the test split, per method: accuracy,
NLL, ECE and the mean predictive entropy — mean and Student-t 95% interval over ``--seeds``
seeds (``ddof = 1``) — and paired differences by seed against CE and CE + temperature scaling;
a difference is claimed only where its interval excludes 0. The whole λ sweep is reported too:
large λ over-regularises, predictions approach the uniform distribution (entropy → log C).

Datasets: ``digits`` (scikit-learn's ``load_digits``, all ten classes, MLP) and ``toy`` (points
x ~ N(0, I₂), label 1 iff x₀ + x₁ > 0, small MLP; separable, so unregularised CE drives the
confidence towards 1). For ``toy`` the predicted probability over the plane is plotted per λ.

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
from experiments.confidence_penalty.evaluate import method_comparisons, scores, summarize
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
    "load",
    "main",
    "make_loss_fn",
    "member_grid",
    "method_comparisons",
    "run",
    "scores",
    "smoothed_cross_entropy",
    "summarize",
    "toy_points",
    "train_and_evaluate",
]
