#!/usr/bin/env python
"""Whole L-BFGS fits, end to end: csae against SciPy and PyTorch.

    python benchmarks/lbfgs_fit.py                          # S 30+400, M 30, L 30 iterations
    python benchmarks/lbfgs_fit.py --configs S --iterations 30 --repeats 1   # smoke run
    python benchmarks/lbfgs_fit.py --json fits.json

Contenders, all minimising the same objective (docs/math.md: sigmoid
decoder, sparsity_target 0.01, sparsity_weight 6, weight_decay 1e-4,
csae's defaults) full-batch from the same starting weights, ``tol=0`` or
its equivalent so that every fit runs its iteration budget:

csae
    ``SparseAutoencoder(n_hidden=h, max_epochs=N, tol=0, n_threads=T,
    dtype=..., random_state=0).fit(X)``: the default solver, L-BFGS in the
    engine (src_c/lbfgs.c) driven by ``csae.solvers.lbfgs.lbfgs``.
scipy
    UFLDL's ``sparseAutoencoderCost`` vectorised in NumPy (one BLAS call per
    product, rows as samples) under ``scipy.optimize.minimize(method=
    "L-BFGS-B", jac=True)``, maxcor 10, ftol = gtol = 0; BLAS limited to T
    threads by threadpoolctl.  In float32 the objective and gradients are
    computed in float32 and the optimizer works in float64, as csae does.
torch
    The same objective with PyTorch autograd under ``torch.optim.LBFGS(lr=1,
    history_size=10, line_search_fn="strong_wolfe", tolerance_grad=0,
    tolerance_change=0)``, ``torch.set_num_threads(T)``.

Every measurement is a fresh process (``--worker SPEC``, one JSON line on
stdout) that makes the data (``default_rng(0).random((m, n))``), then times
its first fit from the import of the contender's modules (csae; scipy.optimize
and scipy.special; torch) to the end of that fit, then times one more fit
(the first one was its warm-up).  ``--repeats`` processes per case; the
report gives medians.  csae's timed fit is instrumented (three wrappers that
add about 1 us per evaluation): the time in the engine's evaluations
(``evaluate_flat``), in the optimizer's steps (``Lbfgs.step``, C), in the rest
of the driver (Python) and in ``fit`` outside the driver.

FLOPs of one evaluation (multiply-add = 2 FLOP): 10 m n h, the five products
of benchmarks/run.py's training step (forward X W^T, A W'^T; backward D3 W',
D3^T A, D2^T X) over the m rows; elementwise work and the optimizer's vector
algebra are not counted.  csae's GFLOP/s over the whole fit = evaluations x
10 m n h / fit seconds, against the FMA peak of benchmarks/README.md (clock
measured by clock.c, FLOP/cycle of the kernel path csae runs) x threads.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# csae from this checkout (built in place), as the workers import it.
sys.path.insert(0, REPO)

# name: (rows m, inputs n, hidden h)
CONFIGS = {
    "S": (10_000, 64, 25),
    "M": (5_000, 784, 196),
    "L": (2_000, 1024, 512),
}
CONTENDERS = ("csae", "scipy", "torch")
PEERS = ("scipy", "torch")
# csae's defaults (SparseAutoencoder's signature).
RHO, BETA, LAM = 0.01, 6.0, 1e-4
SEED = 0
HISTORY = 10          # L-BFGS memory: SciPy's maxcor default, csae's history
MAX_FUN = 15_000      # evaluation limit (csae's max_fun default): never reached
# 400-iteration fits on M and L take minutes per repeat; by default only S
# runs them (see --runs).
DEFAULT_RUNS = "S:30,S:400,M:30,L:30"
# First objectives of the three contenders must agree to this relative
# difference (they compute one function in different orders).
AGREE = {"float64": 1e-9, "float32": 1e-5}


def eval_flops(m, n, h):
    """FLOPs of one full-batch objective-and-gradient evaluation."""
    return 10.0 * m * n * h


def rho_hat_clip(dtype):
    # The clip of rho_hat in the KL term (docs/math.md, csae.reference).
    return 1e-6 if dtype == "float32" else 1e-12


# ---------------------------------------------------------------------------
# The peers' objective: UFLDL's sparseAutoencoderCost, vectorised
# ---------------------------------------------------------------------------

def ufldl_cost(theta, X, h, np, expit):
    """(cost, grad) at theta = [W1(:); W2(:); b1; b2] (UFLDL's packing, row
    major here), computed in X's dtype; grad is float64.  The scaling is
    docs/math.md's (no 1/2 factors: lambda_here = lambda_UFLDL / 2)."""
    m, n = X.shape
    dtype = X.dtype
    hn = h * n
    W1 = theta[:hn].reshape(h, n).astype(dtype, copy=False)
    W2 = theta[hn:2 * hn].reshape(n, h).astype(dtype, copy=False)
    b1 = theta[2 * hn:2 * hn + h].astype(dtype, copy=False)
    b2 = theta[2 * hn + h:].astype(dtype, copy=False)
    A = expit(X @ W1.T + b1)
    Y = expit(A @ W2.T + b2)
    eps = rho_hat_clip(dtype.name)
    rho_hat = np.clip(A.mean(axis=0), eps, 1 - eps)
    R = Y - X
    kl = RHO * np.log(RHO / rho_hat) + (1 - RHO) * np.log((1 - RHO) / (1 - rho_hat))
    cost = (float(np.sum(R * R)) / m + LAM * (float(np.sum(W1 * W1)) + float(np.sum(W2 * W2)))
            + BETA * float(np.sum(kl)))
    D3 = (2.0 / m) * R * (Y * (1 - Y))
    sparsity_delta = BETA * (-RHO / rho_hat + (1 - RHO) / (1 - rho_hat))
    D2 = (D3 @ W2 + sparsity_delta / m) * (A * (1 - A))
    grad = np.concatenate([(D2.T @ X + (2 * LAM) * W1).ravel(),
                           (D3.T @ A + (2 * LAM) * W2).ravel(),
                           D2.sum(axis=0), D3.sum(axis=0)], dtype=np.float64)
    return cost, grad


