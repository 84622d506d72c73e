#!/usr/bin/env python
"""Side-by-side speed benchmark: csae against NumPy and PyTorch.

Run ``python benchmarks/run.py`` (see ``benchmarks/README.md``).  The parent
process only orchestrates: every (library, config, dtype, threads) case runs in
a fresh subprocess (``run.py --worker SPEC``) that prints one JSON line, so
idle BLAS/OpenMP threads of one library never compete with another.  All
libraries train the same model (rho 0.05, beta 3, lambda 1e-4, plain SGD,
learning rate 0.1, no shuffling) on the same data (uniform [0, 1], fixed seed)
from the same initial weights.

Libraries
    csae     csae.SparseAutoencoder(backend="c", n_threads=T)
    numpy    csae.reference (the pure-NumPy twin of the engine), OpenBLAS
             threads limited to T with threadpoolctl
    torch    eager nn.Linear encoder/decoder + autograd + torch.optim.SGD,
             torch.set_num_threads(T)
    csae-python  (optional) the estimator with backend="python"
"""

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Hyperparameters shared by every library (docs/MATH.md notation).
RHO, BETA, LAM, LR = 0.05, 3.0, 1e-4, 0.1
SEED = 0
ENCODE_BATCH = 4096
CHECK_ROWS = 64
# Cores busy with other processes above which a measurement is flagged.
BUSY_WARN = 0.25

# name: (n inputs, h hidden, batch, samples)
CONFIGS = {
    "S": (64, 25, 100, 10_000),
    "M": (784, 196, 128, 20_000),
    "L": (784, 1024, 256, 20_000),
    "S1": (64, 25, 1, 10_000),
}
LIBS = ("csae", "numpy", "torch", "csae-python")
PEERS = ("numpy", "torch")
DTYPES = ("float32", "float64")
# FMA peak on AVX2+FMA: 2 FMA units x 256 bit = 16 double / 32 single FLOP
# per cycle per core.
FLOP_PER_CYCLE = {"float64": 16, "float32": 32}
# Environment variables that slow a current numpy's OpenBLAS (machine docs).
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# OpenBLAS kernels of the same instruction set as each csae kernel path:
# its GEMM rate with these is what that path's GEMM is held against.
SAME_ISA_CORETYPE = {"avx2": "Haswell", "avx512": "SkylakeX"}
# Vector ISA of each csae kernel path, for the table headings.
PATH_ISA = {"portable": "baseline (compiler-vectorised C)", "avx2": "AVX2+FMA",
            "avx512": "AVX-512F"}

# Timing budgets: (train chunk seconds, timed chunks, calibration seconds,
# latency block seconds, latency blocks, batch-encode repeats).
BUDGET_FULL = dict(chunk_s=0.3, chunks=9, calib_s=0.05, block_s=0.003,
                   blocks=21, encode_reps=7, gemm_s=0.1)
BUDGET_QUICK = dict(chunk_s=0.02, chunks=3, calib_s=0.005, block_s=0.0005,
                    blocks=5, encode_reps=3, gemm_s=0.01)


def flops_per_sample(n, h, batch):
    """Model FLOPs of one training sample (multiply-add = 2 FLOP).

    Five products of n x h work per sample: forward X W^T and A W'^T
    (2nh each), backward D3 W', D3^T A and D2^T X (2nh each) = 10nh; plus the
    weight-decay and SGD update of the 2nh weights once per minibatch
    (g += 2 lam W, W -= lr g: 4 FLOP per weight) = 8nh / batch.  Elementwise
    work (sigmoids, KL, biases: O(n + h) per sample) is not counted.
    """
    return 10.0 * n * h + 8.0 * n * h / batch


# ---------------------------------------------------------------------------
# Worker side: one library, one case, JSON on stdout
# ---------------------------------------------------------------------------

