#!/usr/bin/env python
"""One fine-tuning evaluation of a deep network: csae against PyTorch and NumPy.

    python benchmarks/deep_eval.py [--rows 5000 50000] [--threads 1 2] [--repeats 7]

The network is UFLDL's MNIST one, 784-200-200-10 (two sigmoid layers and a
softmax layer); one evaluation is what L-BFGS asks for at each step of
``SparseAutoencoderClassifier``'s fine-tuning: the mean cross-entropy plus
the weight decay, and its gradient with respect to every weight, over all
rows (uniform [0, 1) data, random labels).

csae
    ``csae._engine.DeepEvaluator.evaluate_flat``: the engine's forward and
    backward passes, the workspace allocated once, the optimizer's float64
    vector in and out (a float32 network converts it, as fine-tuning does).
torch
    the same network in PyTorch with autograd (``torch.set_num_threads``).
numpy
    ``csae.reference.deep_objective_and_gradients`` (NumPy's BLAS limited
    by threadpoolctl).

Each figure is the median of ``--repeats`` evaluations after one warm-up;
GFLOP/s counts the products' multiply-adds (2 flops each): the forward
products, the weight gradients and the backward products of every layer
but the first.  The machine named in the output may be shared: medians damp
but do not remove other load.  Prints one table; ratio = faster peer's
time / csae's time (above 1: csae is faster).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # this checkout's csae, built in place
from _machine import cpu_name  # noqa: E402

from csae import _engine, reference  # noqa: E402

SIZES = [784, 200, 200, 10]
LAM = 1e-4


def problem(m, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (m, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], m)
    layers = []
    for h_prev, h in zip(SIZES[:-1], SIZES[1:]):
        r = np.sqrt(6.0 / (h + h_prev + 1))
        layers.append((rng.uniform(-r, r, (h, h_prev)).astype(dtype), np.zeros(h, dtype)))
    return X, y, layers


def flops(m):
    per_row = sum(h * p for p, h in zip(SIZES[:-1], SIZES[1:]))
    first = SIZES[0] * SIZES[1]
    return 2 * m * (3 * per_row - first)


def median_seconds(call, repeats):
    call()  # warm-up: first-touch of buffers, lazy initialisation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_csae(X, y, layers, threads, repeats):
    ev = _engine.DeepEvaluator(SIZES, X, y, lam=LAM, n_threads=threads)
    theta = np.concatenate([a.ravel() for layer in layers for a in layer]).astype(np.float64)
    grad = np.empty_like(theta)
    return median_seconds(lambda: ev.evaluate_flat(theta, grad), repeats)


def time_numpy(X, y, layers, threads, repeats):
    from threadpoolctl import threadpool_limits
    with threadpool_limits(threads):
        return median_seconds(
            lambda: reference.deep_objective_and_gradients(layers, X, y, lam=LAM), repeats)


def time_torch(X, y, layers, threads, repeats):
    import torch
    torch.set_num_threads(threads)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    params = [torch.from_numpy(a.copy()).requires_grad_() for layer in layers for a in layer]

    def evaluate():
        for p in params:
            p.grad = None
        A = Xt
        for i in range(0, len(params) - 2, 2):
            A = torch.sigmoid(torch.addmm(params[i + 1], A, params[i].t()))
        Z = torch.addmm(params[-1], A, params[-2].t())
        loss = torch.nn.functional.cross_entropy(Z, yt)
        loss = loss + 0.5 * LAM * sum((W * W).sum() for W in params[0::2])
        loss.backward()
        return loss.item()
    return median_seconds(evaluate, repeats)


CONTENDERS = {"csae": time_csae, "torch": time_torch, "numpy": time_numpy}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--libs", default="csae,torch,numpy")
    args = parser.parse_args(argv)
    libs = args.libs.split(",")
    print(f"# deep_eval: one objective+gradient evaluation, {'-'.join(map(str, SIZES))}, "
          f"median of {args.repeats}; CPU: {cpu_name()}")
    header = ["rows", "dtype", "threads"] + [f"{lib} ms (GFLOP/s)" for lib in libs]
    if "csae" in libs and len(libs) > 1:
        header.append("ratio")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rows = []
    for m in args.rows:
        for dtype in args.dtypes:
            X, y, layers = problem(m, np.dtype(dtype))
            for threads in args.threads:
                seconds = {lib: CONTENDERS[lib](X, y, layers, threads, args.repeats)
                           for lib in libs}
                cells = [str(m), dtype, str(threads)]
                cells += [f"{1e3 * s:.1f} ({flops(m) / s / 1e9:.1f})" for s in seconds.values()]
                if "csae" in seconds and len(seconds) > 1:
                    peer = min(s for lib, s in seconds.items() if lib != "csae")
                    cells.append(f"{peer / seconds['csae']:.2f}")
                print("| " + " | ".join(cells) + " |", flush=True)
                rows.append({"rows": m, "dtype": dtype, "threads": threads, "seconds": seconds})
    return rows


if __name__ == "__main__":
    main()
