"""entjax: numerically safe entropy, cross-entropy, KL, ELBO and information bottleneck for JAX.

Every function is pure, per-example (no reduction), jit/vmap/grad-compatible, computes in at
least float32, and is finite in value and gradient wherever the mathematics is finite.
"""

# ruff: noqa: I001  (imports are grouped by topic section, not sorted globally)

# Core information measures (issue: foundation).
from ._cross_entropy import cross_entropy_from_probs as cross_entropy_from_probs
from ._cross_entropy import perplexity as perplexity
from ._cross_entropy import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from ._cross_entropy import softmax_cross_entropy as softmax_cross_entropy
from ._cross_entropy import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from ._divergences import js_divergence as js_divergence
from ._divergences import kl_divergence as kl_divergence
from ._entropy import binary_entropy as binary_entropy
from ._entropy import conditional_entropy as conditional_entropy
from ._entropy import entropy as entropy
from ._entropy import entropy_from_probs as entropy_from_probs
from ._entropy import mutual_information as mutual_information
from ._validation import checked as checked
from ._validation import validate_labels as validate_labels
from ._validation import validate_probs as validate_probs

# -- variational / bottleneck / regularisers / objectives: begin --
from ._bottleneck import VIBLoss as VIBLoss
from ._bottleneck import vib_loss as vib_loss
from ._divergences import gaussian_kl as gaussian_kl
from ._objectives import Term as Term
from ._objectives import make_objective as make_objective
from ._objectives import term as term
from ._objectives import value_fn as value_fn
from ._regularizers import confidence_penalty as confidence_penalty
from ._variational import Elbo as Elbo
from ._variational import elbo as elbo
from ._variational import iwae_bound as iwae_bound
from ._variational import reparameterize as reparameterize
# -- variational / bottleneck / regularisers / objectives: end --

# -- ensembles / calibration: begin --
from ._calibration import ReliabilityBins as ReliabilityBins
from ._calibration import brier_score as brier_score
from ._calibration import expected_calibration_error as expected_calibration_error
from ._calibration import negative_log_likelihood as negative_log_likelihood
from ._calibration import reliability_bins as reliability_bins
from ._ensembles import EnsembleUncertainty as EnsembleUncertainty
from ._ensembles import ensemble_log_probs as ensemble_log_probs
from ._ensembles import ensemble_uncertainty as ensemble_uncertainty
from ._ensembles import pairwise_kl as pairwise_kl
# -- ensembles / calibration: end --

# -- fused large-vocabulary losses: begin --
from ._fused import FusedEntropy as FusedEntropy
from ._fused import fused_linear_cross_entropy as fused_linear_cross_entropy
from ._fused import fused_linear_entropy as fused_linear_entropy
# -- fused large-vocabulary losses: end --

# -- mutual-information estimators: begin --
from ._estimators import binned_mutual_information as binned_mutual_information
from ._estimators import dv_bound as dv_bound
from ._estimators import infonce_bound as infonce_bound
from ._estimators import kernel_mi_lower_bound as kernel_mi_lower_bound
from ._estimators import kernel_mi_upper_bound as kernel_mi_upper_bound
from ._estimators import knn_entropy as knn_entropy
from ._estimators import ksg_mutual_information as ksg_mutual_information
from ._estimators import mine_bound as mine_bound
from ._estimators import nwj_bound as nwj_bound
# -- mutual-information estimators: end --

__version__ = "0.1.0"

__all__ = sorted(name for name in dir() if not name.startswith("_"))
