"""Replication over data splits and held-out classes: the declared comparisons pooled over runs.

One run of the main experiment is conditional on its data split (``--data-seed``) and its
held-out classes. Replications repeat the study with both changed (and their own ``--seed``)::

    python -m experiments.ensemble_entropy --dataset mnist --out runs/rep0
    python -m experiments.ensemble_entropy --dataset mnist --out runs/rep1 \\
        --seed 1 --data-seed 1 --heldout-classes 3,5
    python -m experiments.ensemble_entropy --dataset mnist --out runs/rep2 \\
        --seed 2 --data-seed 2 --heldout-classes 2,7
    python -m experiments.ensemble_entropy.replicate runs/rep0 runs/rep1 runs/rep2 --out runs/pooled

and this module pools their declared comparisons (``results.json``'s ``comparisons.family``).
For each comparison made in every run, with per-run estimates ``d_1 … d_P``, the pooled
estimate is their mean and its interval the Student-t interval over the ``P`` replications,
``mean ± t_{0.975, P−1} · s / √P``, with the two-sided one-sample t-test's p-value. Each ``d_r``
carries its run's seed and test-example noise, so the spread ``s`` between replications holds
those *and* the variation between splits and held-out classes: the variances add, none is the
wider of two. Holm's correction runs over the pooled family (the comparisons every run made: the
in-distribution ones, and the OOD ones on the sets that every run ranked). With few replications
the interval is wide (``t_{0.975, 2} = 4.30`` for three): that is the honest price of asking
whether a finding survives a new split and new unseen classes.

Outputs in ``--out``: ``pooled.json`` and ``pooled.md``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.core import cli, outputs, stats
from experiments.ensemble_entropy.config import FAMILY_ALPHA

# What must agree between runs for their comparisons to be pooled, and what each run must have
# of its own.
SAME = ("dataset", "model", "members", "seeds", "steps")
VARIED = ("seed", "data_seed", "heldout_classes")


def load_results(run_dir: str) -> dict[str, Any]:
    """A finished run's ``results.json`` (:class:`~experiments.core.cli.ConfigError` if none)."""
    path = os.path.join(run_dir, "results.json")
    if not os.path.isfile(path):
        raise cli.ConfigError(f"{run_dir} holds no finished run (no results.json)")
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        raise cli.ConfigError(f"cannot read {path}: {e}") from e
    if not isinstance(results, dict):
        raise cli.ConfigError(f"{path} is not a result of experiments.ensemble_entropy")
    if results.get("experiment") != "ensemble_entropy" or "comparisons" not in results:
        raise cli.ConfigError(f"{path} is not a result of experiments.ensemble_entropy")
    return results


