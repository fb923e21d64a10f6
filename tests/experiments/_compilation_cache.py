"""A scoped JAX persistent compilation cache for tests that compile the same programs again."""

from __future__ import annotations

import contextlib
import pathlib

import jax


def settings(path: str | pathlib.Path) -> dict[str, object]:
    """JAX's options for a persistent compilation cache in ``path`` that keeps every program,
    however small or quick to compile."""
    return {
        "jax_compilation_cache_dir": str(path),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }


def environment(path: str | pathlib.Path) -> dict[str, str]:
    """The same :func:`settings` as the environment variables a fresh JAX process reads."""
    return {name.upper(): str(value) for name, value in settings(path).items()}


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
