"""The engine as an installed C library: libcsae
exports only the csae_* API; csae.get_include/get_library, csae-config and
the pkg-config file give working flags; a C program (examples/c/
encode_model.c), a C++ program and a Cython extension (examples/cython)
built with them reproduce model.transform.

Most tests use the in-place build (python setup.py build_ext --inplace);
the last one builds the sdist and, from it, the wheel, unpacks the wheel
into a folder of its own and builds the three programs against that alone.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

import csae
from test_c_api import ROOT

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}
# The folder holding the csae under test: the checkout for an in-place
# build, site-packages for an installed wheel (tests/run_installed.py).
# Subprocesses import csae from here, never from the checkout by accident.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(csae.__file__)))


def compiler(name="cc", fallback="gcc"):
    found = shutil.which(name) or shutil.which(fallback)
    if found is None:
        pytest.fail(f"no {name} compiler found ({name} or {fallback})")
    return found


def csae_config(*args, pythonpath=None):
    """Run csae-config's entry point (the console script itself exists only
    once csae is pip-installed) and return its output."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from csae._config import main; sys.exit(main())",
         *args], capture_output=True, text=True, env=env, cwd=pythonpath or PACKAGE_PARENT)
    return done


def flags(pythonpath=None):
    done = csae_config("--cflags", "--libs", pythonpath=pythonpath)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def fitted(dtype=np.float64, **kwargs):
    kwargs = {"n_hidden": 6, "max_epochs": 3, "batch_size": 16, "random_state": 2,
              "dtype": dtype, **kwargs}
    X = np.random.default_rng(0).random((60, 9))
    if kwargs.get("scale_inputs"):
        X = X * 40 - 7
    return csae.SparseAutoencoder(**kwargs).fit(X)


def rows(n_rows, scale=1.0):
    return np.random.default_rng(11).random((n_rows, 9)) * scale


# --------------------------------------------------------------------------
# What the build puts in the package
# --------------------------------------------------------------------------

def declared_functions(header_text):
    return set(re.findall(r"\b(csae_\w+)\s*\(", header_text))


def test_header_in_the_package_is_the_source_header():
    with open(os.path.join(csae.get_include(), "csae.h"), "rb") as f:
        installed = f.read()
    assert installed == (ROOT / "src_c" / "csae.h").read_bytes(), \
        "csae/include/csae.h is stale: rebuild with python setup.py build_ext --inplace"


def test_library_exports_only_the_api():
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run([nm, "-D", "--defined-only", csae.get_library()],
                         capture_output=True, text=True, check=True).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.strip()}
    declared = declared_functions((ROOT / "src_c" / "csae.h").read_text())
    # typedefs of function pointers are not functions
    declared.discard("csae_stop_fn")
    assert exported == declared, (sorted(exported - declared), sorted(declared - exported))


def test_csae_config_prints_flags_with_an_rpath():
    out = flags()
    libdir = os.path.dirname(csae.get_library())
    assert f"-I{csae.get_include()}" in out
    assert f"-L{libdir}" in out and f"-Wl,-rpath,{libdir}" in out and "-lcsae" in out
    done = csae_config("--version", "--pkgconfigdir")
    assert done.stdout.split() == [csae.__version__,
                                   os.path.join(libdir, "pkgconfig")]
    assert csae_config().returncode == 2  # nothing asked: usage
    assert csae_config("--bogus").returncode == 2


