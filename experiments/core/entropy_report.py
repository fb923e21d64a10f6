"""The report layer of the entropy probe: the Markdown section and the figure every run gets.

Reads the ``results["entropy_curves"]`` blocks written by
:func:`experiments.core.entropy_curves.summarize` (as Python objects or back from JSON) and
computes nothing new: the alarms are the ones recorded there. The runner appends
:func:`report_section` to ``report.md`` and saves :func:`figure` as ``entropy_curves.png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from experiments.core import entropy_curves, outputs

RULE_LABELS = {
    "entropy_rise": "(a) entropy rise",
    "stuck_at_ceiling": "(b) stuck near max entropy",
    "nll_up_entropy_down": "(c) NLL up, entropy down",
}
DECADE = 10.0  # a positive curve whose max/min exceeds this is drawn on a log axis


# --------------------------------------------------------------------------- Markdown


def _where(alarm: Mapping[str, Any]) -> str:
    first, last = alarm.get("steps", [alarm["step"], alarm["step"]])
    return f"{first}–{last}"


def _numbers(alarm: Mapping[str, Any]) -> str:
    """The alarm's own numbers, one line."""
    rule = alarm.get("rule")
    h = f"H {alarm['from']:.3f} → {alarm['to']:.3f} nats"
    if rule == "entropy_rise":
        return f"{h} (+{alarm['rise']:.3f}; threshold {alarm['threshold']:.3f})"
    if rule == "stuck_at_ceiling":
        return (
            f"H ≥ {alarm['min_fraction_of_ceiling']:.0%} of max entropy "
            f"{alarm['ceiling']:.3f} nats; "
            f"training loss {alarm['train_loss_first']:.4g} → {alarm['train_loss_last']:.4g}"
        )
    if rule == "nll_up_entropy_down":
        rel = alarm["nll_to"] / alarm["nll_from"] - 1 if alarm["nll_from"] else float("nan")
        h_rel = alarm["to"] / alarm["from"] - 1 if alarm["from"] else float("nan")
        return (
            f"val NLL {alarm['nll_from']:.4f} → {alarm['nll_to']:.4f} nats ({rel:+.1%}); "
            f"{h} ({h_rel:+.0%}); band means"
        )
    return h


def _alarm_table(blocks: Mapping[str, Mapping[str, Any]]) -> str:
    several = len(blocks) > 1
    headers = (["run"] if several else []) + ["series", "alarm", "steps", "numbers"]
    rows = []
    for run, block in blocks.items():
        for name, s in block["series"].items():
            prefix = [run] if several else []
            if not s["alarms"]:
                rows.append([*prefix, name, "no alarm", "—", "—"])
            for alarm in s["alarms"]:
                label = RULE_LABELS.get(alarm.get("rule"), str(alarm.get("rule", "alarm")))
                rows.append([*prefix, name, f"**{label}**", _where(alarm), _numbers(alarm)])
    return outputs.markdown_table(headers, rows)


