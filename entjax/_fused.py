"""Fused linear + softmax cross-entropy and entropy for large vocabularies.

The logits ``hidden @ weight`` of a language model are ``[tokens, vocab]``: at 8k tokens and a
128k vocabulary they take 4 GiB in float32, and their gradient another 4 GiB. The functions here
never build them. The forward pass scans vocabulary chunks with an online log-sum-exp (running
maximum ``m`` and sum ``s``, as in flash attention); the backward pass (a ``jax.custom_vjp``)
recomputes each chunk's logits from the saved ``O(tokens)`` statistics and accumulates the
gradients of ``hidden``, ``weight`` and ``bias`` chunk by chunk. Scratch memory is
``O(tokens × chunk_size)``, independent of the vocabulary size.

The custom VJP works on four per-token statistics of the logits ``x`` (``p = softmax(x)``):

* ``lse = log Σ_c exp(x_c)``, with ``∂/∂x = p``;
* ``nll = lse - x_y``, with ``∂/∂x = p - onehot(y)``;
* ``smooth = lse - mean_c x_c`` (mean over the candidate classes), with ``∂/∂x = p - 1/C``;
* ``ent = lse - Σ_c p_c x_c``, with ``∂/∂x = -p ⊙ (x - E_p[x])``.

Every public option (label smoothing, z-loss, ``ignore_index``, masks, NaN for out-of-range
labels) is ordinary JAX on these ``[tokens]`` vectors, so autodiff composes them.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import _checks as ck, _numerics as nx

WeightLayout = Literal["dv", "vd"]

DEFAULT_CHUNK_SIZE = 2048


class _Config(NamedTuple):
    """Static configuration of the chunked kernel (hashable, a ``nondiff_argnum``)."""

    layout: str  # "dv": weight [D, V]; "vd": weight [V, D]
    chunk: int
    num_classes: int
    has_bias: bool
    has_labels: bool
    smoothing: bool
    entropy: bool


class _Stats(NamedTuple):
    lse: jax.Array
    nll: jax.Array
    smooth: jax.Array
    ent: jax.Array


class _Chunk(NamedTuple):
    """Logits of one vocabulary chunk and the masks that go with them (see :func:`_chunk`)."""

    logits: jax.Array  # [N, chunk], -inf where not `valid`, in the accumulation dtype
    valid: jax.Array | None  # [1, chunk] column is a class (None: every column is)
    fresh: jax.Array | None  # [1, chunk] column not already covered by the previous chunk
    cols: jax.Array  # [1, chunk] vocabulary index of each column
    weight: jax.Array  # the weight chunk, [D, chunk] ("dv") or [chunk, D] ("vd")


class _Carry(NamedTuple):
    """Running per-token sums of the forward pass over vocabulary chunks."""

    m: jax.Array  # running max of the logits
    s: jax.Array  # Σ exp(x - m)
    x_label: jax.Array  # the label's logit (-inf until its chunk is seen)
    sum_x: jax.Array  # Σ_valid (x - m), for label smoothing
    count: jax.Array  # number of valid columns seen (scalar)
    t: jax.Array  # Σ exp(x - m) (x - m), for the entropy


class _Residuals(NamedTuple):
    """What the backward pass keeps from the forward pass: the inputs and O(N) statistics."""

    hidden: jax.Array
    weight: jax.Array
    bias: jax.Array | None
    labels: jax.Array | None
    lse: jax.Array
    mean_x: jax.Array  # E_p[x] per token, for the entropy gradient
    count: jax.Array  # number of valid classes, for the label-smoothing gradient


class _Prepared(NamedTuple):
    """Checked arguments of the public functions, tokens flattened to one axis."""

    hidden: jax.Array  # [N, D] in the matmul dtype
    weight: jax.Array
    bias: jax.Array | None
    labels: jax.Array | None  # [N] int32
    mask: jax.Array | None  # boolean per-token mask, shape `batch_shape`
    batch_shape: tuple[int, ...]
    num_classes: int


class FusedEntropy(NamedTuple):
    """Result of :func:`fused_linear_entropy` when labels are given."""

    entropy: jax.Array
    cross_entropy: jax.Array


# --------------------------------------------------------------------------------------------
# The chunked kernel.


def _dot(a: jax.Array, b: jax.Array, contract: tuple[int, int], out: jnp.dtype) -> jax.Array:
    return lax.dot_general(
        a, b, (((contract[0],), (contract[1],)), ((), ())), preferred_element_type=out
    )


def _num_chunks(cfg: _Config) -> int:
    return -(-cfg.num_classes // cfg.chunk)


def _chunk(cfg: _Config, hidden: jax.Array, weight: jax.Array, bias: jax.Array | None, i) -> _Chunk:
    """Logits of vocabulary chunk ``i`` and the masks that go with them.

    The last chunk of a vocabulary that is not a multiple of ``chunk`` is shifted left to end at
    ``V`` (no padded copy of the weight); the columns it shares with the previous chunk are
    masked out (``fresh``). See :class:`_Chunk` for the fields.
    """
    c, v = cfg.chunk, cfg.num_classes
    acc = nx.compute_dtype(hidden)
    start = jnp.minimum(i * c, v - c)
    cols = (start + jnp.arange(c, dtype=jnp.int32))[None, :]  # [1, chunk]
    if cfg.layout == "dv":
        wc = lax.dynamic_slice_in_dim(weight, start, c, axis=1)
        x = _dot(hidden, wc.astype(hidden.dtype), (1, 0), acc)
    else:
        wc = lax.dynamic_slice_in_dim(weight, start, c, axis=0)
        x = _dot(hidden, wc.astype(hidden.dtype), (1, 1), acc)
    fresh = cols >= i * c if v % c else None
    valid = fresh
    if cfg.has_bias:
        bc = lax.dynamic_slice_in_dim(bias, start, c)[None, :]
        finite_bias = bc != -jnp.inf
        valid = finite_bias if valid is None else valid & finite_bias
        x = x + jnp.where(finite_bias, bc, 0).astype(acc)
    if valid is not None:
        x = jnp.where(valid, x, -jnp.inf)
    return _Chunk(logits=x, valid=valid, fresh=fresh, cols=cols, weight=wc)


def _label_in_chunk(cfg: _Config, labels: jax.Array, i) -> tuple[jax.Array, jax.Array]:
    """Each label's column within chunk ``i`` (clipped into it) and whether the label is one of
    the chunk's fresh columns (out-of-range labels are in no chunk)."""
    c, v = cfg.chunk, cfg.num_classes
    start = jnp.minimum(i * c, v - c)
    local = labels - start
    here = (labels >= i * c) & (labels < v) & (local < c)
    return jnp.clip(local, 0, c - 1), here


