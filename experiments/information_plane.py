"""Information plane of an MLP on digits: I(X;T) and I(T;Y) per hidden layer during training.

Shwartz-Ziv & Tishby (2017) plotted, for every hidden layer T of a network trained with SGD, the
mutual information with the input, I(X;T), against the information with the label, I(T;Y), and
saw a "fitting" phase (both grow) followed by a "compression" phase (I(X;T) shrinks). Saxe et al.
(2018) showed that the compression comes from saturating tanh units and the binning estimator,
and vanishes with ReLU. This experiment reproduces that comparison with entjax's estimators.

An MLP from :mod:`experiments.core.models` (``depth`` hidden layers of ``width`` units, tanh or
ReLU, one ensemble per activation with ``seeds`` members trained together by
:mod:`experiments.core.training`, Adam at a constant learning rate) is trained on the digits
training split. Every ``eval_every`` steps the hidden activations of a fixed, class-balanced subset
of the training images (``per_class`` per digit, n in all; balanced so that H(Y) = log2 10 and the
class-conditional kernel terms share one shape) are measured with two estimators, in bits, X
uniform over those n images:

* **binning** (``entjax.binned_mutual_information``): every unit cut into bins of the same width
  ``2 / num_bins`` — over ``(-1, 1)`` for tanh and over ``(0, relu_bin_cap)`` for ReLU (values
  above the cap fall in the last bin; the report gives the largest activation seen). The input is
  the example index, so I(X;T) = H(T_binned) <= log2 n for this deterministic network; I(T;Y) uses
  the labels.
* **kernel** (``entjax.kernel_mi_upper_bound``): T = h(X) + N(0, σ²I) with σ² =
  ``noise_variance``; I(X;T) is the pairwise-distance upper bound (the "KDE" estimate of Saxe et
  al.) and I(T;Y) = H(T) − Σ_y p(y) H(T | Y=y) with both entropies bounded the same way, i.e.
  ``ub(T) − Σ_y p(y) ub(T | Y=y)`` (the Saxe et al. plug-in; a difference of bounds, not a bound).

Both estimates depend on a resolution (bin width, σ) that is fixed across epochs, layers and
activations, so the points are comparable with each other but not absolute.

Run ``python -m experiments.information_plane`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``information_plane.png`` and ``ixt_vs_epoch.png`` to ``--out``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

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
from experiments.core.runner import Experiment, Outcome

NAME = "information_plane"
ACTIVATIONS = ("tanh", "relu")
ESTIMATORS = ("binning", "kernel")
LOG2 = math.log(2.0)
PLANE_KEYS = (
    *(f"{q}_{e}" for e in ("binning", "kernel") for q in ("ixt", "ity")),
    "max_activation",
    "train_accuracy",
    "test_accuracy",
)
# A layer "compresses" when I(X;T) ends at least this far (bits) below its peak after step 0.
COMPRESSION_THRESHOLD_BITS = 0.1


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    activations: tuple[str, ...] = option(ACTIVATIONS, "hidden activations to compare")
    width: int = option(8, "hidden units per layer")
    depth: int = option(3, "hidden layers")
    steps: int = option(6000, "Adam steps (constant learning rate)")
    learning_rate: float = option(1e-3, "Adam learning rate")
    eval_every: int = option(150, "steps between estimates (and checkpoints)")
    per_class: int = option(100, "measured training images per class")
    num_bins: int = option(30, "bins over tanh's (-1, 1); ReLU uses the same bin width")
    relu_bin_cap: float = option(60.0, "upper end of the ReLU bins")
    noise_variance: float = option(0.1, "σ² of the kernel estimator's noise")

    def __post_init__(self):
        super().__post_init__()
        cli.require_positive(self, "relu_bin_cap", "noise_variance")
        cli.require_choice(self, "activations", tuple(models.ACTIVATIONS))
        cli.require(len(self.activations) > 0, "--activations needs at least one activation")
        for name in ("width", "depth", "per_class"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.num_bins >= 2, "--num-bins must be >= 2")


SMOKE = {
    "seeds": 1,
    "width": 6,
    "depth": 2,
    "steps": 30,
    "batch_size": 32,
    "eval_every": 15,
    "per_class": 20,
}


# --------------------------------------------------------------------------- estimates


def measurement_indices(labels: np.ndarray, per_class: int, *, seed: int) -> np.ndarray:
    """A class-balanced subset of ``labels``' indices: ``per_class`` of each class (fewer if a
    class is smaller: then the smallest class size for all), drawn with ``seed``, sorted."""
    classes, counts = np.unique(labels, return_counts=True)
    m = min(per_class, int(counts.min()))
    rng = np.random.default_rng([seed, 4000])
    picks = [rng.choice(np.flatnonzero(labels == c), m, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def bin_setup(activation: str, *, num_bins: int, relu_bin_cap: float) -> tuple[int, tuple]:
    """``(num_bins, value_range)`` giving bins of width ``2 / num_bins`` for this activation.

    tanh: ``num_bins`` bins over ``(-1, 1)``. ReLU (and anything unbounded): bins of the same
    width from 0 up to the first multiple of the width at or above ``relu_bin_cap``.
    """
    width = 2.0 / num_bins
    if activation == "tanh":
        return num_bins, (-1.0, 1.0)
    bins = max(1, math.ceil(relu_bin_cap / width - 1e-9))
    return bins, (0.0, bins * width)


def plane_estimates(
    acts: np.ndarray,
    labels: np.ndarray,
    *,
    activation: str,
    num_bins: int,
    relu_bin_cap: float,
    noise_std: float,
) -> dict[str, np.ndarray]:
    """I(X;T) and I(T;Y) in bits, binning and kernel, for activations ``acts`` ``(..., n, d)``.

    X is the example index (uniform over the n rows), ``labels`` ``(n,)`` the classes. Returns
    ``ixt_binning``, ``ity_binning``, ``ixt_kernel``, ``ity_kernel``, each of shape
    ``acts.shape[:-2]``, plus ``max_activation`` (the largest activation value).
    """
    # Host-side reshaping in numpy: only the two estimators are compiled.
    acts = np.asarray(acts, np.float32)
    lead, n = acts.shape[:-2], acts.shape[-2]
    labels = np.asarray(labels, np.int32)
    ids = np.broadcast_to(np.arange(n, dtype=np.int32), (*lead, n))
    ys = np.broadcast_to(labels, (*lead, n))
    bins, value_range = bin_setup(activation, num_bins=num_bins, relu_bin_cap=relu_bin_cap)

    # I(X;T) and I(T;Y) in one call (one compilation): stack the two discrete variables.
    both = entjax.binned_mutual_information(
        np.stack([ids, ys]),
        np.broadcast_to(acts, (2, *acts.shape)),
        num_bins=bins,
        value_range=value_range,
        base=2,
    )
    both = np.asarray(both, np.float64)

    def kernel(h: np.ndarray) -> np.ndarray:
        return np.asarray(entjax.kernel_mi_upper_bound(h, noise_std=noise_std, base=2), np.float64)

    ixt_kernel = kernel(acts)
    classes, counts = np.unique(labels, return_counts=True)
    weights = counts / n
    if np.all(counts == counts[0]):  # balanced: all classes in one call (one compilation)
        order = np.argsort(labels, kind="stable")
        grouped = acts[..., order, :].reshape(*lead, len(classes), counts[0], acts.shape[-1])
        conditional = kernel(grouped) @ weights
    else:
        conditional = sum(
            w * kernel(acts[..., labels == c, :]) for c, w in zip(classes, weights, strict=True)
        )
    return {
        "ixt_binning": both[0],
        "ity_binning": both[1],
        "ixt_kernel": ixt_kernel,
        "ity_kernel": ixt_kernel - conditional,
        "max_activation": acts.max(axis=(-2, -1)).astype(np.float64),
    }


# --------------------------------------------------------------------------- training


def run_activation(
    activation: str,
    config: Config,
    split: data_lib.DigitsData,
    measure: np.ndarray,
    options: cli.RunOptions,
) -> dict[str, Any]:
    """Train ``config.seeds`` MLPs with ``activation``, estimating the plane every eval."""

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return models.build_model(
            "mlp",
            num_classes=split.num_classes,
            width=config.width,
            depth=config.depth,
            activation=activation,
            rngs=rngs,
        )

    members = training.Members.create(model_fn, config.seeds, seed=config.seed)

    def hidden(params, x):  # (n, depth, width): every hidden layer, logits dropped
        return jnp.stack(members.ensemble.module(params).features(x)[:-1], axis=1)

    eval_x = np.concatenate([split.x_train, split.x_test])  # one shape: one compilation
    eval_y = np.concatenate([split.y_train, split.y_test])
    n = len(split.y_train)

    def evaluate(params) -> dict[str, np.ndarray]:
        acts = members.predict(params, split.x_train[measure], hidden)  # (K, m, L, w)
        est = plane_estimates(
            np.moveaxis(acts, 2, 1),  # (K, L, m, w)
            split.y_train[measure],
            activation=activation,
            num_bins=config.num_bins,
            relu_bin_cap=config.relu_bin_cap,
            noise_std=math.sqrt(config.noise_variance),
        )
        correct = np.argmax(members.predict(params, eval_x), -1) == eval_y
        est["train_accuracy"] = correct[:, :n].mean(-1)
        est["test_accuracy"] = correct[:, n:].mean(-1)
        return est

    result = members.train_sweep(
        training.classification_objective(members.ensemble),
        config,
        options,
        data={"image": split.x_train, "label": split.y_train},
        tx=training.make_optimizer(config.learning_rate, steps=config.steps, schedule="constant"),
        run_config={**dataclasses.asdict(config), "activation": activation},
        name=activation,
        description=f"{NAME}/{activation}",
        evaluate=evaluate,
        probe=entropy_curves.EntropyProbe(split.x_train, split.x_val, split.y_val),
    )
    out = summarise(result, config, activation, config.batch_size / n)
    out["entropy_curves"] = entropy_curves.summarise(
        result.curves, result.loss_history, max_entropy=math.log(split.num_classes)
    )
    return out


def layer_summary(ixt: np.ndarray, ity: np.ndarray, steps: np.ndarray) -> dict[str, Any]:
    """Start, peak (after step 0), end and compression of one layer's I(X;T) curve."""
    after0 = ixt[1:] if len(ixt) > 1 else ixt
    peak_i = int(np.argmax(after0)) + (1 if len(ixt) > 1 else 0)
    drop = float(ixt[peak_i] - ixt[-1])
    return {
        "ixt_initial": float(ixt[0]),
        "ixt_peak": float(ixt[peak_i]),
        "ixt_peak_step": int(steps[peak_i]),
        "ixt_final": float(ixt[-1]),
        "ity_final": float(ity[-1]),
        "compression_bits": drop,
        "compresses": drop > COMPRESSION_THRESHOLD_BITS,
    }