def _median_time(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _calibrate(fn, min_s, start=1, cap=1 << 22):
    """Smallest count k (doubling from ``start``) with fn(k) taking min_s.
    Returns (k, seconds of the last call).  Also serves as warm-up."""
    k = start
    while True:
        t0 = time.perf_counter()
        fn(k)
        t = time.perf_counter() - t0
        if t >= min_s or k >= cap:
            return k, t
        k *= 2


def _import_reference():
    """csae.reference, even while the package's __init__ cannot import
    (e.g. it needs the compiled engine that is not built yet)."""
    try:
        from csae import reference
        return reference
    except ImportError:
        import types
        pkg_dir = os.path.join(REPO, "csae")
        for name in [m for m in sys.modules if m == "csae"
                     or m.startswith("csae.")]:
            del sys.modules[name]
        pkg = types.ModuleType("csae")
        pkg.__path__ = [pkg_dir]
        sys.modules["csae"] = pkg
        from csae import reference
        return reference


class _NumpyModel:
    """csae.reference: the NumPy peer."""

    def __init__(self, X, n, h, batch, dtype, threads):
        reference = _import_reference()
        self.ref = reference
        self.params, _ = reference.init_params(n, h, SEED, dtype)
        self.batch = batch

    def train(self, Xc):
        self.ref.sgd_epoch(self.params, None, Xc, rho=RHO, beta=BETA, lam=LAM,
                           learning_rate=LR, batch_size=self.batch,
                           shuffle=False)

    def encode_fn(self, Xe):
        W, b = self.params[0], self.params[1]
        enc = self.ref.encode
        return lambda: enc(W, b, Xe)


class _CsaeModel:
    """csae.SparseAutoencoder with backend "c" (or "python")."""

    def __init__(self, X, n, h, batch, dtype, threads, backend):
        from csae import SparseAutoencoder
        self.model = SparseAutoencoder(
            solver="sgd", n_hidden=h, sparsity_target=RHO, sparsity_weight=BETA,
            weight_decay=LAM, decoder="sigmoid", learning_rate=LR,
            momentum=0.0, batch_size=batch, max_epochs=1, shuffle=False,
            dtype=dtype, backend=backend, random_state=SEED,
            n_threads=threads)
        # Start from the same weights as the peers (the estimator derives
        # its own stream from random_state); the weight properties accept
        # hand-set arrays on an unfitted model.
        params, _ = _import_reference().init_params(n, h, SEED, dtype)
        names = ("encoder_weights_", "encoder_bias_", "decoder_weights_",
                 "decoder_bias_")
        try:
            for name, value in zip(names, params):
                setattr(self.model, name, value)
            self.shared_init = True
        except (AttributeError, TypeError, ValueError):
            self.model.set_params(random_state=SEED)  # keep its own init
            self.shared_init = False

    def train(self, Xc):
        self.model.partial_fit(Xc)

    def encode_fn(self, Xe):
        transform = self.model.transform
        return lambda: transform(Xe)


class _TorchModel:
    """Eager PyTorch: nn.Linear encoder/decoder, autograd, optim.SGD."""

    def __init__(self, X, n, h, batch, dtype, threads):
        import torch
        import torch.nn.functional as F
        reference = _import_reference()
        self.torch, self.F = torch, F
        torch.set_num_threads(threads)
        tdt = getattr(torch, dtype)
        self.enc = torch.nn.Linear(n, h, dtype=tdt)
        self.dec = torch.nn.Linear(h, n, dtype=tdt)
        (W, b, Wd, bd), _ = reference.init_params(n, h, SEED, dtype)
        with torch.no_grad():
            for p, v in ((self.enc.weight, W), (self.enc.bias, b),
                         (self.dec.weight, Wd), (self.dec.bias, bd)):
                p.copy_(torch.from_numpy(v))
        self.opt = torch.optim.SGD(
            list(self.enc.parameters()) + list(self.dec.parameters()), lr=LR)
        self.batch = batch
        self.eps = 1e-6 if dtype == "float32" else 1e-12

    def _step(self, x):
        torch = self.torch
        a = torch.sigmoid(self.enc(x))
        y = torch.sigmoid(self.dec(a))
        rho_hat = a.mean(dim=0).clamp(self.eps, 1 - self.eps)
        kl = (RHO * torch.log(RHO / rho_hat)
              + (1 - RHO) * torch.log((1 - RHO) / (1 - rho_hat))).sum()
        loss = (((y - x) ** 2).sum(dim=1).mean()
                + LAM * (self.enc.weight.pow(2).sum()
                         + self.dec.weight.pow(2).sum())
                + BETA * kl)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def train(self, Xc):
        xt = self.torch.from_numpy(Xc)
        B = self.batch
        for start in range(0, xt.shape[0], B):
            self._step(xt[start:start + B])

    def encode_fn(self, Xe):
        torch, F = self.torch, self.F
        xt = torch.from_numpy(Xe)
        W, b = self.enc.weight.detach(), self.enc.bias.detach()

        def run():
            with torch.no_grad():
                return torch.sigmoid(F.linear(xt, W, b))
        return run


def _gemm_rates(X, W, Wd, batch, budget):
    """OpenBLAS GFLOP/s on the training shapes: X W^T alone, and the five
    products of one SGD step (see flops_per_sample), through numpy."""
    import numpy as np
    n, h = X.shape[1], W.shape[0]
    Xb = np.ascontiguousarray(X[:batch])
    A = np.empty((batch, h), X.dtype)
    Y = np.empty((batch, n), X.dtype)
    G = np.empty((batch, h), X.dtype)
    gWd = np.empty((n, h), X.dtype)
    gW = np.empty((h, n), X.dtype)

    def xwt(k):
        for _ in range(k):
            np.matmul(Xb, W.T, out=A)

    def step5(k):
        for _ in range(k):
            np.matmul(Xb, W.T, out=A)
            np.matmul(A, Wd.T, out=Y)
            np.matmul(Y, Wd, out=G)
            np.matmul(Y.T, A, out=gWd)
            np.matmul(G.T, Xb, out=gW)

    Xe = np.ascontiguousarray(X[:ENCODE_BATCH])
    Ae = np.empty((Xe.shape[0], h), X.dtype)

    def xwt_encode(k):
        for _ in range(k):
            np.matmul(Xe, W.T, out=Ae)

    out = {}
    for name, fn, flops in (("gemm_xwt", xwt, 2.0 * batch * n * h),
                            ("gemm_step5", step5, 10.0 * batch * n * h),
                            ("gemm_encode", xwt_encode, 2.0 * Xe.shape[0] * n * h)):
        k, _ = _calibrate(fn, budget["gemm_s"] / 5)
        _, times = _median_time(lambda: fn(k), 7)
        # best of 7: what the BLAS can reach, least hurt by other processes
        out[name + "_gflops"] = flops * k / min(times) / 1e9
    return out


def worker(spec):
    """Measure one library on one case; returns a JSON-able dict."""
    lib, cfg, dtype, threads = (spec["lib"], spec["config"], spec["dtype"],
                                spec["threads"])
    budget = BUDGET_QUICK if spec["quick"] else BUDGET_FULL
    n, h, batch, samples = spec["shape"]
    res = {"lib": lib, "config": cfg, "dtype": dtype, "threads": threads,
           "ok": False}
    if spec.get("kernel_path"):
        res["kernel_path_requested"] = spec["kernel_path"]

    import numpy as np
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:   # the parent set OPENBLAS/OMP_NUM_THREADS instead
        threadpool_info = threadpool_limits = None
    if threadpool_limits is not None:
        _limits = threadpool_limits(threads)  # noqa: F841  (held to the end)

    try:
        if lib == "torch":
            import torch  # noqa: F401  (fail here, not in the model)
            res["torch_version"] = torch.__version__
            res["torch_threads"] = threads
        res["csae_path"] = os.path.dirname(_import_reference().__file__)
        if lib in ("csae", "csae-python"):
            from csae import SparseAutoencoder  # noqa: F401
            if lib == "csae":
                from csae import _engine
                res["kernel_path"] = _engine.get_kernel_path()
                res["kernel_paths"] = _engine.kernel_paths()
    except ImportError as err:
        res["unavailable"] = True
        res["error"] = (f"csae not built ({err})" if lib.startswith("csae")
                        else f"{lib} not importable ({err})")
        return res

    rng = np.random.default_rng(SEED)
    X = rng.random((samples, n)).astype(dtype)

    if lib == "blas":
        # OpenBLAS's GEMM rates alone, with the kernels OPENBLAS_CORETYPE
        # (set by the parent) selects: the same-ISA yardstick of a csae path.
        (W, _, Wd, _), _ = _import_reference().init_params(n, h, SEED, dtype)
        res.update(_gemm_rates(X, W, Wd, batch, budget))
        res["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE")
        info = threadpool_info() if threadpool_info else []
        res["threadpool_info"] = info
        res["blas_architecture"] = next((i.get("architecture") for i in info
                                         if i.get("user_api") == "blas"), None)
        res["ok"] = True
        return res

    if lib == "numpy":
        model = _NumpyModel(X, n, h, batch, dtype, threads)
    elif lib == "torch":
        model = _TorchModel(X, n, h, batch, dtype, threads)
    else:
        model = _CsaeModel(X, n, h, batch, dtype, threads,
                           "c" if lib == "csae" else "python")

    res["shared_init"] = getattr(model, "shared_init", True)
    if spec.get("check"):
        # Same work? Three SGD steps from the shared start, then encode.
        model.train(X[:3 * batch])
        res["check_codes"] = np.asarray(
            model.encode_fn(np.ascontiguousarray(X[:CHECK_ROWS]))(),
            dtype=np.float64).tolist()
        res["ok"] = True
        return res

    # --- training throughput ------------------------------------------------
    steps_max = samples // batch

    def train_steps(k):
        # k steps over consecutive windows of the data (wrapping around)
        done = 0
        while done < k:
            take = min(k - done, steps_max)
            model.train(X[:take * batch])
            done += take

    # First call initialises the model; calibration doubles as warm-up.
    k, t = _calibrate(train_steps, budget["calib_s"], start=2)
    per_step = t / k
    chunk_steps = max(2, int(round(budget["chunk_s"] / per_step)))
    train_steps(chunk_steps)                         # warm-up at full size
    offsets = []
    times = []
    for i in range(budget["chunks"]):
        # each chunk trains on a different window of the data
        rows = min(chunk_steps, steps_max) * batch
        off = (i * rows) % (samples - rows + 1) if rows < samples else 0
        off -= off % batch
        offsets.append(off)
        calls, rem = divmod(chunk_steps, rows // batch)
        Xc = X[off:off + rows]
        Xr = X[off:off + rem * batch]
        t0 = time.perf_counter()
        for _ in range(calls):
            model.train(Xc)
        if rem:
            model.train(Xr)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    res["train_steps_per_chunk"] = chunk_steps
    res["train_chunk_seconds"] = times
    res["train_samples_per_s"] = chunk_steps * batch / med
    fps = flops_per_sample(n, h, batch)
    res["flops_per_sample"] = fps
    res["train_gflops"] = res["train_samples_per_s"] * fps / 1e9

    # --- single-sample encode latency --------------------------------------
    x1 = np.ascontiguousarray(X[:1])
    enc1 = model.encode_fn(x1)

    def enc1_k(k):
        for _ in range(k):
            enc1()
    calls, _ = _calibrate(enc1_k, budget["block_s"])
    per_call = []
    for _ in range(budget["blocks"]):
        t0 = time.perf_counter()
        enc1_k(calls)
        per_call.append((time.perf_counter() - t0) / calls)
    res["encode1_us"] = statistics.median(per_call) * 1e6
    res["encode1_calls_per_block"] = calls

    # --- batch encode throughput -------------------------------------------
    Xe = np.ascontiguousarray(X[:ENCODE_BATCH])
    encb = model.encode_fn(Xe)
    encb()                                            # warm-up
    med, _ = _median_time(encb, budget["encode_reps"])
    res["encode_batch"] = Xe.shape[0]
    res["encode_batch_samples_per_s"] = Xe.shape[0] / med

    # --- what the BLAS reaches on the same shapes (numpy worker only) ------
    if lib == "numpy":
        W, _, Wd, _ = model.params
        res.update(_gemm_rates(X, W, Wd, batch, budget))
        res["threadpool_info"] = (threadpool_info() if threadpool_info
                                  else None)
    res["ok"] = True
    return res


# ---------------------------------------------------------------------------
# Parent side: machine info, subprocesses, table, JSON
# ---------------------------------------------------------------------------

def _cpuinfo():
    info = {"model": platform.processor() or "unknown", "flags": []}
    mhz = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key, val = key.strip(), val.strip()
                if key == "model name":
                    info["model"] = val
                elif key == "cpu family":
                    info["family"] = int(val)
                elif key == "model":
                    info["model_number"] = int(val)
                elif key == "cpu MHz":
                    mhz.append(float(val))
                elif key == "flags" and not info["flags"]:
                    fl = set(val.split())
                    info["flags"] = sorted(fl & {"avx", "avx2", "fma",
                                                 "avx512f"})
    except OSError:
        pass
    info["cpuinfo_mhz"] = max(mhz) if mhz else None
    fl = set(info["flags"])
    info["isa"] = ("AVX-512F" if "avx512f" in fl else
                   "AVX2+FMA" if {"avx2", "fma"} <= fl else
                   "AVX" if "avx" in fl else platform.machine() or "unknown")
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True,
                             timeout=10, env={**os.environ, "LC_ALL": "C"})
        for line in out.stdout.splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "CPU max MHz":
                info["lscpu_max_mhz"] = float(val)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    info["logical_cpus"] = os.cpu_count()
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cpus"] = os.cpu_count()
    return info


def _measure_clock():
    """Run clock.c (built with the system C compiler into a temporary
    directory): effective clock from a dependent imul chain and the
    float32 rate of an AVX2 FMA loop.  None when it cannot be built."""
    import shutil
    import tempfile
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    src = os.path.join(HERE, "clock.c")
    if not cc or not os.path.exists(src):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "clock")
        try:
            subprocess.run([cc, "-O2", src, "-o", exe], check=True,
                           capture_output=True, timeout=60)
            out = subprocess.run([exe], capture_output=True, text=True,
                                 timeout=60, check=True).stdout
            res = {}
            for line in out.strip().splitlines():   # one object per line
                res.update(json.loads(line))
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None
    res.pop("sink", None)
    return res if res.get("ghz") else None


