"""L-BFGS evaluations per second: in memory (one process) against dask on 1
and 2 local worker processes, and the parts of a projection to many machines.

One "evaluation" is what the L-BFGS driver asks for once per step: the
full-batch objective and all four gradients.  In memory it is one engine call
(``objective_and_gradients``, one thread); on dask it is the two-pass
map-reduce of csae._dask (per-block activation sums reduced to rho_hat, then
per-block objective parts and gradients reduced), with the data generated on
the workers and kept there (``persist``), as a fit on a cluster does.

Also measured, for the projection in BENCHMARKS.md:
  * the per-block compute rate: one block's two passes in this process
    (rows per second per core);
  * the task overhead: a trivial map-reduce over the same number of blocks
    on the same cluster (seconds per pass);
  * the bytes reduced per evaluation and worker: (1 + h) + (1 + 2nh + n + h)
    float64 values.

Usage: python benchmarks/scale.py [--configs S,M] [--rows 100000,1000000]
       [--workers 1,2] [--evals 5] [--json out.json]
"""

import argparse
import json
import os
import time

import numpy as np

from _machine import cpu_name

CONFIGS = {"S": (64, 25), "M": (784, 196)}   # (n_features, n_hidden), as benchmarks/run.py
HYPER = dict(rho=0.05, beta=3.0, lam=1e-4, decoder="sigmoid")


def block_rows(n, dtype=np.float64):
    from csae._blockwise import CHUNK_BYTES
    return max(1, CHUNK_BYTES // (n * np.dtype(dtype).itemsize))


def best_of(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def in_memory(n, h, m, evals):
    from csae import reference
    from csae._backends import Backend
    backend = Backend("c", 1)
    params, _ = reference.init_params(n, h, 0)
    X = np.random.default_rng(0).random((m, n))
    best, median = best_of(lambda: backend.objective_and_gradients(params, X, **HYPER), evals)
    # The per-block compute rate: one block's two passes, in this process.
    from csae._blockwise import block_functions
    sums_fn, part_fn = block_functions(backend)
    B = X[:block_rows(n)]

    def one_block():
        rho_hat = sums_fn(params[0], params[1], B) / B.shape[0]
        part_fn(params, B, rho_hat, B.shape[0], rho=HYPER["rho"], beta=HYPER["beta"],
                decoder=HYPER["decoder"])
    block_best, _ = best_of(one_block, max(3, evals))
    functions = "engine" if getattr(backend, "activation_sums", None) or hasattr(
        backend.module, "activation_sums") else "reference fallback"
    return {"eval_s": best, "eval_median_s": median, "evals_per_s": 1 / best,
            "block_rows": B.shape[0], "block_s": block_best,
            "block_rows_per_s": B.shape[0] / block_best, "block_functions": functions}


def on_dask(n, h, m, workers, evals):
    import dask.array as da
    import distributed

    from csae import reference
    from csae._backends import Backend
    from csae._dask import DaskData
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    try:
        rows = block_rows(n)
        X = da.random.random((m, n), chunks=(rows, n)).persist()
        distributed.wait(X)
        data = DaskData(X, m, 1)
        params, _ = reference.init_params(n, h, 0)
        backend = Backend("c", 1)
        data.evaluate(backend, params, need_gradients=True, **HYPER)  # warm-up
        best, median = best_of(
            lambda: data.evaluate(backend, params, need_gradients=True, **HYPER), evals)
        # Task overhead: a map-reduce of the same shape doing nothing.
        empty = X.map_blocks(lambda b: np.zeros((1, 1)), chunks=((1,) * X.numblocks[0], (1,)),
                             dtype=np.float64, meta=np.empty((0, 0)))
        overhead, _ = best_of(lambda: empty.sum(axis=0).compute(), max(5, evals))
        return {"eval_s": best, "eval_median_s": median, "evals_per_s": 1 / best,
                "blocks": X.numblocks[0], "pass_overhead_s": overhead}
    finally:
        client.close()
        cluster.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="S,M")
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--max-elements", type=float, default=1.2e8,
                        help="skip a config/rows pair above this many data values "
                             "(memory and time on a small machine)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--evals", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    results = {"cpu": cpu_name(), "cpus": os.cpu_count(), "runs": []}
    print(f"CPU: {results['cpu']} ({results['cpus']} CPUs); float64; "
          f"one thread per process; best of {args.evals}")
    print(f"{'cfg':>3} {'rows':>9} {'where':>14} {'eval s':>9} {'evals/s':>8} {'speed-up':>8}")
    for cfg in args.configs.split(","):
        n, h = CONFIGS[cfg]
        for m in (int(r) for r in args.rows.split(",")):
            if m * n > args.max_elements:
                print(f"{cfg:>3} {m:>9} skipped ({m * n:.3g} values > --max-elements)")
                continue
            run = {"config": cfg, "n": n, "h": h, "rows": m,
                   "reduced_bytes_per_worker": 8 * ((1 + h) + (1 + 2 * n * h + n + h))}
            run["memory"] = base = in_memory(n, h, m, args.evals)
            print(f"{cfg:>3} {m:>9} {'in memory':>14} {base['eval_s']:9.3f} "
                  f"{base['evals_per_s']:8.2f} {1.0:8.2f}", flush=True)
            for w in (int(x) for x in args.workers.split(",")):
                r = run[f"dask_{w}"] = on_dask(n, h, m, w, args.evals)
                print(f"{cfg:>3} {m:>9} {f'dask {w} worker' + ('s' if w > 1 else ''):>14} "
                      f"{r['eval_s']:9.3f} {r['evals_per_s']:8.2f} "
                      f"{base['eval_s'] / r['eval_s']:8.2f}", flush=True)
            print(f"    block of {base['block_rows']} rows: {base['block_s'] * 1e3:.1f} ms "
                  f"({base['block_rows_per_s']:.3g} rows/s/core, {base['block_functions']}); "
                  f"empty pass over {run['dask_' + args.workers.split(',')[-1]]['blocks']} "
                  f"blocks: {r['pass_overhead_s'] * 1e3:.1f} ms; reduced per worker "
                  f"{run['reduced_bytes_per_worker'] / 1e3:.1f} kB", flush=True)
            results["runs"].append(run)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
