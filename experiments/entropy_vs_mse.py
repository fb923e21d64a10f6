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
   (:mod:`experiments.ensemble`). Test accuracy and NLL are recorded every ``--eval-every`` steps.

Run ``python -m experiments.entropy_vs_mse`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``gradients.png`` and ``training.png`` to ``--out``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import entjax
from experiments import data as data_lib
from experiments import ensemble as ens
from experiments import models, reporting, research

NAME = "entropy_vs_mse"
LOSSES = ("ce", "mse")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    num_classes: int = 10  # classes in the gradient study
    steps: int = 600
    batch_size: int = 64
    learning_rate: float = 0.1
    optimizer: str = "sgd"  # "sgd" or "adam"
    width: int = 64
    seeds: int = 3  # members per (loss, init) pair
    logit_scale: float = 10.0  # the overconfident initialisation multiplies logits by this
    eval_every: int = 50
    target_accuracy: float = 0.9


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
    return research.member_grid(
        loss=LOSSES, init=("standard", "overconfident"), seed=tuple(range(config.seeds))
    )


def make_loss_fn(ensemble: ens.Ensemble):
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


def train_and_evaluate(
    config: Config,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after_step: int | None = None,
) -> dict[str, Any] | None:
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    member_list = members(config)
    k = len(member_list)
    mesh = research.mesh_for(k)

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return models.build_model(
            "mlp", num_classes=data.num_classes, width=config.width, rngs=rngs
        )

    ensemble = ens.init_ensemble(model_fn, k, seed=config.seed, mesh=mesh)
    if config.optimizer == "sgd":
        tx = optax.sgd(config.learning_rate)
    elif config.optimizer == "adam":
        tx = optax.adam(config.learning_rate)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; expected 'sgd' or 'adam'")
    opt_state = ens.init_opt_state(tx, ensemble.params, mesh)
    step_fn = ens.make_train_step(make_loss_fn(ensemble), tx, mesh)
    scale = np.array(
        [config.logit_scale if m["init"] == "overconfident" else 1.0 for m in member_list],
        np.float32,
    )
    member_inputs = {
        "use_mse": np.array([m["loss"] == "mse" for m in member_list], np.float32),
        "logit_scale": scale,
    }
    train_data = {"image": data.x_train, "label": data.y_train}
    n = len(data.y_train)
    eval_logits = ens.make_eval_fn(ensemble.apply, mesh)

    def evaluate(params) -> dict[str, np.ndarray]:
        logits = ens.predict(eval_logits, params, data.x_test, mesh) * scale[:, None, None]
        acc = (logits.argmax(-1) == data.y_test[None]).mean(-1)
        nll = np.asarray(
            jax.jit(entjax.softmax_cross_entropy_with_integer_labels)(
                jnp.asarray(logits), jnp.asarray(np.broadcast_to(data.y_test, logits.shape[:2]))
            )
        ).mean(-1)
        return {"test_accuracy": acc, "test_nll": nll}

    result, curves = research.train_with_evals(
        step_fn=step_fn,
        params=ensemble.params,
        opt_state=opt_state,
        data=train_data,
        indices_fn=lambda s: data_lib.ensemble_batch_indices(
            config.seed, s, num_members=k, n=n, batch_size=config.batch_size
        ),
        num_steps=config.steps,
        mesh=mesh,
        eval_fn=evaluate,
        eval_every=config.eval_every,
        checkpoint_dir=f"{out_dir}/checkpoints",
        member_inputs=member_inputs,
        resume=resume,
        run_config=dataclasses.asdict(config),
        progress=progress,
        description=NAME,
        stop_after_step=stop_after_step,
    )
    if result.stopped_early:
        return None
    groups = {}
    for loss in LOSSES:
        for init in ("standard", "overconfident"):
            idx = [i for i, m in enumerate(member_list) if m["loss"] == loss and m["init"] == init]
            acc = curves.metrics["test_accuracy"][:, idx]  # (T, seeds)
            nll = curves.metrics["test_nll"][:, idx]
            groups[f"{loss}/{init}"] = {
                "loss": loss,
                "init": init,
                "final_test_accuracy": reporting.mean_std(acc[-1]),
                "final_test_nll": reporting.mean_std(nll[-1]),
                "test_accuracy_curve": acc.mean(1),
                "test_nll_curve": nll.mean(1),
                "train_loss_curve": result.loss_history[:, idx].mean(1),
                "steps_to_target": [
                    steps_to_reach(curves.steps, acc[:, j], config.target_accuracy)
                    for j in range(len(idx))
                ],
            }
    return {
        "members": member_list,
        "eval_steps": curves.steps,
        "groups": groups,
        "completed_steps": result.completed_steps,
    }


# --------------------------------------------------------------------------- outputs


def make_report(results: dict[str, Any], config: Config) -> str:
    g = results["gradients"]
    rows = [
        [
            f"{t:g}",
            f"{q:.4f}",
            f"{py:.2e}",
            f"{gc:.4f}",
            f"{gm:.2e}",
        ]
        for t, q, py, gc, gm in zip(
            g["wrong_logit"],
            g["wrong_prob"],
            g["true_prob"],
            g["grad_ce"],
            g["grad_mse"],
            strict=True,
        )
    ]
    lines = [
        "# Cross-entropy vs MSE for classification",
        "",
        f"## Gradient w.r.t. the true-class logit ({config.num_classes} classes)",
        "",
        "One wrong class has logit t, the others (true class included) 0.",
        "",
        reporting.markdown_table(
            ["wrong logit t", "p(wrong)", "p(true)", "dCE/dz_true", "dMSE/dz_true"], rows
        ),
        "",
        f"Largest |jax.grad − closed form|: {g['max_abs_error']:.2e}.",
        "",
    ]
    if "training" in results:
        tr = results["training"]
        target = config.target_accuracy
        rows = []
        for name, grp in tr["groups"].items():
            reached = [s for s in grp["steps_to_target"] if s is not None]
            rows.append(
                [
                    name,
                    grp["final_test_accuracy"],
                    grp["final_test_nll"],
                    f"{len(reached)}/{len(grp['steps_to_target'])}"
                    + (f", median {int(np.median(reached))}" if reached else ""),
                ]
            )
        lines += [
            f"## Training on digits ({config.optimizer}, lr {config.learning_rate}, "
            f"{config.steps} steps, {config.seeds} seeds)",
            "",
            reporting.markdown_table(
                [
                    "loss / init",
                    "test accuracy",
                    "test NLL",
                    f"seeds reaching {target:.0%} (steps)",
                ],
                rows,
            ),
            "",
            f"Overconfident init multiplies the logits by {config.logit_scale:g}.",
        ]
    return "\n".join(lines)


def make_figures(results: dict[str, Any]) -> dict[str, Any]:
    g = results["gradients"]
    fig, axes = reporting.new_figure(1, 1, size=(5.0, 3.4))
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
        fig, axes = reporting.new_figure(1, 2, size=(4.6, 3.4))
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


def run(
    config: Config,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    smoke: bool = False,
    train: bool = True,
    stop_after_step: int | None = None,
) -> dict[str, Any] | None:
    """Run both parts and write the outputs; returns the results (``None`` if stopped early)."""
    started = time.time()
    wrong = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0)
    grads = gradient_table(wrong, config.num_classes)
    grads["max_abs_error"] = max(
        max(
            abs(a - b) for a, b in zip(grads["grad_ce"], grads["grad_ce_closed_form"], strict=True)
        ),
        max(
            abs(a - b)
            for a, b in zip(grads["grad_mse"], grads["grad_mse_closed_form"], strict=True)
        ),
    )
    results: dict[str, Any] = {"experiment": NAME, "gradients": grads}
    if train:
        training = train_and_evaluate(
            config, out_dir, resume=resume, progress=progress, stop_after_step=stop_after_step
        )
        if training is None:
            return None
        results["training"] = training
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
        add_arguments=lambda parser: parser.add_argument(
            "--gradients-only", action="store_true", help="skip the training part"
        ),
        run_kwargs=lambda args: {"train": not args.gradients_only},
    )


if __name__ == "__main__":
    main()
