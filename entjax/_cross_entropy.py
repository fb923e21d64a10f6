"""Cross-entropy losses: softmax (integer and soft labels), sigmoid, and on probabilities."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from . import _checks as ck, _numerics as nx


def _check_integer_labels(
    logits: jax.Array, labels: jax.typing.ArrayLike, axes: tuple[int, ...]
) -> jax.Array:
    labels = ck.check_integer(labels, "labels")
    batch_shape = tuple(d for i, d in enumerate(logits.shape) if i not in axes)
    ck.check_shape(labels, batch_shape, "labels", expected="logits without the class axis")
    return labels


def _integer_nll_parts(x: jax.Array, labels: jax.Array):
    """``lse(x) - x[label]`` per row, ``(shift, log_total)`` with ``lse = shift + log_total``,
    and the row/label validity flags.

    ``-inf`` entries of ``x`` are structural zeros; they need no mask because ``exp(-inf - m)``
    is exactly 0 for a finite shift ``m``. A row of ``-inf`` has ``any_valid = False`` (and
    ``nll = 0``); a ``-inf`` label logit gives ``+inf``. NaN logits propagate.
    """
    m = jnp.max(x, axis=-1)
    shift = nx.stable_shift(m)
    total = jnp.sum(jnp.exp(x - shift[..., None]), axis=-1)
    nll, log_total, any_valid, row_ok = _nll_from_sum(total, shift, _label_logit(x, labels))
    return nll, (shift, log_total), any_valid, row_ok


def _label_logit(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[..., labels]`` per row, for labels already clipped into range."""
    return jnp.take_along_axis(x, labels[..., None], axis=-1, mode="promise_in_bounds")[..., 0]


def _nll_from_sum(total: jax.Array, shift: jax.Array, label_logit: jax.Array):
    """``lse - x[label]`` from ``total = Σ exp(x - shift)``, with the row flags of the loss.

    Returns ``(nll, log_total, any_valid, row_ok)``: 0 on rows without a class, ``+inf`` where
    the label's logit is ``-inf``; ``row_ok`` marks the rows with a finite, differentiable loss.
    """
    any_valid = total != 0  # NaN compares unequal, so a NaN row stays "valid" and propagates
    log_total = jnp.log(jnp.where(any_valid, total, 1.0))
    label_ok = label_logit != -jnp.inf
    # In shifted coordinates: exact for logits like 1e4 - 1 where lse - x would round.
    nll = jnp.where(label_ok, log_total - (label_logit - shift), jnp.inf)
    nll = jnp.where(any_valid, nll, 0.0)
    return nll, log_total, any_valid, any_valid & label_ok


