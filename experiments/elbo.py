"""A small VAE on binarised digits: ELBO vs importance-weighted bounds (k = 1, 5, 50).

Data: scikit-learn's ``load_digits`` (8×8), pixels binarised at 0.5, so the Bernoulli decoder
gives a proper likelihood and bounds are comparable numbers in nats per image.

Model: encoder :math:`q(z \\mid x) = \\mathcal N(\\mu, \\mathrm{diag}\\, e^{v})` and decoder
:math:`p(x \\mid z) = \\prod \\mathrm{Bernoulli}(\\sigma(f(z)))`, both MLPs from
:mod:`experiments.core.models`; prior :math:`\\mathcal N(0, I)`. One member per (training k, seed):
k = 1 trains the ELBO with the analytic KL (``entjax.elbo``), k > 1 trains the IWAE bound
(``entjax.iwae_bound`` with a sample mask, so members with different k share one vmapped,
compiled step). During training the test-set ELBO and IWAE bounds for k ∈ ``--eval-ks`` are
recorded; at the end :math:`\\log p(x)` is estimated with ``--final-k`` importance samples.
Expected (Burda et al. 2016): ELBO ≤ IWAE-5 ≤ IWAE-50 ≤ log p(x) for every model, and models
trained with larger k reach higher IWAE bounds and log-likelihood, and lower ELBO.

Run ``python -m experiments.elbo`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``curves.png``, ``samples.png`` and ``reconstructions.png``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import entjax
from experiments.core import (
    cli,
    data as data_lib,
    entropy_curves,
    metrics,
    models,
    outputs,
    training,
)
from experiments.core.cli import option
from experiments.core.distributed import to_host
from experiments.core.runner import Experiment, Outcome

NAME = "elbo"
NUM_PIXELS = 64


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    train_ks: tuple[int, ...] = option((1, 5, 50), "training bounds: 1 = ELBO, k > 1 = IWAE-k")
    latent_dim: int = option(8, "dimension of z")
    width: int = option(128, "encoder / decoder MLP width")
    steps: int = option(3000, "Adam steps")
    learning_rate: float = option(1e-3, "peak Adam learning rate (cosine schedule)")
    eval_every: int = option(250, "steps between evaluations (and checkpoints)")
    eval_ks: tuple[int, ...] = option((1, 5, 50), "bounds recorded on the test set during training")
    final_k: int = option(1000, "importance samples of the final log p(x) estimate")
    threshold: float = option(0.5, "binarisation threshold of the pixels")

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "train_ks", "eval_ks")
        for name in ("latent_dim", "width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.final_k >= 1, "--final-k must be >= 1")
        cli.require(0.0 < self.threshold < 1.0, "--threshold must lie in (0, 1)")


SMOKE = {
    "train_ks": (1, 5),
    "seeds": 1,
    "latent_dim": 2,
    "width": 16,
    "steps": 20,
    "batch_size": 32,
    "eval_every": 10,
    "eval_ks": (1, 5),
    "final_k": 20,
}


def log_normal_diag(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """:math:`\\log \\mathcal N(z; \\mu, e^{v})`, summed over the last axis."""
    return -0.5 * jnp.sum(
        math.log(2 * math.pi) + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1
    )


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
        pixels = x.reshape(*x.shape[:-3], NUM_PIXELS)
        bce = entjax.sigmoid_binary_cross_entropy(self.decode(z), pixels)
        log_lik = -jnp.sum(bce, axis=-1)
        log_prior = log_normal_diag(z, 0.0, jnp.zeros_like(z))
        log_q = log_normal_diag(z, mean, log_var)
        return {
            "log_lik": log_lik,
            "log_weights": log_lik + log_prior - log_q,
            "mean": mean,
            "log_var": log_var,
        }


def bound(log_lik, log_weights, mean, log_var, k):
    """Per example: the analytic-KL ELBO when ``k == 1``, else the IWAE bound with the first
    ``k`` of the samples (a traced ``k``, so one program serves every member)."""
    elbo = entjax.elbo(log_lik[:1], mean=mean, log_var=log_var).elbo
    keep = (jnp.arange(log_weights.shape[0]) < k)[:, None]
    iwae = entjax.iwae_bound(log_weights, axis=0, where=keep)
    return jnp.where(k == 1, elbo, iwae)


def make_loss_fn(ensemble: training.Ensemble, seed: int, num_samples: int):
    def apply_fn(params, batch):
        return ensemble.module(params)(batch["image"], batch["key"], num_samples)

    def negative_bound(log_lik, log_weights, mean, log_var, k):
        return -bound(log_lik, log_weights, mean, log_var, k)

    objective = entjax.make_objective(
        apply_fn,
        {
            "neg_bound": entjax.term(
                negative_bound, "log_lik", "log_weights", "mean", "log_var", "k"
            )
        },
        mask="mask",
    )

    def loss_fn(params, batch, step=0):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), batch["member"]), step)
        return objective(params, {**batch, "key": key}, step)

    return loss_fn


def make_evaluator(ensemble: training.Ensemble, ks: Sequence[int], seed: int, chunk: int = 512):
    """``(params, x) -> {"k1": (K,), "k5": ...}``: mean test bounds (nats per image) per member.

    ``k = 1`` is the analytic-KL ELBO; larger k the IWAE bound from k fresh samples.
    """
    ks = tuple(sorted(set(ks)))

    def one(params, x, key):
        model = ensemble.module(params)
        out = {}
        for i, k in enumerate(ks):
            o = model(x, jax.random.fold_in(key, i), k)
            if k == 1:
                out[f"k{k}"] = entjax.elbo(o["log_lik"], mean=o["mean"], log_var=o["log_var"]).elbo
            else:
                out[f"k{k}"] = entjax.iwae_bound(o["log_weights"], axis=0)
        return out

    @jax.jit
    def chunk_bounds(params, x, start):
        key = jax.random.fold_in(jax.random.key(seed + 104729), start)
        return jax.vmap(one, in_axes=(0, None, None))(params, x, key)

    def evaluate(params, x: np.ndarray) -> dict[str, np.ndarray]:
        n = len(x)
        size = min(chunk, n)
        pad = -n % size  # equal-sized chunks: one compiled program
        xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        sums: dict[str, np.ndarray] = {}
        for start in range(0, len(xp), size):
            out = chunk_bounds(params, jnp.asarray(xp[start : start + size]), start)
            valid = min(size, n - start)
            for name, v in out.items():
                v = np.asarray(to_host(v), np.float64)[:, :valid]
                sums[name] = sums.get(name, 0.0) + v.sum(-1)
        return {name: s_ / n for name, s_ in sums.items()}

    return evaluate


def binarize(images: np.ndarray, threshold: float) -> np.ndarray:
    return (images > threshold).astype(np.float32)


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Train one VAE per (training k, seed); test bounds, log p(x), samples."""
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    x_train = binarize(data.x_train, config.threshold)
    x_test = binarize(data.x_test, config.threshold)
    grid = training.member_grid(train_k=config.train_ks, seed=tuple(range(config.seeds)))

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return VAE(latent_dim=config.latent_dim, width=config.width, rngs=rngs)

    members = training.Members.create(model_fn, len(grid), seed=config.seed)
    evaluator = make_evaluator(members.ensemble, config.eval_ks, config.seed)
    result = members.train_sweep(
        make_loss_fn(members.ensemble, config.seed, max(config.train_ks)),
        config,
        options,
        data={"image": x_train},
        description=NAME,
        member_inputs={
            "k": np.array([m["train_k"] for m in grid], np.int32),
            "member": np.arange(len(grid), dtype=np.int32),
        },
        evaluate=lambda p: evaluator(p, x_test),
        member_names=training.member_names(grid),
        probe=entropy_curves.EntropyProbe(
            x_train,
            binarize(data.x_val, config.threshold),
            apply=lambda params, x: members.ensemble.module(params).reconstruct(x),
            entropy=entropy_curves.bernoulli_entropy,
        ),
    )
    final = make_evaluator(members.ensemble, (config.final_k,), config.seed + 1, chunk=20)(
        result.params, x_test
    )[f"k{config.final_k}"]
    vae = summarise(result, final, grid, config)
    best = max(i for i, m in enumerate(grid) if m["seed"] == 0)  # seed 0, largest k
    images = sample_images(members, result.params, best, x_test, config)
    curves = entropy_curves.summarise(
        result.curves,
        result.loss_history,
        series=entropy_curves.series_by(grid, "train_k", "trained with k"),
        max_entropy=NUM_PIXELS * math.log(2.0),
    )
    return Outcome({"vae": vae, "entropy_curves": {"digits": curves}}, arrays=images)


