#!/usr/bin/env bash
# Build the sdist and the wheel (from the sdist), check what the wheel ships, install it into a
# fresh venv and run the library's doctests from outside the repository.
#
#   .ci/check_wheel.sh           a venv layered on the *running* environment (a venv or the
#                                system Python alike): a .pth file lists the running
#                                interpreter's site-packages, the wheel is installed with
#                                --no-index --no-deps, its dependencies (jax, optax, chex, numpy,
#                                pytest) come from that environment, so nothing is downloaded
#   .ci/check_wheel.sh --plain   plain venv: pip installs the wheel and its dependencies from the
#                                index (downloads jax and jaxlib; slower)
#
# Either way the script checks that `entjax` is imported from the venv, not from the checkout or
# an editable install, and that the wheel's declared dependencies are satisfied there.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-system}
case "$mode" in system | --plain) ;; *) echo "usage: $0 [--plain]" >&2; exit 2 ;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONNOUSERSITE=1

python -m build --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
wheel=$(ls "$tmp"/dist/entjax-*.whl)
sdist=$(ls "$tmp"/dist/entjax-*.tar.gz)
echo "built $(basename "$sdist") and $(basename "$wheel")"

python - "$wheel" "$sdist" <<'EOF'
import ast, pathlib, sys, tarfile, zipfile

wheel, sdist = sys.argv[1:]
init = pathlib.Path("entjax/__init__.py")
version = next(
    node.value.value
    for node in ast.parse(init.read_text()).body
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__version__"
)
names = set(zipfile.ZipFile(wheel).namelist())
modules = {f"entjax/{p.name}" for p in pathlib.Path("entjax").glob("*.py")}
missing = sorted((modules | {"entjax/py.typed"}) - names)
assert not missing, f"the wheel lacks {missing}"
stray = sorted(n for n in names if not n.startswith(("entjax/", f"entjax-{version}.dist-info/")))
assert not stray, f"the wheel ships files outside the package: {stray}"
assert f"{version}-py3-none-any.whl" in wheel, f"wheel {wheel} is not version {version}"
members = tarfile.open(sdist).getnames()
for need in ("pyproject.toml", "README.md", "entjax/py.typed"):
    assert f"entjax-{version}/{need}" in members, f"the sdist lacks {need}"
print(f"wheel ships {len(modules)} modules and py.typed; version {version}")
EOF

if [[ "$mode" == --plain ]]; then
  python -m venv "$tmp/venv"
  "$tmp/venv/bin/python" -m pip install -q "$wheel" pytest
else
  # The dependencies (jax and jaxlib alone are ~100 MB of wheels) are taken from the running
  # environment instead of being downloaded again on every CI run. Not `--system-site-packages`:
  # run from a venv's python, that builds on the *base* interpreter and misses the venv's
  # packages. A .pth file appends the running interpreter's site-packages directories to the new
  # venv's path, after its own site-packages (so the wheel's entjax wins). Plain path lines do not
  # process the .pth files in those directories, so an editable install of the checkout stays
  # invisible.
  python -m venv "$tmp/venv"
  venv_site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  python -c 'import sys
print("\n".join(p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))))' \
    >"$venv_site/_entjax_ci_parent_env.pth"
  "$tmp/venv/bin/python" -m pip install -q --no-index --no-deps --ignore-installed "$wheel"
fi

