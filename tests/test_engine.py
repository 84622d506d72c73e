"""The C engine (csae._engine) against the NumPy reference and the mathematics.

Every comparison runs on each kernel path (the ``kernel_path`` fixture), for
float32 and float64 and both decoders, on shapes around likely kernel tiles.

Tolerances
----------
* Forward pass, objective, SGD parameters: ``assert_close`` from conftest,
  i.e. RTOL (float64 1e-10, float32 1e-4) relative to the largest |expected|
  entry of each array.
* Gradients (and the linear decoder's output): RTOL relative to a
  *scale-aware* bound, the largest entry of the same formula evaluated on
  absolute values (for example |D2|^T |X| + 2 lambda |W| for dL/dW, with
  |D2| <= (|D3| |W'| + |s| / m) f'(Z1)).  Sums with cancellation (dL/db' at a
  good fit, say) can be much smaller than their terms, and two correct
  summation orders then differ by eps * sum|terms|, not eps * |sum|.  A
  wrong formula still misses by O(1) of this bound.
* Finite differences (float64): GRADCHECK_TOL (1e-6) relative to the largest
  |finite difference| of each array.
* init_params, permutation, and everything across n_threads or repeated
  runs: bit-identical.
"""

import threading

import numpy as np
import pytest

from conftest import GRADCHECK_TOL, assert_close, engine, random_problem

from csae import reference as ref
from csae._errors import NonFiniteError

eng = engine()

DECODERS = ("sigmoid", "linear")
HYPER = dict(rho=0.05, beta=3.0, lam=1e-3)

# (m, n, h): single rows/features/units, h > n, and sizes on both sides of
# the tile widths a SIMD kernel is likely to use (4, 8, 16, 32, 64, 128).
SHAPES = [
    (1, 1, 1), (1, 5, 3), (5, 1, 3), (4, 3, 1), (3, 2, 9),
    (2, 3, 4), (5, 6, 7), (8, 9, 10), (11, 12, 13), (14, 15, 16), (17, 16, 15),
    (7, 31, 33), (33, 17, 31), (64, 65, 10), (65, 64, 33), (100, 7, 129),
    (129, 100, 31), (3, 129, 65),
]


def shape_id(s):
    return "x".join(map(str, s))


# --------------------------------------------------------------------------
# Problems and comparisons (also used by test_properties.py)
# --------------------------------------------------------------------------

def make_problem(m, n, h, decoder, seed, dtype, bias_scale=0.3):
    """conftest's random_problem with both biases spread by ``bias_scale``."""
    return random_problem(m, n, h, dtype, seed, decoder, bias_scale, bias_scale)


def copy_params(params):
    return None if params is None else tuple(p.copy() for p in params)


def readonly(X):
    X = X.copy()
    X.flags.writeable = False
    return X


def abs_bounds(params, X, rho, beta, lam, decoder):
    """The objective and gradient formulas of MATH.md on absolute values
    (float64): a bound on the terms each result sums, used as the scale of
    the comparison.  Returns (loss, Y, dW, db, dWd, dbd) bounds."""
    W, b, Wd, bd = (np.asarray(p, dtype=np.float64) for p in params)
    X = np.asarray(X, dtype=np.float64)
    m = X.shape[0]
    A = ref.encode(W, b, X)
    Z2 = A @ Wd.T + bd
    Y = ref.sigmoid(Z2) if decoder == "sigmoid" else Z2
    Ybound = A @ np.abs(Wd).T + np.abs(bd) if decoder == "linear" else np.ones_like(Y)
    gprime = Y * (1 - Y) if decoder == "sigmoid" else 1.0
    D3 = (2.0 / m) * (np.abs(Y) + np.abs(X)) * gprime
    eps = ref.rho_hat_clip(np.asarray(params[0]).dtype)
    q = np.clip(A.mean(axis=0), eps, 1 - eps)
    s = beta * (rho / q + (1 - rho) / (1 - q))
    D2 = (D3 @ np.abs(Wd) + s / m) * (A * (1 - A))
    dWd = D3.T @ A + 2 * lam * np.abs(Wd)
    dbd = D3.sum(axis=0)
    dW = D2.T @ np.abs(X) + 2 * lam * np.abs(W)
    db = D2.sum(axis=0)
    kl = beta * np.sum(rho * np.abs(np.log(rho / q))
                       + (1 - rho) * np.abs(np.log((1 - rho) / (1 - q))))
    loss = (np.sum((np.abs(Y) + np.abs(X)) ** 2) / m
            + lam * (np.sum(W * W) + np.sum(Wd * Wd)) + kl)
    return float(loss), Ybound, dW, db, dWd, dbd


def bound_scale(bound, floor=1e-30):
    return max(float(np.max(np.abs(bound), initial=0.0)), floor)


def assert_loss_close(actual, expected, dtype, bound):
    assert isinstance(actual, float), type(actual)
    assert_close(actual, expected, dtype, scale=max(bound, abs(expected), 1e-30))


