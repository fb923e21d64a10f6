"""Deep variational information bottleneck on digits: a β sweep and the information plane.

The model is the VIB of Alemi et al. (2017): a stochastic encoder
:math:`p(z \\mid x) = \\mathcal N(\\mu(x), \\mathrm{diag}\\, e^{v(x)})` (an MLP from
:mod:`experiments.models` with ``2 · latent_dim`` outputs), one reparameterised sample
:math:`z` per example, and a linear softmax decoder :math:`q(y \\mid z)`. The loss is
``entjax.vib_loss``:
:math:`\\mathrm{CE} + \\beta\\, \\mathrm{KL}(p(z \\mid x) \\,\\|\\, \\mathcal N(0, I))`.
One member per (β, seed), all trained together in one vmapped step (:mod:`experiments.ensemble`),
β being a per-member input of the entjax objective.

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

NAME = "information_bottleneck"
LOG2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    betas: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    seeds: int = 2
    latent_dim: int = 16
    width: int = 128
    steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 1e-3
    eval_every: int = 250
    eval_samples: int = 12


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


def make_loss_fn(ensemble: ens.Ensemble, seed: int):
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


def make_evaluator(ensemble: ens.Ensemble, label_marginal: np.ndarray, num_samples: int, seed: int):
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
        return {k: np.asarray(ens.to_host(v), np.float64) for k, v in out.items()}

    return evaluate


def train_and_evaluate(
    config: Config,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after_step: int | None = None,
) -> dict[str, Any] | None:
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    member_list = research.member_grid(beta=config.betas, seed=tuple(range(config.seeds)))
    k = len(member_list)
    mesh = research.mesh_for(k)

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return VIB(data.num_classes, latent_dim=config.latent_dim, width=config.width, rngs=rngs)

    ensemble = ens.init_ensemble(model_fn, k, seed=config.seed, mesh=mesh)
    tx = ens.make_optimizer(config.learning_rate, steps=config.steps)
    step_fn = ens.make_train_step(make_loss_fn(ensemble, config.seed), tx, mesh)
    marginal = np.bincount(data.y_train, minlength=data.num_classes) / len(data.y_train)
    evaluator = make_evaluator(ensemble, marginal, config.eval_samples, config.seed)
    n = len(data.y_train)

    result, curves = research.train_with_evals(
        step_fn=step_fn,
        params=ensemble.params,
        opt_state=ens.init_opt_state(tx, ensemble.params, mesh),
        data={"image": data.x_train, "label": data.y_train},
        indices_fn=lambda s: data_lib.ensemble_batch_indices(
            config.seed, s, num_members=k, n=n, batch_size=config.batch_size
        ),
        num_steps=config.steps,
        mesh=mesh,
        eval_fn=lambda p: evaluator(p, data.x_test, data.y_test),
        eval_every=config.eval_every,
        checkpoint_dir=os.path.join(out_dir, "checkpoints"),
        member_inputs={
            "beta": np.array([m["beta"] for m in member_list], np.float32),
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
    train_final = evaluator(result.params, data.x_train, data.y_train)
    beta_of = np.array([m["beta"] for m in member_list])
    names = ("izx_bits", "izy_bits", "ce_bits", "accuracy")

    def per_beta(values: np.ndarray) -> dict[str, list[float]]:
        return {
            "mean": [float(values[beta_of == b].mean()) for b in config.betas],
            "std": [float(values[beta_of == b].std()) for b in config.betas],
        }

    return {
        "betas": list(config.betas),
        "h_y_bits": float(-(marginal * np.log2(marginal)).sum()),
        "test": {m: per_beta(curves.metrics[m][-1]) for m in names},
        "train": {m: per_beta(train_final[m]) for m in names},
        "members": [
            {**m, **{f"test_{n_}": float(curves.metrics[n_][-1][i]) for n_ in names}}
            for i, m in enumerate(member_list)
        ],
        "eval_steps": curves.steps,
        "curves": {
            m: [curves.metrics[m][:, beta_of == b].mean(1) for b in config.betas]
            for m in ("izx_bits", "izy_bits", "accuracy")
        },
    }


def make_report(results: dict[str, Any], config: Config) -> str:
    r = results["ib"]
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
            f"Latent dim {config.latent_dim}, encoder MLP width {config.width}, {config.steps} "
            f"Adam steps, {config.seeds} seed(s) per β; mean ± std over seeds. "
            f"H(Y) = {r['h_y_bits']:.3f} bits (upper limit of I(Z;Y)).",
            "",
            reporting.markdown_table(
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


def make_figures(results: dict[str, Any]) -> dict[str, Any]:
    r = results["ib"]
    betas = np.asarray(r["betas"], float)
    fig, axes = reporting.new_figure(1, 3, size=(4.4, 3.6))
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

    fig, axes = reporting.new_figure(1, 2, size=(4.2, 3.2))
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


def run(
    config: Config,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    smoke: bool = False,
    stop_after_step: int | None = None,
) -> dict[str, Any] | None:
    """Train the β sweep, evaluate, write the outputs; ``None`` if stopped early."""
    started = time.time()
    ib = train_and_evaluate(
        config, out_dir, resume=resume, progress=progress, stop_after_step=stop_after_step
    )
    if ib is None:
        return None
    results = {"experiment": NAME, "ib": ib}
    results.update(research.run_metadata(config, smoke=smoke, started=started))
    results = reporting.to_jsonable(results)
    research.write_outputs(out_dir, results, make_report(results, config), make_figures(results))
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
