"""Adam (scikit-learn's convention), from the engine up to the estimator.

The engine is compared with the reference on every kernel path (float64
1e-10, float32 1e-4 relative, conftest.RTOL); the reference itself with an
Adam step written out here by hand; state carried over epochs with one
continuous run; failures and bad arguments with "nothing changed".  In the
estimator (solver="adam", the running sparsity estimate and warm_start), the
Adam state (m, v, t) and the running estimate (q, batches seen) are model
state carried by partial_fit, warm_start, pickling and save/load; both
backends agree; bad values are refused before anything changes.
"""

import math
import pickle
import warnings

import numpy as np
import pytest

from conftest import RTOL, assert_close, copies, engine, failing_epoch, zeros_like
from conftest import random_problem as problem
from csae import SparseAutoencoder
from csae import reference as ref
from csae._errors import NonFiniteError
from csae.datasets import make_bars
import csae
import csae._validation


eng = engine()
HYPER = dict(rho=0.1, beta=3.0, lam=1e-3)
BACKENDS = {"c": eng, "python": ref}


def run_epochs(module, params, X, epochs, **kw):
    """``epochs`` epochs of Adam from zero moments, carrying adam_t (and the
    generator state); returns (params, m, v, losses, adam_t)."""
    params = copies(params)
    m, v = zeros_like(params), zeros_like(params)
    t, state, losses = 0, 7, []
    batches = -(-X.shape[0] // kw["batch_size"])
    for _ in range(epochs):
        loss, state = module.sgd_epoch(params, None, X, solver="adam", adam_m=m, adam_v=v,
                                       adam_t=t, rng_state=state, **kw)
        losses.append(loss)
        t += batches
    return params, m, v, losses, t


# --------------------------------------------------------------------------
# Engine against the reference
# --------------------------------------------------------------------------

@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
@pytest.mark.parametrize("batch_size,shuffle", [(1, False), (4, True), (13, False), (40, True)])
def test_adam_epochs_match_reference(kernel_path, dtype, decoder, batch_size, shuffle):
    params, X = problem(40, 9, 7, dtype, seed=3, decoder=decoder)
    kw = dict(HYPER, decoder=decoder, learning_rate=0.01, batch_size=batch_size,
              shuffle=shuffle)
    got = run_epochs(eng, params, X, 2, **kw)
    want = run_epochs(ref, params, X, 2, **kw)
    for a, b in zip(got[0] + got[1] + got[2], want[0] + want[1] + want[2]):
        assert a.dtype == dtype
        assert_close(a, b, dtype)
    assert_close(got[3], want[3], dtype)


@pytest.mark.parametrize("beta_1,beta_2,epsilon", [(0.0, 0.0, 1e-8), (0.5, 0.9, 1e-3),
                                                   (0.99, 0.9999, 1e-6)])
def test_adam_settings_match_reference(kernel_path, dtype, beta_1, beta_2, epsilon):
    params, X = problem(30, 6, 5, dtype, seed=4)
    kw = dict(HYPER, learning_rate=0.003, batch_size=7, beta_1=beta_1, beta_2=beta_2,
              epsilon=epsilon)
    got = run_epochs(eng, params, X, 2, **kw)
    want = run_epochs(ref, params, X, 2, **kw)
    for a, b in zip(got[0] + got[1] + got[2], want[0] + want[1] + want[2]):
        assert_close(a, b, dtype)


def test_adam_threads_bit_identical(kernel_path, dtype):
    """A model big enough for the engine to split its products and update."""
    params, X = problem(64, 200, 180, dtype, seed=5)
    kw = dict(HYPER, learning_rate=0.001, batch_size=32, shuffle=True)
    runs = []
    for n_threads in (1, 2):
        p, m, v = copies(params), zeros_like(params), zeros_like(params)
        loss, _ = eng.sgd_epoch(p, None, X, solver="adam", adam_m=m, adam_v=v,
                                n_threads=n_threads, **kw)
        runs.append((p, m, v, loss))
    for a, b in zip(runs[0][0] + runs[0][1] + runs[0][2], runs[1][0] + runs[1][1] + runs[1][2]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][3] == runs[1][3]


# --------------------------------------------------------------------------
# Adam written out by hand
# --------------------------------------------------------------------------

def _hand_adam(theta, m, v, g, t, lr, b1, b2, eps):
    """One Adam step on Python floats, following Kingma & Ba as scikit-learn
    writes it (the bias correction folded into the learning rate)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return theta - lr_t * m / (math.sqrt(v) + eps), m, v


def _full_gradient(params, X, **hyper):
    """dL/dtheta of the objective on X by central differences (float64),
    entry by entry: independent of both backends' backward passes."""
    out = []
    for k, p in enumerate(params):
        g = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            e = 1e-6
            up = copies(params)
            up[k][idx] += e
            down = copies(params)
            down[k][idx] -= e
            g[idx] = (ref.objective(up, X, **hyper) - ref.objective(down, X, **hyper)) / (2 * e)
        out.append(g)
    return out


@pytest.mark.parametrize("backend", ["c", "python"])
def test_adam_three_steps_by_hand(backend):
    """n = 2, h = 1, one minibatch of 3 rows per step: three Adam steps with
    the gradient from finite differences and the update written above."""
    module = BACKENDS[backend]
    params, X = problem(3, 2, 1, np.float64, seed=6)
    hyper = dict(HYPER, lam=0.01)
    lr, b1, b2, eps = 0.05, 0.8, 0.95, 1e-4
    p = copies(params)
    m, v = zeros_like(p), zeros_like(p)
    hand = [[list(map(float, a.ravel())), [0.0] * a.size, [0.0] * a.size] for a in params]
    for t in range(1, 4):
        current = tuple(np.array(h[0]).reshape(a.shape) for h, a in zip(hand, params))
        g = _full_gradient(current, X, **hyper)
        for h, gk in zip(hand, g):
            for i, gi in enumerate(gk.ravel()):
                h[0][i], h[1][i], h[2][i] = _hand_adam(h[0][i], h[1][i], h[2][i], float(gi),
                                                       t, lr, b1, b2, eps)
        module.sgd_step(p, None, X, learning_rate=lr, solver="adam", beta_1=b1, beta_2=b2,
                        epsilon=eps, adam_m=m, adam_v=v, adam_t=t - 1, **hyper)
        for k in range(4):
            # The finite-difference gradient is good to ~1e-9; Adam's step
            # is at most lr_t in size, so compare with that scale.
            np.testing.assert_allclose(p[k].ravel(), hand[k][0], rtol=0, atol=1e-7)
            np.testing.assert_allclose(m[k].ravel(), hand[k][1], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(v[k].ravel(), hand[k][2], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_first_adam_step_is_lr_times_sign(backend, dtype):
    """From zero moments, step 1 moves each parameter by
    lr * g / (|g| + eps / sqrt(1 - beta_2)): about lr, against the gradient."""
    module = BACKENDS[backend]
    params, X = problem(20, 5, 4, dtype, seed=7)
    _, g = ref.objective_and_gradients(params, X, **HYPER)
    p, m, v = copies(params), zeros_like(params), zeros_like(params)
    lr, eps = 0.01, 1e-8
    module.sgd_step(p, None, X, learning_rate=lr, solver="adam", adam_m=m, adam_v=v,
                    epsilon=eps, **HYPER)
    for after, before, gk in zip(p, params, g):
        g64 = gk.astype(np.float64)
        want = before - lr * g64 / (np.abs(g64) + eps / math.sqrt(1 - 0.999))
        assert_close(after, want, dtype, scale=lr)


# --------------------------------------------------------------------------
# State over epochs, momentum ignored
# --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["c", "python"])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_state_across_epochs_equals_one_run(backend, dtype, batch_size):
    """Two epochs over X, carrying adam_t, equal one epoch over X stacked
    twice (the same minibatches in the same order, t running on)."""
    module = BACKENDS[backend]
    params, X = problem(20, 6, 5, dtype, seed=8)
    kw = dict(HYPER, learning_rate=0.01, batch_size=batch_size)
    p1, m1, v1 = copies(params), zeros_like(params), zeros_like(params)
    t = 0
    losses = []
    for _ in range(2):
        loss, _ = module.sgd_epoch(p1, None, X, solver="adam", adam_m=m1, adam_v=v1,
                                   adam_t=t, **kw)
        losses.append(loss)
        t += 20 // batch_size
    p2, m2, v2 = copies(params), zeros_like(params), zeros_like(params)
    loss2, _ = module.sgd_epoch(p2, None, np.vstack([X, X]), solver="adam", adam_m=m2,
                                adam_v=v2, adam_t=0, **kw)
    for a, b in zip(p1 + m1 + v1, p2 + m2 + v2):
        np.testing.assert_array_equal(a, b)
    assert_close(loss2, np.mean(losses), dtype)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_adam_ignores_momentum_and_velocity(backend, dtype):
    module = BACKENDS[backend]
    params, X = problem(20, 6, 5, dtype, seed=9)
    kw = dict(HYPER, learning_rate=0.01, batch_size=6, solver="adam")
    p1, m1, v1 = copies(params), zeros_like(params), zeros_like(params)
    module.sgd_epoch(p1, None, X, adam_m=m1, adam_v=v1, **kw)
    p2, m2, v2 = copies(params), zeros_like(params), zeros_like(params)
    velocity = zeros_like(params)
    module.sgd_epoch(p2, velocity, X, momentum=0.9, adam_m=m2, adam_v=v2, **kw)
    for a, b in zip(p1 + m1 + v1, p2 + m2 + v2):
        np.testing.assert_array_equal(a, b)
    assert all(not np.any(vel) for vel in velocity)


def test_adam_converges_below_sgd_start(dtype):
    """Sanity: ten epochs of Adam lower the objective a lot."""
    params, X = problem(100, 16, 8, dtype, seed=10)
    start = ref.objective(params, X, **HYPER)
    p, m, v = copies(params), zeros_like(params), zeros_like(params)
    for epoch in range(10):
        eng.sgd_epoch(p, None, X, solver="adam", adam_m=m, adam_v=v, adam_t=epoch * 10,
                      learning_rate=0.01, batch_size=10, shuffle=True, rng_state=epoch,
                      **HYPER)
    assert ref.objective(p, X, **HYPER) < 0.5 * start


# --------------------------------------------------------------------------
# Failures change nothing
# --------------------------------------------------------------------------

def _snapshot(*groups):
    return [a.copy() for g in groups for a in g]


def _unchanged(before, *groups):
    after = [a for g in groups for a in g]
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_nonfinite_data_changes_nothing(kernel_path, backend, dtype):
    module = BACKENDS[backend]
    params, X = problem(12, 5, 4, dtype, seed=11)
    p, m, v = copies(params), zeros_like(params), zeros_like(params)
    q = np.full(4, 0.3, dtype)
    module.sgd_epoch(p, None, X, solver="adam", adam_m=m, adam_v=v, learning_rate=0.01,
                     batch_size=4, sparsity_smoothing=0.5, rho_running=q, **HYPER)
    X = X.copy()
    X[5, 2] = np.nan
    before = _snapshot(p, m, v, (q,))
    with pytest.raises(NonFiniteError):
        module.sgd_step(p, None, X[4:8], solver="adam", adam_m=m, adam_v=v, adam_t=3,
                        learning_rate=0.01, sparsity_smoothing=0.5, rho_running=q,
                        running_batches=3, **HYPER)
    _unchanged(before, p, m, v, (q,))


def _exploding(dtype):
    """Linear decoder with a huge decoder weight: the gradient's square
    (Adam's second moment) or the gradient itself overflows."""
    big = float(np.sqrt(np.finfo(dtype).max)) * 4
    params = (np.zeros((1, 2), dtype), np.zeros(1, dtype), np.full((2, 1), big, dtype),
              np.zeros(2, dtype))
    X = np.full((2, 2), 0.5, dtype)
    return params, X


@pytest.mark.parametrize("backend", ["c", "python"])
def test_overflowing_adam_step_changes_nothing(kernel_path, backend, dtype):
    module = BACKENDS[backend]
    params, X = _exploding(dtype)
    p, m, v = copies(params), zeros_like(params), zeros_like(params)
    before = _snapshot(p, m, v)
    with pytest.raises(NonFiniteError):
        module.sgd_step(p, None, X, solver="adam", adam_m=m, adam_v=v, learning_rate=0.01,
                        decoder="linear", rho=0.1, beta=0.0, lam=0.0)
    _unchanged(before, p, m, v)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_nonfinite_epoch_like_reference(kernel_path, dtype, batch_size):
    """A later minibatch goes non-finite: both backends stop at the same
    minibatch with the same state (the earlier steps applied)."""
    params, X = problem(9, 4, 3, dtype, seed=12)
    X = X.copy()
    X[7, 1] = np.inf
    results = []
    for module in (eng, ref):
        p, m, v = copies(params), zeros_like(params), zeros_like(params)
        with pytest.raises(NonFiniteError) as err:
            module.sgd_epoch(p, None, X, solver="adam", adam_m=m, adam_v=v,
                             learning_rate=0.01, batch_size=batch_size, **HYPER)
        results.append((err.value.batch, p + m + v))
    assert results[0][0] == results[1][0] == 7 // batch_size
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(a, b, dtype)


# --------------------------------------------------------------------------
# Bad arguments: a clear exception before anything changes
# --------------------------------------------------------------------------

def _bad_cases(params, dtype):
    h = params[1].shape[0]
    m_ok, v_ok = zeros_like(params), zeros_like(params)
    wrong_dtype = tuple(a.astype(np.float32 if dtype == np.float64 else np.float64)
                        for a in params)
    transposed = (np.zeros_like(params[0]), np.zeros_like(params[1]),
                  np.zeros_like(params[0]), np.zeros_like(params[3]))
    return [
        ("solver", dict(solver="rmsprop"), ValueError),
        ("beta_1 = 1", dict(beta_1=1.0), ValueError),
        ("beta_1 < 0", dict(beta_1=-0.1), ValueError),
        ("beta_1 nan", dict(beta_1=float("nan")), ValueError),
        ("beta_2 = 1", dict(beta_2=1.0), ValueError),
        ("beta_2 < 0", dict(beta_2=-1e-3), ValueError),
        ("epsilon 0", dict(epsilon=0.0), ValueError),
        ("epsilon < 0", dict(epsilon=-1e-8), ValueError),
        ("epsilon nan", dict(epsilon=float("nan")), ValueError),
        ("adam_t < 0", dict(adam_t=-1), ValueError),
        ("adam_m missing", dict(adam_m=None), TypeError),
        ("adam_v short", dict(adam_v=v_ok[:3]), TypeError),
        ("adam_m dtype", dict(adam_m=wrong_dtype), TypeError),
        ("adam_v shape", dict(adam_v=transposed), ValueError),
        ("adam_m list", dict(adam_m=[np.zeros(3)] * 4), (TypeError, ValueError)),
        ("smoothing 0", dict(sparsity_smoothing=0.0, rho_running=np.zeros(h, dtype)), ValueError),
        ("smoothing > 1", dict(sparsity_smoothing=1.5, rho_running=np.zeros(h, dtype)), ValueError),
        ("smoothing nan", dict(sparsity_smoothing=float("nan"), rho_running=np.zeros(h, dtype)),
         ValueError),
        ("rho_running missing", dict(sparsity_smoothing=0.5), TypeError),
        ("rho_running shape", dict(sparsity_smoothing=0.5, rho_running=np.zeros(h + 1, dtype)),
         ValueError),
        ("rho_running dtype", dict(sparsity_smoothing=0.5,
                                   rho_running=np.zeros(h, np.float16)), TypeError),
        ("running_batches < 0", dict(sparsity_smoothing=0.5, rho_running=np.zeros(h, dtype),
                                     running_batches=-2), ValueError),
    ], m_ok, v_ok


@pytest.mark.parametrize("backend", ["c", "python"])
@pytest.mark.parametrize("call", ["sgd_epoch", "sgd_step"])
def test_bad_arguments_raise_before_anything_changes(backend, dtype, call):
    module = BACKENDS[backend]
    params, X = problem(10, 5, 4, dtype, seed=13)
    cases, m_ok, v_ok = _bad_cases(params, dtype)
    for name, over, exc in cases:
        p = copies(params)
        m, v = copies(m_ok), copies(v_ok)
        q = over.get("rho_running")
        kw = dict(HYPER, learning_rate=0.01, solver="adam", adam_m=m, adam_v=v)
        kw.update(over)
        if call == "sgd_epoch":
            kw["batch_size"] = 3
        before = _snapshot(p, m, v) + ([q.copy()] if isinstance(q, np.ndarray) else [])
        with pytest.raises(exc):
            getattr(module, call)(p, None, X, **kw)
            pytest.fail(f"{name} was accepted")  # pragma: no cover
        _unchanged(before, p, m, v, (q,) if isinstance(q, np.ndarray) else ())


def test_engine_rejects_non_contiguous_moments(dtype):
    params, X = problem(10, 5, 4, dtype, seed=14)
    m = zeros_like(params)
    v = tuple(np.zeros((2,) + a.shape, dtype)[0] if a.ndim == 1 else
              np.zeros((a.shape[1], a.shape[0]), dtype).T for a in params)
    p = copies(params)
    with pytest.raises(ValueError):
        eng.sgd_epoch(p, None, X, solver="adam", adam_m=m, adam_v=v, learning_rate=0.01,
                      batch_size=3, **HYPER)
    _unchanged(_snapshot(params), p)
    assert all(not np.any(a) for a in m)


def test_tolerances_table_is_used():
    # The comparisons above rely on conftest's table; keep it what the
    # project promises (float64 1e-10, float32 1e-4).
    assert RTOL[np.float64] == 1e-10 and RTOL[np.float32] == 1e-4


# --------------------------------------------------------------------------
# solver="adam" in the estimator
# --------------------------------------------------------------------------

pytestmark = pytest.mark.filterwarnings("ignore::csae.LearnedNothingWarning")

X = make_bars(120, size=6, random_state=0)
SETTINGS = dict(rho=0.1, beta=1.0, lam=1e-3, decoder="sigmoid")


def engine_has_adam():
    from csae import _engine
    W, b, Wd, bd = (np.zeros((2, 3)), np.zeros(2), np.zeros((3, 2)), np.zeros(3))
    try:
        _engine.sgd_epoch((W, b, Wd, bd), None, np.zeros((1, 3)), rho=0.1, beta=0.0, lam=0.0,
                          learning_rate=0.1, batch_size=1, solver="adam",
                          adam_m=tuple(np.zeros_like(p) for p in (W, b, Wd, bd)),
                          adam_v=tuple(np.zeros_like(p) for p in (W, b, Wd, bd)))
    except TypeError:
        return False
    return True


@pytest.fixture(params=["c", "python"])
def backend(request):
    if request.param == "c" and not engine_has_adam():
        pytest.skip("the C engine does not take solver='adam' yet (CONTRACT section 1)")
    return request.param


def model(backend, **kw):
    settings = dict(n_hidden=8, sparsity_target=0.1, sparsity_weight=1.0, weight_decay=1e-3,
                    solver="adam", learning_rate=0.01, batch_size=16, tol=0, backend=backend,
                    random_state=0)
    settings.update(kw)
    return SparseAutoencoder(**settings)


def params_of(m):
    return (m.encoder_weights_, m.encoder_bias_, m.decoder_weights_, m.decoder_bias_)


def assert_same_state(a, b):
    for x, y in zip(params_of(a), params_of(b)):
        np.testing.assert_array_equal(x, y)
    for field in ("adam_m", "adam_v"):
        for x, y in zip(getattr(a._state, field), getattr(b._state, field)):
            np.testing.assert_array_equal(x, y)
    assert a._state.adam_t == b._state.adam_t
    assert a._state.running_batches == b._state.running_batches
    if a._state.rho_running is None:
        assert b._state.rho_running is None
    else:
        np.testing.assert_array_equal(a._state.rho_running, b._state.rho_running)
    assert a.loss_curve_ == b.loss_curve_


# --------------------------------------------------------------------------
# The Adam step itself, from the reference's gradients
# --------------------------------------------------------------------------

def test_the_first_adam_step_is_lr_times_the_gradient_sign(backend):
    """From zero moments, bias correction makes the first step
    lr * g / (|g| + eps / sqrt(1 - beta_2)) for each weight (g including
    weight decay): about lr times the gradient's sign."""
    m = model(backend, batch_size=len(X), max_epochs=1, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X)
    W0, _ = ref.init_params(X.shape[1], 8, csae._validation.derive_seed(0))
    _, grads = ref.objective_and_gradients(W0, X, **SETTINGS)
    eps = 1e-8 / np.sqrt(1 - 0.999)
    for p0, g, p1 in zip(W0, grads, params_of(m)):
        np.testing.assert_allclose(p1, p0 - 0.01 * g / (np.abs(g) + eps), rtol=1e-9,
                                   atol=1e-12)
    assert m._state.adam_t == 1


# --------------------------------------------------------------------------
# State carried by partial_fit, warm_start, pickling, save/load
# --------------------------------------------------------------------------

@pytest.mark.parametrize("estimate", ["batch", "running"])
def test_partial_fit_k_times_equals_fit_k_epochs(backend, estimate):
    fitted = model(backend, max_epochs=4, sparsity_estimate=estimate).fit(X)
    step = model(backend, sparsity_estimate=estimate)
    for _ in range(4):
        step.partial_fit(X)
    assert_same_state(fitted, step)
    assert fitted._state.adam_t == 4 * 8  # ceil(120 / 16) minibatches per epoch
    if estimate == "running":
        assert fitted._state.running_batches == 32
        assert fitted._state.rho_running.shape == (8,)


def test_warm_start_continues_like_one_longer_fit(backend):
    long = model(backend, max_epochs=5, sparsity_estimate="running").fit(X)
    warm = model(backend, max_epochs=2, sparsity_estimate="running").fit(X)
    warm.set_params(warm_start=True, max_epochs=3).fit(X)
    assert_same_state(long, warm)
    # warm_start=False starts over.
    cold = warm.set_params(warm_start=False, max_epochs=2).fit(X)
    assert cold.n_iter_ == 2 and cold._state.adam_t == 16


def test_warm_start_from_assigned_weights(backend):
    W0, _ = ref.init_params(X.shape[1], 8, 12345)
    m = model(backend, warm_start=True, max_epochs=2)
    m.encoder_weights_, m.encoder_bias_, m.decoder_weights_, m.decoder_bias_ = W0
    m.fit(X)
    steps = model(backend)
    steps.encoder_weights_, steps.encoder_bias_, steps.decoder_weights_, steps.decoder_bias_ = W0
    steps.partial_fit(X)
    steps.partial_fit(X)
    assert_same_state(m, steps)
    assert not np.array_equal(m.encoder_weights_, W0[0])


def test_warm_start_refuses_another_n_hidden():
    m = model("python", max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="warm_start.*n_hidden"):
        m.set_params(warm_start=True, n_hidden=5).fit(X)
    assert m.encoder_weights_.shape == (8, 36)


@pytest.mark.parametrize("how", ["pickle", "save"])
def test_pickle_and_save_carry_m_v_t_and_q(backend, tmp_path, how):
    m = model(backend, max_epochs=3, sparsity_estimate="running").fit(X)
    if how == "pickle":
        back = pickle.loads(pickle.dumps(m))
    else:
        m.save(tmp_path / "m.npz")
        back = csae.load(tmp_path / "m.npz")
    assert_same_state(m, back)
    # Continuing gives the same model as continuing the original.
    m.partial_fit(X)
    back.partial_fit(X)
    assert_same_state(m, back)
    assert back._state.adam_t == 4 * 8


def test_switching_solvers_starts_fresh_moments():
    m = model("python", solver="sgd", momentum=0.5, max_epochs=2).fit(X)
    assert m._state.adam_m is None and m._state.velocity is not None
    m.set_params(solver="adam", warm_start=True, max_epochs=1).fit(X)
    assert m._state.adam_t == 8 and m._state.velocity is not None
    pytest.importorskip("scipy")
    m.set_params(solver="lbfgs", max_epochs=3).fit(X)
    assert m._state.adam_m is None and m._state.adam_t == 0


# --------------------------------------------------------------------------
# Backends, dtypes, faults
# --------------------------------------------------------------------------

def test_c_and_reference_agree_for_adam():
    if not engine_has_adam():
        pytest.skip("the C engine does not take solver='adam' yet")
    for estimate in ("batch", "running"):
        a = model("c", max_epochs=5, sparsity_estimate=estimate).fit(X)
        b = model("python", max_epochs=5, sparsity_estimate=estimate).fit(X)
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)
        for x, y in zip(params_of(a), params_of(b)):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
        f32 = model("c", max_epochs=5, sparsity_estimate=estimate, dtype="float32").fit(X)
        assert f32.encoder_weights_.dtype == np.float32
        np.testing.assert_allclose(f32.loss_curve_, a.loss_curve_, rtol=1e-3)


def test_ctrl_c_under_adam_keeps_the_completed_epochs(backend, monkeypatch):
    two = model(backend, max_epochs=2).fit(X)
    failing_epoch(monkeypatch, backend, KeyboardInterrupt, on_call=3)
    m = model(backend, max_epochs=10)
    with pytest.warns(csae.TrainingInterruptedWarning, match="epoch 3"):
        m.fit(X)
    assert_same_state(two, m)


def test_divergence_under_adam_keeps_a_usable_model(backend, tmp_path):
    wide = np.random.default_rng(19).normal(0, 100, size=(40, 6))
    m = model(backend, decoder="linear", learning_rate=1e5, weight_decay=10.0,
              batch_size=10, max_epochs=50)
    with pytest.warns(csae.TrainingDivergedWarning):
        m.fit(wide)
    if m.__sklearn_is_fitted__():
        assert all(np.isfinite(p).all() for p in params_of(m))
        m.save(tmp_path / "m.npz")
        csae.load(tmp_path / "m.npz")


@pytest.mark.parametrize("name, value, match", [
    ("solver", "rmsprop", r"solver must be one of \('sgd', 'adam', 'lbfgs'\)"),
    ("beta_1", 1.0, "beta_1 must be in"), ("beta_1", -0.1, "beta_1 must be in"),
    ("beta_2", 1.0, "beta_2 must be in"), ("epsilon", 0.0, "epsilon must be"),
    ("epsilon", -1e-8, "epsilon must be"),
    ("sparsity_estimate", "ema", r"sparsity_estimate must be one of \('batch', 'running'\)"),
    ("sparsity_smoothing", 0.0, "sparsity_smoothing must be in"),
    ("sparsity_smoothing", 1.5, "sparsity_smoothing must be in"),
    ("max_fun", 0, "max_fun must be"),
])
def test_bad_values_are_refused_before_anything_changes(name, value, match, tmp_path):
    m = model("python", max_epochs=2).fit(X)
    m.save(tmp_path / "before.npz")
    before = dict(np.load(tmp_path / "before.npz"))
    for method in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match=match):
            getattr(SparseAutoencoder, method)(m.set_params(**{name: value}), X)
        m.set_params(**{name: model("python").get_params()[name]})
    m.save(tmp_path / "after.npz")
    after = dict(np.load(tmp_path / "after.npz"))
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


def test_get_params_lists_the_new_hyperparameters_with_their_defaults():
    params = SparseAutoencoder().get_params()
    assert {k: params[k] for k in ("beta_1", "beta_2", "epsilon", "warm_start",
                                   "early_stopping", "validation_fraction",
                                   "n_iter_no_change", "tol", "sparsity_estimate",
                                   "sparsity_smoothing", "solver")} == {
        "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "warm_start": False,
        "early_stopping": False, "validation_fraction": 0.1, "n_iter_no_change": 10,
        "tol": 1e-5, "sparsity_estimate": "batch", "sparsity_smoothing": 0.1,
        "solver": "lbfgs"}


# --------------------------------------------------------------------------
# The running estimate on the bars data with batch_size=1
# --------------------------------------------------------------------------

def test_running_estimate_with_batch_size_1_on_bars():
    """With one sample per minibatch the "batch" estimate is that sample's
    own activation, so the KL gradient pulls every unit to rho on every
    sample: the mean activation lands near rho, but no unit is selective
    and nothing is learned.  The running estimate averages over minibatches
    as the full-batch rho_hat does: the mean activation lands within 25% of
    rho, and the units code the bars.  (docs/math.md states the measured
    numbers.)"""
    Xb = make_bars(500, size=8, random_state=0)
    rho = 0.1
    runs = {}
    for estimate, tau in (("running", 0.01), ("batch", 0.1)):
        m = SparseAutoencoder(solver="sgd", n_hidden=25, sparsity_target=rho,
                              sparsity_weight=6.0, weight_decay=1e-3, learning_rate=0.05,
                              batch_size=1,
                              max_epochs=10, tol=0, sparsity_estimate=estimate,
                              sparsity_smoothing=tau, backend="python", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(Xb)
        H = m.transform(Xb)
        mse = np.mean((m.reconstruct(Xb) - Xb) ** 2) / np.mean((Xb - Xb.mean(0)) ** 2)
        runs[estimate] = (H.mean(), H.std(axis=0).mean(), mse)
    mean, spread, mse = runs["running"]
    assert abs(mean - rho) <= 0.25 * rho
    assert spread > 0.1 and mse < 0.7
    mean, spread, mse = runs["batch"]
    assert abs(mean - rho) <= 0.1 * rho   # close to rho ...
    assert spread < 0.05 and mse > 0.9    # ... because every unit sits at rho
