"""What every benchmark shares: the command line, interleaved timing, the environment, JSON, tables.

* :func:`build_parser` / :func:`start` — the flags every benchmark has (``--out``, ``--quick``
  alias ``--smoke``, ``--reps``, ``--markdown``); argument errors print one line ``error: ...``
  and exit with status 2. :func:`start` parses and opens a :class:`Run`.
* :func:`time_call` and :func:`time_interleaved` — the one timer: named zero-argument callables
  run round-robin, the starting one rotating every repetition so that slow drifts of a shared
  machine hit them all alike, each output blocked on before the clock stops; a sample may
  average several back-to-back calls (``inner``), and process CPU time is recorded beside wall
  time.
* :func:`summarize` — median, quartiles, min and max of a list of samples.
* :func:`environment` — :func:`experiments.core.outputs.environment` plus the load average and
  whether x64 is enabled.
* :meth:`Run.finish` — writes the JSON (``command``, ``environment``, a timing block under
  :data:`~experiments.core.outputs.TIMING_KEY`, the settings and the rows) atomically with
  :func:`experiments.core.outputs.write_json` and prints the table, as aligned text or, with
  ``--markdown``, as Markdown followed by the command and the JSON file it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from experiments.core import outputs
from experiments.core.cli import Parser

WARMUP = 2
"""Untimed calls of each callable before the timed repetitions."""


# --------------------------------------------------------------------------------------------
# Command line.


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_ints(text: str) -> tuple[int, ...]:
    """An argparse type: a non-empty comma-separated list of integers >= 1."""
    values = tuple(positive_int(part) for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return values


def choices_list(allowed: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: a non-empty comma-separated list of names from ``allowed``."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(part for part in text.split(",") if part)
        unknown = sorted(set(names) - set(allowed))
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {unknown or text!r}; choose from {list(allowed)}"
            )
        return names

    return parse


def build_parser(module: str, doc: str, *, default_out: str) -> Parser:
    """The parser of ``python -m <module>`` with the shared flags; add the benchmark's own."""
    parser = Parser(
        prog=f"python -m {module}",
        description=doc.split("\n\n")[0],
    )
    parser.add_argument("--out", default=default_out, help="JSON output path (default %(default)s)")
    parser.add_argument(
        "--quick", "--smoke", action="store_true", help="small sizes, few reps (a smoke test)"
    )
    parser.add_argument(
        "--reps", type=positive_int, default=None, help="timed repetitions (default: the mode's)"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as Markdown, for the README"
    )
    return parser


