"""Run the test suite's installed-package subset against csae as pip
installed it (site-packages), never the source checkout these tests live in.

    python tests/run_installed.py [pytest options]

.ci/run runs this in a fresh virtual environment into which the wheel was
installed with no compiler reachable; cibuildwheel runs it on every wheel
(pyproject.toml's test-command).  It refuses to run when `import csae`
finds the checkout.

The subset covers every public entry point: the estimator (fit, transform,
partial_fit, the solvers, save/load), the engine on every kernel path the
CPU has, the `csae` command, datasets, filters, plotting, ONNX export,
threads, warnings and bad input, scikit-learn and Dask interplay, the deep
networks' engine and stacking, and the C
library inside the wheel (header, libcsae, csae-config, pkg-config, C, C++
and Cython programs built against it).  Left out: tests that compile the
engine's C sources themselves (they test the checkout, not the wheel: the
sanitizer, model-file and Windows builds), the benchmarks (not in the
wheel), the sdist round trip, and the slow statistical studies.
"""

import os
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

SUBSET = [
    "test_estimator.py", "test_engine.py", "test_kernel_paths.py", "test_solvers.py",
    "test_persist.py", "test_cli.py", "test_datasets.py", "test_filters.py",
    "test_plotting.py", "test_onnx.py", "test_onnx_deep.py", "test_threads.py",
    "test_warnings.py", "test_guarantees_bad_input.py", "test_data.py",
    "test_sklearn_compat.py", "test_dask.py", "test_deep.py", "test_stack.py",
    "test_c_library.py",
]
DESELECT = {
    # builds the sdist and a wheel from it: the checkout's job (tools/build_wheels.py)
    "test_wheel_built_from_the_sdist_serves_c_cpp_and_cython",
    # benchmarks/ is not in the wheel, and its scripts import the checkout's csae
    "test_serving_benchmark_runs",
    "test_grid_search_benchmark_runs",
}


class Deselect:
    """Leaves out the DESELECT tests by name (every parametrization), and
    says so in pytest's summary line."""

    @staticmethod
    def pytest_collection_modifyitems(config, items):
        dropped = [item for item in items if item.originalname in DESELECT]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item.originalname not in DESELECT]


def main(argv):
    import csae
    where = pathlib.Path(csae.__file__).resolve()
    print(f"csae {csae.__version__} from {where}", flush=True)
    if ROOT in where.parents:
        sys.exit(f"run_installed.py: `import csae` found the checkout ({where}), "
                 "not an installed csae")
    import pytest
    args = [str(HERE / name) for name in SUBSET]
    args += ["-p", "no:cacheprovider", f"--rootdir={ROOT}", f"-c={ROOT / 'pyproject.toml'}"]
    # Run from an empty folder: nothing in the working directory shadows
    # the installed package, in this process or in the tests' subprocesses.
    with tempfile.TemporaryDirectory() as empty:
        os.chdir(empty)
        status = pytest.main(args + list(argv), plugins=[Deselect()])
    after = pathlib.Path(sys.modules["csae"].__file__).resolve()
    if after != where:
        sys.exit(f"run_installed.py: csae changed from {where} to {after} during the run")
    return int(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
