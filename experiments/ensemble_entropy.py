"""Does an ensemble know what it doesn't know? Entropy in and out of distribution, vs one model.

Trains K Flax NNX members (different initialisations and data orders) together in one jitted,
vmapped step, sharded over all devices, on scikit-learn's digits with two classes held out; then
compares single members and the ensemble on accuracy, NLL, Brier, ECE, predictive entropy, the
entropy decomposition (total = aleatoric + mutual information) and OOD detection AUROC, on
held-out digits, pure noise, and rotation / Gaussian noise / pixel dropout at several severities,
and as a function of ensemble size.

    python -m experiments.ensemble_entropy --out runs/ensemble
    python -m experiments.ensemble_entropy --smoke --out runs/smoke      # seconds, for tests

Outputs in ``--out``: ``results.json`` (config, versions, devices, every number; run-dependent
values only under ``"timing"``), ``report.md``, PNG plots, ``predictions.npz`` (every member's
logits on every set) and ``checkpoints/`` (orbax).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any

import numpy as np

from experiments.core import cli, data as data_lib, entropy_curves, metrics, outputs, training
from experiments.core.cli import option
from experiments.core.models import ACTIVATIONS, MODELS, build_model
from experiments.core.runner import Experiment, Outcome

NAME = "ensemble_entropy"

SMOKE = {
    "steps": 40,
    "lr": 1e-2,
    "width": 32,
    "batch_size": 32,
    "severities": (2, 5),
    "checkpoint_every": 10,
    "eval_every": 10,
    "ensemble_sizes": (1, 2),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that affects the numbers (output paths, resume and progress do not)."""

    model: str = option("mlp", "model architecture", choices=MODELS)
    width: int | None = option(None, "hidden width (none: MLP 128, CNN 32)")
    depth: int = option(2, "MLP hidden layers")
    activation: str = option("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    members: int = option(8, "ensemble size K")
    steps: int = option(1500, "training steps")
    batch_size: int = option(64, "minibatch size per member")
    lr: float = option(1e-3, "peak Adam learning rate")
    schedule: str = option("cosine", "learning-rate schedule", choices=training.SCHEDULES)
    warmup_steps: int = option(0, "linear warm-up steps")
    weight_decay: float = option(0.0, "AdamW weight decay (0: Adam)")
    seed: int = option(0, "seed of the initialisations and data orders")
    data_seed: int = option(0, "seed of the split and the OOD sets")
    heldout_classes: tuple[int, ...] = option((8, 9), "digits kept out of training (OOD)")
    severities: tuple[int, ...] = option((1, 2, 3, 4, 5), "shift severity levels in 1..5")
    num_bins: int = option(15, "ECE / reliability bins")
    ensemble_sizes: tuple[int, ...] | None = option(None, "sizes k of the size curves (none: 1..K)")
    checkpoint_every: int | None = option(None, "steps between checkpoints (none: steps / 4)")
    eval_every: int = option(100, "steps between the entropy-through-training evaluations")

    def __post_init__(self):
        cli.require_positive(self, "lr")
        cli.require_positive(self, "weight_decay", "warmup_steps", allow_zero=True)
        for name in ("members", "steps", "batch_size", "depth", "num_bins", "eval_every"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.width is None or self.width >= 1, "--width must be >= 1")
        cli.require_choice(self, "model", MODELS)
        cli.require_choice(self, "activation", tuple(ACTIVATIONS))
        cli.require_choice(self, "schedule", training.SCHEDULES)
        cli.require_choice(self, "severities", range(1, 6))
        cli.require_choice(self, "heldout_classes", range(10))
        kept = 10 - len(set(self.heldout_classes))
        cli.require(kept >= 2, f"--heldout-classes leaves {kept} digit(s) in-distribution; need 2")
        if self.ensemble_sizes is not None:
            cli.require_choice(self, "ensemble_sizes", range(1, self.members + 1))
        cli.require(
            self.checkpoint_every is None or self.checkpoint_every >= 0,
            "--checkpoint-every must be >= 0 (0: only at the end)",
        )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Ensemble sizes k of the size curves, always ending with K."""
        if self.ensemble_sizes is None:
            return tuple(range(1, self.members + 1))
        return tuple(sorted({int(k) for k in self.ensemble_sizes} | {self.members}))


# --------------------------------------------------------------------------- evaluation sets


@dataclasses.dataclass(frozen=True)
class EvalSets:
    """All evaluation sets concatenated along the example axis, with their slices and labels.

    Unlabelled sets (held-out classes, noise) get label 0 as a placeholder; their label-based
    values are never reported.
    """

    images: np.ndarray
    labels: np.ndarray
    slices: dict[str, slice]
    labelled: frozenset[str]

    @staticmethod
    def build(data: data_lib.DigitsData, config: Config) -> EvalSets:
        sets = {"test": data.x_test, "val": data.x_val}
        ood = data_lib.ood_sets(data, config.severities, seed=config.data_seed)
        sets.update(ood)
        labels = {"test": data.y_test, "val": data.y_val}
        labels.update({name: data.y_test for name in ood if "@" in name})
        slices, parts, start = {}, [], 0
        for name, x in sets.items():
            slices[name] = slice(start, start + len(x))
            parts.append(labels.get(name, np.zeros(len(x), np.int32)))
            start += len(x)
        return EvalSets(
            np.concatenate(list(sets.values())),
            np.concatenate(parts).astype(np.int32),
            slices,
            frozenset(labels),
        )

    @property
    def ood_names(self) -> list[str]:
        return [n for n in self.slices if n not in ("test", "val")]

    def mask(self, name: str) -> np.ndarray:
        m = np.zeros(len(self.labels), bool)
        m[self.slices[name]] = True
        return m

    def predictions_npz(self, member_logits: np.ndarray) -> dict[str, np.ndarray]:
        """Every member's logits on every set, with labels and set boundaries: what notebooks
        and tests need to recompute any number of the report independently."""
        names = list(self.slices)
        return {
            "member_logits": member_logits.astype(np.float32),
            "labels": self.labels,
            "set_names": np.asarray(names),
            "set_start": np.asarray([self.slices[n].start for n in names]),
            "set_stop": np.asarray([self.slices[n].stop for n in names]),
            "labelled": np.asarray([n in self.labelled for n in names]),
        }


@dataclasses.dataclass(frozen=True)
class Scores:
    """Per-example scores on :class:`EvalSets` and the reductions the report needs."""

    sets: EvalSets
    logits: np.ndarray  # (K, n_all, C)
    per: metrics.PerExample
    num_bins: int

    @property
    def full(self) -> metrics.EnsembleScores:
        return self.per.ensembles[len(self.logits)]

    def ece(self, logits: np.ndarray, name: str) -> float:
        return metrics.calibration(
            logits, self.sets.labels, where=self.sets.mask(name), num_bins=self.num_bins
        )[0]

    def reliability(self, logits: np.ndarray) -> dict[str, np.ndarray]:
        return metrics.calibration(
            logits, self.sets.labels, where=self.sets.mask("test"), num_bins=self.num_bins
        )[1]

    def auroc(self, scores: np.ndarray, name: str) -> float:
        """AUROC of ``scores`` (n_all,) for set ``name`` (positive) against the clean test set."""
        return metrics.auroc(scores[self.sets.slices["test"]], scores[self.sets.slices[name]])

    def pairwise_kl(self, s: slice) -> float:
        return float(self.per.pairwise_kl[s].mean()) if self.per.pairwise_kl is not None else 0.0


def labelled_block(sc: Scores, name: str) -> dict[str, Any]:
    """Accuracy, NLL, Brier, ECE and entropy on set ``name``, per member and for the ensemble."""
    s, m, ens = sc.sets.slices[name], sc.per.members, sc.full
    members = [
        {
            "accuracy": float(m.correct[i, s].mean()),
            "nll": float(m.nll[i, s].mean()),
            "brier": float(m.brier[i, s].mean()),
            "ece": sc.ece(sc.logits[i], name),
            "mean_entropy": float(m.entropy[i, s].mean()),
        }
        for i in range(len(sc.logits))
    ]
    return {
        "members": members,
        "single_model": {key: metrics.mean_std([r[key] for r in members]) for key in members[0]},
        "ensemble": {
            "accuracy": float(ens.correct[s].mean()),
            "nll": float(ens.nll[s].mean()),
            "brier": float(ens.brier[s].mean()),
            "ece": sc.ece(ens.log_probs, name),
            "mean_entropy": float(ens.total[s].mean()),
            "mean_aleatoric": float(ens.aleatoric[s].mean()),
            "mean_mutual_information": float(ens.epistemic[s].mean()),
            "mean_pairwise_kl": sc.pairwise_kl(s),
        },
    }


def ood_block(sc: Scores, name: str) -> dict[str, Any]:
    """Mean entropies and detection AUROC of OOD set ``name`` (and accuracy if labelled)."""
    s, m, ens = sc.sets.slices[name], sc.per.members, sc.full
    per_member = [sc.auroc(m.entropy[i], name) for i in range(len(sc.logits))]
    block: dict[str, Any] = {
        "num_examples": s.stop - s.start,
        "single_model_entropy": metrics.mean_std(m.entropy[:, s].mean(axis=1)),
        "ensemble_total_entropy": float(ens.total[s].mean()),
        "ensemble_aleatoric": float(ens.aleatoric[s].mean()),
        "ensemble_mutual_information": float(ens.epistemic[s].mean()),
        "ensemble_pairwise_kl": sc.pairwise_kl(s),
        "auroc": {
            "single_model_entropy": {**metrics.mean_std(per_member), "per_member": per_member},
            "ensemble_total_entropy": sc.auroc(ens.total, name),
            "ensemble_mutual_information": sc.auroc(ens.epistemic, name),
        },
    }
    if name in sc.sets.labelled:
        block["single_model_accuracy"] = metrics.mean_std(m.correct[:, s].mean(axis=1))
        block["ensemble_accuracy"] = float(ens.correct[s].mean())
        block["ensemble_nll"] = float(ens.nll[s].mean())
        block["single_model_nll"] = metrics.mean_std(m.nll[:, s].mean(axis=1))
    return block


SHIFT_COLUMNS = (
    "single_model_accuracy",
    "ensemble_accuracy",
    "single_model_nll",
    "ensemble_nll",
    "single_model_entropy",
    "ensemble_total_entropy",
    "ensemble_mutual_information",
)


def shift_rows(results: dict[str, Any], severities: tuple[int, ...]) -> dict[str, Any]:
    """Per shift family, the clean test set (severity 0) and every severity, column-wise."""
    ind, ood = results["in_distribution"], results["ood"]
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
        blocks = [ood[f"{kind}@{lv}"] for lv in severities]
        rows: dict[str, list[Any]] = {
            "severity": [0, *severities],
            "value": [0.0] + [data_lib.SHIFT_LEVELS[kind][s - 1] for s in severities],
        }
        for key in SHIFT_COLUMNS:
            rows[key] = [clean[key]] + [b[key] for b in blocks]
        for key in ("ensemble_total_entropy", "ensemble_mutual_information"):
            rows[f"auroc_{key}"] = [None] + [b["auroc"][key] for b in blocks]
        rows["auroc_single_model_entropy"] = [None] + [
            {k: b["auroc"]["single_model_entropy"][k] for k in ("mean", "std")} for b in blocks
        ]
        shift[kind] = rows
    return shift


def size_curves(sc: Scores, config: Config) -> dict[str, Any]:
    """Test metrics and OOD AUROC of the ensemble of the first k members, k in ``config.sizes``."""
    t, sizes = sc.sets.slices["test"], config.sizes
    size_sets = [n for n in sc.sets.ood_names if "@" not in n]
    if config.severities:
        size_sets += [f"{kind}@{max(config.severities)}" for kind in data_lib.SHIFTS]
    by_k = [sc.per.ensembles[k] for k in sizes]
    return {
        "k": list(sizes),
        "members_used": "the first k members (0..k-1)",
        "ood_sets": size_sets,
        "accuracy": [float(e.correct[t].mean()) for e in by_k],
        "nll": [float(e.nll[t].mean()) for e in by_k],
        "brier": [float(e.brier[t].mean()) for e in by_k],
        "ece": [sc.ece(e.log_probs, "test") for e in by_k],
        "mean_entropy": [float(e.total[t].mean()) for e in by_k],
        "mean_mutual_information": [float(e.epistemic[t].mean()) for e in by_k],
        "auroc_total_entropy": {n: [sc.auroc(e.total, n) for e in by_k] for n in size_sets},
        "auroc_mutual_information": {
            n: [sc.auroc(e.epistemic, n) for e in by_k] for n in size_sets
        },
    }


def evaluate(sc: Scores, config: Config) -> dict[str, Any]:
    """Every number of the report, from the member logits on every set."""
    out: dict[str, Any] = {
        "in_distribution": labelled_block(sc, "test"),
        "validation": labelled_block(sc, "val"),
        "ood": {name: ood_block(sc, name) for name in sc.sets.ood_names},
    }
    out["shift"] = shift_rows(out, config.severities)
    out["ensemble_size"] = size_curves(sc, config)
    out["reliability"] = {
        "single_model_member_0": sc.reliability(sc.logits[0]),
        "ensemble": sc.reliability(sc.full.log_probs),
    }
    return out


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


# --------------------------------------------------------------------------- the experiment


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Train the K members, evaluate them and the ensemble on every set."""
    data = data_lib.load_digits_dataset(
        seed=config.data_seed, heldout_classes=config.heldout_classes
    )

    def model_fn(rngs):
        return build_model(
            config.model,
            num_classes=data.num_classes,
            width=config.width,
            depth=config.depth,
            activation=config.activation,
            rngs=rngs,
        )

    members = training.Members.create(model_fn, config.members, seed=config.seed)
    tx = training.make_optimizer(
        config.lr,
        steps=config.steps,
        schedule=config.schedule,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
    )
    every = config.checkpoint_every
    t_train = time.perf_counter()
    result = members.train(
        training.classification_objective(members.ensemble),
        tx,
        data={"image": data.x_train, "label": data.y_train},
        batch_size=config.batch_size,
        seed=config.seed,
        schedule=training.Schedule(
            config.steps,
            eval_every=config.eval_every,
            checkpoint_every=max(config.steps // 4, 1) if every is None else every,
        ),
        options=options,
        run_config=dataclasses.asdict(config),
        description=f"{config.members}×{config.model}",
        probe=entropy_curves.EntropyProbe(
            data.x_train, data.x_val, data.y_val, groups=[list(range(config.members))]
        ),
    )
    train_seconds = time.perf_counter() - t_train
    sets = EvalSets.build(data, config)
    logits = members.predict(result.params, sets.images)
    scores = Scores(
        sets, logits, metrics.per_example(logits, sets.labels, sizes=config.sizes), config.num_bins
    )
    results = evaluate(scores, config)
    results["training"] = training_summary(result.loss_history)
    results["entropy_curves"] = {
        "digits": entropy_curves.summarise(
            result.curves,
            result.loss_history,
            group_names=["ensemble"],
            max_entropy=math.log(data.num_classes),
        )
    }
    results["data"] = data.summary()
    return Outcome(
        results,
        arrays={"scores": scores},
        npz={"predictions": sets.predictions_npz(logits)},
        timing={
            "train_seconds_this_process": train_seconds,
            "resumed_from_step": result.resumed_from_step,
        },
    )


# --------------------------------------------------------------------------- report


def _header(r: dict[str, Any]) -> list[str]:
    cfg, d = r["config"], r["data"]
    return [
        "# Ensemble entropy: single models vs a deep ensemble",
        "",
        f"{cfg['members']} × {cfg['model']} (width {cfg['width'] or 'default'}), {cfg['steps']} "
        f"steps, batch {cfg['batch_size']}, Adam lr {cfg['lr']} ({cfg['schedule']}), seed "
        f"{cfg['seed']}. Digits {d['in_classes']} in-distribution ({d['num_train']} train / "
        f"{d['num_test']} test), {d['heldout_classes']} held out. Devices: "
        f"{r['devices']['device_count']} × {r['devices']['backend']}. Entropies in nats.",
        "",
    ]


def _in_distribution(r: dict[str, Any]) -> list[str]:
    ind = r["in_distribution"]
    labels = (
        ("accuracy", "accuracy ↑"),
        ("nll", "NLL ↓"),
        ("brier", "Brier ↓"),
        ("ece", "ECE ↓"),
        ("mean_entropy", "mean entropy"),
    )
    rows: list[list[Any]] = [
        [label, ind["single_model"][key], ind["ensemble"][key]] for key, label in labels
    ]
    mi = ind["ensemble"]["mean_mutual_information"]
    rows.append(["mutual information", "0 (by definition)", mi])
    members = [
        [str(i), m["accuracy"], m["nll"], m["brier"], m["ece"], m["mean_entropy"]]
        for i, m in enumerate(ind["members"])
    ]
    return [
        "## In-distribution test set",
        "",
        outputs.markdown_table(
            ["metric", "single model (mean ± std over members)", "ensemble"], rows
        ),
        "",
        "Per member:",
        "",
        outputs.markdown_table(
            ["member", "accuracy", "NLL", "Brier", "ECE", "mean entropy"], members
        ),
    ]


def _ood(r: dict[str, Any]) -> list[str]:
    ind = r["in_distribution"]
    rows: list[list[Any]] = [
        [
            "in-distribution test",
            ind["single_model"]["mean_entropy"],
            ind["ensemble"]["mean_entropy"],
            ind["ensemble"]["mean_mutual_information"],
            "—",
            "—",
            "—",
        ]
    ]
    for name, b in r["ood"].items():
        a = b["auroc"]
        single = {k: a["single_model_entropy"][k] for k in ("mean", "std")}
        entropies = [b[k] for k in ("single_model_entropy", "ensemble_total_entropy")]
        entropies.append(b["ensemble_mutual_information"])
        aurocs = [a["ensemble_total_entropy"], a["ensemble_mutual_information"]]
        rows.append([name, *entropies, single, *aurocs])
    headers = ["set", "single-model entropy", "ensemble total entropy", "mutual information"]
    headers += ["AUROC single-model entropy", "AUROC ensemble entropy", "AUROC mutual information"]
    return [
        "",
        "## Out of distribution: mean entropy and detection AUROC",
        "",
        "AUROC: OOD set (positive) vs the clean test set, by the score; 0.5 = chance.",
        "",
        outputs.markdown_table(headers, rows, digits=3),
    ]


def _shift(r: dict[str, Any]) -> list[str]:
    lines = ["", "## Accuracy and entropy vs shift severity", ""]
    headers = ["severity", "level", "single-model acc.", "ensemble acc.", "single-model entropy"]
    headers += ["ensemble entropy", "mutual information"]
    keys = ("single_model_accuracy", "ensemble_accuracy", "single_model_entropy")
    keys += ("ensemble_total_entropy", "ensemble_mutual_information")
    for kind, rows in r["shift"].items():
        table = [
            [str(sev), f"{rows['value'][i]:g}", *(rows[k][i] for k in keys)]
            for i, sev in enumerate(rows["severity"])
        ]
        lines += [f"**{kind.replace('_', ' ')}**", ""]
        lines += [outputs.markdown_table(headers, table, digits=3), ""]
    return lines


def _sizes(r: dict[str, Any]) -> list[str]:
    size = r["ensemble_size"]
    headers = ["k", "accuracy", "NLL", "Brier", "ECE", "MI (test)"]
    headers += [f"AUROC H {n}" for n in size["ood_sets"]]
    headers += [f"AUROC MI {n}" for n in size["ood_sets"]]
    table = []
    for i, k in enumerate(size["k"]):
        row: list[Any] = [str(k)]
        row += [size[key][i] for key in ("accuracy", "nll", "brier", "ece")]
        row += [size["mean_mutual_information"][i]]
        row += [size["auroc_total_entropy"][n][i] for n in size["ood_sets"]]
        row += [size["auroc_mutual_information"][n][i] for n in size["ood_sets"]]
        table.append(row)
    return ["## Ensemble size (first k members)", "", outputs.markdown_table(headers, table, 3)]


def report(r: dict[str, Any]) -> str:
    """The human-readable tables of ``report.md``."""
    final = r["training"]["final_loss_mean_last_10pct"]
    lines = _header(r) + _in_distribution(r) + _ood(r) + _shift(r) + _sizes(r)
    lines += [
        "",
        f"Final training loss (mean of the last 10% of steps, all members): {final:.4f}.",
        "",
        "Plots: `entropy_histograms.png`, `reliability.png`, `severity.png`, `ensemble_size.png`.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def _histograms(r: dict[str, Any], sc: Scores) -> Any:
    sl = sc.sets.slices
    compare = [n for n in ("heldout_classes", "noise") if n in sl]
    if r["config"]["severities"]:
        compare.append(f"rotation@{max(r['config']['severities'])}")
    scores = {
        "single model (member 0) entropy": sc.per.members.entropy[0],
        "ensemble total entropy": sc.full.total,
        "ensemble mutual information": sc.full.epistemic,
    }
    fig, axes = outputs.new_figure(1, 3, size=(4.4, 3.3))
    for ax, (title, values) in zip(axes[0], scores.items(), strict=True):
        per_set = {n: values[sl[n]] for n in ["test", *compare]}
        hi = max(float(np.max(v)) for v in per_set.values()) or 1.0
        edges = np.linspace(0.0, hi * 1.001, 31)
        for n, v in per_set.items():
            label = "in-distribution test" if n == "test" else n
            ax.hist(v, bins=edges, density=True, histtype="step", linewidth=1.6, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("nats")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize=7)
    return fig


def _reliability(r: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, 2, size=(4.0, 3.6))
    block = r["in_distribution"]
    for ax, (name, rel) in zip(axes[0], r["reliability"].items(), strict=True):
        edges, counts = np.asarray(rel["bin_edges"]), np.asarray(rel["counts"])
        acc = np.where(counts > 0, np.asarray(rel["accuracy"], float), np.nan)
        conf = np.where(counts > 0, np.asarray(rel["confidence"], float), np.nan)
        centers = 0.5 * (edges[:-1] + edges[1:])
        ax.bar(
            centers,
            np.nan_to_num(acc),
            width=np.diff(edges),
            edgecolor="k",
            alpha=0.7,
            label="accuracy",
        )
        ax.plot(centers, conf, "r.", label="mean confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ece = block["ensemble"]["ece"] if name == "ensemble" else block["members"][0]["ece"]
        ax.set_title(f"{name.replace('_', ' ')} (ECE {ece:.3f})", fontsize=10)
        ax.set_xlabel("confidence (max probability)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=8, loc="upper left")
    return fig


def _band(ax: Any, x: list[Any], cells: list[dict[str, float]], label: str) -> None:
    mean = np.array([c["mean"] for c in cells])
    std = np.array([c["std"] for c in cells])
    ax.plot(x, mean, "o-", label=label)
    ax.fill_between(x, mean - std, mean + std, alpha=0.25)


def _severity(r: dict[str, Any]) -> Any:
    shift = r["shift"]
    fig, axes = outputs.new_figure(2, len(shift), size=(3.8, 3.0))
    for j, (kind, rows) in enumerate(shift.items()):
        sev = rows["severity"]
        _band(axes[0][j], sev, rows["single_model_accuracy"], "single model (mean ± std)")
        axes[0][j].plot(sev, rows["ensemble_accuracy"], "s-", label="ensemble")
        axes[0][j].set_title(kind.replace("_", " "), fontsize=10)
        axes[0][j].set_ylim(0, 1.02)
        axes[0][j].set_ylabel("accuracy")
        _band(axes[1][j], sev, rows["single_model_entropy"], "single-model entropy")
        axes[1][j].plot(sev, rows["ensemble_total_entropy"], "s-", label="ensemble total entropy")
        axes[1][j].plot(sev, rows["ensemble_mutual_information"], "^-", label="mutual information")
        axes[1][j].set_xlabel("severity (0 = clean)")
        axes[1][j].set_ylabel("nats")
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    return fig


def _ensemble_size(r: dict[str, Any]) -> Any:
    size = r["ensemble_size"]
    fig, axes = outputs.new_figure(1, 3, size=(4.2, 3.3))
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
    for key, style in (("nll", "o-"), ("ece", "s-"), ("brier", "^-")):
        ax.plot(size["k"], size[key], style, label=key.upper() if key != "brier" else "Brier")
    ax.set_title("in-distribution test", fontsize=10)
    ax.set_xlabel("ensemble size k")
    ax.legend(fontsize=7)
    return fig


def figures(r: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    return {
        "entropy_histograms": _histograms(r, arrays["scores"]),
        "reliability": _reliability(r),
        "severity": _severity(r),
        "ensemble_size": _ensemble_size(r),
    }


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