def objective64(X, params, h):
    """The objective at params (W, b, Wd, bd) in float64: one yardstick for
    every contender's final weights."""
    import numpy as np
    from scipy.special import expit
    theta = np.concatenate([np.asarray(params[0], np.float64).ravel(),
                            np.asarray(params[2], np.float64).ravel(),
                            np.asarray(params[1], np.float64), np.asarray(params[3], np.float64)])
    return ufldl_cost(theta, np.asarray(X, np.float64), h, np, expit)[0]


# ---------------------------------------------------------------------------
# Worker side: one contender, one case, one process
# ---------------------------------------------------------------------------

class _Fit:
    """What one fit reports."""

    def __init__(self, params, n_iter, n_eval, first, final, **extra):
        self.params, self.n_iter, self.n_eval = params, n_iter, n_eval
        self.first, self.final, self.extra = first, final, extra


def _csae_fit(X, h, iterations, threads, instrument):
    from csae import SparseAutoencoder
    if not instrument:
        model = SparseAutoencoder(n_hidden=h, max_epochs=iterations, tol=0, n_threads=threads,
                                  dtype=X.dtype.name, random_state=SEED)
        model.fit(X)
        return _Fit(None, model.n_iter_, None, None, model.loss_curve_[-1])
    times = {"evaluations": 0.0, "optimizer": 0.0, "driver": 0.0}
    counts = {"evaluations": 0, "steps": 0}
    first = []
    import csae._backends as backends
    import csae._engine as engine
    import csae.solvers.lbfgs as training  # the module whose lbfgs the solver calls
    clock = time.perf_counter

    class TimedEvaluator:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, params):
            return self.inner(params)

        def evaluate_flat(self, theta, grad):
            t = clock()
            f = self.inner.evaluate_flat(theta, grad)
            times["evaluations"] += clock() - t
            counts["evaluations"] += 1
            if not first:
                first.append(f)
            return f

    class TimedLbfgs:
        def __init__(self, *args, **kwargs):
            self.inner = Lbfgs(*args, **kwargs)

        def step(self, x, f, g):
            t = clock()
            out = self.inner.step(x, f, g)
            times["optimizer"] += clock() - t
            counts["steps"] += 1
            return out

        @property
        def evaluations(self):
            return self.inner.evaluations

    def timed_driver(*args, **kwargs):
        t = clock()
        try:
            return driver(*args, **kwargs)
        finally:
            times["driver"] += clock() - t

    Lbfgs, driver = engine.Lbfgs, training.lbfgs
    make_evaluator = backends.Backend.objective_evaluator
    engine.Lbfgs, training.lbfgs = TimedLbfgs, timed_driver
    backends.Backend.objective_evaluator = (
        lambda self, *a, **k: TimedEvaluator(make_evaluator(self, *a, **k)))
    try:
        model = SparseAutoencoder(n_hidden=h, max_epochs=iterations, tol=0, n_threads=threads,
                                  dtype=X.dtype.name, random_state=SEED)
        t = clock()
        model.fit(X)
        total = clock() - t
    finally:
        engine.Lbfgs, training.lbfgs = Lbfgs, driver
        backends.Backend.objective_evaluator = make_evaluator
    params = (model.encoder_weights_, model.encoder_bias_, model.decoder_weights_,
              model.decoder_bias_)
    breakdown = {
        "fit": total, "evaluations": times["evaluations"], "optimizer": times["optimizer"],
        "driver_python": times["driver"] - times["evaluations"] - times["optimizer"],
        "fit_outside_driver": total - times["driver"], "optimizer_steps": counts["steps"]}
    return _Fit(params, model.n_iter_, counts["evaluations"], first[0] if first else None,
                model.loss_curve_[-1], breakdown=breakdown)


