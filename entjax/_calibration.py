"""Calibration of classifiers: NLL, Brier score, expected calibration error, reliability bins
and temperature scaling.

:func:`negative_log_likelihood` and :func:`brier_score` follow the per-example convention (one
value per example, no reduction). :func:`expected_calibration_error`, :func:`reliability_bins`
and :func:`fit_temperature` are the documented exception: binning and fitting are statistics of
a *set* of examples, so they reduce over every example axis (all axes but the class axis) and
return a scalar and per-bin arrays. Use ``jax.vmap`` for several independent sets.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import _checks as ck, _numerics as nx
from ._cross_entropy import softmax_cross_entropy_with_integer_labels


class ReliabilityBins(NamedTuple):
    """Per-bin statistics of a reliability diagram (``num_bins`` equal-width confidence bins).

    Empty bins have ``counts == 0`` and ``accuracy == confidence == 0``.
    """

    counts: jax.Array  #: number of (unmasked) examples per bin, int32, shape [num_bins]
    accuracy: jax.Array  #: fraction of correct top-1 predictions per bin, shape [num_bins]
    confidence: jax.Array  #: mean top-1 probability per bin, shape [num_bins]
    bin_edges: jax.Array  #: shape [num_bins + 1], 0 to 1


def negative_log_likelihood(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: ck.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Negative log-likelihood of integer labels under ``softmax(logits)``, per example.

    .. math::
        \mathrm{NLL}_i = -\log \mathrm{softmax}(x_i)_{y_i}
          = \operatorname{logsumexp}(x_i) - x_{i y_i}.

    The calibration-metric name for :func:`entjax.softmax_cross_entropy_with_integer_labels`
    (without smoothing or weights), with the same edge cases: masked examples give 0, a label
    whose logit is ``-inf`` gives ``+inf``, an out-of-range label gives NaN.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: integer class indices, shape ``logits.shape`` without ``axis``.
      axis: class axis or axes.
      where: boolean mask of classes (per logit) or of examples (per example).

    Returns:
      The NLL per example, shape ``labels.shape``, in at least float32.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> logits = jnp.log(jnp.array([[0.5, 0.25, 0.25]]))
      >>> print(f"{entjax.negative_log_likelihood(logits, jnp.array([1]))[0]:.4f}")
      1.3863

    References:
      Quiñonero-Candela, Rasmussen, Sinz, Bousquet & Schölkopf, *Evaluating Predictive
      Uncertainty Challenge*, 2006. Gneiting & Raftery, *Strictly Proper Scoring Rules,
      Prediction, and Estimation*, JASA 2007.
    """
    return softmax_cross_entropy_with_integer_labels(logits, labels, axis, where)