def assert_grads_close(actual, expected, dtype, bounds):
    """Gradients: shapes and dtype, then RTOL relative to the scale-aware
    bound of each array (see the module docstring)."""
    assert actual is not None and len(actual) == 4
    for name, a, e, bnd in zip(("dW", "db", "dWd", "dbd"), actual, expected, bounds):
        assert isinstance(a, np.ndarray), name
        assert a.dtype == dtype, (name, a.dtype)
        assert a.shape == e.shape, (name, a.shape, e.shape)
        assert np.all(np.isfinite(a)), name
        try:
            assert_close(a, e, dtype, scale=max(bound_scale(bnd), bound_scale(e)))
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from None


def assert_params_close(actual, expected, dtype):
    """Parameters (or velocities) after training: RTOL relative to the
    largest entry of the whole parameter set.  The four arrays are one
    vector to the solver; a bias that started at 0 and moved by a sum of
    cancelling terms (-4e-6 from terms of 1e-1, say) has no scale of its own,
    and float32 rounding of those terms is far above 1e-4 of it."""
    scale = max(max(float(np.max(np.abs(np.asarray(e, np.float64)), initial=0.0))
                    for e in expected), 1e-30)
    for name, a, e in zip(("W", "b", "Wd", "bd"), actual, expected):
        assert a.dtype == dtype and a.shape == e.shape, name
        try:
            assert_close(a, e, dtype, scale=scale)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from None


def assert_params_equal(actual, expected):
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)
        assert a.dtype == e.dtype


def engine_vs_reference_objective(params, X, dtype, decoder, rho, beta, lam):
    """Objective and gradients from both backends, compared."""
    kw = dict(rho=rho, beta=beta, lam=lam, decoder=decoder)
    Xr = readonly(X)
    L, g = eng.objective_and_gradients(params, Xr, **kw)
    Lr, gr = ref.objective_and_gradients(params, X, **kw)
    bnd = abs_bounds(params, X, **kw)
    assert_loss_close(L, Lr, dtype, bnd[0])
    assert_grads_close(g, gr, dtype, bnd[2:])
    np.testing.assert_array_equal(Xr, X)
    return L, g


# --------------------------------------------------------------------------
# Module surface
# --------------------------------------------------------------------------

def test_kernel_paths_surface():
    paths = eng.kernel_paths()
    assert "portable" in paths
    assert eng.get_kernel_path() in paths
    before = eng.get_kernel_path()
    try:
        for p in paths:
            eng.set_kernel_path(p)
            assert eng.get_kernel_path() == p
    finally:
        eng.set_kernel_path(before)
    with pytest.raises(ValueError):
        eng.set_kernel_path("no-such-path")
    assert eng.get_kernel_path() == before


# --------------------------------------------------------------------------
# Engine vs reference on many shapes
# --------------------------------------------------------------------------

@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward(kernel_path, dtype, decoder, shape):
    m, n, h = shape
    params, X = make_problem(m, n, h, decoder, seed=m * 1000 + n * 10 + h, dtype=dtype)
    W, b, Wd, bd = params
    Xr = readonly(X)
    A = eng.encode(W, b, Xr)
    Ar = ref.encode(W, b, X)
    assert A.dtype == dtype and A.shape == (m, h)
    assert_close(A, Ar, dtype)
    Y = eng.decode(Wd, bd, readonly(Ar), decoder)
    Yr = ref.decode(Wd, bd, Ar, decoder)
    Ybound = abs_bounds(params, X, decoder=decoder, **HYPER)[1]
    assert Y.dtype == dtype and Y.shape == (m, n)
    assert_close(Y, Yr, dtype, scale=max(bound_scale(Ybound), bound_scale(Yr)))
    R = eng.reconstruct(params, Xr, decoder)
    assert R.dtype == dtype and R.shape == (m, n)
    assert_close(R, ref.reconstruct(params, X, decoder), dtype,
                 scale=max(bound_scale(Ybound), bound_scale(Yr)))
    np.testing.assert_array_equal(Xr, X)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_objective_and_gradients(kernel_path, dtype, decoder, shape):
    m, n, h = shape
    params, X = make_problem(m, n, h, decoder, seed=m * 1000 + n * 10 + h + 1, dtype=dtype)
    L, _ = engine_vs_reference_objective(params, X, dtype, decoder, **HYPER)
    L2 = eng.objective(params, readonly(X), decoder=decoder, **HYPER)
    assert isinstance(L2, float)
    assert_close(L2, L, dtype)
    L3, none = eng.objective_and_gradients(params, X, decoder=decoder, need_gradients=False,
                                           **HYPER)
    assert none is None
    assert_close(L3, L, dtype)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("rho,beta,lam", [(0.1, 0.0, 0.0), (0.3, 5.0, 0.0), (0.01, 0.5, 1e-2)])
def test_objective_hyperparameter_terms(kernel_path, dtype, decoder, rho, beta, lam):
    params, X = make_problem(13, 9, 17, decoder, seed=77, dtype=dtype)
    engine_vs_reference_objective(params, X, dtype, decoder, rho, beta, lam)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 9), (17, 16, 15), (65, 64, 33),
                                   (100, 7, 129)], ids=shape_id)
