"""Out-of-distribution detection and selective classification: scores and their metrics.

Two conventions hold throughout:

* **OOD scores are "higher = more likely out-of-distribution"** (:func:`max_softmax` returns
  ``1 - max_c p_c``, :func:`energy_score` returns the energy ``-T logsumexp(z / T)``), and the
  metrics :func:`auroc`, :func:`aupr` and :func:`fpr_at_tpr` take the in-distribution scores
  first and treat the out-of-distribution set as the *positive* class (Hendrycks & Gimpel
  2017). Any score with this orientation works: entropy, mutual information, a distance.
* **Selective classification uses confidences, "higher = more trusted"** — the opposite
  orientation: :func:`risk_coverage`, :func:`aurc` and :func:`excess_aurc` keep the most
  *confident* predictions first. Pass ``-score`` (or ``max_c p_c``) as the confidence.

The metrics are set statistics over the **last axis** (one set of examples per row), with any
leading batch axes shared by both inputs, so ``jax.vmap`` is rarely needed (it works too). They
are exact, ties included, against scikit-learn: one sort of the pooled scores, then every
example looks up the counts below and within its group of tied scores. ``±inf`` scores are
ordinary values. NaN scores have no rank: called eagerly (concrete inputs) the metrics raise a
``ValueError``; under ``jax.jit``/``jax.vmap`` they cannot check, and a NaN among the kept
scores gives a NaN result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _checks as ck, _numerics as nx

# --------------------------------------------------------------------------------------------
# OOD scores from logits.


def _class_last(
    logits: jax.typing.ArrayLike, axis: int, where: jax.typing.ArrayLike | None, fn: str
) -> tuple[jax.Array, jax.Array | None]:
    """Validate logits (floating, rank >= 1, one class axis), upcast, and move classes last."""
    logits = ck.check_floating(logits, "logits")
    if logits.ndim < 1:
        raise ValueError(
            f"entjax.{fn}: `logits` must have a class axis, got a scalar; pass shape "
            "`[..., num_classes]`."
        )
    axes = ck.normalize_axes(axis, logits.ndim)
    if len(axes) != 1:
        raise ValueError(f"entjax.{fn}: `axis` must be a single class axis, got {axis!r}.")
    mask = nx.class_mask_last(where, logits.shape, axes)
    return nx.class_axes_last(nx.upcast(logits), axes), mask


def max_softmax(
    logits: jax.typing.ArrayLike,
    *,
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Maximum-softmax-probability OOD score ``1 - max_c softmax(logits)_c``, per example.

    .. math::
        s(z) = 1 - \max_c \frac{e^{z_c}}{\sum_{c'} e^{z_{c'}}}
             = \frac{S}{1 + S}, \qquad S = \sum_{c \ne a} e^{z_c - z_a},
        \quad a = \arg\max_c z_c .

    Higher means more likely out-of-distribution (Hendrycks & Gimpel's baseline, oriented as
    every entjax OOD score). The right-hand form has no cancellation: for a confident row such
    as ``[40, 0, 0]`` in float32, ``1 - p_max`` rounds to exactly 0 while :math:`S / (1 + S)`
    returns :math:`\approx 2 e^{-40}` to full relative precision, so confident examples keep
    their ranking (down to the smallest normal float: a logit gap of about 87 in float32).
    ``-inf`` logits (and classes masked by ``where``) have probability 0; a row with no
    candidate class gives 0 with zero gradient. Values and gradients are finite for
    finite or ``-inf`` logits (one ``+inf`` logit gives 0). bf16/fp16 inputs are computed and
    returned in float32.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      axis: the class axis.
      where: boolean mask of the candidate classes (per logit), or of the examples (per
        example; masked examples give 0).

    Returns:
      The score per example in :math:`[0, 1 - 1/C]`, shape ``logits.shape`` without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> logits = jnp.array([[2.0, 1.0, 0.0], [40.0, 0.0, 0.0]])
      >>> print(entjax.max_softmax(logits))
      [3.3...e-01 8.4...e-18]

    References:
      Hendrycks & Gimpel, *A Baseline for Detecting Misclassified and Out-of-Distribution
      Examples in Neural Networks*, ICLR 2017.
    """
    x, mask = _class_last(logits, axis, where, "max_softmax")
    valid = x != -jnp.inf
    if mask is not None:
        valid = valid & mask
    safe = jnp.where(valid, x, 0.0)
    top = jnp.argmax(jnp.where(valid, x, -jnp.inf), axis=-1, keepdims=True)
    z_top = jnp.take_along_axis(safe, top, axis=-1)  # differentiable: no stop-gradient shift
    others = valid & (lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1) != top)
    # Double where: the exponent is 0 (not a huge or inf value) where the term is dropped.
    e = jnp.where(others, jnp.exp(jnp.where(others, safe - z_top, 0.0)), 0.0)
    s = jnp.sum(e, axis=-1)
    return s / (1.0 + s)


