"""Shared fixtures: backends, dtypes, kernel paths and the tolerance table."""

import numpy as np
import pytest

# Relative tolerances of one backend against another (or against the
# reference), per dtype.  float64 results differ only by summation order.
RTOL = {np.float64: 1e-10, np.float32: 1e-4}
# Finite-difference gradient checks are limited by the step, not the engine.
GRADCHECK_TOL = {np.float64: 1e-6}

DTYPES = [np.float64, np.float32]


def engine():
    """The compiled engine module (fails loudly if the build is missing)."""
    from csae import _engine
    return _engine


def kernel_paths():
    """Every kernel path this machine can run ("portable", "avx2", ...)."""
    return engine().kernel_paths()


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return request.param


@pytest.fixture(params=["c", "python"])
def backend(request):
    return request.param


@pytest.fixture(params=kernel_paths())
def kernel_path(request):
    """Run the test once on each kernel path, restoring the default after."""
    eng = engine()
    before = eng.get_kernel_path()
    eng.set_kernel_path(request.param)
    yield request.param
    eng.set_kernel_path(before)


@pytest.fixture
def small_chunks(monkeypatch):
    """Out-of-core reading in 4 KiB chunks, so that a few hundred rows of
    a memory-mapped file take many blocks."""
    import csae._blockwise as blockwise
    monkeypatch.setattr(blockwise, "CHUNK_BYTES", 4096)


def assert_close(actual, expected, dtype, scale=None):
    """Compare with the per-dtype relative tolerance.  ``scale`` (default:
    the largest |expected|) keeps near-zero entries from failing on noise."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    if scale is None:
        scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    err = float(np.max(np.abs(actual - expected), initial=0.0)) / scale
    assert err <= RTOL[dtype], f"relative error {err:.3g} > {RTOL[dtype]:.0e}"


def random_problem(m, n, h, dtype, seed=0, decoder="sigmoid", bias_scale=0.3,
                   output_bias_scale=0.3):
    """(params, X) for the engine-against-reference tests: the reference's
    initial weights, random biases (hidden ones with spread ``bias_scale``,
    so units start at different activations, output ones with spread
    ``output_bias_scale``) and m random rows in [0, 1) (normal for the
    linear decoder), all in ``dtype``."""
    from csae import reference as ref
    rng = np.random.default_rng(seed)
    (W, _, Wd, _), _ = ref.init_params(n, h, seed, np.float64)
    b = rng.normal(0, bias_scale, h)
    bd = rng.normal(0, output_bias_scale, n)
    X = rng.uniform(0, 1, (m, n)) if decoder == "sigmoid" else rng.normal(0, 1, (m, n))
    params = tuple(np.ascontiguousarray(p, dtype=dtype) for p in (W, b, Wd, bd))
    return params, np.ascontiguousarray(X, dtype=dtype)


def copies(arrays):
    return tuple(a.copy() for a in arrays)


def zeros_like(arrays):
    return tuple(np.zeros_like(a) for a in arrays)


def failing_epoch(monkeypatch, backend, error, on_call):
    """Make the backend's sgd_epoch raise ``error`` on call number
    ``on_call`` (1-based), counting from now (KeyboardInterrupt: a
    simulated Ctrl-C)."""
    if backend == "python":
        from csae import reference as module
    else:
        module = pytest.importorskip("csae._engine")
    true_epoch = module.sgd_epoch
    calls = []

    def epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == on_call:
            raise error
        return true_epoch(*args, **kwargs)

    monkeypatch.setattr(module, "sgd_epoch", epoch)