def test_get_library_says_what_is_missing(monkeypatch, tmp_path):
    from csae import _config
    monkeypatch.setattr(_config, "_HERE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="build_ext --inplace"):
        csae.get_library()
    with pytest.raises(FileNotFoundError, match="csae.h"):
        csae.get_include()


TINY_C = r"""
#include <stdio.h>
#include <string.h>
#include <csae.h>
int main(void)
{
    /* the header the program was built with and the library it runs with */
    if (strcmp(csae_version(), CSAE_VERSION_STRING) != 0)
        return 1;
    printf("%s %s\n", csae_version(), csae_status_message(CSAE_ERR_FORMAT));
    return 0;
}
"""


def test_pkg_config_file_gives_working_flags(tmp_path):
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    if pkg_config is None:
        pytest.skip("pkg-config is not installed")
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(
        os.path.join(os.path.dirname(csae.get_library()), "pkgconfig", "csae.pc")))
    version = subprocess.run([pkg_config, "--modversion", "csae"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == csae.__version__
    pc_flags = subprocess.run([pkg_config, "--cflags", "--libs", "csae"], env=env,
                              capture_output=True, text=True, check=True).stdout.split()
    src = tmp_path / "tiny.c"
    src.write_text(TINY_C)
    exe = tmp_path / "tiny"
    built = subprocess.run([compiler(), "-std=c11", "-Wall", "-Wextra", "-Werror", str(src),
                            *pc_flags, "-o", str(exe)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith(csae.__version__ + " not a valid")


# --------------------------------------------------------------------------
# examples/c/encode_model.c against transform
# --------------------------------------------------------------------------

def build_encode_model(tmp_path, cflags):
    exe = tmp_path / "encode_model"
    cmd = [compiler(), "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
           str(ROOT / "examples" / "c" / "encode_model.c"), *cflags, "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return exe


def check_encode_model(exe, tmp_path, model, X, stdin=False):
    path = tmp_path / "model.npz"
    model.save(path)
    data = tmp_path / "rows.txt"
    np.savetxt(data, X, fmt="%.17g")
    if stdin:
        with open(data) as f:
            run = subprocess.run([str(exe), str(path)], stdin=f, capture_output=True,
                                 text=True)
    else:
        run = subprocess.run([str(exe), str(path), str(data)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    got = np.loadtxt(run.stdout.splitlines(), ndmin=2)
    expected = model.transform(X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL[expected.dtype], atol=0)


@pytest.fixture(scope="module")
def encode_model(tmp_path_factory):
    return build_encode_model(tmp_path_factory.mktemp("encode"), flags())


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kwargs", [{}, {"scale_inputs": True, "decoder": "linear"}],
                         ids=["plain", "scaled"])
def test_encode_model_reproduces_transform(encode_model, tmp_path, dtype, kwargs):
    model = fitted(dtype, **kwargs)
    X = rows(13, 40 if kwargs else 1) - (7 if kwargs else 0)
    check_encode_model(encode_model, tmp_path, model, X)
    check_encode_model(encode_model, tmp_path, model, X[:2], stdin=True)


def test_encode_model_reports_errors(encode_model, tmp_path):
    run = subprocess.run([str(encode_model), str(tmp_path / "missing.npz")],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run.returncode == 1 and "model file not found" in run.stderr
    path = tmp_path / "model.npz"
    fitted().save(path)
    run = subprocess.run([str(encode_model), str(path)], input="0.5 0.5\n",
                         capture_output=True, text=True)
    assert run.returncode == 1 and "expected 9 numbers, read 2" in run.stderr


# --------------------------------------------------------------------------
# C++
# --------------------------------------------------------------------------

TINY_CPP = r"""
#include <csae.h>
#include <cstdio>
#include <vector>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    csae_model model;
    size_t elem = 0;
    csae_status st = csae_model_file_info(argv[1], &model, &elem);
    if (st != CSAE_OK || elem != sizeof(double)) {
        std::fprintf(stderr, "%s\n", csae_status_message(st));
        return 1;
    }
    const size_t n = model.n_features, h = model.n_hidden;
    std::vector<double> W(h * n), b(h), Wd(n * h), bd(n), x(n), a(h);
    csae_params_f64 p = {W.data(), b.data(), Wd.data(), bd.data()};
    st = csae_model_file_read_f64(argv[1], &model, p);
    for (size_t j = 0; j < n; j++)
        x[j] = (j + 1.0) / (n + 1.0);
    std::vector<unsigned char> scratch(csae_forward_workspace_size(&model, 1, 8, 1));
    csae_workspace ws = {scratch.data(), scratch.size(), 1};
    if (st == CSAE_OK)
        st = csae_encode_f64(&model, W.data(), b.data(), x.data(), 1, a.data(), &ws);
    if (st != CSAE_OK) {
        std::fprintf(stderr, "%s\n", csae_status_message(st));
        return 1;
    }
    for (size_t k = 0; k < h; k++)
        std::printf("%.17g\n", a[k]);
    return 0;
}
"""


def check_cpp(tmp_path, cflags):
    cxx = compiler("c++", "g++")
    src = tmp_path / "smoke.cpp"
    src.write_text(TINY_CPP)
    exe = tmp_path / "smoke_cpp"
    built = subprocess.run([cxx, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic",
                            str(src), *cflags, "-o", str(exe)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    model = fitted()
    path = tmp_path / "model.npz"
    model.save(path)
    run = subprocess.run([str(exe), str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    x = (np.arange(9) + 1.0) / 10.0
    np.testing.assert_allclose(np.array(run.stdout.split(), dtype=float),
                               model.transform(x[None])[0], rtol=1e-12, atol=0)


def test_cpp_program_builds_and_links(tmp_path):
    check_cpp(tmp_path, flags())


# --------------------------------------------------------------------------
# Cython: examples/cython cimports csae.engine
# --------------------------------------------------------------------------

CYTHON_CHECK = r"""
import numpy as np, csae, serve
X = np.random.default_rng(0).random((50, 9))
model = csae.SparseAutoencoder(n_hidden=5, max_epochs=3, random_state=1).fit(X)
H = serve.encode(model.encoder_weights_, model.encoder_bias_, X)
np.testing.assert_allclose(H, model.transform(X), rtol=1e-12, atol=0)
assert serve.encode(model.encoder_weights_, model.encoder_bias_, X[:0]).shape == (0, 5)
model.save("model.npz")
arrays = serve.load("model.npz")
assert sorted(arrays) == ["W", "Wd", "b", "bd"]
for key, name in zip(["W", "b", "Wd", "bd"], ["encoder_weights_", "encoder_bias_",
                                              "decoder_weights_", "decoder_bias_"]):
    np.testing.assert_array_equal(arrays[key], getattr(model, name))
scaled = csae.SparseAutoencoder(n_hidden=5, max_epochs=3, scale_inputs=True,
                                decoder="linear").fit(X * 9 - 3)
scaled.save("scaled.npz")
a = serve.load("scaled.npz")
Z = (X * 9 - 3 - a["data_min"]) / a["data_scale"]
np.testing.assert_allclose(serve.encode(a["W"], a["b"], Z), scaled.transform(X * 9 - 3),
                           rtol=1e-12, atol=0)
try:
    serve.load("missing.npz")
except ValueError as err:
    assert "not found" in str(err)
else:
    raise AssertionError("no error")
print("cython example ok")
"""


def check_cython_example(tmp_path, pythonpath):
    work = tmp_path / "cython"
    shutil.copytree(ROOT / "examples" / "cython", work)
    env = dict(os.environ, PYTHONPATH=pythonpath)
    built = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    env["PYTHONPATH"] = os.pathsep.join([str(work), pythonpath])
    run = subprocess.run([sys.executable, "-c", CYTHON_CHECK], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cython example ok" in run.stdout


def test_cython_extension_cimports_the_engine(tmp_path):
    check_cython_example(tmp_path, PACKAGE_PARENT)


# --------------------------------------------------------------------------
# From the sdist to the wheel to programs built against the wheel alone
# --------------------------------------------------------------------------

_IGNORE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache",
    "*.so", "*.o", "_engine.c", "c_api_test", "*.npz", "*.json", "include", "lib")


def test_wheel_built_from_the_sdist_serves_c_cpp_and_cython(tmp_path):
    """python -m build (sdist, then the wheel from the sdist); the wheel
    unpacked is all that the C, C++ and Cython builds see."""
    pytest.importorskip("build", reason="needs the 'build' package (pip install build)")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(tmp_path / "dist"), str(src)],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = glob.glob(str(tmp_path / "dist" / "*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in ("examples/c/encode_model.c", "examples/cython/serve.pyx",
                 "examples/cython/setup.py", "examples/cython/README.md", "csae/engine.pxd",
                 "src_c/model_file.c", "src_c/npz.c", "src_c/library.c",
                 "tests/model_file_fuzz.c"):
        assert name in members, f"{name} missing from the sdist"
    assert not any(m.startswith(("csae/lib/", "csae/include/")) for m in members)

    (wheel,) = glob.glob(str(tmp_path / "dist" / "*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in ("csae/include/csae.h", "csae/lib/libcsae.so", "csae/lib/pkgconfig/csae.pc",
                     "csae/engine.pxd"):
            assert name in names, f"{name} missing from the wheel"
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "csae-config = csae._config:main" in z.read(entry_points).decode()
        z.extractall(site)
    os.chmod(site / "csae" / "lib" / "libcsae.so", 0o755)

    site_flags = flags(pythonpath=str(site))
    assert all(str(site) in f for f in site_flags if f.startswith(("-I", "-L", "-Wl")))
    exe = build_encode_model(tmp_path, site_flags)
    check_encode_model(exe, tmp_path, fitted(), rows(5))
    check_cpp(tmp_path, site_flags)
    check_cython_example(tmp_path, str(site))


# --------------------------------------------------------------------------
# The serving benchmark runs (no timing judged here: see BENCHMARKS.md)
# --------------------------------------------------------------------------

def test_serving_benchmark_runs(tmp_path):
    out = tmp_path / "serving.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serving.py"), "--quick",
                          "--configs", "S", "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Python transform" in run.stdout and "CPU:" in run.stdout
    rows = json.loads(out.read_text())["rows"]
    assert {(r["config"], r["dtype"]) for r in rows} == {("S", "float64"), ("S", "float32")}
    assert all(r["c_median_us"] > 0 and r["python_median_us"] > 0 for r in rows)
