"""The engine used from C alone: compile tests/c_api_test.c against
src_c/csae.h with the system C compiler and run it."""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def build_c_test(tmp_path, extra_flags=()):
    cc = shutil.which("cc") or shutil.which("gcc")
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


def test_c_program_trains_and_checks_gradients(tmp_path):
    exe = build_c_test(tmp_path)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), result.stdout
    assert int(last.split()[0]) >= 10, result.stdout
