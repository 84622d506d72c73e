"""How csae's Python modules depend on each other (a cross-cutting rule).

The estimator (csae/_estimator.py) sits above the modules that do the work
and hands them values (arrays, validated hyperparameters, the immutable
model state); they never see the estimator.  These tests read the source
with ``ast`` and import each module alone, so a new module that reaches
back into the estimator, or a new import circle, fails here with the names
to look at.  See docs/contributing.md ("How the estimator is layered").
"""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "csae")

def _modules():
    """Every module of the package, dotted from csae ("_persist",
    "solvers", "solvers.adam"); a subpackage is its __init__."""
    found = []
    for folder, _, files in os.walk(PACKAGE):
        prefix = os.path.relpath(folder, PACKAGE).replace(os.sep, ".")
        for name in files:
            if not name.endswith(".py"):
                continue
            module = name[:-3]
            if prefix == ".":
                if module != "__init__":
                    found.append(module)
            else:
                found.append(prefix if module == "__init__" else f"{prefix}.{module}")
    return sorted(found)


MODULES = _modules()

# Modules below the estimator: they take values and never import it.
BELOW = ("_backends", "_base", "_blockwise", "_dask", "_data", "_errors", "_finetune", "_fitting",
         "_gradcheck", "_params", "_persist", "_range", "_state", "_threads", "_training",
         "_validation", "_warnings") + tuple(m for m in MODULES if m.startswith("solvers"))

# None: L-BFGS clears the other solvers' state through solvers/_registry.py,
# below every solver module, not through the package's SOLVERS.
KNOWN_CIRCLES: list = []

# Names the modules give an estimator they are handed.
MODEL_NAMES = {"model", "estimator", "est", "autoencoder"}


def _tree(module):
    path = os.path.join(PACKAGE, *module.split("."))
    path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
    with open(path, encoding="utf-8") as fh:
        return ast.parse(fh.read(), module)


def _module_of(dotted):
    """The csae module ``csae.<dotted>`` names (or its package)."""
    parts = dotted.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or None


def _imports(module):
    """The csae modules ``module`` imports anywhere (top level or inside a
    function: a lazy import is still a dependency)."""
    found = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("csae."):
                    found.add(_module_of(alias.name[5:]))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("csae."):
                found.add(_module_of(node.module[5:]))
                # "from csae.solvers import adam": a submodule when one exists.
                found.update(f"{node.module[5:]}.{a.name}" for a in node.names)
            elif node.module == "csae":
                # "from csae import _engine": a submodule when one exists.
                found.update(a.name for a in node.names)
    return found & set(MODULES) - {module}


def test_the_module_list_is_complete():
    # A new module must be placed: below the estimator, or above it.
    above = {"_estimator", "deep", "_deep_persist", "_deep_reference", "_config", "_files", "_version", "__main__",
             "cli", "datasets", "filters", "onnx", "plotting", "reference"}
    unplaced = sorted(set(MODULES) - set(BELOW) - above)
    assert not unplaced, f"place these modules in BELOW or above: {unplaced}"


@pytest.mark.parametrize("module", BELOW)
def test_modules_below_the_estimator_never_import_it(module):
    assert "_estimator" not in _imports(module)


def test_no_import_circle():
    graph = {module: _imports(module) for module in MODULES}
    circles = []

    def visit(module, path):
        for other in sorted(graph[module]):
            if other in path:
                circle = path[path.index(other):] + [other]
                if circle[0] == min(circle[:-1]):  # each circle once
                    circles.append(" -> ".join(circle))
            else:
                visit(other, path + [other])

    for module in MODULES:
        visit(module, [module])
    assert sorted(set(circles)) == sorted(KNOWN_CIRCLES), \
        "import circles: " + "; ".join(sorted(set(circles)))


@pytest.mark.parametrize("module", [m for m in MODULES if m not in ("_estimator", "_base")])
def test_no_module_but_the_estimator_reaches_into_a_model(module):
    # ``model._something``: a private attribute or method of the estimator
    # read or called from outside it (_base is the estimator's base class).
    reached = sorted({f"{node.value.id}.{node.attr} (line {node.lineno})"
                      for node in ast.walk(_tree(module))
                      if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                      and node.value.id in MODEL_NAMES and node.attr.startswith("_")
                      and not node.attr.startswith("__")})
    assert not reached, f"csae/{module}.py reaches into the estimator: {reached}"


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    if module == "__main__":
        pytest.skip("runs the command line")
    result = subprocess.run([sys.executable, "-c", f"import csae.{module}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# A function longer than this (its docstring not counted) says why in a
# comment starting "# Long:" in its first lines.
MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("module", MODULES)
def test_no_function_is_longer_than_a_screen_without_a_reason(module):
    tree = _tree(module)
    too_long = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = node.body[0]
        docstring = (first.end_lineno - first.lineno + 1
                     if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                     and isinstance(first.value.value, str) else 0)
        length = node.end_lineno - node.lineno + 1 - docstring
        if length > MAX_FUNCTION_LINES and not _says_why(module, node):
            too_long.append(f"{node.name} (line {node.lineno}, {length} lines)")
    assert not too_long, f"csae.{module}: " + "; ".join(too_long)


def _says_why(module, node):
    path = os.path.join(PACKAGE, *module.split("."))
    path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()[node.lineno - 1:node.lineno + 12]
    return any(line.strip().startswith("# Long:") for line in lines)
