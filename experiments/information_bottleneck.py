"""Deep variational information bottleneck on digits: a β sweep and the information plane.

The model is the VIB of Alemi et al. (2017): a stochastic encoder
:math:`p(z \\mid x) = \\mathcal N(\\mu(x), \\mathrm{diag}\\, e^{v(x)})` (an MLP from
:mod:`experiments.core.models` with ``2 · latent_dim`` outputs), one reparameterised sample
:math:`z` per example, and a linear softmax decoder :math:`q(y \\mid z)`. The loss is
``entjax.vib_loss``:
:math:`\\mathrm{CE} + \\beta\\, \\mathrm{KL}(p(z \\mid x) \\,\\|\\, \\mathcal N(0, I))`.
One member per (β, seed), all trained together in one vmapped step
(:mod:`experiments.core.training`), β being a per-member input of the entjax objective.

On the test set, per β (in bits): the variational upper bound on :math:`I(X;Z)` (the mean KL) and
the lower bound on :math:`I(Z;Y)` (:math:`H(Y) - \\mathrm{CE}`, with :math:`H(Y)` from the
training label frequencies and CE averaged over ``--eval-samples`` latent samples), plus test
accuracy of the sample-averaged predictive distribution. Expected (Alemi et al.): I(X;Z) falls as
β grows while accuracy holds until β is large, then both bounds collapse towards 0.

Run ``python -m experiments.information_bottleneck`` (``--smoke`` for a seconds-long check).
Writes ``results.json``, ``report.md``, ``information_plane.png`` and ``curves.png`` to ``--out``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
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

NAME = "information_bottleneck"
LOG2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    betas: tuple[float, ...] = option((1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), "VIB weights β >= 0")
    latent_dim: int = option(16, "dimension of z")
    width: int = option(128, "encoder MLP width")
    steps: int = option(1500, "Adam steps")
    learning_rate: float = option(1e-3, "peak Adam learning rate (cosine schedule)")
    eval_every: int = option(250, "steps between evaluations (and checkpoints)")
    eval_samples: int = option(12, "latent samples per test example at evaluation")

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "betas", allow_zero=True)
        for name in ("latent_dim", "width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.eval_samples >= 1, "--eval-samples must be >= 1")


SMOKE = {
    "betas": (1e-3, 1.0),
    "seeds": 1,
    "latent_dim": 4,
    "width": 16,
    "steps": 20,
    "batch_size": 32,
    "eval_every": 10,
    "eval_samples": 2,
}


class VIB(nnx.Module):
    """Stochastic encoder (MLP → mean, log-variance) and linear softmax decoder."""

    def __init__(self, num_classes: int, *, latent_dim: int, width: int, rngs: nnx.Rngs):
        self.encoder = models.build_model("mlp", num_classes=2 * latent_dim, width=width, rngs=rngs)
        self.decoder = nnx.Linear(latent_dim, num_classes, rngs=rngs)
        self.latent_dim = latent_dim

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = self.encoder(x)
        return h[..., : self.latent_dim], h[..., self.latent_dim :]

    def __call__(self, x: jax.Array, key: jax.Array, num_samples: int | None = None):
        mean, log_var = self.encode(x)
        z = entjax.reparameterize(key, mean, log_var, num_samples=num_samples)
        return {"logits": self.decoder(z), "mean": mean, "log_var": log_var}


def make_loss_fn(ensemble: training.Ensemble, seed: int):
    """``vib_loss`` with per-member ``beta``; the sampling key is a function of (member, step)."""

    def apply_fn(params, batch):
        return ensemble.module(params)(batch["image"], batch["key"])

    def loss(logits, labels, mean, log_var, beta):
        return entjax.vib_loss(logits, labels, mean, log_var, beta=beta).loss

    objective = entjax.make_objective(
        apply_fn,
        {"vib": entjax.term(loss, "logits", "label", "mean", "log_var", "beta")},
        mask="mask",
    )

    def loss_fn(params, batch, step=0):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), batch["member"]), step)
        return objective(params, {**batch, "key": key}, step)

    return loss_fn


def make_evaluator(
    ensemble: training.Ensemble, label_marginal: np.ndarray, num_samples: int, seed: int
):
    """Jitted ``(params, x, y) -> {izx_bits, izy_bits, accuracy, ce_bits}``, each ``(K,)``."""
    marginal = jnp.asarray(label_marginal, jnp.float32)

    def one(params, x, y, key):
        out = ensemble.module(params)(x, key, num_samples)  # logits (S, n, C)
        b = entjax.vib_loss(
            out["logits"],
            y,
            out["mean"],
            out["log_var"],
            beta=0.0,
            label_marginal=marginal,
            sample_axis=0,
            base=2,
        )
        # Predictive distribution: the mean of the per-sample softmaxes, in log space.
        log_pred = jax.nn.logsumexp(jax.nn.log_softmax(out["logits"]), axis=0) - math.log(
            num_samples
        )
        return {
            "izx_bits": jnp.mean(b.izx_upper),
            "izy_bits": jnp.mean(b.izy_lower),
            "ce_bits": jnp.mean(b.ce) / LOG2,
            "accuracy": jnp.mean(jnp.argmax(log_pred, -1) == y),
        }

    vone = jax.jit(jax.vmap(one, in_axes=(0, None, None, None)))
    key = jax.random.key(seed + 7919)

    def evaluate(params, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        out = vone(params, jnp.asarray(x), jnp.asarray(y), key)
        return {k: np.asarray(to_host(v), np.float64) for k, v in out.items()}

    return evaluate


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Train one VIB per (β, seed); bounds and accuracy on the test (and training) set."""
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    grid = training.member_grid(beta=config.betas, seed=tuple(range(config.seeds)))

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return VIB(data.num_classes, latent_dim=config.latent_dim, width=config.width, rngs=rngs)

    members = training.Members.create(model_fn, len(grid), seed=config.seed)
    marginal = np.bincount(data.y_train, minlength=data.num_classes) / len(data.y_train)
    evaluator = make_evaluator(members.ensemble, marginal, config.eval_samples, config.seed)
    result = members.train_sweep(
        make_loss_fn(members.ensemble, config.seed),
        config,
        options,
        data={"image": data.x_train, "label": data.y_train},
        description=NAME,
        member_inputs={
            "beta": np.array([m["beta"] for m in grid], np.float32),
            "member": np.arange(len(grid), dtype=np.int32),
        },
        evaluate=lambda p: evaluator(p, data.x_test, data.y_test),
        member_names=training.member_names(grid),
        probe=entropy_curves.EntropyProbe(
            data.x_train,
            data.x_val,
            data.y_val,
            apply=sampled_logits(members.ensemble, config.seed),
        ),
    )
    train_final = evaluator(result.params, data.x_train, data.y_train)
    curves = entropy_curves.summarise(
        result.curves,
        result.loss_history,
        series=entropy_curves.series_by(grid, "beta", "β"),
        max_entropy=math.log(data.num_classes),
    )
    return Outcome(
        {
            "ib": summarise(result.curves, train_final, grid, config, marginal),
            "entropy_curves": {"digits": curves},
        }
    )


