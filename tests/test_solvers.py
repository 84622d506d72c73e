"""The L-BFGS driver (csae.solvers.lbfgs.lbfgs) on its own: it minimises what it
is given, agrees between the engine and the reference, keeps float32 models
in float32, backs off from non-finite evaluations and stops on Ctrl-C with
the best point reached."""

import numpy as np
import pytest


from conftest import engine
from csae import reference as ref
from csae._errors import NonFiniteError
from csae.solvers.lbfgs import lbfgs

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


# ---------------------------------------------------------------------------
# The engine's optimizer (csae_lbfgs, through csae._engine.Lbfgs)
# ---------------------------------------------------------------------------

def rosenbrock(x, g):
    """The n-dimensional Rosenbrock function; its gradient into g."""
    a, b = x[1:] - x[:-1] ** 2, 1.0 - x[:-1]
    g[:] = 0.0
    g[:-1] += -400.0 * a * x[:-1] - 2.0 * b
    g[1:] += 200.0 * a
    return float(np.sum(100.0 * a * a + b * b))


def drive(optimizer, x, objective):
    """Run the reverse-communication loop to its end; (task, f, iterates)."""
    g, f, iterates = np.zeros_like(x), 0.0, []
    while True:
        task, f = optimizer.step(x, f, g)
        if task == eng.LBFGS_EVALUATE:
            f = objective(x, g)
        elif task == eng.LBFGS_ITERATE:
            iterates.append(f)
        else:
            return task, f, iterates


eng = engine()


def test_engine_optimizer_minimises_rosenbrock():
    x = np.linspace(-1.2, -0.3, 10)
    opt = eng.Lbfgs(10, max_iter=1000, max_eval=5000, ftol=0.0, gtol=1e-9)
    task, f, iterates = drive(opt, x, rosenbrock)
    assert task == eng.LBFGS_CONVERGED
    np.testing.assert_allclose(x, 1.0, atol=1e-8)
    assert f < 1e-15 and len(iterates) == opt.iterations
    assert np.all(np.diff(iterates) < 0)   # every iterate lowers the objective
    # Once final, the task stays final and nothing moves.
    before = x.copy()
    assert opt.step(x, f, np.zeros(10))[0] == eng.LBFGS_CONVERGED
    np.testing.assert_array_equal(x, before)


def test_engine_optimizer_follows_scipy_lbfgsb():
    """Same algorithm, same constants: on Rosenbrock the iteration and
    evaluation counts are SciPy L-BFGS-B's (to within a few, as rounding
    in SciPy's BLAS may decide a late comparison otherwise)."""
    optimize = pytest.importorskip("scipy.optimize")
    x0 = np.linspace(-1.2, -0.3, 10)
    want = optimize.minimize(lambda x: (optimize.rosen(x), optimize.rosen_der(x)), x0,
                             jac=True, method="L-BFGS-B",
                             options=dict(gtol=1e-9, ftol=0.0, maxiter=1000))
    x = x0.copy()
    opt = eng.Lbfgs(10, max_iter=1000, max_eval=5000, ftol=0.0, gtol=1e-9)
    drive(opt, x, rosenbrock)
    assert abs(opt.iterations - want.nit) <= 3 and abs(opt.evaluations - want.nfev) <= 3


def test_engine_optimizer_limits_and_bad_starts():
    x = np.linspace(-1.2, -0.3, 10)
    opt = eng.Lbfgs(10, max_iter=7, max_eval=5000, ftol=0.0)
    assert drive(opt, x, rosenbrock)[0] == eng.LBFGS_MAX_ITER and opt.iterations == 7
    opt = eng.Lbfgs(10, max_iter=1000, max_eval=12, ftol=0.0)
    assert drive(opt, x, rosenbrock)[0] == eng.LBFGS_MAX_EVAL and opt.evaluations >= 12
    # A non-finite start ends the run at once, the point untouched.
    x = np.full(10, 1e200)
    opt = eng.Lbfgs(10, max_iter=10, max_eval=10, ftol=0.0)
    with np.errstate(all="ignore"):
        task, f, iterates = drive(opt, x, lambda x, g: rosenbrock(x, g) * np.inf)
    assert task == eng.LBFGS_NONFINITE and not iterates and np.all(x == 1e200)
    # A function without a descent direction (a constant) cannot be searched.
    x = np.zeros(3)
    opt = eng.Lbfgs(3, max_iter=10, max_eval=10, ftol=0.0, gtol=-0.0)
    task, _, _ = drive(opt, x, lambda x, g: (g.fill(0.0), 1.0)[1])
    assert task == eng.LBFGS_CONVERGED  # every |g_i| <= gtol = 0


