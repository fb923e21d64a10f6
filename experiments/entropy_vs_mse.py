"""Why cross-entropy and not MSE for classification: gradients and training speed.

Two parts:

1. **Gradient at a confidently wrong prediction** (no training). Ten classes, true class 0, one
   wrong class with logit ``t`` and the rest 0, so the wrong class gets probability
   :math:`q = e^t / (e^t + 9)`. With :math:`p = \\mathrm{softmax}(z)` and one-hot :math:`y`:

   * cross-entropy :math:`-\\log p_y` has :math:`\\partial/\\partial z_y = p_y - 1 \\to -1`;
   * MSE on the probabilities (the Brier score) :math:`\\sum_c (p_c - y_c)^2` has
     :math:`\\partial/\\partial z_y = 2 p_y (2 p_y - 1 - \\sum_c p_c^2)`, which goes to 0
     as :math:`p_y \\to 0`: the more confidently wrong the model, the *less* MSE pushes the
     true logit up;
   * the square loss on the logits (Hui & Belkin 2021) :math:`\\frac1C \\sum_c (z_c - y_c)^2`
     has :math:`\\partial/\\partial z_y = \\frac2C (z_y - 1)`: ``-2/C`` here, whatever ``t``.

   Closed forms are checked against ``jax.grad``.

2. **Training speed** on digits: MLP members trained by plain SGD with cross-entropy, the Brier
   score ("MSE") or the square loss on logits, from the standard initialisation and from an
   **overconfident start**: the initial last-layer weights and bias multiplied by
   ``--init-scale`` (the logits of the initial network scaled; training is free to shrink them
   again — no temperature is applied after step 0). Every (loss, start) pair trains at every
   learning rate of ``--learning-rates`` (one vmapped step; a member's rate scales its gradient,
   which for plain SGD *is* a per-member learning rate) and gets the rate with the highest mean
   validation accuracy over the evaluations after step 0 — the area under the validation curve,
   which rewards reaching a high accuracy early — chosen on the validation split only; a rate
   at which any seed's loss becomes non-finite is marked diverged and never chosen (the sweep
   goes on). Member ``s`` of every setting starts from the same parameters (before the
   last-layer scaling).

   Reported at the chosen rate, over ``--seeds`` seeds (mean and Student-t 95% interval,
   ``ddof = 1``): the number of steps until the test accuracy first reaches
   ``--target-accuracy`` (evaluated every ``--eval-every`` steps), the final test accuracy and
   NLL, and paired differences by seed against cross-entropy from the same start. A difference
   is claimed only where its interval excludes 0.

Run ``python -m experiments.entropy_vs_mse`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``gradients.png``, ``training.png`` and ``selection.png``.

References: Hui & Belkin, *Evaluation of Neural Architectures Trained with Square Loss vs
Cross-Entropy in Classification Tasks*, ICLR 2021. Brier, *Verification of forecasts expressed
in terms of probability*, 1950.
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
    models,
    outputs,
    sweeps,
    training,
)
from experiments.core.cli import option
from experiments.core.runner import Experiment, Outcome

NAME = "entropy_vs_mse"
LOSSES = ("ce", "mse", "square")
LOSS_LABELS = {"ce": "cross-entropy", "mse": "Brier (MSE on p)", "square": "square loss on z"}
INITS = ("standard", "overconfident")


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    num_classes: int = option(10, "classes in the gradient study")
    losses: tuple[str, ...] = option(LOSSES, "training losses: ce, mse (Brier), square (logits)")
    steps: int = option(500, "SGD steps")
    learning_rates: tuple[float, ...] = option(
        (0.03, 0.1, 0.3, 1.0, 3.0), "SGD learning-rate grid (constant rate; chosen on validation)"
    )
    width: int = option(64, "MLP width")
    seeds: int = option(10, "members per (loss, start, learning rate)")
    init_scale: float = option(10.0, "overconfident start: initial last-layer weights times this")
    eval_every: int = option(10, "steps between evaluations")
    checkpoint_every: int = option(250, "steps between checkpoints")
    target_accuracy: float = option(0.9, "test accuracy whose first step is reported")
    gradients_only: bool = option(False, "skip the training part")

    def __post_init__(self):
        super().__post_init__()
        cli.require_positive(self, "init_scale")
        cli.require_all_positive(self, "learning_rates")
        cli.require_choice(self, "losses", LOSSES)
        cli.require("ce" in self.losses, "--losses must include ce (the reference)")
        cli.require(self.width >= 1, "--width must be >= 1")
        cli.require(self.checkpoint_every >= 1, "--checkpoint-every must be >= 1")
        cli.require(self.num_classes >= 2, "--num-classes must be >= 2")
        cli.require(0.0 < self.target_accuracy <= 1.0, "--target-accuracy must lie in (0, 1]")

    @property
    def schedule(self) -> training.Schedule:
        every = self.checkpoint_every
        return training.Schedule(self.steps, eval_every=self.eval_every, checkpoint_every=every)


SMOKE = {
    "steps": 20,
    "batch_size": 32,
    "width": 16,
    "seeds": 2,
    "eval_every": 10,
    "learning_rates": (0.1, 1.0),
}


# --------------------------------------------------------------------------- part 1: gradients


def square_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Square loss on the logits (Hui & Belkin 2021, k = M = 1):
    :math:`\\frac1C \\sum_c (z_c - \\mathbb 1[c = y])^2` per example."""
    one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return jnp.mean((logits - one_hot) ** 2, axis=-1)


