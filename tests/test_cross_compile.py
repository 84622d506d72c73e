"""The engine compiled for macOS, where the compiler is clang and the
library a Mach-O .dylib: zig's clang cross-compiles src_c/*.c for Intel and
Apple-silicon Macs with the macOS headers it ships, warnings as errors.
(The Linux targets are what tools/build_wheels.py builds; Windows is
tests/test_windows_build.py.)

zig comes from PyPI's `ziglang` (about 100 MB, so not a test extra): the
test uses `python -m ziglang` when that imports, a `zig` on PATH, or the
command in CSAE_ZIG (.ci/run points it at the wheel-building environment's),
and skips without any of them.
"""

import importlib.util
import os
import pathlib
import shlex
import shutil
import struct
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Mach-O 64-bit: magic 0xfeedfacf, then the CPU type (mach/machine.h).
MACHO_MAGIC = 0xFEEDFACF
CPU_TYPE = {"x86_64-macos": 0x01000007, "aarch64-macos": 0x0100000C}
MH_DYLIB = 6


def zig_cc():
    if os.environ.get("CSAE_ZIG"):
        return shlex.split(os.environ["CSAE_ZIG"]) + ["cc"]
    if importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang", "cc"]
    if shutil.which("zig"):
        return [shutil.which("zig"), "cc"]
    return None


@pytest.mark.parametrize("target", sorted(CPU_TYPE))
def test_engine_builds_as_a_macos_library(tmp_path, target):
    cc = zig_cc()
    if cc is None:
        pytest.skip("no zig (pip install ziglang, or set CSAE_ZIG)")
    out = tmp_path / "libcsae.dylib"
    sources = sorted(str(p) for p in (ROOT / "src_c").glob("*.c"))
    # The flags setup.py builds libcsae with, and the install name a macOS
    # library carries.
    cmd = [*cc, "-target", target, "-std=c11", "-O2", "-fopenmp-simd", "-fno-strict-aliasing",
           "-Wall", "-Wextra", "-Werror", "-fPIC", "-fvisibility=hidden", "-shared",
           "-Wl,-install_name,@rpath/libcsae.dylib", f"-I{ROOT / 'src_c'}", *sources,
           "-o", str(out)]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-4000:]
    magic, cputype, _subtype, filetype = struct.unpack("<IiiI", out.read_bytes()[:16])
    assert magic == MACHO_MAGIC
    assert cputype == CPU_TYPE[target]
    assert filetype == MH_DYLIB
