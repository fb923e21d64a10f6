"""Deep variational information bottleneck on digits: a β sweep, its ceiling, and baselines.

The model is the VIB of Alemi et al. (2017): a stochastic encoder
:math:`p(z \\mid x) = \\mathcal N(\\mu(x), \\mathrm{diag}\\, e^{v(x)})` (an MLP from
:mod:`experiments.core.models` with ``2 · latent_dim`` outputs), one reparameterised sample
:math:`z` per example, and a linear softmax decoder :math:`q(y \\mid z)`. The loss is
``entjax.vib_loss``:
:math:`\\mathrm{CE} + \\beta\\, \\mathrm{KL}(p(z \\mid x) \\,\\|\\, \\mathcal N(0, I))`.
Two baselines share the architecture (Alemi et al.'s Table 1 has both): the **deterministic**
network (β = 0 and no noise: :math:`z = \\mu(x)`, plain cross-entropy) and the same deterministic
network with the **confidence penalty** ``CE − λ H`` (Pereyra et al. 2017). One member per
(method, β or λ, seed), all trained together in one vmapped step (β, λ and the noise switch are
per-member inputs of the entjax objective); member ``s`` of every setting starts from the same
parameters.

Per member, in bits: the variational upper bound on :math:`I(X;Z)` (the mean KL, the *rate*)
and the lower bound on :math:`I(Z;Y)` (:math:`H(Y) - \\mathrm{CE}`, with :math:`H(Y)` from the
training label frequencies and CE averaged over ``--eval-samples`` latent samples), plus
accuracy, NLL and ECE of the sample-averaged predictive distribution. **The ceiling**: with X
uniform over the N images of a split, :math:`I(X;Z) \\le H(X) = \\log_2 N` (≈ 8.5 bits for the
360 test images), whatever the encoder, so a KL bound above :math:`\\log_2 N` says only that the
rate is at the ceiling; the report gives :math:`\\min(\\mathrm{bound}, \\log_2 N)` beside the bound
and the figure draws :math:`\\log_2 N`. A deterministic encoder of distinct images sits at the
ceiling.

β (among ``--betas``) and λ (among ``--cp-lambdas``) are each chosen by the mean **validation**
NLL over seeds; the test split only reports. Every number is a mean with a Student-t 95%
interval over ``--seeds`` seeds (``ddof = 1``), and the methods are compared by paired
differences by seed — a difference is claimed only where its interval excludes 0. Expected
(Alemi et al.): I(X;Z) falls as β grows while accuracy holds until β is large, then both
bounds collapse towards 0; a well-chosen β is competitive with the baselines.

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
    models,
    outputs,
    sweeps,
    training,
)
from experiments.core.cli import option
from experiments.core.distributed import to_host
from experiments.core.runner import Experiment, Outcome

NAME = "information_bottleneck"
LOG2 = math.log(2.0)
METHODS = ("det", "cp", "vib")
METHOD_LABELS = {"det": "deterministic", "cp": "confidence penalty", "vib": "VIB"}
NAMES = ("izx_bits", "izy_bits", "ce_bits", "accuracy", "nll", "ece")
BOUNDS = {"accuracy": (0, 1), "ece": (0, 1), "nll": (0, None), "izx_bits": (0, None)}
NUM_BINS = 15


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    betas: tuple[float, ...] = option((1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), "VIB weights β > 0")
    cp_lambdas: tuple[float, ...] = option(
        (0.01, 0.03, 0.1, 0.3, 1.0), "confidence-penalty baseline weights λ > 0"
    )
    seeds: int = option(8, "members (seeds) per setting")
    latent_dim: int = option(16, "dimension of z")
    width: int = option(128, "encoder MLP width")
    steps: int = option(1500, "Adam steps")
    learning_rate: float = option(1e-3, "peak Adam learning rate (cosine schedule)")
    eval_every: int = option(250, "steps between evaluations (and checkpoints)")
    eval_samples: int = option(12, "latent samples per example at evaluation")

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "betas", "cp_lambdas")
        for name in ("latent_dim", "width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.eval_samples >= 1, "--eval-samples must be >= 1")


SMOKE = {
    "betas": (1e-3, 1.0),
    "cp_lambdas": (0.1,),
    "seeds": 2,
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

    def __call__(self, x, key, num_samples: int | None = None, noise: jax.Array = 1.0):
        """Logits of ``z = μ + noise · σ ε`` (``noise = 0``: the deterministic ``z = μ``)."""
        mean, log_var = self.encode(x)
        z = entjax.reparameterize(key, mean, log_var, num_samples=num_samples)
        z = mean + noise * (z - mean)
        return {"logits": self.decoder(z), "mean": mean, "log_var": log_var}


def member_grid(config: Config) -> list[dict[str, Any]]:
    seeds = tuple(range(config.seeds))
    return (
        training.member_grid(method=("det",), value=(0.0,), seed=seeds)
        + training.member_grid(method=("cp",), value=config.cp_lambdas, seed=seeds)
        + training.member_grid(method=("vib",), value=config.betas, seed=seeds)
    )


def make_loss_fn(ensemble: training.Ensemble, seed: int):
    """``vib_loss + λ · confidence_penalty`` with per-member ``beta``, ``lam`` and ``noise``;
    the sampling key is a function of (seed index, step), shared by every setting."""

    def apply_fn(params, batch):
        return ensemble.module(params)(batch["image"], batch["key"], noise=batch["noise"])

    def loss(logits, labels, mean, log_var, beta):
        return entjax.vib_loss(logits, labels, mean, log_var, beta=beta).loss

    def penalty(logits, lam):
        return lam * entjax.confidence_penalty(logits)

    objective = entjax.make_objective(
        apply_fn,
        {
            "vib": entjax.term(loss, "logits", "label", "mean", "log_var", "beta"),
            "penalty": entjax.term(penalty, "logits", "lam"),
        },
        mask="mask",
    )

    def loss_fn(params, batch, step=0):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), batch["seed"]), step)
        return objective(params, {**batch, "key": key}, step)

    return loss_fn


def make_evaluator(
    ensemble: training.Ensemble, label_marginal: np.ndarray, num_samples: int, seed: int
):
    """Jitted ``(params, noise, x, y) -> {izx_bits, izy_bits, ce_bits, accuracy, nll, ece}``,
    each ``(K,)``; the predictive distribution is the mean of the per-sample softmaxes."""
    marginal = jnp.asarray(label_marginal, jnp.float32)

    def one(params, noise, x, y, key):
        out = ensemble.module(params)(x, key, num_samples, noise)  # logits (S, n, C)
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
        log_pred = jax.nn.logsumexp(jax.nn.log_softmax(out["logits"]), axis=0) - math.log(
            num_samples
        )
        return {
            "izx_bits": jnp.mean(b.izx_upper),
            "izy_bits": jnp.mean(b.izy_lower),
            "ce_bits": jnp.mean(b.ce) / LOG2,
            "accuracy": jnp.mean(jnp.argmax(log_pred, -1) == y),
            "nll": jnp.mean(entjax.negative_log_likelihood(log_pred, y)),
            "ece": entjax.expected_calibration_error(log_pred, y, num_bins=NUM_BINS),
        }

    vone = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None, None)))
    key = jax.random.key(seed + 7919)

    def evaluate(params, noise, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        out = vone(params, jnp.asarray(noise), jnp.asarray(x), jnp.asarray(y), key)
        return {k: np.asarray(to_host(v), np.float64) for k, v in out.items()}

    return evaluate


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Train every (method, setting, seed); choose β and λ on validation; report on test."""
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    grid = member_grid(config)

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return VIB(data.num_classes, latent_dim=config.latent_dim, width=config.width, rngs=rngs)

    base = training.Members.create(model_fn, config.seeds, seed=config.seed)
    members = sweeps.members_from(base, [m["seed"] for m in grid])
    marginal = np.bincount(data.y_train, minlength=data.num_classes) / len(data.y_train)
    evaluator = make_evaluator(members.ensemble, marginal, config.eval_samples, config.seed)
    inputs = {
        "beta": np.array([m["value"] if m["method"] == "vib" else 0.0 for m in grid], np.float32),
        "lam": np.array([m["value"] if m["method"] == "cp" else 0.0 for m in grid], np.float32),
        "noise": np.array([m["method"] == "vib" for m in grid], np.float32),
        "seed": np.array([m["seed"] for m in grid], np.int32),
    }
    result = members.train_sweep(
        make_loss_fn(members.ensemble, config.seed),
        config,
        options,
        data={"image": data.x_train, "label": data.y_train},
        description=NAME,
        member_inputs=inputs,
        evaluate=lambda p: evaluator(p, inputs["noise"], data.x_val, data.y_val),
        member_names=training.member_names(grid),
        probe=entropy_curves.EntropyProbe(
            data.x_train,
            data.x_val,
            data.y_val,
            apply=mean_logits(members.ensemble),
        ),
    )
    splits = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}
    final = {s: evaluator(result.params, inputs["noise"], *xy) for s, xy in splits.items()}
    final["val"] = result.curves.final()
    sizes = {"val": len(data.y_val), **{s: len(xy[1]) for s, xy in splits.items()}}
    ib = summarise(final, grid, config, marginal, sizes)
    ib.update(curves(result.curves, grid, config))
    block = entropy_curves.summarise(
        result.curves,
        result.loss_history,
        series={
            f"{METHOD_LABELS[m]}{'' if m == 'det' else ' ' + symbol + f'={v:g}'}": list(
                sweeps.where(grid, method=m, value=v)
            )
            for m, symbol, v in (
                ("det", "", 0.0),
                ("cp", "λ", ib["chosen"]["cp"]),
                ("vib", "β", ib["chosen"]["vib"]),
            )
        },
        max_entropy=math.log(data.num_classes),
    )
    return Outcome({"ib": ib, "entropy_curves": {"digits": block}})