def summarise(
    result: training.TrainResult, final: np.ndarray, grid: list[dict[str, Any]], config: Config
) -> dict[str, Any]:
    """Per training k: test bounds, log p(x), final training loss (mean ± std over seeds)."""
    curves = result.curves
    train_k_of = np.array([m["train_k"] for m in grid])
    eval_names = [f"k{e}" for e in sorted(set(config.eval_ks))]
    ks = config.train_ks
    return {
        "train_ks": list(ks),
        "eval_ks": sorted(set(config.eval_ks)),
        "final_k": config.final_k,
        "test_bounds": {
            name: metrics.group_mean_std(curves.metrics[name][-1], train_k_of, ks)
            for name in eval_names
        },
        "test_log_likelihood": metrics.group_mean_std(final, train_k_of, ks),
        "train_loss_final": metrics.group_mean_std(result.loss_history[-1], train_k_of, ks),
        "eval_steps": curves.steps,
        "curves": {
            name: [curves.metrics[name][:, train_k_of == t].mean(1) for t in ks]
            for name in eval_names
        },
        "members": [{**m, "test_log_likelihood": float(final[i])} for i, m in enumerate(grid)],
    }


def sample_images(
    members: training.Members, params: Any, index: int, x_test: np.ndarray, config: Config
) -> dict[str, np.ndarray]:
    """Decoded prior samples and test reconstructions of member ``index``, for the figures."""
    model = members.ensemble.module(members.member_params(params, index))
    z = jax.random.normal(jax.random.key(config.seed + 3), (32, config.latent_dim))
    samples = np.asarray(jax.nn.sigmoid(model.decode(z))).reshape(-1, 8, 8)
    mean, _ = model.encode(jnp.asarray(x_test[:16]))
    recon = np.asarray(jax.nn.sigmoid(model.decode(mean))).reshape(-1, 8, 8)
    return {
        "samples": samples,
        "originals": x_test[:16, ..., 0],
        "reconstructions": recon,
        "image_member": np.asarray(index),
    }


