"""The reusable full-batch evaluator (csae._engine.ObjectiveEvaluator,
Backend.objective_evaluator) and the L-BFGS driver using it."""

import numpy as np
import pytest

from conftest import engine

from csae import reference as ref
from csae._backends import Backend
from csae.solvers.lbfgs import lbfgs

eng = engine()
HYPER = dict(rho=0.1, beta=3.0, lam=1e-3, decoder="sigmoid")


def problem(m, n, h, dtype, seed=0):
    rng = np.random.default_rng(seed)
    params, _ = ref.init_params(n, h, seed, dtype)
    params = (params[0], rng.normal(0, 0.3, h).astype(dtype), params[2],
              rng.normal(0, 0.3, n).astype(dtype))
    return params, rng.uniform(0, 1, (m, n)).astype(dtype)


def flat(params):
    return np.concatenate([p.ravel() for p in params]).astype(np.float64)


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_evaluator_equals_objective_and_gradients(kernel_path, dtype, decoder):
    params, X = problem(50, 9, 7, dtype, seed=1)
    hyper = dict(HYPER, decoder=decoder)
    ev = eng.ObjectiveEvaluator(X, 7, **hyper)
    assert (ev.n_features, ev.n_hidden, ev.n_params) == (9, 7, 2 * 63 + 16)
    want_L, want_g = eng.objective_and_gradients(params, X, **hyper)
    for _ in range(2):  # the workspace is reused
        L, g = ev(params)
        assert L == want_L
        for a, b in zip(g, want_g):
            assert a.dtype == dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    theta, grad = flat(params), np.full(ev.n_params, np.nan)
    assert ev.evaluate_flat(theta, grad) == want_L
    np.testing.assert_array_equal(grad, flat(want_g))


def test_evaluate_flat_rounds_theta_once_for_float32():
    params, X = problem(30, 6, 5, np.float32, seed=2)
    ev = eng.ObjectiveEvaluator(X, 5, **HYPER)
    theta = flat(params) + 1e-9  # float64 values between float32 ones
    grad = np.empty_like(theta)
    L = ev.evaluate_flat(theta, grad)
    sizes = np.cumsum([0] + [p.size for p in params])
    rounded = tuple(theta[a:b].astype(np.float32).reshape(p.shape)
                    for a, b, p in zip(sizes[:-1], sizes[1:], params))
    want_L, want_g = eng.objective_and_gradients(rounded, X, **HYPER)
    assert L == want_L
    np.testing.assert_array_equal(grad, flat(want_g))


@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
def test_lbfgs_with_evaluator_equals_per_call(dtype_name):
    dtype = np.dtype(dtype_name)
    params, X = problem(200, 8, 5, dtype, seed=3)
    backend = Backend("c", 1)
    kw = dict(max_iter=30, max_fun=200, tol=0)
    a = lbfgs(lambda p: backend.objective_and_gradients(p, X, **HYPER), params, **kw)
    b = lbfgs(backend.objective_evaluator(X, 5, **HYPER), params, **kw)
    assert a.loss_curve == b.loss_curve and a.n_fun == b.n_fun
    for x, y in zip(a.params, b.params):
        assert y.dtype == dtype
        np.testing.assert_array_equal(x, y)


def test_python_backend_evaluator():
    params, X = problem(60, 5, 4, np.float64, seed=4)
    ev = Backend("python").objective_evaluator(X, 4, **HYPER)
    assert not hasattr(ev, "evaluate_flat")
    L, g = ev(params)
    want_L, want_g = ref.objective_and_gradients(params, X, **HYPER)
    assert L == want_L
    result = lbfgs(ev, params, max_iter=5, max_fun=50, tol=0)
    assert result.loss_curve[-1] < want_L


def test_nonfinite_evaluation_is_a_refused_step():
    """A flat evaluation that overflows counts as +inf, as per call."""
    params, X = problem(20, 4, 3, np.float64, seed=6)
    ev = eng.ObjectiveEvaluator(X, 3, **dict(HYPER, decoder="linear"))
    theta, grad = flat(params), np.empty(ev.n_params)
    theta[:] = 1e200
    assert not np.isfinite(ev.evaluate_flat(theta, grad)) or not np.all(np.isfinite(grad))
    result = lbfgs(ev, params, max_iter=5, max_fun=30, tol=0)
    assert np.isfinite(result.loss_curve[-1])


def test_bad_arguments():
    params, X = problem(20, 4, 3, np.float64, seed=7)
    with pytest.raises(ValueError):
        eng.ObjectiveEvaluator(np.asfortranarray(X), 3, **HYPER)
    with pytest.raises(ValueError):
        eng.ObjectiveEvaluator(X[:0], 3, **HYPER)
    with pytest.raises(ValueError):
        eng.ObjectiveEvaluator(X, 0, **HYPER)
    with pytest.raises(TypeError):
        eng.ObjectiveEvaluator(X, 2.5, **HYPER)
    with pytest.raises(TypeError):
        eng.ObjectiveEvaluator(X.astype(np.int64), 3, **HYPER)
    with pytest.raises(ValueError):
        eng.ObjectiveEvaluator(X, 3, **dict(HYPER, rho=1.5))
    ev = eng.ObjectiveEvaluator(X, 3, **HYPER)
    with pytest.raises(TypeError):
        ev(tuple(p.astype(np.float32) for p in params))
    other, _ = problem(20, 4, 5, np.float64, seed=7)
    with pytest.raises(ValueError):
        ev(other)
    with pytest.raises(ValueError):
        ev.evaluate_flat(np.zeros(ev.n_params + 1), np.zeros(ev.n_params + 1))
    with pytest.raises(ValueError):
        ev.evaluate_flat(np.zeros(ev.n_params), np.zeros(ev.n_params - 1))


def test_backend_evaluator_falls_back_for_other_data(tmp_path):
    """Data that is not a plain in-memory ndarray (here a memory map) goes
    through objective_and_gradients on every call."""
    params, X = problem(30, 5, 4, np.float64, seed=8)
    mapped = np.memmap(tmp_path / "X.dat", dtype=X.dtype, mode="w+", shape=X.shape)
    mapped[:] = X
    ev = Backend("c").objective_evaluator(mapped, 4, **HYPER)
    assert not hasattr(ev, "evaluate_flat")
    L, g = ev(params)
    want_L, want_g = eng.objective_and_gradients(params, X, **HYPER)
    assert L == want_L
    for a, b in zip(g, want_g):
        np.testing.assert_array_equal(a, b)
