"""Sphinx configuration for the entjax documentation.

Build (warnings are errors), from the repository root::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API pages are autodoc/autosummary over ``entjax``'s docstrings (napoleon, MathJax); the
notebooks in ``notebooks/`` are copied into ``docs/notebooks/`` (ignored by git) and executed by
myst-nb, with results cached in ``docs/_build/.jupyter_cache`` so that a rebuild re-executes
only the notebooks whose cells changed (delete ``docs/_build`` after changing code that the
notebooks import). Nothing is downloaded at build time (no intersphinx).
"""

from __future__ import annotations

import filecmp
import os
import pathlib
import re
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # build from a checkout even without `pip install -e .`

import entjax  # noqa: E402

project = "entjax"
author = "the entjax authors"
copyright = "the entjax authors"
release = entjax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
# README links to repository files that the site does not host (e.g. experiments/core/README.md)
# are not warnings, and render as their text (see `_unlink_repository_files`); a link to a file
# that does not exist still fails the build.
_README = (ROOT / "README.md").read_text(encoding="utf-8")
_REPOSITORY_LINKS = {
    target
    for target in re.findall(r"\]\(([^()\s#]+)\)", _README)
    if "://" not in target and not target.startswith("docs/") and (ROOT / target).exists()
}
nitpick_ignore = [("myst", target) for target in sorted(_REPOSITORY_LINKS)]
templates_path: list[str] = []

# -- API reference -------------------------------------------------------------------------------
autosummary_generate = False  # the topic pages document every name themselves (tests/test_docs.py)
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Show `ArrayLike` rather than the eight-member union that `jax.typing.ArrayLike` expands to (the
# annotations are strings, `from __future__ import annotations`, so the alias applies).
autodoc_type_aliases = {"jax.typing.ArrayLike": "ArrayLike"}
add_module_names = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True


def _drop_namedtuple_alias_docs(app, what, name, obj, options, lines) -> None:
    """Undocumented NamedTuple fields show their type, not "Alias for field number 0"."""
    if what in ("attribute", "property") and re.fullmatch(
        r"Alias for field number \d+", " ".join(lines).strip()
    ):
        lines.clear()


def _alias_names_in_signature(app, what, name, obj, options, signature, return_annotation):
    """Sphinx prints an alias inside ``X | None`` as ``TypeAliasForwardRef('X')``; print ``X``."""

    def fix(text: str | None) -> str | None:
        return text and re.sub(r"TypeAliasForwardRef\('([^']*)'\)", r"\1", text)

    return fix(signature), fix(return_annotation)


def _unlink_repository_files(app, doctree, docname) -> None:
    """Replace the dead in-page links myst leaves for ``_REPOSITORY_LINKS`` by their text."""
    from docutils import nodes

    for ref in list(doctree.findall(nodes.reference)):
        if ref.get("refid") in _REPOSITORY_LINKS:
            ref.replace_self(ref.children)


def setup(app) -> None:
    app.connect("doctree-resolved", _unlink_repository_files)
    app.connect("autodoc-process-docstring", _drop_namedtuple_alias_docs)
    app.connect("autodoc-process-signature", _alias_names_in_signature)


# -- Notebooks (myst-nb) -------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "cache"
nb_execution_timeout = 600  # per cell, as tests/test_notebooks.py
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True


def _copy_notebooks() -> None:
    """Mirror ``notebooks/*.ipynb`` into ``docs/notebooks/``, touching only files that changed.

    Sphinx reads sources only below ``docs/``; the notebooks stay where the test suite runs them.
    Unchanged files keep their mtime, so Sphinx and the execution cache see no change.
    """
    dest = DOCS / "notebooks"
    dest.mkdir(exist_ok=True)
    sources = {p.name: p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    for stale in dest.glob("*.ipynb"):
        if stale.name not in sources:
            stale.unlink()
    for name, src in sources.items():
        target = dest / name
        if not target.exists() or not filecmp.cmp(src, target, shallow=False):
            shutil.copyfile(src, target)


_copy_notebooks()
# The kernels inherit this environment: figures are inline PNGs even when the caller exported
# MPLBACKEND=Agg (as .ci/run does). Nothing is put on PYTHONPATH: the notebooks run as Jupyter
# starts them (those that drive experiments/ find the checkout themselves).
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"

# -- HTML ----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"entjax {release}"
html_static_path: list[str] = []
