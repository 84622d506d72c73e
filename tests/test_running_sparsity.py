"""The running sparsity estimate (sparsity_smoothing) in the C engine and the
reference: engine against reference on every kernel path, and the definition
checked step by step with quantities computed here (rho_hat from encode, the
gradient from objective_and_gradients plus the change of s)."""

import functools

import numpy as np
import pytest

from conftest import assert_close, copies, engine, random_problem, zeros_like

from csae import reference as ref
from csae._errors import NonFiniteError

eng = engine()
HYPER = dict(rho=0.1, beta=3.0, lam=1e-3)
# Hidden biases spread wider (0.5) than conftest's default.
problem = functools.partial(random_problem, bias_scale=0.5)
BACKENDS = {"c": eng, "python": ref}


# --------------------------------------------------------------------------
# Engine against the reference
# --------------------------------------------------------------------------

@pytest.mark.parametrize("solver,momentum", [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.0)])
@pytest.mark.parametrize("batch_size,shuffle", [(1, True), (4, False), (13, True)])
@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_running_epochs_match_reference(kernel_path, dtype, solver, momentum, batch_size,
                                        shuffle, tau):
    params, X = problem(30, 8, 6, dtype, seed=1)
    kw = dict(HYPER, learning_rate=0.01 if solver == "adam" else 0.1, momentum=momentum,
              batch_size=batch_size, shuffle=shuffle, solver=solver, sparsity_smoothing=tau)
    runs = []
    for module in (eng, ref):
        p, vel, m, v = copies(params), zeros_like(params), zeros_like(params), zeros_like(params)
        q = np.zeros(6, dtype)
        done, state, losses = 0, 3, []
        for _ in range(2):
            loss, state = module.sgd_epoch(p, vel, X, rng_state=state, adam_m=m, adam_v=v,
                                           adam_t=done, rho_running=q, running_batches=done,
                                           **kw)
            losses.append(loss)
            done += -(-30 // batch_size)
        runs.append((p + vel + m + v + (q,), losses))
    for a, b in zip(runs[0][0], runs[1][0]):
        assert a.dtype == dtype
        assert_close(a, b, dtype)
    assert_close(runs[0][1], runs[1][1], dtype)


def test_running_threads_bit_identical(kernel_path, dtype):
    params, X = problem(64, 200, 180, dtype, seed=2)
    runs = []
    for n_threads in (1, 2):
        p, q = copies(params), np.zeros(180, dtype)
        eng.sgd_epoch(p, None, X, learning_rate=0.05, batch_size=16, sparsity_smoothing=0.2,
                      rho_running=q, n_threads=n_threads, **HYPER)
        runs.append(p + (q,))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# The definition, step by step
# --------------------------------------------------------------------------

def _rho_hat(params, X):
    W, b = params[0].astype(np.float64), params[1].astype(np.float64)
    return ref.sigmoid(X.astype(np.float64) @ W.T + b).mean(axis=0)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_q_follows_its_definition(backend, dtype):
    """q = rho_hat of its first minibatch, then (1 - tau) q + tau rho_hat of
    each minibatch at the weights that minibatch sees."""
    module = BACKENDS[backend]
    params, X = problem(12, 5, 4, dtype, seed=3)
    tau = 0.3
    p, q = copies(params), np.full(4, 123.0, dtype)  # overwritten by the first batch
    expected = None
    for k in range(3):
        batch = X[4 * k:4 * k + 4]
        r = _rho_hat(p, batch)
        expected = r if expected is None else (1 - tau) * expected + tau * r
        module.sgd_step(p, None, batch, learning_rate=0.1, sparsity_smoothing=tau,
                        rho_running=q, running_batches=k, **HYPER)
        assert_close(q, expected, dtype)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_carried_q_is_used_when_running_batches_positive(backend, dtype):
    module = BACKENDS[backend]
    params, X = problem(6, 5, 4, dtype, seed=4)
    q0 = np.array([0.05, 0.2, 0.5, 0.9], dtype)
    q = q0.copy()
    r = _rho_hat(params, X)
    module.sgd_step(copies(params), None, X, learning_rate=0.1, sparsity_smoothing=0.25,
                    rho_running=q, running_batches=5, **HYPER)
    assert_close(q, 0.75 * q0.astype(np.float64) + 0.25 * r, dtype)


def _kl_derivative(q, rho, beta, dtype):
    eps = ref.rho_hat_clip(dtype)
    q = np.clip(q.astype(np.float64), eps, 1 - eps)
    return beta * (-rho / q + (1 - rho) / (1 - q))


@pytest.mark.parametrize("backend", ["c", "python"])
@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_step_uses_q_in_the_backward_pass(backend, dtype, decoder):
    """A plain SGD step with the running estimate moves the parameters by
    -lr * (the batch gradient with s(rho_hat) replaced by s(q)).  The batch
    gradient is linear in s: the encoder's gradients change by
    (s(q) - s(rho_hat))/m * A(1 - A) back-propagated through X; the
    decoder's do not change.  The returned objective is the batch's own."""
    module = BACKENDS[backend]
    params, X = problem(7, 5, 4, dtype, seed=5, decoder=decoder)
    hyper = dict(HYPER, decoder=decoder)
    q0 = np.array([0.02, 0.3, 0.6, 0.97], dtype)
    tau, lr = 0.4, 0.05
    A = ref.sigmoid(X.astype(np.float64) @ params[0].T.astype(np.float64)
                    + params[1].astype(np.float64))
    r = A.mean(axis=0)
    q_new = (1 - tau) * q0.astype(np.float64) + tau * r
    ds = (_kl_derivative(q_new, 0.1, 3.0, dtype) - _kl_derivative(r, 0.1, 3.0, dtype)) / len(X)
    delta = ds * A * (1 - A)
    L64, g = ref.objective_and_gradients(tuple(a.astype(np.float64) for a in params),
                                         X.astype(np.float64), **hyper)
    g = list(g)
    g[0] = g[0] + delta.T @ X.astype(np.float64)
    g[1] = g[1] + delta.sum(axis=0)
    p, q = copies(params), q0.copy()
    loss = module.sgd_step(p, None, X, learning_rate=lr, sparsity_smoothing=tau,
                           rho_running=q, running_batches=1, **hyper)
    assert_close(loss, L64, dtype)
    for after, before, gk in zip(p, params, g):
        step = (before.astype(np.float64) - after.astype(np.float64)) / lr
        # float32: the step is a difference of nearby parameters.
        assert_close(step, gk, dtype, scale=max(1.0, float(np.max(np.abs(gk)))) * (
            1.0 if dtype == np.float64 else 100.0))


@pytest.mark.parametrize("backend", ["c", "python"])
def test_tau_one_is_the_per_batch_estimate(backend, dtype):
    """tau = 1: q is each minibatch's own rho_hat, so training is the same as
    without the running estimate (bit for bit where both take the same
    path: the engine's one-row SGD without it takes the fused step)."""
    module = BACKENDS[backend]
    params, X = problem(20, 6, 5, dtype, seed=6)
    for batch_size in (1, 6):
        kw = dict(HYPER, learning_rate=0.1, momentum=0.5, batch_size=batch_size,
                  shuffle=True, rng_state=9)
        p1, v1 = copies(params), zeros_like(params)
        l1, _ = module.sgd_epoch(p1, v1, X, **kw)
        p2, v2, q = copies(params), zeros_like(params), np.zeros(5, dtype)
        l2, _ = module.sgd_epoch(p2, v2, X, sparsity_smoothing=1.0, rho_running=q, **kw)
        for a, b in zip(p1 + v1, p2 + v2):
            if batch_size > 1 or backend == "python":
                np.testing.assert_array_equal(a, b)
            else:
                assert_close(a, b, dtype)
        assert_close(l1, l2, dtype)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_running_state_across_epochs_equals_one_run(backend, dtype):
    module = BACKENDS[backend]
    params, X = problem(15, 6, 5, dtype, seed=7)
    kw = dict(HYPER, learning_rate=0.01, batch_size=5, solver="adam", sparsity_smoothing=0.1)
    p1, m1, v1, q1 = copies(params), zeros_like(params), zeros_like(params), np.zeros(5, dtype)
    for epoch in range(2):
        module.sgd_epoch(p1, None, X, adam_m=m1, adam_v=v1, adam_t=3 * epoch, rho_running=q1,
                         running_batches=3 * epoch, **kw)
    p2, m2, v2, q2 = copies(params), zeros_like(params), zeros_like(params), np.zeros(5, dtype)
    module.sgd_epoch(p2, None, np.vstack([X, X]), adam_m=m2, adam_v=v2, rho_running=q2, **kw)
    for a, b in zip(p1 + m1 + v1 + (q1,), p2 + m2 + v2 + (q2,)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_nonfinite_step_leaves_q_alone(kernel_path, backend, dtype):
    module = BACKENDS[backend]
    params, X = problem(8, 5, 4, dtype, seed=8)
    X = X.copy()
    X[6, 0] = np.nan
    p, q = copies(params), np.full(4, 0.25, dtype)
    with pytest.raises(NonFiniteError) as err:
        module.sgd_epoch(p, None, X, learning_rate=0.1, batch_size=2, sparsity_smoothing=0.5,
                         rho_running=q, running_batches=0, **HYPER)
    assert err.value.batch == 3
    # q is what the three finite minibatches made of it.
    p_ref, q_ref = copies(params), np.full(4, 0.25, dtype)
    module.sgd_epoch(p_ref, None, X[:6], learning_rate=0.1, batch_size=2,
                     sparsity_smoothing=0.5, rho_running=q_ref, **HYPER)
    np.testing.assert_array_equal(q, q_ref)
    for a, b in zip(p, p_ref):
        np.testing.assert_array_equal(a, b)