@jax.custom_jvp
def _integer_nll(x: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-row ``lse(x) - x[label]`` (labels already in range) and whether the row has a class.

    A custom JVP with the closed-form tangent ``sum((softmax(x) - onehot) * dx)``: linear in
    ``dx``, so it serves forward mode and, transposed, reverse mode, where the backward pass is a
    single fused elementwise pass over the logits (no softmax or mask buffers are kept). Rows
    whose loss is ``+inf`` (label logit ``-inf``) or that have no candidate class get a zero
    tangent, and ``-inf`` entries have ``softmax = 0``, so no ``inf * 0`` is ever formed.
    """
    nll, _, any_valid, _ = _integer_nll_parts(x, labels)
    return nll, any_valid


@_integer_nll.defjvp
def _integer_nll_jvp(primals, tangents):
    x, labels = primals
    dx, _ = tangents
    nll, (shift, log_total), any_valid, row_ok = _integer_nll_parts(x, labels)
    onehot = labels[..., None] == lax.broadcasted_iota(labels.dtype, x.shape, x.ndim - 1)
    # 0 on -inf entries and on rows without a class; shifted first, for precision at 1e4.
    probs = jnp.exp((x - shift[..., None]) - log_total[..., None])
    coef = jnp.where(row_ok[..., None], probs - onehot.astype(x.dtype), 0.0)
    dnll = jnp.sum(coef * dx, axis=-1)
    return (nll, any_valid), (dnll, _no_tangent(any_valid))


def _no_tangent(flags: jax.Array) -> np.ndarray:
    return np.zeros(flags.shape, dtype=jax.dtypes.float0)


def _class_iota(x: jax.Array, dtype) -> jax.Array:
    return lax.broadcasted_iota(dtype, x.shape, x.ndim - 1)


def _guess(x: jax.Array, label_logit: jax.Array) -> jax.Array | None:
    """The label's logit as the shift for large arrays; ``None`` (the row maximum) for small."""
    return label_logit if nx.use_fast_path(x) else None


@jax.custom_jvp
def _integer_nll_cpu(x: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:func:`_integer_nll` in the form that is fastest on CPU (same values and tangents).

    On CPU ``exp`` dominates the cost, and memory passes come next. The forward pass shifts by
    the label's logit instead of the row maximum (:func:`entjax._numerics.softmax_sum`): one
    pass over the logits instead of two, with every row recomputed from the maximum in the rare
    batch where some logit exceeds its row's label logit by ~88 (or is ``+inf``/NaN, or a label
    logit is ``-inf``). The backward pass keeps ``e = exp(x - shift)`` from the forward pass
    and rescales it in place (one ``exp`` per logit); recomputing it, the better trade on
    accelerators, costs a second ``exp``.
    """
    label_logit = _label_logit(x, labels)
    shift, total = nx.softmax_sum(x, _guess(x, label_logit))
    nll, _, any_valid, _ = _nll_from_sum(total, shift, label_logit)
    return nll, any_valid


@_integer_nll_cpu.defjvp
def _integer_nll_cpu_jvp(primals, tangents):
    x, labels = primals
    dx, _ = tangents
    label_logit = _label_logit(x, labels)
    e, shift, total = nx.softmax_exp(x, _guess(x, label_logit))
    nll, _, any_valid, row_ok = _nll_from_sum(total, shift, label_logit)
    # Everything per row is folded into two [N] vectors before it meets the [N, C] arrays.
    scale = jnp.where(row_ok, 1.0 / jnp.where(any_valid, total, 1.0), 0.0)
    hit = jnp.where(row_ok, labels, -1)[..., None] == _class_iota(x, labels.dtype)
    dnll = scale * jnp.sum(e * dx, axis=-1) - jnp.sum(jnp.where(hit, dx, 0.0), axis=-1)
    return (nll, any_valid), (dnll, _no_tangent(any_valid))


def softmax_cross_entropy_with_integer_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: ck.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    *,
    label_smoothing: float = 0.0,
    class_weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Softmax cross-entropy against integer class labels.

    .. math::
        \ell_i = w_{y_i} (1-\varepsilon)\,\bigl(\operatorname{lse}(x_i) - x_{i y_i}\bigr)
          + \frac{\varepsilon}{C} \sum_c w_c \bigl(\operatorname{lse}(x_i) - x_{ic}\bigr)

    with smoothing :math:`\varepsilon` and class weights :math:`w` (1 by default): the semantics
    of PyTorch's ``F.cross_entropy(..., reduction="none", weight=w, label_smoothing=ε)``. The
    smoothing sum runs over the candidate classes only (``where=True`` and logit ``> -inf``) and
    :math:`C` counts them, so masked classes never make the loss infinite.

    A drop-in replacement for ``optax.softmax_cross_entropy_with_integer_labels`` (same positional
    ``axis``/``where``, tuple axes, per-example or per-logit masks; same values where optax's are
    finite). Edge cases:

    * rows whose label equals ``ignore_index``, and rows with no candidate class, give 0 with
      zero gradient;
    * a label whose own logit is ``-inf`` (or masked) gives ``+inf`` with zero gradient;
    * a label outside ``[0, C)`` that is not ``ignore_index`` gives NaN, never a silent
      wrap-around (use :func:`entjax.validate_labels` under :func:`entjax.checked` to raise).

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: integer class indices, shape ``logits.shape`` without ``axis``. With several class
        axes a label is a flat (row-major) index into them, as in optax.
      axis: class axis or tuple of class axes.
      where: boolean mask of classes (per logit) or of examples (per example).
      label_smoothing: :math:`\varepsilon \in [0, 1]`, uniform mixing as in PyTorch.
      class_weights: per-class weights :math:`w`, shape ``[num_classes]``.
      ignore_index: label value whose rows are ignored (loss and gradient 0), e.g. ``-100``.

    Returns:
      The loss per example, shape ``labels.shape``, in at least float32.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> logits = jnp.array([[2.0, 1.0, 0.1]])
      >>> print(entjax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0])))
      [0.417]
      >>> print(entjax.softmax_cross_entropy_with_integer_labels(
      ...     logits, jnp.array([-100]), ignore_index=-100))
      [0.]

    References:
      Murphy, *Probabilistic Machine Learning: An Introduction*, 2022, §10.3. Szegedy et al.,
      *Rethinking the Inception Architecture for Computer Vision*, 2016 (label smoothing).
    """
    logits = ck.check_floating(logits, "logits")
    ck.check_min_rank(logits, 1, "logits")
    axes = ck.normalize_axes(axis, logits.ndim)
    labels = _check_integer_labels(logits, labels, axes)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"`label_smoothing` must lie in [0, 1], got {label_smoothing}.")
    mask = nx.class_mask_last(where, logits.shape, axes)
    x = nx.class_axes_last(nx.upcast(logits), axes)
    num_classes = x.shape[-1]
    weights = None
    if class_weights is not None:
        weights = nx.upcast(ck.check_floating(class_weights, "class_weights"), x.dtype)
        ck.check_shape(weights, (num_classes,), "class_weights", expected="[num_classes]")

    in_range = (labels >= 0) & (labels < num_classes)
    if not label_smoothing:
        # Fast path: two reads of the logits forward, one read + one write backward.
        if mask is not None:
            x = jnp.where(mask, x, -jnp.inf)  # masked classes become structural zeros
        loss, any_valid = nx.on_cpu(
            _integer_nll_cpu, _integer_nll, x, jnp.clip(labels, 0, num_classes - 1)
        )
        if weights is not None:
            # Double where: the weight's gradient at a +inf loss is 0, not 0 * inf = NaN.
            w_label = jnp.take(weights, jnp.clip(labels, 0, num_classes - 1))
            finite = loss < jnp.inf
            loss = jnp.where(finite, jnp.where(finite, loss, 0.0) * w_label, loss)
        loss = jnp.where(in_range, loss, jnp.nan)
        keep = any_valid if ignore_index is None else any_valid & (labels != ignore_index)
        return jnp.where(keep, loss, 0.0)

    if mask is not None:
        x = jnp.where(mask, x, -jnp.inf)  # masked classes become structural zeros
    smoothed = functools.partial(_smoothed_ce, label_smoothing)
    smoothed_cpu = functools.partial(_smoothed_ce_cpu, label_smoothing)
    clipped = jnp.clip(labels, 0, num_classes - 1)
    loss, any_valid = nx.on_cpu(smoothed_cpu, smoothed, x, clipped, weights)
    loss = jnp.where(in_range, loss, jnp.nan)
    keep = any_valid if ignore_index is None else any_valid & (labels != ignore_index)
    return jnp.where(keep, loss, 0.0)


