"""Running the main experiment (``experiments.ensemble_entropy``) in fresh subprocesses.

Shared by the tests that run it end to end. One subprocess may run several invocations of
``main(argv)``: they share its compiled functions. The fresh processes of one pytest worker
also share JAX's persistent compilation cache (:data:`CACHE_DIR`, set by ``conftest.py``: the
worker's directory of the run-wide cache, ``tests/_compilation_cache.py``, or one of this
session with that cache off): most of a smoke run's CPU time is XLA compiling ~130 programs, the
same ones in every process and every run. Executables loaded from the cache give bitwise the
same results as freshly compiled ones (the tests comparing runs exactly would fail otherwise;
measured: a smoke run's ``results.json`` is identical either way, and takes 12 s of CPU instead
of 32 s).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import _compilation_cache

REPO = pathlib.Path(__file__).resolve().parents[2]
SMOKE = ["--smoke", "--no-progress"]

# (name, output directory, extra flags), run in this order by one process.
MAIN_INVOCATIONS = (
    ("reference", "a", ()),
    ("interrupted", "interrupted", ("--stop-after-step", "25")),
    ("resumed_interrupted", "resumed", ("--stop-after-step", "25")),
    ("resume", "resumed", ("--resume",)),
    ("resume_finished", "resumed", ("--resume",)),
    ("resume_other_config", "resumed", ("--resume", "--lr", "0.02")),
    ("rerun_refused", "resumed", ()),
    ("again_interrupted", "a_again", ("--stop-after-step", "15")),
    ("overwrite", "a_again", ("--overwrite", "--stop-after-step", "25")),
    ("deep_only", "deep_only", ("--methods", "deep")),
)

_DRIVER = """
import json, os, shutil, sys
from experiments.ensemble_entropy import main
for i, argv in enumerate(json.loads(sys.argv[1])):
    print(f"@@start {i}", file=sys.stderr, flush=True)
    print(f"@@rc {i} {main(argv)}", flush=True)
    out = argv[argv.index("--out") + 1]
    if os.path.exists(os.path.join(out, "results.json")):  # what this invocation left there
        shutil.copy(os.path.join(out, "results.json"), f"{out}.after{i}.json")
"""


# The persistent compilation cache of this worker's experiment processes (None: not used).
CACHE_DIR: str | None = None


def cache_env() -> dict[str, str]:
    """The variables that point a fresh JAX process at :data:`CACHE_DIR` (every program cached,
    however small or quick to compile; in a multi-process run JAX lets process 0 alone write)."""
    return {} if CACHE_DIR is None else _compilation_cache.environment(CACHE_DIR)


def env(devices: int = 1) -> dict[str, str]:
    """The environment of a fresh experiment process with ``devices`` CPU devices."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    out.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO) + os.pathsep + out.get("PYTHONPATH", ""))
    out.update(cache_env())
    if devices > 1:
        out["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return out


def run(*invocations: list[str], devices: int = 1) -> tuple[list[int], str]:
    """Run ``main(argv)`` for each argv in ONE fresh Python process; return exit codes, stderr.

    After invocation ``i``, the ``results.json`` its ``--out`` holds (if any) is copied to
    ``<out>.after<i>.json``, so later invocations into the same directory lose nothing a test
    reads; :func:`split_stderr` cuts the stderr into one part per invocation."""
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps([list(a) for a in invocations])],
        cwd=REPO,
        env=env(devices),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = [int(line.split()[2]) for line in proc.stdout.splitlines() if line.startswith("@@rc")]
    assert len(codes) == len(invocations), proc.stdout[-2000:] + proc.stderr[-3000:]
    return codes, proc.stderr


def split_stderr(stderr: str) -> list[str]:
    """The stderr of :func:`run`, one part per invocation."""
    return stderr.split("@@start ")[1:]


def results(out: pathlib.Path, *drop: str) -> dict:
    """A run's ``results.json`` (or a copy made by :func:`run`, given its path) without its
    run-dependent ``timing`` (and ``drop``) fields."""
    path = out if out.suffix == ".json" else out / "results.json"
    loaded = json.loads(path.read_text())
    for key in ("timing", *drop):
        loaded.pop(key)
    return loaded


def leaves(tree, prefix=""):
    """``(path, value)`` of every leaf of a JSON tree."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}/{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, tree
