"""max_entropy: closed forms (uniform, Jaynes' dice, discretised Gaussian, I-projection), duality,
infeasibility (eager error, flag under jit, checkify), implicit derivatives, jit/vmap and shapes.

Float64 throughout (conftest enables x64). The solver is jitted internally, so every call with
the same shapes reuses one compiled function; the tests keep to a handful of shapes.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.optimize import brentq
from scipy.special import logsumexp

import entjax

FACES = np.arange(1.0, 7.0)
DIE = FACES[:, None]  # features [6, 1]: the face value


def die_closed_form(mean, faces=FACES, log_q=None):
    """p ∝ q·exp(λx) with E_p[x] = mean, λ solved by brentq on the mean equation."""
    log_q = np.zeros_like(faces) if log_q is None else log_q

    def probs(lam):
        logits = log_q + lam * faces
        return np.exp(logits - logsumexp(logits))

    lam = brentq(lambda lam: probs(lam) @ faces - mean, -50.0, 50.0, xtol=1e-14, rtol=1e-14)
    return probs(lam), lam


def dual(features, targets, lam, log_q=None):
    """g(λ) = log Σ_x q(x) exp(λ·f(x)) - λ·c, in numpy."""
    features, targets, lam = np.asarray(features), np.asarray(targets), np.asarray(lam)
    log_q = np.zeros(features.shape[0]) if log_q is None else log_q
    return logsumexp(log_q + features @ lam) - lam @ targets


# --------------------------------------------------------------------------------------------
# Closed forms.


def test_no_constraint_gives_the_uniform_distribution_or_the_base_measure():
    out = entjax.max_entropy(np.zeros((6, 0)), np.zeros(0))
    np.testing.assert_allclose(out.probs, np.full(6, 1 / 6), rtol=1e-14)
    np.testing.assert_allclose(out.entropy, np.log(6), rtol=1e-14)
    assert out.multipliers.shape == out.residual.shape == (0,)
    assert bool(out.converged)
    assert bool(out.feasible)
    assert int(out.num_steps) == 0
    # A constant feature with its one consistent target does not constrain anything.
    out = entjax.max_entropy(np.ones((6, 1)), np.ones(1))
    np.testing.assert_allclose(out.probs, np.full(6, 1 / 6), rtol=1e-12)
    np.testing.assert_allclose(out.kl, 0.0, atol=1e-14)
    # With a base measure q the answer is q itself (normalised), at KL 0.
    q = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 2.0])
    log_q = np.where(q > 0, np.log(np.where(q > 0, q, 1.0)), -np.inf)
    for features, targets in ((np.zeros((6, 0)), np.zeros(0)), (np.full((6, 1), 2.0), [2.0])):
        out = entjax.max_entropy(features, np.asarray(targets), log_base_measure=log_q)
        np.testing.assert_allclose(out.probs, q / q.sum(), rtol=1e-12)
        np.testing.assert_allclose(out.kl, 0.0, atol=1e-14)
        assert out.probs[4] == 0.0


@pytest.mark.parametrize("mean", [1.5, 3.5, 4.5, 5.9])
def test_jaynes_dice_matches_the_geometric_closed_form(mean):
    out = entjax.max_entropy(DIE, np.array([mean]))
    expected, lam = die_closed_form(mean)
    np.testing.assert_allclose(out.probs, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.multipliers, [lam], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(out.residual, 0.0, atol=1e-12)
    np.testing.assert_allclose(out.entropy, -np.sum(expected * np.log(expected)), rtol=1e-10)
    assert bool(out.converged)
    assert bool(out.feasible)
    if mean == 4.5:  # Jaynes' numbers: p_i ∝ r^i
        ratios = np.asarray(out.probs[1:] / out.probs[:-1])
        np.testing.assert_allclose(ratios, np.exp(lam), rtol=1e-9)


def test_mean_and_variance_on_a_fine_grid_give_the_discretised_gaussian():
    grid = np.linspace(-8.0, 8.0, 321)  # spacing 0.05
    mu, sigma = 0.5, 1.2
    features = np.stack([grid, grid**2], axis=1)
    out = entjax.max_entropy(features, np.array([mu, mu**2 + sigma**2]))
    density = np.exp(-0.5 * ((grid - mu) / sigma) ** 2)
    np.testing.assert_allclose(out.probs, density / density.sum(), atol=1e-10)
    # p ∝ exp(λ1 x + λ2 x²) with λ = (μ/σ², -1/(2σ²)).
    np.testing.assert_allclose(out.multipliers, [mu / sigma**2, -0.5 / sigma**2], rtol=1e-6)
    spacing = grid[1] - grid[0]
    continuous = 0.5 * np.log(2 * np.pi * np.e * sigma**2)  # differential entropy
    np.testing.assert_allclose(out.entropy + np.log(spacing), continuous, rtol=1e-8)


def test_i_projection_of_a_base_measure_under_a_mean_constraint():
    # q = Binomial(5, 0.3) on {0, ..., 5}; the I-projection onto E[x] = 3 tilts it exponentially.
    support = np.arange(6.0)
    q = np.array([1, 5, 10, 10, 5, 1]) * 0.3**support * 0.7 ** (5 - support)
    out = entjax.max_entropy(support[:, None], np.array([3.0]), log_base_measure=np.log(q))
    expected, lam = die_closed_form(3.0, faces=support, log_q=np.log(q))
    np.testing.assert_allclose(out.probs, expected, rtol=1e-9)
    np.testing.assert_allclose(out.multipliers, [lam], rtol=1e-9)
    # The tilt of a binomial is binomial: success probability r / (1 + r), r = 0.3/0.7 e^λ.
    r = 0.3 / 0.7 * np.exp(lam)
    np.testing.assert_allclose(r / (1 + r), 0.6, rtol=1e-10)
    np.testing.assert_allclose(out.kl, np.sum(expected * np.log(expected / q)), rtol=1e-10)
    np.testing.assert_allclose(out.kl, -dual(support[:, None], [3.0], [lam], np.log(q)), rtol=1e-9)
    # Unnormalised q gives the same answer (only KL's reference is normalised).
    again = entjax.max_entropy(support[:, None], np.array([3.0]), log_base_measure=np.log(7 * q))
    np.testing.assert_allclose(again.probs, out.probs, rtol=1e-12)
    np.testing.assert_allclose(again.kl, out.kl, rtol=1e-12)


def test_points_with_zero_base_measure_are_off_the_support():
    log_q = np.array([0.0, 0.0, 0.0, 0.0, 0.0, -np.inf])  # a die without its six
    out = entjax.max_entropy(DIE, np.array([4.5]), log_base_measure=log_q)
    expected, _ = die_closed_form(4.5, faces=FACES[:5])
    np.testing.assert_allclose(out.probs[:5], expected, rtol=1e-9)
    assert out.probs[5] == 0.0
    with pytest.raises(ValueError, match="outside the convex hull"):
        entjax.max_entropy(DIE, np.array([5.5]), log_base_measure=log_q)


def test_base_two_and_float32():
    out = entjax.max_entropy(DIE, np.array([4.5]), base=2)
    nats = entjax.max_entropy(DIE, np.array([4.5]))
    np.testing.assert_allclose(out.entropy, nats.entropy / np.log(2), rtol=1e-12)
    np.testing.assert_allclose(out.kl, nats.kl / np.log(2), rtol=1e-12)
    np.testing.assert_allclose(nats.kl, np.log(6) - nats.entropy, rtol=1e-10)
    single = entjax.max_entropy(DIE.astype(np.float32), np.array([4.5], np.float32))
    assert single.probs.dtype == single.entropy.dtype == jnp.float32
    assert bool(single.feasible)
    np.testing.assert_allclose(single.probs, die_closed_form(4.5)[0], rtol=1e-5)
    half = entjax.max_entropy(DIE.astype(jnp.bfloat16), np.array([4.5], jnp.bfloat16))
    assert half.probs.dtype == jnp.float32  # computed in (and returned as) float32


# --------------------------------------------------------------------------------------------
# Duality and residuals.


def test_entropy_equals_the_dual_optimum():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(6, 3))  # the shape of the next test's problem: one compile
    targets = rng.dirichlet(np.ones(6)) @ features  # a point inside the hull
    out = entjax.max_entropy(features, targets)
    lam = np.asarray(out.multipliers)
    g_star = dual(features, targets, lam)
    # H(p*) = min_λ [log Z(λ) - λ·c] (q ≡ 1): the minimum value ...
    np.testing.assert_allclose(out.entropy, g_star, rtol=1e-10)
    np.testing.assert_allclose(out.log_partition, logsumexp(features @ lam), rtol=1e-12)
    # ... attained at λ*: every perturbation increases g, and g >= H at any λ (weak duality).
    for _ in range(5):
        assert dual(features, targets, lam + 1e-3 * rng.normal(size=3)) > g_star
        assert dual(features, targets, rng.normal(size=3)) >= out.entropy
    np.testing.assert_allclose(out.residual, 0.0, atol=1e-12)
    np.testing.assert_allclose(out.probs @ features, targets, atol=1e-12)


def test_dependent_features_with_consistent_targets_are_feasible():
    features = np.stack([FACES, 2 * FACES, FACES**2], axis=1)
    targets = np.array([4.5, 9.0, 22.0])
    out = entjax.max_entropy(features, targets)
    assert bool(out.feasible)
    np.testing.assert_allclose(out.residual, 0.0, atol=1e-10)
    reference = entjax.max_entropy(features[:, [0, 2]], targets[[0, 2]])
    np.testing.assert_allclose(out.probs, reference.probs, rtol=1e-9)
    # Inconsistent targets for the dependent pair are infeasible, whatever the solver does.
    with pytest.raises(ValueError, match="infeasible"):
        entjax.max_entropy(features, np.array([4.5, 8.0, 22.0]))


# --------------------------------------------------------------------------------------------
# Infeasible constraints.


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("mean", "where"), [(7.0, "outside the convex hull"), (0.0, "outside"), (6.0, "boundary")]
)
def test_infeasible_targets_raise_eagerly(mean, where, dtype):
    features, targets = DIE.astype(dtype), np.array([mean], dtype)
    with pytest.raises(ValueError, match=rf"constraints are infeasible: targets c=\[{mean}\]"):
        entjax.max_entropy(features, targets)
    with pytest.raises(ValueError, match=where):
        entjax.max_entropy(features, targets)
    out = entjax.max_entropy(features, targets, raise_if_infeasible=False)
    assert not bool(out.feasible)
    assert np.all(np.isfinite(out.probs))
    assert np.isfinite(out.entropy)


@jax.jit
def solve_die_means(means):
    """The die problem for a batch of six means, vmapped under jit (one compile, two tests)."""
    return jax.vmap(lambda m: entjax.max_entropy(DIE, m[None]))(means)


def test_infeasible_targets_set_the_flag_under_jit_and_vmap():
    means = jnp.array([3.5, 5.999, 6.0, 7.0, 1.0, -2.0])
    out = solve_die_means(means)
    np.testing.assert_array_equal(out.feasible, [True, True, False, False, False, False])
    np.testing.assert_array_equal(out.converged, [True, True, True, False, True, False])
    assert np.all(np.isfinite(out.probs))
    # Constant inputs inside a transformation do not raise either.
    assert not jax.jit(lambda: entjax.max_entropy(DIE, np.array([7.0])).feasible)()
    # Outside the hull the solution collapses onto the nearest face: residual = distance.
    np.testing.assert_allclose(out.residual[3], [-1.0], atol=1e-9)
    np.testing.assert_allclose(out.residual[5], [3.0], atol=1e-9)


def test_boundary_of_a_two_dimensional_hull():
    # A 5 x 5 grid on the unit square: on an edge or a vertex only some multipliers diverge.
    axis = np.linspace(0.0, 1.0, 5)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    targets = np.array([[0.3, 0.3], [0.5, 0.999], [0.5, 1.0], [1.0, 1.0], [1.0, 1.2]])
    out = jax.vmap(jax.jit(entjax.max_entropy), in_axes=(None, 0))(grid, targets)
    np.testing.assert_array_equal(out.feasible, [True, True, False, False, False])
    np.testing.assert_array_equal(out.converged, [True, True, True, True, False])
    # Independent coordinates: p factorises into two 1-D maximum-entropy laws.
    for k in (0, 1):
        marginal = out.probs[k].reshape(5, 5)
        np.testing.assert_allclose(marginal, np.outer(marginal.sum(1), marginal.sum(0)), atol=1e-12)
    np.testing.assert_allclose(out.multipliers[2, 0], 0.0, atol=1e-9)  # along the edge: finite
    assert out.multipliers[2, 1] > 20  # across the edge: diverging


def test_validate_max_entropy_raises_under_checked():
    solve = entjax.checked(lambda c: entjax.validate_max_entropy(entjax.max_entropy(DIE, c)))
    np.testing.assert_allclose(solve(jnp.array([4.5])).probs, die_closed_form(4.5)[0], rtol=1e-9)
    for mean in (6.0, 7.0):
        with pytest.raises(ValueError, match="constraints are infeasible"):
            solve(jnp.array([mean]))
    # `atol` adds an absolute bound on the residual to `feasible`.
    result = entjax.max_entropy(DIE, np.array([4.5]))
    strict = entjax.checked(lambda r: entjax.validate_max_entropy(r, atol=1e-6))
    strict(result)
    with pytest.raises(ValueError, match=r"largest 0\.001"):
        strict(result._replace(residual=jnp.array([1e-3])))


# --------------------------------------------------------------------------------------------
# Transformations.


def test_one_trace_for_many_targets_and_vmap_matches_the_loop():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def probs(c):
        return entjax.max_entropy(DIE, c).probs

    means = np.array([1.2, 2.0, 3.0, 4.5, 5.5, 5.8])
    for m in means:
        np.testing.assert_allclose(probs(jnp.array([m])), die_closed_form(m)[0], rtol=1e-9)
    batched = solve_die_means(jnp.asarray(means)).probs
    np.testing.assert_allclose(batched, [die_closed_form(m)[0] for m in means], rtol=1e-9)


def test_implicit_derivatives():
    # Envelope theorem: dH/dc = -λ* (no base measure), dKL/dc = λ* (any base measure), and
    # dλ/dc = 1 / Var_p(x) for one mean constraint.
    def scalars(c, log_q):
        res = entjax.max_entropy(DIE, c, log_base_measure=log_q)
        return res.entropy, res.kl, res.multipliers[0]

    jacobian = jax.jit(jax.jacrev(scalars))
    c = jnp.array([4.5])
    out = entjax.max_entropy(DIE, c)
    d_entropy, _, d_lam = jacobian(c, jnp.zeros(6))
    np.testing.assert_allclose(d_entropy, -out.multipliers, rtol=1e-8)
    var = out.probs @ FACES**2 - (out.probs @ FACES) ** 2
    np.testing.assert_allclose(d_lam, [1 / var], rtol=1e-8)
    log_q = jnp.log(jnp.array([1.0, 2.0, 3.0, 3.0, 2.0, 1.0]))
    _, d_kl, _ = jacobian(c, log_q)
    lam = entjax.max_entropy(DIE, c, log_base_measure=log_q).multipliers
    np.testing.assert_allclose(d_kl, lam, rtol=1e-8)

    # Finite differences, forward and reverse, in every input.
    def fn(features, targets, log_q):
        res = entjax.max_entropy(features, targets, log_base_measure=log_q)
        return res.probs[::2], res.entropy, res.multipliers

    features = jnp.stack([FACES, FACES**2 / 10], axis=1)
    targets = jnp.array([3.0, 1.2])
    check_grads(fn, (features, targets, log_q), order=1, modes=["fwd", "rev"], atol=1e-5)


# --------------------------------------------------------------------------------------------
# Trace-time errors.


def test_shape_and_dtype_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"`features` must have shape \[support, J\]"):
        entjax.max_entropy(FACES, np.array([4.5]))
    with pytest.raises(ValueError, match="at least one row"):
        entjax.max_entropy(np.zeros((0, 1)), np.array([4.5]))
    with pytest.raises(ValueError, match="`targets` has shape"):
        entjax.max_entropy(DIE, np.array([4.5, 1.0]))
    with pytest.raises(ValueError, match="`targets` has shape"):
        entjax.max_entropy(DIE, np.float64(4.5))
    with pytest.raises(ValueError, match="`log_base_measure` has shape"):
        entjax.max_entropy(DIE, np.array([4.5]), log_base_measure=np.zeros(5))
    with pytest.raises(TypeError, match="`features`"):
        entjax.max_entropy(DIE.astype(np.int32), np.array([4.5]))
    with pytest.raises(TypeError, match="`targets`"):
        entjax.max_entropy(DIE, np.array([4]))
    with pytest.raises(TypeError, match="`log_base_measure`"):
        entjax.max_entropy(DIE, np.array([4.5]), log_base_measure=np.zeros(6, np.int32))
    with pytest.raises(ValueError, match="`max_iter` must be >= 1"):
        entjax.max_entropy(DIE, np.array([4.5]), max_iter=0)
    with pytest.raises(TypeError, match="`max_iter` must be a Python int"):
        entjax.max_entropy(DIE, np.array([4.5]), max_iter=10.0)
    with pytest.raises(ValueError, match="`tol`"):
        entjax.max_entropy(DIE, np.array([4.5]), tol=0.0)
    with pytest.raises(ValueError, match="`base`"):
        entjax.max_entropy(DIE, np.array([4.5]), base=1)
