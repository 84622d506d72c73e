"""Adam (scikit-learn's convention) in the C engine and the reference.

The engine is compared with the reference on every kernel path (float64
1e-10, float32 1e-4 relative, conftest.RTOL); the reference itself with an
Adam step written out here by hand; state carried over epochs with one
continuous run; failures and bad arguments with "nothing changed".
"""

import math

import numpy as np
import pytest

from conftest import RTOL, assert_close, copies, engine, zeros_like
from conftest import random_problem as problem

from csae import reference as ref
from csae._errors import NonFiniteError

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