def mean_logits(ensemble: training.Ensemble):
    """Per-member logits of the decoder at the posterior mean ``z = μ(x)``: the deterministic
    members' prediction, and the noise-free one of the VIB members (the probe sees no noise
    switch, so every member is probed the same way)."""

    def apply(params, x):
        model = ensemble.module(params)
        return model.decoder(model.encode(x)[0])

    return apply


def summarise(final, grid, config: Config, marginal: np.ndarray, sizes: dict) -> dict[str, Any]:
    """Choices on validation; the method table and the β sweep on test (and train)."""
    beta, beta_val = sweeps.choose(
        final["val"]["nll"], grid, "value", config.betas, higher_is_better=False, method="vib"
    )
    lam, lam_val = sweeps.choose(
        final["val"]["nll"], grid, "value", config.cp_lambdas, higher_is_better=False, method="cp"
    )
    chosen = {"det": 0.0, "cp": lam, "vib": beta}

    def sweep(split: str) -> dict[str, dict]:
        return {
            m: sweeps.intervals(
                final[split][m],
                grid,
                "value",
                config.betas,
                bounds=BOUNDS.get(m, (None, None)),
                method="vib",
            )
            for m in NAMES
        }

    methods = {
        method: {
            m: sweeps.interval(
                final["test"][m],
                grid,
                bounds=BOUNDS.get(m, (None, None)),
                method=method,
                value=chosen[method],
            )
            for m in NAMES
        }
        for method in METHODS
    }
    return {
        "betas": list(config.betas),
        "cp_lambdas": list(config.cp_lambdas),
        "h_y_bits": float(-(marginal * np.log2(marginal)).sum()),
        "log2_n": {split: math.log2(n) for split, n in sizes.items()},
        "chosen": chosen,
        "val_nll": {"vib": beta_val, "cp": lam_val},
        "test": sweep("test"),
        "train": sweep("train"),
        "methods": methods,
        "comparisons": comparisons(final["test"], grid, chosen),
        "members": [
            {**m, **{f"test_{n_}": float(final["test"][n_][i]) for n_ in NAMES}}
            for i, m in enumerate(grid)
        ],
    }