def sampled_logits(ensemble: training.Ensemble, seed: int):
    """Per-member logits from one latent sample per example (a fixed key: comparable evals)."""
    key = jax.random.key(seed + 7907)

    def apply(params, x):
        return ensemble.module(params)(x, key)["logits"]

    return apply


def summarise(
    curves: training.Curves,
    train_final: dict[str, np.ndarray],
    grid: list[dict[str, Any]],
    config: Config,
    marginal: np.ndarray,
) -> dict[str, Any]:
    """Per β: test and train bounds (mean ± std over seeds), per-member values, curves."""
    beta_of = np.array([m["beta"] for m in grid])
    names = ("izx_bits", "izy_bits", "ce_bits", "accuracy")
    final = curves.final()
    return {
        "betas": list(config.betas),
        "h_y_bits": float(-(marginal * np.log2(marginal)).sum()),
        "test": {m: metrics.group_mean_std(final[m], beta_of, config.betas) for m in names},
        "train": {m: metrics.group_mean_std(train_final[m], beta_of, config.betas) for m in names},
        "members": [
            {**m, **{f"test_{n_}": float(final[n_][i]) for n_ in names}} for i, m in enumerate(grid)
        ],
        "eval_steps": curves.steps,
        "curves": {
            m: [curves.metrics[m][:, beta_of == b].mean(1) for b in config.betas]
            for m in ("izx_bits", "izy_bits", "accuracy")
        },
    }


