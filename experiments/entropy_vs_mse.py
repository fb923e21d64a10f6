"""Why cross-entropy and not MSE for classification: gradients and training speed.

Two parts:

1. **Gradient at a confidently wrong prediction** (no training). Ten classes, true class 0, one
   wrong class with logit ``t`` and the rest 0, so the wrong class gets probability
   :math:`q = e^t / (e^t + 9)`. With :math:`p = \\mathrm{softmax}(z)` and one-hot :math:`y`:

   * cross-entropy :math:`-\\log p_y` has :math:`\\partial/\\partial z_y = p_y - 1 \\to -1`;
   * MSE on the probabilities (the Brier score) :math:`\\sum_c (p_c - y_c)^2` has
     :math:`\\partial/\\partial z_y = 2 p_y (2 p_y - 1 - \\sum_c p_c^2)`, which goes to 0
     as :math:`p_y \\to 0`: the more confidently wrong the model, the *less* MSE pushes the
     true logit up.

   Closed forms are checked against ``jax.grad``.

2. **Training speed** on digits: MLP members trained with CE or MSE (Brier) by plain SGD, from the
   standard initialisation and from an overconfident one (logits multiplied by
   ``--logit-scale``), several seeds each, all members vmapped in one compiled step
   (:mod:`experiments.core.training`). Test accuracy and NLL are recorded every
   ``--eval-every`` steps.

Run ``python -m experiments.entropy_vs_mse`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``gradients.png`` and ``training.png`` to ``--out``.
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
import optax
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
from experiments.core.runner import Experiment, Outcome

NAME = "entropy_vs_mse"
LOSSES = ("ce", "mse")


OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    num_classes: int = option(10, "classes in the gradient study")
    steps: int = option(600, "training steps")
    learning_rate: float = option(0.1, "learning rate (constant)")
    optimizer: str = option("sgd", "optimizer", choices=OPTIMIZERS)
    width: int = option(64, "MLP width")
    seeds: int = option(3, "members per (loss, init) pair")
    logit_scale: float = option(10.0, "the overconfident initialisation multiplies logits by this")
    eval_every: int = option(50, "steps between evaluations (and checkpoints)")
    target_accuracy: float = option(0.9, "test accuracy whose first step is reported")
    gradients_only: bool = option(False, "skip the training part")

    def __post_init__(self):
        super().__post_init__()
        cli.require_positive(self, "logit_scale")
        cli.require_choice(self, "optimizer", OPTIMIZERS)
        cli.require(self.width >= 1, "--width must be >= 1")
        cli.require(self.num_classes >= 2, "--num-classes must be >= 2")
        cli.require(0.0 < self.target_accuracy <= 1.0, "--target-accuracy must lie in (0, 1]")


SMOKE = {"steps": 20, "batch_size": 32, "width": 16, "seeds": 1, "eval_every": 10}


# --------------------------------------------------------------------------- part 1: gradients


def gradient_table(wrong_logits: Sequence[float], num_classes: int = 10) -> dict[str, list[float]]:
    """CE and MSE gradients w.r.t. the true logit (class 0) as the wrong class (1) grows."""

    def logits_for(t: jax.Array) -> jax.Array:
        return jnp.zeros(num_classes, jnp.float64).at[1].set(t)

    def ce(z: jax.Array) -> jax.Array:
        return entjax.softmax_cross_entropy_with_integer_labels(z, 0)

    def mse(z: jax.Array) -> jax.Array:
        return entjax.brier_score(z, 0)

    grad_ce = jax.jit(jax.grad(ce))
    grad_mse = jax.jit(jax.grad(mse))
    rows: dict[str, list[float]] = {
        k: []
        for k in (
            "wrong_logit",
            "wrong_prob",
            "true_prob",
            "grad_ce",
            "grad_mse",
            "grad_ce_closed_form",
            "grad_mse_closed_form",
            "ce",
            "mse",
        )
    }
    with jax.enable_x64(True):
        for t in wrong_logits:
            z = logits_for(jnp.float64(t))
            # Closed forms, written out with numpy in float64.
            e = np.exp(np.asarray(z) - float(np.max(np.asarray(z))))
            p = e / e.sum()
            rows["wrong_logit"].append(float(t))
            rows["wrong_prob"].append(float(p[1]))
            rows["true_prob"].append(float(p[0]))
            rows["grad_ce"].append(float(grad_ce(z)[0]))
            rows["grad_mse"].append(float(grad_mse(z)[0]))
            rows["grad_ce_closed_form"].append(float(p[0] - 1.0))
            rows["grad_mse_closed_form"].append(float(2 * p[0] * (2 * p[0] - 1 - np.sum(p**2))))
            rows["ce"].append(float(ce(z)))
            rows["mse"].append(float(mse(z)))
    return rows


# --------------------------------------------------------------------------- part 2: training


def members(config: Config) -> list[dict[str, Any]]:
    return training.member_grid(
        loss=LOSSES, init=("standard", "overconfident"), seed=tuple(range(config.seeds))
    )


def make_loss_fn(ensemble: training.Ensemble):
    """Per-member objective: the batch field ``use_mse`` (0 or 1, one value per member) switches
    the CE term off and the MSE (Brier) term on; ``logit_scale`` multiplies the logits."""

    def apply_fn(params, batch):
        return {"logits": ensemble.apply(params, batch["image"]) * batch["logit_scale"]}

    def gated(loss_fn, on_when_mse: bool):
        def fn(logits, labels, use_mse):
            on = use_mse > 0 if on_when_mse else use_mse <= 0
            return jnp.where(on, loss_fn(logits, labels), 0.0)

        return fn

    return entjax.make_objective(
        apply_fn,
        {
            "ce": entjax.term(
                gated(entjax.softmax_cross_entropy_with_integer_labels, False),
                "logits",
                "label",
                "use_mse",
            ),
            "mse": entjax.term(gated(entjax.brier_score, True), "logits", "label", "use_mse"),
        },
        mask="mask",
    )


def steps_to_reach(steps: Sequence[int], accuracy: np.ndarray, target: float) -> int | None:
    """First evaluated step at which ``accuracy`` reaches ``target`` (None if never)."""
    hit = np.nonzero(np.asarray(accuracy) >= target)[0]
    return int(steps[hit[0]]) if len(hit) else None


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Part 1 (gradients, closed forms checked) and, unless ``gradients_only``, part 2."""
    results: dict[str, Any] = {"gradients": gradient_study(config.num_classes)}
    if not config.gradients_only:
        results["training"] = train_losses(config, options)
        results["entropy_curves"] = {"digits": results["training"].pop("entropy_curves")}
    return Outcome(results)


