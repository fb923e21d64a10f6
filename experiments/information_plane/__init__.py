"""Information plane of an MLP on digits: I(X;T) and I(T;Y) per hidden layer during training.

Shwartz-Ziv & Tishby (2017) plotted, for every hidden layer T of a network trained with SGD, the
mutual information with the input, I(X;T), against the information with the label, I(T;Y), and
saw a "fitting" phase (both grow) followed by a "compression" phase (I(X;T) shrinks). Saxe et al.
(2018) showed that the compression comes from saturating tanh units and the binning estimator,
and vanishes with ReLU. This experiment repeats that comparison with entjax's estimators, and
asks first whether the estimates can show either phase at all.

An MLP from :mod:`experiments.core.models` (``depth`` hidden layers of ``width`` units, tanh or
ReLU, one ensemble per activation with ``seeds`` members trained together by
:mod:`experiments.core.training`, Adam at a constant learning rate) is trained on the digits
training split. Every ``eval_every`` steps the hidden activations of a fixed, class-balanced subset
of the training images (``per_class`` per digit, n in all; balanced so that H(Y) = log2 10 and the
class-conditional kernel terms share one shape) are measured, in bits, X uniform over
those n images, with two estimators, each at several resolutions. **Every resolution is relative
to the layer's spread** ``s``: the standard deviation of the layer's activations over the n
measured images and its units (pooled), per seed and evaluation
(:func:`~.evaluate.activation_spread`). A fixed resolution would not compare layers or
activations: tanh stays within (−1, 1) while ReLU activations grow to tens, so a fixed bin width
is a few bins for tanh and dozens for ReLU, and a fixed kernel width is wide for one and narrow
for the other. With relative scales a change in I(X;T) is a change in how the layer separates the
images relative to its own spread, not a change of its scale.

* **binning** (``entjax.binned_mutual_information``), for every Δ in ``--bin-widths``: every
  unit cut into bins of width Δ·s anchored at 0 (edges at the multiples of Δ·s, so a ReLU's
  zeros share one bin; no value is clipped). The input is the example index, so
  I(X;T) = H(T_binned) ≤ log2 n; I(T;Y) uses the labels.
* **kernel** (``entjax.kernel_mi_upper_bound``), for every fraction in ``--kernel-widths``: the
  noise-regularised representation T = h(X) + N(0, (σ s)² I); I(X;T) is the pairwise-distance
  upper bound (the "KDE" estimate of Saxe et al.) and I(T;Y) = ub(T) − Σ_y p(y) ub(T | Y=y) (the
  Saxe et al. plug-in; a difference of bounds, not a bound).

Beside them, per layer: the spread s itself and the **saturation** — the fraction of the
activations saturated (tanh: |a| > 0.99; ReLU: a = 0) and of the units saturated on every
measured image (dead), the mechanism Saxe et al. hold responsible for tanh's compression.

**The ceiling.** Both I(X;T) estimates are at most log2 n (9.97 bits for n = 1000): once every
measured image falls in its own bin or the kernels no longer overlap, the estimate sits at
log2 n and cannot move, so neither fitting nor compression can show. Every estimate's value at
step 0 is reported against the ceiling, and the figures draw it.

**Claims**, per (activation, estimator setting, layer), from the per-seed curves (``seeds``
members, Student-t 95% intervals, ``ddof = 1``): with the drop = I(X;T) at its peak (after step
0) − I(X;T) at the end, a layer *compresses* when the interval of the drop lies above
``COMPRESSION_THRESHOLD_BITS`` (the peak is a maximum over evaluations, so the drop is ≥ 0 by
construction and needs that margin); it *does not compress* when the interval lies below it and
the estimate is off the ceiling; a layer whose estimate stays within
``CEILING_MARGIN_BITS`` of log2 n at its peak and at the end is *at the ceiling* (undetermined);
anything else is inconclusive. Every verdict holds **within the steps trained**: the end trend
(the slope of I(X;T) over the last quarter of the steps, bits per 1000 steps, with its interval)
says whether a curve was still rising or falling when training stopped. Only estimator settings
whose step-0 value is off the ceiling can show the fitting phase. Nothing here is tuned, so no
split is used for selection.

Run ``python -m experiments.information_plane`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``information_plane.png``, ``ixt_vs_step.png`` and
``saturation.png`` to ``--out``.
"""

from __future__ import annotations

from experiments.core.runner import Experiment
from experiments.information_plane import figures, report
from experiments.information_plane.config import (
    ACTIVATIONS,
    CEILING_MARGIN_BITS,
    COMPRESSION_THRESHOLD_BITS,
    ESTIMATORS,
    NAME,
    SMOKE,
    Config,
)
from experiments.information_plane.evaluate import (
    activation_spread,
    binned_estimates,
    end_slope,
    kernel_estimates,
    layer_summary,
    measurement_indices,
    plane_estimates,
    saturation,
    standardize,
    summarize,
    sweep_estimates,
)
from experiments.information_plane.train import run_activation, train_and_evaluate

EXPERIMENT = Experiment(
    NAME, __doc__, Config, SMOKE, train_and_evaluate, report.report, figures.figures
)
main, run = EXPERIMENT.main, EXPERIMENT.run

__all__ = [
    "ACTIVATIONS",
    "CEILING_MARGIN_BITS",
    "COMPRESSION_THRESHOLD_BITS",
    "ESTIMATORS",
    "EXPERIMENT",
    "NAME",
    "SMOKE",
    "Config",
    "activation_spread",
    "binned_estimates",
    "end_slope",
    "kernel_estimates",
    "layer_summary",
    "main",
    "measurement_indices",
    "plane_estimates",
    "run",
    "run_activation",
    "saturation",
    "standardize",
    "summarize",
    "sweep_estimates",
    "train_and_evaluate",
]