def _smoothed_ce(eps: float, x: jax.Array, labels: jax.Array, weights: jax.Array | None):
    """Label-smoothed, optionally class-weighted CE per row and the rows with a class.

    The reference form (autodiff through :func:`entjax._numerics.masked_log_softmax`), used off
    CPU and as the definition that :func:`_smoothed_ce_cpu` reproduces.
    """
    num_classes = x.shape[-1]
    ls = nx.masked_log_softmax(x)
    if weights is not None:
        weights = weights.reshape((1,) * (x.ndim - 1) + (num_classes,))
    onehot = labels[..., None] == _class_iota(x, labels.dtype)
    # Shifted log-probabilities, not lse - logit: exact at logits of ±1e4.
    label_log_prob = jnp.sum(jnp.where(onehot, ls.log_probs, 0.0), axis=-1)
    label_ok = jnp.any(onehot & ls.valid, axis=-1)
    nll = nx.negate(label_log_prob)  # finite everywhere (0 where the label is not a class)
    if weights is not None:
        nll = nll * jnp.sum(jnp.where(onehot, weights, 0.0), axis=-1)
    per_class = -ls.log_probs if weights is None else -ls.log_probs * weights
    count = jnp.maximum(jnp.sum(ls.valid, axis=-1), 1).astype(x.dtype)
    smooth = jnp.sum(per_class, axis=-1) / count
    # The whole row's loss is +inf where the label has probability 0, with a zero gradient for
    # the logits and the weights alike (the CPU form's tangent): the double where keeps every
    # arithmetic finite, so no 0 * inf = NaN reaches the class weights.
    loss = (1.0 - eps) * nll + eps * smooth
    return jnp.where(label_ok, loss, jnp.inf), ls.any_valid


