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

Per member, in bits: the variational upper bound on :math:`I(X;Z)` (the mean KL, the *rate*)
and the lower bound on :math:`I(Z;Y)` (:math:`H(Y) - \\mathrm{CE}`, with :math:`H(Y)` from the
training label frequencies and CE averaged over ``--eval-samples`` latent samples), plus
accuracy, NLL and ECE of the sample-averaged predictive distribution. **The ceiling**: with X
uniform over the N images of a split, :math:`I(X;Z) \\le H(X) = \\log_2 N` (≈ 8.5 bits for the
360 test images), whatever the encoder, so a KL bound above :math:`\\log_2 N` says only that the
rate is at the ceiling; the report gives :math:`\\min(\\mathrm{bound}, \\log_2 N)` beside the bound
and the figure draws :math:`\\log_2 N`. A deterministic encoder of distinct images sits at the
ceiling.

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
from experiments.information_bottleneck.evaluate import comparisons, make_evaluator, summarize
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
    "main",
    "make_evaluator",
    "make_loss_fn",
    "mean_logits",
    "member_grid",
    "run",
    "summarize",
    "train_and_evaluate",
]
