"""OpenBLAS GEMM rates by thread CPU time (minimum over repeats), 1 thread, on
the L and M products of the benchmark: the five products of one SGD step and
X (4096 x n) W^T.  The counterpart of engine_cputime.c for a shared machine.
Choose the kernels with OPENBLAS_CORETYPE (Haswell: AVX2, SkylakeX: AVX-512):

    OPENBLAS_CORETYPE=Haswell python benchmarks/blas_cputime.py
"""
import json
import os
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

threadpool_limits(1)
arch = [i.get("architecture") for i in threadpool_info() if i.get("user_api") == "blas"]
out = {"coretype": os.environ.get("OPENBLAS_CORETYPE"), "arch": arch}
for name, (n, h, batch) in {"L": (784, 1024, 256), "M": (784, 196, 128)}.items():
    for dt in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        X = rng.random((4096, n)).astype(dt); W = rng.random((h, n)).astype(dt); Wd = rng.random((n, h)).astype(dt)
        Xb = np.ascontiguousarray(X[:batch]); A = np.empty((batch, h), dt); Y = np.empty((batch, n), dt)
        G = np.empty((batch, h), dt); gWd = np.empty((n, h), dt); gW = np.empty((h, n), dt); Ae = np.empty((4096, h), dt)
        def step():
            np.matmul(Xb, W.T, out=A); np.matmul(A, Wd.T, out=Y); np.matmul(Y, Wd, out=G)
            np.matmul(Y.T, A, out=gWd); np.matmul(G.T, Xb, out=gW)
        def enc():
            np.matmul(X, W.T, out=Ae)
        res = {}
        for label, fn, fl, reps in (("step5", step, 10.0 * batch * n * h, 8), ("encode4096", enc, 2.0 * 4096 * n * h, 1)):
            best = 1e9
            for _ in range(15):
                t0 = time.thread_time()
                for _ in range(reps): fn()
                best = min(best, (time.thread_time() - t0) / reps)
            res[label] = round(fl / best / 1e9, 1)
        out[f"{name} {np.dtype(dt).name}"] = res
print(json.dumps(out))
