"""Information plane of an MLP on digits: I(X;T) and I(T;Y) per hidden layer during training.

Shwartz-Ziv & Tishby (2017) plotted, for every hidden layer T of a network trained with SGD, the
mutual information with the input, I(X;T), against the information with the label, I(T;Y), and
saw a "fitting" phase (both grow) followed by a "compression" phase (I(X;T) shrinks). Saxe et al.
(2018) showed that the compression comes from saturating tanh units and the binning estimator,
and vanishes with ReLU. This experiment repeats that comparison with entjax's estimators, and
asks first whether the estimates can show either phase at all.

An MLP from :mod:`experiments.core.models` (``depth`` hidden layers of ``width`` units, tanh or
ReLU, one ensemble per activation with ``seeds`` members trained together by
:mod:`experiments.core.training`, Adam at a constant learning rate) is trained on the digits
training split. Every ``eval_every`` steps the hidden activations of a fixed, class-balanced subset
of the training images (``per_class`` per digit, n in all; balanced so that H(Y) = log2 10 and the
class-conditional kernel terms share one shape) are measured, in bits, X uniform over those n
images, with two estimators, each at several resolutions:

* **binning** (``entjax.binned_mutual_information``), for every bin count B in ``--num-bins``:
  every unit cut into bins of width ``2 / B`` — over ``(-1, 1)`` for tanh and over
  ``(0, relu_bin_cap)`` for ReLU (values above the cap fall in the last bin; the report gives the
  largest activation seen). The input is the example index, so I(X;T) = H(T_binned) ≤ log2 n;
  I(T;Y) uses the labels.
* **kernel** (``entjax.kernel_mi_upper_bound``), for every σ² in ``--noise-variances``: the
  noise-regularised representation T = h(X) + N(0, σ²I); I(X;T) is the pairwise-distance upper
  bound (the "KDE" estimate of Saxe et al.) and I(T;Y) = ub(T) − Σ_y p(y) ub(T | Y=y) (the Saxe
  et al. plug-in; a difference of bounds, not a bound).

**The ceiling.** Both I(X;T) estimates are at most log2 n (9.97 bits for n = 1000): once every
measured image falls in its own bin (fine bins, 8 units) or the kernels no longer overlap (small
σ), the estimate sits at log2 n and cannot move, so neither fitting nor compression can show.
Every estimate's value at step 0 is reported against the ceiling, and the figures draw it.

**Claims**, per (activation, estimator setting, layer), from the per-seed curves (``seeds``
members, Student-t 95% intervals, ``ddof = 1``): with the drop = I(X;T) at its peak (after step
0) − I(X;T) at the end, a layer *compresses* when the interval of the drop lies above
``COMPRESSION_THRESHOLD_BITS`` (the peak is a maximum over evaluations, so the drop is ≥ 0 by
construction and needs that margin); it *does not compress* when the interval lies below it and
the estimate is off the ceiling; a layer whose estimate stays within
``CEILING_MARGIN_BITS`` of log2 n at its peak and at the end is *at the ceiling* (undetermined);
anything else is inconclusive. Only estimator settings whose step-0 value is off the ceiling can
show the fitting phase. Nothing here is tuned, so no split is used for selection.

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
    models,
    outputs,
    stats,
    training,
)
from experiments.core.cli import option
from experiments.core.runner import Experiment, Outcome

NAME = "information_plane"
ACTIVATIONS = ("tanh", "relu")
ESTIMATORS = ("binning", "kernel")
LOG2 = math.log(2.0)
COMPRESSION_THRESHOLD_BITS = 0.1  # a drop (peak − end) must exceed this, with its interval
CEILING_MARGIN_BITS = 0.25  # an estimate within this of log2 n is "at the ceiling"


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    activations: tuple[str, ...] = option(ACTIVATIONS, "hidden activations to compare")
    seeds: int = option(5, "members (seeds) per activation")
    width: int = option(8, "hidden units per layer")
    depth: int = option(3, "hidden layers")
    steps: int = option(6000, "Adam steps (constant learning rate)")
    learning_rate: float = option(1e-3, "Adam learning rate")
    eval_every: int = option(200, "steps between estimates (and checkpoints)")
    per_class: int = option(100, "measured training images per class")
    num_bins: tuple[int, ...] = option(
        (2, 4, 30), "bin counts over tanh's (-1, 1); ReLU uses the same bin widths"
    )
    relu_bin_cap: float = option(60.0, "upper end of the ReLU bins")
    noise_variances: tuple[float, ...] = option(
        (0.01, 0.1, 1.0), "σ² of the kernel estimator's noise"
    )

    def __post_init__(self):
        super().__post_init__()
        cli.require_positive(self, "relu_bin_cap")
        cli.require_all_positive(self, "noise_variances")
        cli.require_choice(self, "activations", tuple(models.ACTIVATIONS))
        cli.require(len(self.activations) > 0, "--activations needs at least one activation")
        for name in ("width", "depth", "per_class"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(len(self.num_bins) > 0, "--num-bins needs at least one bin count")
        cli.require(all(b >= 2 for b in self.num_bins), "--num-bins values must be >= 2")

    def settings(self) -> list[str]:
        """Names of the estimator settings: ``binning/B=..`` and ``kernel/σ²=..``."""
        return [f"binning/B={b}" for b in self.num_bins] + [
            f"kernel/σ²={v:g}" for v in self.noise_variances
        ]


SMOKE = {
    "seeds": 2,
    "width": 6,
    "depth": 2,
    "steps": 30,
    "batch_size": 32,
    "eval_every": 15,
    "per_class": 20,
    "num_bins": (2, 30),
    "noise_variances": (0.1,),
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


def binned_estimates(acts: np.ndarray, labels: np.ndarray, *, bins: int, value_range: tuple):
    """Binned I(X;T) and I(T;Y) in bits for ``acts`` ``(..., n, d)``, X the example index."""
    acts = np.asarray(acts, np.float32)
    n = acts.shape[-2]
    ids = np.broadcast_to(np.arange(n, dtype=np.int32), acts.shape[:-1])
    ys = np.broadcast_to(np.asarray(labels, np.int32), acts.shape[:-1])
    # I(X;T) and I(T;Y) in one call (one compilation): stack the two discrete variables.
    both = entjax.binned_mutual_information(
        np.stack([ids, ys]),
        np.broadcast_to(acts, (2, *acts.shape)),
        num_bins=bins,
        value_range=value_range,
        base=2,
    )
    both = np.asarray(both, np.float64)
    return both[0], both[1]


def kernel_estimates(acts: np.ndarray, labels: np.ndarray, *, noise_std: float):
    """Kernel I(X;T) upper bound and the I(T;Y) plug-in in bits for ``acts`` ``(..., n, d)``."""
    acts = np.asarray(acts, np.float32)
    lead, n = acts.shape[:-2], acts.shape[-2]
    labels = np.asarray(labels, np.int32)

    def kernel(h: np.ndarray) -> np.ndarray:
        return np.asarray(entjax.kernel_mi_upper_bound(h, noise_std=noise_std, base=2), np.float64)

    ixt = kernel(acts)
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
    return ixt, ixt - conditional


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
    bins, value_range = bin_setup(activation, num_bins=num_bins, relu_bin_cap=relu_bin_cap)
    ixt_b, ity_b = binned_estimates(acts, labels, bins=bins, value_range=value_range)
    ixt_k, ity_k = kernel_estimates(acts, labels, noise_std=noise_std)
    return {
        "ixt_binning": ixt_b,
        "ity_binning": ity_b,
        "ixt_kernel": ixt_k,
        "ity_kernel": ity_k,
        "max_activation": np.asarray(acts).max(axis=(-2, -1)).astype(np.float64),
    }


def sweep_estimates(acts: np.ndarray, labels: np.ndarray, activation: str, config: Config):
    """Every estimator setting of ``config``: ``{"ixt/<setting>", "ity/<setting>"}`` arrays."""
    out = {}
    for b in config.num_bins:
        bins, value_range = bin_setup(activation, num_bins=b, relu_bin_cap=config.relu_bin_cap)
        name = f"binning/B={b}"
        out[f"ixt/{name}"], out[f"ity/{name}"] = binned_estimates(
            acts, labels, bins=bins, value_range=value_range
        )
    for v in config.noise_variances:
        name = f"kernel/σ²={v:g}"
        out[f"ixt/{name}"], out[f"ity/{name}"] = kernel_estimates(
            acts, labels, noise_std=math.sqrt(v)
        )
    out["max_activation"] = np.asarray(acts).max(axis=(-2, -1)).astype(np.float64)
    return out


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
        est = sweep_estimates(np.moveaxis(acts, 2, 1), split.y_train[measure], activation, config)
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
    out = summarise(result, config, activation, config.batch_size / n, math.log2(len(measure)))
    out["entropy_curves"] = entropy_curves.summarise(
        result.curves, result.loss_history, max_entropy=math.log(split.num_classes)
    )
    return out


def layer_summary(ixt: np.ndarray, ity: np.ndarray, steps, ceiling: float) -> dict[str, Any]:
    """One layer's per-seed I(X;T) curves ``(K, T)``: start, peak (after step 0), end, the
    fitting rise and the compression drop with intervals over seeds, and the verdict."""
    after0 = slice(1, None) if ixt.shape[1] > 1 else slice(None)
    peak = ixt[:, after0].max(axis=1)
    mean_curve = ixt.mean(0)
    near = ceiling - CEILING_MARGIN_BITS
    within = (0.0, ceiling)  # every I(X;T) estimate lies in [0, log2 n]
    out = {
        "ixt_initial": stats.interval(ixt[:, 0], bounds=within),
        "ixt_peak": stats.interval(peak, bounds=within),
        "ixt_peak_step": int(steps[int(np.argmax(mean_curve[after0])) + (after0.start or 0)]),
        "ixt_final": stats.interval(ixt[:, -1], bounds=within),
        "ity_final": stats.interval(ity[:, -1]),
        "rise_bits": stats.interval(peak - ixt[:, 0]),
        "compression_bits": stats.interval(peak - ixt[:, -1], bounds=(0.0, None)),
        "initial_at_ceiling": bool(ixt[:, 0].mean() > near),
    }
    drop = out["compression_bits"]
    at_ceiling = peak.mean() > near and ixt[:, -1].mean() > near
    if drop["n"] >= 2 and drop["low"] > COMPRESSION_THRESHOLD_BITS:
        verdict = "compresses"
    elif at_ceiling:
        verdict = "at the ceiling"
    elif drop["n"] >= 2 and drop["high"] < COMPRESSION_THRESHOLD_BITS:
        verdict = "does not compress"
    else:
        verdict = "inconclusive"
    out["verdict"] = verdict
    out["fitting_visible"] = bool(
        not out["initial_at_ceiling"] and out["rise_bits"]["low"] > COMPRESSION_THRESHOLD_BITS
    )
    return out


def summarise(
    result: training.TrainResult,
    config: Config,
    activation: str,
    epochs_per_step: float,
    ceiling: float,
) -> dict[str, Any]:
    """Per estimator setting and layer: curves (mean over seeds), per-seed values, verdicts."""
    m = result.curves.metrics  # name -> (T, K, L) or (T, K)
    steps = np.asarray(result.curves.steps)
    out: dict[str, Any] = {
        "eval_steps": result.curves.steps,
        "eval_epochs": (steps * epochs_per_step).tolist(),
        "relu_bins": {
            f"B={b}": bin_setup(activation, num_bins=b, relu_bin_cap=config.relu_bin_cap)
            for b in config.num_bins
        },
        "max_activation_seen": float(np.max(m["max_activation"])),
        "final_train_accuracy": stats.interval(m["train_accuracy"][-1], bounds=(0, 1)),
        "final_test_accuracy": stats.interval(m["test_accuracy"][-1], bounds=(0, 1)),
        "final_train_loss": stats.interval(result.loss_history[-1]),
        "settings": {},
    }
    for setting in config.settings():
        ixt = np.moveaxis(m[f"ixt/{setting}"], 0, -1)  # (K, L, T)
        ity = np.moveaxis(m[f"ity/{setting}"], 0, -1)
        out["settings"][setting] = {
            "ixt": ixt.mean(0),  # (L, T), mean over seeds
            "ity": ity.mean(0),
            "per_seed_ixt": ixt,
            "layers": [
                layer_summary(ixt[:, i], ity[:, i], steps, ceiling) for i in range(ixt.shape[1])
            ],
        }
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
            "settings": config.settings(),
            "activations": per_act,
            "entropy_curves": {act: r.pop("entropy_curves") for act, r in per_act.items()},
        }
    )


# --------------------------------------------------------------------------- outputs


def _layer_table(r: dict[str, Any], settings: list[str]) -> str:
    headers = ["estimator", "layer", "I(X;T) step 0", "I(X;T) peak", "I(X;T) end"]
    headers += ["rise (peak − step 0)", "drop (peak − end)", "verdict", "I(T;Y) end"]
    keys = ("ixt_initial", "ixt_peak", "ixt_final", "rise_bits", "compression_bits")
    rows = [
        [setting, str(i + 1), *(lay[k] for k in keys), lay["verdict"], lay["ity_final"]]
        for setting in settings
        for i, lay in enumerate(r["settings"][setting]["layers"])
    ]
    return outputs.markdown_table(headers, rows, digits=2)


def _summary_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for act, r in results["activations"].items():
        for setting in results["settings"]:
            layers = r["settings"][setting]["layers"]
            words = ", ".join(f"layer {i + 1} {lay['verdict']}" for i, lay in enumerate(layers))
            start = (
                "at the ceiling at step 0"
                if all(lay["initial_at_ceiling"] for lay in layers)
                else "off the ceiling at step 0"
            )
            fit = [str(i + 1) for i, lay in enumerate(layers) if lay["fitting_visible"]]
            fitting = f"; fitting visible in layer(s) {', '.join(fit)}" if fit else ""
            lines.append(f"- {act}, {setting} ({start}{fitting}): {words}.")
    return lines


def report(results: dict[str, Any]) -> str:
    config, n = results["config"], results["num_train"]
    setup = (
        f"MLP {config['depth']}×{config['width']} on the {n} digits training images, "
        f"{config['steps']} Adam steps (lr {config['learning_rate']}, constant, batch "
        f"{config['batch_size']}), {config['seeds']} seeds, estimates every "
        f"{config['eval_every']} steps on {results['num_measured']} class-balanced training "
        f"images, in bits: mean [95% interval] over seeds (Student t, ddof = 1). **Ceiling** "
        f"log2 n = {results['log2_n']:.3f} bits for I(X;T); H(Y) = {results['h_y_bits']:.3f}. "
        "Binning with B bins has width 2/B (B bins over tanh's (−1, 1), the same width for "
        "ReLU up to the cap); kernel: noise variance σ². Verdicts: 'compresses' when the 95% "
        f"interval of the drop lies above {COMPRESSION_THRESHOLD_BITS} bits; 'does not "
        "compress' when it lies below and the estimate is off the ceiling; 'at the ceiling' "
        f"when I(X;T) stays within {CEILING_MARGIN_BITS} bits of log2 n at its peak and end "
        "(the estimate cannot move: undetermined); else 'inconclusive'."
    )
    lines = ["# Information plane of an MLP on digits", "", setup]
    for act, r in results["activations"].items():
        clip = ""
        if act != "tanh":
            high = max(v[1][1] for v in r["relu_bins"].values())
            clipped = r["max_activation_seen"] > high
            what = "larger values were clipped into the last bin" if clipped else "no clipping"
            clip = f" (bins cover (0, {high:.3f}); {what})"
        lines += [
            "",
            f"## {act}",
            "",
            f"Test accuracy {outputs.fmt(r['final_test_accuracy'], 3)}, train accuracy "
            f"{outputs.fmt(r['final_train_accuracy'], 3)}; largest activation seen "
            f"{r['max_activation_seen']:.3f}{clip}.",
            "",
            _layer_table(r, results["settings"]),
        ]
    lines += ["", "## Summary (claims only as far as the intervals and the ceiling allow)", ""]
    return "\n".join(lines + _summary_lines(results))


def _plane_axes(ax: Any, r: dict[str, Any], setting: str, results: dict[str, Any], sc_args):
    markers = "os^Dv<>p*h"
    epochs = np.asarray(r["eval_epochs"], float)
    ixt = np.asarray(r["settings"][setting]["ixt"], float)
    ity = np.asarray(r["settings"][setting]["ity"], float)
    sc = None
    for layer in range(ixt.shape[0]):
        ax.plot(ixt[layer], ity[layer], "-", color="0.6", lw=0.7, zorder=1)
        sc = ax.scatter(
            ixt[layer],
            ity[layer],
            c=epochs,
            marker=markers[layer % len(markers)],
            s=14,
            zorder=2,
            label=f"layer {layer + 1}",
            **sc_args,
        )
    ceiling, h_y = results["log2_n"], results["h_y_bits"]
    ax.axvline(ceiling, color="C3", ls="--", lw=1.0, label="ceiling log2 n")
    ax.axhline(h_y, color="0.3", ls=":", lw=0.8)
    # Never clip the curves: the limits cover the data and both ceilings.
    ax.set_xlim(min(0.0, np.nanmin(ixt)) - 0.1, max(ceiling, np.nanmax(ixt)) * 1.03)
    ax.set_ylim(min(0.0, np.nanmin(ity)) - 0.05, max(h_y, np.nanmax(ity)) * 1.06)
    ax.set(xlabel="I(X;T) (bits)", ylabel="I(T;Y) (bits)")
    return sc


def figures(results: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    acts, settings = list(results["activations"]), results["settings"]
    vmax = max(max(results["activations"][a]["eval_epochs"][-1] for a in acts), 1e-9)
    sc_args = {"cmap": "viridis", "vmin": 0.0, "vmax": vmax}
    fig, axes = outputs.new_figure(len(settings), len(acts), size=(3.8, 3.0))
    fig.set_layout_engine("constrained")
    sc = None
    for col, act in enumerate(acts):
        for row, setting in enumerate(settings):
            ax = axes[row, col]
            sc = _plane_axes(ax, results["activations"][act], setting, results, sc_args)
            ax.set_title(f"{act}, {setting}", fontsize=9)
            ax.legend(fontsize=6, loc="best")
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), label="epoch", shrink=0.6)
    fig.suptitle("Information plane, mean over seeds (dashed: ceiling log2 n; dotted: H(Y))")
    out = {"information_plane": fig}

    fig, axes = outputs.new_figure(len(settings), len(acts), size=(3.8, 2.6))
    for col, act in enumerate(acts):
        r = results["activations"][act]
        for row, setting in enumerate(settings):
            ax = axes[row, col]
            per_seed = np.asarray(r["settings"][setting]["per_seed_ixt"], float)  # (K, L, T)
            for layer in range(per_seed.shape[1]):
                for k in range(per_seed.shape[0]):
                    ax.plot(
                        r["eval_epochs"],
                        per_seed[k, layer],
                        color=f"C{layer}",
                        lw=0.6,
                        label=f"layer {layer + 1}" if k == 0 else None,
                    )
            ax.axhline(results["log2_n"], color="C3", ls="--", lw=1.0)
            ax.set(xlabel="epoch", ylabel="I(X;T) (bits)")
            ax.set_title(f"{act}, {setting} (each seed)", fontsize=9)
            ax.legend(fontsize=6)
    fig.tight_layout()
    out["ixt_vs_epoch"] = fig
    return out


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
