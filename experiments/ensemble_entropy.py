"""Does an ensemble know what it doesn't know? Entropy in and out of distribution, vs one model.

Trains K Flax NNX members (different initialisations and data orders) together in one jitted,
vmapped step, sharded over all devices, on scikit-learn's digits with two classes held out; then
compares single members and the ensemble on accuracy, NLL, Brier, ECE, predictive entropy, the
entropy decomposition (total = aleatoric + mutual information) and OOD detection AUROC, on
held-out digits, pure noise, and rotation / Gaussian noise / pixel dropout at several severities,
and as a function of ensemble size 1..K.

    python -m experiments.ensemble_entropy --out runs/default
    python -m experiments.ensemble_entropy --smoke --out runs/smoke      # seconds, for tests

Outputs in ``--out``: ``results.json`` (config, versions, devices, every number; run-dependent
values only under ``"timing"``), ``report.md``, PNG plots, ``predictions.npz`` (every member's
logits on every set) and ``checkpoints/`` (orbax).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments import data as data_lib
from experiments import reporting
from experiments.ensemble import ConfigError

SMOKE_OVERRIDES = {
    "steps": 40,
    "lr": 1e-2,
    "width": 32,
    "batch_size": 32,
    "severities": (2, 5),
    "checkpoint_every": 10,
    "ensemble_sizes": (1, 2),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that affects the numbers. (Output paths, resume and progress do not.)"""

    model: str = "mlp"
    width: int | None = None  # None: the model's default (MLP 128, CNN 32)
    depth: int = 2
    activation: str = "relu"
    members: int = 8
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    seed: int = 0
    data_seed: int = 0
    heldout_classes: tuple[int, ...] = (8, 9)
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    num_bins: int = 15
    ensemble_sizes: tuple[int, ...] | None = None  # None: 1..K (K is always included)
    smoke: bool = False