def _smoothing_sums(x: jax.Array, shift: jax.Array, weights: jax.Array | None):
    """``(Σ_c w_c (x_c - shift), Σ_c w_c, K)`` over the candidate classes (logit ``> -inf``).

    The select-free sum over every class is right unless some logit is ``-inf`` (the sum is
    then ``-inf``) or NaN; only then are the candidates counted and masked.
    """
    z = x - shift[..., None]
    num_classes = x.shape[-1]
    if weights is None:
        fast_sum = jnp.sum(z, axis=-1)
        w_total = jnp.full(shift.shape, num_classes, x.dtype)
    else:
        fast_sum = jnp.sum(_per_class(weights, x) * z, axis=-1)
        w_total = jnp.broadcast_to(jnp.sum(weights), shift.shape)
    count = jnp.full(shift.shape, num_classes, x.dtype)

    def careful(x, shift):
        valid = x != -jnp.inf
        w = (
            valid.astype(x.dtype)
            if weights is None
            else jnp.where(valid, _per_class(weights, x), 0.0)
        )
        wz = jnp.sum(w * jnp.where(valid, x - shift[..., None], 0.0), axis=-1)
        return wz, jnp.sum(w, axis=-1), jnp.sum(valid, axis=-1).astype(x.dtype)

    if not nx.use_fast_path(x):
        return careful(x, shift)
    ok = nx.all_finite(fast_sum)
    careful_rows = functools.partial(nx.by_row_blocks, careful)
    return nx.fallback_unless(ok, (fast_sum, w_total, count), careful_rows, x, shift)


def _smoothed_ce_cpu_parts(eps, x, labels, weights, *, keep_exp: bool):
    label_logit = _label_logit(x, labels)
    if keep_exp:
        e, shift, total = nx.softmax_exp(x, _guess(x, label_logit))
    else:
        e = None
        shift, total = nx.softmax_sum(x, _guess(x, label_logit))
    nll, log_total, any_valid, row_ok = _nll_from_sum(total, shift, label_logit)
    wz, w_total, count = _smoothing_sums(x, shift, weights)
    count = jnp.maximum(count, 1.0)
    w_label = 1.0 if weights is None else jnp.take(weights, labels)
    smooth = (w_total * log_total - wz) / count  # Σ_c w_c (lse - x_c) / K
    loss = (1.0 - eps) * (w_label * nll) + eps * smooth
    return loss, any_valid, (e, total, log_total, nll, row_ok, w_label, w_total, count, shift)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _smoothed_ce_cpu(eps: float, x: jax.Array, labels: jax.Array, weights: jax.Array | None):
    """:func:`_smoothed_ce` in the form that is fastest on CPU (as :func:`_integer_nll_cpu`).

    One ``exp`` per logit with ``e`` kept for the backward pass, the label's logit as the
    shift, and the smoothing sum over every class unless a ``-inf`` logit makes it count the
    candidates. The tangent is ``α p - β`` with ``α = (1-ε) w_y + ε Σ_c w_c / K`` and
    ``β_c = (1-ε) w_y [c = y] + ε w_c / K`` on the candidates; zero on rows whose loss is not
    finite or that have no class.
    """
    loss, any_valid, _ = _smoothed_ce_cpu_parts(eps, x, labels, weights, keep_exp=False)
    return loss, any_valid