def summarise(
    result: training.TrainResult, config: Config, activation: str, epochs_per_step: float
) -> dict[str, Any]:
    """Curves per estimator and layer (mean over seeds), per-seed values, final accuracies."""
    m = result.curves.metrics  # name -> (T, K, L) or (T, K)
    steps = np.asarray(result.curves.steps)
    bins = bin_setup(activation, num_bins=config.num_bins, relu_bin_cap=config.relu_bin_cap)
    out: dict[str, Any] = {
        "eval_steps": result.curves.steps,
        "eval_epochs": (steps * epochs_per_step).tolist(),
        "bins": dict(zip(("num_bins", "value_range"), bins, strict=True)),
        "max_activation_seen": float(np.max(m["max_activation"])),
        "final_train_accuracy": metrics.mean_std(m["train_accuracy"][-1]),
        "final_test_accuracy": metrics.mean_std(m["test_accuracy"][-1]),
        "final_train_loss": metrics.mean_std(result.loss_history[-1]),
        "per_seed": {k_: np.moveaxis(m[k_], 0, -1) for k_ in PLANE_KEYS},  # (K, [L,] T)
        "estimators": {},
    }
    for est in ESTIMATORS:
        ixt = m[f"ixt_{est}"].mean(1).T  # (L, T), mean over seeds
        ity = m[f"ity_{est}"].mean(1).T
        layers = [layer_summary(ixt[i], ity[i], steps) for i in range(ixt.shape[0])]
        out["estimators"][est] = {"ixt": ixt, "ity": ity, "layers": layers}
    return out


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """One ensemble per activation on a shared class-balanced measurement subset."""
    split = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    measure = measurement_indices(split.y_train, config.per_class, seed=config.seed)
    freq = np.bincount(split.y_train[measure]) / len(measure)
    freq = freq[freq > 0]
    per_act = {
        act: run_activation(act, config, split, measure, options) for act in config.activations
    }
    return Outcome(
        {
            "num_train": len(split.y_train),
            "num_measured": len(measure),
            "log2_n": math.log2(len(measure)),
            "h_y_bits": float(-np.sum(freq * np.log2(freq))),
            "activations": per_act,
            "entropy_curves": {act: r.pop("entropy_curves") for act, r in per_act.items()},
        }
    )


