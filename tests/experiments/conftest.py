"""The main experiment's smoke runs, shared by every test that reads them (session scope; they
all live in ``test_ensemble_experiment.py`` so that ``--dist loadfile`` runs them on one worker)."""

import pathlib

import pytest


@pytest.fixture(scope="session")
def main_runs(tmp_path_factory) -> pathlib.Path:
    """Three smoke invocations of the main experiment in one process (they share its compiled
    functions): ``a`` (the reference), ``a_again`` (the same seed again) and ``resumed``,
    interrupted after step 25 of 40 (checkpoints every 10, so steps 21..25 are lost)."""
    from _main_experiment import SMOKE, run

    work = tmp_path_factory.mktemp("main_runs")
    codes, stderr = run(
        [*SMOKE, "--out", str(work / "a")],
        [*SMOKE, "--out", str(work / "a_again")],
        [*SMOKE, "--out", str(work / "resumed"), "--stop-after-step", "25"],
    )
    assert codes == [0, 0, 3], stderr[-3000:]
    return work


@pytest.fixture(scope="session")
def main_four_devices(tmp_path_factory) -> tuple[pathlib.Path, list[int], str]:
    """One process with 4 CPU devices: a member count that does not divide over them (refused),
    then the smoke run sharded over the 4 devices (the reference of the multi-host test)."""
    from _main_experiment import SMOKE, run

    work = tmp_path_factory.mktemp("main_four_devices")
    codes, stderr = run(
        [*SMOKE, "--out", str(work / "bad"), "--members", "3"],
        [*SMOKE, "--out", str(work / "four")],
        devices=4,
    )
    return work, codes, stderr