def _smoothed_ce_cpu_jvp(eps, primals, tangents):
    x, labels, weights = primals
    dx, _, dw = tangents
    loss, any_valid, parts = _smoothed_ce_cpu_parts(eps, x, labels, weights, keep_exp=True)
    e, total, log_total, nll, row_ok, w_label, w_total, count, shift = parts
    dloss = jnp.zeros_like(loss)
    valid = x != -jnp.inf
    if not _is_zero(dx):
        alpha = (1.0 - eps) * w_label + eps * w_total / count
        scale = jnp.where(row_ok, alpha / jnp.where(any_valid, total, 1.0), 0.0)
        label_coef = jnp.where(row_ok, (1.0 - eps) * w_label, 0.0)
        smooth_coef = jnp.where(row_ok, eps / count, 0.0)
        if weights is None:
            w_valid = valid.astype(x.dtype)
        else:
            w_valid = jnp.where(valid, _per_class(weights, x), 0.0)
        hit = labels[..., None] == _class_iota(x, labels.dtype)
        dloss = (
            scale * jnp.sum(e * dx, axis=-1)
            - label_coef * jnp.sum(jnp.where(hit, dx, 0.0), axis=-1)
            - smooth_coef * jnp.sum(w_valid * dx, axis=-1)
        )
    if weights is not None and not _is_zero(dw):
        # ∂ℓ/∂w_c = (1-ε) nll [c = y] + ε (lse - x_c) / K on the candidate classes.
        neg_log_p = jnp.where(valid, log_total[..., None] - (x - shift[..., None]), 0.0)
        d_smooth = jnp.sum(neg_log_p * _per_class(dw, x), axis=-1) / count
        d_nll = jnp.where(row_ok, nll, 0.0) * jnp.take(dw, labels)  # no 0 * inf transposed
        dloss = dloss + jnp.where(row_ok, (1.0 - eps) * d_nll + eps * d_smooth, 0.0)
    return (loss, any_valid), (dloss, _no_tangent(any_valid))


_smoothed_ce_cpu.defjvp(_smoothed_ce_cpu_jvp, symbolic_zeros=True)


def _per_class(w: jax.Array, x: jax.Array) -> jax.Array:
    """A ``[C]`` vector shaped to broadcast against ``x`` (explicit rank promotion)."""
    return w.reshape((1,) * (x.ndim - 1) + w.shape)


def _is_zero(tangent) -> bool:
    return isinstance(tangent, SymbolicZero)