def _scipy_fit(X, h, start, iterations, threads):
    import numpy as np
    from scipy.optimize import minimize
    from scipy.special import expit
    from threadpoolctl import threadpool_limits
    m, n = X.shape
    W, b, Wd, bd = start
    theta0 = np.concatenate([W.ravel(), Wd.ravel(), b, bd], dtype=np.float64)
    first = []

    def fun(theta):
        f, g = ufldl_cost(theta, X, h, np, expit)
        if not first:
            first.append(f)
        return f, g

    with threadpool_limits(threads, user_api="blas"):
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B",
                       options=dict(maxiter=iterations, maxfun=MAX_FUN, maxcor=HISTORY,
                                    ftol=0.0, gtol=0.0))
    x, hn = res.x, h * n
    params = (x[:hn].reshape(h, n), x[2 * hn:2 * hn + h], x[hn:2 * hn].reshape(n, h),
              x[2 * hn + h:])
    params = tuple(p.astype(X.dtype) for p in params)
    return _Fit(params, int(res.nit), int(res.nfev), first[0], float(res.fun),
                message=str(res.message))


def _torch_fit(X_np, h, start, iterations, threads):
    import torch
    torch.set_num_threads(threads)
    X = torch.from_numpy(X_np)
    m = X.shape[0]
    W1, b1, W2, b2 = (torch.tensor(p, dtype=X.dtype, requires_grad=True) for p in start)
    eps = rho_hat_clip(X_np.dtype.name)
    opt = torch.optim.LBFGS([W1, b1, W2, b2], lr=1, max_iter=iterations, max_eval=MAX_FUN,
                            tolerance_grad=0.0, tolerance_change=0.0, history_size=HISTORY,
                            line_search_fn="strong_wolfe")
    first = []

    def closure():
        opt.zero_grad()
        A = torch.sigmoid(torch.addmm(b1, X, W1.t()))
        Y = torch.sigmoid(torch.addmm(b2, A, W2.t()))
        rho_hat = A.mean(dim=0).clamp(eps, 1 - eps)
        kl = RHO * torch.log(RHO / rho_hat) + (1 - RHO) * torch.log((1 - RHO) / (1 - rho_hat))
        loss = (((Y - X) ** 2).sum() / m + LAM * ((W1 * W1).sum() + (W2 * W2).sum())
                + BETA * kl.sum())
        loss.backward()
        if not first:
            first.append(float(loss))
        return loss

    opt.step(closure)
    state = opt.state[W1]
    params = tuple(p.detach().numpy().copy() for p in (W1, b1, W2, b2))
    final = float(state["prev_loss"]) if "prev_loss" in state else None
    return _Fit(params, int(state["n_iter"]), int(state["func_evals"]), first[0], final)


