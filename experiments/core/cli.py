"""The command line every experiment shares: typed options from a config dataclass, one-line errors.

An experiment's config is a frozen dataclass whose fields are declared with :func:`option` (a
default and a help text). :func:`build_parser` turns it into an argument parser: one
``--field-name`` per field (tuples as comma-separated lists, booleans as ``--x/--no-x``,
``Optional`` fields accept ``none``) plus the shared flags

``--out DIR --resume --overwrite --smoke --seed N --no-progress --distributed`` (and
``--stop-after-step``, which simulates an interruption for tests).

One concept has one flag in every experiment (``experiments/core/README.md`` lists them): a field
whose flag is spelled apart from its name is in :data:`FLAG_NAMES` (``learning_rate`` is
``--lr``, as in the main experiment, while results and checkpoints keep the field name), and
the spelling it replaced is still accepted for one release (:data:`DEPRECATED_ALIASES`).

Values are resolved as defaults, then the experiment's ``--smoke`` overrides, then explicit
flags; the config validates itself in ``__post_init__`` with the ``require_*`` helpers below,
raising :class:`ConfigError`. Every configuration error, from argparse or from validation,
reaches the user as one line ``error: ...`` and exit status 2, before any training.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

SHARED_FLAGS = (
    "out",
    "resume",
    "overwrite",
    "smoke",
    "seed",
    "no_progress",
    "distributed",
    "stop_after_step",
)


# Config fields whose flag is not their name: one flag per concept across the experiments.
FLAG_NAMES = {"learning_rate": "lr"}
# Old spellings still accepted (shown in --help as deprecated); to be removed after one release.
DEPRECATED_ALIASES = {"learning_rate": ("--learning-rate",)}


class ConfigError(ValueError):
    """An invalid run configuration: the runner prints ``error: <message>`` and exits 2."""


def option(default: Any, help: str, *, choices: Sequence[Any] | None = None) -> Any:
    """A config field with its command-line help (and allowed values)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def flag(name: str) -> str:
    """The command-line spelling of config field ``name`` (``learning_rate``: ``--lr``)."""
    return "--" + FLAG_NAMES.get(name, name).replace("_", "-")