def _clock(args, cpu, measured):
    if args.ghz:
        return args.ghz, "--ghz override"
    if args.clock == "measured" and measured:
        return measured["ghz"], "measured (dependent imul chain, clock.c)"
    if cpu.get("lscpu_max_mhz"):
        return cpu["lscpu_max_mhz"] / 1000, "lscpu 'CPU max MHz'"
    if cpu.get("cpuinfo_mhz"):
        return cpu["cpuinfo_mhz"] / 1000, "/proc/cpuinfo 'cpu MHz'"
    return 2.5, "unknown (assumed 2.5 GHz; pass --ghz)"


def _version(pkg):
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def _csae_pythonpath():
    """Where the workers import csae from: the repo checkout when it holds a
    built engine or no other csae is installed, otherwise the installed one."""
    import glob
    built = glob.glob(os.path.join(REPO, "csae", "_engine*.so")) + \
        glob.glob(os.path.join(REPO, "csae", "_engine*.pyd"))
    if built or importlib.util.find_spec("csae") is None:
        return REPO
    return None


def _busy_cores(interval=0.2):
    """Cores kept busy by other processes, sampled from /proc/stat while
    this benchmark sits idle (None where /proc/stat is missing)."""
    def sample():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals), idle
    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    ncpu = os.cpu_count() or 1
    return ncpu * (1 - (i1 - i0) / max(1, t1 - t0))


