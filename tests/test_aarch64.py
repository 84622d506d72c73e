"""The engine on aarch64, emulated: cross-compile src_c and the C test
programs with Debian's aarch64-linux-gnu-gcc (and Clang) and run them under
qemu-aarch64.  The wheels promise aarch64; this proves that both of its
paths, portable and neon, build warning-free and compute what the C test
checks (gradients against finite differences, training, thread-count
identity, the fused batch-1 step, the divergence contract), and that the
neon path gives the x86 AVX2 path's bits, the bit-identity rules at the top
of src_c/gemm_template.h: tests/path_bits_test.c prints a fingerprint of
every engine output (forward, objective and gradients, SGD and Adam epochs,
an L-BFGS run, float32 and float64, 1 and 3 threads), built once for this
machine and once for aarch64.

QEMU runs the code, it does not time it: nothing here measures speed.

Needs the Debian packages gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and
qemu-user; skips when they are missing.
"""

import os
import pathlib
import platform
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
    # The aarch64 build registers no x86 path; portable and neon both ran.
    assert "avx2" not in result.stdout and "avx512" not in result.stdout
    assert "skip" not in result.stdout
    assert int(lines[-1].split()[0]) >= 40, result.stdout
    for path in ("portable", "neon"):
        assert any("batch-1 steps match" in line and f"[{path}, double]" in line
                   for line in lines), result.stdout


# ---- The same bits as x86 --------------------------------------------------

BITS = ROOT / "tests" / "path_bits_test.c"


def _build_bits(tmp_path, name, cc):
    exe = tmp_path / name
    built = subprocess.run([*cc, *FLAGS, f"-I{ROOT / 'src_c'}", str(BITS), *_sources(),
                            "-lm", "-lpthread", "-o", str(exe)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return exe


def _start(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fingerprint(process, timeout=1200):
    """{label: hash} from a running path_bits_test, and the path it ran."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, out + err
    lines = out.strip().splitlines()
    assert lines[0].startswith("path "), out
    pairs = dict(line.rsplit(": ", 1) for line in lines[1:])
    assert len(pairs) == len(lines) - 1 > 300, out  # every label is distinct
    return lines[0].split()[1], pairs


def _differing(first, second):
    assert first.keys() == second.keys()
    return [label for label in first if first[label] != second[label]]


@pytest.fixture(scope="module")
def fingerprints(tmp_path_factory):
    """x86 AVX2 natively, aarch64 neon and portable under QEMU (GCC), run
    side by side."""
    if platform.machine() != "x86_64":
        pytest.skip("compares against the x86-64 AVX2 path")
    tmp = tmp_path_factory.mktemp("bits")
    native = _build_bits(tmp, "bits_x86", ["cc"])
    arm = _build_bits(tmp, "bits_aarch64", [CROSS_CC])
    runs = {"avx2": _start([str(native), "avx2"]),
            "neon": _start([QEMU, "-L", str(SYSROOT), str(arm), "neon"]),
            "portable": _start([QEMU, "-L", str(SYSROOT), str(arm), "portable"])}
    out = {}
    for name, process in runs.items():
        if name == "avx2":
            process.wait(timeout=1200)
            if process.returncode == 3:
                for other in runs.values():
                    other.kill()
                pytest.skip("this CPU has no AVX2 path")
        ran, out[name] = _fingerprint(process)
        assert ran == name
    return out


def test_neon_under_qemu_gives_the_avx2_bits(fingerprints):
    """Every output, both dtypes, both decoders, 1 and 3 threads, the
    sigmoid over its whole range: aarch64's neon path and x86's AVX2 path
    differ in vector width (2 doubles against 4), instruction set and C
    library build, and agree bit for bit."""
    assert _differing(fingerprints["avx2"], fingerprints["neon"]) == []


def test_portable_on_aarch64_agrees_with_neon_where_the_rules_say(fingerprints):
    """The fused one-row SGD step (sample_template.h) is plain C with
    exp_lane.h's exp and explicit FMA wherever the ISA has it, which on
    aarch64 is every path: so portable and neon agree there bit for bit.
    Elsewhere portable rounds a * b + c twice and calls the C library's
    exp, and must differ somewhere (else this test compares nothing)."""
    neon, portable = fingerprints["neon"], fingerprints["portable"]
    batch_1 = [label for label in neon if " sgd batch 1 " in label]
    assert len(batch_1) == 48
    assert [label for label in batch_1 if neon[label] != portable[label]] == []
    assert any(neon[label] != portable[label] for label in neon if "encode" in label)


def test_clang_builds_the_neon_path_with_the_same_bits(tmp_path, fingerprints):
    """Clang (macOS's compiler, and Apple silicon's) cross-compiles the
    engine for aarch64 with the sysroot's headers, warning-free, and its
    neon path gives the same bits: its FP contraction is off (kernels.h)."""
    compiler = shutil.which("clang")
    if compiler is None:
        pytest.skip("no clang on this machine (Debian: apt install clang)")
    probe = subprocess.run([compiler, "--target=aarch64-linux-gnu", "-x", "c", "-c", "-o",
                            os.devnull, "-"], input="#include <stdio.h>\n",
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"clang finds no aarch64 sysroot here: {probe.stderr.strip()}")
    exe = _build_bits(tmp_path, "bits_clang", [compiler, "--target=aarch64-linux-gnu"])
    ran, neon = _fingerprint(_start([QEMU, "-L", str(SYSROOT), str(exe), "neon"]))
    assert ran == "neon"
    assert _differing(fingerprints["avx2"], neon) == []