def _take_rows(x: jax.Array, cols: jax.Array) -> jax.Array:
    """``x[r, cols[r]]`` for every row ``r``."""
    return jnp.take_along_axis(x, cols[:, None], axis=1, mode="promise_in_bounds")[:, 0]


def _forward(cfg: _Config, hidden, weight, bias, labels):
    """One pass over the vocabulary: returns the statistics and ``E_p[x]`` (for the VJP)."""
    n = hidden.shape[0]
    acc = nx.compute_dtype(hidden)
    zeros = jnp.zeros((n,), acc)
    init = _Carry(
        m=jnp.full((n,), -jnp.inf, acc),
        s=zeros,
        x_label=jnp.full((n,), -jnp.inf, acc),
        sum_x=zeros,
        count=jnp.zeros((), acc),
        t=zeros,
    )

    def body(i, carry: _Carry) -> _Carry:
        m, s, x_label, sum_x, count, t = carry
        chunk = _chunk(cfg, hidden, weight, bias, i)
        x, valid = chunk.logits, chunk.valid
        m_new = jnp.maximum(m, jnp.max(x, axis=1))
        m_safe = jnp.where(m_new > -jnp.inf, m_new, 0.0)
        shift = m - m_safe  # <= 0, -inf before any valid column
        alpha = jnp.exp(shift)
        e = jnp.exp(x - m_safe[:, None])  # 0 at invalid columns
        s_new = alpha * s + jnp.sum(e, axis=1)
        if cfg.has_labels:
            local, here = _label_in_chunk(cfg, labels, i)
            x_label = jnp.where(here, _take_rows(x, local), x_label)
        if cfg.smoothing or cfg.entropy:
            xs = x - m_safe[:, None]
            if valid is not None:
                xs = jnp.where(valid, xs, 0.0)
            if cfg.smoothing:
                sum_x = sum_x + jnp.where(count > 0, count * shift, 0.0) + jnp.sum(xs, axis=1)
                count = count + (cfg.chunk if valid is None else jnp.sum(valid[0], dtype=acc))
            if cfg.entropy:
                t = alpha * (t + jnp.where(s > 0, shift * s, 0.0)) + jnp.sum(e * xs, axis=1)
        return _Carry(m=m_new, s=s_new, x_label=x_label, sum_x=sum_x, count=count, t=t)

    m, s, x_label, sum_x, count, t = lax.fori_loop(0, _num_chunks(cfg), body, init)
    any_valid = s > 0
    log_s = jnp.log(jnp.where(any_valid, s, 1.0))
    lse = jnp.where(any_valid, m + log_s, -jnp.inf)
    nll = lse - x_label if cfg.has_labels else zeros
    smooth = log_s - sum_x / jnp.maximum(count, 1.0) if cfg.smoothing else zeros
    mean_shifted = t / jnp.where(any_valid, s, 1.0)
    ent = log_s - mean_shifted if cfg.entropy else zeros
    mean_x = jnp.where(any_valid, m, 0.0) + mean_shifted
    return _Stats(lse, nll, smooth, ent), (mean_x, count)


