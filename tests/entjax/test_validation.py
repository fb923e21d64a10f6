"""Trace-time shape/dtype errors that name the argument, and the opt-in value checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import entjax

S = jax.ShapeDtypeStruct
F = jnp.float32
INT = jnp.int32


def trace(fn, *args):
    """Trace ``fn`` under ``jax.jit`` without data: errors here are trace-time errors."""
    return jax.jit(fn).trace(*args)


# (function of the abstract arguments, arguments, exception, message fragment)
TRACE_ERRORS = {
    # Integer logits / probabilities.
    "entropy_int_logits": (entjax.entropy, (S((3, 4), INT),), TypeError, "`logits`"),
    "entropy_from_probs_int": (entjax.entropy_from_probs, (S((3, 4), INT),), TypeError, "`probs`"),
    "binary_entropy_int": (entjax.binary_entropy, (S((3,), INT),), TypeError, "`logits`"),
    "int_ce_int_logits": (
        entjax.softmax_cross_entropy_with_integer_labels,
        (S((3, 4), INT), S((3,), INT)),
        TypeError,
        "`logits`",
    ),
    "soft_ce_int_logits": (
        entjax.softmax_cross_entropy,
        (S((3, 4), INT), S((3, 4), F)),
        TypeError,
        "`logits`",
    ),
    "bce_int_logits": (
        entjax.sigmoid_binary_cross_entropy,
        (S((3,), INT), S((3,), F)),
        TypeError,
        "`logits`",
    ),
    "kl_int_p": (entjax.categorical_kl, (S((3, 4), INT), S((3, 4), F)), TypeError, "`p_logits`"),
    "kl_int_q": (entjax.categorical_kl, (S((3, 4), F), S((3, 4), INT)), TypeError, "`q_logits`"),
    "js_int_p": (entjax.js_divergence, (S((3, 4), INT), S((3, 4), F)), TypeError, "`p_logits`"),
    "probs_ce_int_probs": (
        entjax.cross_entropy_from_probs,
        (S((3, 4), INT), S((3,), INT)),
        TypeError,
        "`probs`",
    ),
    "mi_int": (entjax.mutual_information, (S((3, 4), INT),), TypeError, "`joint_probs`"),
    "perplexity_int_logits": (
        entjax.perplexity,
        (S((2, 3, 4), INT), S((2, 3), INT)),
        TypeError,
        "`logits`",
    ),
    # Float labels where integers are required.
    "int_ce_float_labels": (
        entjax.softmax_cross_entropy_with_integer_labels,
        (S((3, 4), F), S((3,), F)),
        TypeError,
        "`labels`",
    ),
    "perplexity_float_labels": (
        entjax.perplexity,
        (S((2, 3, 4), F), S((2, 3), F)),
        TypeError,
        "`labels`",
    ),
    # Wrong rank.
    "entropy_scalar": (entjax.entropy, (S((), F),), ValueError, "`logits`"),
    "entropy_from_probs_scalar": (entjax.entropy_from_probs, (S((), F),), ValueError, "`probs`"),
    "mi_vector": (entjax.mutual_information, (S((4,), F),), ValueError, "`joint_probs`"),
    "conditional_entropy_vector": (
        entjax.conditional_entropy,
        (S((4,), F),),
        ValueError,
        "`joint_probs`",
    ),
    "perplexity_rank1_logits": (
        entjax.perplexity,
        (S((4,), F), S((), INT)),
        ValueError,
        "`logits`",
    ),
    "int_ce_labels_rank": (
        entjax.softmax_cross_entropy_with_integer_labels,
        (S((3, 4), F), S((3, 1), INT)),
        ValueError,
        "`labels`",
    ),
    # Mismatched shapes.
    "int_ce_labels_shape": (
        entjax.softmax_cross_entropy_with_integer_labels,
        (S((3, 4), F), S((4,), INT)),
        ValueError,
        "`labels`",
    ),
    "soft_ce_labels_shape": (
        entjax.softmax_cross_entropy,
        (S((3, 4), F), S((3, 5), F)),
        ValueError,
        "`labels`",
    ),
    "bce_labels_shape": (
        entjax.sigmoid_binary_cross_entropy,
        (S((3, 4), F), S((2, 4), F)),
        ValueError,
        "`labels`",
    ),
    "probs_ce_labels_shape": (
        entjax.cross_entropy_from_probs,
        (S((3, 4), F), S((3, 5), F)),
        ValueError,
        "`labels`",
    ),
    "probs_ce_int_labels_shape": (
        entjax.cross_entropy_from_probs,
        (S((3, 4), F), S((4,), INT)),
        ValueError,
        "`labels`",
    ),
    "kl_shapes": (entjax.categorical_kl, (S((3, 4), F), S((3, 5), F)), ValueError, "`p_logits`"),
    "js_shapes": (entjax.js_divergence, (S((3, 4), F), S((2, 4), F)), ValueError, "`q_logits`"),
}


@pytest.mark.parametrize("name", list(TRACE_ERRORS))
def test_trace_time_errors_name_the_argument(name):
    fn, args, exc, fragment = TRACE_ERRORS[name]
    with pytest.raises(exc, match=fragment):
        trace(fn, *args)


_ce = entjax.softmax_cross_entropy_with_integer_labels
X34, Y3 = S((3, 4), F), S((3,), INT)

# (function, abstract arguments, exception, message fragment) for options.
OPTION_ERRORS = {
    "class_weights_shape": (
        lambda x, y, w: _ce(x, y, class_weights=w),
        (X34, Y3, S((5,), F)),
        ValueError,
        "`class_weights`",
    ),
    "class_weights_dtype": (
        lambda x, y, w: _ce(x, y, class_weights=w),
        (X34, Y3, S((4,), INT)),
        TypeError,
        "`class_weights`",
    ),
    "label_smoothing_range": (
        lambda x, y: _ce(x, y, label_smoothing=1.5),
        (X34, Y3),
        ValueError,
        "`label_smoothing`",
    ),
    "where_dtype": (
        lambda x, w: entjax.entropy(x, where=w),
        (X34, S((3, 4), INT)),
        TypeError,
        "`where`",
    ),
    "where_shape": (
        lambda x, w: entjax.entropy(x, where=w),
        (X34, S((2, 4), jnp.bool_)),
        ValueError,
        "`where`",
    ),
    "where_per_example_shape": (
        lambda x, y, w: _ce(x, y, where=w),
        (X34, Y3, S((5,), jnp.bool_)),
        ValueError,
        "`where`",
    ),
    "base_one": (lambda x: entjax.entropy(x, base=1.0), (X34,), ValueError, "`base`"),
    "base_negative": (
        lambda x: entjax.categorical_kl(x, x, base=-2.0),
        (X34,),
        ValueError,
        "`base`",
    ),
    "axis_range": (lambda x: entjax.entropy(x, axis=2), (X34,), ValueError, "`axis`"),
    "pos_weight_shape": (
        lambda x, w: entjax.sigmoid_binary_cross_entropy(x, x, pos_weight=w),
        (X34, S((5,), F)),
        ValueError,
        "`pos_weight`",
    ),
    "perplexity_where_shape": (
        lambda x, y, w: entjax.perplexity(x, y, where=w),
        (S((2, 3, 4), F), S((2, 3), INT), S((4,), jnp.bool_)),
        ValueError,
        "`where`",
    ),
}


@pytest.mark.parametrize("name", list(OPTION_ERRORS))
def test_option_errors_name_the_option(name):
    fn, args, exc, fragment = OPTION_ERRORS[name]
    with pytest.raises(exc, match=fragment):
        trace(fn, *args)


# ---------------------------------------------------------------------------------------------
# Opt-in value checks under jit.

checked_entropy = entjax.checked(lambda p: entjax.entropy_from_probs(entjax.validate_probs(p)))


def _ce_with_checks(logits, labels):
    labels = entjax.validate_labels(labels, logits.shape[-1], ignore_index=-100)
    return entjax.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=-100)


checked_ce = entjax.checked(_ce_with_checks)

RuntimeErr = (checkify.JaxRuntimeError, jax.errors.JaxRuntimeError)


def test_validate_probs_passes_good_data():
    p = jnp.array([[0.2, 0.8, 0.0], [1 / 3, 1 / 3, 1 / 3]], jnp.float32)
    np.testing.assert_allclose(
        checked_entropy(p), [-0.2 * np.log(0.2) - 0.8 * np.log(0.8), np.log(3)], rtol=1e-6
    )


@pytest.mark.parametrize(
    ("probs", "fragment"),
    [
        ([[0.5, 0.6, 0.0], [0.5, 0.5, 0.0]], "sum to 1"),
        ([[1.2, -0.2, 0.0], [0.5, 0.5, 0.0]], "negative"),
        ([[0.5, 0.5, 0.0], [0.1, 0.1, 0.1]], "sum to 1"),
    ],
)
def test_validate_probs_raises_on_bad_data(probs, fragment):
    with pytest.raises(RuntimeErr, match=fragment):
        checked_entropy(jnp.asarray(probs, jnp.float32))


def test_validate_probs_axis_and_atol():
    f = entjax.checked(lambda p: entjax.validate_probs(p, axis=0, atol=1e-2))
    f(jnp.array([[0.5, 0.2], [0.505, 0.8]]))  # columns sum to 1.005 and 1.0: within atol
    with pytest.raises(RuntimeErr, match="sum to 1"):
        f(jnp.array([[0.5, 0.2], [0.6, 0.8]]))


def test_validate_labels_passes_good_data():
    x = jnp.array([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]], jnp.float32)
    out = checked_ce(x, jnp.array([0, -100]))
    np.testing.assert_allclose(out, [0.4170299, 0.0], rtol=1e-5)


@pytest.mark.parametrize("bad", [3, -1, 100])
def test_validate_labels_raises_on_bad_data(bad):
    x = jnp.zeros((2, 3), jnp.float32)
    with pytest.raises(RuntimeErr, match=f"found {bad}"):
        checked_ce(x, jnp.array([0, bad]))


def test_validate_labels_without_ignore_index():
    f = entjax.checked(lambda y: entjax.validate_labels(y, 3))
    np.testing.assert_array_equal(f(jnp.array([0, 2, 1])), [0, 2, 1])
    with pytest.raises(RuntimeErr, match=r"\[0, 3\)"):
        f(jnp.array([0, -100]))


def test_checked_compiles_once_per_shape():
    calls = []

    def fn(p):
        calls.append(1)  # runs only while tracing
        return entjax.validate_probs(p).sum()

    f = entjax.checked(fn)
    for _ in range(3):
        f(jnp.array([0.5, 0.5]))
    assert len(calls) == 1
    with pytest.raises(RuntimeErr):
        f(jnp.array([0.5, 0.7]))
    assert len(calls) == 1


def test_trace_time_errors_precede_value_checks():
    with pytest.raises(TypeError, match="`labels`"):
        checked_ce(jnp.zeros((2, 3)), jnp.array([0.0, 1.0]))


@pytest.mark.parametrize(
    ("name", "fn", "arg"),
    [
        ("validate_labels", lambda y: entjax.validate_labels(y, 3), jnp.array([0, 1])),
        ("validate_probs", entjax.validate_probs, jnp.array([0.5, 0.5])),
    ],
)
def test_validate_under_plain_jit_names_checked(name, fn, arg):
    """A plain ``jax.jit`` cannot raise a value check: the error says to use entjax.checked."""
    with pytest.raises(ValueError, match=rf"entjax\.{name} was traced without entjax\.checked"):
        jax.jit(fn)(arg)
    np.testing.assert_array_equal(entjax.checked(fn)(arg), arg)  # the fix works