def _run_worker(spec, env, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker",
           json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**_ident(spec), "ok": False,
                "error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {**_ident(spec), "ok": False,
            "error": f"worker failed (exit {proc.returncode}): {tail}"}


def _ident(spec):
    return {k: spec[k] for k in ("lib", "config", "dtype", "threads")}


def _fmt_rate(v):
    if v is None:
        return "-"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.3g}{suf}" if v / div < 100 else \
                f"{v / div:.0f}{suf}"
    return f"{v:.3g}"


def _fmt(v, kind):
    if v is None:
        return "-"
    if kind == "rate":
        return _fmt_rate(v)
    if kind == "us":
        return f"{v:.2f}" if v < 100 else f"{v:.0f}"
    if kind == "gflops":
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    if kind == "pct":
        return f"{v:.1f}%"
    return str(v)


# metric key, label, format, better ("high"/"low"/None: no ratio)
METRICS = (
    ("train_samples_per_s", "train samples/s", "rate", "high"),
    ("train_gflops", "train GFLOP/s", "gflops", None),
    ("train_pct_peak", "train % FMA peak", "pct", None),
    ("train_pct_gemm", "train % BLAS X@W.T", "pct", None),
    ("encode1_us", "encode 1 row, us", "us", "low"),
    ("encode_batch_samples_per_s", "encode 4096, samples/s", "rate", "high"),
    ("gemm_xwt_gflops", "BLAS X@W.T GFLOP/s", "gflops", None),
    ("gemm_step5_gflops", "BLAS 5-GEMM step GFLOP/s", "gflops", None),
    ("isa_gemm_xwt_gflops", "same-ISA BLAS X@W.T GFLOP/s", "gflops", None),
    ("isa_gemm_step5_gflops", "same-ISA BLAS 5-GEMM GFLOP/s", "gflops", None),
    ("train_pct_isa_gemm", "train % same-ISA 5-GEMM", "pct", None),
    ("encode_pct_isa_gemm", "encode 4096 % same-ISA GEMM", "pct", None),
)


