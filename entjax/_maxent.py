"""Maximum-entropy distributions on a finite support under expectation constraints.

The primal problem (maximise :math:`H(p)`, or minimise :math:`\\mathrm{KL}(p \\,\\|\\, q)`, subject
to :math:`\\mathbb E_p[f] = c`) is solved through its smooth, convex, unconstrained dual with
``optax.lbfgs`` inside a ``jax.lax.while_loop``, so :func:`max_entropy` is jit- and
vmap-compatible. Three details make it robust:

* the features are taken relative to the targets and expressed on the principal axes of the
  support, scaled to unit width, before solving (the dual is then well conditioned whatever the
  units of the features; constant or linearly dependent features are handled exactly), and the
  multipliers are mapped back;
* a few Newton steps polish the L-BFGS solution and give the diagnostic that tells an interior
  optimum from a target on the boundary of the convex hull, where the multipliers diverge;
* the returned multipliers carry implicit-function-theorem derivatives (one differentiable
  Newton step at the solution), so results can be differentiated with respect to ``features``,
  ``targets`` and ``log_base_measure`` in forward and reverse mode without unrolling the loop.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from . import _checks as ck, _numerics as nx
from ._validation import user_check

_NUM_POLISH_STEPS = 2


class MaxEntResult(NamedTuple):
    """Result of :func:`entjax.max_entropy`.

    ``probs`` is the distribution; ``feasible`` says whether it answers the question asked.
    """

    probs: jax.Array
    """The maximum-entropy distribution :math:`p^\\star`, shape ``[support]``."""
    multipliers: jax.Array
    """Lagrange multipliers :math:`\\lambda^\\star`, shape ``[J]`` (minimum-norm when features
    are linearly dependent)."""
    entropy: jax.Array
    """Shannon entropy :math:`H(p^\\star)`, in ``base``."""
    kl: jax.Array
    """:math:`\\mathrm{KL}(p^\\star \\,\\|\\, \\bar q)` to the normalised base measure (uniform
    without one), in ``base``: the quantity minimised."""
    log_partition: jax.Array
    """:math:`\\log Z(\\lambda^\\star) = \\log \\sum_x q(x)\\, e^{\\lambda^\\star \\cdot f(x)}`
    (nats, with the base measure as given, 1 without one)."""
    residual: jax.Array
    """Constraint violation :math:`\\mathbb E_{p^\\star}[f] - c`, shape ``[J]``."""
    num_steps: jax.Array
    """Number of L-BFGS iterations taken (int32)."""
    converged: jax.Array
    """Every :math:`|\\text{residual}_j|` is at most ``tol`` times half the range of feature
    ``j`` on the support."""
    feasible: jax.Array
    """``converged``, and the optimum is attained at finite multipliers: the targets lie in the
    relative interior of the convex hull of the feature rows."""


class _Problem(NamedTuple):
    """The dual in whitened coordinates, built from gradient-free copies of the inputs."""

    log_q: jax.Array  # [n] log base measure, -inf off the support
    feats: jax.Array  # [n, J] whitened f(x) - c, 0 off the support
    scale: jax.Array  # [J] half the range of f_j on the support (1 for a constant column)
    whiten: jax.Array  # [J, J] W: whitened = (f - c) @ W, multipliers = W @ lambda_w
    dropped: jax.Array  # [J] whitened directions in which the features do not vary
    support_size: jax.Array  # number of points with q > 0


class _Newton(NamedTuple):
    """The dual's value, gradient and Newton step at a point (whitened coordinates)."""

    value: jax.Array
    step: jax.Array  # H^{-1} grad, with H the covariance of the features under p
    hessian: jax.Array


def _default_tol(dtype: jnp.dtype) -> float:
    """``eps**(2/3)``: about 4e-11 in float64 and 2e-5 in float32."""
    return float(jnp.finfo(dtype).eps) ** (2.0 / 3.0)