def softmax_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: ck.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Softmax cross-entropy against a target distribution (soft or one-hot labels).

    .. math::
        \ell_i = -\sum_c y_{ic} \log \mathrm{softmax}(x_i)_c = H(y_i, p_i).

    A drop-in replacement for ``optax.softmax_cross_entropy``. Classes with ``where=False`` are
    excluded (their labels are ignored); a ``-inf`` logit contributes 0 where its label is 0 and
    makes the loss ``+inf`` where its label is positive; a row with no candidate gives 0.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: target probabilities, broadcastable to ``logits``.
      axis: class axis or axes (``None``: all axes).
      where: boolean mask of classes (per logit) or of examples (per example).

    Returns:
      The loss per example, shape ``logits.shape`` without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> logits = jnp.log(jnp.array([0.6, 0.2, 0.2]))
      >>> print(f"{entjax.softmax_cross_entropy(logits, jnp.array([0.0, 0.0, 1.0])):.4f}")
      1.6094

    References:
      Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, §2.3 (cross-entropy).
    """
    logits = ck.check_floating(logits, "logits")
    labels = ck.check_floating(labels, "labels")
    ck.check_min_rank(logits, 1, "logits")
    ck.check_broadcastable(labels, logits.shape, "labels", to="logits")
    axes = ck.normalize_axes(axis, logits.ndim)
    mask = nx.class_mask_last(where, logits.shape, axes)
    dtype = nx.compute_dtype(logits, labels)
    x = nx.class_axes_last(nx.upcast(logits, dtype), axes)
    y = nx.class_axes_last(nx.upcast(jnp.broadcast_to(labels, logits.shape), dtype), axes)
    if mask is not None:
        x = jnp.where(mask, x, -jnp.inf)  # masked classes become structural zeros
        y = jnp.where(mask, y, 0.0)
    return nx.on_cpu(_soft_ce_cpu if nx.use_fast_path(x) else _soft_ce, _soft_ce, x, y)


def _soft_ce(x: jax.Array, y: jax.Array) -> jax.Array:
    """``H(y, softmax(x))`` over the last axis with ``-inf`` logits as structural zeros.

    The careful form, with finite values and gradients everywhere (double ``where``): off CPU,
    for small arrays, and as the fallback of :func:`_soft_ce_cpu`.
    """
    valid = x != -jnp.inf
    z = jnp.where(valid, x - nx.row_max_shift(x)[..., None], 0.0)
    total = jnp.sum(jnp.where(valid, jnp.exp(z), 0.0), axis=-1)
    any_valid = total != 0  # NaN compares unequal: a NaN row propagates
    log_total = jnp.log(jnp.where(any_valid, total, 1.0))[..., None]
    terms = jnp.where(valid, y * (z - log_total), jnp.where(y != 0, -jnp.inf, 0.0))
    return jnp.where(any_valid, nx.negate(jnp.sum(terms, axis=-1)), 0.0)


def _soft_ce_cpu_parts(x: jax.Array, y: jax.Array, *, keep_exp: bool):
    """``(loss, e, total)``: ``loss = Σ_c y_c (log Σ e - (x_c - shift))``, ``e = exp(x - shift)``.

    Select-free, so XLA:CPU fuses each sum with its arithmetic (the passes of optax's
    ``log_softmax`` form: maximum, exponential sum, weighted sum); exact wherever every term is
    finite, and recomputed by :func:`_soft_ce` (``-inf`` logits, rows without a class, NaN)
    otherwise.
    """
    shift = nx.row_max_shift(x)[..., None]
    e = jnp.exp(x - shift)
    total = jnp.sum(e, axis=-1)
    fast = nx.negate(jnp.sum(y * ((x - shift) - jnp.log(total)[..., None]), axis=-1))
    careful = functools.partial(nx.by_row_blocks, _soft_ce)
    loss = nx.fallback_unless(nx.all_finite(fast), fast, careful, x, y)
    return loss, (e if keep_exp else None), total


@jax.custom_jvp
def _soft_ce_cpu(x: jax.Array, y: jax.Array) -> jax.Array:
    """:func:`_soft_ce` in the form that is fastest on CPU (same values).

    One ``exp`` per logit, kept for the backward pass, which rescales it in place:
    ``∂ℓ/∂x = Y softmax(x) - y`` and ``∂ℓ/∂y = -log softmax(x)`` on the candidate classes, zero
    on rows whose loss is not finite or that have no class.
    """
    return _soft_ce_cpu_parts(x, y, keep_exp=False)[0]


def _soft_ce_cpu_jvp(primals, tangents):
    x, y = primals
    dx, dy = tangents
    loss, e, total = _soft_ce_cpu_parts(x, y, keep_exp=True)
    row_ok = (total != 0) & (loss < jnp.inf)  # NaN fails the comparison: no tangent either
    dloss = jnp.zeros_like(loss)
    if not _is_zero(dx):
        y_total = jnp.sum(y, axis=-1)
        scale = jnp.where(row_ok, y_total / jnp.where(total != 0, total, 1.0), 0.0)
        dloss = scale * jnp.sum(e * dx, axis=-1) - jnp.where(row_ok, jnp.sum(y * dx, axis=-1), 0.0)
    if not _is_zero(dy):
        log_total = jnp.log(jnp.where(total != 0, total, 1.0))[..., None]
        z = x - nx.row_max_shift(x)[..., None]
        neg_log_p = jnp.where(x != -jnp.inf, log_total - z, 0.0)
        dloss = dloss + jnp.where(row_ok, jnp.sum(neg_log_p * dy, axis=-1), 0.0)
    return loss, dloss


_soft_ce_cpu.defjvp(_soft_ce_cpu_jvp, symbolic_zeros=True)


def cross_entropy_from_probs(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
    min_prob: float = 0.0,
    base: float | None = None,
) -> jax.Array:
    r"""Cross-entropy of predicted probabilities against integer, one-hot or soft labels.

    .. math::
        H(y, p) = -\sum_c y_c \log p_c, \qquad 0 \log 0 = 0.

    The textbook form, without clipping ``p`` to :math:`[\varepsilon, 1-\varepsilon]`: classes
    with :math:`y_c = 0` contribute exactly 0 (value and gradient) even where :math:`p_c = 0`, and
    :math:`p_c = 0` with :math:`y_c > 0` gives ``+inf``, which is the right answer. Pass
    ``min_prob > 0`` to floor *only* the probabilities inside the logarithm instead.

    Args:
      probs: predicted probabilities, shape ``[..., num_classes]``.
      labels: integer class indices of shape ``probs.shape`` without ``axis`` (out-of-range
        labels give NaN), or target probabilities (one-hot or soft) broadcastable to ``probs``.
      axis: the class axis.
      where: boolean mask of classes (per entry) or of examples (per example).
      min_prob: floor applied to ``probs`` inside the logarithm (0: none).
      base: ``None`` for nats, ``2`` for bits.

    Returns:
      The cross-entropy per example, shape ``probs.shape`` without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> probs = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
      >>> print(f"{entjax.cross_entropy_from_probs(probs, jnp.eye(3)).mean():.4f}")
      0.3635
      >>> print(f"{entjax.cross_entropy_from_probs(jnp.array([0.6, 0.2, 0.2]), 2):.4f}")
      1.6094

    References:
      Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, §2.3.
    """
    probs = ck.check_floating(probs, "probs")
    ck.check_min_rank(probs, 1, "probs")
    labels = jnp.asarray(labels)
    axes = ck.normalize_axes(axis, probs.ndim)
    num_classes = probs.shape[axes[0]]
    in_range = None
    if jnp.issubdtype(labels.dtype, jnp.integer):
        _check_integer_labels(probs, labels, axes)
        dtype = nx.compute_dtype(probs)
        in_range = (labels >= 0) & (labels < num_classes)  # never a silent all-zero one-hot
        labels = jax.nn.one_hot(labels, num_classes, dtype=dtype, axis=axes[0])
    elif jnp.issubdtype(labels.dtype, jnp.floating):
        ck.check_broadcastable(labels, probs.shape, "labels", to="probs")
        dtype = nx.compute_dtype(probs, labels)
    else:
        raise TypeError(f"`labels` must be integer indices or float targets, got {labels.dtype}.")
    mask = nx.class_mask_last(where, probs.shape, axes)
    p = nx.class_axes_last(nx.upcast(probs, dtype), axes)
    y = nx.class_axes_last(nx.upcast(jnp.broadcast_to(labels, probs.shape), dtype), axes)
    if min_prob:
        p = jnp.maximum(p, min_prob)
    if mask is not None:
        y = jnp.where(mask, y, 0.0)
    loss = nx.to_base(nx.negate(jnp.sum(nx.xlogy(y, p), axis=-1)), base)
    return loss if in_range is None else jnp.where(in_range, loss, jnp.nan)


def sigmoid_binary_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    pos_weight: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Element-wise binary cross-entropy of ``sigmoid(logits)`` against labels in ``[0, 1]``.

    .. math::
        \ell = -\bigl(w_+\, y \log \sigma(x) + (1 - y) \log(1 - \sigma(x))\bigr)

    computed with ``log_sigmoid`` (so ``log(1 - σ(x)) = log σ(-x)`` is exact for large ``|x|``);
    :math:`w_+` is PyTorch's ``pos_weight`` (1 by default). Terms with a zero coefficient are
    exactly 0, so ``x = ±inf`` with the matching label gives 0 and zero gradient. A drop-in
    replacement for ``optax.sigmoid_binary_cross_entropy``.

    Args:
      logits: log-odds, any shape.
      labels: targets in ``[0, 1]`` (hard or soft), broadcastable to ``logits``.
      pos_weight: weight of the positive term, broadcastable to ``logits`` (per class).
      where: boolean mask; masked elements give 0.

    Returns:
      The loss per element, shape ``logits.shape``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> print(entjax.sigmoid_binary_cross_entropy(jnp.array([0.0, 1e4]), jnp.array([1.0, 1.0])))
      [0.6931 0.    ]

    References:
      Bishop, *Pattern Recognition and Machine Learning*, 2006, §4.3.2.
    """
    logits = ck.check_floating(logits, "logits")
    labels = jnp.asarray(labels)
    ck.check_broadcastable(labels, logits.shape, "labels", to="logits")
    dtype = nx.compute_dtype(logits)
    x = nx.upcast(logits, dtype)
    y = jnp.broadcast_to(labels.astype(dtype), x.shape)
    pos = nx.safe_mul(y, jax.nn.log_sigmoid(x))
    if pos_weight is not None:
        pw = nx.upcast(ck.check_floating(pos_weight, "pos_weight"), dtype)
        ck.check_broadcastable(pw, x.shape, "pos_weight", to="logits")
        pos = pos * jnp.broadcast_to(pw, x.shape)
    loss = nx.negate(pos + nx.safe_mul(1.0 - y, jax.nn.log_sigmoid(-x)))
    mask = ck.example_mask(where, x.shape)
    return loss if mask is None else jnp.where(mask, loss, 0.0)