def comparisons(test: dict, grid: list[dict], chosen: dict) -> list[dict[str, Any]]:
    """Paired differences by seed between the chosen VIB and the two baselines, and between the
    baselines."""
    out = []
    for a, b in (("vib", "det"), ("vib", "cp"), ("cp", "det")):
        row = {"a": a, "b": b}
        for m in ("accuracy", "nll", "ece"):
            row[m] = sweeps.compare(
                test[m],
                grid,
                {"method": a, "value": chosen[a]},
                {"method": b, "value": chosen[b]},
                names=(METHOD_LABELS[a], METHOD_LABELS[b]),
                higher_is_better=m == "accuracy",
            )
        out.append(row)
    return out


def curves(c: training.Curves, grid: list[dict], config: Config) -> dict[str, Any]:
    """Validation curves per β (mean over seeds)."""
    idx = [sweeps.where(grid, method="vib", value=b) for b in config.betas]
    return {
        "eval_steps": c.steps,
        "curves": {
            m: [c.metrics[m][:, i].mean(1) for i in idx]
            for m in ("izx_bits", "izy_bits", "accuracy")
        },
    }


# --------------------------------------------------------------------------- outputs


def _capped(col: dict[str, list], i: int, ceiling: float) -> str:
    return f"{min(col['mean'][i], ceiling):.2f}"