# --------------------------------------------------------------------------- outputs


def _clipping_note(activation: str, r: dict[str, Any]) -> str:
    if activation == "tanh":
        return ""
    high = r["bins"]["value_range"][1]
    if r["max_activation_seen"] > high:
        return f" (bins cover (0, {high:.3f}); larger values were clipped into the last bin)"
    return f" (bins cover (0, {high:.3f}); no clipping)"


def _layer_table(r: dict[str, Any]) -> str:
    headers = ["estimator", "layer", "I(X;T) step 0", "I(X;T) peak", "peak step"]
    headers += ["I(X;T) final", "peak − final", "compresses", "I(T;Y) final"]
    keys = ("ixt_initial", "ixt_peak", "ixt_peak_step", "ixt_final", "compression_bits")
    rows = [
        [
            est,
            str(i + 1),
            *(lay[k] for k in keys),
            "yes" if lay["compresses"] else "no",
            lay["ity_final"],
        ]
        for est in ESTIMATORS
        for i, lay in enumerate(r["estimators"][est]["layers"])
    ]
    return outputs.markdown_table(headers, rows, digits=3)


def _verdict(layers: list[dict[str, Any]]) -> str:
    which = [str(i + 1) for i, lay in enumerate(layers) if lay["compresses"]]
    if not which:
        return "no layer compresses"
    if len(which) == 1:
        return f"layer {which[0]} compresses"
    return f"layers {', '.join(which)} compress"