def start(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> tuple[Any, Run]:
    """Parse ``argv`` (default ``sys.argv[1:]``) and open the :class:`Run` it describes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    return args, Run(command=" ".join([parser.prog, shlex.join(argv)]).strip())


# --------------------------------------------------------------------------------------------
# Timing.


def time_call(fn: Callable[[], Any], *, inner: int = 1) -> float:
    """Seconds per call of ``fn`` over ``inner`` back-to-back calls, the last output blocked on."""
    return _timed(fn, inner)[0]


def _timed(fn: Callable[[], Any], inner: int) -> tuple[float, float]:
    """``(wall, process CPU)`` seconds per call over ``inner`` calls, the last one blocked on.

    The calls are dispatched back to back (JAX dispatches asynchronously), as in a training
    loop; for calls of microseconds that averages out the wake-up latency of the runtime's
    threads, which otherwise dominates single-call samples. CPU time counts every thread of
    the process, so on a shared machine it is less disturbed by other processes than wall time.
    """
    import jax

    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(inner - 1):
        fn()
    jax.block_until_ready(fn())
    return (time.perf_counter() - wall0) / inner, (time.process_time() - cpu0) / inner


def time_interleaved(
    calls: Mapping[str, Callable[[], Any]],
    *,
    reps: int,
    warmup: int = WARMUP,
    inner: int = 1,
    cpu_samples: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each zero-argument ``calls[name]``: ``warmup`` untimed rounds, then
    ``reps`` timed rounds, round-robin, the first callable of round ``r`` being ``r mod len``.

    Each sample averages ``inner`` back-to-back calls (see :func:`time_call`). If
    ``cpu_samples`` is given it receives the process CPU seconds per call of the same samples.
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            _timed(calls[name], inner)
    samples: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            wall_s, cpu_s = _timed(calls[name], inner)
            samples[name].append(wall_s)
            cpu[name].append(cpu_s)
    if cpu_samples is not None:
        cpu_samples.update(cpu)
    return samples


def paired_ratios(num: Sequence[float], den: Sequence[float]) -> dict[str, float]:
    """:func:`summarize` of ``num[r] / den[r]``: samples of the same interleaved round divided,
    so that load shared by the two calls cancels. The spread of a ratio, not of two times."""
    return summarize([a / b for a, b in zip(num, den, strict=True)])


def summarize(samples: Sequence[float], *, scale: float = 1.0) -> dict[str, float]:
    """Median, 25th and 75th percentiles, min and max of ``samples`` (times ``scale``)."""
    values = np.asarray(samples, dtype=np.float64) * scale
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    return {
        "median": float(median),
        "q25": float(q25),
        "q75": float(q75),
        "min": float(values.min()),
        "max": float(values.max()),
    }


# --------------------------------------------------------------------------------------------
# Environment and results.


def environment() -> dict[str, Any]:
    """What the numbers were measured on: versions, devices, host, load average, x64 flag."""
    import jax

    return {
        **outputs.environment(),
        "load_average": list(os.getloadavg()),
        "x64": bool(jax.config.jax_enable_x64),
    }


Key = str | Callable[[Mapping[str, Any]], Any]
Column = tuple[str, Key, str]
"""``(header, key, format)``: the cell is ``format.format(row[key])`` (``key`` may be a function
of the row instead), ``-`` where the value is missing or ``None``."""


def _cell(row: Mapping[str, Any], key: Key, fmt: str) -> str:
    value = key(row) if callable(key) else row.get(key)
    return "-" if value is None else fmt.format(value)


def format_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, markdown: bool = False
) -> str:
    """``rows`` as an aligned text table, or a GitHub Markdown table with ``markdown``."""
    headers = [header for header, _, _ in columns]
    cells = [[_cell(row, key, fmt) for _, key, fmt in columns] for row in rows]
    if markdown:
        return outputs.markdown_table(headers, cells)
    lines = [headers, *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in text)


@dataclasses.dataclass
class Run:
    """One benchmark invocation: its command line and when it started."""

    command: str
    started_utc: str = dataclasses.field(default_factory=outputs.utc_now)
    started_s: float = dataclasses.field(default_factory=time.perf_counter)
    load_average_start: list[float] = dataclasses.field(
        default_factory=lambda: list(os.getloadavg())
    )

    def payload(self, *, settings: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], **extra):
        """The JSON document: command, environment, timing block, settings, rows, ``extra``."""
        return {
            "command": self.command,
            "environment": environment(),
            outputs.TIMING_KEY: {
                "note": "wall-clock times on a possibly shared machine: read the spread",
                "started_utc": self.started_utc,
                "finished_utc": outputs.utc_now(),
                "wall_seconds": time.perf_counter() - self.started_s,
                "load_average_start": self.load_average_start,
            },
            "settings": dict(settings),
            "rows": list(rows),
            **extra,
        }

    def finish(
        self,
        out: str,
        columns: Sequence[Column],
        *,
        markdown: bool,
        settings: Mapping[str, Any],
        rows: Sequence[Mapping[str, Any]],
        **extra: Any,
    ) -> dict[str, Any]:
        """Write the JSON to ``out``, print the table (and where it came from), return the JSON."""
        payload = outputs.to_jsonable(self.payload(settings=settings, rows=rows, **extra))
        outputs.write_json(out, payload)
        print(format_table(rows, columns, markdown=markdown))
        if markdown:
            print(f"\nCommand: `{self.command}`; JSON: `{out}`.")
        print(f"wrote {out}", file=sys.stderr)
        return payload
