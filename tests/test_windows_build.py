"""The engine built for Windows: cross-compiled with MinGW-w64 and run
under Wine.  The file reader is the one part with a platform layer (npz.c:
ReadFile at an explicit offset instead of pread, binary-mode descriptors,
64-bit sizes); threads come from MinGW's winpthreads.  Skips where the
cross compiler or Wine is missing (Debian: gcc-mingw-w64-x86-64, wine64;
.ci/run installs them)."""

import glob
import os
import pathlib
import shutil
import subprocess
import warnings

import numpy as np
import pytest

import csae

ROOT = pathlib.Path(__file__).resolve().parent.parent
CC = shutil.which("x86_64-w64-mingw32-gcc")
WINE = shutil.which("wine") or shutil.which("wine64")
pytestmark = pytest.mark.skipif(CC is None or WINE is None,
                                reason="needs x86_64-w64-mingw32-gcc and wine")


@pytest.fixture(scope="module")
def wine_env(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("wineprefix")
    return dict(os.environ, WINEPREFIX=str(prefix), WINEDEBUG="-all")


def build(tmp_path, program):
    exe = tmp_path / (pathlib.Path(program).stem + ".exe")
    sources = sorted(str(p) for p in (ROOT / "src_c").glob("*.c"))
    cmd = [CC, "-std=c11", "-O2", "-fopenmp-simd", "-Wall", "-Wextra", "-Werror",
           f"-I{ROOT / 'src_c'}", str(ROOT / "tests" / program), *sources,
           "-lm", "-lpthread", "-static", "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return exe


def test_c_api_test_passes_on_windows(tmp_path, wine_env):
    exe = build(tmp_path, "c_api_test.c")
    run = subprocess.run([WINE, str(exe)], capture_output=True, text=True, timeout=600,
                         env=wine_env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1].endswith(" 0 failed"), run.stdout[-3000:]


def test_model_files_read_on_windows_as_on_linux(tmp_path, wine_env):
    """The model-file fuzz harness on Windows: valid files read, damaged
    ones refused without a crash, and what it accepted loads in Python."""
    exe = build(tmp_path, "model_file_fuzz.c")
    X = np.random.default_rng(0).random((50, 6))
    seeds = []
    for dtype in ("float64", "float32"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = csae.SparseAutoencoder(n_hidden=3, max_epochs=3, solver="sgd",
                                           dtype=dtype, random_state=0).fit(X)
        seeds.append(tmp_path / f"{dtype}.npz")
        model.save(seeds[-1])
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run([WINE, str(exe), str(work), "300", "7", *map(str, seeds)],
                         capture_output=True, text=True, timeout=600, env=wine_env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed") and int(last.split()[0]) >= 600, run.stdout[-3000:]
    kept = sorted(glob.glob(str(work / "accepted_*.npz")))
    assert kept
    for path in kept:
        csae.load(path)
