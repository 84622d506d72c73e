"""Packaging: the sdist carries everything needed to build and check csae,
the version has one source, and the compiled module's stub matches it.

The sdist is built from a copy of the source tree (so the checkout is left
untouched) with ``python -m build --sdist``, without build isolation when
the build requirements are already installed (no network then).  Building
the wheel and installing into fresh virtualenvs is slower and needs the
package index; it is done by hand and by cibuildwheel (see pyproject.toml).
"""

import ast
import glob
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

import csae

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Build products and caches that must not reach the sdist, nor the copy the
# sdist is built from.
_IGNORE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
    ".pytest_cache", ".benchmarks", "*.so", "*.o", "_engine.c", "c_api_test",
    "*.npz", "*.json")


def _have_build_requirements():
    """setuptools >= 77, Cython and numpy importable: no isolation needed."""
    try:
        import Cython  # noqa: F401
        import numpy  # noqa: F401
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


def _read(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return f.read()


def _repo_files(pattern):
    return sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, pattern), recursive=True))


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """(path of the built sdist, its member names relative to the top folder)."""
    pytest.importorskip("build", reason="needs the 'build' package (pip install build)")
    if not os.path.exists(os.path.join(REPO, "pyproject.toml")):
        pytest.skip("not running from a source tree")
    tmp = tmp_path_factory.mktemp("sdist")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=_IGNORE)
    cmd = [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp / "dist")]
    if _have_build_requirements():
        cmd.append("--no-isolation")
    cmd.append(str(src))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"python -m build failed:\n{done.stdout}\n{done.stderr}"
    (path,) = glob.glob(str(tmp / "dist" / "*.tar.gz"))
    with tarfile.open(path) as tar:
        names = tar.getnames()
    top = names[0].split("/")[0]
    members = {n.split("/", 1)[1] for n in names if "/" in n}
    assert all(n.split("/")[0] == top for n in names)
    return path, top, members