def test_engine_optimizer_backs_off_from_overflow():
    # Infinite beyond |x| > 2: the line search must step back and the run
    # still reach the minimum at 1.
    def walled(x, g):
        f = rosenbrock(x, g)
        return np.inf if np.max(np.abs(x)) > 2.0 else f

    x = np.full(4, -1.5)
    opt = eng.Lbfgs(4, max_iter=500, max_eval=5000, ftol=0.0, gtol=1e-8)
    with np.errstate(all="ignore"):
        task, f, _ = drive(opt, x, walled)
    assert task == eng.LBFGS_CONVERGED and np.max(np.abs(x)) <= 2.0
    np.testing.assert_allclose(x, 1.0, atol=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n=0), ValueError, "n must be >= 1"),
    (dict(history=0), ValueError, "history must be >= 1"),
    (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
    (dict(max_eval=-1), ValueError, "max_eval must be >= 0"),
    (dict(ftol=-1.0), ValueError, "ftol must be >= 0"),
    (dict(gtol=float("nan")), ValueError, "gtol must be >= 0"),
    (dict(max_iter=1.5), TypeError, "max_iter must be an integer"),
])
def test_engine_optimizer_refuses_bad_options(kwargs, error, match):
    settings = dict(n=3, max_iter=10, max_eval=10, ftol=0.0)
    settings.update(kwargs)
    with pytest.raises(error, match=match):
        eng.Lbfgs(settings.pop("n"), **settings)


def test_engine_optimizer_refuses_vectors_of_another_length():
    opt = eng.Lbfgs(3, max_iter=10, max_eval=10, ftol=0.0)
    with pytest.raises(ValueError, match="must have 3 entries"):
        opt.step(np.zeros(4), 0.0, np.zeros(3))


def autoencoder_problems(seeds, dtype):
    """(X, params, hyper): bars, digits-like blobs and a linear decoder on
    Gaussian data, for each seed."""
    from csae.datasets import make_bars
    for seed in seeds:
        rng = np.random.default_rng(seed)
        blobs = (rng.random((300, 49)) < 0.2) * rng.random((300, 49))
        for X, h, decoder in [(make_bars(600, random_state=seed), 25, "sigmoid"),
                              (blobs, 30, "sigmoid"),
                              (rng.standard_normal((300, 30)), 20, "linear")]:
            X = np.ascontiguousarray(X, dtype=dtype)
            params, _ = ref.init_params(X.shape[1], h, seed, dtype)
            yield X, params, dict(rho=0.05, beta=3.0, lam=1e-4, decoder=decoder)


def test_as_good_as_scipy_on_autoencoders():
    """From the same start, 100 iterations on bars, digits-like data and a
    linear decoder on Gaussian data, three seeds each: the objective no
    worse than SciPy L-BFGS-B's on average and within 1% on each, with no
    more evaluations per iteration."""
    optimize = pytest.importorskip("scipy.optimize")
    back = engine()
    ratios, evals = [], {"csae": 0, "scipy": 0}
    for X, params, hyper in autoencoder_problems(range(3), np.float64):
        ours = lbfgs(objective_of_settings(back, X, hyper), params, max_iter=100,
                     max_fun=10000, tol=0)
        theta0 = np.concatenate([p.ravel() for p in params])
        sizes = np.cumsum([p.size for p in params])[:-1]

        def fun(theta):
            parts = np.split(theta, sizes)
            p = tuple(a.reshape(q.shape) for a, q in zip(parts, params))
            loss, grads = back.objective_and_gradients(p, X, **hyper)
            return loss, np.concatenate([gr.ravel() for gr in grads])

        theirs = optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B",
                                   options=dict(maxiter=100, gtol=0.0))
        assert ours.n_iter == theirs.nit == 100
        ratios.append(ours.loss_curve[-1] / theirs.fun)
        evals["csae"] += ours.n_fun
        evals["scipy"] += theirs.nfev
    assert np.mean(ratios) <= 1.0 + 1e-4 and max(ratios) <= 1.01, ratios
    assert evals["csae"] <= evals["scipy"], evals


