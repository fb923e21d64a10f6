"""Multi-host: the smoke experiment as 2 JAX processes × 2 CPU devices on localhost.

The two processes coordinate through ``jax.distributed`` on a free port of 127.0.0.1 (never any
other address), shard the member axis over the 4 global devices, checkpoint into the shared
``--out`` and must resume an interrupted run across processes, exit 0 even when process 0
takes longer to write its outputs than JAX's shutdown barrier waits (here shortened to 3 s,
with process 0 delayed by 6 s: without the runner's closing barrier process 1 reaches the
shutdown barrier first and both abort), and give exactly the numbers of one process with 4
devices.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SMOKE = ["-m", "experiments.ensemble_entropy", "--smoke", "--no-progress"]
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        **extra,
    )
    return env


def _two_processes(out: pathlib.Path, *args: str, **extra: str) -> list[subprocess.Popen]:
    port = _free_port()
    procs = []
    for pid in range(2):
        env = _env(
            2,
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(pid),
            **extra,
        )
        cmd = [sys.executable, *SMOKE, "--out", str(out), *args]
        procs.append(
            subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    return procs


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    results = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=TIMEOUT_S)
            results.append((p.returncode, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return results


def _numbers(out: pathlib.Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    for key in ("timing", "devices"):
        results.pop(key)
    return results


@pytest.fixture
def one_process(main_four_devices) -> pathlib.Path:
    """The same smoke run by one process with 4 devices (``tests/conftest.py``)."""
    work, codes, stderr = main_four_devices
    assert codes[-1] == 0, stderr[-3000:]
    return work / "four"


def test_two_processes_interrupted_resumed_with_a_slow_writer_match_one_process(
    tmp_path, one_process
):
    out = tmp_path / "two"
    # Interrupted after step 25 of 40: every process stops (exit 3) with the checkpoint of
    # step 20 in the shared output directory, and no results.
    for code, err in _finish(_two_processes(out, "--stop-after-step", "25")):
        assert code == 3, err[-3000:]
    assert (out / "checkpoints" / "20").is_dir()
    assert not (out / "results.json").exists()
    # Resumed by two new processes, process 0 taking 6 s longer to write its outputs than
    # JAX's shutdown barrier (3 s here) waits: all exit 0.
    slow = {"ENTJAX_TEST_OUTPUT_DELAY_S": "6", "ENTJAX_SHUTDOWN_TIMEOUT_S": "3"}
    finished = _finish(_two_processes(out, "--resume", **slow))
    for code, err in finished:
        assert code == 0, err[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["timing"]["resumed_from_step"] == 20
    assert results["devices"]["process_count"] == 2
    assert results["devices"]["device_count"] == 4
    assert _numbers(out) == _numbers(one_process)
    assert "wrote" in finished[0][1]
    assert "wrote" not in finished[1][1]  # process 0 alone writes
