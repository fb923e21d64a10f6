"""JAX persistent compilation caches for the tests: the run-wide one (every pytest run, across
runs) and a scoped one for tests that compile the same programs again.

Most of the suite's CPU time is XLA compiling programs (measured: 515 of 846 CPU-seconds in
backend compilation, 123 more in tracing and lowering, over 5,367 programs in 29 processes). So
``pytest`` keeps what it compiled in :data:`DEFAULT_ROOT` (``.jax_cache/`` in the checkout,
git-ignored) and a later run loads it instead of compiling again; ``ENTJAX_TEST_COMPILATION_CACHE``
names another directory (``.ci/run``: a fresh one per CI run) or, set to ``off``, none. A cache
hit is the same executable (its key is the program, the compile options, the XLA flags and the
jaxlib version), and tracing and lowering still run, so every trace-time check still runs.

JAX writes a cache entry without a lock and not atomically (``jax._src.lru_cache``, without a
size limit), so a process reading a directory while another writes the same entry can read half
a file (a warning, then a compilation). So no two processes that run at the same time share a
directory here: each pytest process (an xdist worker) has its own, seeded with hard links to
what earlier processes published, and the subprocesses it starts (README blocks, notebook
kernels, experiment runs) use it while it waits for them; when it ends it publishes its entries
(hard links) and removes its directory.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil

import jax

ENV = "ENTJAX_TEST_COMPILATION_CACHE"
DEFAULT_ROOT = pathlib.Path(__file__).resolve().parents[1] / ".jax_cache"
# The published entries are pruned, oldest first, to half this size when they exceed it.
MAX_BYTES = 1 << 30


def settings(path: str | pathlib.Path) -> dict[str, object]:
    """JAX's options for a persistent compilation cache in ``path`` that keeps every program,
    however small or quick to compile."""
    return {
        "jax_compilation_cache_dir": str(path),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
        # None of XLA's own (GPU) caches: enabled, they put this directory's path into every
        # program's compile options, hence into its cache key, and a copy of the cache elsewhere
        # would never hit.
        "jax_persistent_cache_enable_xla_caches": "none",
    }


def environment(path: str | pathlib.Path) -> dict[str, str]:
    """The same :func:`settings` as the environment variables a fresh JAX process reads."""
    return {name.upper(): str(value) for name, value in settings(path).items()}


# The environment variables of a compilation cache (kept for subprocesses that otherwise start
# without the session's JAX settings). A cached program is the same executable (its key is the
# program itself), so a cache changes what is compiled, not what runs.
VARIABLES = tuple(environment(""))


def _print_environment() -> None:
    """``python tests/_compilation_cache.py DIR``: :func:`environment` as ``NAME=value`` words,
    for a step of ``.ci/run`` that runs outside pytest (``env $(...) command``)."""
    import sys

    print(" ".join(f"{name}={value}" for name, value in environment(sys.argv[1]).items()))


def root_from_environment() -> pathlib.Path | None:
    """The run-wide cache's root: ``$ENTJAX_TEST_COMPILATION_CACHE``, :data:`DEFAULT_ROOT` when
    it is unset, ``None`` (no cache) when it is ``off``."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in ("off", "0", "false", "no"):
        return None
    return pathlib.Path(value) if value else DEFAULT_ROOT


def shared_directory(root: str | pathlib.Path) -> pathlib.Path:
    """Where the processes publish what they compiled, for the processes and runs that follow."""
    return pathlib.Path(root) / "shared"


# The name of a process's directory: its xdist worker (or "pytest") and its pid.
_PROCESS_DIRECTORY = re.compile(r"(?:gw\d+|pytest)-(\d+)")
# This process's directory of the run-wide cache, once :func:`use_run_cache` has set it.
PROCESS_DIRECTORY: pathlib.Path | None = None


def use_run_cache(root: str | pathlib.Path, name: str) -> pathlib.Path:
    """Point this process (and the subprocesses it starts) at a cache of its own under ``root``,
    seeded with hard links to every entry published so far; returns that directory."""
    mine = pathlib.Path(root) / f"{name}-{os.getpid()}"
    mine.mkdir(parents=True)
    shared = shared_directory(root)
    if shared.is_dir():
        for entry in shared.iterdir():
            with contextlib.suppress(FileNotFoundError):  # pruned meanwhile by another run
                os.link(entry, mine / entry.name)
    for option, value in settings(mine).items():
        jax.config.update(option, value)
    os.environ.update(environment(mine))
    global PROCESS_DIRECTORY
    PROCESS_DIRECTORY = mine
    return mine


def _complete(entry: pathlib.Path) -> bool:
    """Whether ``entry`` holds a whole cache entry: it decompresses as JAX compressed it. A
    process killed while writing (a timed-out subprocess, an interrupted run) leaves a truncated
    one, which JAX would report with a warning in every later run."""
    from jax._src import compilation_cache

    try:
        compilation_cache.decompress_executable(entry.read_bytes())
    except Exception:  # any failure to decompress means: not a whole entry
        return False
    return True


def publish(directory: pathlib.Path, root: str | pathlib.Path) -> None:
    """Hard-link the whole entries of ``directory`` (:func:`_complete`; its process has finished
    writing) into the shared directory of ``root`` (an entry already there is kept), then remove
    ``directory``."""
    shared = shared_directory(root)
    shared.mkdir(exist_ok=True)
    for entry in directory.iterdir():
        if (shared / entry.name).exists() or not _complete(entry):
            continue
        with contextlib.suppress(FileExistsError):
            os.link(entry, shared / entry.name)
    shutil.rmtree(directory)


def remove_stale(root: str | pathlib.Path) -> None:
    """Remove the directories of processes that no longer run (a run killed before it could
    publish); those of a run going on beside this one are kept."""
    for path in pathlib.Path(root).iterdir():
        match = _PROCESS_DIRECTORY.fullmatch(path.name)  # nothing else in ``root`` is touched
        if match is None or not path.is_dir():
            continue
        pid = match.group(1)
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def prune(root: str | pathlib.Path, max_bytes: int = MAX_BYTES) -> None:
    """Keep the shared directory under ``max_bytes``: past it, remove the oldest entries (by
    when they were written) until half of it is left."""
    shared = shared_directory(root)
    if not shared.is_dir():
        return
    entries = []
    for entry in shared.iterdir():
        with contextlib.suppress(FileNotFoundError):
            stat = entry.stat()
            entries.append((stat.st_mtime, stat.st_size, entry))
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return
    for _, size, entry in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes // 2:
            break
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
        total -= size


@contextlib.contextmanager
def persistent_compilation_cache(path: pathlib.Path):
    """JAX's persistent compilation cache in ``path`` for every program, then off again.

    Inside, a program compiled once is loaded from ``path`` when it is compiled again (by a
    later invocation of an experiment in this process, or by a second model of the same
    shapes) instead of being compiled anew, as in a user's runs with ``JAX_COMPILATION_CACHE_DIR``
    set. A program that differs in anything has another cache key and is compiled.
    """
    from jax.experimental.compilation_cache import compilation_cache

    options = settings(path)
    saved = {name: getattr(jax.config, name) for name in options}
    for name, value in options.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


if __name__ == "__main__":
    _print_environment()
