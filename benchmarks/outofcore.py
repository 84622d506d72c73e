"""Peak memory of training on a memory-mapped file, for files of several sizes.

Each run writes a float64 .npy file of ROWS x 512 values in [0, 1], then, in
a fresh process, memory-maps it (``np.load(mmap_mode="r")``) and fits
SparseAutoencoder(n_hidden=4) on it three times (SGD one epoch shuffled;
SGD with scale_inputs=True into a float32 model; L-BFGS two iterations),
then transforms it.  Reported: the growth of the process's peak resident set
(VmHWM, which starts afresh at exec; ru_maxrss would carry the parent's peak
over) above what it held before the first fit, cumulative over the steps, and
the seconds of each fit.  Flat memory means the growth does not follow the
file size.

Usage: python benchmarks/outofcore.py [--rows 78125,312500] [--dir /tmp]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import json, sys, time
import numpy as np
import csae._engine
from csae import SparseAutoencoder
# What fit imports on its way (SciPy for L-BFGS, scikit-learn for the
# ConvergenceWarning class) is loaded before the baseline: modules are
# not data.
for name in ("scipy.optimize", "sklearn.exceptions"):
    try:
        __import__(name)
    except ImportError:
        pass

def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

X = np.load(sys.argv[1], mmap_mode="r")
base = hwm()
out = {"file": X.nbytes, "baseline": base}
for name, kw in [("sgd", dict(solver="sgd", max_epochs=1)),
                 ("sgd_scaled_f32", dict(solver="sgd", max_epochs=1, scale_inputs=True,
                                         dtype="float32")),
                 ("lbfgs", dict(solver="lbfgs", max_epochs=2))]:
    model = SparseAutoencoder(n_hidden=4, batch_size=256, random_state=0, n_threads=1, **kw)
    start = time.perf_counter()
    model.fit(X)
    out[name + "_s"] = time.perf_counter() - start
    out[name] = hwm() - base
start = time.perf_counter()
model.transform(X)
out["transform_s"] = time.perf_counter() - start
out["transform"] = hwm() - base
print(json.dumps(out))
"""


def peak_memory(path, env=None, timeout=None):
    """Run CHILD on the .npy file ``path`` in a fresh interpreter; returns
    its figures (bytes and seconds, see the module docstring)."""
    result = subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{result.stderr}")
    return json.loads(result.stdout)


def write(path, rows, n=512):
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(rows, n))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 10_000):
        X[start:start + 10_000] = rng.random((min(10_000, rows - start), n))
    X.flush()
    del X


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="78125,312500")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    mib = 2 ** 20
    print(f"{'file MiB':>9} {'sgd':>7} {'sgd+scale f32':>14} {'lbfgs':>7} {'transform':>10}"
          "   (peak RSS growth, MiB, cumulative)   fit seconds sgd / scaled / lbfgs")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for rows in (int(r) for r in args.rows.split(",")):
            path = os.path.join(folder, f"x{rows}.npy")
            write(path, rows)
            r = peak_memory(path, env=env)
            print(f"{r['file'] / mib:9.0f} {r['sgd'] / mib:7.1f} {r['sgd_scaled_f32'] / mib:14.1f} "
                  f"{r['lbfgs'] / mib:7.1f} {r['transform'] / mib:10.1f}   "
                  f"{r['sgd_s']:.1f} / {r['sgd_scaled_f32_s']:.1f} / {r['lbfgs_s']:.1f}",
                  flush=True)
            os.remove(path)


if __name__ == "__main__":
    main()
