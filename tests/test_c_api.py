"""The engine used from C alone: compile tests/c_api_test.c against
src_c/csae.h with the system C compiler and run it."""

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def build_c_test(tmp_path, extra_flags=(), cc=None):
    cc = cc or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler found (cc or gcc): the C API test needs one")
    exe = tmp_path / "c_api_test"
    sources = sorted(str(p) for p in (ROOT / "src_c").glob("*.c"))
    cmd = [cc, "-std=c11", "-O2", "-fopenmp-simd", "-Wall", "-Wextra", "-Werror", *extra_flags,
           f"-I{ROOT / 'src_c'}", str(ROOT / "tests" / "c_api_test.c"), *sources,
           "-lm", "-lpthread", "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, f"compiling the C API test failed:\n{built.stderr}"
    return exe


def clang():
    return next((c for c in ("clang", "clang-19", "clang-18", "clang-17", "clang-16",
                             "clang-15", "clang-14") if shutil.which(c)), None)


@pytest.mark.parametrize("path", ["portable", "avx2", "avx512"])
def test_c_program_built_by_clang_prints_what_gccs_prints(tmp_path, path):
    """The engine is one source for GCC and Clang, with the same bits: the
    vector paths are compiled for their instruction set by GCC's target
    pragma or by Clang's pushed target attribute (Clang ignores the pragma),
    Clang's default FMA contraction is off, and the scalar lanes fuse as the
    vectors do under both.  The C API test, built by each (its own checking
    arithmetic unfused too), prints the same lines, values included, on
    every kernel path the CPU has."""
    from conftest import kernel_paths
    if path not in kernel_paths():
        pytest.skip(f"this CPU has no {path} path")
    compiler = clang()
    if compiler is None:
        pytest.skip("no clang on this machine (Debian: apt install clang)")
    outputs = []
    for name, cc in (("gcc", None), ("clang", compiler)):
        (tmp_path / name).mkdir()
        exe = build_c_test(tmp_path / name, extra_flags=("-ffp-contract=off",), cc=cc)
        run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, CSAE_KERNEL_PATH=path))
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.strip().splitlines()[-1].endswith(" 0 failed"), run.stdout
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1]


def test_c_program_trains_and_checks_gradients(tmp_path):
    exe = build_c_test(tmp_path)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), result.stdout
    assert int(last.split()[0]) >= 10, result.stdout
