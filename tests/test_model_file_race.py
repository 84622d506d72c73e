"""The C model-file reader while the file is replaced in place between its
reads (tests/model_file_race_test.c interposes pread with --wrap): it never
writes outside the caller's buffers, whatever the file holds by then, and
either fails or returns the values of the model the caller asked for.  Run
plain and under AddressSanitizer + UBSan."""

import os
import shutil
import subprocess

import numpy as np
import pytest

from test_c_api import ROOT
from test_model_file import arrays_of, saved, write

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g", "-O1"]


def same_size_pair(tmp_path):
    """Two float64 models of different shapes whose files have the same size
    (the smaller one's loss curve is lengthened until they match)."""
    small = arrays_of(saved(tmp_path, "small0.npz", n=3, n_hidden=2, scale_inputs=True))
    large = arrays_of(saved(tmp_path, "large.npz", n=12, n_hidden=9, scale_inputs=True))
    large_path = tmp_path / "large.npz"
    target = os.path.getsize(large_path)
    small_path = tmp_path / "small.npz"
    curve = small["loss_curve"]
    for extra in range(0, 4000):
        small["loss_curve"] = np.concatenate([curve, np.full(extra, curve[-1])])
        small["n_iter"] = np.array(len(small["loss_curve"]), dtype=np.int64)
        write(small_path, small)
        size = os.path.getsize(small_path)
        if size >= target:
            break
    assert size == target, "could not make the two files the same size"
    return small_path, large_path


def build(tmp_path, flags):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler found (cc or gcc)")
    exe = tmp_path / "model_file_race_test"
    sources = [ROOT / "src_c" / name for name in ("model_file.c", "npz.c", "library.c", "rng.c", "spans.c")]
    cmd = [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", *flags, f"-I{ROOT / 'src_c'}",
           str(ROOT / "tests" / "model_file_race_test.c"), *map(str, sources), "-lm",
           "-Wl,--wrap=pread", "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return exe


@pytest.mark.parametrize("flags", [["-O2"], SANITIZE], ids=["plain", "asan+ubsan"])
def test_a_file_replaced_between_reads_never_overflows(tmp_path, flags):
    small, large = same_size_pair(tmp_path)
    exe = build(tmp_path, flags)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe), str(small), str(large)], capture_output=True, text=True,
                         env=env, timeout=600)
    report = run.stdout[-5000:] + run.stderr[-5000:]
    # A write past the caller's buffers hits a PROT_NONE page: SIGSEGV.
    assert run.returncode == 0, f"exit {run.returncode}: {report}"
    assert "runtime error" not in report and "Sanitizer" not in report, report
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), report
    assert int(last.split()[2]) > 50, report  # the switch points covered every read
