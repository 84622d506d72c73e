"""One-row encode latency: the C library from C, next to Python's transform.

    python benchmarks/serving.py            # S (64-25) and M (784-196), float64 and float32
    python benchmarks/serving.py --quick    # fewer trials (what the test suite runs)
    python benchmarks/serving.py --json serving.json

The targets for the C column, one thread: S <= 0.3 us, M <= 5 us per
call.  The C side is benchmarks/serving_latency.c, built with the flags that
`csae-config --cflags --libs` prints (so it links the libcsae that csae
ships: in-place build or installed package) and run in a subprocess: a
serving loop with its workspace allocated once, median over trials of the
time per call.  The Python side is SparseAutoencoder.transform on a (1, n)
array of the model dtype (n_threads=1), median over trials of 1000 calls.
Both use the same shapes and the default initialisation.  Numbers are
medians on a shared machine: compare ratios, and name the CPU (printed).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's csae, if built here

import numpy as np  # noqa: E402

import csae  # noqa: E402
from csae._config import get_include, get_library  # noqa: E402
from _machine import cpu_name  # noqa: E402

CONFIGS = {"S": (64, 25), "M": (784, 196)}
TARGET_US = {"S": 0.3, "M": 5.0}


def build_c(tmp):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("serving.py: no C compiler (cc or gcc)")
    libdir = os.path.dirname(get_library())
    exe = os.path.join(tmp, "serving_latency")
    cmd = [cc, "-std=c11", "-O2", os.path.join(HERE, "serving_latency.c"),
           f"-I{get_include()}", f"-L{libdir}", f"-Wl,-rpath,{libdir}", "-lcsae", "-o", exe]
    subprocess.run(cmd, check=True)
    return exe


def c_latency(exe, n, h, dtype, trials):
    out = subprocess.run([exe, str(n), str(h), str(np.dtype(dtype).itemsize), str(trials)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def python_latency(n, h, dtype, trials, calls=1000):
    model = csae.SparseAutoencoder(solver="sgd", n_hidden=h, max_epochs=1, dtype=dtype,
                                   n_threads=1, random_state=0)
    model.fit(np.random.default_rng(0).random((4, n)))
    x = np.random.default_rng(1).random((1, n)).astype(dtype)
    for _ in range(100):
        model.transform(x)
    per_call = []
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(calls):
            model.transform(x)
        per_call.append((time.perf_counter() - t0) / calls)
    return 1e6 * statistics.median(per_call), 1e6 * min(per_call)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few trials (smoke run)")
    parser.add_argument("--configs", default="S,M", help="S, M or both (default S,M)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    trials = 5 if args.quick else 51
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_c(tmp)
        for name in args.configs.split(","):
            n, h = CONFIGS[name]
            for dtype in ("float64", "float32"):
                c = c_latency(exe, n, h, dtype, trials)
                py_median, py_best = python_latency(n, h, dtype, 3 if args.quick else 21,
                                                    100 if args.quick else 1000)
                rows.append({"config": name, "n": n, "h": h, "dtype": dtype,
                             "c_median_us": c["median_us"], "c_best_us": c["best_us"],
                             "python_median_us": py_median, "python_best_us": py_best,
                             "target_us": TARGET_US[name], "kernel_path": c["kernel_path"]})
    print(f"CPU: {cpu_name()}; csae {csae.__version__}; library {get_library()}")
    print(f"one-row encode, 1 thread, kernel path {rows[0]['kernel_path']}; "
          "median (best) us per call")
    header = f"{'config':<10} {'dtype':<8} {'C library':>18} {'target':>7} " \
             f"{'Python transform':>20} {'Python / C':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        ok = "ok" if r["c_median_us"] <= r["target_us"] else "MISS"
        print(f"{r['config'] + ' ' + str(r['n']) + '-' + str(r['h']):<10} {r['dtype']:<8} "
              f"{r['c_median_us']:>8.3f} ({r['c_best_us']:.3f}) "
              f"{'<=' + format(r['target_us'], 'g'):>7} {ok:<4}"
              f"{r['python_median_us']:>9.2f} ({r['python_best_us']:.2f}) "
              f"{r['python_median_us'] / r['c_median_us']:>10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_name(), "csae": csae.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