def _whitened_problem(features: jax.Array, targets: jax.Array, log_q: jax.Array) -> _Problem:
    """Features relative to the targets, in units of the support's principal widths.

    Each column is scaled to [-1, 1] on the support, rotated to the principal axes of the
    support (``eigh`` of its covariance) and divided by the support's width along each axis, so
    the support spans width 1 along every principal axis. Axes without width (constant or
    linearly dependent features) are dropped. Subtracting the targets before the matmul keeps
    the logits and the dual's gradient accurate where ``p`` has its mass.
    """
    num_features = features.shape[1]
    support = log_q != -jnp.inf  # NaN stays in and propagates
    n = jnp.sum(support).astype(features.dtype)
    weights = support / jnp.maximum(n, 1.0)
    # The midrange is exact for a constant column (a mean of equal numbers may round).
    high = jnp.max(features, axis=0, where=support[:, None], initial=-jnp.inf)
    low = jnp.min(features, axis=0, where=support[:, None], initial=jnp.inf)
    centre = jnp.where(high >= low, 0.5 * (high + low), 0.0)
    centred = jnp.where(support[:, None], features - centre[None, :], 0.0)
    spread = jnp.max(jnp.abs(centred), axis=0)
    scale = jnp.where(spread > 0, spread, 1.0)
    scaled = centred / scale[None, :]
    deviation = jnp.where(support[:, None], scaled - (weights @ scaled)[None, :], 0.0)
    cov = (deviation * weights[:, None]).T @ deviation
    evecs = jnp.linalg.eigh(cov)[1]
    axes = scaled @ evecs
    width = jnp.max(axes, axis=0, where=support[:, None], initial=-jnp.inf) - jnp.min(
        axes, axis=0, where=support[:, None], initial=jnp.inf
    )
    eps = jnp.finfo(features.dtype).eps
    keep = width > 100.0 * num_features * eps * jnp.max(width, initial=eps)
    inv_width = jnp.where(keep, 1.0 / jnp.where(keep, width, 1.0), 0.0)
    whiten = (evecs * inv_width[None, :]) / scale[:, None]
    relative = jnp.where(support[:, None], features - targets[None, :], 0.0)
    return _Problem(
        log_q=log_q,
        feats=relative @ whiten,
        scale=scale,
        whiten=whiten,
        dropped=~keep,
        support_size=n,
    )


def _dual(prob: _Problem, lam: jax.Array) -> jax.Array:
    """``g(λ) = log Σ_x q(x) exp(λ·(f(x) - c))`` (whitened coordinates)."""
    return _logsumexp(prob.log_q + prob.feats @ lam)


def _logsumexp(logits: jax.Array) -> jax.Array:
    shift = nx.stable_shift(jnp.max(logits))
    return shift + jnp.log(jnp.sum(jnp.exp(logits - shift)))


def _newton(prob: _Problem, lam: jax.Array) -> _Newton:
    logits = prob.log_q + prob.feats @ lam
    lse = _logsumexp(logits)
    p = jnp.exp(logits - lse)
    grad = p @ prob.feats  # E_p[f] - c
    centred = prob.feats - grad[None, :]
    # Directions with no spread on the support have zero rows and columns: identity there.
    hessian = (centred * p[:, None]).T @ centred + jnp.diag(prob.dropped.astype(lam.dtype))
    step = jnp.linalg.solve(hessian, grad)
    return _Newton(lse, step, hessian)


def _in_bounds(prob: _Problem, lam: jax.Array) -> jax.Array:
    """Whether the whitened multipliers are finite and below the collapse bound.

    Whitened features have unit width, so neighbouring support points differ by about ``1/n``
    and a logit gap of ``4 |log tiny|`` (2800 in float64) between them needs
    ``|λ| ~ 4 |log tiny| n``: beyond that ``p`` has numerically collapsed onto a face of the
    hull, the dual is unbounded (infeasible targets), and larger multipliers only lose digits.
    """
    bound = -4.0 * math.log(jnp.finfo(lam.dtype).tiny) * prob.support_size
    return jnp.all(jnp.isfinite(lam)) & (jnp.max(jnp.abs(lam)) <= bound)