def report(results: dict[str, Any]) -> str:
    r, config = results["vae"], results["config"]
    names = [f"k{e}" for e in r["eval_ks"]]
    rows = []
    for i, t in enumerate(r["train_ks"]):
        rows.append(
            [f"{'ELBO' if t == 1 else f'IWAE-{t}'}"]
            + [
                {"mean": r["test_bounds"][n]["mean"][i], "std": r["test_bounds"][n]["std"][i]}
                for n in names
            ]
            + [
                {
                    "mean": r["test_log_likelihood"]["mean"][i],
                    "std": r["test_log_likelihood"]["std"][i],
                }
            ]
        )
    headers = ["trained with"] + ["test ELBO" if n == "k1" else f"test IWAE-{n[1:]}" for n in names]
    headers.append(f"test log p(x) ≈ IWAE-{r['final_k']}")
    return "\n".join(
        [
            "# VAE on binarised digits: ELBO vs importance-weighted bounds",
            "",
            f"Latent dim {config['latent_dim']}, MLP width {config['width']}, {config['steps']} "
            f"Adam steps, {config['seeds']} seed(s); nats per 8×8 image (higher is better), "
            "mean ± std over seeds.",
            "",
            outputs.markdown_table(headers, rows, digits=3),
        ]
    )


def _grid(ax: Any, images: np.ndarray, cols: int) -> None:
    images = np.asarray(images)
    rows = math.ceil(len(images) / cols)
    canvas = np.full((rows * 9 + 1, cols * 9 + 1), 0.35)  # grey separators
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[1 + r * 9 : 1 + r * 9 + 8, 1 + c * 9 : 1 + c * 9 + 8] = img
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def figures(results: dict[str, Any], images: dict[str, Any]) -> dict[str, Any]:
    r = results["vae"]
    names = [f"k{e}" for e in r["eval_ks"]]
    fig, axes = outputs.new_figure(1, len(r["train_ks"]), size=(3.6, 3.0))
    for ax, (i, t) in zip(axes[0], enumerate(r["train_ks"]), strict=True):
        for n in names:
            curve = np.asarray(r["curves"][n][i], float)
            label = "ELBO" if n == "k1" else f"IWAE-{n[1:]}"
            ax.plot(r["eval_steps"][1:], curve[1:], label=label)
        ax.set_title(f"trained with {'ELBO' if t == 1 else f'IWAE-{t}'}")
        ax.set_xlabel("step")
    axes[0, 0].set_ylabel("test bound (nats / image)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Test-set bounds during training (mean over seeds)")
    fig.tight_layout()
    figures = {"curves": fig}

    fig, axes = outputs.new_figure(1, 1, size=(4.0, 2.2))
    _grid(axes[0, 0], images["samples"], 8)
    axes[0, 0].set_title("Samples: Bernoulli means of decoded z ~ N(0, I)")
    figures["samples"] = fig
    fig, axes = outputs.new_figure(2, 1, size=(4.0, 1.3))
    _grid(axes[0, 0], images["originals"], 16)
    axes[0, 0].set_title("test images (binarised)")
    _grid(axes[1, 0], images["reconstructions"], 16)
    axes[1, 0].set_title("reconstructions (decoder at the posterior mean)")
    figures["reconstructions"] = fig
    return figures


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