def test_float32_storage_does_as_well_within_float32_rounding(monkeypatch):
    """Float32 models store the optimizer's pairs (s, y) and direction in
    float32.  The problems above in float32, 100 iterations, against the same
    optimizer storing them in float64 (which follows SciPy's L-BFGS-B, the
    test above).  After 100 iterations in float32 any change of rounding
    moves a run by a few per cent either way: SciPy itself, given
    csae.reference's float32 objective instead of the engine's, ended
    0.980-1.031x apart over 30 such problems (benchmarks/lbfgs_quality.py).
    So: on average within 0.5%, each within 3.5%, evaluations within 1%.
    Both runs are the engine's, so the outcome is the same on every CPU."""
    from csae import _engine
    back, wide = engine(), _engine.Lbfgs

    def float64_storage(*args, **kwargs):
        return wide(*args, **dict(kwargs, float32_storage=False))

    ratios, evals, same = [], {"float32": 0, "float64": 0}, 0
    for X, params, hyper in autoencoder_problems(range(3), np.float32):
        run = lambda: lbfgs(objective_of_settings(back, X, hyper), params, max_iter=100,
                            max_fun=10000, tol=0)
        narrow = run()
        with monkeypatch.context() as m:
            m.setattr(_engine, "Lbfgs", float64_storage)
            full = run()
        assert narrow.n_iter == full.n_iter == 100
        ratios.append(narrow.loss_curve[-1] / full.loss_curve[-1])
        evals["float32"] += narrow.n_fun
        evals["float64"] += full.n_fun
        same += narrow.loss_curve == full.loss_curve
    assert same == 0   # the driver did store them in float32
    assert abs(np.mean(ratios) - 1.0) <= 0.005 and max(abs(np.subtract(ratios, 1.0))) <= 0.035, \
        ratios
    assert evals["float32"] <= 1.01 * evals["float64"], evals


def objective_of_settings(module, X, hyper):
    return lambda p: module.objective_and_gradients(p, X, **hyper)


@pytest.mark.parametrize("float32_storage", [False, True])
def test_engine_optimizer_same_bits_for_any_thread_count(float32_storage):
    """Large enough (several blocks, above the threading threshold) for the
    vector work to be shared: every thread count gives the same iterates."""
    n = 300_001
    scale = 1.0 + np.arange(n) % 7

    def quartic(x, g):
        e = x - 1.0
        g[:] = scale * e * (1.0 + e * e)
        return float(np.sum(scale * e * e * (0.5 + 0.25 * e * e)))

    runs = []
    for n_threads in (1, 2, 3):
        x = np.sin(np.arange(n) * 0.1)
        opt = eng.Lbfgs(n, max_iter=15, max_eval=100, ftol=0.0, n_threads=n_threads,
                        float32_storage=float32_storage)
        task, f, iterates = drive(opt, x, quartic)
        runs.append((task, iterates, x.tobytes()))
    assert runs[0][0] == eng.LBFGS_MAX_ITER and len(runs[0][1]) == 15
    assert runs[1] == runs[0] and runs[2] == runs[0]


# --------------------------------------------------------------------------
# The solver classes (csae.solvers): each owns its state as one value
# --------------------------------------------------------------------------

def test_the_driver_says_why_it_stopped_in_the_stop_reason_vocabulary():
    from csae.solvers import STOP_REASONS
    params, X = problem()
    assert lbfgs(objective_of(ref, X), params, max_iter=5, max_fun=1000,
                 tol=0).reason == "max_epochs"
    assert lbfgs(objective_of(ref, X), params, max_iter=100, max_fun=4,
                 tol=0).reason == "max_fun"

    def bowl(p):  # a quadratic: the relative-reduction test ends it
        return (float(sum(np.sum((a - 1.0) ** 2) for a in p)),
                tuple(2.0 * (a - 1.0) for a in p))

    assert lbfgs(bowl, params, max_iter=1000, max_fun=10000, tol=0).reason == "converged"

    def uphill(p):  # the gradient's sign flipped: no step along -g lowers f
        value, grads = bowl(p)
        return value, tuple(-g for g in grads)

    result = lbfgs(uphill, params, max_iter=1000, max_fun=10000, tol=0)
    assert result.reason == "line_search" and result.n_iter == 0
    assert lbfgs(objective_of(ref, X), params, max_iter=3, max_fun=1000, tol=0,
                 on_iteration=lambda k, loss, p: k == 2).reason == "no_improvement"
    assert {"max_epochs", "max_fun", "converged", "line_search"} <= set(STOP_REASONS)