def _reading(name: str, s: Mapping[str, Any], ceiling: float | None) -> str:
    val = np.asarray(s["entropy_val"], float)
    train = np.asarray(s["entropy_train"], float)
    of_max = f" ({val[-1] / ceiling:.0%} of max entropy)" if ceiling else ""
    direction = "fell" if val[-1] < val[0] else "rose"
    gap = val[-1] - train[-1]
    text = (
        f"{name}: validation entropy {direction} from {val[0]:.3f} to {val[-1]:.3f} nats{of_max}; "
        f"at the end it is {gap:+.3f} nats from the training-subset entropy"
    )
    if s["alarms"]:
        fired = ", ".join(
            f"{RULE_LABELS.get(a.get('rule'), 'alarm')} at steps {_where(a)}" for a in s["alarms"]
        )
        return text + f"; **alarm**: {fired}."
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
    """Markdown for ``results["entropy_curves"]``: readings, the alarms per series (``no alarm``
    written out), the rules, the curves (subsampled). Entropies and NLLs are in nats."""
    lines = ["## Entropy through training", ""]
    for run, block in blocks.items():
        ceiling = block.get("max_entropy")
        prefix = f"{run}, " if len(blocks) > 1 else ""
        lines += [f"- {prefix}{_reading(n, s, ceiling)}" for n, s in block["series"].items()]
    lines += ["", "### Alarms", "", _alarm_table(blocks), "", "Alarm rules (nats):", ""]
    rules = next(iter(blocks.values())).get("rules", entropy_curves.RULES) if blocks else {}
    # (a), (b), (c) in order, also from a results.json written with sorted keys
    lines += [f"- `{name}`: {text}." for name, text in sorted(rules.items(), key=lambda r: r[1])]
    for run, block in blocks.items():
        window, gap = block.get("rise_window_steps", 0.0), block.get("max_eval_gap", 0)
        if gap > window > 0:
            prefix = f"{run}: e" if len(blocks) > 1 else "E"
            lines += [
                "",
                f"{prefix}valuations up to {gap} steps apart are coarser than rule (a)'s window of "
                f"{window:g} steps: a rise faster than that is read spread over its gap, at "
                f"{window / gap:.0%} of its size (rules (b) and (c) are unaffected).",
            ]
    lines += ["", "### Curves", ""]
    for run, block in blocks.items():
        if len(blocks) > 1:
            lines += [f"**{run}**", ""]
        lines += [_table(block, max_rows), ""]
    lines.append(
        "Figure: `entropy_curves.png` (entropy against step, shaded where an alarm fired; the "
        "validation NLL and the training loss beside it)."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- figure


def _log_if_decades(ax: Any, curves: list[np.ndarray]) -> None:
    """A log y axis when the positive values span more than a decade."""
    values = np.concatenate([np.asarray(c, float).ravel() for c in curves]) if curves else []
    positive = values[np.isfinite(values) & (values > 0)] if len(values) else values
    if len(positive) and positive.max() / positive.min() > DECADE:
        _log_axis(ax)


def _log_axis(ax: Any) -> None:
    """A log y axis labelled with plain numbers (0.01, 0.2, 1); minor ticks are labelled only
    where matplotlib would (an axis spanning about a decade or less)."""
    from matplotlib.ticker import FuncFormatter, LogFormatter

    class PlainMinor(LogFormatter):
        def __call__(self, x: float, pos: Any = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(PlainMinor(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _series_handles(block: Mapping[str, Any]) -> list:
    from matplotlib.lines import Line2D

    return [
        Line2D([], [], color=f"C{i % 10}", lw=1.5, label=name)
        for i, name in enumerate(block["series"])
    ]


def _entropy_axes(ax: Any, block: Mapping[str, Any]) -> list:
    """Entropy (nats) against step; returns the legend's style entries."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    steps = np.asarray(block["steps"])
    drawn, any_alarm = [], False
    for i, s in enumerate(block["series"].values()):
        color = f"C{i % 10}"
        ax.plot(steps, s["entropy_val"], "-", color=color)
        ax.plot(steps, s["entropy_train"], "--", color=color, lw=0.9)
        drawn += [s["entropy_val"], s["entropy_train"]]
        for alarm in s["alarms"]:
            first, last = alarm.get("steps", [alarm["step"], alarm["step"]])
            ax.axvspan(first, max(last, first + 0.5), color=color, alpha=0.12, lw=0)
            any_alarm = True
    style = [
        Line2D([], [], color="0.3", ls="-", label="validation"),
        Line2D([], [], color="0.3", ls="--", lw=0.9, label="training subset"),
    ]
    if "ensembles" in block:
        ens = block["ensembles"]
        total = np.mean(np.asarray(ens["entropy_val"], float), axis=0)
        mi = np.mean(np.asarray(ens["mutual_information_val"], float), axis=0)
        ax.plot(steps, total, "k-", lw=2)
        ax.plot(steps, mi, "k:", lw=2)
        drawn += [total, mi]
        style += [
            Line2D([], [], color="k", lw=2, label="ensemble (val)"),
            Line2D([], [], color="k", ls=":", lw=2, label="mutual information (val)"),
        ]
    if block.get("max_entropy"):
        ax.axhline(block["max_entropy"], color="0.5", lw=0.8, ls="-.")
        drawn.append(np.asarray([block["max_entropy"]]))
        style.append(Line2D([], [], color="0.5", lw=0.8, ls="-.", label="max entropy (ceiling)"))
    if any_alarm:
        style.append(Patch(color="0.5", alpha=0.25, label="alarm (steps flagged)"))
    _log_if_decades(ax, drawn)
    ax.set(xlabel="training step", ylabel="mean predictive entropy (nats)")
    return style


def _nll_axes(ax: Any, block: Mapping[str, Any]) -> None:
    drawn = []
    for i, s in enumerate(block["series"].values()):
        if "nll_val" in s:
            ax.plot(block["steps"], s["nll_val"], "o-", color=f"C{i % 10}", ms=2.5, lw=1)
            drawn.append(s["nll_val"])
    _log_if_decades(ax, drawn)
    ax.set(xlabel="training step", ylabel="validation NLL (nats)")


def _units(block: Mapping[str, Any]) -> list[str]:
    """The training-loss units of the block's series, in order (older blocks: nats)."""
    return list(
        dict.fromkeys(s["train_loss"].get("unit", "nats") for s in block["series"].values())
    )


def _loss_axes(ax: Any, block: Mapping[str, Any]) -> None:
    """The training loss; series whose losses have another unit go on a twin axis."""
    units = _units(block)
    axes = {units[0]: ax}
    if len(units) == 2:
        axes[units[1]] = ax.twinx()
    for i, s in enumerate(block["series"].values()):
        unit = s["train_loss"].get("unit", "nats")
        target = axes.get(unit, ax)
        ls = "-" if target is ax else ":"
        loss = np.asarray(s["train_loss"]["mean"], float)
        target.plot(
            s["train_loss"]["step"], loss, ls, color=f"C{i % 10}", lw=0.8 if ls == "-" else 1.2
        )
    for unit, target in axes.items():
        drawn = [
            s["train_loss"]["mean"]
            for s in block["series"].values()
            if s["train_loss"].get("unit", "nats") == unit
        ]
        finite = np.concatenate([np.asarray(d, float) for d in drawn])
        finite = finite[np.isfinite(finite)]
        if len(finite) and np.all(finite > 0):
            _log_axis(target)
        style = "" if target is ax or len(units) < 2 else ", dotted"
        target.set_ylabel(f"training loss ({unit}{style})")
    if len(units) > 2:
        ax.set_ylabel("training loss (" + " / ".join(units) + "; units differ by series)")
    ax.set_xlabel("training step")


def figure(blocks: Mapping[str, Mapping[str, Any]]) -> Any:
    """One row per training run: entropy against step, the validation NLL (where recorded) and
    the training loss; the row's legend in a column of its own, outside the data area."""
    from matplotlib.figure import Figure

    with_nll = any("nll_val" in s for b in blocks.values() for s in b["series"].values())
    panels = 3 if with_nll else 2
    fig = Figure(figsize=(4.2 * panels + 2.0, 3.2 * len(blocks)), layout="constrained")
    axes = fig.subplots(
        len(blocks), panels + 1, squeeze=False, width_ratios=[1.0] * panels + [0.45]
    )
    for row, (run, block) in enumerate(blocks.items()):
        style = _entropy_axes(axes[row, 0], block)
        axes[row, 0].set_title(f"{run}: output entropy", fontsize=10)
        if with_nll:
            _nll_axes(axes[row, 1], block)
            axes[row, 1].set_title(f"{run}: validation NLL", fontsize=10)
        _loss_axes(axes[row, panels - 1], block)
        axes[row, panels - 1].set_title(f"{run}: training loss", fontsize=10)
        legend_ax = axes[row, panels]
        legend_ax.axis("off")
        handles = _series_handles(block) + style
        legend_ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
    return fig