def report(results: dict[str, Any]) -> str:
    r, config = results["ib"], results["config"]
    rows = []
    for i, beta in enumerate(r["betas"]):
        rows.append(
            [f"{beta:g}"]
            + [
                {"mean": r["test"][m]["mean"][i], "std": r["test"][m]["std"][i]}
                for m in ("accuracy", "izx_bits", "izy_bits")
            ]
            + [
                {"mean": r["train"][m]["mean"][i], "std": r["train"][m]["std"][i]}
                for m in ("izx_bits", "izy_bits")
            ]
        )
    return "\n".join(
        [
            "# Variational information bottleneck on digits",
            "",
            f"Latent dim {config['latent_dim']}, encoder MLP width {config['width']}, "
            f"{config['steps']} Adam steps, {config['seeds']} seed(s) per β; mean ± std over "
            f"seeds. H(Y) = {r['h_y_bits']:.3f} bits (upper limit of I(Z;Y)).",
            "",
            outputs.markdown_table(
                [
                    "β",
                    "test accuracy",
                    "I(X;Z) ≤ (test, bits)",
                    "I(Z;Y) ≥ (test, bits)",
                    "I(X;Z) ≤ (train)",
                    "I(Z;Y) ≥ (train)",
                ],
                rows,
                digits=3,
            ),
        ]
    )


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    r = results["ib"]
    betas = np.asarray(r["betas"], float)
    fig, axes = outputs.new_figure(1, 3, size=(4.4, 3.6))
    ax = axes[0, 0]
    izx = np.asarray(r["test"]["izx_bits"]["mean"], float)
    izy = np.asarray(r["test"]["izy_bits"]["mean"], float)
    sc = ax.scatter(izx, izy, c=np.log10(betas), cmap="viridis", zorder=3)
    ax.plot(izx, izy, "k-", lw=0.6, alpha=0.5)
    tr_izx = np.asarray(r["train"]["izx_bits"]["mean"], float)
    tr_izy = np.asarray(r["train"]["izy_bits"]["mean"], float)
    ax.scatter(tr_izx, tr_izy, c=np.log10(betas), cmap="viridis", marker="x", label="train")
    ax.axhline(r["h_y_bits"], color="gray", ls=":", lw=0.8, label="H(Y)")
    ax.set_xscale("log")
    ax.set_xlabel("I(X;Z) upper bound (bits)")
    ax.set_ylabel("I(Z;Y) lower bound (bits)")
    ax.set_title("Information plane (o test, x train)")
    fig.colorbar(sc, ax=ax, label="log10 β")
    for ax, m, label in (
        (axes[0, 1], "izx_bits", "I(X;Z) upper bound (bits)"),
        (axes[0, 2], "accuracy", "test accuracy"),
    ):
        ax.errorbar(betas, r["test"][m]["mean"], yerr=r["test"][m]["std"], marker="o", capsize=2)
        ax.set_xscale("log")
        ax.set_xlabel("β")
        ax.set_ylabel(label)
    axes[0, 1].set_yscale("log")
    fig.suptitle("Variational information bottleneck on digits")
    fig.tight_layout()
    figures = {"information_plane": fig}

    fig, axes = outputs.new_figure(1, 2, size=(4.2, 3.2))
    for b, izx_c, acc_c in zip(
        betas, r["curves"]["izx_bits"], r["curves"]["accuracy"], strict=True
    ):
        axes[0, 0].plot(r["eval_steps"], izx_c, label=f"β={b:g}")
        axes[0, 1].plot(r["eval_steps"], acc_c, label=f"β={b:g}")
    axes[0, 0].set_ylabel("I(X;Z) upper bound (test, bits)")
    axes[0, 0].set_yscale("log")
    axes[0, 1].set_ylabel("test accuracy")
    for ax in axes[0]:
        ax.set_xlabel("step")
    axes[0, 1].legend(fontsize=7)
    fig.tight_layout()
    figures["curves"] = fig
    return figures


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