def _heavy_modules(before):
    """Top-level packages imported since ``before`` (a set of names)."""
    return sorted({name.split(".")[0] for name in sys.modules} - before)


def worker(spec):
    contender, config, dtype = spec["contender"], spec["config"], spec["dtype"]
    iterations, threads = spec["iterations"], spec["threads"]
    m, n, h = CONFIGS[config]
    res = {k: spec[k] for k in ("contender", "config", "dtype", "iterations", "threads",
                                "repeat")}
    import numpy as np
    X = np.random.default_rng(SEED).random((m, n)).astype(dtype)
    with np.load(spec["start"]) as f:
        start = tuple(f[k].astype(dtype) for k in ("W", "b", "Wd", "bd"))
    if contender == "scipy":
        # The harness's thread control, not part of the peer's first fit.
        import threadpoolctl  # noqa: F401

    def fit(instrument):
        if contender == "csae":
            return _csae_fit(X, h, iterations, threads, instrument)
        if contender == "scipy":
            return _scipy_fit(X, h, start, iterations, threads)
        return _torch_fit(X, h, start, iterations, threads)

    before = {name.split(".")[0] for name in sys.modules}
    t = time.perf_counter()
    fit(False)   # imports included; also the warm-up
    res["first_fit_s"] = time.perf_counter() - t
    res["first_fit_imported"] = _heavy_modules(before)
    t = time.perf_counter()
    out = fit(True)
    res["fit_s"] = time.perf_counter() - t
    res.update(n_iter=out.n_iter, n_eval=out.n_eval, first_objective=out.first,
               final_objective=out.final, **out.extra)
    # Untimed checks: the final weights in float64, and csae's own start.
    if out.params is not None:
        res["final_objective_f64"] = objective64(X, out.params, h)
    if contender == "csae":
        from csae import _engine
        from csae._validation import derive_seed
        own, _ = _engine.init_params(n, h, derive_seed(SEED), dtype)
        res["same_start"] = all(np.array_equal(a, b) for a, b in zip(own, start))
        res["kernel_path"] = _engine.get_kernel_path()
    if contender == "torch":
        import torch
        res["torch_version"] = torch.__version__
    res["ok"] = True
    return res


# ---------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------

def _parse_runs(args):
    if args.configs or args.iterations:
        configs = (args.configs or "S,M,L").split(",")
        iterations = [int(i) for i in (args.iterations or "30,400").split(",")]
        runs = [(c, i) for c in configs for i in iterations]
    else:
        runs = [(c, int(i)) for c, i in (r.split(":") for r in args.runs.split(","))]
    for config, iterations in runs:
        if config not in CONFIGS:
            raise SystemExit(f"unknown config {config!r}; choose from {', '.join(CONFIGS)}")
        if iterations < 1:
            raise SystemExit(f"iterations must be >= 1, got {iterations}")
    return runs


def _write_starts(runs, directory):
    """The starting weights of every config, float64 (each worker casts):
    those SparseAutoencoder(random_state=0) draws (the engine's init_params
    and csae.reference's are the same SplitMix64 draws)."""
    import numpy as np
    from csae import reference
    from csae._validation import derive_seed
    paths = {}
    for config in sorted({c for c, _ in runs}):
        _, n, h = CONFIGS[config]
        (W, b, Wd, bd), _ = reference.init_params(n, h, derive_seed(SEED), np.float64)
        paths[config] = os.path.join(directory, f"start_{config}.npz")
        np.savez(paths[config], W=W, b=b, Wd=Wd, bd=bd)
    return paths