# --------------------------------------------------------------------------- validation


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition``."""
    if not condition:
        raise ConfigError(message)


def require_positive(config: Any, *names: str, allow_zero: bool = False) -> None:
    """Each field in ``names`` is a finite number > 0 (>= 0 with ``allow_zero``)."""
    for name in names:
        value = getattr(config, name)
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        ok = ok and (value >= 0 if allow_zero else value > 0)
        bound = ">= 0" if allow_zero else "> 0"
        require(ok, f"{flag(name)} must be a finite number {bound}, got {value!r}")


def require_all_positive(config: Any, *names: str, allow_zero: bool = False) -> None:
    """Each tuple field in ``names`` is non-empty and holds finite numbers > 0 (or >= 0)."""
    for name in names:
        values = getattr(config, name)
        require(len(values) > 0, f"{flag(name)} needs at least one value")
        for v in values:
            ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
            bound = ">= 0" if allow_zero else "> 0"
            require(ok, f"{flag(name)} values must be finite numbers {bound}, got {v!r}")


def require_choice(config: Any, name: str, allowed: Sequence[Any]) -> None:
    """Field ``name`` (or every element of a tuple field) is one of ``allowed``."""
    value = getattr(config, name)
    for v in value if isinstance(value, tuple) else (value,):
        require(v in allowed, f"{flag(name)} must be one of {list(allowed)}, got {v!r}")


# --------------------------------------------------------------------------- parsing


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What the shared flags say about the run (not part of the config: does not move a number)."""

    out: str
    resume: bool = False
    overwrite: bool = False
    smoke: bool = False
    progress: bool = True
    distributed: bool = False
    stop_after_step: int | None = None


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line ``error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _parse_scalar(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if kind is bool:
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return low in ("true", "1")
        return kind(text.strip())

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


def _parser_for(annotation: Any) -> tuple[Callable[[str], Any], bool, bool]:
    """``(parse, is_tuple, is_optional)`` for an annotation like ``tuple[int, ...] | None``."""
    args = typing.get_args(annotation)
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and (
        type(None) in args
    )
    if optional:
        annotation = next(a for a in args if a is not type(None))
    if typing.get_origin(annotation) is tuple:
        item = _parse_scalar(typing.get_args(annotation)[0])

        def parse_tuple(text: str) -> tuple:
            return tuple(item(v) for v in text.split(",") if v.strip())

        parse_tuple.__name__ = f"comma-separated {item.__name__}"
        return parse_tuple, True, optional
    return _parse_scalar(annotation), False, optional


def _nullable(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_none(text: str) -> Any:
        return None if text.strip().lower() == "none" else parse(text)

    parse_or_none.__name__ = parse.__name__
    return parse_or_none


def _add_field(parser: argparse.ArgumentParser, field: dataclasses.Field, annotation: Any) -> None:
    help_text = field.metadata.get("help", "")
    choices = field.metadata.get("choices")
    default = field.default
    names = (flag(field.name), *DEPRECATED_ALIASES.get(field.name, ()))
    if len(names) > 1:
        help_text += f" ({', '.join(names[1:])}: deprecated spelling of {names[0]})"
    if annotation is bool:
        parser.add_argument(
            *names,
            dest=field.name,
            action=argparse.BooleanOptionalAction,
            default=argparse.SUPPRESS,
            help=f"{help_text} (default {default})",
        )
        return
    parse, is_tuple, optional = _parser_for(annotation)
    if optional:
        parse = _nullable(parse)
    shown = ",".join(map(str, default)) if is_tuple and default is not None else default
    parser.add_argument(
        *names,
        dest=field.name,
        type=parse,
        default=argparse.SUPPRESS,  # absent unless given: "--width none" is an explicit None
        choices=None if is_tuple else choices,
        metavar="LIST" if is_tuple else FLAG_NAMES.get(field.name, field.name).upper(),
        help=f"{help_text} (default {shown})",
    )


def build_parser(
    prog: str, description: str, config_cls: type, *, default_out: str
) -> argparse.ArgumentParser:
    """The parser: the shared flags, then one flag per field of ``config_cls`` (``--seed``, a
    shared flag, is the config's ``seed`` field, which every experiment has)."""
    p = Parser(prog=prog, description=description)
    p.add_argument("--out", default=default_out, help=f"output directory (default {default_out})")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in --out (its checkpoints are deleted; without this flag or "
        "--resume an existing run is never touched)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny configuration that runs in seconds")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() (also done when JAX_COORDINATOR_ADDRESS is set)",
    )
    p.add_argument(
        "--stop-after-step",
        type=int,
        default=None,
        help="simulate an interruption: stop after this step, keeping the checkpoints",
    )
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        _add_field(p, field, hints[field.name])
    return p


def parse_config(
    parser: argparse.ArgumentParser,
    config_cls: type,
    smoke: Mapping[str, Any],
    argv: Sequence[str] | None,
) -> tuple[Any, RunOptions]:
    """Defaults, then the ``--smoke`` overrides, then explicit flags; the config validates
    itself (raising :class:`ConfigError`)."""
    args = parser.parse_args(argv)
    values = dict(smoke) if args.smoke else {}
    for field in dataclasses.fields(config_cls):
        if hasattr(args, field.name):
            values[field.name] = getattr(args, field.name)
    if args.stop_after_step is not None and args.stop_after_step < 1:
        raise ConfigError(f"--stop-after-step must be >= 1, got {args.stop_after_step}")
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: continue or replace")
    options = RunOptions(
        out=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        smoke=args.smoke,
        progress=not args.no_progress,
        distributed=args.distributed,
        stop_after_step=args.stop_after_step,
    )
    return config_cls(**values), options