def test_sgd_step(kernel_path, dtype, decoder, momentum, shape):
    m, n, h = shape
    params, X = make_problem(m, n, h, decoder, seed=m + n + h, dtype=dtype)
    rng = np.random.default_rng(5)
    velocity = (tuple(rng.normal(0, 0.01, p.shape).astype(dtype) for p in params)
                if momentum else None)
    p_ref, v_ref = copy_params(params), copy_params(velocity)
    ids = [id(p) for p in params]
    lr = 0.1 if decoder == "sigmoid" else 0.01
    Xr = readonly(X)
    for _ in range(3):
        L = eng.sgd_step(params, velocity, Xr, decoder=decoder, learning_rate=lr,
                         momentum=momentum, **HYPER)
        Lr = ref.sgd_step(p_ref, v_ref, X, decoder=decoder, learning_rate=lr,
                          momentum=momentum, **HYPER)
        assert isinstance(L, float)
        assert_close(L, Lr, dtype)
    assert [id(p) for p in params] == ids  # updated in place
    assert_params_close(params, p_ref, dtype)
    if momentum:
        assert_params_close(velocity, v_ref, dtype)
    np.testing.assert_array_equal(Xr, X)


def assert_epochs_match_reference(params, velocity, X, dtype, rng_state, epochs=3, **kw):
    """Train params and velocity in place with the engine (X read-only) and
    copies with the reference, epochs epochs from one rng_state: every
    epoch's loss and next rng state agree, and so do the parameters and
    velocities at the end; X is unchanged.  Returns the last rng state."""
    p_ref, v_ref = copy_params(params), copy_params(velocity)
    Xr = readonly(X)
    state = state_ref = rng_state
    for _ in range(epochs):
        L, state = eng.sgd_epoch(params, velocity, Xr, rng_state=state, **kw)
        Lr, state_ref = ref.sgd_epoch(p_ref, v_ref, X, rng_state=state_ref, **kw)
        assert int(state) == state_ref
        assert isinstance(L, float)
        assert_close(L, Lr, dtype)
    assert_params_close(params, p_ref, dtype)
    if velocity is not None:
        assert_params_close(velocity, v_ref, dtype)
    np.testing.assert_array_equal(Xr, X)
    return state


EPOCH_CASES = [
    # (m, n, h, batch_size)
    (1, 1, 1, 1), (1, 3, 2, 5), (5, 1, 3, 2), (4, 3, 1, 4), (3, 2, 9, 10),
    (17, 16, 15, 1), (33, 17, 31, 8), (65, 64, 33, 16), (64, 65, 10, 64),
    (100, 7, 129, 7), (129, 100, 31, 32), (31, 33, 17, 1000),
]


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("case", EPOCH_CASES, ids=shape_id)
def test_sgd_epoch(kernel_path, dtype, decoder, shuffle, case):
    m, n, h, batch_size = case
    params, X = make_problem(m, n, h, decoder, seed=m * 7 + n * 3 + h, dtype=dtype)
    momentum = 0.5 if (m + n) % 2 else 0.0
    velocity = tuple(np.zeros_like(p) for p in params) if momentum else None
    kw = dict(decoder=decoder, learning_rate=0.1 if decoder == "sigmoid" else 0.01,
              momentum=momentum, batch_size=batch_size, shuffle=shuffle, **HYPER)
    state = assert_epochs_match_reference(params, velocity, X, dtype, 0xDEADBEEF12345678, **kw)
    if not shuffle:
        assert state == 0xDEADBEEF12345678


# --------------------------------------------------------------------------
# Finite differences of the engine's own objective
# --------------------------------------------------------------------------

def engine_finite_differences(params, X, kw, step=1e-5):
    params = copy_params(params)
    out = []
    for p in params:
        g = np.empty_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + step
            up = eng.objective(params, X, **kw)
            flat[i] = old - step
            down = eng.objective(params, X, **kw)
            flat[i] = old
            gflat[i] = (up - down) / (2 * step)
        out.append(g)
    return out


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("shape,rho,beta,lam", [
    ((6, 5, 4), 0.1, 3.0, 1e-2),
    ((1, 1, 1), 0.2, 1.0, 1e-3),
    ((5, 3, 7), 0.05, 0.0, 0.0),
    ((9, 17, 3), 0.3, 2.0, 0.05),
])
def test_engine_gradients_match_finite_differences(kernel_path, decoder, shape, rho, beta, lam):
    m, n, h = shape
    params, X = make_problem(m, n, h, decoder, seed=sum(shape), dtype=np.float64, bias_scale=0.8)
    kw = dict(rho=rho, beta=beta, lam=lam, decoder=decoder)
    _, grads = eng.objective_and_gradients(params, X, **kw)
    fd = engine_finite_differences(params, X, kw)
    for name, g, f in zip(("dW", "db", "dWd", "dbd"), grads, fd):
        err = float(np.max(np.abs(g - f))) / max(float(np.max(np.abs(f))), 1e-12)
        assert err <= GRADCHECK_TOL[np.float64], f"{name}: {err:.3g}"


# --------------------------------------------------------------------------
# Randomness: bit-identical to the reference
# --------------------------------------------------------------------------

@pytest.mark.parametrize("n,h", [(1, 1), (3, 5), (17, 16), (64, 100), (129, 33)])
@pytest.mark.parametrize("seed", [0, 1, 1234567, 2 ** 64 - 1])
def test_init_params_bit_identical(dtype, n, h, seed):
    params, state = eng.init_params(n, h, seed, dtype)
    params_ref, state_ref = ref.init_params(n, h, seed, dtype)
    assert int(state) == state_ref
    assert_params_equal(params, params_ref)
    for p in params:
        assert p.flags.c_contiguous and p.flags.writeable


