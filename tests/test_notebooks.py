"""Execute every notebook in notebooks/ top to bottom (nbclient, kernel python3).

The notebooks check their own claims with ``assert`` cells (textbook values, KL = H(p, q) − H(p),
finite gradients at the edges, bound orderings), so a failing claim fails the test. They run the
way Jupyter starts them: the kernel's working directory is ``notebooks/`` and nothing is on
``PYTHONPATH`` (``entjax`` comes from the installation; the notebooks that drive the experiment
code say so in their first cell and put the checkout on ``sys.path`` themselves). No cell may
print a warning. Notebooks are stored without outputs; that is checked too.

With ``ENTJAX_NOTEBOOK_CACHE`` set to the docs build's execution cache (``.ci/run`` sets it to
``docs/_build/.jupyter_cache``), each notebook that passed is stored there, so that the docs
build that follows renders these outputs instead of executing every notebook a second time
(myst-nb's ``nb_execution_mode = "cache"`` matches notebooks by their code cells).
"""

from __future__ import annotations

import os
import pathlib

import nbformat
import pytest
from _compilation_cache import VARIABLES as CACHE_VARIABLES
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 600  # per cell; each notebook takes well under a minute on an idle 2-core CPU
CACHE_ENV = "ENTJAX_NOTEBOOK_CACHE"


def test_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "01_entropy_basics.ipynb",
        "02_ensembles.ipynb",
        "03_information_bottleneck.ipynb",
        "04_elbo.ipynb",
        "05_max_entropy.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: commit notebooks with outputs cleared"
            assert cell.execution_count is None


def _store_for_the_docs(nb: nbformat.NotebookNode, path: pathlib.Path, cache_dir: str) -> None:
    """Put the outputs of the executed ``nb`` into myst-nb's execution cache, as the docs build
    would have: on the stored notebook, whose cells (sources and metadata, without the timing
    metadata the client adds) are what the cache matches."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    stored = nbformat.read(path, as_version=4)
    for cell, ran in zip(stored.cells, nb.cells, strict=True):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = ran.outputs, ran.execution_count
    uri = str(ROOT / "docs" / "notebooks" / path.name)  # where the docs build reads it
    get_cache(cache_dir).cache_notebook_bundle(CacheBundleIn(stored, uri), overwrite=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    cache_dir = os.environ.get(CACHE_ENV)
    # The kernel inherits the environment: headless inline plots, and nothing of the checkout on
    # the path (as when Jupyter is started after the README's install).
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    # nothing of the session's JAX settings but the worker's compilation cache, unless it is off
    for key in [k for k in os.environ if k.startswith(("JAX_", "XLA_"))]:
        if key not in CACHE_VARIABLES:
            monkeypatch.delenv(key)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.execution_count is not None for c in code)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    stderr = "".join(
        o.get("text", "") for c in code for o in c.outputs if o.get("name") == "stderr"
    )
    assert "Warning" not in stderr, stderr[-3000:]
    uses_checkout = any("sys.path.insert" in c.source for c in code)
    assert uses_checkout == any("from experiments" in c.source for c in code)
    if cache_dir:
        _store_for_the_docs(nb, path, cache_dir)
