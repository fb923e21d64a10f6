"""Shared test configuration: float64 references, strict promotion, small fixed shapes.

Tests are split by layer: ``tests/entjax`` (the library), ``tests/experiments`` (the experiment
stack, benchmarks, and the experiments end to end; its own conftest holds their shared runs), and
at the top the checks of what users read and paste (docs, README blocks, notebooks).
"""

import os
import sys

import jax
import numpy as np
import pytest

# Float64 lets numpy/scipy references and finite differences be compared tightly; library
# functions are still exercised in float32/bf16 explicitly where precision is the subject.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def script_jax_config():
    """Run under JAX's defaults (what ``python -m experiments.X`` uses): no x64, rank promotion
    allowed; restored afterwards."""
    saved = (jax.config.jax_enable_x64, jax.config.jax_numpy_rank_promotion)
    jax.config.update("jax_enable_x64", False)
    jax.config.update("jax_numpy_rank_promotion", "allow")
    yield
    jax.config.update("jax_enable_x64", saved[0])
    jax.config.update("jax_numpy_rank_promotion", saved[1])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pytest_configure(config) -> None:
    """This process's directory of the run-wide compilation cache (``tests/_compilation_cache.py``:
    ``.jax_cache/`` in the checkout unless ``ENTJAX_TEST_COMPILATION_CACHE`` says otherwise)."""
    import _compilation_cache

    root = _compilation_cache.root_from_environment()
    if root is None:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:  # the xdist controller (it starts the workers later) or a plain run
        root.mkdir(parents=True, exist_ok=True)
        _compilation_cache.remove_stale(root)
    _compilation_cache.use_run_cache(root, worker or "pytest")


def pytest_unconfigure(config) -> None:
    import _compilation_cache

    mine = _compilation_cache.PROCESS_DIRECTORY  # set by pytest_configure, unless the cache is off
    if mine is not None:
        root = mine.parent
        try:
            _compilation_cache.publish(mine, root)
            if "PYTEST_XDIST_WORKER" not in os.environ:  # after every worker has published
                _compilation_cache.prune(root)
        except OSError as e:  # a cache that cannot be kept costs the next run time, no more
            print(f"entjax tests: the compilation cache in {root} not kept: {e}", file=sys.stderr)


def pytest_report_header(config) -> str:
    from entjax import _numerics

    forms = "default (GPU/TPU) forms forced" if _numerics.default_forms_forced() else "per backend"
    return f"entjax backend-dependent forms: {forms} ({_numerics.FORCE_DEFAULT_FORMS})"


# The files that run whole experiments in subprocesses, longest first. pytest-xdist's loadfile
# hands files to workers in collection order, so starting these first keeps one long file from
# running alone at the end while the other worker idles.
SLOW_FILES = (
    "test_ensemble_experiment.py",
    "test_notebooks.py",
    "test_ensemble_mnist.py",
    "test_research_experiments.py",
    "test_readme.py",
    "test_bench_smoke.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        name = item.path.name
        return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)

    items.sort(key=rank)  # stable: the order within each file is kept