def _fused_stats_impl(cfg, hidden, weight, bias, labels):
    return _forward(cfg, hidden, weight, bias, labels)[0]


_fused_stats = jax.custom_vjp(_fused_stats_impl, nondiff_argnums=(0,))


def _fused_stats_fwd(cfg, hidden, weight, bias, labels):
    stats, (mean_x, count) = _forward(cfg, hidden, weight, bias, labels)
    return stats, _Residuals(hidden, weight, bias, labels, stats.lse, mean_x, count)


def _fused_stats_bwd(cfg, res: _Residuals, g: _Stats):
    hidden, weight, bias, labels, lse, mean_x, count = res
    acc = nx.compute_dtype(hidden)
    lse_safe = jnp.where(lse > -jnp.inf, lse, 0.0)
    coef = g.lse
    if cfg.has_labels:
        coef = coef + g.nll
    if cfg.smoothing:
        coef = coef + g.smooth
        smooth_coef = g.smooth / jnp.maximum(count, 1.0)

    def body(i, carry):
        d_hidden, d_weight, d_bias = carry
        x, valid, fresh, _, wc = _chunk(cfg, hidden, weight, bias, i)
        p = jnp.exp(x - lse_safe[:, None])  # 0 at invalid columns
        dx = p * coef[:, None]
        if cfg.has_labels:
            # One N-element scatter instead of a comparison on every logit of the chunk.
            local, here = _label_in_chunk(cfg, labels, i)
            if valid is not None:
                here = here & _take_rows(jnp.broadcast_to(valid, x.shape), local)
            rows = jnp.arange(x.shape[0])
            dx = dx.at[rows, local].add(jnp.where(here, -g.nll, 0.0), mode="promise_in_bounds")
        if cfg.smoothing:
            sc = smooth_coef[:, None]
            dx = dx - (sc if valid is None else jnp.where(valid, sc, 0.0))
        if cfg.entropy:
            centred = x - mean_x[:, None]
            if valid is not None:
                centred = jnp.where(valid, centred, 0.0)
            dx = dx - g.ent[:, None] * p * centred
        # The two GEMMs run in the input dtype (bf16 stays bf16), accumulating in float32.
        dx_mm = dx.astype(hidden.dtype)
        wc = wc.astype(hidden.dtype)
        if cfg.layout == "dv":
            d_hidden = d_hidden + _dot(dx_mm, wc, (1, 1), acc)
            dwc = _dot(hidden, dx_mm, (0, 0), acc).astype(weight.dtype)
            axis = 1
        else:
            d_hidden = d_hidden + _dot(dx_mm, wc, (1, 0), acc)
            dwc = _dot(dx_mm, hidden, (0, 0), acc).astype(weight.dtype)
            axis = 0
        start = jnp.minimum(i * cfg.chunk, cfg.num_classes - cfg.chunk)
        if fresh is not None:  # keep what the previous chunk wrote on the shared columns
            old = lax.dynamic_slice_in_dim(d_weight, start, cfg.chunk, axis=axis)
            dwc = jnp.where(_expand(fresh, axis), dwc, old)
        d_weight = lax.dynamic_update_slice_in_dim(d_weight, dwc, start, axis=axis)
        if cfg.has_bias:
            dbc = jnp.sum(dx, axis=0).astype(bias.dtype)
            if fresh is not None:
                dbc = jnp.where(fresh[0], dbc, lax.dynamic_slice_in_dim(d_bias, start, cfg.chunk))
            d_bias = lax.dynamic_update_slice_in_dim(d_bias, dbc, start, axis=0)
        return d_hidden, d_weight, d_bias

    init = (
        jnp.zeros(hidden.shape, acc),
        jnp.zeros_like(weight),
        jnp.zeros_like(bias) if cfg.has_bias else None,
    )
    d_hidden, d_weight, d_bias = lax.fori_loop(0, _num_chunks(cfg), body, init)
    return d_hidden.astype(hidden.dtype), d_weight, d_bias, None


