"""Everything an experiment writes: atomic files, the run-metadata block, tables and figures.

* :func:`write_json`, :func:`write_text`, :func:`write_npz`, :func:`save_figure` — the one atomic
  writer (:func:`write_bytes`): a temporary file in the destination directory, ``fsync``, then
  ``os.replace`` onto the final name, so a reader or a crash never sees half a file. The final
  file gets the mode a plain ``open()`` would give (``0o666`` minus the umask), so results can be
  shared with a group on a cluster. Only process 0 writes in a multi-process run.
* :func:`run_metadata` — the provenance block every ``results.json`` carries (config, versions,
  devices, and under :data:`TIMING_KEY` the only run-dependent values).
* :func:`markdown_table`, :func:`fmt`, :func:`new_figure` — report building blocks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import importlib.metadata
import io
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

TIMING_KEY = "timing"
"""The one results.json field that holds timestamps, durations and other run-dependent values."""


def is_writer() -> bool:
    """Whether this process writes outputs: process 0 (the only process on one host)."""
    import jax

    return jax.process_index() == 0


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # read it the only portable way: set, then restore
    os.umask(mask)
    return mask


def write_bytes(path: str, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` (process 0 only), mode ``0o666 & ~umask``."""
    if not is_writer():
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode())


def to_jsonable(obj: Any) -> Any:
    """numpy/JAX scalars and arrays, dataclasses and NamedTuples to plain Python; non-finite
    floats to ``None`` (valid JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    elif isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        obj = obj._asdict()
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        if arr.ndim:
            return to_jsonable(arr.tolist())
        obj = arr.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return to_jsonable(obj.item())
    return obj


def write_json(path: str, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON with sorted keys (stable, diffable output)."""
    text = json.dumps(to_jsonable(obj), indent=1, sort_keys=True, allow_nan=False)
    write_text(path, text + "\n")


def write_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically write ``arrays`` as a compressed ``.npz``."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    write_bytes(path, buf.getvalue())


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] = (4.2, 3.2)) -> Any:
    """A figure on the non-interactive Agg backend with an ``(nrows, ncols)`` grid of axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig: Any, path: str, *, dpi: int = 110) -> None:
    """Atomically save a matplotlib figure as PNG (deterministic: no timestamp metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- provenance


def versions() -> dict[str, str]:
    """Versions of Python and the packages results depend on."""
    out = {"python": platform.python_version()}
    for name in ("entjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    for name in ("scikit-learn", "scipy", "matplotlib"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    import entjax

    out["entjax"] = entjax.__version__
    return out


def device_info() -> dict[str, Any]:
    """Backend, process layout and the list of devices the run used."""
    import jax

    return {
        "backend": jax.default_backend(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "devices": [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()],
    }


def environment() -> dict[str, Any]:
    """Versions, devices and the host: what a benchmark or a run was measured on."""
    return {
        "versions": versions(),
        "devices": device_info(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def command_line() -> str:
    return " ".join([os.path.basename(sys.executable), *sys.argv])


def run_metadata(config: Any, *, smoke: bool, timing: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance block of every results.json: config, versions, devices and timing.

    Everything but ``timing`` (timestamps, durations, paths, resume information) is a pure
    function of the configuration and the software, so two runs can be compared with it removed.
    """
    return {
        "config": to_jsonable(config),
        "smoke": smoke,
        "versions": versions(),
        "devices": device_info(),
        TIMING_KEY: {
            "note": "the only run-dependent field: timestamps, durations, paths, resume info",
            "command": command_line(),
            **timing,
        },
    }


# --------------------------------------------------------------------------- tables


def fmt(x: Any, digits: int = 4, *, signed: bool = False) -> str:
    """A number for a markdown table; ``None``/NaN as an em dash; ``{"mean", "std"}`` as
    ``mean ± std`` and ``{"mean", "low", "high"}`` as ``mean [low, high]``; ``signed`` writes
    the sign of every number (``+0.012 [-0.003, +0.027]``, for differences)."""
    if x is None:
        return "—"
    if isinstance(x, Mapping) and "mean" in x:
        one = functools.partial(fmt, digits=digits, signed=signed)
        if "low" in x:
            return f"{one(x['mean'])} [{one(x['low'])}, {one(x['high'])}]"
        return f"{one(x['mean'])} ± {fmt(x.get('std'), digits)}"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return f"{int(x):+d}" if signed else str(int(x))
    x = float(x)
    return "—" if not math.isfinite(x) else f"{x:{'+' if signed else ''}.{digits}f}"


def interval_at(columns: Mapping[str, Sequence[Any]], i: int) -> dict[str, Any]:
    """The ``i``-th interval of columns of intervals (``{"mean": [...], "low": [...], ...}``, as
    results store a sweep), as one interval dict for :func:`fmt`."""
    return {key: values[i] for key, values in columns.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """A GitHub-flavoured markdown table; numbers formatted with :func:`fmt`."""
    cells = [[c if isinstance(c, str) else fmt(c, digits) for c in row] for row in rows]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)
