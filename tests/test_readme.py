"""Every ```python block of the README runs as written, on its own, from a scratch directory.

Each block is a separate fresh Python process (JAX's defaults, nothing of the checkout on the
path: ``entjax`` comes from the installation, as for a user who pasted the block), so a block
that relies on an import or a name from another block fails here.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
from _compilation_cache import VARIABLES as CACHE_VARIABLES

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)


def test_readme_has_the_blocks_users_paste():
    assert len(BLOCKS) >= 3
    assert any("entjax.nnx" in block for block in BLOCKS)  # "Evaluate your own ensemble"
    ensemble = next(block for block in BLOCKS if "entjax.nnx" in block)
    assert len(ensemble.splitlines()) <= 40


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs_alone(block, tmp_path):
    # Nothing of the session's JAX settings but the worker's directory of the run-wide compilation
    # cache (``tests/_compilation_cache.py``), unless it is off: the block's programs are loaded
    # by the next run, and under ``.ci/run`` by the wheel check's run of the block.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JAX_", "XLA_", "PYTHON")) or k in CACHE_VARIABLES
    }
    proc = subprocess.run(
        [sys.executable, "-I", "-c", block],  # -I: the scratch directory is not on the path
        cwd=tmp_path,
        env=dict(env, JAX_PLATFORMS="cpu", MPLBACKEND="Agg"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr, proc.stderr[-3000:]
    if "entjax.nnx" in block:  # the ensemble table: one row per metric, five members + ensemble
        lines = proc.stdout.splitlines()
        assert lines[0].split()[-1] == "ensemble"
        rows = {line[:14].strip(): line[14:].split() for line in lines[1:]}
        assert {"accuracy", "NLL", "ECE", "ECE (T-scaled)", "AURC", "AUROC entropy"} <= set(rows)
        assert all(len(values) == 6 for values in rows.values())
        accuracy = [float(v) for v in rows["accuracy"]]
        assert min(accuracy) > 0.9  # the members learned digits 0-7
        assert float(rows["AUROC MI"][-1]) > 0.6  # the ensemble's disagreement flags 8 and 9
        assert [float(v) for v in rows["AUROC MI"][:5]] == [0.5] * 5  # one member: MI = 0
