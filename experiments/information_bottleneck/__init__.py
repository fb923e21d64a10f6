"""Deep variational information bottleneck on digits: a β sweep, its ceiling, and baselines.

The model is the VIB of Alemi et al. (2017): a stochastic encoder
:math:`p(z \\mid x) = \\mathcal N(\\mu(x), \\mathrm{diag}\\, e^{v(x)})` (an MLP from
:mod:`experiments.core.models` with ``2 · latent_dim`` outputs), one reparameterised sample
:math:`z` per example, and a linear softmax decoder :math:`q(y \\mid z)`. The loss is
``entjax.vib_loss``:
:math:`\\mathrm{CE} + \\beta\\, \\mathrm{KL}(p(z \\mid x) \\,\\|\\, \\mathcal N(0, I))`.
Two baselines share the architecture (Alemi et al.'s Table 1 has both): the **deterministic**
network (β = 0 and no noise: :math:`z = \\mu(x)`, plain cross-entropy) and the same deterministic
network with the **confidence penalty** ``CE − λ H`` (Pereyra et al. 2017). One member per
(method, β or λ, seed), all trained together in one vmapped step (β, λ and the noise switch are
per-member inputs of the entjax objective); member ``s`` of every setting starts from the same
parameters.

Per member, in bits: the variational upper bound on :math:`I(X;Z)` (the mean KL, the *rate*),
the **direct estimate** of :math:`I(X;Z)` and the lower bound on :math:`I(Z;Y)`
(:math:`H(Y) - \\mathrm{CE}`, with :math:`H(Y)` from the training label frequencies and CE
averaged over ``--eval-samples`` latent samples), plus accuracy, NLL and ECE of the
sample-averaged predictive distribution. **The ceiling**: with X uniform over the N images of a
split, :math:`I(X;Z) \\le H(X) = \\log_2 N` (≈ 8.5 bits for the 360 test images), whatever the
encoder. A KL bound above :math:`\\log_2 N` is vacuous: it says nothing about :math:`I(X;Z)`
(not even that it is near the ceiling). So :math:`I(X;Z)` is also estimated directly from the
trained encoders (:func:`~.evaluate.mixture_mutual_information`): Z is a mixture of the N
Gaussians :math:`q(z \\mid x_i) = \\mathcal N(\\mu_i, \\sigma_i^2)` and
:math:`I(X;Z) = \\mathbb E_i \\mathbb E_{z \\sim q(z \\mid x_i)} [\\log q(z \\mid x_i) - \\log
\\tfrac1N \\sum_j q(z \\mid x_j)]`, Monte Carlo over z with ``--mi-samples`` draws per image, at
most :math:`\\log_2 N` by construction; for a deterministic encoder it is the exact
:math:`H(\\mu(X))` (:math:`\\log_2 N` for distinct codes). The report and the figures give the
direct estimate beside the bound and draw :math:`\\log_2 N`.

β (among ``--betas``) and λ (among ``--cp-lambdas``) are each chosen by the mean **validation**
NLL over seeds; the test split only reports. Every number is a mean with a Student-t 95%
interval over ``--seeds`` seeds (``ddof = 1``), and the methods are compared by paired
differences by seed — a difference is claimed only where its interval excludes 0. Expected
(Alemi et al.): I(X;Z) falls as β grows while accuracy holds until β is large, then both
bounds collapse towards 0; a well-chosen β is competitive with the baselines.

Run ``python -m experiments.information_bottleneck`` (``--smoke`` for a seconds-long check).
Writes ``results.json``, ``report.md``, ``information_plane.png`` and ``curves.png`` to ``--out``.
"""

from __future__ import annotations

from experiments.core.runner import Experiment
from experiments.information_bottleneck import figures, report
from experiments.information_bottleneck.config import (
    METHOD_LABELS,
    METHODS,
    NAME,
    NAMES,
    SMOKE,
    Config,
)
from experiments.information_bottleneck.evaluate import (
    comparisons,
    deterministic_mutual_information,
    make_evaluator,
    mixture_mutual_information,
    summarize,
)
from experiments.information_bottleneck.train import (
    VIB,
    make_loss_fn,
    mean_logits,
    member_grid,
    train_and_evaluate,
)

EXPERIMENT = Experiment(
    NAME, __doc__, Config, SMOKE, train_and_evaluate, report.report, figures.figures
)
main, run = EXPERIMENT.main, EXPERIMENT.run

__all__ = [
    "EXPERIMENT",
    "METHODS",
    "METHOD_LABELS",
    "NAME",
    "NAMES",
    "SMOKE",
    "VIB",
    "Config",
    "comparisons",
    "deterministic_mutual_information",
    "main",
    "make_evaluator",
    "make_loss_fn",
    "mean_logits",
    "member_grid",
    "mixture_mutual_information",
    "run",
    "summarize",
    "train_and_evaluate",
]