def _run_worker(spec, timeout):
    env = dict(os.environ)
    threads = str(spec["threads"])
    env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    ident = {k: spec[k] for k in ("contender", "config", "dtype", "iterations", "threads",
                                  "repeat")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=REPO)
    except subprocess.TimeoutExpired:
        return {**ident, "ok": False, "error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {**ident, "ok": False, "error": f"worker failed (exit {proc.returncode}): {tail}"}


def _median(records, key):
    values = [r[key] for r in records if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(results, runs, dtypes, threads, contenders, peak_per_thread):
    """One row per case: medians per contender, and csae's derived figures."""
    rows = []
    for config, iterations in runs:
        m, n, h = CONFIGS[config]
        for dtype in dtypes:
            for t in threads:
                row = {"config": config, "iterations": iterations, "dtype": dtype,
                       "threads": t, "contenders": {}}
                for c in contenders:
                    recs = [r for r in results if r.get("ok") and r["contender"] == c
                            and r["config"] == config and r["iterations"] == iterations
                            and r["dtype"] == dtype and r["threads"] == t]
                    if not recs:
                        continue
                    summary = {key: _median(recs, key) for key in (
                        "fit_s", "first_fit_s", "n_iter", "n_eval", "first_objective",
                        "final_objective", "final_objective_f64")}
                    summary["repeats"] = len(recs)
                    summary["fit_s_all"] = [r["fit_s"] for r in recs]
                    if summary["n_eval"]:
                        summary["gflops"] = (summary["n_eval"] * eval_flops(m, n, h)
                                             / summary["fit_s"] / 1e9)
                    if c == "csae":
                        parts = {k: statistics.median(r["breakdown"][k] for r in recs)
                                 for k in recs[0]["breakdown"]}
                        shares = [1 - r["breakdown"]["evaluations"] / r["breakdown"]["fit"]
                                  for r in recs]
                        summary["breakdown"] = parts
                        summary["outside_share"] = statistics.median(shares)
                        summary["eval_gflops"] = (summary["n_eval"] * eval_flops(m, n, h)
                                                  / parts["evaluations"] / 1e9)
                        peak = peak_per_thread.get(dtype, 0) * t
                        if peak:
                            summary["pct_peak"] = 100 * summary["gflops"] / peak
                            summary["eval_pct_peak"] = 100 * summary["eval_gflops"] / peak
                        summary["same_start"] = all(r.get("same_start") for r in recs)
                    row["contenders"][c] = summary
                got = row["contenders"]
                peers = [got[p]["fit_s"] for p in PEERS if p in got]
                if "csae" in got and peers:
                    row["ratio"] = min(peers) / got["csae"]["fit_s"]
                    row["faster_peer"] = min((got[p]["fit_s"], p) for p in PEERS if p in got)[1]
                firsts = [s["first_objective"] for s in got.values()
                          if s.get("first_objective") is not None]
                if len(firsts) > 1:
                    spread = (max(firsts) - min(firsts)) / abs(statistics.median(firsts))
                    row["first_objective_spread"] = spread
                    row["first_objective_agree"] = spread <= AGREE[dtype]
                rows.append(row)
    return rows


def _g(v, fmt="{:.3g}"):
    return "-" if v is None else fmt.format(v)


def print_tables(rows, contenders, out=sys.stdout):
    def p(line=""):
        print(line, file=out)

    p("Seconds per fit (median), iterations / evaluations done, final objective "
      "(float64, from the final weights); ratio = faster peer / csae")
    head = "| case | dtype | thr |"
    for c in contenders:
        head += f" {c} s | {c} it/ev | {c} objective |"
    p(head + " ratio | first objectives agree |")
    p("|" + "---|" * (3 + 3 * len(contenders) + 2))
    for row in rows:
        line = f"| {row['config']} {row['iterations']} | {row['dtype']} | {row['threads']} |"
        for c in contenders:
            s = row["contenders"].get(c)
            if s is None:
                line += " n/a | | |"
                continue
            ev = "?" if s["n_eval"] is None else f"{s['n_eval']:.0f}"
            line += (f" {_g(s['fit_s'], '{:.3f}')} | {s['n_iter']:.0f} / {ev} |"
                     f" {_g(s.get('final_objective_f64'), '{:.6g}')} |")
        agree = row.get("first_objective_agree")
        spread = row.get("first_objective_spread")
        line += (f" {_g(row.get('ratio'), '{:.2f}x')} |"
                 f" {'-' if agree is None else ('yes' if agree else 'NO')}"
                 f"{'' if spread is None else f' ({spread:.1e})'} |")
        p(line)
    p()
    p("csae's fit: GFLOP/s over the whole fit and over the evaluations alone (% of the FMA "
      "peak), the share of the fit outside the evaluations, and where that time went "
      "(medians, ms)")
    p("| case | dtype | thr | fit GFLOP/s | fit % peak | eval GFLOP/s | eval % peak |"
      " outside evals | optimizer (C) | driver (Python) | fit outside driver |")
    p("|" + "---|" * 11)
    for row in rows:
        s = row["contenders"].get("csae")
        if s is None or "breakdown" not in s:
            continue
        b = s["breakdown"]
        p(f"| {row['config']} {row['iterations']} | {row['dtype']} | {row['threads']} |"
          f" {_g(s.get('gflops'), '{:.1f}')} | {_g(s.get('pct_peak'), '{:.1f}%')} |"
          f" {_g(s.get('eval_gflops'), '{:.1f}')} | {_g(s.get('eval_pct_peak'), '{:.1f}%')} |"
          f" {100 * s['outside_share']:.1f}% | {1e3 * b['optimizer']:.1f} |"
          f" {1e3 * b['driver_python']:.1f} | {1e3 * b['fit_outside_driver']:.1f} |")
    p()
    p("A process's first fit, imports included (median s), and what it costs over a "
      "warm fit")
    p("| case | dtype | thr |" + "".join(f" {c} first | {c} extra |" for c in contenders))
    p("|" + "---|" * (3 + 2 * len(contenders)))
    for row in rows:
        line = f"| {row['config']} {row['iterations']} | {row['dtype']} | {row['threads']} |"
        for c in contenders:
            s = row["contenders"].get(c)
            if s is None:
                line += " n/a | |"
            else:
                line += (f" {s['first_fit_s']:.3f} |"
                         f" {s['first_fit_s'] - s['fit_s']:+.3f} |")
        p(line)


def _machine(contenders):
    """CPU, measured clock, csae's kernel path and the FMA peak per thread."""
    import run as run_bench   # benchmarks/run.py: the clock and peak helpers
    from _machine import cpu_name
    cpu = run_bench._cpuinfo()
    measured = run_bench._measure_clock()
    ghz = measured["ghz"] if measured else (cpu.get("lscpu_max_mhz") or
                                            cpu.get("cpuinfo_mhz") or 0) / 1000
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    path = run_bench._default_kernel_path(env)
    per_cycle = run_bench._flop_per_cycle(path, measured)
    versions = {pkg: run_bench._version(pkg) for pkg in ("numpy", "scipy", "torch",
                                                         "threadpoolctl")}
    return {"cpu": cpu_name(), "isa": cpu["isa"], "clock_ghz": ghz,
            "clock_source": "measured (clock.c)" if measured else "reported",
            "kernel_path": path, "flop_per_cycle": per_cycle,
            "peak_gflops_per_thread": {d: ghz * f for d, f in per_cycle.items()},
            "usable_cpus": cpu.get("usable_cpus"), "versions": versions,
            "python": sys.version.split()[0]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default=DEFAULT_RUNS,
                   help=f"config:iterations list (default {DEFAULT_RUNS})")
    p.add_argument("--configs", help="comma list of S,M,L; with --iterations, replaces "
                   "--runs by every config x every iteration count")
    p.add_argument("--iterations", help="comma list of iteration budgets (default 30,400 "
                   "when --configs is given)")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per case")
    p.add_argument("--timeout", type=float, default=900, help="seconds per worker")
    p.add_argument("--json", metavar="PATH", help="write machine, raw results and rows")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0

    runs = _parse_runs(args)
    dtypes = args.dtypes.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    contenders = [c for c in args.contenders.split(",") if c]
    unknown = set(contenders) - set(CONTENDERS) or set(dtypes) - {"float32", "float64"}
    if unknown or args.repeats < 1 or min(threads) < 1:
        raise SystemExit(f"bad option value(s): {sorted(unknown) or args.repeats}")
    # A peer whose library is missing is left out with a note, not a failure.
    import importlib.util
    needs = {"scipy": ("scipy", "threadpoolctl"), "torch": ("torch",)}
    for c in list(contenders):
        missing = [m for m in needs.get(c, ()) if importlib.util.find_spec(m) is None]
        if missing:
            print(f"note: {c} left out ({', '.join(missing)} not installed)")
            contenders.remove(c)
    began = time.time()
    machine = _machine(contenders)
    print(f"== {machine['cpu']} | {machine['isa']} | csae kernel path {machine['kernel_path']}"
          f" | clock {machine['clock_ghz']:.2f} GHz ({machine['clock_source']}) | FMA peak "
          f"{machine['peak_gflops_per_thread']['float32']:.1f} float32 / "
          f"{machine['peak_gflops_per_thread']['float64']:.1f} float64 GFLOP/s per thread ==",
          flush=True)
    print("   " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()), flush=True)
    import run as run_bench
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        starts = _write_starts(runs, tmp)
        # Repeat-major order: a stretch of load on the machine hits every
        # contender of a case alike rather than all repeats of one.
        for repeat in range(args.repeats):
            for config, iterations in runs:
                for dtype in dtypes:
                    for t in threads:
                        for c in contenders:
                            spec = dict(contender=c, config=config, iterations=iterations,
                                        dtype=dtype, threads=t, repeat=repeat,
                                        start=starts[config])
                            busy = run_bench._busy_cores()
                            res = _run_worker(spec, args.timeout)
                            res["busy_cores_before"] = busy
                            results.append(res)
                            state = (f"{res['fit_s']:.3f} s" if res.get("ok")
                                     else f"FAILED: {res.get('error')}")
                            print(f"  [{repeat + 1}/{args.repeats}] {c:5s} {config} "
                                  f"{iterations:4d} it {dtype} {t} thr: {state}"
                                  f" (busy {busy if busy is None else round(busy, 2)})",
                                  flush=True)
    peak = machine["peak_gflops_per_thread"]
    rows = summarise(results, runs, dtypes, threads, contenders, peak)
    print()
    print_tables(rows, contenders)
    failed = [r for r in results if not r.get("ok")]
    disagree = [r for r in rows if r.get("first_objective_agree") is False]
    busy = [r["busy_cores_before"] for r in results if r.get("busy_cores_before") is not None]
    if busy:
        print(f"\nOther load before the workers: median {statistics.median(busy):.2f} cores "
              f"busy, max {max(busy):.2f} (of {machine['usable_cpus']})")
    for r in failed:
        print(f"FAILED {r['contender']} {r['config']} {r['iterations']} {r['dtype']} "
              f"{r['threads']}: {r.get('error')}")
    for r in disagree:
        print(f"first objectives disagree on {r['config']} {r['dtype']}: relative spread "
              f"{r['first_objective_spread']:.2e}")
    elapsed = time.time() - began
    print(f"\n{len(results)} worker processes in {elapsed:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": sys.argv, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                       "machine": machine, "results": results, "rows": rows,
                       "elapsed_seconds": elapsed}, f, indent=1, default=str)
    return 1 if failed or disagree else 0


if __name__ == "__main__":
    sys.exit(main())
