"""Output entropy through training: the probe every experiment's evaluation hook runs.

"Throughout training, you can track how output entropy changes": a steady fall means the model
grows confident, an abrupt rise signals a mismatch or instability. :class:`EntropyProbe` measures,
at every evaluation of :func:`experiments.core.training.fit`, each member's mean predictive
entropy on a fixed subset of the training set and on the validation split (with the validation
NLL when labels are given), and for ensembles the entropy of the ensemble's mean prediction and
the members' mutual information. :func:`summarise` turns those curves and the per-step training
loss into the ``entropy_curves`` block of ``results.json``, with the alarm rule below applied;
:func:`report_section` and :func:`figure` render it the same way in every experiment.

**Alarm rule.** Between two consecutive evaluations, a series (a member group's mean) is
flagged when its mean validation entropy rises by more than ``max(0.05 nats, 25 %)`` of its
previous value while the mean training loss of the steps since the previous evaluation is lower
than that of the window before (the training loss keeps falling): the model grows less certain
on held-out data as it fits the training data better, the instability / overfitting signal.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import entjax
from experiments.core import outputs

ABS_RISE_NATS = 0.05
REL_RISE = 0.25
RULE = (
    f"flagged when the mean validation entropy rises by more than max({ABS_RISE_NATS} nats, "
    f"{REL_RISE:.0%}) between consecutive evaluations while the mean training loss over the "
    "steps since the previous evaluation is below that of the window before"
)
TRAIN_SUBSET = 512


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """Predictive entropy (nats) of categorical logits ``(..., C)``."""
    return entjax.entropy(logits)


def bernoulli_entropy(logits: jax.Array) -> jax.Array:
    """Entropy (nats) of independent Bernoulli outputs ``(..., D)``, summed over ``D``."""
    return jnp.sum(entjax.binary_entropy(logits), axis=-1)


@jax.jit
def _categorical_scores(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    return {
        "entropy": jnp.mean(entjax.entropy(logits), axis=-1),
        "nll": jnp.mean(
            entjax.negative_log_likelihood(logits, jnp.broadcast_to(labels, logits.shape[:-1])),
            axis=-1,
        ),
    }


@jax.jit
def _ensemble_scores(group_logits: jax.Array) -> dict[str, jax.Array]:
    """Mean total entropy and mutual information of ensembles ``(G, M, n, C)``."""
    u = jax.vmap(lambda lg: entjax.ensemble_uncertainty(lg, axis=0))(group_logits)
    return {"entropy": jnp.mean(u.total, axis=-1), "mi": jnp.mean(u.epistemic, axis=-1)}


@dataclasses.dataclass(frozen=True)
class EntropyProbe:
    """What to measure at each evaluation; call :meth:`bind` with the members to get the hook.

    Attributes:
      train_x: training inputs; the first :data:`TRAIN_SUBSET` are measured (a fixed subset, so
        the curve is not the noise of a changing batch).
      val_x, val_y: the validation split (``val_y`` optional: the validation NLL).
      apply: per-member ``(params, x) -> outputs`` (default: the model's logits).
      entropy: per-example entropy of those outputs (default categorical; see
        :func:`bernoulli_entropy`).
      groups: member indices of each ensemble, for the ensemble entropy and mutual information.
      postprocess: applied to the ``(K, n, ...)`` outputs before the entropy (e.g. a per-member
        logit scale).
    """

    train_x: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray | None = None
    apply: Callable[..., jax.Array] | None = None
    entropy: Callable[[jax.Array], jax.Array] = categorical_entropy
    groups: Sequence[Sequence[int]] | None = None
    postprocess: Callable[[np.ndarray], np.ndarray] | None = None

    def bind(self, members: Any) -> Callable[[Any], dict[str, np.ndarray]]:
        """The evaluation hook ``params -> {name: array}`` for :func:`training.fit`."""
        train_x = self.train_x[:TRAIN_SUBSET]
        entropy = jax.jit(lambda out: jnp.mean(self.entropy(out), axis=-1))

        def probe(params: Any) -> dict[str, np.ndarray]:
            train_out = members.predict(params, train_x, self.apply)
            val_out = members.predict(params, self.val_x, self.apply)
            if self.postprocess is not None:
                train_out, val_out = self.postprocess(train_out), self.postprocess(val_out)
            out = {
                "entropy_train": np.asarray(entropy(train_out), np.float64),
                "entropy_val": np.asarray(entropy(val_out), np.float64),
            }
            if self.val_y is not None:
                nll = _categorical_scores(jnp.asarray(val_out), jnp.asarray(self.val_y))["nll"]
                out["nll_val"] = np.asarray(nll, np.float64)
            if self.groups is not None:
                grouped = jnp.asarray(val_out[np.asarray(self.groups)])
                ens = _ensemble_scores(grouped)
                out["ensemble_entropy_val"] = np.asarray(ens["entropy"], np.float64)
                out["mutual_information_val"] = np.asarray(ens["mi"], np.float64)
            return out

        return probe


# --------------------------------------------------------------------------- summary


def series_by(grid: Sequence[Mapping[str, Any]], key: str, symbol: str | None = None) -> dict:
    """Members of a :func:`~experiments.core.training.member_grid` grouped by ``key``'s value:
    ``{"λ=0.1": [indices], ...}``, in the grid's order."""
    out: dict[str, list[int]] = {}
    for i, member in enumerate(grid):
        value = member[key]
        text = f"{value:g}" if isinstance(value, (int, float)) else str(value)
        out.setdefault(f"{symbol or key}={text}", []).append(i)
    return out


def _window_losses(loss_history: np.ndarray, steps: Sequence[int], members: list[int]) -> list:
    """Mean training loss of ``members`` over the steps since the previous evaluation."""
    out: list[float | None] = [None]
    for prev, step in itertools.pairwise(steps):
        window = loss_history[prev:step][:, members]
        out.append(float(np.mean(window)) if window.size else None)
    return out


def alarms(val_entropy: Sequence[float], window_loss: Sequence[float | None], steps) -> list:
    """The evaluations at which the :data:`RULE` fires: ``[{"step", "from", "to"}]``."""
    fired = []
    for t in range(2, len(steps)):
        before, now = val_entropy[t - 1], val_entropy[t]
        rise = now - before > max(ABS_RISE_NATS, REL_RISE * before)
        loss_now, loss_before = window_loss[t], window_loss[t - 1]
        falling = loss_now is not None and loss_before is not None and loss_now < loss_before
        if rise and falling:
            fired.append({"step": int(steps[t]), "from": float(before), "to": float(now)})
    return fired


def _loss_curve(loss_history: np.ndarray, members: list[int], points: int = 400) -> dict:
    """The per-step training loss of ``members`` (mean), subsampled to about ``points``."""
    steps = len(loss_history)
    idx = np.unique(np.linspace(0, steps - 1, min(points, steps)).round().astype(int))
    return {"step": (idx + 1).tolist(), "mean": loss_history[idx][:, members].mean(axis=1)}


def summarise(
    curves: Any,
    loss_history: np.ndarray,
    *,
    series: Mapping[str, Sequence[int]] | None = None,
    group_names: Sequence[str] | None = None,
    max_entropy: float | None = None,
) -> dict[str, Any]:
    """The block of one training run: per-member curves, series means, alarms, the rule.

    ``series`` names groups of members whose mean is reported and drawn (default: all members);
    ``group_names`` labels the probe's ensembles; ``max_entropy`` is the ceiling (log C).
    Experiments put one block per training run under ``results["entropy_curves"][name]``; the
    runner adds :func:`report_section` and :func:`figure` for them.
    """
    m, steps = curves.metrics, list(curves.steps)
    series = dict(series or {"all members": list(range(m["entropy_val"].shape[1]))})
    member_keys = [k for k in ("entropy_train", "entropy_val", "nll_val") if k in m]
    out: dict[str, Any] = {
        "rule": RULE,
        "steps": steps,
        "max_entropy": max_entropy,
        "per_member": {key: m[key].T for key in member_keys},
        "series": {},
    }
    for name, members in series.items():
        idx = list(members)
        entry: dict[str, Any] = {key: m[key][:, idx].mean(axis=1) for key in member_keys}
        entry["train_loss_window"] = _window_losses(loss_history, steps, idx)
        entry["alarms"] = alarms(entry["entropy_val"], entry["train_loss_window"], steps)
        entry["train_loss"] = _loss_curve(loss_history, idx)
        out["series"][name] = entry
    if "ensemble_entropy_val" in m:
        count = m["ensemble_entropy_val"].shape[1]
        out["ensembles"] = {
            "names": list(group_names or [f"ensemble {g}" for g in range(count)]),
            "entropy_val": m["ensemble_entropy_val"].T,
            "mutual_information_val": m["mutual_information_val"].T,
        }
    return out


# --------------------------------------------------------------------------- report, figure


def _reading(name: str, s: Mapping[str, Any], ceiling: float | None) -> str:
    val = np.asarray(s["entropy_val"], float)
    train = np.asarray(s["entropy_train"], float)
    of_max = f" ({val[-1] / ceiling:.0%} of log C)" if ceiling else ""
    direction = "fell" if val[-1] < val[0] else "rose"
    gap = val[-1] - train[-1]
    text = (
        f"{name}: validation entropy {direction} from {val[0]:.3f} to {val[-1]:.3f} nats{of_max}; "
        f"at the end it is {gap:+.3f} nats from the training-subset entropy"
    )
    if s["alarms"]:
        steps = ", ".join(str(a["step"]) for a in s["alarms"])
        return text + f"; **alarm** at step(s) {steps}."
    return text + "; no alarm."


def _table(block: Mapping[str, Any], max_rows: int) -> str:
    steps = block["steps"]
    keep = np.unique(np.linspace(0, len(steps) - 1, min(max_rows, len(steps))).round())
    keep = keep.astype(int)
    labels = {"entropy_train": "H train", "entropy_val": "H val", "nll_val": "NLL val"}
    several = len(block["series"]) > 1
    headers, columns = ["step"], [[str(steps[i]) for i in keep]]
    for name, s in block["series"].items():
        for key, label in labels.items():
            if key in s:
                headers.append(f"{label} ({name})" if several else label)
                columns.append([s[key][i] for i in keep])
    if "ensembles" in block:
        ens = block["ensembles"]
        for key, label in (("entropy_val", "ensemble H val"), ("mutual_information_val", "MI val")):
            headers.append(f"{label} (mean)")
            columns.append([float(np.mean(np.asarray(ens[key])[:, i])) for i in keep])
    rows = [list(r) for r in zip(*columns, strict=True)]
    return outputs.markdown_table(headers, rows, digits=3)


def report_section(blocks: Mapping[str, Mapping[str, Any]], *, max_rows: int = 12) -> str:
    """Markdown for ``results["entropy_curves"]``: readings, the rule, the curves (subsampled)."""
    lines = ["## Entropy through training", ""]
    for run, block in blocks.items():
        ceiling = block.get("max_entropy")
        prefix = f"{run}, " if len(blocks) > 1 else ""
        lines += [f"- {prefix}{_reading(n, s, ceiling)}" for n, s in block["series"].items()]
    lines += ["", f"Alarm rule: {RULE}.", ""]
    for run, block in blocks.items():
        if len(blocks) > 1:
            lines += [f"**{run}**", ""]
        lines += [_table(block, max_rows), ""]
    lines.append("Figure: `entropy_curves.png` (entropy against step, the loss beside it).")
    return "\n".join(lines)


def _entropy_axes(ax: Any, block: Mapping[str, Any]) -> None:
    steps = np.asarray(block["steps"])
    several = len(block["series"]) > 1
    for i, (name, s) in enumerate(block["series"].items()):
        color, label = f"C{i % 10}", f" ({name})" if several else ""
        ax.plot(steps, s["entropy_val"], "-", color=color, label=f"validation{label}")
        ax.plot(steps, s["entropy_train"], "--", color=color, label=f"training subset{label}")
        for alarm in s["alarms"]:
            ax.axvline(alarm["step"], color=color, lw=0.8, ls=":")
    if "ensembles" in block:
        ens = block["ensembles"]
        ax.plot(steps, np.mean(ens["entropy_val"], axis=0), "k-", lw=2, label="ensemble (val)")
        mi = np.mean(ens["mutual_information_val"], axis=0)
        ax.plot(steps, mi, "k:", lw=2, label="mutual information (val)")
    if block.get("max_entropy"):
        ax.axhline(block["max_entropy"], color="0.5", lw=0.8, ls="--", label="log C")
    ax.set(xlabel="step", ylabel="mean predictive entropy (nats)")


def _loss_axes(ax: Any, block: Mapping[str, Any]) -> None:
    several = len(block["series"]) > 1
    positive = True
    for i, (name, s) in enumerate(block["series"].items()):
        color, label = f"C{i % 10}", f" ({name})" if several else ""
        loss = np.asarray(s["train_loss"]["mean"], float)
        ax.plot(s["train_loss"]["step"], loss, color=color, lw=0.8, label=f"training loss{label}")
        if "nll_val" in s:
            ax.plot(block["steps"], s["nll_val"], "o-", color=color, ms=3, label=f"val NLL{label}")
        positive &= bool(np.all(loss[np.isfinite(loss)] > 0))
    if positive:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="nats")


def figure(blocks: Mapping[str, Mapping[str, Any]]) -> Any:
    """One row per training run: entropy against step (left), the loss beside it (right)."""
    fig, axes = outputs.new_figure(len(blocks), 2, size=(5.2, 3.4))
    fig.set_layout_engine("constrained")
    for row, (run, block) in enumerate(blocks.items()):
        _entropy_axes(axes[row, 0], block)
        _loss_axes(axes[row, 1], block)
        axes[row, 0].set_title(f"{run}: output entropy", fontsize=10)
        axes[row, 1].set_title(f"{run}: loss", fontsize=10)
        for ax in axes[row]:
            ax.legend(fontsize=6)
    return fig