@pytest.mark.parametrize("m", [0, 1, 2, 3, 16, 17, 1000])
@pytest.mark.parametrize("seed", [0, 42, 1234567, 2 ** 64 - 1])
def test_permutation_bit_identical(m, seed):
    order, state = eng.permutation(m, seed)
    order_ref, state_ref = ref.permutation(m, seed)
    assert int(state) == state_ref
    order = np.asarray(order)
    assert order.shape == (m,) and np.issubdtype(order.dtype, np.integer)
    assert order.tolist() == order_ref.tolist()


# --------------------------------------------------------------------------
# Threads and determinism
# --------------------------------------------------------------------------

# Large enough that every product (and each minibatch of 333 rows) is well
# above any plausible single-thread cut-off (the engine's is 2^20
# multiply-adds), with odd sizes so that thread splits end mid-tile; the
# last minibatch (1001 = 3 * 333 + 2) is tiny.
THREAD_SHAPE = (1001, 97, 65)
THREAD_BATCH = 333


def _run_everything(dtype, decoder, n_threads):
    m, n, h = THREAD_SHAPE
    params, X = make_problem(m, n, h, decoder, seed=3, dtype=dtype)
    W, b, Wd, bd = params
    X = readonly(X)
    kw = dict(decoder=decoder, **HYPER)
    out = {"A": eng.encode(W, b, X, n_threads=n_threads)}
    out["Y"] = eng.decode(Wd, bd, out["A"], decoder, n_threads=n_threads)
    out["R"] = eng.reconstruct(params, X, decoder, n_threads=n_threads)
    out["L"] = eng.objective(params, X, n_threads=n_threads, **kw)
    out["L2"], out["grads"] = eng.objective_and_gradients(params, X, n_threads=n_threads, **kw)
    velocity = tuple(np.zeros_like(p) for p in params)
    p = copy_params(params)
    out["step"] = eng.sgd_step(p, velocity, X, learning_rate=0.05, momentum=0.9,
                               n_threads=n_threads, **kw)
    state = 99
    for _ in range(2):
        loss, state = eng.sgd_epoch(p, velocity, X, learning_rate=0.05, momentum=0.9,
                                    batch_size=THREAD_BATCH, shuffle=True, rng_state=state,
                                    n_threads=n_threads, **kw)
    out["epoch"] = (loss, int(state))
    out["params"], out["velocity"] = p, velocity
    return out


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, tuple) and x and isinstance(x[0], np.ndarray):
            for u, v in zip(x, y):
                np.testing.assert_array_equal(u, v, err_msg=k)
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=k)
        else:
            assert x == y, k


@pytest.mark.parametrize("decoder", DECODERS)
def test_bit_identical_across_threads_and_runs(kernel_path, dtype, decoder):
    one = _run_everything(dtype, decoder, 1)
    _assert_identical(one, _run_everything(dtype, decoder, 1))
    two = _run_everything(dtype, decoder, 2)
    _assert_identical(one, two)
    _assert_identical(one, _run_everything(dtype, decoder, 3))


def test_default_is_one_thread_and_bad_thread_counts_rejected():
    params, X = make_problem(20, 5, 4, "sigmoid", seed=1, dtype=np.float64)
    L1 = eng.objective(params, X, n_threads=1, **HYPER)
    assert eng.objective(params, X, **HYPER) == L1
    for bad in (0, -1):
        with pytest.raises(ValueError):
            eng.objective(params, X, n_threads=bad, **HYPER)
        with pytest.raises(ValueError):
            eng.encode(params[0], params[1], X, n_threads=bad)
    for bad in ("2", 2.5, None):
        with pytest.raises((TypeError, ValueError)):
            eng.objective(params, X, n_threads=bad, **HYPER)


_HUGE_SCRIPT = r"""
import sys
import numpy as np
from csae import _engine as eng, reference as ref
params, _ = ref.init_params(3, 2, 1)
X = np.linspace(0, 1, 12).reshape(4, 3)
expected = ref.objective(params, X, rho=0.1, beta=1.0, lam=0.0)
ok = (ValueError, MemoryError, OverflowError)
for nt in (1000, 10 ** 6, 2 ** 32, 2 ** 62, 2 ** 63, 2 ** 64 - 1):
    try:
        got = eng.objective(params, X, rho=0.1, beta=1.0, lam=0.0, n_threads=nt)
        assert abs(got - expected) <= 1e-12 * expected, (nt, got)
        print("threads", nt, "ran", flush=True)
    except ok as e:
        print("threads", nt, type(e).__name__, flush=True)
for n, h in ((2 ** 40, 2 ** 40), (2 ** 62, 3), (1, 2 ** 63)):
    try:
        eng.init_params(n, h, 0)
        print("init", n, h, "ran", flush=True)
    except ok as e:
        print("init", n, h, type(e).__name__, flush=True)
try:
    eng.permutation(2 ** 62, 0)
    print("permutation ran", flush=True)
except ok as e:
    print("permutation", type(e).__name__, flush=True)
import gc; gc.collect()
print("done", flush=True)
"""