def _lbfgs(
    prob: _Problem, tol: jax.Array, *, max_iter: int, memory_size: int
) -> tuple[jax.Array, jax.Array]:
    """Minimise the dual with L-BFGS from 0, until ``max|grad| < tol`` or out of bounds."""
    opt = optax.lbfgs(memory_size=memory_size)
    value_fn = functools.partial(_dual, prob)
    value_and_grad = optax.value_and_grad_from_state(value_fn)

    def step(carry):
        lam, _, state = carry
        value, grad = value_and_grad(lam, state=state)
        updates, state = opt.update(grad, state, lam, value=value, grad=grad, value_fn=value_fn)
        return optax.apply_updates(lam, updates), lam, state

    def keep_going(carry):
        lam, _, state = carry
        count = otu.tree_get(state, "count")
        grad = otu.tree_get(state, "grad")
        running = (count < max_iter) & (jnp.max(jnp.abs(grad)) >= tol)
        return (count == 0) | (running & _in_bounds(prob, lam))

    lam0 = jnp.zeros(prob.feats.shape[1:], prob.feats.dtype)
    lam, previous, state = jax.lax.while_loop(keep_going, step, (lam0, lam0, opt.init(lam0)))
    lam = jnp.where(_in_bounds(prob, lam), lam, previous)  # the last iterate in bounds
    return lam, otu.tree_get(state, "count").astype(jnp.int32)


def _polish(prob: _Problem, lam: jax.Array) -> tuple[jax.Array, _Newton]:
    """A few guarded Newton steps; returns the point and the Newton step there (diagnostic)."""
    slack = 10 * jnp.finfo(lam.dtype).eps
    at = _newton(prob, lam)
    for _ in range(_NUM_POLISH_STEPS):
        candidate = lam - at.step
        value = _dual(prob, candidate)
        ok = _in_bounds(prob, candidate) & (value <= at.value + slack * (1 + jnp.abs(at.value)))
        lam = jnp.where(ok, candidate, lam)
        at = _newton(prob, lam)
    return lam, at


@functools.partial(jax.jit, static_argnames=("max_iter", "memory_size"))
def _max_entropy(
    features: jax.Array,
    targets: jax.Array,
    log_q: jax.Array,
    tol: jax.Array,
    *,
    max_iter: int,
    memory_size: int,
) -> MaxEntResult:
    """The solver, jitted once per shape and dtype; entropy and KL in nats."""
    sg = jax.lax.stop_gradient
    num_features = features.shape[1]
    support = log_q != -jnp.inf
    if num_features:
        prob = _whitened_problem(sg(features), sg(targets), sg(log_q))
        scale = prob.scale
        lam_w, num_steps = _lbfgs(prob, tol, max_iter=max_iter, memory_size=memory_size)
        lam_w, at = _polish(prob, lam_w)
        # At an interior optimum the Newton step vanishes (quadratic convergence); at the
        # boundary of the hull it stays 1 / (gap between the face and the nearest point off it)
        # whatever the residual, and that gap is at most the support's width, sqrt(J) here.
        step_norm = jnp.sqrt(jnp.sum(jnp.square(at.step)))
        interior = jnp.isfinite(step_norm) & (step_norm <= 0.1 / math.sqrt(num_features))
        # Implicit derivatives: one differentiable Newton step whose value is exactly zero.
        # The Hessian is replaced off the interior (double where: finite values and gradients).
        lam = sg(prob.whiten @ lam_w)
        logits = jnp.where(support, log_q + (features - sg(targets)[None, :]) @ lam, -jnp.inf)
        p = jax.nn.softmax(logits)
        grad_w = (p @ features - targets) @ sg(prob.whiten)
        hessian = jnp.where(interior, sg(at.hessian), jnp.eye(num_features, dtype=lam.dtype))
        delta = jnp.where(interior, sg(prob.whiten) @ jnp.linalg.solve(hessian, grad_w), 0.0)
        lam = lam - (delta - sg(delta))
    else:
        scale = jnp.zeros((0,), features.dtype)
        lam = jnp.zeros((0,), features.dtype)
        num_steps = jnp.zeros((), jnp.int32)
        interior = jnp.ones((), bool)

    logits = jnp.where(support, log_q + (features - sg(targets)[None, :]) @ lam, -jnp.inf)
    lse = _logsumexp(logits)
    log_p = jnp.where(support, logits - lse, 0.0)
    p = jnp.where(support, jnp.exp(log_p), 0.0)
    log_q_norm = jnp.where(support, log_q - _logsumexp(log_q), 0.0)
    entropy = nx.negate(jnp.sum(p * log_p))
    kl = jnp.maximum(jnp.sum(p * (log_p - log_q_norm)), 0.0)
    residual = p @ (features - targets[None, :])
    converged = jnp.all(jnp.abs(sg(residual)) <= tol * scale)
    return MaxEntResult(
        probs=p,
        multipliers=lam,
        entropy=entropy,
        kl=kl,
        log_partition=lse + sg(targets) @ lam,
        residual=residual,
        num_steps=num_steps,
        converged=converged,
        feasible=converged & interior,
    )