def _check_temperature(temperature: object, fn: str) -> None:
    if isinstance(temperature, jax.core.Tracer):
        return  # a traced temperature cannot be checked at trace time
    t = np.asarray(temperature)
    if t.dtype.kind not in "biuf":
        raise TypeError(f"entjax.{fn}: `temperature` must be a real number, got {t.dtype}.")
    if not np.all(t > 0):
        raise ValueError(
            f"entjax.{fn}: `temperature` must be > 0, got {temperature!r}; pass a positive "
            "temperature (1.0 gives the plain energy -logsumexp(logits))."
        )


def energy_score(
    logits: jax.typing.ArrayLike,
    *,
    temperature: jax.typing.ArrayLike = 1.0,
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Energy OOD score ``-T logsumexp(logits / T)``, per example.

    .. math::
        E(z; T) = -T \log \sum_c e^{z_c / T} .

    The free energy of Liu et al.; higher (less negative) means more likely out-of-distribution.
    Unlike :func:`max_softmax` it depends on the logits' overall scale, not only on the softmax.
    ``-inf`` logits and classes masked by ``where`` are left out of the sum; a row with no
    candidate class gives 0 (the entjax convention for empty rows, with zero gradient) rather
    than :math:`+\infty`. Finite values and gradients for finite or ``-inf`` logits; bf16/fp16
    inputs are computed and returned in float32.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      temperature: :math:`T > 0`, a scalar or an array broadcastable to the output shape
        (a concrete value <= 0 raises ``ValueError``; a traced one is not checked).
      axis: the class axis.
      where: boolean mask of the candidate classes (per logit), or of the examples (per
        example; masked examples give 0).

    Returns:
      The energy per example, shape ``logits.shape`` without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> logits = jnp.log(jnp.array([[1.0, 1.0, 2.0], [10.0, 5.0, 5.0]]))
      >>> print(entjax.energy_score(logits))  # -log(4), -log(20)
      [-1.386... -2.995...]

    References:
      Liu, Wang, Owens & Li, *Energy-based Out-of-distribution Detection*, NeurIPS 2020.
    """
    _check_temperature(temperature, "energy_score")
    x, mask = _class_last(logits, axis, where, "energy_score")
    dtype = nx.compute_dtype(x, temperature)
    x = x.astype(dtype)
    t = jnp.asarray(temperature, dtype)
    batch = x.shape[:-1]
    if t.ndim > len(batch):
        raise ValueError(
            f"entjax.energy_score: `temperature` of shape {t.shape} has more axes than the "
            f"output (shape {batch})."
        )
    ck.check_broadcastable(t, batch, "temperature", to="the output")
    t = jnp.broadcast_to(t, batch)
    ls = nx.masked_log_softmax(x / t[..., None], mask)
    return jnp.where(ls.any_valid, -t * ls.lse, 0.0)


# --------------------------------------------------------------------------------------------
# Argument checks shared by the metrics.


def _check_scores(x: jax.typing.ArrayLike, name: str, fn: str) -> jax.Array:
    """``x`` as an array of real scores with a non-empty last (example) axis."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating) or not (
        jnp.issubdtype(x.dtype, jnp.floating)
        or jnp.issubdtype(x.dtype, jnp.integer)
        or x.dtype == jnp.bool_
    ):
        raise TypeError(
            f"entjax.{fn}: `{name}` must hold real scores (got dtype {x.dtype}); pass a real "
            f"array, e.g. `jnp.abs({name})` or `{name}.real`."
        )
    if x.ndim < 1:
        raise ValueError(
            f"entjax.{fn}: `{name}` must have an example axis (the last), got a scalar; pass "
            "shape `[..., n]`."
        )
    if x.shape[-1] == 0:
        raise ValueError(
            f"entjax.{fn}: `{name}` is empty (its last axis has size 0, shape {x.shape}); the "
            "metric needs at least one example in each set."
        )
    return x


def _check_mask(mask: jax.typing.ArrayLike, shape: tuple[int, ...], name: str, fn: str):
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(
            f"entjax.{fn}: `{name}` must be a boolean mask (got dtype {mask.dtype}); pass "
            f"`{name}.astype(bool)`."
        )
    try:
        shape_b = jnp.broadcast_shapes(mask.shape, shape)
    except ValueError:
        shape_b = None
    if shape_b != tuple(shape):
        raise ValueError(
            f"entjax.{fn}: `{name}` of shape {mask.shape} does not broadcast to the scores' "
            f"shape {tuple(shape)}."
        )
    return jnp.broadcast_to(mask, shape)


def _pair(value: object, name: str, what: str, fn: str) -> tuple[object, object]:
    """``value`` as an ``(in, out)`` pair (``None``: neither), or a TypeError naming ``fn``."""
    if value is None:
        return None, None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(
            f"entjax.{fn}: `{name}` must be a pair {what} (either may be None), got "
            f"{type(value).__name__}."
        )
    return value[0], value[1]


