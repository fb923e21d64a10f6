"""The main experiment's smoke runs, shared by every test that reads them (session scope; they
all live in ``test_ensemble_experiment.py`` so that ``--dist loadfile`` runs them on one worker)."""

import pathlib
from typing import NamedTuple

import pytest


@pytest.fixture(scope="session", autouse=True)
def _experiment_compilation_cache(tmp_path_factory):
    """One persistent XLA compilation cache for this worker's experiment subprocesses: the
    worker's directory of the run-wide cache, or a directory of this session without it."""
    import _compilation_cache
    import _main_experiment

    # this process's directory of a run-wide cache (``tests/_compilation_cache.py``), if any
    mine = _compilation_cache.PROCESS_DIRECTORY
    _main_experiment.CACHE_DIR = str(mine or tmp_path_factory.mktemp("xla_cache"))
    yield
    _main_experiment.CACHE_DIR = None


class MainRuns(NamedTuple):
    """The session's main-experiment invocations: their working directory, and per invocation
    (by name, in ``_main_experiment.MAIN_INVOCATIONS`` order) the exit code and the stderr."""

    work: pathlib.Path
    codes: dict[str, int]
    stderr: dict[str, str]
    index: dict[str, int]  # an invocation's position (for ``<out>.after<i>.json``)


@pytest.fixture(scope="session")
def main_runs(tmp_path_factory) -> MainRuns:
    """Every smoke invocation of the main experiment that the tests read, in ONE process (they
    share its compiled functions): the reference run ``a``; a run interrupted after step 25 of
    40 (checkpoints every 10, so steps 21..25 are lost) left as it is; another interrupted one
    then resumed, resumed again once finished, resumed with another configuration (refused),
    and run again without ``--resume`` (refused); a third interrupted after step 15, then
    replaced with ``--overwrite`` (a fresh run from step 0 with the same seed, interrupted after
    step 25 like the second: their checkpoints are compared); ``--methods deep``."""
    from _main_experiment import MAIN_INVOCATIONS, SMOKE, run, split_stderr

    work = tmp_path_factory.mktemp("main_runs")
    codes, stderr = run(
        *[[*SMOKE, "--out", str(work / out), *flags] for _, out, flags in MAIN_INVOCATIONS]
    )
    names = [name for name, _, _ in MAIN_INVOCATIONS]
    parts = split_stderr(stderr)
    assert len(parts) == len(names), stderr[-3000:]
    return MainRuns(
        work,
        dict(zip(names, codes, strict=True)),
        dict(zip(names, parts, strict=True)),
        {name: i for i, name in enumerate(names)},
    )