def _expand(fresh: jax.Array, axis: int) -> jax.Array:
    """The column mask ``fresh`` shaped to broadcast against a weight chunk along ``axis``."""
    return fresh if axis == 1 else fresh.T


_fused_stats.defvjp(_fused_stats_fwd, _fused_stats_bwd)


# --------------------------------------------------------------------------------------------
# Argument handling shared by the public functions.


def _prepare(hidden, weight, *, bias, weight_layout, chunk_size, labels, where) -> _Prepared:
    hidden = ck.check_floating(hidden, "hidden")
    weight = ck.check_floating(weight, "weight")
    ck.check_min_rank(hidden, 1, "hidden")
    if weight_layout not in ("dv", "vd"):
        raise ValueError(
            f'`weight_layout` must be "dv" ([D, V]) or "vd" ([V, D]), got {weight_layout!r}.'
        )
    if weight.ndim != 2:
        raise ValueError(f"`weight` must be a matrix, got shape {weight.shape}.")
    dim = hidden.shape[-1]
    d_axis = 0 if weight_layout == "dv" else 1
    if weight.shape[d_axis] != dim:
        layout = "[D, V]" if weight_layout == "dv" else "[V, D]"
        raise ValueError(
            f"`weight` of shape {weight.shape} does not match `hidden` of shape {hidden.shape}: "
            f'with weight_layout="{weight_layout}" it must be {layout} with D = {dim}.'
        )
    num_classes = weight.shape[1 - d_axis]
    if num_classes < 1:
        raise ValueError("`weight` must have at least one class.")
    ck.static_int(chunk_size, "chunk_size", minimum=1)
    batch_shape = hidden.shape[:-1]
    if bias is not None:
        bias = ck.check_floating(bias, "bias")
        ck.check_shape(bias, (num_classes,), "bias", expected="[V]")
    if labels is not None:
        labels = ck.check_integer(labels, "labels")
        ck.check_shape(labels, batch_shape, "labels", expected="hidden without its last axis")
        labels = labels.reshape(-1).astype(jnp.int32)
    mask = ck.example_mask(where, batch_shape)
    # Matmuls run in the promoted input dtype (bf16 stays bf16); the weight is cast per chunk.
    mm_dtype = jnp.result_type(hidden.dtype, weight.dtype)
    h = hidden.reshape(-1, dim).astype(mm_dtype)
    return _Prepared(h, weight, bias, labels, mask, batch_shape, num_classes)