def _version_source():
    """The version string at the attribute pyproject.toml names as its source."""
    text = _read("pyproject.toml")
    assert re.search(r'dynamic\s*=\s*\[[^\]]*"version"', text), "version is not dynamic"
    match = re.search(r'version\s*=\s*\{\s*attr\s*=\s*"([\w.]+)"\s*\}', text)
    assert match, "no [tool.setuptools.dynamic] version = { attr = ... }"
    module, attr = match.group(1).rsplit(".", 1)
    # Read the file rather than import it: the installed copy may be older.
    path = os.path.join(REPO, *module.split(".")) + ".py"
    tree = ast.parse(_read(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == attr for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{attr} not assigned in {path}")


def test_version_has_one_source():
    version = _version_source()
    assert csae.__version__ == version
    assert re.fullmatch(r"\d+\.\d+\.\d+([abc]|rc)?\d*(\.dev\d+)?", version)


def test_sdist_contains_the_sources(sdist):
    path, top, members = sdist
    expected = (
        _repo_files("src_c/*.c") + _repo_files("src_c/*.h")
        + ["csae/_engine.pyx", "csae/engine.pxd", "csae/_engine.pyi", "csae/py.typed"]
        + _repo_files("csae/**/*.py")  # subpackages too (csae/solvers)
        + [p for p in _repo_files("docs/**/*") if not p.endswith(".npz")
           and os.path.isfile(os.path.join(REPO, p))]
        + _repo_files("tests/*.py") + _repo_files("tests/*.c")
        + _repo_files("benchmarks/*.py") + _repo_files("benchmarks/*.c")
        + ["setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "PKG-INFO"])
    assert len(_repo_files("src_c/*.c")) >= 2 and "docs/math.md" in expected
    missing = sorted(set(expected) - members)
    assert not missing, f"missing from {os.path.basename(path)}: {missing}"


def test_sdist_has_no_build_products(sdist):
    _, _, members = sdist
    bad = sorted(m for m in members
                 if m.endswith((".o", ".so", ".pyd", ".pyc", ".npz"))
                 or m == "csae/_engine.c" or m.startswith(("build/", "dist/")))
    assert not bad


def test_sdist_version_matches(sdist):
    path, top, members = sdist
    version = _version_source()
    assert top == f"csae-{version}"
    assert os.path.basename(path) == f"csae-{version}.tar.gz"
    with tarfile.open(path) as tar:
        pkg_info = tar.extractfile(f"{top}/PKG-INFO").read().decode()
    assert f"\nVersion: {version}\n" in pkg_info
    assert "\nLicense-Expression: BSD-3-Clause\n" in pkg_info


def test_wheel_ships_stub_and_marker():
    """The package data that puts the stub and py.typed into the wheel."""
    text = _read("pyproject.toml")
    match = re.search(r"\[tool\.setuptools\.package-data\]\s*csae\s*=\s*\[([^\]]*)\]", text)
    assert match
    patterns = set(re.findall(r'"([^"]+)"', match.group(1)))
    assert {"*.pyi", "py.typed"} <= patterns
    assert os.path.exists(os.path.join(REPO, "csae", "py.typed"))


def test_stubtest_accepts_the_stub(tmp_path):
    """mypy's stubtest compares csae/_engine.pyi with the built extension."""
    pytest.importorskip("mypy.stubtest", reason="needs mypy (pip install mypy)")
    # stubtest runs in the source tree (mypy cannot follow editable-install
    # import hooks), so the csae imported there must be the one under test.
    if os.path.dirname(os.path.abspath(csae.__file__)) != os.path.join(REPO, "csae"):
        pytest.skip("csae under test is not the one in this source tree")
    # pyproject.toml's [tool.mypy] settings, with the cache kept out of the tree.
    config = tmp_path / "mypy.ini"
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    overrides = tomllib.loads(_read("pyproject.toml"))["tool"]["mypy"]["overrides"]
    untyped = [m for o in overrides if o.get("ignore_missing_imports") for m in o["module"]]
    config.write_text(f"[mypy]\ncache_dir = {tmp_path / 'mypy_cache'}\n"
                      f"[mypy-{','.join(untyped)}]\nignore_missing_imports = True\n")
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", str(config),
         "--allowlist", os.path.join("tests", "stubtest-allowlist.txt"), "csae._engine"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _stub_functions():
    tree = ast.parse(_read("csae", "_engine.pyi"))
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_stub_covers_the_compiled_module():
    """Every public function of csae._engine is in the stub, with the same
    parameters (names, kinds, which have defaults) and annotations on all."""
    engine = importlib.import_module("csae._engine")
    public = {name for name, obj in vars(engine).items()
              if not name.startswith("_") and callable(obj) and not inspect.isclass(obj)
              and getattr(obj, "__module__", None) == "csae._engine"}
    stubs = _stub_functions()
    assert public, "found no public functions in csae._engine"
    assert sorted(public) == sorted(stubs)
    kinds = {"posonlyargs": inspect.Parameter.POSITIONAL_ONLY,
             "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
             "kwonlyargs": inspect.Parameter.KEYWORD_ONLY}
    for name in sorted(public):
        node = stubs[name]
        assert node.returns is not None, f"{name}: no return annotation"
        stub_params = []
        positional = node.args.posonlyargs + node.args.args
        first_default = len(positional) - len(node.args.defaults)
        for i, arg in enumerate(positional):
            kind = kinds["posonlyargs"] if arg in node.args.posonlyargs else kinds["args"]
            stub_params.append((arg.arg, kind, i >= first_default))
        for arg, default in zip(node.args.kwonlyargs, node.args.kw_defaults):
            stub_params.append((arg.arg, kinds["kwonlyargs"], default is not None))
        for arg in positional + node.args.kwonlyargs:
            assert arg.annotation is not None, f"{name}({arg.arg}): no annotation"
        runtime = [(p.name, p.kind, p.default is not inspect.Parameter.empty)
                   for p in inspect.signature(getattr(engine, name)).parameters.values()]
        # Cython reports C-typed arguments (size_t n_threads) as positional
        # or keyword, as the stub does.
        assert stub_params == runtime, name