def _sweep_table(r: dict[str, Any]) -> str:
    test, train = r["test"], r["train"]
    rows = [
        [
            f"{beta:g}",
            sweeps.entry(test["accuracy"], i),
            sweeps.entry(test["izx_bits"], i),
            _capped(test["izx_bits"], i, r["log2_n"]["test"]),
            sweeps.entry(test["izy_bits"], i),
            sweeps.entry(train["izx_bits"], i),
            _capped(train["izx_bits"], i, r["log2_n"]["train"]),
            sweeps.entry(train["izy_bits"], i),
        ]
        for i, beta in enumerate(r["betas"])
    ]
    headers = [
        "β",
        "test accuracy",
        "I(X;Z) ≤ KL (test)",
        "min(KL, log2 N) (test)",
        "I(Z;Y) ≥ (test)",
        "I(X;Z) ≤ KL (train)",
        "min(KL, log2 N) (train)",
        "I(Z;Y) ≥ (train)",
    ]
    return outputs.markdown_table(headers, rows, digits=3)


def _method_table(r: dict[str, Any]) -> str:
    setting = {
        "det": "β = 0, no noise",
        "cp": f"λ = {r['chosen']['cp']:g}",
        "vib": f"β = {r['chosen']['vib']:g}",
    }
    rows = [
        [METHOD_LABELS[m], setting[m], *(r["methods"][m][k] for k in ("accuracy", "nll", "ece"))]
        for m in METHODS
    ]
    return outputs.markdown_table(
        ["method", "setting (validation)", "test accuracy", "test NLL (nats)", "test ECE"],
        rows,
        digits=3,
    )


def _comparison_lines(r: dict[str, Any]) -> list[str]:
    return [
        f"- {METHOD_LABELS[row['a']]} − {METHOD_LABELS[row['b']]}: "
        + "; ".join(
            f"{label} {outputs.fmt(row[m], 3)} ({row[m]['verdict']})"
            for m, label in (("accuracy", "accuracy"), ("nll", "NLL"), ("ece", "ECE"))
        )
        + "."
        for row in r["comparisons"]
    ]


def report(results: dict[str, Any]) -> str:
    r, config = results["ib"], results["config"]
    ceil = r["log2_n"]
    return "\n".join(
        [
            "# Variational information bottleneck on digits",
            "",
            f"Latent dim {config['latent_dim']}, encoder MLP width {config['width']}, "
            f"{config['steps']} Adam steps, {config['seeds']} seeds per setting; mean [95% "
            f"interval] over seeds (Student t, ddof = 1). H(Y) = {r['h_y_bits']:.3f} bits (the "
            f"ceiling of I(Z;Y)); the ceiling of I(X;Z) is log2 N = {ceil['test']:.2f} bits for "
            f"the test split and {ceil['train']:.2f} for the training split (X uniform over the "
            "images), so a KL bound above it only says the rate is at the ceiling.",
            "",
            "## Methods (β and λ chosen by validation NLL; test split)",
            "",
            _method_table(r),
            "",
            "Paired differences by seed (a claim only where the interval excludes 0):",
            "",
            *_comparison_lines(r),
            "",
            "## The β sweep",
            "",
            _sweep_table(r),
        ]
    )


