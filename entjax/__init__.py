"""entjax: numerically safe entropy, cross-entropy, KL, ELBO and information bottleneck for JAX.

Every function is pure, per-example (no reduction), jit/vmap/grad-compatible, computes in at
least float32, and is finite in value and gradient wherever the mathematics is finite.
"""

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
# -- variational / bottleneck / regularisers / objectives: end --

# -- ensembles / calibration: begin --
# -- ensembles / calibration: end --

# -- fused large-vocabulary losses: begin --
# -- fused large-vocabulary losses: end --

__version__ = "0.1.0"

__all__ = sorted(name for name in dir() if not name.startswith("_"))
