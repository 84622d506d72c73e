"""The L-BFGS driver (csae._solvers.lbfgs) on its own: it minimises what it
is given, agrees between the engine and the reference, keeps float32 models
in float32, backs off from non-finite evaluations and stops on Ctrl-C with
the best point reached."""

import numpy as np
import pytest


from conftest import engine
from csae import reference as ref
from csae._errors import NonFiniteError
from csae._solvers import lbfgs

HYPER = dict(rho=0.1, beta=2.0, lam=1e-3, decoder="sigmoid")


def problem(dtype=np.float64, m=200, n=16, h=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((m, n)).astype(dtype)
    params, _ = ref.init_params(n, h, seed, dtype)
    return params, X


def objective_of(module, X):
    return lambda p: module.objective_and_gradients(p, X, **HYPER)


def test_lbfgs_reaches_a_stationary_point():
    params, X = problem()
    start = ref.objective(params, X, **HYPER)
    result = lbfgs(objective_of(ref, X), params, max_iter=5000, max_fun=50000, tol=1e-4)
    assert result.converged and not result.interrupted, result.message
    loss, grads = ref.objective_and_gradients(result.params, X, **HYPER)
    assert loss < 0.5 * start
    assert max(float(np.max(np.abs(g))) for g in grads) <= 1e-4
    # The curve is the objective after each iteration, and it never rises.
    assert len(result.loss_curve) == result.n_iter and result.n_fun >= result.n_iter
    assert np.all(np.diff(result.loss_curve) <= 1e-12)
    np.testing.assert_allclose(result.loss_curve[-1], loss, rtol=1e-12)
    # The starting arrays are not modified.
    np.testing.assert_array_equal(params[0], problem()[0][0])


def test_engine_and_reference_take_the_same_path():
    params, X = problem()
    a = lbfgs(objective_of(engine(), X), params, max_iter=30, max_fun=1000, tol=0)
    b = lbfgs(objective_of(ref, X), params, max_iter=30, max_fun=1000, tol=0)
    assert a.n_iter == b.n_iter == 30
    np.testing.assert_allclose(a.loss_curve, b.loss_curve, rtol=1e-8)


def test_budgets_stop_it():
    params, X = problem()
    result = lbfgs(objective_of(ref, X), params, max_iter=5, max_fun=1000, tol=0)
    assert result.n_iter == 5 and not result.converged
    result = lbfgs(objective_of(ref, X), params, max_iter=100, max_fun=4, tol=0)
    assert result.n_fun <= 5 and not result.converged


def test_float32_model_stays_float32():
    params, X = problem(np.float32)
    result = lbfgs(objective_of(engine(), X), params, max_iter=20, max_fun=1000, tol=0)
    assert all(p.dtype == np.float32 for p in result.params)
    assert result.loss_curve[-1] < ref.objective(params, X, **HYPER)


def test_non_finite_evaluations_are_avoided():
    params, X = problem()
    calls = []

    def fragile(p):
        # Refuse any point far from the start: the line search must back off.
        calls.append(1)
        if np.max(np.abs(p[0] - params[0])) > 0.05:
            raise NonFiniteError("overflow")
        return ref.objective_and_gradients(p, X, **HYPER)

    result = lbfgs(fragile, params, max_iter=50, max_fun=500, tol=0)
    # SciPy may give up at the wall; what comes back is a point that was
    # evaluated finitely, no worse than the start.
    assert np.max(np.abs(result.params[0] - params[0])) <= 0.05
    assert all(np.all(np.isfinite(p)) for p in result.params)
    assert ref.objective(result.params, X, **HYPER) <= ref.objective(params, X, **HYPER)


def test_ctrl_c_returns_the_best_point():
    params, X = problem()
    seen = []

    def interrupted_later(p):
        if len(seen) == 12:
            raise KeyboardInterrupt
        seen.append(ref.objective(p, X, **HYPER))
        return ref.objective_and_gradients(p, X, **HYPER)

    result = lbfgs(interrupted_later, params, max_iter=100, max_fun=1000, tol=0)
    assert result.interrupted and not result.converged
    np.testing.assert_allclose(ref.objective(result.params, X, **HYPER), min(seen), rtol=1e-12)