def _pair_masks(
    where: Sequence[jax.typing.ArrayLike | None] | None,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    fn: str,
) -> tuple[jax.Array, jax.Array]:
    masks = _pair(where, "where", "`(in_mask, out_mask)` of boolean masks", fn)
    keep = []
    names = ("where[0]", "where[1]")
    for mask, shape, name in zip(masks, (in_shape, out_shape), names, strict=True):
        keep.append(jnp.ones(shape, bool) if mask is None else _check_mask(mask, shape, name, fn))
    keep_in, keep_out = keep
    return keep_in, keep_out


def _pair_weights(
    weights: Sequence[jax.typing.ArrayLike | None] | None,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    fn: str,
) -> tuple[jax.Array | None, jax.Array | None]:
    w_in, w_out = _pair(weights, "weights", "`(in_weights, out_weights)` of arrays", fn)
    out = []
    pairs = ((w_in, in_shape, "weights[0]"), (w_out, out_shape, "weights[1]"))
    for w, shape, name in pairs:
        if w is None:
            out.append(None)
            continue
        w = jnp.asarray(w)
        if not (jnp.issubdtype(w.dtype, jnp.integer) or jnp.issubdtype(w.dtype, jnp.floating)):
            raise TypeError(
                f"entjax.{fn}: `{name}` must hold real non-negative weights (got dtype {w.dtype})."
            )
        try:
            ok = jnp.broadcast_shapes(w.shape, shape) == tuple(shape)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"entjax.{fn}: `{name}` of shape {w.shape} does not broadcast to the scores' "
                f"shape {tuple(shape)}."
            )
        if _concrete(w) and bool(jnp.any(w < 0)):
            raise ValueError(f"entjax.{fn}: `{name}` has negative entries; weights must be >= 0.")
        out.append(jnp.broadcast_to(w, shape))
    return out[0], out[1]


def _concrete(*xs: object) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _reject_nan(x: jax.Array, keep: jax.Array, name: str, fn: str) -> None:
    """Raise (eagerly only) if a kept score is NaN; under tracing NaN propagates instead."""
    if not jnp.issubdtype(x.dtype, jnp.floating) or not _concrete(x, keep):
        return
    if bool(jnp.any(jnp.isnan(x) & keep)):
        raise ValueError(
            f"entjax.{fn}: `{name}` contains NaN scores, which have no rank; drop or mask "
            "them (`where=`). Under jax.jit NaN scores give a NaN result."
        )


def _tie_groups(start: jax.Array) -> tuple[jax.Array, jax.Array]:
    """First and last index (over the last axis) of each position's run of equal keys.

    ``start`` marks the first position of every run (``start[..., 0]`` is True).
    """
    n = start.shape[-1]
    iota = lax.broadcasted_iota(jnp.int32, start.shape, start.ndim - 1)
    end = jnp.concatenate([start[..., 1:], jnp.ones_like(start[..., :1])], axis=-1)
    first = lax.cummax(jnp.where(start, iota, 0), axis=start.ndim - 1)
    last = lax.cummin(jnp.where(end, iota, n - 1), axis=start.ndim - 1, reverse=True)
    return first, last


class _Ranked(NamedTuple):
    """Pooled examples sorted by increasing score, with per-position tie-group counts (int32)."""

    w_out: jax.Array  # 1 for a kept OOD example, else 0
    in_below: jax.Array  # kept in-distribution examples scored strictly below this one
    in_le: jax.Array  # ... scored at most this one (below or tied)
    out_below: jax.Array  # kept OOD examples scored strictly below this one
    n_in: jax.Array  # kept in-distribution examples (per row, trailing axis of size 1)
    n_out: jax.Array
    has_nan: jax.Array  # a kept score is NaN (per row, trailing axis of size 1)
    dtype: jnp.dtype  # the floating dtype of the result