LOSS_FNS = {
    "ce": entjax.softmax_cross_entropy_with_integer_labels,
    "mse": entjax.brier_score,
    "square": square_loss,
}


def _closed_forms(z: np.ndarray) -> dict[str, float]:
    """Gradients w.r.t. the true logit (class 0), written out with numpy in float64."""
    e = np.exp(z - z.max())
    p = e / e.sum()
    return {
        "wrong_prob": float(p[1]),
        "true_prob": float(p[0]),
        "grad_ce_closed_form": float(p[0] - 1.0),
        "grad_mse_closed_form": float(2 * p[0] * (2 * p[0] - 1 - np.sum(p**2))),
        "grad_square_closed_form": float(2.0 * (z[0] - 1.0) / len(z)),
    }


def gradient_table(wrong_logits: Sequence[float], num_classes: int = 10) -> dict[str, list[float]]:
    """CE, Brier and square-loss gradients w.r.t. the true logit (class 0) as the wrong class
    (1) grows, from ``jax.grad`` and in closed form."""
    rows: dict[str, list[float]] = {}
    with jax.enable_x64(True):
        for t in wrong_logits:
            z = jnp.zeros(num_classes, jnp.float64).at[1].set(t)
            row = {"wrong_logit": float(t), **_closed_forms(np.asarray(z))}
            for name in LOSSES:
                fn = lambda z_, f=LOSS_FNS[name]: f(z_, jnp.asarray(0))
                row[name] = float(fn(z))
                row[f"grad_{name}"] = float(jax.grad(fn)(z)[0])
            for key, value in row.items():
                rows.setdefault(key, []).append(value)
    return rows


def gradient_study(num_classes: int) -> dict[str, Any]:
    """:func:`gradient_table` over a range of wrong logits, with its largest error."""
    grads: dict[str, Any] = gradient_table(
        (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0), num_classes
    )
    errors = [
        abs(a - b)
        for kind in LOSSES
        for a, b in zip(grads[f"grad_{kind}"], grads[f"grad_{kind}_closed_form"], strict=True)
    ]
    grads["max_abs_error"] = max(errors)
    return grads


# --------------------------------------------------------------------------- part 2: training


def member_grid(config: Config) -> list[dict[str, Any]]:
    return training.member_grid(
        loss=config.losses,
        init=INITS,
        lr=config.learning_rates,
        seed=tuple(range(config.seeds)),
    )