def gradient_study(num_classes: int) -> dict[str, Any]:
    """:func:`gradient_table` over a range of wrong logits, with its largest error."""
    grads: dict[str, Any] = gradient_table(
        (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0), num_classes
    )
    errors = [
        abs(a - b)
        for kind in ("ce", "mse")
        for a, b in zip(grads[f"grad_{kind}"], grads[f"grad_{kind}_closed_form"], strict=True)
    ]
    grads["max_abs_error"] = max(errors)
    return grads


def train_losses(config: Config, options: cli.RunOptions) -> dict[str, Any]:
    """Train every (loss, init, seed) member on digits; test accuracy and NLL curves."""
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    grid = members(config)

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return models.build_model(
            "mlp", num_classes=data.num_classes, width=config.width, rngs=rngs
        )

    ensemble = training.Members.create(model_fn, len(grid), seed=config.seed)
    tx = {"sgd": optax.sgd, "adam": optax.adam}[config.optimizer](config.learning_rate)
    scale = np.array(
        [config.logit_scale if m["init"] == "overconfident" else 1.0 for m in grid], np.float32
    )
    test_nll = jax.jit(entjax.softmax_cross_entropy_with_integer_labels)

    def evaluate(params) -> dict[str, np.ndarray]:
        logits = ensemble.predict(params, data.x_test) * scale[:, None, None]
        labels = np.broadcast_to(data.y_test, logits.shape[:2])
        nll = np.asarray(test_nll(jnp.asarray(logits), jnp.asarray(labels))).mean(-1)
        return {"test_accuracy": (logits.argmax(-1) == data.y_test[None]).mean(-1), "test_nll": nll}

    result = ensemble.train_sweep(
        make_loss_fn(ensemble.ensemble),
        config,
        options,
        data={"image": data.x_train, "label": data.y_train},
        tx=tx,
        description=NAME,
        member_inputs={
            "use_mse": np.array([m["loss"] == "mse" for m in grid], np.float32),
            "logit_scale": scale,
        },
        evaluate=evaluate,
        member_names=training.member_names(grid),
        probe=entropy_curves.EntropyProbe(
            data.x_train, data.x_val, data.y_val, postprocess=lambda out: out * scale[:, None, None]
        ),
    )
    summary = summarise(result, grid, config)
    series = {
        f"{m['loss']}/{m['init']}": [
            i for i, g in enumerate(grid) if g["loss"] == m["loss"] and g["init"] == m["init"]
        ]
        for m in grid
    }
    summary["entropy_curves"] = entropy_curves.summarise(
        result.curves, result.loss_history, series=series, max_entropy=math.log(data.num_classes)
    )
    return summary


