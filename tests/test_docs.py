"""The documentation sources cover the public API, and the version has one source.

Cheap checks on the sources (no Sphinx build; `.ci/run` builds the site with ``-W``): every name
in ``entjax.__all__`` is listed in exactly one API page's ``autosummary`` table and documented
there by exactly one ``autofunction``/``autoclass``; each API page documents one private module
(``api/<name>.rst``: ``entjax._<name>``); every API page is in the API toctree; every README
section that a docs page includes has both of its markers.
"""

from __future__ import annotations

import collections
import importlib.metadata
import pathlib
import re

import pytest

import entjax

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"
PAGES = sorted(p for p in API.glob("*.rst") if p.name != "index.rst")


def _autosummary_names(text: str) -> list[str]:
    """Names in the ``.. autosummary::`` blocks: indented lines after the directive's options."""
    names = []
    for block in re.finditer(r"^\.\. autosummary::\n((?:[ \t]+.*\n|[ \t]*\n)*)", text, re.M):
        for line in block.group(1).splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                names.append(line)
    return names


def _documented_names(text: str) -> list[str]:
    return re.findall(r"^\.\. auto(?:function|class|data|exception)::\s+(\S+)", text, re.M)


# A page documents the names of one module, relative to its `.. currentmodule::`: the top-level
# namespace, or an optional submodule that users import explicitly (entjax.nnx needs Flax).
MODULES = ["entjax", "entjax.nnx"]


def _collect(parse, module: str) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        current = re.findall(r"^\.\. currentmodule::\s+(\S+)\s*$", text, re.M)
        assert len(set(current)) == 1, f"{page.name}: needs one `.. currentmodule::`"
        assert current[0] in MODULES, f"{page.name}: names are relative to one of {MODULES}"
        if current[0] == module:
            counts.update(name.removeprefix(f"{module}.") for name in parse(text))
    return counts


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("parse", [_autosummary_names, _documented_names])
def test_api_pages_cover_all_exactly_once(parse, module):
    counts = _collect(parse, module)
    public = set(pytest.importorskip(module).__all__)
    assert not public - set(counts), f"undocumented: {sorted(public - set(counts))}"
    assert not set(counts) - public, f"not in {module}.__all__: {sorted(set(counts) - public)}"
    twice = sorted(name for name, n in counts.items() if n > 1)
    assert not twice, f"documented more than once: {twice}"


def test_each_api_page_follows_one_module():
    """One page per module family: ``api/<name>.rst`` documents the names of ``entjax._<name>``."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        (current,) = set(re.findall(r"^\.\. currentmodule::\s+(\S+)\s*$", text, re.M))
        if current != "entjax":
            continue  # an explicit submodule page (entjax.nnx) is its module already
        modules = {getattr(entjax, name).__module__ for name in _documented_names(text)}
        assert modules == {f"entjax._{page.stem}"}, f"{page.name} documents names of {modules}"


def test_every_api_page_is_in_the_api_toctree():
    index = (API / "index.rst").read_text(encoding="utf-8")
    listed = re.search(r"^\.\. toctree::\n((?:[ \t]+.*\n|[ \t]*\n)*)", index, re.M)
    assert listed, "docs/api/index.rst has no toctree"
    entries = {ln.strip() for ln in listed.group(1).splitlines()}
    entries -= {""}
    entries = {e for e in entries if not e.startswith(":")}
    assert entries == {p.stem for p in PAGES}


def test_readme_includes_have_their_markers():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    include = re.compile(r"```\{include\} \.\./README\.md\n(.*?)```", re.S)
    option = re.compile(r"^:(?:start-after|end-before): (.+)$", re.M)
    directives = 0
    for page in DOCS.glob("*.md"):
        for block in include.finditer(page.read_text(encoding="utf-8")):
            directives += 1
            for marker in option.findall(block.group(1)):
                marker = marker.strip().strip('"')
                assert readme.count(marker) == 1, f"{page.name}: README needs one {marker!r}"
    assert directives >= 3  # overview and API on the index, results, conventions


def test_version_has_one_source():
    assert entjax.__version__ == importlib.metadata.version("entjax")


def test_notebook_generator_is_gone():
    # The notebooks are the sources (edited in Jupyter, stored without outputs).
    assert not list((ROOT / "notebooks").glob("*.py"))
