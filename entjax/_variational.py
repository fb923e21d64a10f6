"""Variational bounds: reparameterised Gaussian samples, the ELBO, the importance-weighted bound."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _checks as ck, _numerics as nx
from ._divergences import gaussian_kl

LogDensity = Callable[[jax.Array], jax.Array] | jax.typing.ArrayLike


def reparameterize(
    key: jax.Array,
    mean: jax.typing.ArrayLike,
    log_var: jax.typing.ArrayLike,
    *,
    num_samples: int | None = None,
) -> jax.Array:
    r"""Reparameterised samples from a diagonal Gaussian :math:`\mathcal N(\mu, e^{v})`.

    .. math::
        z = \mu + e^{v/2} \odot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I),

    a deterministic, differentiable function of :math:`(\mu, v)` given the noise, so gradients
    of any function of :math:`z` flow to ``mean`` and ``log_var`` (the reparameterisation trick).

    Args:
      key: a ``jax.random`` key.
      mean: means :math:`\mu`, any shape (floating).
      log_var: log-variances :math:`v`, broadcastable against ``mean``.
      num_samples: if given, draw this many independent samples stacked on a new leading axis.

    Returns:
      Samples of the broadcast shape of ``mean`` and ``log_var``, with a leading
      ``num_samples`` axis when requested; in at least float32.

    Examples:
      >>> import jax, jax.numpy as jnp, entjax
      >>> z = entjax.reparameterize(jax.random.key(0), jnp.zeros(3), jnp.zeros(3), num_samples=5)
      >>> z.shape
      (5, 3)
      >>> # With zero variance the sample is the mean.
      >>> print(entjax.reparameterize(jax.random.key(0), jnp.ones(2), jnp.full(2, -jnp.inf)))
      [1. 1.]

    References:
      Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014, §2.4.
    """
    mean = ck.check_floating(mean, "mean")
    log_var = ck.check_floating(log_var, "log_var")
    ck.check_broadcastable(log_var, mean.shape, "log_var", to="mean")
    shape = jnp.broadcast_shapes(mean.shape, log_var.shape)
    dtype = nx.compute_dtype(mean, log_var)
    if num_samples is not None:
        num_samples = ck.static_int(num_samples, "num_samples", minimum=1)
        shape = (num_samples, *shape)
    eps = jax.random.normal(key, shape, dtype)
    std = jnp.broadcast_to(jnp.exp(0.5 * log_var.astype(dtype)), shape)
    return jnp.broadcast_to(mean.astype(dtype), shape) + std * eps


class Elbo(NamedTuple):
    """Result of :func:`entjax.elbo`: ``elbo = log_likelihood - kl``, each per example."""

    elbo: jax.Array
    """The evidence lower bound :math:`\\mathcal L`."""
    log_likelihood: jax.Array
    """The reconstruction term :math:`\\mathbb E_q[\\log p(x \\mid z)]` (sample mean)."""
    kl: jax.Array
    """:math:`\\mathrm{KL}(q \\,\\|\\, p)`: analytic, or the sample mean of ``log q - log p``."""


def _log_density(values: LogDensity, samples: jax.Array | None, name: str) -> jax.Array:
    if callable(values):
        if samples is None:
            raise ValueError(
                f"`{name}` is a callable: pass the latent `samples` to evaluate it on."
            )
        values = values(samples)
    return ck.check_floating(values, name)


def elbo(
    log_likelihood: jax.typing.ArrayLike,
    *,
    mean: jax.typing.ArrayLike | None = None,
    log_var: jax.typing.ArrayLike | None = None,
    prior_mean: jax.typing.ArrayLike = 0.0,
    prior_log_var: jax.typing.ArrayLike = 0.0,
    latent_axis: ck.Axis = -1,
    log_q: LogDensity | None = None,
    log_prior: LogDensity | None = None,
    samples: jax.typing.ArrayLike | None = None,
    sample_axis: int | None = 0,
) -> Elbo:
    r"""Evidence lower bound (ELBO) with its reconstruction and KL terms.

    .. math::
        \log p(x) \;\ge\; \mathcal L
          = \mathbb E_{q(z)}[\log p(x \mid z)] - \mathrm{KL}(q(z) \,\|\, p(z)).

    The expectation is the mean of ``log_likelihood`` (:math:`\log p(x \mid z_s)` evaluated by
    the caller at samples :math:`z_s \sim q`, e.g. from :func:`entjax.reparameterize`) over
    ``sample_axis``. The KL term is computed in one of two ways:

    * **analytic** (pass ``mean`` and ``log_var``): :math:`q = \mathcal N(\mu, e^{v})`
      diagonal, the prior diagonal Gaussian (``prior_mean``/``prior_log_var``, default
      :math:`\mathcal N(0, I)`), KL by :func:`entjax.gaussian_kl` summed over ``latent_axis``;
    * **Monte Carlo** (pass ``log_q`` and ``log_prior``): any pair of log-densities, either as
      arrays of values at the samples or as callables applied to ``samples``;
      :math:`\mathrm{KL} \approx \frac1S \sum_s \log q(z_s) - \log p(z_s)` over ``sample_axis``.

    Args:
      log_likelihood: :math:`\log p(x \mid z_s)`, shape ``[num_samples, ...batch]`` (with
        ``sample_axis=0``) or ``[...batch]`` for a single sample (``sample_axis=None``).
      mean: posterior means, shape ``[...batch, latent_dim]`` (analytic path).
      log_var: posterior log-variances, broadcastable against ``mean`` (analytic path).
      prior_mean: prior means (analytic path), default 0.
      prior_log_var: prior log-variances (analytic path), default 0.
      latent_axis: latent axis or axes of ``mean`` summed by the analytic KL.
      log_q: :math:`\log q(z_s)` per sample, same shape as ``log_likelihood``, or a callable
        mapping ``samples`` to it (Monte-Carlo path).
      log_prior: :math:`\log p(z_s)` likewise (Monte-Carlo path).
      samples: the latent samples :math:`z_s`, needed only when ``log_q`` or ``log_prior`` is a
        callable.
      sample_axis: the axis of ``log_likelihood`` (and of the Monte-Carlo log-densities) that
        indexes samples, or ``None`` when there is none.

    Returns:
      An :class:`Elbo` ``(elbo, log_likelihood, kl)``, each of shape ``[...batch]``.

    Examples:
      >>> import jax, jax.numpy as jnp, entjax
      >>> # Model z ~ N(0, 1), x | z ~ N(z, 1) observed at x = 0: log p(x) = log N(0; 0, 2).
      >>> # The exact posterior is q = N(0, 1/2); the Monte-Carlo ELBO then equals log p(x).
      >>> q_mean, q_log_var = jnp.zeros(()), jnp.log(jnp.array(0.5))
      >>> z = entjax.reparameterize(jax.random.key(0), q_mean, q_log_var, num_samples=8)
      >>> log_normal = lambda x, m, v: -0.5 * (jnp.log(2 * jnp.pi * v) + (x - m) ** 2 / v)
      >>> out = entjax.elbo(log_normal(0.0, z, 1.0), samples=z,
      ...                   log_q=lambda z: log_normal(z, q_mean, 0.5),
      ...                   log_prior=lambda z: log_normal(z, 0.0, 1.0))
      >>> print(f"{out.elbo:.4f} {log_normal(0.0, 0.0, 2.0):.4f}")
      -1.2655 -1.2655

    References:
      Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014 (eqs. 3 and 7).
      Blei, Kucukelbir & McAuliffe, *Variational Inference: A Review for Statisticians*, 2017.
    """
    ll = ck.check_floating(log_likelihood, "log_likelihood")
    analytic = mean is not None or log_var is not None
    monte_carlo = log_q is not None or log_prior is not None
    if analytic == monte_carlo:
        raise ValueError(
            "elbo: pass either `mean` and `log_var` (analytic Gaussian KL) or `log_q` and "
            "`log_prior` (Monte-Carlo KL), not both and not neither."
        )
    if sample_axis is not None:
        if ll.ndim == 0:
            raise ValueError("`log_likelihood` has no sample axis; pass `sample_axis=None`.")
        sample_axis = ck.normalize_axes(sample_axis, ll.ndim)[0]

    def sample_mean(x: jax.Array) -> jax.Array:
        return x if sample_axis is None else jnp.mean(x, axis=sample_axis)

    if analytic:
        if mean is None or log_var is None:
            raise ValueError("elbo: the analytic path needs both `mean` and `log_var`.")
        kl = gaussian_kl(
            mean, log_var, prior_mean=prior_mean, prior_log_var=prior_log_var, axis=latent_axis
        )
    else:
        if log_q is None or log_prior is None:
            raise ValueError("elbo: the Monte-Carlo path needs both `log_q` and `log_prior`.")
        z = None if samples is None else jnp.asarray(samples)
        lq = _log_density(log_q, z, "log_q")
        lp = _log_density(log_prior, z, "log_prior")
        for name, x in (("log_q", lq), ("log_prior", lp)):
            ck.check_shape(x, ll.shape, name, expected="the shape of `log_likelihood`")
        dtype = nx.compute_dtype(ll, lq, lp)
        kl = sample_mean(lq.astype(dtype) - lp.astype(dtype))
    expected_ll = sample_mean(nx.upcast(ll))
    if kl.shape != expected_ll.shape:
        raise ValueError(
            f"elbo: the KL term has batch shape {kl.shape} but the log-likelihood term has "
            f"{expected_ll.shape}; check `sample_axis` and `latent_axis`."
        )
    dtype = nx.compute_dtype(expected_ll, kl)
    expected_ll, kl = expected_ll.astype(dtype), kl.astype(dtype)
    return Elbo(expected_ll - kl, expected_ll, kl)


def iwae_bound(
    log_weights: jax.typing.ArrayLike,
    *,
    axis: int = 0,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Importance-weighted lower bound on :math:`\log p(x)` from :math:`k` samples.

    .. math::
        \mathcal L_k = \log \frac1k \sum_{i=1}^k w_i, \qquad
        \log w_i = \log p(x, z_i) - \log q(z_i \mid x), \quad z_i \sim q,

    computed as ``logsumexp(log_weights, axis) - log k``, exact for ``|log w| = 1e4``. In
    expectation :math:`\mathcal L_1 = \mathrm{ELBO} \le \mathcal L_k \le \mathcal L_{k+1}
    \le \log p(x)`. Gradients are the self-normalised importance weights
    :math:`\tilde w_i = w_i / \sum_j w_j`. With ``where``, masked samples are left out and
    :math:`k` counts the kept ones.

    Args:
      log_weights: :math:`\log w_i`, samples along ``axis``, any other (batch) axes.
      axis: the sample axis.
      where: boolean mask of samples to keep, broadcastable against ``log_weights``.

    Returns:
      :math:`\mathcal L_k` per example: ``log_weights.shape`` without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, entjax
      >>> print(f"{entjax.iwae_bound(jnp.log(jnp.array([1.0, 3.0]))):.4f}")  # log((1 + 3) / 2)
      0.6931
      >>> print(entjax.iwae_bound(jnp.array([1e4, 1e4])))
      10000.0

    References:
      Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders*, ICLR 2016.
    """
    lw = nx.upcast(ck.check_floating(log_weights, "log_weights"))
    ck.check_min_rank(lw, 1, "log_weights")
    ax = ck.normalize_axes(axis, lw.ndim)[0]
    mask = ck.example_mask(where, lw.shape)
    if mask is None:
        k = lw.shape[ax]
        return jax.nn.logsumexp(lw, axis=ax) - jnp.asarray(math.log(k), lw.dtype)
    count = jnp.sum(mask, axis=ax).astype(lw.dtype)
    lse = jax.nn.logsumexp(jnp.where(mask, lw, 0.0), axis=ax, where=mask)
    return jnp.where(count > 0, lse - jnp.log(jnp.maximum(count, 1.0)), 0.0)
