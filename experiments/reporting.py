"""Reporting helpers shared by the experiments: atomic writes, environment info, tables, plots.

Every file is written atomically: to a temporary file in the destination directory, then
``os.replace`` onto the final name, so a reader (or a crash) never sees a half-written result.
Only process 0 writes when running multi-host.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import io
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

TIMING_KEY = "timing"
"""The one results.json field that holds timestamps, durations and other run-dependent values."""


def _is_writer() -> bool:
    import jax

    return jax.process_index() == 0


@contextlib.contextmanager
def _atomic_target(path: str, mode: str) -> Iterator[io.IOBase]:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    if not _is_writer():
        return
    with _atomic_target(path, "w") as f:
        f.write(text)


def write_bytes(path: str, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    if not _is_writer():
        return
    with _atomic_target(path, "wb") as f:
        f.write(data)


def to_jsonable(obj: Any) -> Any:
    """numpy/JAX scalars and arrays to plain Python; non-finite floats to ``None`` (valid JSON)."""
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
    write_text(path, json.dumps(to_jsonable(obj), indent=1, sort_keys=True, allow_nan=False) + "\n")


def save_figure(fig: Any, path: str, *, dpi: int = 110) -> None:
    """Atomically save a matplotlib figure as PNG (deterministic: no timestamp metadata)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] = (4.2, 3.2)) -> Any:
    """A figure on the non-interactive Agg backend with an ``(nrows, ncols)`` grid of axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    return fig, axes


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

    out["entjax"] = getattr(entjax, "__version__", out["entjax"])
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


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def command_line() -> str:
    return " ".join([os.path.basename(sys.executable), *sys.argv])


def fmt(x: Any, digits: int = 4) -> str:
    """A number for a markdown table; ``None``/NaN as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, Mapping) and "mean" in x:
        return f"{fmt(x['mean'], digits)} ± {fmt(x.get('std'), digits)}"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    x = float(x)
    return "—" if not math.isfinite(x) else f"{x:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """A GitHub-flavoured markdown table; numbers formatted with :func:`fmt`."""
    cells = [[c if isinstance(c, str) else fmt(c, digits) for c in row] for row in rows]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def mean_std(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{"mean", "std"}`` over members (population std, 0 for a single member)."""
    arr = np.asarray(values, np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std())}
