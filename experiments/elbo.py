"""A small VAE on binarised digits: ELBO vs importance-weighted bounds (k = 1, 5, 50).

Data: scikit-learn's ``load_digits`` (8×8), pixels binarised at 0.5, so the Bernoulli decoder
gives a proper likelihood and bounds are comparable numbers in nats per image.

Model: encoder :math:`q(z \\mid x) = \\mathcal N(\\mu, \\mathrm{diag}\\, e^{v})` and decoder
:math:`p(x \\mid z) = \\prod \\mathrm{Bernoulli}(\\sigma(f(z)))`, both MLPs from
:mod:`experiments.models`; prior :math:`\\mathcal N(0, I)`. One member per (training k, seed):
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
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import entjax
from experiments import data as data_lib
from experiments import ensemble as ens
from experiments import models, reporting, research

NAME = "elbo"
NUM_PIXELS = 64


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    train_ks: tuple[int, ...] = (1, 5, 50)
    seeds: int = 2
    latent_dim: int = 8
    width: int = 128
    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 1e-3
    eval_every: int = 250
    eval_ks: tuple[int, ...] = (1, 5, 50)
    final_k: int = 1000
    threshold: float = 0.5


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


def make_loss_fn(ensemble: ens.Ensemble, seed: int, num_samples: int):
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


def make_evaluator(ensemble: ens.Ensemble, ks: Sequence[int], seed: int, chunk: int = 512):
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
                v = np.asarray(ens.to_host(v), np.float64)[:, :valid]
                sums[name] = sums.get(name, 0.0) + v.sum(-1)
        return {name: s_ / n for name, s_ in sums.items()}

    return evaluate


def binarize(images: np.ndarray, threshold: float) -> np.ndarray:
    return (images > threshold).astype(np.float32)


def train_and_evaluate(
    config: Config,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after_step: int | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    x_train = binarize(data.x_train, config.threshold)
    x_test = binarize(data.x_test, config.threshold)
    member_list = research.member_grid(train_k=config.train_ks, seed=tuple(range(config.seeds)))
    k = len(member_list)
    mesh = research.mesh_for(k)

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return VAE(latent_dim=config.latent_dim, width=config.width, rngs=rngs)

    ensemble = ens.init_ensemble(model_fn, k, seed=config.seed, mesh=mesh)
    tx = ens.make_optimizer(config.learning_rate, steps=config.steps)
    loss_fn = make_loss_fn(ensemble, config.seed, max(config.train_ks))
    step_fn = ens.make_train_step(loss_fn, tx, mesh)
    evaluator = make_evaluator(ensemble, config.eval_ks, config.seed)
    n = len(x_train)

    result, curves = research.train_with_evals(
        step_fn=step_fn,
        params=ensemble.params,
        opt_state=ens.init_opt_state(tx, ensemble.params, mesh),
        data={"image": x_train},
        indices_fn=lambda s: data_lib.ensemble_batch_indices(
            config.seed, s, num_members=k, n=n, batch_size=config.batch_size
        ),
        num_steps=config.steps,
        mesh=mesh,
        eval_fn=lambda p: evaluator(p, x_test),
        eval_every=config.eval_every,
        checkpoint_dir=os.path.join(out_dir, "checkpoints"),
        member_inputs={
            "k": np.array([m["train_k"] for m in member_list], np.int32),
            "member": np.arange(k, dtype=np.int32),
        },
        resume=resume,
        run_config=dataclasses.asdict(config),
        progress=progress,
        description=NAME,
        stop_after_step=stop_after_step,
    )
    if result.stopped_early:
        return None
    final = make_evaluator(ensemble, (config.final_k,), config.seed + 1, chunk=20)(
        result.params, x_test
    )[f"k{config.final_k}"]
    train_k_of = np.array([m["train_k"] for m in member_list])
    eval_names = [f"k{e}" for e in sorted(set(config.eval_ks))]

    def per_k(values: np.ndarray) -> dict[str, list[float]]:
        return {
            "mean": [float(values[train_k_of == t].mean()) for t in config.train_ks],
            "std": [float(values[train_k_of == t].std()) for t in config.train_ks],
        }

    out = {
        "train_ks": list(config.train_ks),
        "eval_ks": sorted(set(config.eval_ks)),
        "final_k": config.final_k,
        "test_bounds": {name: per_k(curves.metrics[name][-1]) for name in eval_names},
        "test_log_likelihood": per_k(final),
        "train_loss_final": per_k(result.loss_history[-1]),
        "eval_steps": curves.steps,
        "curves": {
            name: [curves.metrics[name][:, train_k_of == t].mean(1) for t in config.train_ks]
            for name in eval_names
        },
        "members": [
            {**m, "test_log_likelihood": float(final[i])} for i, m in enumerate(member_list)
        ],
    }
    # Images from the first member trained with the largest k.
    best = max(i for i, m in enumerate(member_list) if m["seed"] == 0)
    model = ensemble.module(_member(result.params, best))
    z = jax.random.normal(jax.random.key(config.seed + 3), (32, config.latent_dim))
    samples = np.asarray(jax.nn.sigmoid(model.decode(z))).reshape(-1, 8, 8)
    mean, _ = model.encode(jnp.asarray(x_test[:16]))
    recon = np.asarray(jax.nn.sigmoid(model.decode(mean))).reshape(-1, 8, 8)
    images = {
        "samples": samples,
        "originals": x_test[:16, ..., 0],
        "reconstructions": recon,
        "image_member": np.asarray(best),
    }
    return out, images


def _member(params: Any, index: int) -> Any:
    return jax.tree.map(lambda a: np.asarray(ens.to_host(a))[index], params)


def make_report(results: dict[str, Any], config: Config) -> str:
    r = results["vae"]
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
            f"Latent dim {config.latent_dim}, MLP width {config.width}, {config.steps} Adam steps, "
            f"{config.seeds} seed(s); nats per 8×8 image (higher is better), mean ± std over "
            "seeds.",
            "",
            reporting.markdown_table(headers, rows, digits=3),
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


def make_figures(results: dict[str, Any], images: dict[str, np.ndarray]) -> dict[str, Any]:
    r = results["vae"]
    names = [f"k{e}" for e in r["eval_ks"]]
    fig, axes = reporting.new_figure(1, len(r["train_ks"]), size=(3.6, 3.0))
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

    fig, axes = reporting.new_figure(1, 1, size=(4.0, 2.2))
    _grid(axes[0, 0], images["samples"], 8)
    axes[0, 0].set_title("Samples: Bernoulli means of decoded z ~ N(0, I)")
    figures["samples"] = fig
    fig, axes = reporting.new_figure(2, 1, size=(4.0, 1.3))
    _grid(axes[0, 0], images["originals"], 16)
    axes[0, 0].set_title("test images (binarised)")
    _grid(axes[1, 0], images["reconstructions"], 16)
    axes[1, 0].set_title("reconstructions (decoder at the posterior mean)")
    figures["reconstructions"] = fig
    return figures


def run(
    config: Config,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    smoke: bool = False,
    stop_after_step: int | None = None,
) -> dict[str, Any] | None:
    """Train, evaluate, write the outputs; ``None`` if stopped early."""
    started = time.time()
    out = train_and_evaluate(
        config, out_dir, resume=resume, progress=progress, stop_after_step=stop_after_step
    )
    if out is None:
        return None
    vae, images = out
    results = {"experiment": NAME, "vae": vae}
    results.update(research.run_metadata(config, smoke=smoke, started=started))
    results = reporting.to_jsonable(results)
    research.write_outputs(
        out_dir, results, make_report(results, config), make_figures(results, images)
    )
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    return research.cli_main(
        argv,
        doc=__doc__,
        name=NAME,
        config_cls=Config,
        smoke=SMOKE,
        run=run,
        make_report=make_report,
    )


if __name__ == "__main__":
    main()
