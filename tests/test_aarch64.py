"""The engine on aarch64, emulated: cross-compile src_c and the C test
program (tests/c_api_test.c) with Debian's aarch64-linux-gnu-gcc and run it
under qemu-aarch64.  The wheels promise aarch64; this proves that the
portable path (the only one there) builds warning-free and computes what the
C test checks: gradients against finite differences, training, thread-count
identity, the fused batch-1 step against the objective's gradients, and the
divergence contract.

Needs the Debian packages gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and
qemu-user; skips when they are missing.
"""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CROSS_CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"
SYSROOT = pathlib.Path("/usr/aarch64-linux-gnu")  # libc6-arm64-cross: the loader and libc

pytestmark = pytest.mark.skipif(
    shutil.which(CROSS_CC) is None or shutil.which(QEMU) is None
    or not (SYSROOT / "lib" / "ld-linux-aarch64.so.1").exists(),
    reason=f"needs {CROSS_CC} and {QEMU} (apt-get install gcc-aarch64-linux-gnu "
           "libc6-dev-arm64-cross qemu-user)")

FLAGS = ["-std=c11", "-O2", "-fopenmp-simd", "-Wall", "-Wextra", "-Werror"]


def _sources():
    return sorted(str(p) for p in (ROOT / "src_c").glob("*.c"))


def test_every_engine_source_compiles_for_aarch64(tmp_path):
    """One object per file, so a failure names the file (an x86-only
    builtin or intrinsic left unguarded, say)."""
    for src in _sources():
        obj = tmp_path / (pathlib.Path(src).stem + ".o")
        built = subprocess.run([CROSS_CC, *FLAGS, f"-I{ROOT / 'src_c'}", "-c", src,
                                "-o", str(obj)], capture_output=True, text=True)
        assert built.returncode == 0, f"{src}:\n{built.stderr}"


def test_c_program_passes_under_qemu(tmp_path):
    exe = tmp_path / "c_api_test_aarch64"
    built = subprocess.run([CROSS_CC, *FLAGS, f"-I{ROOT / 'src_c'}",
                            str(ROOT / "tests" / "c_api_test.c"), *_sources(),
                            "-lm", "-lpthread", "-o", str(exe)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    result = subprocess.run([QEMU, "-L", str(SYSROOT), str(exe)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].endswith(" 0 failed"), result.stdout
    # The aarch64 build registers no x86 path, and the portable one ran.
    assert "avx2" not in result.stdout and "avx512" not in result.stdout
    assert int(lines[-1].split()[0]) >= 20, result.stdout
    assert any("batch-1 steps match" in line and "[portable, double]" in line
               for line in lines), result.stdout