def _rank(
    in_scores: jax.typing.ArrayLike,
    out_scores: jax.typing.ArrayLike,
    where: Sequence[jax.typing.ArrayLike | None] | None,
    fn: str,
    weights: Sequence[jax.typing.ArrayLike | None] | None = None,
) -> _Ranked:
    s_in = _check_scores(in_scores, "in_scores", fn)
    s_out = _check_scores(out_scores, "out_scores", fn)
    if s_in.shape[:-1] != s_out.shape[:-1]:
        raise ValueError(
            f"entjax.{fn}: the leading (batch) axes of `in_scores` {s_in.shape} and "
            f"`out_scores` {s_out.shape} differ; they must be equal (the last axis holds each "
            "set's examples). Broadcast them explicitly, e.g. with `jnp.broadcast_to`."
        )
    keep_in, keep_out = _pair_masks(where, s_in.shape, s_out.shape, fn)
    wt_in, wt_out = _pair_weights(weights, s_in.shape, s_out.shape, fn)
    key_dtype = jnp.result_type(s_in, s_out)
    dtype = jnp.promote_types(key_dtype, jnp.float32)
    if key_dtype == jnp.bool_:
        key_dtype = jnp.int32
    # Counts are exact int32 for masks and integer weights (bootstrap counts), else floating.
    given = [w for w in (wt_in, wt_out) if w is not None]
    count_dtype = jnp.int32
    # Integer weights that fit int32 exactly (bool masks, int8-int32, uint8/uint16) are counted
    # exactly in int32; wider integers and floats in the result dtype.
    exact = (jnp.int8, jnp.int16, jnp.int32, jnp.uint8, jnp.uint16)
    if any(w.dtype not in exact for w in given):
        count_dtype = dtype
    for w, name in ((wt_in, "weights[0]"), (wt_out, "weights[1]")):
        exact_count = count_dtype == jnp.int32 and w is not None and _concrete(w)
        if exact_count and np.asarray(w, np.float64).sum(axis=-1).max() >= 2**30:
            raise ValueError(
                f"entjax.{fn}: the total of `{name}` reaches 2**30, beyond exact int32 "
                "counting; pass float weights."
            )
    w_in = keep_in.astype(count_dtype)
    w_out = keep_out.astype(count_dtype)
    if wt_in is not None:
        w_in = w_in * wt_in.astype(count_dtype)
    if wt_out is not None:
        w_out = w_out * wt_out.astype(count_dtype)
    _reject_nan(s_in, w_in > 0, "in_scores", fn)
    _reject_nan(s_out, w_out > 0, "out_scores", fn)
    s = jnp.concatenate([s_in.astype(key_dtype), s_out.astype(key_dtype)], axis=-1)
    w_in, w_out = (
        jnp.concatenate([w_in, jnp.zeros_like(w_out)], axis=-1),
        jnp.concatenate([jnp.zeros_like(w_in), w_out], axis=-1),
    )
    has_nan = jnp.any(jnp.isnan(s) & ((w_in + w_out) > 0), axis=-1, keepdims=True)
    # The sort depends on the scores alone (a dropped or zero-weight example keeps its key and
    # adds nothing to the counts; NaN keys are each a group of their own), so under
    # ``jax.vmap`` over weights or masks (a bootstrap) the scores are sorted once.
    last = s.ndim - 1
    iota = lax.broadcasted_iota(jnp.int32, s.shape, last)
    s, order = lax.sort((s, iota), dimension=last, num_keys=1)
    w_in = jnp.take_along_axis(w_in, order, axis=-1)
    w_out = jnp.take_along_axis(w_out, order, axis=-1)
    start = jnp.concatenate([jnp.ones_like(s[..., :1], bool), s[..., 1:] != s[..., :-1]], -1)
    first, last_i = _tie_groups(start)
    cum_in = jnp.cumsum(w_in, axis=-1, dtype=count_dtype)
    cum_out = jnp.cumsum(w_out, axis=-1, dtype=count_dtype)
    in_below = jnp.take_along_axis(cum_in - w_in, first, axis=-1)
    in_le = jnp.take_along_axis(cum_in, last_i, axis=-1)
    out_below = jnp.take_along_axis(cum_out - w_out, first, axis=-1)
    return _Ranked(
        w_out, in_below, in_le, out_below, cum_in[..., -1:], cum_out[..., -1:], has_nan, dtype
    )