def _plane_axes(ax: Any, r: dict[str, Any]) -> Any:
    betas = np.asarray(r["betas"], float)
    izx = np.asarray(r["test"]["izx_bits"]["mean"], float)
    izy = np.asarray(r["test"]["izy_bits"]["mean"], float)
    sc = ax.scatter(izx, izy, c=np.log10(betas), cmap="viridis", zorder=3, label="test")
    ax.plot(izx, izy, "k-", lw=0.6, alpha=0.5)
    tr_izx = np.asarray(r["train"]["izx_bits"]["mean"], float)
    tr_izy = np.asarray(r["train"]["izy_bits"]["mean"], float)
    ax.scatter(tr_izx, tr_izy, c=np.log10(betas), cmap="viridis", marker="x", label="train")
    ax.axhline(r["h_y_bits"], color="gray", ls=":", lw=0.8, label="H(Y)")
    ax.axvline(r["log2_n"]["test"], color="C3", ls="--", lw=0.9, label="log2 N (test)")
    ax.axvline(r["log2_n"]["train"], color="C1", ls="--", lw=0.9, label="log2 N (train)")
    ax.set_xscale("log")
    ax.set(xlabel="I(X;Z) upper bound (bits)", ylabel="I(Z;Y) lower bound (bits)")
    ax.set_title("Information plane (o test, x train)")
    ax.legend(fontsize=7, loc="lower right")
    return sc


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    r = results["ib"]
    betas = np.asarray(r["betas"], float)
    fig, axes = outputs.new_figure(1, 3, size=(4.4, 3.6))
    fig.colorbar(_plane_axes(axes[0, 0], r), ax=axes[0, 0], label="log10 β")
    for ax, m, label in (
        (axes[0, 1], "izx_bits", "I(X;Z) upper bound (test, bits)"),
        (axes[0, 2], "accuracy", "test accuracy"),
    ):
        col = {k: np.asarray(v, float) for k, v in r["test"][m].items() if k != "n"}
        err = np.stack([col["mean"] - col["low"], col["high"] - col["mean"]])
        ax.errorbar(betas, col["mean"], yerr=err, marker="o", capsize=2, label="VIB")
        ax.set(xscale="log", xlabel="β", ylabel=label)
    axes[0, 1].axhline(r["log2_n"]["test"], color="C3", ls="--", lw=0.9, label="log2 N (test)")
    axes[0, 1].set_yscale("log")
    axes[0, 1].legend(fontsize=7)
    for i, m in enumerate(("det", "cp")):
        acc = r["methods"][m]["accuracy"]
        axes[0, 2].axhspan(
            acc["low"],
            acc["high"],
            color=f"C{i + 1}",
            alpha=0.2,
            label=f"{METHOD_LABELS[m]} (95% interval)",
        )
    axes[0, 2].axvline(r["chosen"]["vib"], color="0.4", ls=":", lw=0.9, label="β chosen (val)")
    axes[0, 2].legend(fontsize=7)
    fig.suptitle("Variational information bottleneck on digits (bars: 95% intervals over seeds)")
    fig.tight_layout()
    out = {"information_plane": fig}

    fig, axes = outputs.new_figure(1, 2, size=(4.2, 3.2))
    for b, izx_c, acc_c in zip(
        betas, r["curves"]["izx_bits"], r["curves"]["accuracy"], strict=True
    ):
        axes[0, 0].plot(r["eval_steps"], izx_c, label=f"β={b:g}")
        axes[0, 1].plot(r["eval_steps"], acc_c, label=f"β={b:g}")
    axes[0, 0].axhline(r["log2_n"]["val"], color="C3", ls="--", lw=0.9, label="log2 N (val)")
    axes[0, 0].set(ylabel="I(X;Z) upper bound (validation, bits)", yscale="log")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].set(ylabel="validation accuracy")
    for ax in axes[0]:
        ax.set_xlabel("step")
    axes[0, 1].legend(fontsize=7)
    fig.tight_layout()
    out["curves"] = fig
    return out


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
