"""entjax: numerically safe entropy, cross-entropy, KL, ELBO and information bottleneck for JAX.

Every function is pure, per-example (no reduction), jit/vmap/grad-compatible, computes in at
least float32, and is finite in value and gradient wherever the mathematics is finite.
"""

from ._bottleneck import (
    VIBLoss as VIBLoss,
    vib_loss as vib_loss,
)
from ._calibration import (
    ReliabilityBins as ReliabilityBins,
    brier_score as brier_score,
    expected_calibration_error as expected_calibration_error,
    fit_temperature as fit_temperature,
    negative_log_likelihood as negative_log_likelihood,
    reliability_bins as reliability_bins,
)
from ._cross_entropy import (
    cross_entropy_from_probs as cross_entropy_from_probs,
    perplexity as perplexity,
    sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy,
    softmax_cross_entropy as softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from ._detection import (
    RiskCoverage as RiskCoverage,
    aupr as aupr,
    aurc as aurc,
    auroc as auroc,
    energy_score as energy_score,
    excess_aurc as excess_aurc,
    fpr_at_tpr as fpr_at_tpr,
    max_softmax as max_softmax,
    risk_coverage as risk_coverage,
)
from ._divergences import (
    categorical_kl as categorical_kl,
    gaussian_kl as gaussian_kl,
    js_divergence as js_divergence,
    kl_divergence as kl_divergence,
)
from ._ensembles import (
    EnsembleUncertainty as EnsembleUncertainty,
    ensemble_log_probs as ensemble_log_probs,
    ensemble_uncertainty as ensemble_uncertainty,
    pairwise_kl as pairwise_kl,
)
from ._entropy import (
    binary_entropy as binary_entropy,
    conditional_entropy as conditional_entropy,
    entropy as entropy,
    entropy_from_probs as entropy_from_probs,
    mutual_information as mutual_information,
)
from ._estimators import (
    binned_mutual_information as binned_mutual_information,
    dv_bound as dv_bound,
    infonce_bound as infonce_bound,
    kernel_mi_lower_bound as kernel_mi_lower_bound,
    kernel_mi_upper_bound as kernel_mi_upper_bound,
    knn_entropy as knn_entropy,
    ksg_mutual_information as ksg_mutual_information,
    mine_bound as mine_bound,
    nwj_bound as nwj_bound,
)
from ._fused import (
    FusedEntropy as FusedEntropy,
    fused_linear_cross_entropy as fused_linear_cross_entropy,
    fused_linear_entropy as fused_linear_entropy,
)
from ._maxent import (
    MaxEntResult as MaxEntResult,
    max_entropy as max_entropy,
    validate_max_entropy as validate_max_entropy,
)
from ._objectives import (
    Term as Term,
    make_objective as make_objective,
    term as term,
    value_fn as value_fn,
)
from ._regularizers import (
    confidence_penalty as confidence_penalty,
)
from ._validation import (
    checked as checked,
    validate_labels as validate_labels,
    validate_probs as validate_probs,
)
from ._variational import (
    Elbo as Elbo,
    elbo as elbo,
    iwae_bound as iwae_bound,
    reparameterize as reparameterize,
)

__version__ = "0.1.0"

__all__ = (
    "Elbo",
    "EnsembleUncertainty",
    "FusedEntropy",
    "MaxEntResult",
    "ReliabilityBins",
    "RiskCoverage",
    "Term",
    "VIBLoss",
    "aupr",
    "aurc",
    "auroc",
    "binary_entropy",
    "binned_mutual_information",
    "brier_score",
    "categorical_kl",
    "checked",
    "conditional_entropy",
    "confidence_penalty",
    "cross_entropy_from_probs",
    "dv_bound",
    "elbo",
    "energy_score",
    "ensemble_log_probs",
    "ensemble_uncertainty",
    "entropy",
    "entropy_from_probs",
    "excess_aurc",
    "expected_calibration_error",
    "fit_temperature",
    "fpr_at_tpr",
    "fused_linear_cross_entropy",
    "fused_linear_entropy",
    "gaussian_kl",
    "infonce_bound",
    "iwae_bound",
    "js_divergence",
    "kernel_mi_lower_bound",
    "kernel_mi_upper_bound",
    "kl_divergence",
    "knn_entropy",
    "ksg_mutual_information",
    "make_objective",
    "max_entropy",
    "max_softmax",
    "mine_bound",
    "mutual_information",
    "negative_log_likelihood",
    "nwj_bound",
    "pairwise_kl",
    "perplexity",
    "reliability_bins",
    "reparameterize",
    "risk_coverage",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "term",
    "validate_labels",
    "validate_max_entropy",
    "validate_probs",
    "value_fn",
    "vib_loss",
)