def report(results: dict[str, Any]) -> str:
    config, n = results["config"], results["num_train"]
    setup = [
        f"MLP {config['depth']}×{config['width']} on the {n} digits training images,",
        f"{config['steps']} Adam steps (lr {config['learning_rate']}, constant,",
        f"batch {config['batch_size']}), {config['seeds']} seed(s),",
        f"estimates every {config['eval_every']} steps on",
        f"{results['num_measured']} class-balanced training images,",
        "in bits (mean over seeds).",
        f"Ceiling log2 n = {results['log2_n']:.3f}; H(Y) = {results['h_y_bits']:.3f}.",
        f"Binning: width {2 / config['num_bins']:.4f} ({config['num_bins']} bins over",
        f"tanh's (−1, 1)); kernel: σ² = {config['noise_variance']}.",
        "A layer 'compresses' when its I(X;T) ends more than",
        f"{COMPRESSION_THRESHOLD_BITS} bits below its peak (taken after step 0).",
    ]
    lines = ["# Information plane of an MLP on digits", "", " ".join(setup)]
    for act, r in results["activations"].items():
        lines += [
            "",
            f"## {act}",
            "",
            f"Test accuracy {outputs.fmt(r['final_test_accuracy'], 3)}, train accuracy "
            f"{outputs.fmt(r['final_train_accuracy'], 3)}; largest activation seen "
            f"{r['max_activation_seen']:.3f}" + _clipping_note(act, r) + ".",
            "",
            _layer_table(r),
        ]
    lines += ["", "## Summary", ""]
    for act, r in results["activations"].items():
        for est in ESTIMATORS:
            lines.append(f"- {act}, {est}: {_verdict(r['estimators'][est]['layers'])}.")
    return "\n".join(lines)


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    acts = list(results["activations"])
    markers = "os^Dv<>p*h"
    figures = {}
    fig, axes = outputs.new_figure(len(ESTIMATORS), len(acts), size=(4.4, 3.6))
    fig.set_layout_engine("constrained")
    sc = None
    for col, act in enumerate(acts):
        r = results["activations"][act]
        epochs = np.asarray(r["eval_epochs"], float)
        for row, est in enumerate(ESTIMATORS):
            ax = axes[row, col]
            ixt = np.asarray(r["estimators"][est]["ixt"], float)
            ity = np.asarray(r["estimators"][est]["ity"], float)
            for layer in range(ixt.shape[0]):
                ax.plot(ixt[layer], ity[layer], "-", color="0.6", lw=0.7, zorder=1)
                sc = ax.scatter(
                    ixt[layer],
                    ity[layer],
                    c=epochs,
                    cmap="viridis",
                    vmin=0.0,
                    vmax=max(epochs[-1], 1e-9),
                    marker=markers[layer % len(markers)],
                    s=18,
                    zorder=2,
                    label=f"layer {layer + 1}",
                )
            ax.axvline(results["log2_n"], color="0.3", ls=":", lw=0.8)
            ax.axhline(results["h_y_bits"], color="0.3", ls=":", lw=0.8)
            ax.set_xlim(right=1.02 * results["log2_n"])
            ax.set_ylim(0.0, 1.06 * results["h_y_bits"])  # same I(T;Y) scale everywhere
            ax.set_xlabel("I(X;T) (bits)")
            ax.set_ylabel("I(T;Y) (bits)")
            ax.set_title(f"{act}, {est}")
            ax.legend(fontsize=7, loc="lower left")
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), label="epoch", shrink=0.8)
    fig.suptitle("Information plane (dotted: log2 n and H(Y))")
    figures["information_plane"] = fig

    fig, axes = outputs.new_figure(len(ESTIMATORS), len(acts), size=(4.2, 3.0))
    for col, act in enumerate(acts):
        r = results["activations"][act]
        for row, est in enumerate(ESTIMATORS):
            ax = axes[row, col]
            for layer, curve in enumerate(r["estimators"][est]["ixt"]):
                ax.plot(r["eval_epochs"], curve, label=f"layer {layer + 1}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("I(X;T) (bits)")
            ax.set_title(f"{act}, {est}")
            ax.legend(fontsize=7)
    fig.tight_layout()
    figures["ixt_vs_epoch"] = fig
    return figures


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