def _int_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.replace(" ", "").split(",") if t)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.ensemble_entropy",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = Config()
    p.add_argument("--out", default="runs/ensemble_entropy", help="output directory")
    p.add_argument("--members", type=int, default=d.members, help="ensemble size K")
    p.add_argument("--steps", type=int, default=None, help=f"training steps (default {d.steps})")
    p.add_argument("--model", choices=("mlp", "cnn"), default=d.model)
    p.add_argument("--width", type=int, default=None, help="hidden width (MLP 128, CNN 32)")
    p.add_argument("--depth", type=int, default=d.depth, help="MLP hidden layers")
    p.add_argument("--activation", default=d.activation, choices=("relu", "tanh", "gelu"))
    p.add_argument("--batch-size", type=int, default=None, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, default=None, help=f"peak Adam learning rate ({d.lr})")
    p.add_argument("--schedule", choices=("cosine", "constant"), default=d.schedule)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=">0: AdamW")
    p.add_argument("--seed", type=int, default=d.seed, help="inits and data orders")
    p.add_argument("--data-seed", type=int, default=d.data_seed, help="split and OOD sets")
    p.add_argument("--heldout-classes", default="8,9", help="digits kept out of training")
    p.add_argument(
        "--severities", default=None, help="shift severity levels 1..5 (default 1,2,3,4,5)"
    )
    p.add_argument(
        "--ensemble-sizes", default=None, help="sizes k for the size curves (default 1..K)"
    )
    p.add_argument("--num-bins", type=int, default=d.num_bins, help="ECE / reliability bins")
    p.add_argument("--smoke", action="store_true", help="tiny config that finishes in seconds")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument(
        "--checkpoint-every", type=int, default=None, help="steps between checkpoints (0: off)"
    )
    p.add_argument(
        "--stop-after-step",
        type=int,
        default=None,
        help="simulate an interruption: stop after this step without writing results",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() (also done when JAX_COORDINATOR_ADDRESS is set)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> tuple[Config, dict[str, Any]]:
    """Split parsed arguments into the :class:`Config` and the run settings."""
    smoke = SMOKE_OVERRIDES if args.smoke else {}
    d = Config()

    def pick(value: Any, key: str) -> Any:
        return value if value is not None else smoke.get(key, getattr(d, key))

    config = Config(
        model=args.model,
        width=pick(args.width, "width"),
        depth=args.depth,
        activation=args.activation,
        members=args.members,
        steps=pick(args.steps, "steps"),
        batch_size=pick(args.batch_size, "batch_size"),
        lr=pick(args.lr, "lr"),
        schedule=args.schedule,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        seed=args.seed,
        data_seed=args.data_seed,
        heldout_classes=_int_tuple(args.heldout_classes),
        severities=pick(
            None if args.severities is None else _int_tuple(args.severities), "severities"
        ),
        num_bins=args.num_bins,
        ensemble_sizes=pick(
            None if args.ensemble_sizes is None else _int_tuple(args.ensemble_sizes),
            "ensemble_sizes",
        ),
        smoke=args.smoke,
    )
    every = args.checkpoint_every
    if every is None:
        every = smoke.get("checkpoint_every", max(config.steps // 4, 1))
    settings = {
        "out": args.out,
        "resume": args.resume,
        "checkpoint_every": every,
        "stop_after_step": args.stop_after_step,
        "progress": not args.no_progress,
        "distributed": args.distributed,
    }
    return config, settings


# --------------------------------------------------------------------------- experiment


def run(config: Config, settings: dict[str, Any]) -> dict[str, Any] | None:
    """Train, evaluate and write all outputs; ``None`` if stopped early (``stop_after_step``)."""
    from experiments import ensemble as ens_lib

    ens_lib.maybe_initialize_distributed(settings.get("distributed", False))

    from flax import nnx

    from experiments.models import build_model

    started, t0 = reporting.utc_now(), time.perf_counter()
    out = settings["out"]
    mesh = ens_lib.make_mesh(config.members)  # fails early if K does not fit the devices
    if config.steps < 1:
        raise ConfigError(f"--steps must be positive, got {config.steps}")
    if any(not 1 <= s <= 5 for s in config.severities):
        raise ConfigError(f"--severities must be levels in 1..5, got {config.severities}")

    data = data_lib.load_digits_dataset(
        seed=config.data_seed, heldout_classes=config.heldout_classes
    )
    if config.batch_size > len(data.y_train):
        raise ConfigError(
            f"--batch-size {config.batch_size} exceeds the {len(data.y_train)} examples"
        )

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return build_model(
            config.model,
            num_classes=data.num_classes,
            width=config.width,
            depth=config.depth,
            activation=config.activation,
            rngs=rngs,
        )

    ensemble = ens_lib.init_ensemble(model_fn, config.members, seed=config.seed, mesh=mesh)

    loss_fn = ens_lib.classification_objective(ensemble)  # entjax.make_objective, CE term
    tx = ens_lib.make_optimizer(
        config.lr,
        steps=config.steps,
        schedule=config.schedule,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
    )
    opt_state = ens_lib.init_opt_state(tx, ensemble.params, mesh)
    step_fn = ens_lib.make_train_step(loss_fn, tx, mesh)
    n_train = len(data.y_train)

    def indices_fn(step: int) -> np.ndarray:
        return data_lib.ensemble_batch_indices(
            config.seed, step, num_members=config.members, n=n_train, batch_size=config.batch_size
        )

    t_train = time.perf_counter()
    result = ens_lib.train(
        step_fn=step_fn,
        params=ensemble.params,
        opt_state=opt_state,
        data={"image": data.x_train, "label": data.y_train},
        indices_fn=indices_fn,
        num_steps=config.steps,
        mesh=mesh,
        checkpoint_dir=os.path.join(out, "checkpoints"),
        checkpoint_every=settings["checkpoint_every"],
        resume=settings["resume"],
        run_config=dataclasses.asdict(config),
        stop_after_step=settings.get("stop_after_step"),
        progress=settings.get("progress", True),
        description=f"{config.members}×{config.model}",
    )
    train_seconds = time.perf_counter() - t_train
    if result.stopped_early:
        print(
            f"stopped after step {result.completed_steps} of {config.steps} (--stop-after-step); "
            f"rerun with --resume to continue",
            file=sys.stderr,
        )
        return None

    # ---- evaluation: every member on every set, one compiled forward pass
    sets: dict[str, np.ndarray] = {"test": data.x_test, "val": data.x_val}
    ood = data_lib.ood_sets(data, config.severities, seed=config.data_seed)
    sets.update(ood)
    set_labels = {"test": data.y_test, "val": data.y_val}
    set_labels.update({name: data.y_test for name in ood if "@" in name})
    eval_fn = ens_lib.make_eval_fn(ensemble.apply, mesh)
    member_logits = ens_lib.predict(
        eval_fn, result.params, np.concatenate(list(sets.values())), mesh
    )
    evalset = EvalSet.build(sets, set_labels)

    results, pe = evaluate(config, evalset, member_logits, list(ood))
    results["training"] = training_summary(result.loss_history)
    results["config"] = dataclasses.asdict(config)
    results["data"] = data.summary()
    results["versions"] = reporting.versions()
    results["devices"] = reporting.device_info()
    finished = reporting.utc_now()
    results[reporting.TIMING_KEY] = {
        "note": "the only run-dependent field: timestamps, durations, paths, resume info",
        "started_utc": started,
        "finished_utc": finished,
        "wall_seconds_before_plots": time.perf_counter() - t0,
        "train_seconds_this_process": train_seconds,
        "resumed_from_step": result.resumed_from_step,
        "out": os.path.abspath(out),
        "command": reporting.command_line(),
    }
    write_outputs(out, results, evalset, pe)
    save_predictions(os.path.join(out, "predictions.npz"), evalset, member_logits)
    return results


def save_predictions(path: str, ev: EvalSet, member_logits: np.ndarray) -> None:
    """Atomically save every member's logits on every set, with labels and set boundaries.

    ``member_logits`` ``(K, n_all, C)``, ``labels`` ``(n_all,)`` (0 for unlabelled sets),
    ``set_names``, ``set_start``, ``set_stop``: what notebooks and tests need to recompute any
    number of the report independently.
    """
    import io

    names = list(ev.slices)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        member_logits=member_logits.astype(np.float32),
        labels=ev.labels,
        set_names=np.asarray(names),
        set_start=np.asarray([ev.slices[n].start for n in names]),
        set_stop=np.asarray([ev.slices[n].stop for n in names]),
        labelled=np.asarray([n in ev.labelled for n in names]),
    )
    reporting.write_bytes(path, buf.getvalue())


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """All evaluation sets concatenated along the example axis, with their slices and labels.

    Unlabelled sets (held-out classes, noise) get label 0 as a placeholder; their label-based
    values are never reported.
    """

    slices: dict[str, slice]
    labels: np.ndarray
    labelled: frozenset[str]

    @staticmethod
    def build(sets: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> EvalSet:
        slices, parts, start = {}, [], 0
        for name, x in sets.items():
            slices[name] = slice(start, start + len(x))
            parts.append(labels.get(name, np.zeros(len(x), np.int32)))
            start += len(x)
        return EvalSet(slices, np.concatenate(parts).astype(np.int32), frozenset(labels))

    def mask(self, name: str) -> np.ndarray:
        m = np.zeros(len(self.labels), bool)
        m[self.slices[name]] = True
        return m


def evaluate(
    config: Config, ev: EvalSet, member_logits: np.ndarray, ood_names: list[str]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every number of the report from member logits ``(K, n_all, C)`` over all sets.

    Returns the results dict and the per-example arrays of :func:`metrics.per_example`.
    """
    from experiments import metrics

    K = config.members
    bins = config.num_bins
    ms = reporting.mean_std
    sizes = ensemble_sizes(config)
    pe = metrics.per_example(member_logits, ev.labels, sizes=sizes)
    S = ev.slices
    ens_lp = pe[f"k{K}_log_probs"]

    def ece_of(logits: np.ndarray, name: str) -> float:
        return metrics.calibration(logits, ev.labels, where=ev.mask(name), num_bins=bins)[0]

    def labelled_block(name: str) -> dict[str, Any]:
        s = S[name]
        members = [
            {
                "accuracy": float(pe["member_correct"][m, s].mean()),
                "nll": float(pe["member_nll"][m, s].mean()),
                "brier": float(pe["member_brier"][m, s].mean()),
                "ece": ece_of(member_logits[m], name),
                "mean_entropy": float(pe["member_entropy"][m, s].mean()),
            }
            for m in range(K)
        ]
        return {
            "members": members,
            "single_model": {key: ms([m[key] for m in members]) for key in members[0]},
            "ensemble": {
                "accuracy": float(pe[f"k{K}_correct"][s].mean()),
                "nll": float(pe[f"k{K}_nll"][s].mean()),
                "brier": float(pe[f"k{K}_brier"][s].mean()),
                "ece": ece_of(ens_lp, name),
                "mean_entropy": float(pe[f"k{K}_total"][s].mean()),
                "mean_aleatoric": float(pe[f"k{K}_aleatoric"][s].mean()),
                "mean_mutual_information": float(pe[f"k{K}_epistemic"][s].mean()),
                "mean_pairwise_kl": float(pe[f"k{K}_pairwise_kl"][s].mean()) if K > 1 else 0.0,
            },
        }

    out: dict[str, Any] = {
        "in_distribution": labelled_block("test"),
        "validation": labelled_block("val"),
    }

    # ---- OOD: entropies and AUROC (in = clean test set, out = the OOD set)
    t = S["test"]
    ood: dict[str, Any] = {}
    for name in ood_names:
        s = S[name]
        per_member = [
            metrics.auroc(pe["member_entropy"][m, t], pe["member_entropy"][m, s]) for m in range(K)
        ]
        block: dict[str, Any] = {
            "num_examples": s.stop - s.start,
            "single_model_entropy": ms(pe["member_entropy"][:, s].mean(axis=1)),
            "ensemble_total_entropy": float(pe[f"k{K}_total"][s].mean()),
            "ensemble_aleatoric": float(pe[f"k{K}_aleatoric"][s].mean()),
            "ensemble_mutual_information": float(pe[f"k{K}_epistemic"][s].mean()),
            "ensemble_pairwise_kl": float(pe[f"k{K}_pairwise_kl"][s].mean()) if K > 1 else 0.0,
            "auroc": {
                "single_model_entropy": {**ms(per_member), "per_member": per_member},
                "ensemble_total_entropy": metrics.auroc(pe[f"k{K}_total"][t], pe[f"k{K}_total"][s]),
                "ensemble_mutual_information": metrics.auroc(
                    pe[f"k{K}_epistemic"][t], pe[f"k{K}_epistemic"][s]
                ),
            },
        }
        if name in ev.labelled:
            block["single_model_accuracy"] = ms(pe["member_correct"][:, s].mean(axis=1))
            block["ensemble_accuracy"] = float(pe[f"k{K}_correct"][s].mean())
            block["ensemble_nll"] = float(pe[f"k{K}_nll"][s].mean())
            block["single_model_nll"] = ms(pe["member_nll"][:, s].mean(axis=1))
        ood[name] = block
    out["ood"] = ood

    # ---- accuracy and entropy vs shift severity (severity 0 = the clean test set)
    ind = out["in_distribution"]
    clean = {
        "single_model_accuracy": ind["single_model"]["accuracy"],
        "ensemble_accuracy": ind["ensemble"]["accuracy"],
        "single_model_nll": ind["single_model"]["nll"],
        "ensemble_nll": ind["ensemble"]["nll"],
        "single_model_entropy": ind["single_model"]["mean_entropy"],
        "ensemble_total_entropy": ind["ensemble"]["mean_entropy"],
        "ensemble_mutual_information": ind["ensemble"]["mean_mutual_information"],
    }
    shift: dict[str, Any] = {}
    for kind in data_lib.SHIFTS:
        levels = [0, *config.severities]
        rows: dict[str, list[Any]] = {
            "severity": levels,
            "value": [0.0] + [data_lib.SHIFT_LEVELS[kind][s - 1] for s in config.severities],
        }
        for key, value in clean.items():
            rows[key] = [value] + [ood[f"{kind}@{lv}"][key] for lv in config.severities]
        for key in ("ensemble_total_entropy", "ensemble_mutual_information"):
            rows[f"auroc_{key}"] = [None] + [
                ood[f"{kind}@{lv}"]["auroc"][key] for lv in config.severities
            ]
        rows["auroc_single_model_entropy"] = [None] + [
            {k: ood[f"{kind}@{lv}"]["auroc"]["single_model_entropy"][k] for k in ("mean", "std")}
            for lv in config.severities
        ]
        shift[kind] = rows
    out["shift"] = shift

    # ---- the same as a function of ensemble size (the first k members)
    size_sets = [n for n in ood_names if "@" not in n]
    if config.severities:
        size_sets += [f"{kind}@{max(config.severities)}" for kind in data_lib.SHIFTS]
    by_size: dict[str, Any] = {
        "k": list(sizes),
        "members_used": "the first k members (0..k-1)",
        "ood_sets": size_sets,
        "accuracy": [float(pe[f"k{k}_correct"][t].mean()) for k in sizes],
        "nll": [float(pe[f"k{k}_nll"][t].mean()) for k in sizes],
        "brier": [float(pe[f"k{k}_brier"][t].mean()) for k in sizes],
        "ece": [ece_of(pe[f"k{k}_log_probs"], "test") for k in sizes],
        "mean_entropy": [float(pe[f"k{k}_total"][t].mean()) for k in sizes],
        "mean_mutual_information": [float(pe[f"k{k}_epistemic"][t].mean()) for k in sizes],
    }
    for score, key in (("total", "auroc_total_entropy"), ("epistemic", "auroc_mutual_information")):
        by_size[key] = {
            n: [metrics.auroc(pe[f"k{k}_{score}"][t], pe[f"k{k}_{score}"][S[n]]) for k in sizes]
            for n in size_sets
        }
    out["ensemble_size"] = by_size

    # ---- reliability (for the plot and the JSON)
    out["reliability"] = {
        "single_model_member_0": metrics.calibration(
            member_logits[0], ev.labels, where=ev.mask("test"), num_bins=bins
        )[1],
        "ensemble": metrics.calibration(ens_lp, ev.labels, where=ev.mask("test"), num_bins=bins)[1],
    }
    return out, pe


def ensemble_sizes(config: Config) -> tuple[int, ...]:
    """Ensemble sizes k for the size curves: ``config.ensemble_sizes`` or all of 1..K."""
    if config.ensemble_sizes is None:
        return tuple(range(1, config.members + 1))
    sizes = tuple(sorted({int(k) for k in config.ensemble_sizes} | {config.members}))
    if sizes[0] < 1 or sizes[-1] > config.members:
        raise ConfigError(f"--ensemble-sizes must lie in 1..{config.members}, got {sizes}")
    return sizes


def training_summary(history: np.ndarray, points: int = 100) -> dict[str, Any]:
    """Training loss curve (every member, subsampled) and the final loss per member."""
    steps = history.shape[0]
    stride = max(steps // points, 1)
    idx = np.unique(np.concatenate([np.arange(0, steps, stride), [steps - 1]]))
    return {
        "loss_curve_step": (idx + 1).tolist(),
        "loss_curve_mean": history[idx].mean(axis=1).tolist(),
        "loss_curve_per_member": history[idx].T.tolist(),
        "final_loss_per_member": history[-1].tolist(),
        "final_loss_mean_last_10pct": float(history[-max(steps // 10, 1) :].mean()),
    }


# --------------------------------------------------------------------------- outputs


def write_outputs(
    out: str, results: dict[str, Any], ev: EvalSet, pe: dict[str, np.ndarray]
) -> None:
    """results.json, report.md and the four PNGs, each written atomically."""

    os.makedirs(out, exist_ok=True)
    reporting.write_json(os.path.join(out, "results.json"), results)
    reporting.write_text(os.path.join(out, "report.md"), render_report(results))

    cfg = results["config"]
    K = cfg["members"]
    max_sev = max(cfg["severities"]) if cfg["severities"] else None

    # entropy histograms, in vs out
    compare = [n for n in ("heldout_classes", "noise") if n in ev.slices]
    if max_sev:
        compare.append(f"rotation@{max_sev}")
    scores = {
        "single model (member 0) entropy": lambda n: pe["member_entropy"][0, ev.slices[n]],
        "ensemble total entropy": lambda n: pe[f"k{K}_total"][ev.slices[n]],
        "ensemble mutual information": lambda n: pe[f"k{K}_epistemic"][ev.slices[n]],
    }
    fig, axes = reporting.new_figure(1, 3, size=(4.4, 3.3))
    for ax, (title, fn) in zip(axes[0], scores.items(), strict=True):
        values = {n: fn(n) for n in ["test", *compare]}
        hi = max(float(np.max(v)) for v in values.values()) or 1.0
        edges = np.linspace(0.0, hi * 1.001, 31)
        for n, v in values.items():
            label = "in-distribution test" if n == "test" else n
            ax.hist(v, bins=edges, density=True, histtype="step", linewidth=1.6, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("nats")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize=7)
    reporting.save_figure(fig, os.path.join(out, "entropy_histograms.png"))

    # reliability diagram
    fig, axes = reporting.new_figure(1, 2, size=(4.0, 3.6))
    for ax, (name, rel) in zip(axes[0], results["reliability"].items(), strict=True):
        edges = np.asarray(rel["bin_edges"])
        counts = np.asarray(rel["counts"])
        acc = np.where(counts > 0, np.asarray(rel["accuracy"]), np.nan)
        conf = np.where(counts > 0, np.asarray(rel["confidence"]), np.nan)
        centers = 0.5 * (edges[:-1] + edges[1:])
        width = np.diff(edges)
        ax.bar(centers, np.nan_to_num(acc), width=width, edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot(centers, conf, "r.", label="mean confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        block = results["in_distribution"]
        ece = block["ensemble"]["ece"] if name == "ensemble" else block["members"][0]["ece"]
        ax.set_title(f"{name.replace('_', ' ')} (ECE {ece:.3f})", fontsize=10)
        ax.set_xlabel("confidence (max probability)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=8, loc="upper left")
    reporting.save_figure(fig, os.path.join(out, "reliability.png"))

    # entropy and accuracy vs severity
    shift = results["shift"]
    fig, axes = reporting.new_figure(2, len(shift), size=(3.8, 3.0))
    for j, (kind, rows) in enumerate(shift.items()):
        sev = rows["severity"]
        sm = np.array([r["mean"] for r in rows["single_model_accuracy"]])
        sd = np.array([r["std"] for r in rows["single_model_accuracy"]])
        ax = axes[0][j]
        ax.plot(sev, sm, "o-", label="single model (mean ± std)")
        ax.fill_between(sev, sm - sd, sm + sd, alpha=0.25)
        ax.plot(sev, rows["ensemble_accuracy"], "s-", label="ensemble")
        ax.set_title(kind.replace("_", " "), fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("accuracy")
        ax = axes[1][j]
        em = np.array([r["mean"] for r in rows["single_model_entropy"]])
        es = np.array([r["std"] for r in rows["single_model_entropy"]])
        ax.plot(sev, em, "o-", label="single-model entropy")
        ax.fill_between(sev, em - es, em + es, alpha=0.25)
        ax.plot(sev, rows["ensemble_total_entropy"], "s-", label="ensemble total entropy")
        ax.plot(sev, rows["ensemble_mutual_information"], "^-", label="mutual information")
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel("nats")
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    reporting.save_figure(fig, os.path.join(out, "severity.png"))

    # AUROC and NLL vs ensemble size
    size = results["ensemble_size"]
    fig, axes = reporting.new_figure(1, 3, size=(4.2, 3.3))
    for ax, key, title in (
        (axes[0][0], "auroc_total_entropy", "OOD AUROC, total entropy"),
        (axes[0][1], "auroc_mutual_information", "OOD AUROC, mutual information"),
    ):
        for n, vals in size[key].items():
            ax.plot(size["k"], vals, "o-", label=n, markersize=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ensemble size k")
        ax.set_ylim(0.4, 1.01)
    axes[0][0].set_ylabel("AUROC")
    axes[0][0].legend(fontsize=7)
    ax = axes[0][2]
    ax.plot(size["k"], size["nll"], "o-", label="NLL")
    ax.plot(size["k"], size["ece"], "s-", label="ECE")
    ax.plot(size["k"], size["brier"], "^-", label="Brier")
    ax.set_title("in-distribution test", fontsize=10)
    ax.set_xlabel("ensemble size k")
    ax.legend(fontsize=7)
    reporting.save_figure(fig, os.path.join(out, "ensemble_size.png"))


def render_report(r: dict[str, Any]) -> str:
    """The human-readable tables of ``report.md``."""
    cfg = r["config"]
    K = cfg["members"]
    ind = r["in_distribution"]
    lines = [
        "# Ensemble entropy: single models vs a deep ensemble",
        "",
        f"{K} × {cfg['model']} (width {cfg['width'] or 'default'}), {cfg['steps']} steps, "
        f"batch {cfg['batch_size']}, Adam lr {cfg['lr']} ({cfg['schedule']}), seed {cfg['seed']}. "
        f"Digits {r['data']['in_classes']} in-distribution "
        f"({r['data']['num_train']} train / {r['data']['num_test']} test), "
        f"{r['data']['heldout_classes']} held out. Devices: {r['devices']['device_count']} × "
        f"{r['devices']['backend']}. Entropies in nats.",
        "",
        "## In-distribution test set",
        "",
    ]
    rows = []
    for key, label in (
        ("accuracy", "accuracy ↑"),
        ("nll", "NLL ↓"),
        ("brier", "Brier ↓"),
        ("ece", "ECE ↓"),
        ("mean_entropy", "mean entropy"),
    ):
        rows.append([label, ind["single_model"][key], ind["ensemble"][key]])
    rows.append(
        ["mutual information", "0 (by definition)", ind["ensemble"]["mean_mutual_information"]]
    )
    lines.append(
        reporting.markdown_table(
            ["metric", "single model (mean ± std over members)", "ensemble"], rows
        )
    )
    lines += ["", "Per member:", ""]
    lines.append(
        reporting.markdown_table(
            ["member", "accuracy", "NLL", "Brier", "ECE", "mean entropy"],
            [
                [str(i), m["accuracy"], m["nll"], m["brier"], m["ece"], m["mean_entropy"]]
                for i, m in enumerate(ind["members"])
            ],
        )
    )
    lines += [
        "",
        "## Out of distribution: mean entropy and detection AUROC",
        "",
        "AUROC: OOD set (positive) vs the clean test set, by the score; 0.5 = chance.",
        "",
    ]
    rows = []
    test_row = [
        "in-distribution test",
        ind["single_model"]["mean_entropy"],
        ind["ensemble"]["mean_entropy"],
        ind["ensemble"]["mean_mutual_information"],
        "—",
        "—",
        "—",
    ]
    rows.append(test_row)
    for name, b in r["ood"].items():
        a = b["auroc"]
        rows.append(
            [
                name,
                b["single_model_entropy"],
                b["ensemble_total_entropy"],
                b["ensemble_mutual_information"],
                {
                    "mean": a["single_model_entropy"]["mean"],
                    "std": a["single_model_entropy"]["std"],
                },
                a["ensemble_total_entropy"],
                a["ensemble_mutual_information"],
            ]
        )
    lines.append(
        reporting.markdown_table(
            [
                "set",
                "single-model entropy",
                "ensemble total entropy",
                "mutual information",
                "AUROC single-model entropy",
                "AUROC ensemble entropy",
                "AUROC mutual information",
            ],
            rows,
            digits=3,
        )
    )
    lines += ["", "## Accuracy and entropy vs shift severity", ""]
    for kind, rows_ in r["shift"].items():
        lines += [f"**{kind.replace('_', ' ')}**", ""]
        table = []
        for i, sev in enumerate(rows_["severity"]):
            table.append(
                [
                    str(sev),
                    f"{rows_['value'][i]:g}",
                    rows_["single_model_accuracy"][i],
                    rows_["ensemble_accuracy"][i],
                    rows_["single_model_entropy"][i],
                    rows_["ensemble_total_entropy"][i],
                    rows_["ensemble_mutual_information"][i],
                ]
            )
        lines.append(
            reporting.markdown_table(
                [
                    "severity",
                    "level",
                    "single-model acc.",
                    "ensemble acc.",
                    "single-model entropy",
                    "ensemble entropy",
                    "mutual information",
                ],
                table,
                digits=3,
            )
        )
        lines.append("")
    size = r["ensemble_size"]
    lines += ["## Ensemble size (first k members)", ""]
    headers = ["k", "accuracy", "NLL", "Brier", "ECE", "MI (test)"]
    headers += [f"AUROC H {n}" for n in size["ood_sets"]]
    headers += [f"AUROC MI {n}" for n in size["ood_sets"]]
    table = []
    for i, k in enumerate(size["k"]):
        row: list[Any] = [str(k), size["accuracy"][i], size["nll"][i], size["brier"][i]]
        row += [size["ece"][i], size["mean_mutual_information"][i]]
        row += [size["auroc_total_entropy"][n][i] for n in size["ood_sets"]]
        row += [size["auroc_mutual_information"][n][i] for n in size["ood_sets"]]
        table.append(row)
    lines.append(reporting.markdown_table(headers, table, digits=3))
    t = r["training"]
    lines += [
        "",
        f"Final training loss (mean of the last 10% of steps, all members): "
        f"{t['final_loss_mean_last_10pct']:.4f}.",
        "",
        "Plots: `entropy_histograms.png`, `reliability.png`, `severity.png`, `ensemble_size.png`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config, settings = config_from_args(args)
    try:
        results = run(config, settings)
    except ConfigError as e:  # configuration errors: a clear message, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    if results is None:
        return 3
    print(f"wrote {os.path.join(settings['out'], 'results.json')} and report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
