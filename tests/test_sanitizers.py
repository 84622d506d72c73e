"""Memory and thread safety of the engine, checked by tools rather than by
hope: AddressSanitizer + UndefinedBehaviorSanitizer on the C test program and
on the engine's part of the Python suite, ThreadSanitizer and valgrind
memcheck on the C test program.  Each run must come out clean (any report
fails the test).

These build the engine again with instrumentation, so they take a minute
or two; .ci/run runs them with the rest of the suite.
"""

import os
import shutil
import subprocess
import sys

import pytest

from test_c_api import ROOT, build_c_test

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g"]


def runtime_library(name):
    """Path of gcc's runtime library `name` (for LD_PRELOAD into Python)."""
    path = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True,
                          text=True, check=True).stdout.strip()
    if not os.path.isabs(path):
        pytest.fail(f"gcc does not ship {name}; the sanitizer tests need it")
    return path


def test_c_program_is_clean_under_asan_and_ubsan(tmp_path):
    exe = build_c_test(tmp_path, SANITIZE)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    result = subprocess.run([str(exe)], capture_output=True, text=True, env=env,
                            timeout=600)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "runtime error" not in report and "Sanitizer" not in report, report
    assert result.stdout.strip().splitlines()[-1].endswith(" 0 failed")


def test_c_program_is_clean_under_thread_sanitizer(tmp_path):
    """The thread pool (atomics, spin-then-sleep hand-off) and the threaded
    products and updates, with a model big enough to use them."""
    exe = build_c_test(tmp_path, ["-fsanitize=thread", "-g", "-O1"])
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TSAN_OPTIONS="halt_on_error=1"))
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-5000:]
    assert "ThreadSanitizer" not in report, report[-5000:]
    assert "a threaded epoch is bit-identical to one thread" in result.stdout


def test_c_program_is_clean_under_valgrind(tmp_path):
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.fail("valgrind is not installed (apt-get install valgrind); "
                    ".ci/run installs it")
    exe = build_c_test(tmp_path, ["-g", "-O1"])
    # valgrind (3.19) cannot run AVX-512 and hides it from CPUID, so the
    # program's avx512 suite reports "skip avx512" here and the avx2 and
    # portable suites run; ASan, UBSan and TSan above cover avx512 natively.
    # The pool's worker threads live until exit by design: their stacks are
    # "possibly lost", never "definitely lost", so only real leaks count.
    cmd = [valgrind, "--error-exitcode=99", "--leak-check=full",
           "--errors-for-leak-kinds=definite,indirect", "--quiet", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert result.stdout.strip().splitlines()[-1].endswith(" 0 failed")


def test_engine_suite_under_asan_and_ubsan(tmp_path):
    """Build an instrumented copy of the package and run the engine tests
    (every kernel path, shape class and bad input) against it."""
    copy = tmp_path / "csae-asan"
    shutil.copytree(ROOT / "src_c", copy / "src_c")
    shutil.copytree(ROOT / "csae", copy / "csae",
                    ignore=shutil.ignore_patterns("*.so", "_engine.c", "__pycache__"))
    shutil.copytree(ROOT / "tests", copy / "tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml"):
        shutil.copy(ROOT / name, copy / name)
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                           cwd=copy, capture_output=True, text=True,
                           env=dict(os.environ, CSAE_SANITIZE="1"))
    assert build.returncode == 0, build.stderr[-5000:]

    preload = ":".join(runtime_library(n) for n in ("libasan.so", "libubsan.so"))
    env = dict(os.environ, LD_PRELOAD=preload, PYTHONPATH=str(copy),
               # CPython itself keeps memory alive until exit: leaks are
               # checked on the C program above, not here.
               ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")
    # ... and the model-file reader, through csae.load (the binding) and the
    # public C API (ctypes on the instrumented libcsae).
    tests = ["tests/test_engine.py", "tests/test_fast_path.py", "tests/test_properties.py",
             "tests/test_adam.py", "tests/test_running_sparsity.py",
             "tests/test_objective_parts.py", "tests/test_objective_evaluator.py",
             "tests/test_persist.py", "tests/test_model_file_rules.py",
             "tests/test_model_file_zip.py", "tests/test_model_file_differential.py",
             "tests/test_deep.py", "tests/test_deep_persist.py"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          *tests], cwd=copy, capture_output=True, text=True, env=env,
                         timeout=1200)
    report = run.stdout[-5000:] + run.stderr[-5000:]
    assert run.returncode == 0, report
    assert "runtime error" not in report and "AddressSanitizer" not in report, report
    check = subprocess.run([sys.executable, "-c", "import csae._engine as e; print(e.__file__)"],
                           cwd=copy, capture_output=True, text=True, env=env)
    assert str(copy) in check.stdout, "the instrumented build was not the one tested"


def test_model_file_reader_under_a_changing_file_is_clean_under_asan_and_ubsan(tmp_path):
    """The reader while the file is replaced between its reads
    (tests/model_file_race_test.c, pread interposed), instrumented."""
    from test_model_file_race import SANITIZE as RACE_FLAGS
    from test_model_file_race import test_a_file_replaced_between_reads_never_overflows
    test_a_file_replaced_between_reads_never_overflows(tmp_path, RACE_FLAGS)
