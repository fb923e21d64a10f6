"""The VAE of ``elbo`` and the bounds it is trained and evaluated with."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

import entjax
from experiments.core import models
from experiments.elbo.config import NUM_PIXELS


def log_normal_diag(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """:math:`\\log \\mathcal N(z; \\mu, e^{v})`, summed over the last axis."""
    return -0.5 * jnp.sum(
        math.log(2 * math.pi) + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1
    )


def bernoulli_log_lik(logits: jax.Array, pixels: jax.Array) -> jax.Array:
    """:math:`\\log p(x \\mid z) = \\sum_i x_i f_i - \\mathrm{softplus}(f_i)`, summed over the
    last axis: ``-sum(entjax.sigmoid_binary_cross_entropy(f, x))`` exactly (as
    :math:`\\log \\sigma(f) = f - \\mathrm{softplus}(f)`, :math:`\\log \\sigma(-f) =
    -\\mathrm{softplus}(f)`), with one softplus per pixel instead of two log-sigmoids (fewer
    transcendental functions in the k-sample steps, where the per-pixel work dominates)."""
    return jnp.sum(pixels * logits - jax.nn.softplus(logits), axis=-1)


class VAE(nnx.Module):
    """MLP encoder to (mean, log-variance) and MLP decoder to 64 Bernoulli logits."""

    def __init__(self, *, latent_dim: int, width: int, rngs: nnx.Rngs):
        self.encoder = models.build_model("mlp", num_classes=2 * latent_dim, width=width, rngs=rngs)
        self.decoder = models.build_model(
            "mlp",
            num_classes=NUM_PIXELS,
            width=width,
            input_shape=(1, latent_dim, 1),
            rngs=rngs,
        )
        self.latent_dim = latent_dim

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = self.encoder(x)
        return h[..., : self.latent_dim], h[..., self.latent_dim :]

    def reconstruct(self, x: jax.Array) -> jax.Array:
        """Bernoulli logits of the decoder at the posterior mean: the model's output for ``x``."""
        return self.decode(self.encode(x)[0])

    def decode(self, z: jax.Array) -> jax.Array:
        """Bernoulli logits, shape ``z.shape[:-1] + (64,)``."""
        return self.decoder(z[..., None, :, None])

    def __call__(self, x: jax.Array, key: jax.Array, num_samples: int) -> dict[str, jax.Array]:
        """Samples ``z`` (S, n, d), log-likelihoods and importance log-weights, both (S, n)."""
        mean, log_var = self.encode(x)
        z = entjax.reparameterize(key, mean, log_var, num_samples=num_samples)
        log_lik = bernoulli_log_lik(self.decode(z), x.reshape(*x.shape[:-3], NUM_PIXELS))
        log_prior = log_normal_diag(z, 0.0, jnp.zeros_like(z))
        log_q = log_normal_diag(z, mean, log_var)
        return {
            "log_lik": log_lik,
            "log_weights": log_lik + log_prior - log_q,
            "mean": mean,
            "log_var": log_var,
        }


def bounds(out: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Per example, from one set of k samples: ``elbo`` (reconstruction averaged over the
    samples, analytic KL: the VAE-k objective; the ELBO itself for k = 1) and ``iwae``
    (:math:`\\log \\frac1k \\sum_s w_s`)."""
    elbo = entjax.elbo(out["log_lik"], mean=out["mean"], log_var=out["log_var"]).elbo
    return {"elbo": elbo, "iwae": entjax.iwae_bound(out["log_weights"], axis=0)}