def make_loss_fn(ensemble: training.Ensemble, losses: Sequence[str]):
    """Per-member objective: ``batch["loss_id"]`` picks the loss (index into ``losses``) and the
    gradient is scaled by ``batch["lr"]`` while the value stays the loss itself:
    ``value = L``, ``∇ = lr · ∇L``, so ``optax.sgd(1.0)`` takes the step ``−lr · ∇L``.

    Members whose loss turns non-finite (too large a learning rate) are let diverge
    (``allow_divergence``); :func:`summarise` marks their setting diverged and never chooses
    it."""

    def apply_fn(params, batch):
        return {"logits": ensemble.apply(params, batch["image"])}

    def gated(index: int):
        def fn(logits, labels, loss_id):
            return jnp.where(loss_id == index, LOSS_FNS[losses[index]](logits, labels), 0.0)

        return fn

    terms = {
        name: entjax.term(gated(i), "logits", "label", "loss_id") for i, name in enumerate(losses)
    }
    objective = entjax.make_objective(apply_fn, terms, mask="mask")

    def loss_fn(params, batch, step=0):
        loss, aux = objective(params, batch, step)
        scaled = batch["lr"] * loss
        value = scaled + jax.lax.stop_gradient(loss - scaled)
        return value, aux

    return loss_fn


def scale_last_layer(params: nnx.State, scale: np.ndarray) -> nnx.State:
    """Multiply each member's ``head`` (last-layer) kernel and bias by ``scale[member]``."""

    def one(path, leaf):
        if any(getattr(k, "key", None) == "head" for k in path):
            return leaf * jnp.asarray(scale, leaf.dtype).reshape(-1, *[1] * (leaf.ndim - 1))
        return leaf

    return jax.tree_util.tree_map_with_path(one, params)