def summarise(
    result: training.TrainResult, grid: list[dict[str, Any]], config: Config
) -> dict[str, Any]:
    """Per (loss, init): final test metrics over seeds, curves, steps to the target accuracy."""
    curves, groups = result.curves, {}
    for loss in LOSSES:
        for init in ("standard", "overconfident"):
            idx = [i for i, m in enumerate(grid) if m["loss"] == loss and m["init"] == init]
            acc = curves.metrics["test_accuracy"][:, idx]  # (T, seeds)
            nll = curves.metrics["test_nll"][:, idx]
            groups[f"{loss}/{init}"] = {
                "loss": loss,
                "init": init,
                "final_test_accuracy": metrics.mean_std(acc[-1]),
                "final_test_nll": metrics.mean_std(nll[-1]),
                "test_accuracy_curve": acc.mean(1),
                "test_nll_curve": nll.mean(1),
                "train_loss_curve": result.loss_history[:, idx].mean(1),
                "steps_to_target": [
                    steps_to_reach(curves.steps, acc[:, j], config.target_accuracy)
                    for j in range(len(idx))
                ],
            }
    return {
        "members": grid,
        "eval_steps": curves.steps,
        "groups": groups,
        "completed_steps": config.steps,
    }


# --------------------------------------------------------------------------- outputs


def _gradient_section(g: dict[str, Any], num_classes: int) -> list[str]:
    columns = zip(
        g["wrong_logit"], g["wrong_prob"], g["true_prob"], g["grad_ce"], g["grad_mse"], strict=True
    )
    rows = [
        [f"{t:g}", f"{q:.4f}", f"{py:.2e}", f"{gc:.4f}", f"{gm:.2e}"]
        for t, q, py, gc, gm in columns
    ]
    headers = ["wrong logit t", "p(wrong)", "p(true)", "dCE/dz_true", "dMSE/dz_true"]
    return [
        f"## Gradient w.r.t. the true-class logit ({num_classes} classes)",
        "",
        "One wrong class has logit t, the others (true class included) 0.",
        "",
        outputs.markdown_table(headers, rows),
        "",
        f"Largest |jax.grad − closed form|: {g['max_abs_error']:.2e}.",
        "",
    ]


def _training_section(tr: dict[str, Any], config: dict[str, Any]) -> list[str]:
    rows = []
    for name, grp in tr["groups"].items():
        reached = [s for s in grp["steps_to_target"] if s is not None]
        median = f", median {int(np.median(reached))}" if reached else ""
        count = f"{len(reached)}/{len(grp['steps_to_target'])}{median}"
        rows.append([name, grp["final_test_accuracy"], grp["final_test_nll"], count])
    target = f"seeds reaching {config['target_accuracy']:.0%} (steps)"
    return [
        f"## Training on digits ({config['optimizer']}, lr {config['learning_rate']}, "
        f"{config['steps']} steps, {config['seeds']} seeds)",
        "",
        outputs.markdown_table(["loss / init", "test accuracy", "test NLL", target], rows),
        "",
        f"Overconfident init multiplies the logits by {config['logit_scale']:g}.",
    ]


def report(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = ["# Cross-entropy vs MSE for classification", ""]
    lines += _gradient_section(results["gradients"], config["num_classes"])
    if "training" in results:
        lines += _training_section(results["training"], config)
    return "\n".join(lines)


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    g = results["gradients"]
    fig, axes = outputs.new_figure(1, 1, size=(5.0, 3.4))
    ax = axes[0, 0]
    ax.loglog(g["true_prob"], np.abs(g["grad_ce"]), "o-", label="cross-entropy")
    ax.loglog(g["true_prob"], np.abs(g["grad_mse"]), "s-", label="MSE (Brier)")
    ax.invert_xaxis()
    ax.set_xlabel("probability of the true class (→ more confidently wrong)")
    ax.set_ylabel("|dL / d true logit|")
    ax.set_title("Gradient at a confidently wrong prediction")
    ax.legend()
    figures = {"gradients": fig}
    if "training" in results:
        tr = results["training"]
        fig, axes = outputs.new_figure(1, 2, size=(4.6, 3.4))
        for name, grp in tr["groups"].items():
            style = "-" if grp["loss"] == "ce" else "--"
            axes[0, 0].plot(tr["eval_steps"], grp["test_accuracy_curve"], style, label=name)
            axes[0, 1].plot(tr["eval_steps"], grp["test_nll_curve"], style, label=name)
        axes[0, 0].set_ylabel("test accuracy")
        axes[0, 1].set_ylabel("test NLL (nats)")
        axes[0, 1].set_yscale("log")
        for ax in axes[0]:
            ax.set_xlabel("SGD step")
        axes[0, 0].legend(fontsize=8)
        fig.suptitle("CE vs MSE training on digits (mean over seeds)")
        figures["training"] = fig
    return figures


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