def check_replications(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    """Refuse runs that are not replications of one study: at least two, the same design
    (:data:`SAME`), and no two sharing a seed, a data split or held-out classes (:data:`VARIED`)."""
    if len(runs) < 2:
        raise cli.ConfigError(f"pooling needs at least 2 runs, got {len(runs)}")
    first = runs[0]["config"]
    for name, run in zip(names[1:], runs[1:], strict=True):
        for key in SAME:
            if run["config"][key] != first[key]:
                raise cli.ConfigError(
                    f"{name} differs from {names[0]} in {key} ({run['config'][key]} against "
                    f"{first[key]}): only replications of one design are pooled"
                )
    for key in VARIED:
        seen: dict[str, str] = {}
        for name, run in zip(names, runs, strict=True):
            value = json.dumps(
                sorted(run["config"][key]) if key == "heldout_classes" else run["config"][key]
            )
            if value in seen:
                raise cli.ConfigError(
                    f"{name} and {seen[value]} share {key} {value}: they are not replications "
                    "(give each run its own --seed, --data-seed and --heldout-classes)"
                )
            seen[value] = name


def pool(runs: Sequence[Mapping[str, Any]], *, alpha: float = FAMILY_ALPHA) -> dict[str, Any]:
    """The declared comparisons made in every run, pooled over the runs, with Holm's correction
    over them (module docstring). ``runs`` are ``results.json`` dicts."""
    families = [run["comparisons"]["family"] for run in runs]
    common = [k for k in families[0] if all(k in f for f in families[1:])]
    tests: dict[str, dict[str, Any]] = {}
    for key in common:
        estimates = np.asarray([f[key]["mean"] for f in families], np.float64)
        pooled = stats.interval(estimates)
        tests[key] = {
            "set": families[0][key]["set"],
            "kind": families[0][key]["kind"],
            "comparison": families[0][key]["comparison"],
            "per_run": estimates.tolist(),
            "mean": pooled["mean"],
            "low": pooled["low"],
            "high": pooled["high"],
            "p": _one_sample_p(estimates),
            "confirmed_per_run": [bool(f[key]["confirmed"]) for f in families],
        }
    holm = stats.holm({k: v["p"] for k, v in tests.items()}, alpha=alpha)
    for key, test in tests.items():
        test["p_holm"] = holm[key]["p_holm"]
        test["confirmed"] = holm[key]["rejected"]
    dropped = sorted({k for f in families for k in f} - set(common))
    return {
        "replications": len(runs),
        "alpha": alpha,
        "rule": (
            "mean of the per-run estimates, Student-t interval over the runs (P − 1 df), "
            "two-sided one-sample t-test; Holm over the comparisons every run made"
        ),
        "runs": [
            {k: run["config"][k] for k in VARIED}
            | {"ranked_sets": list(run["comparisons"]["ranked_sets"])}
            for run in runs
        ],
        "size": len(tests),
        "family": tests,
        "confirmed": [k for k, v in tests.items() if v["confirmed"]],
        "not_in_every_run": dropped,
    }


def _one_sample_p(values: np.ndarray) -> float:
    """Two-sided p-value of the one-sample t-test of mean 0; NaN (never confirmed: Holm reads
    it as 1) for fewer than 2 values or values that do not vary."""
    from scipy import stats as scipy_stats

    n = len(values)
    if n < 2 or not np.all(np.isfinite(values)) or np.ptp(values) == 0.0:
        return math.nan
    sd = float(np.std(values, ddof=1))
    t = float(np.mean(values)) / (sd / math.sqrt(n))
    return float(2.0 * scipy_stats.t.sf(abs(t), n - 1))


def _p(p: float) -> str:
    return "—" if not math.isfinite(p) else f"{p:.2g}"


def report(pooled: Mapping[str, Any]) -> str:
    """``pooled.md``: the runs, then every pooled comparison with its verdict."""
    runs = pooled["runs"]
    lines = [
        f"# The declared comparisons over {pooled['replications']} replications",
        "",
        "Each replication has its own data split, held-out classes and seed:",
        "",
        outputs.markdown_table(
            ["run", "seed", "data seed", "held-out classes", "ranked OOD sets"],
            [
                [
                    str(i),
                    str(r["seed"]),
                    str(r["data_seed"]),
                    str(r["heldout_classes"]),
                    ", ".join(r["ranked_sets"]) or "none",
                ]
                for i, r in enumerate(runs)
            ],
        ),
        "",
        f"Pooled: {pooled['rule']}; {pooled['size']} tests, Holm at α = {pooled['alpha']}. "
        "OOD sets are pooled by name (``heldout_classes`` holds other classes in each run).",
        "",
    ]
    rows = [
        [
            key,
            ", ".join(f"{d:+.4f}" for d in t["per_run"]),
            outputs.fmt(t, 4, signed=True),
            _p(t["p"]),
            _p(t["p_holm"]),
            "confirmed" if t["confirmed"] else "not confirmed",
        ]
        for key, t in pooled["family"].items()
    ]
    lines.append(
        outputs.markdown_table(
            ["comparison", "per run", "pooled [95% interval]", "p", "Holm p", "verdict"], rows
        )
    )
    if pooled["not_in_every_run"]:
        lines += ["", "Not made in every run, not pooled: " + "; ".join(pooled["not_in_every_run"])]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m experiments.ensemble_entropy.replicate RUN RUN ... --out DIR``."""
    parser = cli.Parser(
        prog="python -m experiments.ensemble_entropy.replicate",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("runs", nargs="+", help="finished runs of the main experiment")
    parser.add_argument("--out", required=True, help="directory for pooled.json and pooled.md")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the pooled.json and pooled.md in --out"
    )
    args = parser.parse_args(argv)
    try:
        runs = [load_results(d) for d in args.runs]
        check_replications(runs, args.runs)
        if os.path.exists(os.path.join(args.out, "pooled.json")) and not args.overwrite:
            raise cli.ConfigError(
                f"{args.out} already holds pooled.json; pass --overwrite to replace it, or choose "
                "another --out"
            )
    except cli.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pooled = pool(runs)
    os.makedirs(args.out, exist_ok=True)
    outputs.write_json(os.path.join(args.out, "pooled.json"), pooled)
    text = report(pooled)
    outputs.write_text(os.path.join(args.out, "pooled.md"), text)
    print(text)
    print(f"wrote {args.out}/pooled.json and pooled.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