def build_rows(results, libs, peak_gflops):
    """Table rows (config, dtype, threads, metric) with per-lib values and
    the ratio csae vs best peer (>1 means csae is better)."""
    by_case = {}
    for r in results:
        by_case.setdefault((r["config"], r["dtype"], r["threads"]), {})[
            r["lib"]] = r
    rows = []
    for (cfg, dt, th), libres in by_case.items():
        peak = peak_gflops(dt, th)
        gemm = (libres.get("numpy") or {}).get("gemm_xwt_gflops")
        blas = libres.pop("blas", None) or {}
        for r in libres.values():
            if r.get("ok"):
                r["train_pct_peak"] = 100 * r["train_gflops"] / peak
                r["peak_gflops"] = peak
                if gemm:
                    r["train_pct_gemm"] = 100 * r["train_gflops"] / gemm
        # OpenBLAS with the kernels of the csae path's ISA: its rates go in
        # the numpy column (it is numpy's OpenBLAS), csae's share of them in
        # the csae column.  Both shares are lower bounds of csae's GEMM
        # efficiency: training and encoding also do elementwise work.
        if blas.get("ok"):
            if (libres.get("numpy") or {}).get("ok"):
                libres["numpy"]["isa_gemm_xwt_gflops"] = blas["gemm_xwt_gflops"]
                libres["numpy"]["isa_gemm_step5_gflops"] = blas["gemm_step5_gflops"]
            c = libres.get("csae") or {}
            if c.get("ok"):
                n, h = CONFIGS[cfg][:2]
                c["train_pct_isa_gemm"] = (100 * c["train_gflops"]
                                           / blas["gemm_step5_gflops"])
                c["encode_gflops"] = (c["encode_batch_samples_per_s"] * 2.0 * n * h
                                      / 1e9)
                c["encode_pct_isa_gemm"] = (100 * c["encode_gflops"]
                                            / blas["gemm_encode_gflops"])
        if any(not libres.get(lib, {}).get("ok") for lib in libs):
            status = {}
            for lib in libs:
                r = libres.get(lib, {})
                err = r.get("error", "")
                status[lib] = ("ok" if r.get("ok") else
                               "not built" if "not built" in err else
                               "n/a" if r.get("unavailable") else "FAILED")
            rows.append({"config": cfg, "dtype": dt, "threads": th,
                         "metric": "status", "key": "status", "kind": "text",
                         "values": status, "csae_vs_best_peer": None})
        for key, label, kind, better in METRICS:
            vals = {lib: (libres[lib].get(key) if lib in libres and
                          libres[lib].get("ok") else None) for lib in libs}
            if all(v is None for v in vals.values()):
                continue
            ratio = None
            peers = [vals[p] for p in PEERS if vals.get(p) is not None]
            c = vals.get("csae")
            if better and c and peers:
                ratio = (c / max(peers) if better == "high"
                         else min(peers) / c)
            rows.append({"config": cfg, "dtype": dt, "threads": th,
                         "metric": label, "key": key, "kind": kind,
                         "values": vals, "csae_vs_best_peer": ratio})
    return rows