def _config(
    args: _Prepared, *, chunk_size: int, weight_layout: str, smoothing: bool, entropy: bool
) -> _Config:
    return _Config(
        layout=weight_layout,
        chunk=int(min(chunk_size, args.num_classes)),
        num_classes=int(args.num_classes),
        has_bias=args.bias is not None,
        has_labels=args.labels is not None,
        smoothing=smoothing,
        entropy=entropy,
    )


# --------------------------------------------------------------------------------------------
# Public functions.


def fused_linear_cross_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    weight_layout: WeightLayout = "dv",
    ignore_index: int | None = None,
    where: jax.typing.ArrayLike | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    return_lse: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""Softmax cross-entropy of a linear layer's logits, without materialising the logits.

    With logits :math:`x = h W + b` (one row per token) and :math:`p = \mathrm{softmax}(x)`:

    .. math::
        \ell = (1-\varepsilon)\,\bigl(\operatorname{lse}(x) - x_y\bigr)
          + \frac{\varepsilon}{C}\sum_c \bigl(\operatorname{lse}(x) - x_c\bigr)
          + z\,\operatorname{lse}(x)^2,

    i.e. exactly ``entjax.softmax_cross_entropy_with_integer_labels(hidden @ weight + bias,
    labels, label_smoothing=ε, ignore_index=...)`` plus the PaLM z-loss :math:`z \cdot
    \operatorname{lse}^2`, but computed over vocabulary chunks of ``chunk_size`` columns with an
    online log-sum-exp. The backward pass (custom VJP, residuals :math:`O(N)` beyond the inputs)
    recomputes each chunk's logits and accumulates :math:`\partial h \mathrel{+}= \delta_c
    W_c^\top` and :math:`\partial W_c = h^\top \delta_c`. Peak scratch memory is
    :math:`O(N \cdot \text{chunk\_size})`, independent of :math:`V`.

    Precision: bf16/fp16 inputs are multiplied in their own dtype with float32 accumulation (the
    backward GEMMs too; the weight is never upcast as a whole), and the loss is float32.
    Reverse-mode only (``jax.grad``/``jax.vjp``; a ``custom_vjp`` has no forward mode). Works
    under ``jax.jit`` and ``jax.vmap``, and with any cotangent (per-token weights).

    Edge cases follow :func:`entjax.softmax_cross_entropy_with_integer_labels`: rows with
    ``where=False`` or ``labels == ignore_index`` give 0 with zero gradient; a label outside
    ``[0, V)`` gives NaN; ``-inf`` entries of ``bias`` mask those classes (a label on a masked
    class gives ``+inf`` with zero gradient, and :math:`C` counts the unmasked classes).

    Args:
      hidden: features, shape ``[..., D]`` (any leading token/batch axes).
      weight: the output projection, shape ``[D, V]`` (``weight_layout="dv"``, the layout of
        ``hidden @ weight`` and of ``flax.nnx.Linear``'s kernel) or ``[V, D]``
        (``weight_layout="vd"``, the layout of a tied embedding table).
      labels: integer targets, shape ``hidden.shape[:-1]``.
      bias: optional per-class bias, shape ``[V]``; ``-inf`` masks a class.
      weight_layout: ``"dv"`` or ``"vd"``, see ``weight``.
      ignore_index: label value whose rows are ignored (loss and gradient 0), e.g. ``-100``.
      where: boolean per-token mask, shape ``hidden.shape[:-1]``; ``False`` rows give 0.
      label_smoothing: :math:`\varepsilon \in [0, 1]`, uniform mixing as in PyTorch.
      z_loss: coefficient :math:`z \ge 0` of the auxiliary :math:`\operatorname{lse}^2` term.
      return_lse: also return :math:`\operatorname{lse}(x)` per token (differentiable).
      chunk_size: vocabulary columns per chunk (clipped to ``V``). Scratch memory is about two
        ``[N, chunk_size]`` float32 buffers (the chunk's logits and their gradient), i.e.
        ``2 · chunk_size / V`` of the materialised logits; larger chunks give larger GEMMs.

    Returns:
      The loss per token, shape ``hidden.shape[:-1]``, in at least float32; with
      ``return_lse=True`` the pair ``(loss, lse)``.

    Examples:
      >>> import jax, jax.numpy as jnp, entjax
      >>> h = jax.random.normal(jax.random.key(0), (4, 8))
      >>> w = jax.random.normal(jax.random.key(1), (8, 50))
      >>> y = jnp.array([0, 7, 49, -100])
      >>> fused = entjax.fused_linear_cross_entropy(h, w, y, ignore_index=-100, chunk_size=16)
      >>> logits = h @ w  # what the fused function never builds: [N, V]
      >>> naive = jax.nn.logsumexp(logits, axis=1)[:3] - logits[jnp.arange(3), y[:3]]
      >>> print(bool(jnp.allclose(fused[:3], naive, rtol=1e-5)), f"{fused[3]:.1f}")
      True 0.0

    References:
      Wijmans et al., *Cut Your Losses in Large-Vocabulary Language Models*, 2025 (Cut
      Cross-Entropy). Milakov & Gimelshein, *Online normalizer calculation for softmax*, 2018.
      Chowdhery et al., *PaLM: Scaling Language Modeling with Pathways*, 2022 (z-loss).
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"`label_smoothing` must lie in [0, 1], got {label_smoothing}.")
    if not z_loss >= 0.0:
        raise ValueError(f"`z_loss` must be >= 0, got {z_loss}.")
    args = _prepare(
        hidden,
        weight,
        bias=bias,
        weight_layout=weight_layout,
        chunk_size=chunk_size,
        labels=labels,
        where=where,
    )
    h, w, b, y, mask, batch_shape, num_classes = args
    cfg = _config(
        args,
        chunk_size=chunk_size,
        weight_layout=weight_layout,
        smoothing=bool(label_smoothing),
        entropy=False,
    )
    stats = _fused_stats(cfg, h, w, b, y)
    any_valid = stats.lse > -jnp.inf
    label_ok = stats.nll < jnp.inf
    nll = jnp.where(label_ok, stats.nll, jnp.inf)
    loss = nll
    if label_smoothing:
        # A label on a masked class: +inf with zero gradient, the smoothing term included.
        smoothed = (1.0 - label_smoothing) * stats.nll + label_smoothing * stats.smooth
        loss = jnp.where(label_ok, smoothed, jnp.inf)
    if z_loss:
        loss = loss + z_loss * jnp.square(jnp.where(any_valid, stats.lse, 0.0))
    loss = jnp.where((y >= 0) & (y < num_classes), loss, jnp.nan)
    keep = any_valid
    if ignore_index is not None:
        keep = keep & (y != ignore_index)
    if mask is not None:
        keep = keep & mask.reshape(-1)
    loss = jnp.where(keep, loss, 0.0).reshape(batch_shape)
    if return_lse:
        return loss, stats.lse.reshape(batch_shape)
    return loss


def fused_linear_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    weight_layout: WeightLayout = "dv",
    labels: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> jax.Array | FusedEntropy:
    r"""Predictive entropy of ``softmax(hidden @ weight)`` per token, without the logits.

    .. math::
        H(p) = -\sum_c p_c \log p_c = \operatorname{lse}(x) - \sum_c p_c x_c,
        \qquad \frac{\partial H}{\partial x_c} = -p_c\,\bigl(x_c - \mathbb{E}_p[x]\bigr),

    with :math:`x = hW + b`, computed in one pass over vocabulary chunks: besides the running
    maximum :math:`m` and :math:`s = \sum_c e^{x_c - m}` it tracks
    :math:`t = \sum_c e^{x_c - m}(x_c - m)`, so that :math:`H = \log s - t/s` without
    cancellation at large logits. With ``labels`` it also returns the cross-entropy
    :math:`\operatorname{lse}(x) - x_y` from the same pass. The gradient (custom VJP) recomputes
    each chunk's logits, as in :func:`fused_linear_cross_entropy`; scratch memory is
    :math:`O(N \cdot \text{chunk\_size})`. The quantity that entropy bonuses, entropy monitoring
    of language-model policies and uncertainty scores need at vocabulary scale.

    Args:
      hidden: features, shape ``[..., D]``.
      weight: shape ``[D, V]`` (``weight_layout="dv"``) or ``[V, D]`` (``"vd"``).
      bias: optional per-class bias, shape ``[V]``; ``-inf`` masks a class.
      weight_layout: ``"dv"`` or ``"vd"``.
      labels: optional integer targets, shape ``hidden.shape[:-1]``, for the cross-entropy.
      ignore_index: label value whose rows give 0 (entropy and cross-entropy, gradient 0).
      where: boolean per-token mask; ``False`` rows give 0 with zero gradient.
      base: ``None`` for nats, ``2`` for bits (applies to both outputs).
      chunk_size: vocabulary columns per chunk.

    Returns:
      The entropy per token, shape ``hidden.shape[:-1]``, in at least float32; with ``labels``
      a :class:`FusedEntropy` ``(entropy, cross_entropy)``.

    Examples:
      >>> import jax, jax.numpy as jnp, entjax
      >>> h = jax.random.normal(jax.random.key(0), (4, 8))
      >>> w = jax.random.normal(jax.random.key(1), (8, 50))
      >>> fused = entjax.fused_linear_entropy(h, w, chunk_size=16)
      >>> print(bool(jnp.allclose(fused, entjax.entropy(h @ w), rtol=1e-5)))
      True
      >>> print(f"{entjax.fused_linear_entropy(jnp.zeros((1, 8)), w, base=2)[0]:.4f}")
      5.6439

    References:
      Shannon, *A Mathematical Theory of Communication*, 1948. Milakov & Gimelshein, *Online
      normalizer calculation for softmax*, 2018. Wijmans et al., *Cut Your Losses in
      Large-Vocabulary Language Models*, 2025.
    """
    args = _prepare(
        hidden,
        weight,
        bias=bias,
        weight_layout=weight_layout,
        chunk_size=chunk_size,
        labels=labels,
        where=where,
    )
    h, w, b, y, mask, batch_shape, num_classes = args
    cfg = _config(
        args, chunk_size=chunk_size, weight_layout=weight_layout, smoothing=False, entropy=True
    )
    stats = _fused_stats(cfg, h, w, b, y)
    keep = stats.lse > -jnp.inf
    if mask is not None:
        keep = keep & mask.reshape(-1)
    if y is not None and ignore_index is not None:
        keep = keep & (y != ignore_index)
    ent = nx.to_base(jnp.where(keep, stats.ent, 0.0), base).reshape(batch_shape)
    if y is None:
        return ent
    nll = jnp.where(stats.nll < jnp.inf, stats.nll, jnp.inf)
    nll = jnp.where((y >= 0) & (y < num_classes), nll, jnp.nan)
    ce = nx.to_base(jnp.where(keep, nll, 0.0), base).reshape(batch_shape)
    return FusedEntropy(ent, ce)
