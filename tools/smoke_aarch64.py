"""Install the aarch64 wheel from wheelhouse/ into an aarch64 Python and
run it under QEMU user-mode emulation: import, fit, transform against the
NumPy reference, and the C library's path.

    python tools/smoke_aarch64.py [--wheelhouse wheelhouse]

The aarch64 interpreter is Debian's python3.11 for arm64, unpacked (dpkg -x)
into a private root, not installed: the host's python3 is untouched.  Needs
Debian with qemu-user (qemu-aarch64), and root once for
`dpkg --add-architecture arm64` so that apt can download arm64 packages.
numpy for aarch64 comes from PyPI (pip install --platform ... --target).
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

# python3.11 and what its standard library loads (Debian bookworm).
PACKAGES = ["python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6",
            "libexpat1", "zlib1g", "libffi8", "libssl3", "libbz2-1.0", "liblzma5", "libuuid1",
            "libcrypt1", "libsqlite3-0", "libncursesw6", "libtinfo6", "libreadline8",
            "libnsl2", "libtirpc3", "libdb5.3", "libgdbm6", "libgcc-s1", "libstdc++6"]

SMOKE = r"""
import platform, sys, warnings
import numpy as np
import csae
assert csae.__file__.startswith(sys.argv[1]), csae.__file__  # the wheel, not a checkout
from csae import _engine
print(platform.machine(), csae.__version__, csae.__file__)
assert platform.machine() == "aarch64"
print("kernel paths:", _engine.kernel_paths())
warnings.simplefilter("ignore")
X = np.random.default_rng(0).random((80, 12))
for dtype in ("float64", "float32"):
    m = csae.SparseAutoencoder(n_hidden=5, max_epochs=4, solver="sgd", dtype=dtype,
                               random_state=0).fit(X)
    got = m.transform(X)
    W, b = m.encoder_weights_, m.encoder_bias_
    # The encoder in NumPy, in float64: sigmoid(X W^T + b).
    want = 1.0 / (1.0 + np.exp(-(X @ W.T.astype(np.float64) + b.astype(np.float64))))
    np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == "float32" else 1e-10)
print("library", csae.get_library())
print("aarch64 smoke ok")
"""


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheelhouse", default="wheelhouse")
    args = parser.parse_args(argv)
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        sys.exit("smoke_aarch64: no qemu-aarch64 (Debian: apt install qemu-user)")
    wheels = glob.glob(os.path.join(args.wheelhouse, "csae-*aarch64*.whl"))
    if len(wheels) != 1:
        sys.exit(f"smoke_aarch64: expected one aarch64 wheel in {args.wheelhouse}, found {wheels}")
    arches = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                            text=True, check=True).stdout.split()
    if "arm64" not in arches:
        run(["dpkg", "--add-architecture", "arm64"])
        run(["apt-get", "update", "-qq"])
    with tempfile.TemporaryDirectory(prefix="csae-aarch64-") as tmp:
        debs, root, site = (os.path.join(tmp, d) for d in ("debs", "root", "site"))
        for folder in (debs, root):
            os.makedirs(folder)
        run(["apt-get", "download", "-qq", *(p + ":arm64" for p in PACKAGES)], cwd=debs)
        for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
            run(["dpkg", "-x", deb, root], stdout=subprocess.DEVNULL)
        target = ["--target", site, "--platform", "manylinux_2_17_aarch64", "--python-version",
                  "3.11", "--implementation", "cp", "--abi", "cp311", "--only-binary", ":all:",
                  "--quiet", "--disable-pip-version-check"]
        run([sys.executable, "-m", "pip", "install", *target, "numpy>=2.0"])
        run([sys.executable, "-m", "pip", "install", *target, "--no-deps", wheels[0]])
        run([qemu, "-L", root, "-E", f"PYTHONPATH={site}",
             os.path.join(root, "usr", "bin", "python3.11"), "-c", SMOKE, site], cwd=tmp)


if __name__ == "__main__":
    main()