def _ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den`` where ``den > 0``, else 0 (weighted counts may be any non-negative size)."""
    positive = den > 0
    return jnp.where(positive, num / jnp.where(positive, den, 1), 0)


def _finish(r: _Ranked, value: jax.Array) -> jax.Array:
    """NaN where a set is empty after masking or a kept score is NaN; drop the trailing axis."""
    ok = (r.n_in > 0) & (r.n_out > 0) & ~r.has_nan
    return jnp.where(ok, value, jnp.nan)[..., 0]


# --------------------------------------------------------------------------------------------
# Detection metrics.


def auroc(
    in_scores: jax.typing.ArrayLike,
    out_scores: jax.typing.ArrayLike,
    *,
    where: Sequence[jax.typing.ArrayLike | None] | None = None,
    weights: Sequence[jax.typing.ArrayLike | None] | None = None,
) -> jax.Array:
    r"""Area under the ROC curve of detecting the OOD set (positive) by a score, per last axis.

    .. math::
        \mathrm{AUROC} = P(s_\mathrm{out} > s_\mathrm{in})
          + \tfrac12 P(s_\mathrm{out} = s_\mathrm{in})
        = \frac{1}{n_\mathrm{in} n_\mathrm{out}} \sum_{j \in \mathrm{out}}
          \Bigl(\#\{i : s_i < s_j\} + \tfrac12 \#\{i : s_i = s_j\}\Bigr),

    the Mann–Whitney statistic, equal to ``sklearn.metrics.roc_auc_score(y, s)`` with ``y = 1``
    for the OOD examples, ties included (the trapezoidal area over the distinct thresholds).
    Scores are "higher = more likely OOD"; 0.5 is chance, 1 a perfect detector. ``±inf`` scores
    are ordinary values; integer and boolean scores are accepted (complex ones are not).

    This is a statistic of two *sets* of examples: it reduces over the last axis of each input,
    and any leading axes (equal for both inputs) are independent batches. With ``where``,
    masked examples are left out; a set left empty gives NaN. Eager calls raise ``ValueError``
    on NaN scores; under ``jax.jit`` a NaN kept score gives NaN.

    Args:
      in_scores: scores of the in-distribution examples, shape ``[..., n_in]``.
      out_scores: scores of the out-of-distribution examples, shape ``[..., n_out]``.
      where: optional pair ``(in_mask, out_mask)`` of boolean masks broadcastable to the
        scores' shapes (either may be ``None``); ``False`` drops an example.
      weights: optional pair ``(in_weights, out_weights)`` of non-negative example weights
        broadcastable to the scores' shapes (either may be ``None``), as scikit-learn's
        ``sample_weight``: an example of weight ``w`` counts as ``w`` copies (integer weights
        are counted exactly, e.g. bootstrap counts); weight 0 drops it.

    Returns:
      The AUROC, shape ``[...]``, float32 (float64 for float64 scores).

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> s_in, s_out = jnp.array([0.1, 0.4, 0.35]), jnp.array([0.8, 0.4])
      >>> print(f"{entjax.auroc(s_in, s_out):.4f}")  # (3 + 2.5) / 6: the tie at 0.4 counts 1/2
      0.9167

    References:
      Hanley & McNeil, *The Meaning and Use of the Area under a Receiver Operating
      Characteristic (ROC) Curve*, Radiology 1982. Hendrycks & Gimpel, *A Baseline for
      Detecting Misclassified and Out-of-Distribution Examples in Neural Networks*, ICLR 2017.
    """
    r = _rank(in_scores, out_scores, where, "auroc", weights)
    # Σ_out (2·below + tied) = Σ_out (below + at-most), halved; summed in the result dtype.
    pairs = (r.in_below.astype(r.dtype) + r.in_le.astype(r.dtype)) * r.w_out.astype(r.dtype)
    num = jnp.sum(pairs, axis=-1, keepdims=True)
    den = 2.0 * r.n_in.astype(r.dtype) * r.n_out.astype(r.dtype)
    return _finish(r, _ratio(num, den))


def aupr(
    in_scores: jax.typing.ArrayLike,
    out_scores: jax.typing.ArrayLike,
    *,
    where: Sequence[jax.typing.ArrayLike | None] | None = None,
    weights: Sequence[jax.typing.ArrayLike | None] | None = None,
) -> jax.Array:
    r"""Area under the precision-recall curve (average precision), OOD positive, over the last axis.

    .. math::
        \mathrm{AP} = \sum_t (R_t - R_{t-1})\, P_t, \qquad
        P_t = \frac{\mathrm{TP}_t}{\mathrm{TP}_t + \mathrm{FP}_t}, \quad
        R_t = \frac{\mathrm{TP}_t}{n_\mathrm{out}},

    over the distinct score thresholds :math:`t` in decreasing order, an example being flagged
    OOD when its score is :math:`\ge t`; all examples tied at a threshold enter together. Equal
    to ``sklearn.metrics.average_precision_score(y, s)`` with ``y = 1`` for the OOD examples
    ("AUPR-Out"; swap the sets and negate the scores for "AUPR-In"). Its chance level is
    :math:`n_\mathrm{out} / (n_\mathrm{in} + n_\mathrm{out})`.

    Reduces over the last axis like :func:`auroc`, with the same batching, masking, empty-set
    and NaN conventions.

    Args:
      in_scores: scores of the in-distribution examples, shape ``[..., n_in]``.
      out_scores: scores of the out-of-distribution examples, shape ``[..., n_out]``.
      where: optional pair ``(in_mask, out_mask)`` of boolean masks broadcastable to the
        scores' shapes (either may be ``None``); ``False`` drops an example.
      weights: optional pair ``(in_weights, out_weights)`` of non-negative example weights
        broadcastable to the scores' shapes (either may be ``None``), as scikit-learn's
        ``sample_weight``: an example of weight ``w`` counts as ``w`` copies (integer weights
        are counted exactly, e.g. bootstrap counts); weight 0 drops it.

    Returns:
      The average precision, shape ``[...]``, float32 (float64 for float64 scores).

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> s_in, s_out = jnp.array([0.1, 0.5]), jnp.array([0.9, 0.3])
      >>> print(f"{entjax.aupr(s_in, s_out):.4f}")  # (1/2)·1 + (1/2)·(2/3)
      0.8333

    References:
      Davis & Goadrich, *The Relationship Between Precision-Recall and ROC Curves*, ICML 2006.
      Hendrycks & Gimpel, *A Baseline for Detecting Misclassified and Out-of-Distribution
      Examples in Neural Networks*, ICLR 2017.
    """
    r = _rank(in_scores, out_scores, where, "aupr", weights)
    # Each OOD example adds 1/n_out of recall at its group's threshold, at that precision.
    tp = (r.n_out - r.out_below).astype(r.dtype)
    fp = (r.n_in - r.in_below).astype(r.dtype)
    precision = _ratio(tp, tp + fp)
    num = jnp.sum(r.w_out.astype(r.dtype) * precision, axis=-1, keepdims=True)
    return _finish(r, _ratio(num, r.n_out.astype(r.dtype)))


def fpr_at_tpr(
    in_scores: jax.typing.ArrayLike,
    out_scores: jax.typing.ArrayLike,
    *,
    tpr: jax.typing.ArrayLike = 0.95,
    where: Sequence[jax.typing.ArrayLike | None] | None = None,
    weights: Sequence[jax.typing.ArrayLike | None] | None = None,
) -> jax.Array:
    r"""False-positive rate at the first threshold that reaches a true-positive rate, per row.

    .. math::
        \mathrm{FPR@TPR} = \min_{t\,:\,\mathrm{TPR}_t \ge \tau} \mathrm{FPR}_t, \qquad
        \mathrm{TPR}_t = \frac{\#\{s_\mathrm{out} \ge t\}}{n_\mathrm{out}}, \quad
        \mathrm{FPR}_t = \frac{\#\{s_\mathrm{in} \ge t\}}{n_\mathrm{in}},

    over the distinct score thresholds :math:`t` (OOD positive, flagged when the score is
    :math:`\ge t`). **Convention:** this is the value read off
    ``fpr, tpr_curve, _ = sklearn.metrics.roc_curve(y, s, drop_intermediate=False)`` as
    ``fpr[tpr_curve >= tpr].min()`` — no interpolation between thresholds. Equivalently the
    threshold is the :math:`\lceil \tau n_\mathrm{out} \rceil`-th largest OOD score and the
    result the fraction of in-distribution scores at or above it (ties count as detections).
    Lower is better; the usual report is FPR at 95% TPR.

    Reduces over the last axis like :func:`auroc`, with the same batching, masking, empty-set
    and NaN conventions.

    Args:
      in_scores: scores of the in-distribution examples, shape ``[..., n_in]``.
      out_scores: scores of the out-of-distribution examples, shape ``[..., n_out]``.
      tpr: the target true-positive rate :math:`\tau \in (0, 1]`, a scalar or an array
        broadcastable to the batch shape (a concrete value outside the range raises
        ``ValueError``).
      where: optional pair ``(in_mask, out_mask)`` of boolean masks broadcastable to the
        scores' shapes (either may be ``None``); ``False`` drops an example.
      weights: optional pair ``(in_weights, out_weights)`` of non-negative example weights
        broadcastable to the scores' shapes (either may be ``None``), as scikit-learn's
        ``sample_weight``: an example of weight ``w`` counts as ``w`` copies (integer weights
        are counted exactly, e.g. bootstrap counts); weight 0 drops it.

    Returns:
      The false-positive rate, shape ``[...]``, float32 (float64 for float64 scores).

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> s_in = jnp.array([0.1, 0.2, 0.3, 0.6])
      >>> s_out = jnp.array([0.5, 0.7, 0.9, 1.0])
      >>> print(entjax.fpr_at_tpr(s_in, s_out, tpr=0.75))  # threshold 0.7: no false positive
      0.0
      >>> print(entjax.fpr_at_tpr(s_in, s_out, tpr=1.0))  # threshold 0.5: 0.6 is flagged
      0.25

    References:
      Liang, Li & Srikant, *Enhancing the Reliability of Out-of-distribution Image Detection in
      Neural Networks* (ODIN), ICLR 2018. Hendrycks & Gimpel, *A Baseline for Detecting
      Misclassified and Out-of-Distribution Examples in Neural Networks*, ICLR 2017.
    """
    if not isinstance(tpr, jax.core.Tracer):
        t = np.asarray(tpr)
        if t.dtype.kind not in "biuf" or not np.all((t > 0) & (t <= 1)):
            raise ValueError(
                f"entjax.fpr_at_tpr: `tpr` must be in (0, 1], got {tpr!r}; e.g. `tpr=0.95`."
            )
    r = _rank(in_scores, out_scores, where, "fpr_at_tpr", weights)
    batch = r.w_out.shape[:-1]
    target = jnp.asarray(tpr, r.dtype)
    if target.ndim > len(batch):
        raise ValueError(
            f"entjax.fpr_at_tpr: `tpr` of shape {target.shape} has more axes than the batch "
            f"shape {batch}."
        )
    ck.check_broadcastable(target, batch, "tpr", to="the batch shape")
    target = jnp.broadcast_to(target, batch)[..., None]
    reached = _ratio((r.n_out - r.out_below).astype(r.dtype), r.n_out.astype(r.dtype)) >= target
    flagged_in = jnp.where(reached, r.n_in - r.in_below, r.n_in)
    fpr = jnp.min(flagged_in, axis=-1, keepdims=True).astype(r.dtype)
    return _finish(r, _ratio(fpr, r.n_in.astype(r.dtype)))


# --------------------------------------------------------------------------------------------
# Selective classification.


class RiskCoverage(NamedTuple):
    """The risk-coverage curve of :func:`risk_coverage`, both of shape ``[..., n]``.

    Entry ``k - 1`` describes keeping the ``k`` most confident (unmasked) predictions; entries
    past the number of unmasked examples are NaN.
    """

    coverage: jax.Array  #: fraction ``k / n`` of the examples kept
    risk: jax.Array  #: expected error rate among the ``k`` most confident examples


def _curve(
    confidence: jax.typing.ArrayLike,
    correct: jax.typing.ArrayLike,
    where: jax.typing.ArrayLike | None,
    fn: str,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(k, risk, n_kept, n_correct, valid)``: the expected risk of the top-``k`` predictions.

    ``k`` (1..n, the result dtype), ``risk`` and ``valid`` (``k <= n_kept``) have shape
    ``[..., n]``; ``n_kept`` and ``n_correct`` ``[..., 1]``. NaN marks a NaN confidence.
    """
    conf = _check_scores(confidence, "confidence", fn)
    corr = jnp.asarray(correct)
    if not (
        corr.dtype == jnp.bool_
        or jnp.issubdtype(corr.dtype, jnp.integer)
        or jnp.issubdtype(corr.dtype, jnp.floating)
    ):
        raise TypeError(
            f"entjax.{fn}: `correct` must be boolean (or 0/1), got dtype {corr.dtype}; pass "
            "`predictions == labels`."
        )
    if corr.shape != conf.shape:
        raise ValueError(
            f"entjax.{fn}: `correct` has shape {corr.shape}, expected {conf.shape} (the shape of "
            "`confidence`, one entry per example)."
        )
    keep = (
        jnp.ones(conf.shape, bool) if where is None else _check_mask(where, conf.shape, "where", fn)
    )
    _reject_nan(conf, keep, "confidence", fn)
    dtype = jnp.promote_types(conf.dtype, jnp.float32)
    key = conf.astype(jnp.int32) if conf.dtype == jnp.bool_ else conf
    key = jnp.where(keep, key, jnp.zeros((), key.dtype))
    nan = jnp.any(jnp.isnan(key), axis=-1, keepdims=True)
    err = jnp.where(keep, 1.0 - corr.astype(dtype), 0.0)
    last = conf.ndim - 1
    # Ascending by (kept, confidence), then reversed: kept first, most confident first.
    kept_key, key, err = lax.sort((keep.astype(jnp.int32), key, err), dimension=last, num_keys=2)
    kept_key, key, err = (jnp.flip(a, axis=-1) for a in (kept_key, key, err))
    start = (key[..., 1:] != key[..., :-1]) | (kept_key[..., 1:] != kept_key[..., :-1])
    start = jnp.concatenate([jnp.ones_like(start[..., :1]), start], axis=-1)
    first, last_i = _tie_groups(start)
    cum = jnp.cumsum(err, axis=-1)
    err_above = jnp.take_along_axis(cum - err, first, axis=-1)
    err_group = jnp.take_along_axis(cum, last_i, axis=-1) - err_above
    size = (last_i - first + 1).astype(dtype)
    k = lax.broadcasted_iota(dtype, conf.shape, last) + 1.0
    # Random tie-breaking: the k - first examples taken from a tie group carry its mean error.
    expected_errors = err_above + (k - first.astype(dtype)) * err_group / size
    risk = jnp.where(nan, jnp.nan, expected_errors / k)
    n_kept = jnp.sum(keep, axis=-1, keepdims=True).astype(dtype)
    n_correct = jnp.sum(jnp.where(keep, corr.astype(dtype), 0.0), axis=-1, keepdims=True)
    return k, risk, n_kept, n_correct, k <= n_kept


def risk_coverage(
    confidence: jax.typing.ArrayLike,
    correct: jax.typing.ArrayLike,
    *,
    where: jax.typing.ArrayLike | None = None,
) -> RiskCoverage:
    r"""Risk-coverage curve of selective classification, over the last axis.

    Sort the predictions by **decreasing confidence** (higher = more trusted, the opposite of
    the OOD scores' orientation) and keep the :math:`k` most confident, :math:`k = 1 .. n`:

    .. math::
        \mathrm{coverage}_k = \frac{k}{n}, \qquad
        \mathrm{risk}_k = \frac{1}{k}\,
          \mathbb{E}\Bigl[\sum_{i \in \mathrm{top}_k} (1 - \mathrm{correct}_i)\Bigr].

    **Ties** in confidence are broken at random and the risk is the *expected* value: the
    :math:`m` examples a tie group of size :math:`g` with :math:`e` errors contributes to the
    top-:math:`k` carry :math:`m e / g` errors. The curve therefore does not depend on the order
    of the examples (a sort alone would make it depend on it when confidences saturate, e.g. at
    a float32 probability of exactly 1).

    Examples masked by ``where`` are dropped: with :math:`n'` kept examples the first
    :math:`n'` entries are the curve of the kept examples (coverage :math:`k / n'`), and the
    entries after them are NaN (so ``jnp.nanmean(risk, -1)`` is the AURC). Eager calls raise
    ``ValueError`` on NaN confidences; under ``jax.jit`` they give NaN risks.

    Args:
      confidence: confidence per prediction (e.g. ``max_c p_c``, or minus an OOD score), shape
        ``[..., n]``.
      correct: whether each prediction is correct, boolean (or 0/1), shape ``[..., n]``.
      where: boolean mask of the examples to include, broadcastable to ``[..., n]``.

    Returns:
      ``RiskCoverage(coverage, risk)``, each of shape ``[..., n]``, float32 (float64 for
      float64 confidences).

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> conf = jnp.array([0.9, 0.8, 0.8, 0.3])
      >>> correct = jnp.array([True, True, False, False])
      >>> curve = entjax.risk_coverage(conf, correct)
      >>> print(curve.coverage, curve.risk)  # the tie at 0.8 gives 1/2 error to k = 2
      [0.25 0.5  0.75 1.  ] [0.     0.25   0.3333 0.5   ]

    References:
      Geifman & El-Yaniv, *Selective Classification for Deep Neural Networks*, NeurIPS 2017.
      Geifman, Uziel & El-Yaniv, *Bias-Reduced Uncertainty Estimation for Deep Neural
      Classifiers*, ICLR 2019 (arXiv 2018).
    """
    k, risk, n_kept, _, valid = _curve(confidence, correct, where, "risk_coverage")
    coverage = jnp.where(valid, k / n_kept, jnp.nan)
    return RiskCoverage(coverage, jnp.where(valid, risk, jnp.nan))


def aurc(
    confidence: jax.typing.ArrayLike,
    correct: jax.typing.ArrayLike,
    *,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Area under the risk-coverage curve (AURC), over the last axis; lower is better.

    .. math::
        \mathrm{AURC} = \frac{1}{n} \sum_{k=1}^{n} \mathrm{risk}_k

    with the risk of :func:`risk_coverage` (most confident first, ties broken at random in
    expectation), as defined by Geifman et al. Examples masked by ``where`` are dropped; with
    none left the result is NaN.

    Args:
      confidence: confidence per prediction (higher = more trusted), shape ``[..., n]``.
      correct: whether each prediction is correct, boolean (or 0/1), shape ``[..., n]``.
      where: boolean mask of the examples to include, broadcastable to ``[..., n]``.

    Returns:
      The AURC, shape ``[...]``, float32 (float64 for float64 confidences).

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> conf = jnp.array([0.9, 0.8, 0.8, 0.3])
      >>> correct = jnp.array([True, True, False, False])
      >>> print(f"{entjax.aurc(conf, correct):.4f}")  # (0 + 1/4 + 1/3 + 1/2) / 4
      0.2708

    References:
      Geifman, Uziel & El-Yaniv, *Bias-Reduced Uncertainty Estimation for Deep Neural
      Classifiers*, ICLR 2019 (arXiv 2018).
    """
    _, risk, n_kept, _, valid = _curve(confidence, correct, where, "aurc")
    return jnp.sum(jnp.where(valid, risk, 0.0), axis=-1) / n_kept[..., 0]


def excess_aurc(
    confidence: jax.typing.ArrayLike,
    correct: jax.typing.ArrayLike,
    *,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Excess AURC (E-AURC): the AURC minus that of an oracle ranking, over the last axis.

    .. math::
        \mathrm{E\text{-}AURC} = \mathrm{AURC} - \mathrm{AURC}^\star, \qquad
        \mathrm{AURC}^\star = \frac1n \sum_{k = c + 1}^{n} \frac{k - c}{k},

    where the oracle ranks all :math:`c` correct predictions before the :math:`n - c` wrong
    ones (the discrete sum, not its continuous approximation
    :math:`\hat r + (1 - \hat r)\log(1 - \hat r)`). It removes the part of the AURC due to the
    classifier's error rate and leaves the quality of the confidence ranking; 0 is a perfect
    ranking. Same conventions as :func:`aurc`.

    Args:
      confidence: confidence per prediction (higher = more trusted), shape ``[..., n]``.
      correct: whether each prediction is correct, boolean (or 0/1), shape ``[..., n]``.
      where: boolean mask of the examples to include, broadcastable to ``[..., n]``.

    Returns:
      The E-AURC, shape ``[...]``, float32 (float64 for float64 confidences).

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> conf = jnp.array([0.9, 0.8, 0.8, 0.3])
      >>> correct = jnp.array([True, True, False, False])
      >>> print(f"{entjax.excess_aurc(conf, correct):.4f}")  # 0.2708 - (1/3 + 1/2) / 4
      0.0625

    References:
      Geifman, Uziel & El-Yaniv, *Bias-Reduced Uncertainty Estimation for Deep Neural
      Classifiers*, ICLR 2019 (arXiv 2018).
    """
    k, risk, n_kept, n_correct, valid = _curve(confidence, correct, where, "excess_aurc")
    oracle = jnp.where(valid & (k > n_correct), (k - n_correct) / k, 0.0)
    gap = jnp.where(valid, risk, 0.0) - oracle
    return jnp.sum(gap, axis=-1) / n_kept[..., 0]