def brier_score(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Brier score of ``softmax(logits)`` against integer labels, per example.

    .. math::
        \mathrm{BS}_i = \sum_{c=1}^{C} \bigl(p_{ic} - [y_i = c]\bigr)^2 \in [0, 2],
        \qquad p_i = \mathrm{softmax}(x_i).

    The multi-class score of Brier (1950), summed (not averaged) over classes. ``-inf`` and
    masked classes have probability 0. Out-of-range labels give NaN.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: integer class indices, shape ``logits.shape`` without ``axis``.
      axis: the class axis.
      where: boolean mask of classes (per logit) or of examples (per example); masked
        examples give 0.

    Returns:
      The Brier score per example, shape ``labels.shape``, in at least float32.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> logits = jnp.log(jnp.array([[0.7, 0.2, 0.1]]))
      >>> print(f"{entjax.brier_score(logits, jnp.array([0]))[0]:.4f}")  # .09 + .04 + .01
      0.1400

    References:
      Brier, *Verification of Forecasts Expressed in Terms of Probability*, Monthly Weather
      Review, 1950.
    """
    logits = ck.check_floating(logits, "logits")
    ck.check_min_rank(logits, 1, "logits")
    labels = ck.check_integer(labels, "labels")
    axes = ck.normalize_axes(axis, logits.ndim)
    if len(axes) != 1:
        raise ValueError(f"`axis` must be a single class axis, got {axis!r}.")
    batch_shape = tuple(d for i, d in enumerate(logits.shape) if i not in axes)
    ck.check_shape(labels, batch_shape, "labels", expected="logits without the class axis")
    mask = nx.class_mask_last(where, logits.shape, axes)
    ls = nx.masked_log_softmax(nx.class_axes_last(nx.upcast(logits), axes), mask)
    num_classes = ls.probs.shape[-1]
    onehot = jax.nn.one_hot(labels, num_classes, dtype=ls.probs.dtype)
    score = jnp.sum(jnp.square(ls.probs - onehot), axis=-1)
    in_range = (labels >= 0) & (labels < num_classes)
    score = jnp.where(in_range, score, jnp.nan)
    return jnp.where(ls.any_valid, score, 0.0)


def _set_inputs(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    where: jax.typing.ArrayLike | None,
    axis: int,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """A set statistic's checked inputs: logits (upcast, classes last), labels, example mask."""
    logits = ck.check_floating(logits, "logits")
    ck.check_min_rank(logits, 1, "logits")
    labels = ck.check_integer(labels, "labels")
    (c,) = ck.normalize_axes(axis, logits.ndim)
    batch_shape = tuple(d for i, d in enumerate(logits.shape) if i != c)
    ck.check_shape(labels, batch_shape, "labels", expected="logits without the class axis")
    keep = ck.example_mask(where, batch_shape)
    return jnp.moveaxis(nx.upcast(logits), c, -1), labels, keep


def _bin_sums(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    num_bins: int,
    where: jax.typing.ArrayLike | None,
    axis: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Per-bin example counts, sums of correctness and of confidence, and the bin edges."""
    num_bins = ck.static_int(num_bins, "num_bins", minimum=1)
    x, labels, keep = _set_inputs(logits, labels, where, axis)
    ls = nx.masked_log_softmax(x)
    keep = ls.any_valid if keep is None else keep & ls.any_valid
    # Flatten the example axes: the bins are statistics of the whole set.
    confidence = jnp.max(ls.probs, axis=-1).reshape(-1, 1)
    prediction = jnp.argmax(jnp.where(ls.valid, ls.log_probs, -jnp.inf), axis=-1)
    correct = (prediction == labels).reshape(-1, 1)
    keep = keep.reshape(-1, 1)
    edges = jnp.linspace(0.0, 1.0, num_bins + 1, dtype=confidence.dtype)
    # Right-closed bins (lo, hi] as in Guo et al.'s reference code: the bin index is the number
    # of interior edges strictly below the confidence (a confidence of exactly 1 is in the last).
    index = jnp.sum(confidence > edges[None, 1:-1], axis=-1, keepdims=True)
    in_bin = (index == jnp.arange(num_bins)[None, :]) & keep
    counts = jnp.sum(in_bin, axis=0, dtype=jnp.int32)
    sum_correct = jnp.sum(in_bin & correct, axis=0).astype(confidence.dtype)
    sum_conf = jnp.sum(jnp.where(in_bin, confidence, 0.0), axis=0)
    return counts, sum_correct, sum_conf, edges


def reliability_bins(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    num_bins: int = 15,
    where: jax.typing.ArrayLike | None = None,
    axis: int = -1,
) -> ReliabilityBins:
    r"""Reliability-diagram statistics: counts, accuracy and confidence per confidence bin.

    With confidence :math:`\hat c_i = \max_c p_{ic}` and prediction
    :math:`\hat y_i = \arg\max_c p_{ic}`, bin :math:`b` holds the examples with
    :math:`\hat c_i \in (\tfrac{b}{B}, \tfrac{b+1}{B}]` and reports

    .. math::
        n_b = |B_b|, \quad
        \mathrm{acc}_b = \frac{1}{n_b}\sum_{i \in B_b} [\hat y_i = y_i], \quad
        \mathrm{conf}_b = \frac{1}{n_b}\sum_{i \in B_b} \hat c_i .

    **Empty bins** have :math:`n_b = 0` and accuracy and confidence 0 (not NaN); mask them with
    ``counts > 0`` when plotting. This reduces over all example axes (see the module note).
    Examples masked by ``where`` and rows without a valid class are excluded.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: integer class indices, shape ``logits.shape`` without ``axis``.
      num_bins: number :math:`B` of equal-width bins over :math:`[0, 1]` (a static int).
      where: boolean mask of the examples to include, broadcastable to ``labels.shape``.
      axis: the class axis.

    Returns:
      ``ReliabilityBins(counts, accuracy, confidence, bin_edges)``: ``counts`` (int32),
      ``accuracy`` and ``confidence`` of shape ``[num_bins]``, ``bin_edges`` of shape
      ``[num_bins + 1]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> probs = jnp.array([[0.9, 0.05, 0.05], [0.6, 0.2, 0.2], [0.4, 0.3, 0.3]])
      >>> bins = entjax.reliability_bins(jnp.log(probs), jnp.array([0, 1, 0]), num_bins=4)
      >>> print(bins.counts, bins.accuracy)
      [0 1 1 1] [0. 1. 0. 1.]

    References:
      DeGroot & Fienberg, *The Comparison and Evaluation of Forecasters*, 1983. Niculescu-Mizil &
      Caruana, *Predicting Good Probabilities with Supervised Learning*, ICML 2005.
    """
    counts, sum_correct, sum_conf, edges = _bin_sums(logits, labels, num_bins, where, axis)
    denom = jnp.maximum(counts, 1).astype(sum_conf.dtype)
    return ReliabilityBins(counts, sum_correct / denom, sum_conf / denom, edges)


def expected_calibration_error(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    num_bins: int = 15,
    where: jax.typing.ArrayLike | None = None,
    axis: int = -1,
) -> jax.Array:
    r"""Expected calibration error of the top-1 prediction over a set of examples (a scalar).

    .. math::
        \mathrm{ECE} = \sum_{b=1}^{B} \frac{n_b}{N}\,\bigl|\mathrm{acc}_b - \mathrm{conf}_b\bigr|
          = \frac1N \sum_b \Bigl|\sum_{i \in B_b} [\hat y_i = y_i] - \hat c_i\Bigr|

    with the equal-width, right-closed confidence bins of :func:`reliability_bins`, as in Guo et
    al.'s reference implementation. Unlike the per-example functions of entjax this **reduces
    over every example axis**: calibration is a property of a set of predictions. Examples masked
    by ``where`` are excluded from :math:`N` and from the bins; with no example left the result
    is 0.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: integer class indices, shape ``logits.shape`` without ``axis``.
      num_bins: number :math:`B` of bins (a static int; 15 as in Guo et al.).
      where: boolean mask of the examples to include, broadcastable to ``labels.shape``.
      axis: the class axis.

    Returns:
      The ECE, a scalar in ``[0, 1]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> probs = jnp.array([[0.9, 0.05, 0.05], [0.6, 0.2, 0.2], [0.4, 0.3, 0.3]])
      >>> labels = jnp.array([0, 1, 0])
      >>> ece = entjax.expected_calibration_error(jnp.log(probs), labels, num_bins=4)
      >>> print(f"{ece:.4f}")  # (|1 - .9| + |0 - .6| + |1 - .4|) / 3
      0.4333

    References:
      Naeini, Cooper & Hauskrecht, *Obtaining Well Calibrated Probabilities Using Bayesian
      Binning*, AAAI 2015. Guo, Pleiss, Sun & Weinberger, *On Calibration of Modern Neural
      Networks*, ICML 2017.
    """
    counts, sum_correct, sum_conf, _ = _bin_sums(logits, labels, num_bins, where, axis)
    total = jnp.maximum(jnp.sum(counts), 1).astype(sum_conf.dtype)
    return jnp.sum(jnp.abs(sum_correct - sum_conf)) / total


_TEMPERATURE_STEPS = 64
"""Bisection steps of :func:`fit_temperature`: the bracket of log-temperatures shrinks by
2**-64, far below the float64 spacing of any log-temperature in range."""


def _check_bounds(bounds: tuple[float, float]) -> None:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(
            f"entjax.fit_temperature: `bounds` must be a pair (low, high), got {bounds!r}."
        )
    if any(isinstance(b, jax.core.Tracer) for b in bounds):
        return  # traced bounds cannot be checked at trace time
    low, high = (float(b) for b in bounds)
    if not 0 < low < high < float("inf"):
        raise ValueError(
            f"entjax.fit_temperature: `bounds` must satisfy 0 < low < high < inf, got "
            f"{bounds!r}; e.g. `bounds=(0.05, 20.0)`."
        )


def fit_temperature(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    where: jax.typing.ArrayLike | None = None,
    bounds: tuple[float, float] = (0.05, 20.0),
    axis: int = -1,
) -> jax.Array:
    r"""Temperature scaling: the temperature minimising the mean NLL of ``softmax(logits / T)``.

    .. math::
        T^\star = \arg\min_{T \in [T_\mathrm{lo}, T_\mathrm{hi}]}
          \frac1N \sum_{i=1}^N \Bigl(\log \sum_c e^{x_{ic}/T} - x_{i y_i}/T\Bigr),

    Guo et al.'s one-parameter post-hoc calibration: fit :math:`T` on held-out data, then use
    ``logits / T``. The mean NLL is convex in :math:`\beta = 1/T`, so its derivative

    .. math::
        \frac{\partial\,\mathrm{NLL}}{\partial \beta}
          = \frac1N \sum_i \bigl(\mathbb{E}_{p_i^\beta}[x_i] - x_{i y_i}\bigr)

    is increasing in :math:`\beta`; its sign is bisected over :math:`\log T` within ``bounds``
    (64 steps in a ``lax.fori_loop``, one pass over the logits each). Bisecting the derivative
    rather than comparing NLL values (a golden-section search) locates the minimum to the
    precision of the derivative instead of the square root of the precision of the NLL, which
    matters in float32 where the NLL is flat near its minimum. If the unscaled model is at least
    as good (``NLL(1) <= NLL(T*)``, e.g. when :math:`T^\star \approx 1`, or when ``bounds``
    exclude 1 and no temperature within them beats the unscaled logits) the result is exactly 1,
    so the fitted NLL never exceeds the unscaled one.

    Unlike the per-example functions of entjax this **reduces over every example axis** (a fit
    is a statistic of a set). It is pure, works under ``jax.jit`` and ``jax.vmap`` (e.g. over a
    leading ensemble-member axis of ``logits`` with shared labels, ``in_axes=(0, None)``), and
    computes in at least float32. Examples masked by ``where`` are excluded; with none left the
    result is 1. ``-inf`` logits are classes of probability 0; out-of-range labels give NaN.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: integer class indices, shape ``logits.shape`` without ``axis``.
      where: boolean mask of the examples to include, broadcastable to ``labels.shape``.
      bounds: the search interval ``(low, high)`` of temperatures, ``0 < low < high``.
      axis: the class axis.

    Returns:
      The temperature :math:`T^\star`, a scalar array (float32, or float64 for float64 logits).

    Examples:
      >>> import jax, jax.numpy as jnp, entjax
      >>> true_logits = jax.random.normal(jax.random.key(0), (2000, 5))
      >>> labels = jax.random.categorical(jax.random.key(1), true_logits)
      >>> t = jax.jit(entjax.fit_temperature)(3.0 * true_logits, labels)  # overconfident by 3x
      >>> print(f"{t:.1f}")
      3.0
      >>> nll = lambda z: entjax.negative_log_likelihood(z, labels).mean()
      >>> bool(nll(3.0 * true_logits / t) < nll(3.0 * true_logits))
      True

    References:
      Guo, Pleiss, Sun & Weinberger, *On Calibration of Modern Neural Networks*, ICML 2017.
      Platt, *Probabilistic Outputs for Support Vector Machines*, 1999.
    """
    _check_bounds(bounds)
    x, labels, keep = _set_inputs(logits, labels, where, axis)
    num_classes = x.shape[-1]
    x = x.reshape(-1, num_classes)
    y = labels.reshape(-1, 1)
    keep = jnp.ones(y.shape[0], bool) if keep is None else keep.reshape(-1)
    dtype = x.dtype
    in_range = (y[:, 0] >= 0) & (y[:, 0] < num_classes)
    x_y = jnp.take_along_axis(x, jnp.clip(y, 0, max(num_classes - 1, 0)), axis=-1)[:, 0]
    x_y = jnp.where(in_range, x_y, jnp.nan)
    count = jnp.maximum(jnp.sum(keep), 1).astype(dtype)
    safe_x = jnp.where(x == -jnp.inf, 0.0, x)  # -inf classes have p = 0: no 0 * inf

    def mean(v: jax.Array) -> jax.Array:
        return jnp.sum(jnp.where(keep, v, 0.0)) / count

    def nll(beta: jax.Array) -> jax.Array:
        ls = nx.masked_log_softmax(x * beta)
        return mean(ls.lse - beta * x_y)

    def slope(beta: jax.Array) -> jax.Array:
        ls = nx.masked_log_softmax(x * beta)
        expected = jnp.sum(ls.probs * safe_x, axis=-1)  # E_p[x]
        return mean(expected - x_y)

    def step(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        # NLL increases with beta = exp(-mid) there: the minimum lies at a larger log T.
        increasing = slope(jnp.exp(-mid)) > 0
        return jnp.where(increasing, mid, lo), jnp.where(increasing, hi, mid)

    lo = jnp.log(jnp.asarray(bounds[0], dtype))
    hi = jnp.log(jnp.asarray(bounds[1], dtype))
    lo, hi = lax.fori_loop(0, _TEMPERATURE_STEPS, step, (lo, hi))
    log_t = 0.5 * (lo + hi)
    fitted, unscaled = nll(jnp.exp(-log_t)), nll(jnp.ones((), dtype))
    t = jnp.where(unscaled <= fitted, jnp.ones((), dtype), jnp.exp(log_t))
    return jnp.where(jnp.isnan(unscaled), jnp.nan, t)