def _infeasible_message(result: MaxEntResult, targets: jax.Array) -> str:
    """The eager error for an infeasible result (concrete arrays only)."""
    if bool(result.converged):
        where = (
            "on the boundary of the convex hull of the feature rows (or within about `tol` of "
            "it), where the multipliers diverge: the constrained maximiser puts zero mass on "
            "some points"
        )
    else:
        where = "outside the convex hull of the feature rows (or max_iter is too small)"
    return (
        f"max_entropy: the constraints are infeasible: targets c={targets.tolist()} lie {where}; "
        f"residual E_p[f] - c = {result.residual.tolist()} after {int(result.num_steps)} L-BFGS "
        "steps."
    )


def max_entropy(
    features: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    log_base_measure: jax.typing.ArrayLike | None = None,
    tol: float | None = None,
    max_iter: int = 100,
    memory_size: int = 10,
    base: float | None = None,
    raise_if_infeasible: bool = True,
) -> MaxEntResult:
    r"""Maximum-entropy distribution on a finite support under expectation constraints.

    The primal problem, with features :math:`f : \mathcal X \to \mathbb R^J`, targets
    :math:`c \in \mathbb R^J` and a base measure :math:`q` (uniform by default):

    .. math::
        p^\star = \arg\min_{p \in \Delta(\mathcal X)} \mathrm{KL}(p \,\|\, q)
          \quad \text{s.t.} \quad \mathbb E_p[f] = \sum_x p(x) f(x) = c,

    i.e. :math:`\arg\max H(p)` for uniform :math:`q` (Jaynes' principle), the I-projection of
    :math:`q` otherwise. Its solution is the exponential family
    :math:`p^\star(x) \propto q(x)\, e^{\lambda^\star \cdot f(x)}`, with multipliers minimising
    the convex dual

    .. math::
        g(\lambda) = \log \sum_x q(x)\, e^{\lambda \cdot f(x)} - \lambda \cdot c,
        \qquad H(p^\star) = \min_\lambda g(\lambda) \ \ (q \equiv 1).

    :math:`g` is minimised with ``optax.lbfgs`` in a ``jax.lax.while_loop``, on features taken
    relative to the targets and rescaled to the principal widths of the support (the
    multipliers are mapped back), with a stable log-sum-exp and softmax, then polished by
    Newton steps. Jit- and vmap-compatible; derivatives with respect
    to ``features``, ``targets`` and ``log_base_measure`` (forward and reverse mode) come from
    the implicit function theorem, not from unrolling the loop; e.g. the gradient of
    ``entropy`` with respect to ``targets`` is :math:`-\lambda^\star`.

    **Infeasible constraints.** The dual has a minimiser exactly when :math:`c` lies in the
    relative interior of the convex hull of :math:`\{f(x) : q(x) > 0\}`. Outside the hull
    :math:`g` is unbounded below, and on its boundary the infimum is approached only as
    :math:`\lambda \to \infty` (the solution puts zero mass on some points and is not of the
    exponential form); targets within about ``tol`` of the boundary count as on it. Such
    results have ``feasible=False`` and a non-zero ``residual`` (outside) or diverging
    ``multipliers`` (boundary). Called on concrete arrays, outside ``jax.jit``, ``jax.vmap``
    and ``jax.grad``, this function raises ``ValueError`` instead (unless
    ``raise_if_infeasible=False``); under a transformation use
    :func:`entjax.validate_max_entropy` inside :func:`entjax.checked`, or read ``feasible``.

    Args:
      features: :math:`f(x)` for each support point, shape ``[support, J]`` (floating). ``J``
        may be 0 (no constraint: the result is :math:`q` normalised). Constant or linearly
        dependent columns are allowed when their targets are consistent.
      targets: :math:`c`, shape ``[J]``.
      log_base_measure: :math:`\log q(x)`, shape ``[support]``, unnormalised; ``-inf``
        removes a point from the support. ``None``: :math:`q \equiv 1`.
      tol: tolerance on :math:`|\mathbb E_p[f_j] - c_j|`, relative to half the range of
        feature ``j`` on the support (default: ``eps ** (2/3)`` of the dtype, about 4e-11 in
        float64 and 2e-5 in float32).
      max_iter: maximum number of L-BFGS iterations (static).
      memory_size: L-BFGS history length (static).
      base: unit of ``entropy`` and ``kl``: ``None`` for nats, ``2`` for bits.
      raise_if_infeasible: outside transformations, raise ``ValueError`` when not ``feasible``.

    Returns:
      A :class:`MaxEntResult` ``(probs, multipliers, entropy, kl, log_partition, residual,
      num_steps, converged, feasible)``: ``probs`` of shape ``[support]``, ``multipliers`` and
      ``residual`` of shape ``[J]``, scalars otherwise; in at least float32.

    Examples:
      Jaynes' dice: a die whose long-run average is 4.5 instead of 3.5.

      >>> import jax.numpy as jnp, entjax
      >>> faces = jnp.arange(1.0, 7.0)
      >>> out = entjax.max_entropy(faces[:, None], jnp.array([4.5]))
      >>> print(" ".join(f"{p:.4f}" for p in out.probs))
      0.0544 0.0788 0.1142 0.1654 0.2398 0.3475
      >>> print(f"{out.entropy:.4f} nats, λ = {out.multipliers[0]:.4f}, {bool(out.feasible)}")
      1.6136 nats, λ = 0.3710, True
      >>> try:  # no die averages more than 6
      ...     entjax.max_entropy(faces[:, None], jnp.array([7.0]))
      ... except ValueError as e:
      ...     print(e)
      max_entropy: the constraints are infeasible: targets c=[7.0] lie outside the convex hull ...

    References:
      Jaynes, *Information Theory and Statistical Mechanics*, Physical Review 106, 1957.
      Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, ch. 12. Csiszár,
      *I-Divergence Geometry of Probability Distributions and Minimization Problems*, Annals
      of Probability, 1975.
    """
    features = ck.check_floating(features, "features")
    targets = ck.check_floating(targets, "targets")
    if features.ndim != 2:
        raise ValueError(
            f"`features` must have shape [support, J] (one row per support point, one column "
            f"per constraint), got shape {features.shape}."
        )
    support_size, num_features = features.shape
    if support_size < 1:
        raise ValueError("`features` must have at least one row (support point).")
    ck.check_shape(
        targets, (num_features,), "targets", expected="[J], one per column of `features`"
    )
    arrays = [features, targets]
    if log_base_measure is not None:
        log_q = ck.check_floating(log_base_measure, "log_base_measure")
        ck.check_shape(
            log_q, (support_size,), "log_base_measure", expected="[support], one per row"
        )
        arrays.append(log_q)
    dtype = nx.compute_dtype(*arrays)
    log_q = jnp.zeros(support_size, dtype) if log_base_measure is None else log_q.astype(dtype)
    if tol is None:
        tol = _default_tol(dtype)
    elif isinstance(tol, int | float) and not tol > 0:
        raise ValueError(f"`tol` must be positive, got {tol}.")
    max_iter = ck.static_int(max_iter, "max_iter", minimum=1)
    memory_size = ck.static_int(memory_size, "memory_size", minimum=1)
    result = _max_entropy(
        features.astype(dtype),
        targets.astype(dtype),
        log_q,
        jnp.asarray(tol, dtype),
        max_iter=max_iter,
        memory_size=memory_size,
    )
    entropy, kl = nx.to_base(result.entropy, base), nx.to_base(result.kl, base)
    result = result._replace(entropy=entropy, kl=kl)
    # Under any transformation (even with constant inputs) the flag is a tracer: no raising.
    concrete = not isinstance(result.feasible, jax.core.Tracer)
    if raise_if_infeasible and concrete and not bool(result.feasible):
        raise ValueError(_infeasible_message(result, targets))
    return result