def steps_to_reach(steps: Sequence[int], accuracy: np.ndarray, target: float) -> float:
    """First evaluated step at which ``accuracy`` reaches ``target`` (NaN if never)."""
    hit = np.nonzero(np.asarray(accuracy) >= target)[0]
    return float(steps[hit[0]]) if len(hit) else math.nan


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Part 1 (gradients, closed forms checked) and, unless ``gradients_only``, part 2."""
    results: dict[str, Any] = {"gradients": gradient_study(config.num_classes)}
    if not config.gradients_only:
        results["training"] = train_losses(config, options)
        results["entropy_curves"] = {"digits": results["training"].pop("entropy_curves")}
    return Outcome(results)


def build_members(config: Config, grid: list[dict], num_classes: int) -> training.Members:
    """Member (loss, start, lr, seed) starts from seed ``seed``'s parameters, its last layer
    scaled by ``init_scale`` for the overconfident start."""

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return models.build_model("mlp", num_classes=num_classes, width=config.width, rngs=rngs)

    base = training.Members.create(model_fn, config.seeds, seed=config.seed)
    members = sweeps.members_from(base, [m["seed"] for m in grid])
    scale = np.array([config.init_scale if m["init"] == "overconfident" else 1.0 for m in grid])
    params = scale_last_layer(members.ensemble.params, scale)
    params = jax.device_put(params, training.member_sharding(members.mesh))
    return training.Members(dataclasses.replace(members.ensemble, params=params), members.mesh)


def train_losses(config: Config, options: cli.RunOptions) -> dict[str, Any]:
    """Train every (loss, start, lr, seed) member; choose lr on validation; test summaries."""
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    grid = member_grid(config)
    members = build_members(config, grid, data.num_classes)
    x_eval = np.concatenate([data.x_val, data.x_test])
    y_eval = np.concatenate([data.y_val, data.y_test])
    n_val = len(data.y_val)
    nll = jax.jit(entjax.negative_log_likelihood)

    def evaluate(params) -> dict[str, np.ndarray]:
        logits = members.predict(params, x_eval)
        correct = logits.argmax(-1) == y_eval[None]
        losses = np.asarray(nll(logits, np.broadcast_to(y_eval, logits.shape[:2])))
        return {
            "val_accuracy": correct[:, :n_val].mean(-1),
            "test_accuracy": correct[:, n_val:].mean(-1),
            "test_nll": losses[:, n_val:].mean(-1),
        }

    result = members.train_sweep(
        make_loss_fn(members.ensemble, config.losses),
        config,
        options,
        data={"image": data.x_train, "label": data.y_train},
        tx=optax.sgd(1.0),
        description=NAME,
        member_inputs={
            "loss_id": np.array([config.losses.index(m["loss"]) for m in grid], np.int32),
            "lr": np.array([m["lr"] for m in grid], np.float32),
        },
        evaluate=evaluate,
        member_names=training.member_names(grid),
        probe=entropy_curves.EntropyProbe(data.x_train, data.x_val, data.y_val),
        allow_divergence=True,
    )
    summary = summarise(result, grid, config)
    series = {
        f"{g['loss']}/{g['init']}": list(
            sweeps.where(grid, loss=g["loss"], init=g["init"], lr=g["chosen_lr"])
        )
        for g in summary["groups"].values()
    }
    summary["entropy_curves"] = entropy_curves.summarise(
        result.curves, result.loss_history, series=series, max_entropy=math.log(data.num_classes)
    )
    return summary


def summarise(
    result: training.TrainResult, grid: list[dict[str, Any]], config: Config
) -> dict[str, Any]:
    """Per (loss, start): the lr chosen on validation and, at it, the test summaries; paired
    differences against cross-entropy from the same start."""
    m, steps = result.curves.metrics, result.curves.steps
    diverged = result.diverged_at > 0
    criterion = m["val_accuracy"][1:].mean(0)  # area under the validation curve after step 0
    criterion = np.where(diverged, np.nan, criterion)  # a diverged setting is never chosen
    reach = np.array(
        [
            steps_to_reach(steps, m["test_accuracy"][:, i], config.target_accuracy)
            for i in range(len(grid))
        ]
    )
    values = {
        "steps_to_target": reach,
        "test_accuracy": m["test_accuracy"][-1],
        "test_nll": m["test_nll"][-1],
        "initial_val_entropy": m["entropy_val"][0],  # from the entropy probe: the start
    }
    groups, chosen = {}, {}
    for loss in config.losses:
        for init in INITS:
            lr, means = sweeps.choose(
                criterion,
                grid,
                "lr",
                config.learning_rates,
                higher_is_better=True,
                loss=loss,
                init=init,
            )
            chosen[loss, init] = lr
            groups[f"{loss}/{init}"] = group_summary(values, m, grid, loss, init, lr, means)
    return {
        "eval_steps": steps,
        "learning_rates": list(config.learning_rates),
        "groups": groups,
        "comparisons": comparisons(values, grid, config, chosen),
        "diverged": sorted(
            {(g["loss"], g["init"], g["lr"]) for g, d in zip(grid, diverged, strict=True) if d}
        ),
        "members": [
            {**g, "steps_to_target": reach[i], "diverged": bool(diverged[i])}
            for i, g in enumerate(grid)
        ],
    }


BOUNDS = {"test_accuracy": (0, 1), "test_nll": (0, None), "initial_val_entropy": (0, None)}


def group_summary(values, m, grid, loss, init, lr, means) -> dict[str, Any]:
    """One (loss, start) at its chosen lr: intervals of every value, curves (mean over seeds)."""
    setting = {"loss": loss, "init": init, "lr": lr}
    idx = sweeps.where(grid, **setting)
    acc = m["test_accuracy"][:, idx]
    return {
        **setting,
        "chosen_lr": lr,
        "val_criterion": means,
        "reached": int(np.isfinite(values["steps_to_target"][idx]).sum()),
        "seeds": len(idx),
        **{
            key: sweeps.interval(v, grid, bounds=BOUNDS.get(key, (None, None)), **setting)
            for key, v in values.items()
        },
        "test_accuracy_curve": acc.mean(1),
        "test_accuracy_low": acc.min(1),
        "test_accuracy_high": acc.max(1),
        "val_accuracy_curve": m["val_accuracy"][:, idx].mean(1),
    }


def comparisons(values, grid, config: Config, chosen) -> list[dict[str, Any]]:
    """Each other loss against cross-entropy from the same start, and each loss from the
    overconfident start against itself from the standard one, at their chosen rates."""
    pairs = []
    for init in INITS:
        for loss in (x for x in config.losses if x != "ce"):
            names = (f"{LOSS_LABELS[loss]} ({init})", f"cross-entropy ({init})")
            pairs.append(((loss, init), ("ce", init), names))
    for loss in config.losses:
        names = (f"{LOSS_LABELS[loss]} (overconfident)", f"{LOSS_LABELS[loss]} (standard)")
        pairs.append(((loss, "overconfident"), (loss, "standard"), names))
    return [compare_pair(values, grid, a, b, names, chosen) for a, b, names in pairs]


def compare_pair(values, grid, a, b, names, chosen) -> dict[str, Any]:
    """Paired differences by seed of (loss, start) ``a`` − ``b`` at their chosen rates."""
    wa = {"loss": a[0], "init": a[1], "lr": chosen[a]}
    wb = {"loss": b[0], "init": b[1], "lr": chosen[b]}
    row: dict[str, Any] = {"a": names[0], "b": names[1]}
    for key, higher in (("steps_to_target", False), ("test_accuracy", True), ("test_nll", False)):
        row[key] = sweeps.compare(values[key], grid, wa, wb, names=names, higher_is_better=higher)
    reach = values["steps_to_target"]
    both = np.isfinite(reach[sweeps.where(grid, **wa)]) & np.isfinite(
        reach[sweeps.where(grid, **wb)]
    )
    row["steps_pairs"], row["seeds"] = int(both.sum()), len(both)
    return row


# --------------------------------------------------------------------------- outputs


def _gradient_section(g: dict[str, Any], num_classes: int) -> list[str]:
    rows = [
        [f"{t:g}", f"{q:.4f}", f"{py:.2e}", f"{gc:.4f}", f"{gm:.2e}", f"{gs:.4f}"]
        for t, q, py, gc, gm, gs in zip(
            g["wrong_logit"],
            g["wrong_prob"],
            g["true_prob"],
            g["grad_ce"],
            g["grad_mse"],
            g["grad_square"],
            strict=True,
        )
    ]
    headers = [
        "wrong logit t",
        "p(wrong)",
        "p(true)",
        "dCE/dz_true",
        "dBrier/dz_true",
        "dSq/dz_true",
    ]
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


def _steps_cell(grp: dict[str, Any]) -> str:
    if grp["reached"] == grp["seeds"]:
        return outputs.fmt(grp["steps_to_target"], 0)
    return f"reached in {grp['reached']}/{grp['seeds']} seeds"


def _verdict_line(row: dict[str, Any]) -> str:
    d = row["steps_to_target"]
    if row["steps_pairs"] == row["seeds"]:
        parts = [f"steps to target {outputs.fmt(d, 0)}: {d['verdict']}"]
    else:
        parts = [f"steps to target: both reached it in {row['steps_pairs']}/{row['seeds']} seeds"]
    for key, label in (("test_accuracy", "final test accuracy"), ("test_nll", "final test NLL")):
        parts.append(f"{label} {outputs.fmt(row[key], 3)}: {row[key]['verdict']}")
    return f"- **{row['a']} − {row['b']}**: " + "; ".join(parts) + "."


def _training_section(tr: dict[str, Any], config: dict[str, Any]) -> list[str]:
    lrs = ", ".join(f"{lr:g}" for lr in tr["learning_rates"])
    rows = [
        [
            f"{LOSS_LABELS[g['loss']]} / {g['init']}",
            f"{g['chosen_lr']:g}",
            outputs.fmt(g["initial_val_entropy"], 3),
            _steps_cell(g),
            g["test_accuracy"],
            g["test_nll"],
        ]
        for g in tr["groups"].values()
    ]
    target = f"steps to {config['target_accuracy']:.0%} test accuracy"
    return [
        f"## Training on digits (SGD, {config['steps']} steps, {config['seeds']} seeds)",
        "",
        f"Learning rate per (loss, start) chosen from {{{lrs}}} by the mean validation accuracy "
        f"over the evaluations (every {config['eval_every']} steps); the overconfident start "
        f"multiplies the initial last-layer weights by {config['init_scale']:g}. Test numbers at "
        "the chosen rate, at the last step: mean [95% interval] over seeds. Entropy at step 0: "
        f"mean validation predictive entropy of the initial network, nats (log 10 = "
        f"{math.log(10):.3f}). Test NLL is that of softmax(z); the square loss on the logits "
        "does not fit probabilities, so its NLL is not a like-for-like number.",
        "",
        outputs.markdown_table(
            ["loss / start", "lr", "entropy at step 0", target, "test accuracy", "test NLL"], rows
        ),
        "",
        "Diverged at some seed, so never chosen: "
        + (", ".join(f"{a}/{b} at lr {c:g}" for a, b, c in tr["diverged"]) or "none")
        + ".",
        "",
        "Paired differences by seed (a claim only where the interval excludes 0):",
        "",
        *(_verdict_line(row) for row in tr["comparisons"]),
    ]


def report(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = ["# Cross-entropy vs MSE for classification", ""]
    lines += _gradient_section(results["gradients"], config["num_classes"])
    if "training" in results:
        lines += _training_section(results["training"], config)
    return "\n".join(lines)


def _gradient_figure(g: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, 1, size=(5.0, 3.4))
    ax = axes[0, 0]
    ax.loglog(g["true_prob"], np.abs(g["grad_ce"]), "o-", label="cross-entropy")
    ax.loglog(g["true_prob"], np.abs(g["grad_mse"]), "s-", label="MSE on p (Brier)")
    ax.loglog(g["true_prob"], np.abs(g["grad_square"]), "^-", label="square loss on z")
    ax.invert_xaxis()
    ax.set_xlabel("probability of the true class (→ more confidently wrong)")
    ax.set_ylabel("|dL / d true logit|")
    ax.set_title("Gradient at a confidently wrong prediction")
    ax.legend()
    return fig


def _training_figure(tr: dict[str, Any], target: float) -> Any:
    fig, axes = outputs.new_figure(1, len(INITS), size=(4.6, 3.4))
    for col, init in enumerate(INITS):
        ax = axes[0, col]
        for i, g in enumerate(x for x in tr["groups"].values() if x["init"] == init):
            label = f"{LOSS_LABELS[g['loss']]} (lr {g['chosen_lr']:g})"
            ax.plot(tr["eval_steps"], g["test_accuracy_curve"], color=f"C{i}", label=label)
            ax.fill_between(
                tr["eval_steps"],
                g["test_accuracy_low"],
                g["test_accuracy_high"],
                color=f"C{i}",
                alpha=0.15,
            )
        ax.axhline(target, color="0.4", ls=":", lw=0.8)
        ax.set(xlabel="SGD step", ylabel="test accuracy", title=f"{init} start", ylim=(0, 1))
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        "Test accuracy at the validation-chosen learning rate (mean; band: min–max over seeds)"
    )
    fig.tight_layout()
    return fig


def _selection_figure(tr: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, 1, size=(5.0, 3.4))
    ax = axes[0, 0]
    for i, g in enumerate(tr["groups"].values()):
        style = "-" if g["init"] == "standard" else "--"
        ax.plot(
            tr["learning_rates"],
            g["val_criterion"],
            style,
            marker="o",
            color=f"C{i // 2}",
            label=f"{g['loss']}/{g['init']}",
        )
    ax.set(
        xscale="log", xlabel="SGD learning rate", ylabel="mean validation accuracy over training"
    )
    ax.set_title("Learning-rate choice (validation split)")
    ax.legend(fontsize=7)
    return fig


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    out = {"gradients": _gradient_figure(results["gradients"])}
    if "training" in results:
        target = results["config"]["target_accuracy"]
        out["training"] = _training_figure(results["training"], target)
        out["selection"] = _selection_figure(results["training"])
    return out


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
