"""Why cross-entropy and not MSE for classification: gradients and training speed.

Two parts:

1. **Gradient at a confidently wrong prediction** (no training). Ten classes, true class 0, one
   wrong class with logit ``t`` and the rest 0, so the wrong class gets probability
   :math:`q = e^t / (e^t + 9)`. With :math:`p = \\mathrm{softmax}(z)` and one-hot :math:`y`:

   * cross-entropy :math:`-\\log p_y` has :math:`\\partial/\\partial z_y = p_y - 1 \\to -1`;
   * MSE on the probabilities (the Brier score) :math:`\\sum_c (p_c - y_c)^2` has
     :math:`\\partial/\\partial z_y = 2 p_y (2 p_y - 1 - \\sum_c p_c^2)`, which goes to 0
     as :math:`p_y \\to 0`: the more confidently wrong the model, the *less* MSE pushes the
     true logit up;
   * the square loss on the logits (Hui & Belkin 2021) :math:`\\frac1C \\sum_c (z_c - y_c)^2`
     has :math:`\\partial/\\partial z_y = \\frac2C (z_y - 1)`: ``-2/C`` here, whatever ``t``.

   Closed forms are checked against ``jax.grad``.

2. **Training speed** on digits: MLP members trained by plain SGD with cross-entropy, the Brier
   score ("MSE") or the square loss on logits, from starts of increasing confidence: the initial
   last-layer weights and bias multiplied by each scale of ``--init-scales`` (×1 is the
   standard initialisation; the logits of the initial network are scaled, and training is free
   to shrink them again — no temperature is applied after step 0). Every (loss, scale) pair
   trains at every learning rate of ``--learning-rates`` (one vmapped step; a member's rate
   scales its gradient, which for plain SGD *is* a per-member learning rate) and gets the rate
   with the highest mean validation accuracy over the evaluations after step 0 — the area under
   the validation curve, which rewards reaching a high accuracy early — chosen on the validation
   split only, at each scale; a rate at which any seed's loss becomes non-finite is marked
   diverged and never chosen (the sweep goes on). Member ``s`` of every setting starts from the
   same parameters (before the last-layer scaling).

   Reported at the chosen rate, over ``--seeds`` seeds (mean and Student-t 95% interval,
   ``ddof = 1``): the number of steps until the test accuracy first reaches
   ``--target-accuracy`` (evaluated every ``--eval-every`` steps), the final test accuracy and
   NLL, paired differences by seed against cross-entropy at the same scale and against the same
   loss at scale 1 (a difference is claimed only where its interval excludes 0), and the
   **measured** gradients of part 1's quantity during training: at every evaluation, the mean
   over the validation split of |∂L/∂z_y| of the member's own loss (and of ‖∂L/∂z‖₂ and the
   root-mean-square logit), so part 1's single-example picture can be read against what
   training actually saw.

Run ``python -m experiments.entropy_vs_mse`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``gradients.png``, ``training.png``, ``measured_gradients.png``
and ``selection.png``.

References: Hui & Belkin, *Evaluation of Neural Architectures Trained with Square Loss vs
Cross-Entropy in Classification Tasks*, ICLR 2021. Brier, *Verification of forecasts expressed
in terms of probability*, 1950.
"""

from __future__ import annotations

from experiments.core.runner import Experiment
from experiments.entropy_vs_mse import figures, report
from experiments.entropy_vs_mse.config import (
    INIT_SCALES,
    LOSS_LABELS,
    LOSSES,
    NAME,
    SMOKE,
    Config,
)
from experiments.entropy_vs_mse.evaluate import steps_to_reach, summarize
from experiments.entropy_vs_mse.gradients import (
    LOSS_FNS,
    gradient_study,
    gradient_table,
    square_loss,
)
from experiments.entropy_vs_mse.train import (
    logit_gradients,
    make_loss_fn,
    member_grid,
    scale_last_layer,
    train_and_evaluate,
)

EXPERIMENT = Experiment(
    NAME, __doc__, Config, SMOKE, train_and_evaluate, report.report, figures.figures
)
main, run = EXPERIMENT.main, EXPERIMENT.run

__all__ = [
    "EXPERIMENT",
    "INIT_SCALES",
    "LOSSES",
    "LOSS_FNS",
    "LOSS_LABELS",
    "NAME",
    "SMOKE",
    "Config",
    "gradient_study",
    "gradient_table",
    "logit_gradients",
    "main",
    "make_loss_fn",
    "member_grid",
    "run",
    "scale_last_layer",
    "square_loss",
    "steps_to_reach",
    "summarize",
    "train_and_evaluate",
]