def validate_max_entropy(result: MaxEntResult, *, atol: float | None = None) -> MaxEntResult:
    r"""Check that a :func:`entjax.max_entropy` result solves its constraints.

    .. math::
        \text{feasible} \quad\text{and}\quad
        \max_j \bigl|\mathbb E_{p^\star}[f_j] - c_j\bigr| \le \text{atol}.

    The check to use under ``jax.jit`` or ``jax.vmap``, where :func:`entjax.max_entropy` cannot
    raise: must run under :func:`entjax.checked` (a traced check outside it raises a ``ValueError``
    naming the fix), which raises
    ``JaxRuntimeError`` (a ``ValueError``) when the constraints are infeasible. Returns
    ``result`` unchanged so it can be used inline.

    Args:
      result: the :class:`MaxEntResult` to check.
      atol: optional absolute tolerance on every residual, beyond ``feasible`` (``None``: only
        ``feasible``).

    Returns:
      ``result``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> faces = jnp.arange(1.0, 7.0)[:, None]
      >>> solve = entjax.checked(
      ...     lambda c: entjax.validate_max_entropy(entjax.max_entropy(faces, c)).probs)
      >>> print(solve(jnp.array([3.5])).round(4))
      [0.1667 0.1667 0.1667 0.1667 0.1667 0.1667]
      >>> try:
      ...     solve(jnp.array([6.0]))  # only a die that always shows 6: λ = ∞
      ... except ValueError as e:
      ...     print(e)
      max_entropy: the constraints are infeasible: the targets lie outside the convex hull ...

    References:
      Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, §12.1. Bradbury et al.,
      JAX: ``jax.experimental.checkify`` documentation.
    """
    worst = jnp.max(jnp.abs(result.residual), initial=0.0)
    ok = result.feasible
    if atol is not None:
        ok = ok & (worst <= atol)
    user_check(
        "validate_max_entropy",
        ok,
        "max_entropy: the constraints are infeasible: the targets lie outside the convex hull "
        "of the feature rows or on its boundary, where the multipliers diverge (converged: "
        "{converged}, residual E_p[f] - c = {residual}, largest {worst}, after {steps} L-BFGS "
        "steps)",
        converged=result.converged,
        residual=result.residual,
        worst=worst,
        steps=result.num_steps,
    )
    return result
