"""Trace-time argument checks (``entjax._checks``): messages that name the argument and the fix.

Seen through every public function that uses them, and directly for the shape and axis checks.
"""

import jax
import numpy as np
import pytest

import entjax
from entjax import _checks as ck

LOGITS = np.zeros((2, 3), np.float32)
LABELS = np.zeros(2, np.int32)
FLOAT_MASK = np.ones(2, np.float32)

WHERE_USERS = {
    "entropy": lambda w: entjax.entropy(LOGITS, where=w),
    "entropy_from_probs": lambda w: entjax.entropy_from_probs(LOGITS, where=w),
    "binary_entropy": lambda w: entjax.binary_entropy(LOGITS[:, 0], where=w),
    "softmax_cross_entropy": lambda w: entjax.softmax_cross_entropy(LOGITS, LOGITS, where=w),
    "integer_ce": lambda w: entjax.softmax_cross_entropy_with_integer_labels(
        LOGITS, LABELS, where=w
    ),
    "cross_entropy_from_probs": lambda w: entjax.cross_entropy_from_probs(LOGITS, LABELS, where=w),
    "sigmoid_bce": lambda w: entjax.sigmoid_binary_cross_entropy(LOGITS[:, 0], 1.0, where=w),
    "kl_divergence": lambda w: entjax.categorical_kl(LOGITS, LOGITS, where=w),
    "js_divergence": lambda w: entjax.js_divergence(LOGITS, LOGITS, where=w),
    "gaussian_kl": lambda w: entjax.gaussian_kl(LOGITS, LOGITS, where=w[:, None]),
    "iwae_bound": lambda w: entjax.iwae_bound(LOGITS[:, 0], where=w),
    "ensemble_uncertainty": lambda w: entjax.ensemble_uncertainty(LOGITS[None], where=w),
    "brier_score": lambda w: entjax.brier_score(LOGITS, LABELS, where=w),
    "reliability_bins": lambda w: entjax.reliability_bins(LOGITS, LABELS, where=w),
    "fused_linear_entropy": lambda w: entjax.fused_linear_entropy(LOGITS, LOGITS.T, where=w),
}


@pytest.mark.parametrize("name", sorted(WHERE_USERS))
def test_where_must_be_boolean(name):
    WHERE_USERS[name](FLOAT_MASK > 0)  # a boolean mask is accepted
    with pytest.raises(TypeError, match="`where` must be a boolean mask, got dtype float32"):
        WHERE_USERS[name](FLOAT_MASK)


STATIC_INTS = {
    "num_bins": lambda v: entjax.expected_calibration_error(LOGITS, LABELS, num_bins=v),
    "chunk_size": lambda v: entjax.fused_linear_entropy(LOGITS, LOGITS.T, chunk_size=v),
    "num_samples": lambda v: entjax.reparameterize(
        jax.random.key(0), LOGITS, LOGITS, num_samples=v
    ),
    "num_classes": lambda v: entjax.vib_loss(LOGITS, LABELS, LOGITS, LOGITS, num_classes=v),
    "k": lambda v: entjax.knn_entropy(np.arange(12.0).reshape(6, 2), k=v),
}


@pytest.mark.parametrize("name", sorted(STATIC_INTS))
def test_static_int_options(name):
    STATIC_INTS[name](np.int64(2))  # NumPy integers are Python ints here
    with pytest.raises(TypeError, match=rf"`{name}` must be a Python int \(a static option\)"):
        STATIC_INTS[name](2.0)
    with pytest.raises(ValueError, match=rf"`{name}` must be >= 1, got 0"):
        STATIC_INTS[name](0)


AXIS_ERRORS = [
    ((), "`axis` must name at least one axis"),
    (2, "`axis` 2 is out of range for an input of rank 2"),
    ((0, -2), r"`axis` \(0, -2\) repeats an axis"),
]


@pytest.mark.parametrize(("axis", "message"), AXIS_ERRORS)
def test_normalize_axes_errors(axis, message):
    with pytest.raises(ValueError, match=message):
        ck.normalize_axes(axis, 2)


@pytest.mark.parametrize(("axis", "want"), [(None, (0, 1, 2)), (-1, (2,)), ((2, 0), (2, 0))])
def test_normalize_axes_keeps_order(axis, want):
    assert ck.normalize_axes(axis, 3) == want


def test_shape_checks_name_the_argument():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"`x` must have rank >= 3, got shape \(2, 3\)"):
        ck.check_min_rank(x, 3, "x")
    with pytest.raises(ValueError, match=r"`x` has shape \(2, 3\), expected \(3, 2\) \(W\.T\)"):
        ck.check_shape(x, (3, 2), "x", expected="W.T")
    with pytest.raises(ValueError, match=r"`x` with shape .* does not broadcast against logits"):
        ck.check_broadcastable(x, (4, 3), "x", to="logits")
    with pytest.raises(TypeError, match="`y` must hold integer class indices"):
        ck.check_integer(x, "y")
    with pytest.raises(TypeError, match=r"cast it with `x.astype\(jnp.float32\)`"):
        ck.check_floating(np.zeros(2, np.int32), "x")