def perplexity(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Perplexity of each sequence: the exponential of its mean per-token cross-entropy.

    .. math::
        \mathrm{PPL} = \exp\Bigl(\frac{\sum_t m_t\, \mathrm{CE}(x_t, y_t)}{\sum_t m_t}\Bigr)

    with token mask :math:`m` (padding excluded from the mean; an empty sequence has perplexity 1).
    Perplexity does not depend on the logarithm base.

    Args:
      logits: shape ``[..., seq_len, num_classes]``.
      labels: integer targets, shape ``[..., seq_len]``.
      where: boolean token mask, shape ``[..., seq_len]``.

    Returns:
      Perplexity per sequence, shape ``labels.shape[:-1]``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> # A uniform guess over 4 classes is as perplexed as a fair 4-sided die.
      >>> print(entjax.perplexity(jnp.zeros((3, 4)), jnp.array([0, 1, 2])))
      4.0

    References:
      Jurafsky & Martin, *Speech and Language Processing*, 3rd ed. draft, §3.3.
    """
    logits = ck.check_floating(logits, "logits")
    labels = ck.check_integer(labels, "labels")
    ck.check_min_rank(logits, 2, "logits")
    ce = softmax_cross_entropy_with_integer_labels(logits, labels)
    mask = ck.example_mask(where, labels.shape)
    weights = jnp.ones_like(ce) if mask is None else mask.astype(ce.dtype)
    total = jnp.sum(jnp.where(weights > 0, ce, 0.0), axis=-1)
    count = jnp.sum(weights, axis=-1)
    return jnp.exp(total / jnp.maximum(count, 1.0))
