"""A small VAE on binarised digits: IWAE-k against its VAE-k control (Burda et al. 2016).

Data: scikit-learn's ``load_digits`` (8×8), pixels binarised at ``--threshold``, so the Bernoulli
decoder gives a proper likelihood and bounds are comparable numbers in nats per image.

Model: encoder :math:`q(z \\mid x) = \\mathcal N(\\mu(x), \\mathrm{diag}\\, e^{v(x)})`, decoder
:math:`p(x \\mid z) = \\prod_{i=1}^{64} \\mathrm{Bernoulli}(\\sigma(f_i(z)))`, both MLPs from
:mod:`experiments.core.models`; prior :math:`\\mathcal N(0, I)`. With
:math:`\\log w_s = \\log p(x \\mid z_s) + \\log p(z_s) - \\log q(z_s \\mid x)`,
:math:`z_s \\sim q`, the training objectives are (Burda, Grosse & Salakhutdinov 2016, §5):

* **ELBO** (k = 1): :math:`\\log p(x \\mid z_1) - \\mathrm{KL}(q \\,\\|\\, p)`
  (``entjax.elbo``, analytic KL);
* **VAE-k**, the control: the same ELBO with its reconstruction term averaged over k samples,
  :math:`\\frac1k \\sum_s \\log p(x \\mid z_s) - \\mathrm{KL}` — k samples, the *same* bound;
* **IWAE-k**: :math:`\\mathcal L_k = \\log \\frac1k \\sum_s w_s` (``entjax.iwae_bound``) — k
  samples, a tighter bound.

VAE-k and IWAE-k spend the same samples, so a difference between them is the bound, not the
sample count. Every (objective, k) is its own :class:`~experiments.core.training.Members` of
``--seeds`` members drawing exactly its own k samples per example (no member computes samples it
discards). Member ``s`` of every arm starts from the same initialisation and sees the same
minibatches and the same sampling noise, so the per-seed differences between arms are paired
with common random numbers.

At the end, per member: :math:`\\log p(x)` estimated by IWAE-``--final-k`` on the test split
and on a training subset of the same size (their difference is the generalisation gap), the
ELBO (reconstruction term over ``--final-k`` samples, analytic KL), the test IWAE-k for
k ∈ ``--eval-ks``, and the number of **active latent units**: dimensions j with
:math:`\\mathrm{Cov}_x(\\mathbb E_{q(z \\mid x)}[z_j]) = \\mathrm{Var}_x(\\mu_j(x)) > 0.01`
over the test images (Burda et al.'s criterion). Every number is a mean with a Student-t 95%
interval over seeds; arms are compared by the paired difference over seeds, and a difference is
claimed only where its interval excludes 0. During training the bounds are recorded on the
validation split. Nothing is tuned, so nothing is selected on any split.

The IWAE-k estimate of log p(x) is a lower bound in expectation that rises with k, and more
slowly for some models than others, so a difference of estimates can be a difference of
convergence. The **convergence check** draws ``max(--check-ks)`` (5000) importance samples for
each of the first ``--check-images`` (100) test images and every member, in chunks of
``--check-chunk``, and reads IWAE-k for every k in ``--check-ks`` from them (the mean over the
disjoint blocks of k samples); intervals over seeds and images together
(:func:`experiments.core.stats.seeds_and_examples`). log p(x) is compared at the largest k, and
a gain in test log p(x) is claimed only where it exceeds the losing arm's remaining rise of the
estimate (from ``--final-k``, or the nearest check k below it, to the largest).

Expected (Burda et al.): IWAE-k reaches a higher log p(x) than VAE-k, with more active units
and a lower ELBO. ELBO ≤ IWAE-5 ≤ IWAE-50 ≤ IWAE-1000 for every model is their theorem (in
expectation), a check of the estimates rather than a finding.

Run ``python -m experiments.elbo`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``curves.png``, ``comparison.png``, ``convergence.png``,
``samples.png`` and ``reconstructions.png``.
"""

from __future__ import annotations

from experiments.core.runner import Experiment
from experiments.elbo import figures, report
from experiments.elbo.config import (
    ACTIVE_THRESHOLD,
    MAX_ENTROPY,
    MEASURES,
    NAME,
    NUM_PIXELS,
    SMOKE,
    Config,
    arm_name,
)
from experiments.elbo.evaluate import (
    Evaluators,
    active_units,
    check_estimates,
    comparisons,
    convergence,
    final_measures,
    iwae_estimates,
    make_evaluator,
    make_log_weights,
    pairs,
    summarize,
)
from experiments.elbo.models import VAE, bernoulli_log_lik, bounds, log_normal_diag
from experiments.elbo.train import binarize, load, make_loss_fn, train_and_evaluate

EXPERIMENT = Experiment(
    NAME, __doc__, Config, SMOKE, train_and_evaluate, report.report, figures.figures
)
main, run = EXPERIMENT.main, EXPERIMENT.run

__all__ = [
    "ACTIVE_THRESHOLD",
    "EXPERIMENT",
    "MAX_ENTROPY",
    "MEASURES",
    "NAME",
    "NUM_PIXELS",
    "SMOKE",
    "VAE",
    "Config",
    "Evaluators",
    "active_units",
    "arm_name",
    "bernoulli_log_lik",
    "binarize",
    "bounds",
    "check_estimates",
    "comparisons",
    "convergence",
    "final_measures",
    "iwae_estimates",
    "load",
    "log_normal_diag",
    "main",
    "make_evaluator",
    "make_log_weights",
    "make_loss_fn",
    "pairs",
    "run",
    "summarize",
    "train_and_evaluate",
]