def _trained(solver, **params):
    import warnings
    from csae import SparseAutoencoder
    _, X = problem(m=40, n=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SparseAutoencoder(n_hidden=3, solver=solver, random_state=0, max_epochs=3,
                                 tol=0, **params).fit(X), X


def test_adam_state_is_one_value_that_the_model_state_carries():
    from csae.solvers import Adam, AdamState
    model, _ = _trained("adam", batch_size=16)
    state = Adam.state_in(model._state)
    assert isinstance(state, AdamState)
    assert state.t == 3 * 3  # three epochs of ceil(40 / 16) steps
    assert all(not a.flags.writeable for a in state.m + state.v)
    assert all(m.shape == p.shape for m, p in zip(state.m, model._state.params))
    # store and state_in are inverses; None clears it.
    again = Adam.store(model._state, state)
    assert Adam.state_in(again).m is state.m and again.adam_t == state.t
    cleared = Adam.store(model._state, None)
    assert Adam.state_in(cleared) is None and cleared.adam_t == 0
    # Frozen: a value, not a bag of fields.
    with pytest.raises(Exception):
        state.t = 0


def test_sgd_keeps_a_velocity_only_with_momentum():
    from csae.solvers import SGD, Adam
    model, X = _trained("sgd", momentum=0.9)
    assert SGD.state_in(model._state) is not None
    # An Adam run leaves the velocity alone, for a switch back.
    model.set_params(solver="adam").partial_fit(X)
    assert SGD.state_in(model._state) is not None and Adam.state_in(model._state) is not None
    # SGD without momentum has nothing to keep: the velocity is dropped, the moments stay.
    model.set_params(solver="sgd", momentum=0.0).partial_fit(X)
    assert SGD.state_in(model._state) is None and Adam.state_in(model._state) is not None


def test_lbfgs_leaves_no_solver_state():
    from csae.solvers import SOLVERS
    model, X = _trained("adam", sparsity_estimate="running")
    assert model._state.rho_running is not None
    import warnings
    with warnings.catch_warnings():  # a model this small learns little in 3 iterations
        warnings.simplefilter("ignore")
        # A warm start: the state L-BFGS starts from carries Adam's moments.
        model.set_params(solver="lbfgs", warm_start=True).fit(X)
    assert model.n_iter_ == 6
    for solver in SOLVERS.values():
        assert solver.state_in(model._state) is None
    assert model._state.rho_running is None and model._state.running_batches == 0


def test_model_file_members_of_the_solver_states():
    from csae.solvers import AdamState, MomentumState, solver_state_arrays
    model, X = _trained("sgd", momentum=0.5)
    model.set_params(solver="adam").partial_fit(X)
    arrays = solver_state_arrays(model._state, np.float64)
    # The names and order model files have always held.
    assert list(arrays) == ([f"velocity_{w}" for w in WEIGHTS] + [f"adam_m_{w}" for w in WEIGHTS]
                            + [f"adam_v_{w}" for w in WEIGHTS] + ["adam_t"])
    assert list(arrays) == list(MomentumState.FILE_NAMES + AdamState.FILE_NAMES)
    assert arrays["adam_t"].dtype == np.int64 and int(arrays["adam_t"]) == model._state.adam_t
    np.testing.assert_array_equal(arrays["velocity_encoder_weights"], model._state.velocity[0])


WEIGHTS = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")


def test_the_hyperparameter_table_offers_exactly_the_registered_solvers():
    # The table (csae/_params.py imports nothing from csae) spells the
    # solver names out; the registry is what training dispatches on.
    from csae._params import ALL_SOLVERS, BY_NAME
    from csae.solvers import SOLVERS
    assert set(ALL_SOLVERS) == set(SOLVERS) == set(BY_NAME["solver"].choices)