mkdir "$tmp/run" "$tmp/readme" "$tmp/notebooks"
cp notebooks/*.ipynb "$tmp/notebooks/"
# The README's python blocks, one file each, to run against the wheel from outside the checkout.
python - "$tmp/readme" <<'EOF'
import pathlib, re, sys

blocks = re.findall(r"^```python\n(.*?)^```", pathlib.Path("README.md").read_text(), re.M | re.S)
for i, block in enumerate(blocks):
    pathlib.Path(sys.argv[1], f"block{i}.py").write_text(block)
EOF
cd "$tmp/run"  # outside the repository: nothing of the checkout is importable
cat >pytest.ini <<'EOF'
[pytest]
addopts = -p no:cacheprovider
doctest_optionflags = NORMALIZE_WHITESPACE ELLIPSIS NUMBER
filterwarnings = error
EOF
"$tmp/venv/bin/python" - "$tmp/venv" <<'EOF'
import importlib.metadata as md, pathlib, sys

from packaging.requirements import Requirement

import entjax

venv = pathlib.Path(sys.argv[1]).resolve()
where = pathlib.Path(entjax.__file__).resolve()
assert venv in where.parents, f"entjax was imported from {where}, not from the venv {venv}"
assert (where.parent / "py.typed").is_file(), "py.typed is not installed"
assert entjax.__version__ == md.version("entjax"), (entjax.__version__, md.version("entjax"))
for spec in md.requires("entjax") or []:
    req = Requirement(spec)
    if req.marker is None or req.marker.evaluate({"extra": ""}):
        have = md.version(req.name)
        assert req.specifier.contains(have, prereleases=True), f"{req}: {have} is installed"
print(f"entjax {entjax.__version__} imported from {where.parent}")
EOF
# entjax.nnx needs the optional Flax extra. Without Flax (e.g. --plain) importing it must fail
# with an ImportError that names the extra, and its doctests, which cannot be collected, are left
# out; everything else still runs.
skip_nnx=()
if ! "$tmp/venv/bin/python" -c 'import flax' 2>/dev/null; then
  "$tmp/venv/bin/python" - <<'EOF'
try:
    import entjax.nnx
except ImportError as e:
    assert 'pip install "entjax[flax]"' in str(e), f"unclear ImportError: {e}"
else:
    raise AssertionError("entjax.nnx was imported without Flax")
print('Flax is not installed: entjax.nnx asks for "entjax[flax]"; its doctests are skipped')
EOF
  skip_nnx=(--ignore "$("$tmp/venv/bin/python" -c 'import entjax, os
print(os.path.join(os.path.dirname(entjax.__file__), "nnx.py"))')")
fi
# Third-party plugins are not needed for doctests; not loading them keeps the run independent
# of what else is installed.
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "$tmp/venv/bin/python" -m pytest -q --doctest-modules \
  --pyargs entjax ${skip_nnx[@]+"${skip_nnx[@]}"}
# Every README python block, as a user pastes it, against the wheel (blocks that need Flax only
# where it is installed).
for block in "$tmp"/readme/block*.py; do
  if [[ ${#skip_nnx[@]} -gt 0 ]] && grep -q "entjax.nnx" "$block"; then continue; fi
  "$tmp/venv/bin/python" -I "$block" >/dev/null || { echo "README $(basename "$block") failed"; exit 1; }
done
echo "README python blocks ran against the wheel: $(ls "$tmp"/readme/block*.py | wc -l)"
# The notebooks about the library (those that do not drive experiments/) against the wheel, with
# the kernel in a copy of notebooks/ outside the checkout; a first cell checks where entjax is.
if [[ ${#skip_nnx[@]} -eq 0 ]]; then
  PATH="$tmp/venv/bin:$PATH" MPLBACKEND=module://matplotlib_inline.backend_inline \
    "$tmp/venv/bin/python" - "$tmp/notebooks" "$tmp/venv" <<'EOF'
import pathlib, sys

import nbformat
from nbclient import NotebookClient

folder, venv = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).resolve()
ran = []
for path in sorted(folder.glob("*.ipynb")):
    nb = nbformat.read(path, as_version=4)
    if any("from experiments" in c.source for c in nb.cells if c.cell_type == "code"):
        continue
    check = f"import entjax, pathlib\nassert pathlib.Path({str(venv)!r}) in pathlib.Path(entjax.__file__).resolve().parents"
    nb.cells.insert(0, nbformat.v4.new_code_cell(check))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    ran.append(path.stem)
assert len(ran) >= 4, ran
print("notebooks run against the wheel:", ", ".join(ran))
EOF
fi