def print_table(rows, libs, results, out=sys.stdout):
    errors = {}
    for r in results:
        if not r.get("ok"):
            errors.setdefault((r["config"], r["dtype"], r["threads"]),
                              []).append(f"{r['lib']}: {r.get('error')}")
    head = ["config", "dtype", "thr", "metric"] + list(libs) + \
        ["csae/best peer"]
    body = []
    last = None
    for row in rows:
        case = (row["config"], row["dtype"], row["threads"])
        if case != last and last is not None:
            body.append(None)
        last = case
        ratio = row["csae_vs_best_peer"]
        body.append([row["config"], "f" + row["dtype"][5:], str(row["threads"]),
                     row["metric"]]
                    + [_fmt(row["values"][lib], row["kind"]) for lib in libs]
                    + [f"{ratio:.2f}x" if ratio else ""])
    widths = [max(len(h), *(len(b[i]) for b in body if b))
              if body else len(h) for i, h in enumerate(head)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < 4 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(head), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for b in body:
        print("" if b is None else line(b), file=out)
    if errors:
        print("\nnot measured:", file=out)
        seen = set()
        for case, errs in errors.items():
            for e in errs:
                msg = f"  {case[0]} {case[1]} {case[2]}t  {e}"
                if e not in seen or "not built" not in e:
                    print(msg, file=out)
                seen.add(e)


def print_speedups(results, out=sys.stdout):
    """2-thread over 1-thread training speed-up, per library and case."""
    one = {(r["lib"], r["config"], r["dtype"]): r for r in results
           if r.get("ok") and r["threads"] == 1}
    lines = []
    for r in results:
        if r.get("ok") and r["threads"] == 2:
            base = one.get((r["lib"], r["config"], r["dtype"]))
            if base:
                s = r["train_samples_per_s"] / base["train_samples_per_s"]
                r["speedup_2t_over_1t"] = s
                lines.append(f"  {r['config']:3s} {r['dtype']}  "
                             f"{r['lib']:12s} {s:.2f}x")
    if lines:
        print("\ntraining speed-up, 2 threads over 1:", file=out)
        print("\n".join(lines), file=out)


def report_check(results):
    """Compare each library's codes after 3 steps with numpy's."""
    import numpy as np
    # Three steps at lr 0.1 amplify rounding: numpy float32 itself differs
    # from numpy float64 by 3.5e-4 on M; a wrong gradient differs by ~1e-2.
    tol = {"float64": 1e-7, "float32": 5e-3}
    ref = {(r["config"], r["dtype"], r["threads"]): r for r in results
           if r["lib"] == "numpy" and r.get("ok")}
    bad = 0
    print("\nmax |codes - numpy codes| after 3 SGD steps from the same start:")
    for r in results:
        base = ref.get((r["config"], r["dtype"], r["threads"]))
        if r["lib"] == "numpy" or not r.get("ok") or base is None:
            if not r.get("ok"):
                print(f"  {r['config']:3s} {r['dtype']} {r['threads']}t "
                      f"{r['lib']:12s} {r.get('error')}")
            continue
        d = float(np.max(np.abs(np.asarray(r["check_codes"])
                                - np.asarray(base["check_codes"]))))
        ok = d <= tol[r["dtype"]]
        bad += not ok
        print(f"  {r['config']:3s} {r['dtype']} {r['threads']}t "
              f"{r['lib']:12s} {d:.2e}  {'ok' if ok else 'DIFFERS'}")
    failed = [r for r in results if not r.get("ok")
              and not r.get("unavailable")]
    return 1 if bad or failed else 0


def _default_kernel_path(env):
    """The path csae picks in a worker's environment, or "" when csae cannot
    be imported (the csae column then says why)."""
    probe = "import csae._engine as e; print(e.get_kernel_path())"
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                             text=True, env=env, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    name = out.stdout.strip()
    return name if out.returncode == 0 and name in PATH_ISA else ""


def _flop_per_cycle(path, measured):
    """FMA FLOP per cycle per core that the path's instructions can reach:
    AVX2 (and portable, which the compiler vectorises at most that wide)
    16/32; AVX-512 from clock.c's 512-bit FMA loop, rounded to 32 or 64
    FLOP/cycle float32 (one or two 512-bit FMA units)."""
    if path == "avx512" and measured and measured.get("fma512_flop_per_cycle"):
        f32 = 64 if measured["fma512_flop_per_cycle"] > 48 else 32
        return {"float32": f32, "float64": f32 // 2}
    return dict(FLOP_PER_CYCLE)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: S and S1 only, small data, few repeats")
    p.add_argument("--json", metavar="PATH", help="write all results here")
    p.add_argument("--configs", help="comma list of S,M,L,S1 "
                   "(default all; with --quick S,S1)")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--threads", help="comma list (default 1,2 capped at the "
                   "usable cores; with --quick 1)")
    p.add_argument("--libs", default="csae,numpy,torch",
                   help=f"comma list of {','.join(LIBS)}")
    p.add_argument("--ghz", type=float, help="clock for the theoretical "
                   "peak, overriding --clock")
    p.add_argument("--clock", choices=("measured", "reported"),
                   default="measured",
                   help="clock for the theoretical peak: measured by "
                   "benchmarks/clock.c (default; falls back to reported when "
                   "no C compiler), or reported by lscpu max MHz, else "
                   "/proc/cpuinfo 'cpu MHz'")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per worker (default 600, quick 120)")
    p.add_argument("--check", action="store_true",
                   help="no timing: check that every library does the same "
                   "work (3 SGD steps from the same start, then encode; "
                   "compared with numpy)")
    p.add_argument("--kernel-paths",
                   help="comma list of csae kernel paths to measure, each in "
                   "its own table (portable,avx2,avx512: CSAE_KERNEL_PATH in "
                   "the csae worker); default: the path csae picks here")
    p.add_argument("--no-isa-blas", action="store_true",
                   help="skip OpenBLAS's GEMM rate with the kernels of each "
                   "csae path's ISA (OPENBLAS_CORETYPE=Haswell for avx2, "
                   "SkylakeX for avx512)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        res = worker(json.loads(args.worker))
        sys.stdout.write(json.dumps(res) + "\n")
        return 0

    configs = (args.configs or ("S,S1" if args.quick else "S,M,L,S1"))
    configs = [c.strip() for c in configs.split(",") if c.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    libs = [x.strip() for x in args.libs.split(",") if x.strip()]
    cpu = _cpuinfo()
    if args.threads:
        threads = [int(t) for t in args.threads.split(",")]
    else:
        threads = [1] if args.quick else \
            sorted({1, min(2, cpu["usable_cpus"] or 1)})
    for name, allowed, vals in (("config", CONFIGS, configs),
                                ("dtype", DTYPES, dtypes),
                                ("lib", LIBS, libs)):
        bad = [v for v in vals if v not in allowed]
        if bad:
            p.error(f"unknown {name} {bad}; choose from {list(allowed)}")

    measured = _measure_clock() if not args.check else None
    ghz, clock_src = _clock(args, cpu, measured)
    notes = []
    reported = cpu.get("lscpu_max_mhz") or cpu.get("cpuinfo_mhz")
    if measured and reported and abs(measured["ghz"] * 1000 / reported - 1) > 0.05:
        notes.append(f"measured clock {measured['ghz']:.3f} GHz differs from "
                     f"the reported {reported / 1000:.3f} GHz (nominal clock "
                     "under a hypervisor?); peak fractions use "
                     f"{ghz:.3f} GHz ({clock_src})")
    if measured and measured.get("fma32_flop_per_cycle"):
        fpc = measured["fma32_flop_per_cycle"]
        if abs(fpc / FLOP_PER_CYCLE["float32"] - 1) > 0.1:
            notes.append(f"AVX2 FMA loop reached {fpc:.1f} float32 FLOP/cycle,"
                         f" not {FLOP_PER_CYCLE['float32']}: the peak formula "
                         "does not fit this CPU")
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    busy0 = _busy_cores(0.5)
    if busy0 is not None and busy0 > BUSY_WARN:
        notes.append(f"other processes keep {busy0:.1f} cores busy at start:"
                     " numbers (2 threads especially) may be low")
    set_overrides = {k: os.environ[k] for k in OPENBLAS_OVERRIDES
                     if k in os.environ}
    if set_overrides:
        notes.append("environment sets " + ", ".join(
            f"{k}={v}" for k, v in set_overrides.items())
            + ": unset in the numpy worker only (they slow current numpy)")
    if "torch" in libs and importlib.util.find_spec("torch") is None:
        libs.remove("torch")
        notes.append("torch not installed: skipped "
                     "(pip install torch==2.13.0)")
    if importlib.util.find_spec("threadpoolctl") is None:
        notes.append("threadpoolctl not installed (pip install "
                     "threadpoolctl): BLAS threads limited only through "
                     "OPENBLAS_NUM_THREADS/OMP_NUM_THREADS, BLAS kernel "
                     "not reported")

    csae_path = _csae_pythonpath()
    base_env = dict(os.environ)
    if csae_path:
        base_env["PYTHONPATH"] = os.pathsep.join(
            [csae_path] + ([base_env["PYTHONPATH"]]
                           if base_env.get("PYTHONPATH") else []))
    timeout = args.timeout or (120 if args.quick else 600)

    print(f"csae benchmark: {cpu['model']} "
          f"(family {cpu.get('family')} model {cpu.get('model_number')}), "
          f"{cpu['usable_cpus']} cores usable, "
          f"flags {' '.join(cpu['flags'])}")
    print(f"clock {ghz:.3f} GHz from {clock_src}; peak per core "
          f"{ghz * 16:.1f} GFLOP/s float64, {ghz * 32:.1f} float32")
    if measured:
        print(f"measured: clock {measured['ghz']:.3f} GHz, AVX2 FMA loop "
              f"{measured.get('fma32_gflops', float('nan')):.1f} GFLOP/s "
              f"float32 = {measured.get('fma32_flop_per_cycle', float('nan')):.1f}"
              f" FLOP/cycle; reported clock "
              f"{(reported or float('nan')) / 1000:.3f} GHz")
        if measured.get("fma512_gflops"):
            print(f"measured: AVX-512 FMA loop {measured['fma512_gflops']:.1f} "
                  f"GFLOP/s float32 = {measured['fma512_flop_per_cycle']:.1f} "
                  "FLOP/cycle (the avx512 table's peak)")
    print(f"configs {configs}, dtypes {dtypes}, threads {threads}, "
          f"libs {libs}{' (quick)' if args.quick else ''}")
    for note in notes:
        print("note:", note)
    sys.stdout.flush()

    # The csae kernel paths to measure, each in its own table.
    if args.kernel_paths:
        paths = [x.strip() for x in args.kernel_paths.split(",") if x.strip()]
        bad = [x for x in paths if x not in PATH_ISA]
        if bad:
            p.error(f"unknown kernel path {bad}; choose from {list(PATH_ISA)}")
    else:
        paths = [_default_kernel_path(base_env)]
    coretypes = [] if args.no_isa_blas or args.check else \
        sorted({SAME_ISA_CORETYPE[x] for x in paths if x in SAME_ISA_CORETYPE})

    results = []
    t_start = time.time()

    def run(spec, env, label):
        busy = _busy_cores()
        t0 = time.time()
        r = _run_worker(spec, env, timeout)
        r["wall_seconds"] = time.time() - t0
        r["busy_cores_before"] = busy
        results.append(r)
        status = ("ok" if r.get("ok")
                  else "skipped" if r.get("unavailable")
                  else "FAILED")
        print(f"  {spec['config']:3s} {spec['dtype']} {spec['threads']}t "
              f"{label:12s} {status} ({r['wall_seconds']:.1f} s)"
              + ("" if r.get("ok") else f": {r.get('error')}"),
              file=sys.stderr, flush=True)

    for cfg in configs:
        n, h, batch, samples = CONFIGS[cfg]
        if args.quick:
            samples = min(samples, ENCODE_BATCH)
        for dt in dtypes:
            for th in threads:
                base_spec = {"config": cfg, "dtype": dt, "threads": th,
                             "quick": args.quick, "check": args.check,
                             "shape": [n, h, batch, samples]}
                for lib in libs:
                    env = dict(base_env)
                    # numpy's BLAS gets T threads in every worker; csae's
                    # own threads come from n_threads alone
                    env["OPENBLAS_NUM_THREADS"] = str(th)
                    if lib == "numpy":
                        for k in OPENBLAS_OVERRIDES:
                            env.pop(k, None)
                    elif lib == "torch":
                        env["OMP_NUM_THREADS"] = str(th)
                        env["MKL_NUM_THREADS"] = str(th)
                    if lib != "csae":
                        run({**base_spec, "lib": lib}, env, lib)
                        continue
                    for path in paths:
                        if path:
                            env["CSAE_KERNEL_PATH"] = path
                        run({**base_spec, "lib": lib, "kernel_path": path}, env,
                            f"csae[{path}]" if path else lib)
                for coretype in coretypes:
                    env = dict(base_env, OPENBLAS_NUM_THREADS=str(th),
                               OPENBLAS_CORETYPE=coretype)
                    env.pop("OPENBLAS_L2_SIZE", None)
                    run({**base_spec, "lib": "blas", "coretype": coretype}, env,
                        f"blas[{coretype}]")

    if args.check:
        return report_check(results)

    rows = []
    for path in paths:
        per_cycle = _flop_per_cycle(path, measured)

        def peak_gflops(dt, th, per_cycle=per_cycle):
            return ghz * per_cycle[dt] * th
        mine = [r for r in results if r["lib"] not in ("csae", "blas")
                or (r["lib"] == "csae"
                    and (r.get("kernel_path_requested") or "") == path)
                or (r["lib"] == "blas" and r.get("openblas_coretype")
                    == SAME_ISA_CORETYPE.get(path))]
        path_rows = build_rows(mine, libs, peak_gflops)
        for row in path_rows:
            row["kernel_path"] = path
        rows += path_rows
        csae_done = [r for r in mine if r["lib"] == "csae" and r.get("ok")]
        shown = path or (csae_done[0]["kernel_path"] if csae_done else "default")
        isa_blas = sorted({f"{r.get('blas_architecture')}" for r in mine
                           if r["lib"] == "blas" and r.get("ok")})
        print()
        print(f"== {cpu['model']} | CPU ISA {cpu.get('isa')} | csae kernel path "
              f"{shown} ({PATH_ISA.get(shown, '?')}) | peak {per_cycle['float32']} "
              f"float32 FLOP/cycle/core | same-ISA OpenBLAS kernels: "
              f"{', '.join(isa_blas) or 'not measured'} ==")
        print_table(path_rows, libs, mine)
    print_speedups([r for r in results if r["lib"] != "blas"])
    busy = sorted({f"{r['config']} {r['dtype']} {r['threads']}t {r['lib']} "
                   f"({r['busy_cores_before']:.1f})" for r in results
                   if (r.get("busy_cores_before") or 0) > BUSY_WARN})
    if busy:
        notes.append("other processes kept cores busy just before these "
                     "cases (busy cores in brackets): " + ", ".join(busy))
        print(f"\nwarning: other processes used the CPU just before "
              f"{len(busy)} of {len(results)} measurements (see JSON "
              "busy_cores_before); rerun on an idle machine for final numbers")

    blas = next((r["threadpool_info"] for r in results
                 if r.get("threadpool_info")), None)
    if blas:
        kernels = sorted({f"{i.get('internal_api')} {i.get('version')} "
                          f"{i.get('architecture')}" for i in blas
                          if i.get("user_api") == "blas"})
        print("\nnumpy worker BLAS:", "; ".join(kernels) or "none")
    print("ratio = csae / best peer (numpy, torch) for throughput, "
          "best peer / csae for latency: > 1 means csae is faster")
    elapsed = time.time() - t_start
    print(f"total {elapsed:.0f} s")

    if args.json:
        load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        doc = {
            "command": " ".join([os.path.basename(sys.executable)]
                                + sys.argv),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {
                "cpu": cpu, "clock_ghz": ghz, "clock_source": clock_src,
                "clock_measured": measured,
                "flop_per_cycle_per_core": FLOP_PER_CYCLE,
                "platform": platform.platform(),
                "python": platform.python_version(),
                "numpy": _version("numpy"), "torch": _version("torch"),
                "threadpoolctl": _version("threadpoolctl"),
                "numpy_worker_threadpool_info": blas,
                "openblas_env_overrides": set_overrides,
                "load_average_start": load0, "load_average_end": load1,
                "busy_cores_at_start": busy0,
            },
            "settings": {
                "configs": {c: dict(zip(("n_inputs", "n_hidden", "batch",
                                         "samples"), CONFIGS[c]))
                            for c in configs},
                "dtypes": dtypes, "threads": threads, "libs": libs,
                "quick": args.quick,
                "budget": BUDGET_QUICK if args.quick else BUDGET_FULL,
                "hyperparameters": {"rho": RHO, "beta": BETA, "lambda": LAM,
                                    "learning_rate": LR, "momentum": 0.0,
                                    "shuffle": False, "seed": SEED},
                "flops_per_sample": "10*n*h + 8*n*h/batch",
                "peak": "clock_ghz * (16 float64 | 32 float32) * threads",
                "csae_pythonpath": csae_path,
            },
            "notes": notes,
            "results": results,
            "rows": rows,
            "elapsed_seconds": elapsed,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")

    failed = [r for r in results if not r.get("ok")
              and not r.get("unavailable")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