def test_huge_sizes_never_crash():
    """Absurd thread counts and sizes: a result or ValueError/MemoryError/
    OverflowError, and the interpreter survives (run in a subprocess so a
    heap overflow shows up as a non-zero exit instead of killing pytest)."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", _HUGE_SCRIPT], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("done"), (
        f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-2000:]}")


def test_concurrent_calls_from_python_threads(dtype):
    """Eight Python threads share one read-only X and call the engine at
    once; every result equals the serial one."""
    problems = [make_problem(200, 40, 30, "sigmoid", seed=s, dtype=dtype) for s in range(8)]
    X = readonly(problems[0][1])
    serial = [eng.objective_and_gradients(p, X, **HYPER) for p, _ in problems]
    results = [None] * len(problems)
    errors = []

    def work(i):
        try:
            for _ in range(5):
                results[i] = eng.objective_and_gradients(problems[i][0], X, **HYPER)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (L, g), (Ls, gs) in zip(results, serial):
        assert L == Ls
        for u, v in zip(g, gs):
            np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------------------
# Non-finite training
# --------------------------------------------------------------------------

def _overflowing_problem(dtype):
    """Linear decoder, X ~ 5 N(0, 1): some |gradient| > 3.5, so lr * g
    overflows for lr = 1e308 (float64) or 1e38 (float32)."""
    params, X = make_problem(6, 3, 2, "linear", seed=33, dtype=dtype)
    X = (X * 5).astype(dtype)
    kw = dict(HYPER, decoder="linear")
    _, g = ref.objective_and_gradients(params, X, **kw)
    assert max(float(np.max(np.abs(gi))) for gi in g) > 3.5
    lr = 1e308 if dtype == np.float64 else 1e38
    return params, X, kw, lr


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_sgd_step_nonfinite_update_is_not_applied(kernel_path, dtype, momentum):
    params, X, kw, lr = _overflowing_problem(dtype)
    velocity = tuple(np.full_like(p, 0.01) for p in params) if momentum else None
    before, vbefore = copy_params(params), copy_params(velocity)
    with pytest.raises(NonFiniteError):
        eng.sgd_step(params, velocity, X, learning_rate=lr, momentum=momentum, **kw)
    assert_params_equal(params, before)
    if momentum:
        assert_params_equal(velocity, vbefore)


def test_sgd_step_nan_data(kernel_path, dtype):
    params, X = make_problem(5, 4, 3, "linear", seed=2, dtype=dtype)
    X[3, 2] = np.nan
    before = copy_params(params)
    with pytest.raises(NonFiniteError):
        eng.sgd_step(params, None, X, decoder="linear", learning_rate=0.1, **HYPER)
    assert_params_equal(params, before)


@pytest.mark.parametrize("shuffle", [False, True])
def test_sgd_epoch_nonfinite_like_reference(kernel_path, shuffle):
    """float64, lr = 1e300, lambda > 0: batch 0 leaves finite weights of
    size ~1e300, batch 1 overflows.  The engine stops at the same batch with
    the weights after batch 0, as the reference does."""
    params, X = make_problem(9, 3, 2, "linear", seed=52, dtype=np.float64)
    kw = dict(rho=0.1, beta=1.0, lam=1e-2, decoder="linear", learning_rate=1e300,
              batch_size=3, shuffle=shuffle, rng_state=7)
    p_ref = copy_params(params)
    with pytest.raises(NonFiniteError) as info_ref, np.errstate(over="ignore", invalid="ignore"):
        ref.sgd_epoch(p_ref, None, X, **kw)
    assert info_ref.value.batch == 1
    with pytest.raises(NonFiniteError) as info:
        eng.sgd_epoch(params, None, X, **kw)
    assert info.value.batch == info_ref.value.batch
    assert all(np.all(np.isfinite(p)) for p in params)
    assert float(np.max(np.abs(params[0]))) > 1e200  # batch 0 was applied
    assert_params_close(params, p_ref, np.float64)


def test_sgd_epoch_nonfinite_first_batch(kernel_path, dtype):
    params, X, kw, lr = _overflowing_problem(dtype)
    before = copy_params(params)
    with pytest.raises(NonFiniteError) as info:
        eng.sgd_epoch(params, None, X, learning_rate=lr, batch_size=X.shape[0], **kw)
    assert info.value.batch == 0
    assert_params_equal(params, before)


# --------------------------------------------------------------------------
# Saturation and degenerate data
# --------------------------------------------------------------------------

def _saturation_cases(dtype):
    m, n, h = 6, 5, 4
    big = 60.0 if dtype == np.float64 else 30.0  # sigmoid(big) == 1 exactly
    params, X = make_problem(m, n, h, "sigmoid", seed=9, dtype=dtype)
    yield "all zeros", params, np.zeros((m, n), dtype)
    yield "all ones", params, np.ones((m, n), dtype)
    yield "single sample", params, X[:1].copy()
    Xc = np.tile(X[:1], (m, 1)); Xc[:, 2] = 0.25
    yield "constant features", params, np.ascontiguousarray(Xc)
    W, b, Wd, bd = (p.copy() for p in params)
    yield "units saturated at 1", (W, np.full(h, big, dtype), Wd, bd), X
    yield "units saturated at 0", (W, np.full(h, -big, dtype), Wd, bd), X
    W2 = np.full((h, n), 50.0, dtype)
    yield "huge weights", (W2, b.copy(), np.full((n, h), 50.0, dtype), bd.copy()), X


def test_float32_clip_is_applied_in_float32(kernel_path):
    """Units saturated at 1 in float32: the clip bound is float32(1 - 1e-6)
    = 1 - 1.0132e-6, as in the reference.  Clipping in double (1 - 1e-6)
    would change this objective by ~1e-3 relative; see test_reference.py."""
    rho, beta, h = 0.05, 3.0, 4
    params = (np.zeros((h, 3), np.float32), np.full(h, 30.0, np.float32),
              np.zeros((3, h), np.float32), np.zeros(3, np.float32))
    X = np.full((2, 3), 0.5, np.float32)
    q = float(np.float32(1 - 1e-6))
    expected = beta * h * (rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q)))
    for decoder in DECODERS:
        Xd = X if decoder == "sigmoid" else np.zeros_like(X)  # zero reconstruction error
        L, g = eng.objective_and_gradients(params, Xd, rho=rho, beta=beta, lam=0.0,
                                           decoder=decoder)
        assert_close(L, expected, np.float32)
        assert all(np.all(np.isfinite(gi)) for gi in g)


@pytest.mark.parametrize("decoder", DECODERS)
def test_saturation_stays_finite(kernel_path, dtype, decoder):
    for name, params, X in _saturation_cases(dtype):
        kw = dict(rho=0.05, beta=3.0, lam=1e-3, decoder=decoder)
        L, g = eng.objective_and_gradients(params, X, **kw)
        assert np.isfinite(L), name
        assert all(np.all(np.isfinite(gi)) for gi in g), name
        Lr, gr = ref.objective_and_gradients(params, X, **kw)
        bnd = abs_bounds(params, X, **kw)
        assert_loss_close(L, Lr, dtype, bnd[0])
        assert_grads_close(g, gr, dtype, bnd[2:])
        p, p_ref = copy_params(params), copy_params(params)
        eng.sgd_epoch(p, None, X, learning_rate=0.01, batch_size=2, **kw)
        ref.sgd_epoch(p_ref, None, X, learning_rate=0.01, batch_size=2, **kw)
        assert_params_close(p, p_ref, dtype)


# --------------------------------------------------------------------------
# Bad input: a clear exception, never a crash, never a write to the input
# --------------------------------------------------------------------------

def _all_calls(params, X, velocity=None, **over):
    """Every entry point with ``params``/``X`` substituted; yields
    (name, thunk)."""
    W, b, Wd, bd = params
    hyper = dict(HYPER, decoder="sigmoid")
    hyper.update(over)
    sgd = dict(learning_rate=0.1, momentum=0.0)
    yield "encode", lambda: eng.encode(W, b, X)
    yield "reconstruct", lambda: eng.reconstruct(params, X, hyper["decoder"])
    yield "objective", lambda: eng.objective(params, X, **hyper)
    yield "objective_and_gradients", lambda: eng.objective_and_gradients(params, X, **hyper)
    yield "sgd_step", lambda: eng.sgd_step(params, velocity, X, **hyper, **sgd)
    yield "sgd_epoch", lambda: eng.sgd_epoch(params, velocity, X, batch_size=2, **hyper, **sgd)


DECODER_SIDE = ("reconstruct", "objective", "objective_and_gradients", "sgd_step", "sgd_epoch")


def _must_raise(params, X, exc=(TypeError, ValueError), names=None, **over):
    """Every call in ``names`` (default: all) raises ``exc`` and leaves the
    parameters untouched.  encode sees only W, b and X: pass
    names=DECODER_SIDE when the fault is in Wd or bd."""
    for name, call in _all_calls(params, X, **over):
        if names is not None and name not in names:
            continue
        before = copy_params(params) if all(isinstance(p, np.ndarray) for p in params) else None
        with pytest.raises(exc):
            call()
            pytest.fail(f"{name} accepted the input")  # pragma: no cover
        if before is not None:
            for p, q in zip(params, before):
                np.testing.assert_array_equal(p, q, err_msg=name)


@pytest.mark.parametrize("bad", [np.int64, np.int32, np.float16, np.complex128, object, np.bool_])
def test_wrong_dtype_raises(dtype, bad):
    params, X = make_problem(4, 3, 2, "sigmoid", seed=1, dtype=dtype)
    Xbad = X.astype(bad)
    _must_raise(params, Xbad)
    for i in range(4):
        pbad = list(params)
        pbad[i] = pbad[i].astype(bad)
        _must_raise(tuple(pbad), X, names=None if i < 2 else DECODER_SIDE)
    with pytest.raises((TypeError, ValueError)):
        eng.decode(params[2].astype(bad), params[3], ref.encode(params[0], params[1], X))


def test_mixed_dtypes_raise():
    p64, X64 = make_problem(4, 3, 2, "sigmoid", seed=1, dtype=np.float64)
    p32 = tuple(p.astype(np.float32) for p in p64)
    X32 = X64.astype(np.float32)
    _must_raise(p64, X32)
    _must_raise(p32, X64)
    for i in range(4):
        mixed = list(p64)
        mixed[i] = p32[i]
        _must_raise(tuple(mixed), X64, names=None if i < 2 else DECODER_SIDE)
    velocity = tuple(np.zeros_like(p) for p in p32)
    with pytest.raises((TypeError, ValueError)):
        eng.sgd_step(p64, velocity, X64, learning_rate=0.1, momentum=0.5, **HYPER)
    A = ref.encode(p64[0], p64[1], X64)
    with pytest.raises((TypeError, ValueError)):
        eng.decode(p32[2], p32[3], A)
    with pytest.raises((TypeError, ValueError)):
        eng.encode(p32[0], p64[1], X32)


def test_shape_mismatches_raise(dtype):
    (W, b, Wd, bd), X = make_problem(5, 4, 3, "sigmoid", seed=1, dtype=dtype)
    rng = np.random.default_rng(0)

    def arr(*shape):
        return rng.uniform(0, 1, shape).astype(dtype)

    _must_raise((W, b, Wd, bd), arr(5, 5))                  # X has n + 1 columns
    _must_raise((W, arr(4), Wd, bd), X)                     # b of length h + 1
    _must_raise((W, b, arr(3, 4), bd), X, names=DECODER_SIDE)   # Wd transposed
    _must_raise((W, b, Wd, arr(3)), X, names=DECODER_SIDE)      # bd of length h
    _must_raise((arr(3, 5), b, Wd, bd), X)                  # W with n + 1 columns
    _must_raise((W, b, Wd, bd), X[0].copy())                # 1-d X
    _must_raise((W, b, Wd, bd), X[None].copy())             # 3-d X
    _must_raise((W, b, Wd, bd), np.array(0.5, dtype))       # 0-d X
    _must_raise((W.ravel().copy(), b, Wd, bd), X)           # 1-d W
    _must_raise((W, b[:, None].copy(), Wd, bd), X)          # 2-d b
    with pytest.raises((TypeError, ValueError)):
        eng.decode(Wd, bd, arr(5, 4))                       # A with h + 1 columns
    with pytest.raises((TypeError, ValueError)):
        eng.decode(Wd, arr(3), arr(5, 3))                   # bd of length h, not n
    params = (W, b, Wd, bd)
    bad_velocity = (arr(3, 4), arr(3), arr(3, 4), arr(4))  # Wd velocity transposed
    with pytest.raises((TypeError, ValueError)):
        eng.sgd_step(params, bad_velocity, X, learning_rate=0.1, momentum=0.5, **HYPER)
    with pytest.raises((TypeError, ValueError)):
        eng.sgd_epoch(params, bad_velocity, X, learning_rate=0.1, momentum=0.5,
                      batch_size=2, **HYPER)


def test_wrong_containers_raise(dtype):
    params, X = make_problem(4, 3, 2, "sigmoid", seed=1, dtype=dtype)
    _must_raise(params, None)
    _must_raise(params, "X")
    for bad in (params[:3], params + (params[3],), None, 3.0):
        calls = [
            lambda: eng.reconstruct(bad, X),
            lambda: eng.objective(bad, X, **HYPER),
            lambda: eng.objective_and_gradients(bad, X, **HYPER),
            lambda: eng.sgd_step(bad, None, X, learning_rate=0.1, **HYPER),
            lambda: eng.sgd_epoch(bad, None, X, learning_rate=0.1, batch_size=2, **HYPER),
        ]
        for call in calls:
            with pytest.raises((TypeError, ValueError)):
                call()
    # Momentum needs a velocity.
    with pytest.raises((TypeError, ValueError)):
        eng.sgd_step(params, None, X, learning_rate=0.1, momentum=0.5, **HYPER)
    with pytest.raises((TypeError, ValueError)):
        eng.sgd_epoch(params, None, X, learning_rate=0.1, momentum=0.5, batch_size=2, **HYPER)
    velocity = tuple(np.zeros_like(p) for p in params)
    with pytest.raises((TypeError, ValueError)):
        eng.sgd_step(params, velocity[:3], X, learning_rate=0.1, momentum=0.5, **HYPER)


@pytest.mark.parametrize("name,value", [
    ("rho", 0.0), ("rho", 1.0), ("rho", -0.1), ("rho", 1.5), ("rho", float("nan")),
    ("beta", -1.0), ("beta", float("nan")), ("lam", -1e-3), ("lam", float("nan")),
    ("decoder", "tanh"), ("decoder", None),
    ("learning_rate", 0.0), ("learning_rate", -0.1), ("learning_rate", float("nan")),
    ("momentum", -0.1), ("momentum", 1.0), ("momentum", float("nan")),
    ("batch_size", 0), ("batch_size", -3),
])
def test_bad_hyperparameters_raise(name, value):
    params, X = make_problem(6, 3, 2, "sigmoid", seed=1, dtype=np.float64)
    velocity = tuple(np.zeros_like(p) for p in params)
    kw = dict(HYPER, decoder="sigmoid", learning_rate=0.1, momentum=0.5, batch_size=2)
    kw[name] = value
    before = copy_params(params)
    obj_kw = {k: kw[k] for k in ("rho", "beta", "lam", "decoder")}
    step_kw = {k: v for k, v in kw.items() if k != "batch_size"}
    calls = {
        "sgd_epoch": lambda: eng.sgd_epoch(params, velocity, X, **kw),
        "sgd_step": lambda: eng.sgd_step(params, velocity, X, **step_kw),
        "objective": lambda: eng.objective(params, X, **obj_kw),
        "objective_and_gradients": lambda: eng.objective_and_gradients(params, X, **obj_kw),
    }
    relevant = ["sgd_epoch"] if name == "batch_size" else (
        ["sgd_epoch", "sgd_step"] if name in ("learning_rate", "momentum") else list(calls))
    for call in relevant:
        with pytest.raises((TypeError, ValueError)):
            calls[call]()
            pytest.fail(f"{call} accepted {name}={value!r}")  # pragma: no cover
    assert_params_equal(params, before)
    if name == "decoder":
        with pytest.raises((TypeError, ValueError)):
            eng.reconstruct(params, X, value)
        with pytest.raises((TypeError, ValueError)):
            eng.decode(params[2], params[3], ref.encode(params[0], params[1], X), value)


def test_zero_rows(dtype):
    params, X = make_problem(4, 3, 2, "sigmoid", seed=1, dtype=dtype)
    X0 = X[:0].copy()
    # The objective of an empty batch is undefined: it must be refused.
    _must_raise(params, X0, names=("objective", "objective_and_gradients", "sgd_step",
                                   "sgd_epoch"))
    # Forward on zero rows: an empty result or a clear error, both fine.
    try:
        A = eng.encode(params[0], params[1], X0)
    except (TypeError, ValueError):
        pass
    else:
        assert A.shape == (0, 2) and A.dtype == dtype


def _raises_or_correct(call, expected, dtype):
    """Unusual but meaningful input: either a clear TypeError/ValueError or
    the right answer."""
    try:
        out = call()
    except (TypeError, ValueError):
        return "raised"
    assert_close(out, expected, dtype)
    return "accepted"


def test_noncontiguous_and_foreign_layouts(dtype):
    params, X = make_problem(6, 8, 3, "sigmoid", seed=1, dtype=dtype)
    W, b, Wd, bd = params
    wide = np.ascontiguousarray(np.repeat(X, 2, axis=1))
    strided = wide[:, ::2]                              # non-contiguous view of X
    assert not strided.flags.c_contiguous and np.array_equal(strided, X)
    fortran = np.asfortranarray(X)
    big_endian = X.astype(np.dtype(dtype).newbyteorder(">"))
    expected = ref.encode(W, b, X)
    for Xodd in (strided, fortran, big_endian):
        snapshot = Xodd.copy()
        _raises_or_correct(lambda: eng.encode(W, b, Xodd), expected, dtype)
        _raises_or_correct(lambda: eng.objective(params, Xodd, **HYPER),
                           ref.objective(params, X, **HYPER), dtype)
        np.testing.assert_array_equal(Xodd, snapshot)
    # Non-contiguous weights for the forward pass, likewise.
    Wt = np.ascontiguousarray(W.T).T
    assert not Wt.flags.c_contiguous
    _raises_or_correct(lambda: eng.encode(Wt, b, X), expected, dtype)


def test_readonly_inputs(kernel_path, dtype):
    """Read-only X is accepted everywhere and never written; read-only
    weights work (or are refused) for the forward pass and the objective,
    and are refused, untouched, by the in-place SGD functions."""
    params, X = make_problem(7, 5, 4, "sigmoid", seed=4, dtype=dtype)
    Xr = readonly(X)
    for name, call in _all_calls(copy_params(params), Xr):
        call()
        np.testing.assert_array_equal(Xr, X, err_msg=name)
    frozen = tuple(readonly(p) for p in params)
    _raises_or_correct(lambda: eng.encode(frozen[0], frozen[1], Xr),
                       ref.encode(params[0], params[1], X), dtype)
    _raises_or_correct(lambda: eng.decode(frozen[2], frozen[3], readonly(ref.encode(
        params[0], params[1], X))), ref.reconstruct(params, X), dtype)
    _raises_or_correct(lambda: eng.objective(frozen, Xr, **HYPER),
                       ref.objective(params, X, **HYPER), dtype)
    for name in ("sgd_step", "sgd_epoch"):
        with pytest.raises((TypeError, ValueError)):
            dict(_all_calls(frozen, Xr))[name]()
        assert_params_equal(frozen, params)


def test_outputs_are_fresh_arrays(dtype):
    params, X = make_problem(5, 4, 3, "sigmoid", seed=4, dtype=dtype)
    A1 = eng.encode(params[0], params[1], X)
    A2 = eng.encode(params[0], params[1], X)
    assert not np.shares_memory(A1, A2) and not np.shares_memory(A1, X)
    assert A1.flags.c_contiguous and A1.flags.writeable
    _, g1 = eng.objective_and_gradients(params, X, **HYPER)
    _, g2 = eng.objective_and_gradients(params, X, **HYPER)
    for a, b, p in zip(g1, g2, params):
        assert not np.shares_memory(a, p) and not np.shares_memory(a, b)
