"""JAX persistent compilation caches for the tests: a scoped one for tests that compile the same
programs again, and the CI run's (``.ci/run``), shared by its steps.

JAX writes a cache entry without a lock and not atomically (``jax._src.lru_cache``, without a
size limit), so a process reading a directory while another writes the same entry can read half
a file (a warning, then a compilation). So no two processes that run at the same time share a
directory here: each pytest process (an xdist worker) has its own, seeded with hard links to
what earlier steps of the run compiled, and the subprocesses it starts (README blocks, notebook
kernels) use it while it waits for them.
"""

from __future__ import annotations

import contextlib
import os
import pathlib

import jax

# Set by ``.ci/run``: the directory of the CI run's compilation cache.
CI_CACHE_ENV = "ENTJAX_CI_COMPILATION_CACHE"


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


def shared_directory(root: str | pathlib.Path) -> pathlib.Path:
    """Where the CI run's processes publish what they compiled, for the steps that follow."""
    return pathlib.Path(root) / "shared"


def use_ci_cache(root: str | pathlib.Path, name: str) -> pathlib.Path:
    """Point this process (and the subprocesses it starts) at a cache of its own under ``root``,
    seeded with hard links to every entry published so far; returns that directory."""
    mine = pathlib.Path(root) / f"{name}-{os.getpid()}"
    mine.mkdir(parents=True)
    shared = shared_directory(root)
    if shared.is_dir():
        for entry in shared.iterdir():
            os.link(entry, mine / entry.name)
    for option, value in settings(mine).items():
        jax.config.update(option, value)
    os.environ.update(environment(mine))
    return mine


def publish(directory: pathlib.Path, root: str | pathlib.Path) -> None:
    """Hard-link the complete entries of ``directory`` (its process has finished writing them)
    into the shared directory of ``root``; an entry already there is kept."""
    shared = shared_directory(root)
    shared.mkdir(exist_ok=True)
    for entry in directory.iterdir():
        with contextlib.suppress(FileExistsError):
            os.link(entry, shared / entry.name)


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
