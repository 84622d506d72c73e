"""The pure-NumPy reference (csae.reference) against the mathematics.

Nothing here uses the C engine.  Expected values come from MATH.md, computed
independently in this file: by hand for tiny cases, by a per-sample re-coding
of the gradient formulas, by central finite differences of the objective (the
ground truth), and by a pure-integer SplitMix64 checked against the published
outputs of Vigna's C reference.

Tolerances (stated where used):
  * finite differences, float64: GRADCHECK_TOL (1e-6) relative to the
    largest |gradient| entry of the array being checked;
  * re-coded formulas / hand loops, float64: 1e-12 relative (the only
    difference is summation order);
  * hand-computed scalars: 1e-13 relative.
"""

import math

import numpy as np
import pytest

from conftest import GRADCHECK_TOL

from csae import reference as ref
from csae._errors import NonFiniteError

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
DECODERS = ("sigmoid", "linear")


# --------------------------------------------------------------------------
# Independent helpers (written from MATH.md, not from the reference)
# --------------------------------------------------------------------------

def make_problem(m, n, h, decoder, seed, dtype=np.float64, scale=0.5):
    """Random parameters and data: X in [0, 1] for the sigmoid decoder,
    roughly standard normal for the linear one."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0, scale, (h, n))
    b = rng.normal(0, scale, h)
    Wd = rng.normal(0, scale, (n, h))
    bd = rng.normal(0, scale, n)
    if decoder == "sigmoid":
        X = rng.uniform(0, 1, (m, n))
    else:
        X = rng.normal(0, 1, (m, n))
    params = tuple(np.ascontiguousarray(p, dtype=dtype) for p in (W, b, Wd, bd))
    return params, np.ascontiguousarray(X, dtype=dtype)


def copy_params(params):
    return tuple(p.copy() for p in params)


def _sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def my_objective_and_gradients(params, X, rho, beta, lam, decoder,
                               slip_sparsity=False, slip_decay=False):
    """MATH.md, coded sample by sample in float64 with scalar math.

    ``slip_sparsity`` puts s/m outside f'(z1) and ``slip_decay`` uses 2 W for
    the weight-decay gradient: the two slips MATH.md warns against.
    """
    W, b, Wd, bd = (np.asarray(p, dtype=np.float64) for p in params)
    X = np.asarray(X, dtype=np.float64)
    m, n = X.shape
    h = W.shape[0]
    eps = 1e-12
    A = np.empty((m, h))
    Y = np.empty((m, n))
    for k in range(m):
        for j in range(h):
            A[k, j] = _sig(sum(W[j, i] * X[k, i] for i in range(n)) + b[j])
        for i in range(n):
            z2 = sum(Wd[i, j] * A[k, j] for j in range(h)) + bd[i]
            Y[k, i] = _sig(z2) if decoder == "sigmoid" else z2
    rho_hat = [min(max(sum(A[k, j] for k in range(m)) / m, eps), 1 - eps)
               for j in range(h)]
    loss = sum((Y[k, i] - X[k, i]) ** 2 for k in range(m) for i in range(n)) / m
    loss += lam * (sum(w * w for w in W.ravel()) + sum(w * w for w in Wd.ravel()))
    loss += beta * sum(rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q))
                       for q in rho_hat)
    s = [beta * (-rho / q + (1 - rho) / (1 - q)) for q in rho_hat]

    dW = np.zeros((h, n))
    db = np.zeros(h)
    dWd = np.zeros((n, h))
    dbd = np.zeros(n)
    for k in range(m):
        d3 = np.empty(n)
        for i in range(n):
            gprime = Y[k, i] * (1 - Y[k, i]) if decoder == "sigmoid" else 1.0
            d3[i] = 2.0 / m * (Y[k, i] - X[k, i]) * gprime
        for i in range(n):
            dbd[i] += d3[i]
            for j in range(h):
                dWd[i, j] += d3[i] * A[k, j]
        for j in range(h):
            back = sum(d3[i] * Wd[i, j] for i in range(n))
            fprime = A[k, j] * (1 - A[k, j])
            if slip_sparsity:
                d2 = back * fprime + s[j] / m
            else:
                d2 = (back + s[j] / m) * fprime
            db[j] += d2
            for i in range(n):
                dW[j, i] += d2 * X[k, i]
    decay = 2.0 if slip_decay else 2.0 * lam
    dW += decay * W
    dWd += decay * Wd
    return loss, (dW, db, dWd, dbd)


def finite_difference_gradients(params, X, rho, beta, lam, decoder, step=1e-5):
    """Central differences of reference.objective, float64, entry by entry."""
    params = copy_params(params)
    grads = []
    for p in params:
        g = np.empty_like(p)
        flat = p.reshape(-1)
        gflat = g.reshape(-1)
        for idx in range(flat.size):
            old = flat[idx]
            flat[idx] = old + step
            up = ref.objective(params, X, rho=rho, beta=beta, lam=lam, decoder=decoder)
            flat[idx] = old - step
            down = ref.objective(params, X, rho=rho, beta=beta, lam=lam, decoder=decoder)
            flat[idx] = old
            gflat[idx] = (up - down) / (2 * step)
        grads.append(g)
    return tuple(grads)


def gradcheck_error(grads, fd_grads):
    """Worst, over the four arrays, of max|g - fd| / max|fd| (per array)."""
    worst = 0.0
    for g, f in zip(grads, fd_grads):
        scale = max(float(np.max(np.abs(f))), 1e-12)
        worst = max(worst, float(np.max(np.abs(g - f))) / scale)
    return worst


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def assert_params_rel(actual, expected, tol):
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert rel_err(a, e) <= tol, rel_err(a, e)


def splitmix64_ints(state, count):
    """Vigna's splitmix64.c, on Python integers."""
    out = []
    for _ in range(count):
        state = (state + GAMMA) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return out, state


def my_permutation(m, state):
    """Fisher-Yates, i = m-1 .. 1, j uniform in [0, i] by rejection of the
    lowest (2^64 mod (i+1)) outputs, as csae.h describes."""
    order = list(range(m))
    for i in range(m - 1, 0, -1):
        bound = i + 1
        threshold = ((1 << 64) - bound) % bound
        while True:
            (r,), state = splitmix64_ints(state, 1)
            if r >= threshold:
                break
        j = r % bound
        order[i], order[j] = order[j], order[i]
    return order, state


# --------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------

GRAD_CASES = [
    # (m, n, h, rho, beta, lam)
    (7, 5, 4, 0.1, 3.0, 1e-2),     # every term active
    (6, 3, 5, 0.2, 0.0, 0.0),      # reconstruction only, h > n
    (5, 4, 3, 0.05, 2.0, 0.0),     # sparsity only added
    (4, 4, 2, 0.3, 0.0, 0.05),     # weight decay only added
    (1, 1, 1, 0.1, 1.0, 1e-3),     # single sample, 1 x 1 x 1
]


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("m,n,h,rho,beta,lam", GRAD_CASES)
def test_reference_gradients_match_finite_differences(decoder, m, n, h, rho, beta, lam):
    params, X = make_problem(m, n, h, decoder, seed=m * 100 + n * 10 + h)
    kw = dict(rho=rho, beta=beta, lam=lam, decoder=decoder)
    loss, grads = ref.objective_and_gradients(params, X, **kw)
    fd = finite_difference_gradients(params, X, **kw)
    err = gradcheck_error(grads, fd)
    assert err <= GRADCHECK_TOL[np.float64], f"gradient check error {err:.3g}"
    for g, p in zip(grads, params):
        assert g.shape == p.shape and g.dtype == np.float64
    assert isinstance(loss, float)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("m,n,h,rho,beta,lam", GRAD_CASES)
def test_reference_gradients_match_recoded_formulas(decoder, m, n, h, rho, beta, lam):
    params, X = make_problem(m, n, h, decoder, seed=m + n + h)
    kw = dict(rho=rho, beta=beta, lam=lam, decoder=decoder)
    loss, grads = ref.objective_and_gradients(params, X, **kw)
    my_loss, my_grads = my_objective_and_gradients(params, X, rho, beta, lam, decoder)
    assert abs(loss - my_loss) <= 1e-12 * abs(my_loss)
    assert_params_rel(grads, my_grads, 1e-12)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("slip", ["sparsity_outside_fprime", "decay_2W"])
def test_gradient_check_catches_the_two_slips(decoder, slip):
    """The finite-difference check used above is sharp enough to reject the
    two slips MATH.md corrects (s/m outside f'(z1); 2 W instead of
    2 lambda W), while the correct formulas pass it."""
    rho, beta, lam = 0.1, 3.0, 1e-2
    params, X = make_problem(6, 4, 3, decoder, seed=11)
    fd = finite_difference_gradients(params, X, rho, beta, lam, decoder)
    _, good = my_objective_and_gradients(params, X, rho, beta, lam, decoder)
    _, bad = my_objective_and_gradients(
        params, X, rho, beta, lam, decoder,
        slip_sparsity=(slip == "sparsity_outside_fprime"),
        slip_decay=(slip == "decay_2W"))
    assert gradcheck_error(good, fd) <= GRADCHECK_TOL[np.float64]
    assert gradcheck_error(bad, fd) > 1e3 * GRADCHECK_TOL[np.float64]
    # ... and the reference is not the slipped version.
    _, grads = ref.objective_and_gradients(params, X, rho=rho, beta=beta, lam=lam,
                                           decoder=decoder)
    assert gradcheck_error(grads, fd) <= GRADCHECK_TOL[np.float64]
    assert max(rel_err(g, s) for g, s in zip(grads, bad)) > 1e-3


def test_weight_decay_excludes_biases():
    """Biases are not decayed: with zero data error and beta = 0 only W and
    Wd feel lambda."""
    params, X = make_problem(5, 3, 2, "linear", seed=3)
    kw = dict(rho=0.1, beta=0.0, decoder="linear")
    L0, g0 = ref.objective_and_gradients(params, X, lam=0.0, **kw)
    L1, g1 = ref.objective_and_gradients(params, X, lam=0.25, **kw)
    W, b, Wd, bd = params
    expected = 0.25 * (np.sum(W ** 2) + np.sum(Wd ** 2))
    assert abs((L1 - L0) - expected) <= 1e-12 * expected
    np.testing.assert_allclose(g1[0] - g0[0], 0.5 * W, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g1[2] - g0[2], 0.5 * Wd, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(g1[1], g0[1])
    np.testing.assert_array_equal(g1[3], g0[3])


# --------------------------------------------------------------------------
# Objective by hand
# --------------------------------------------------------------------------

@pytest.mark.parametrize("decoder", DECODERS)
def test_objective_by_hand_1x1x1(decoder):
    x, w, b, wd, bd = 0.3, 0.5, -0.2, 0.7, 0.1
    rho, beta, lam = 0.1, 2.0, 0.01
    a = 1.0 / (1.0 + math.exp(-(w * x + b)))
    z2 = wd * a + bd
    y = 1.0 / (1.0 + math.exp(-z2)) if decoder == "sigmoid" else z2
    expected = ((y - x) ** 2
                + lam * (w ** 2 + wd ** 2)
                + beta * (rho * math.log(rho / a) + (1 - rho) * math.log((1 - rho) / (1 - a))))
    params = (np.array([[w]]), np.array([b]), np.array([[wd]]), np.array([bd]))
    X = np.array([[x]])
    L = ref.objective(params, X, rho=rho, beta=beta, lam=lam, decoder=decoder)
    assert isinstance(L, float)
    assert abs(L - expected) <= 1e-13 * expected
    # The forward pass, by hand too.
    assert abs(ref.encode(params[0], params[1], X)[0, 0] - a) <= 1e-15
    assert abs(ref.reconstruct(params, X, decoder)[0, 0] - y) <= 1e-15


@pytest.mark.parametrize("decoder", DECODERS)
def test_objective_by_hand_two_samples(decoder):
    """1/m on the reconstruction and rho_hat as the mean over the batch."""
    xs = [0.3, 0.9]
    w, b, wd, bd = 1.5, -0.4, -0.8, 0.2
    rho, beta, lam = 0.2, 0.7, 0.003
    a = [1.0 / (1.0 + math.exp(-(w * x + b))) for x in xs]
    z2 = [wd * ak + bd for ak in a]
    y = [1.0 / (1.0 + math.exp(-z)) if decoder == "sigmoid" else z for z in z2]
    q = (a[0] + a[1]) / 2
    expected = (((y[0] - xs[0]) ** 2 + (y[1] - xs[1]) ** 2) / 2
                + lam * (w ** 2 + wd ** 2)
                + beta * (rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q))))
    params = (np.array([[w]]), np.array([b]), np.array([[wd]]), np.array([bd]))
    L = ref.objective(params, np.array([[xs[0]], [xs[1]]]), rho=rho, beta=beta, lam=lam,
                      decoder=decoder)
    assert abs(L - expected) <= 1e-13 * expected


def test_objective_without_gradients():
    params, X = make_problem(4, 3, 2, "sigmoid", seed=5)
    kw = dict(rho=0.1, beta=1.0, lam=1e-3, decoder="sigmoid")
    L, grads = ref.objective_and_gradients(params, X, need_gradients=False, **kw)
    assert grads is None
    assert L == ref.objective(params, X, **kw)
    assert L == ref.objective_and_gradients(params, X, **kw)[0]


def test_forward_by_hand_loops():
    params, X = make_problem(3, 4, 2, "sigmoid", seed=8)
    W, b, Wd, bd = params
    A = ref.encode(W, b, X)
    Y = ref.decode(Wd, bd, A, "sigmoid")
    Yl = ref.decode(Wd, bd, A, "linear")
    for k in range(3):
        for j in range(2):
            assert abs(A[k, j] - _sig(sum(W[j, i] * X[k, i] for i in range(4)) + b[j])) < 1e-15
        for i in range(4):
            z = sum(Wd[i, j] * A[k, j] for j in range(2)) + bd[i]
            assert abs(Yl[k, i] - z) < 1e-14
            assert abs(Y[k, i] - _sig(z)) < 1e-15
    np.testing.assert_array_equal(ref.reconstruct(params, X, "sigmoid"), Y)
    with pytest.raises(ValueError, match="decoder"):
        ref.decode(Wd, bd, A, "tanh")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_never_overflows(dtype):
    z = np.array([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4], dtype=dtype)
    s = ref.sigmoid(z)  # warnings are errors: an overflow would fail here
    assert s.dtype == dtype
    assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5


@pytest.mark.parametrize("decoder", DECODERS)
def test_float32_reference_computes_in_float32(decoder):
    params, X = make_problem(9, 6, 5, decoder, seed=21)
    p32 = tuple(p.astype(np.float32) for p in params)
    X32 = X.astype(np.float32)
    kw = dict(rho=0.1, beta=1.0, lam=1e-3, decoder=decoder)
    L64, g64 = ref.objective_and_gradients(tuple(p.astype(np.float64) for p in p32),
                                           X32.astype(np.float64), **kw)
    L32, g32 = ref.objective_and_gradients(p32, X32, **kw)
    assert all(g.dtype == np.float32 for g in g32)
    assert ref.encode(p32[0], p32[1], X32).dtype == np.float32
    assert ref.reconstruct(p32, X32, decoder).dtype == np.float32
    assert abs(L32 - L64) <= 1e-5 * L64
    assert_params_rel(g32, g64, 1e-4)


# --------------------------------------------------------------------------
# The rho_hat clip
# --------------------------------------------------------------------------

def test_rho_hat_clip_values():
    assert ref.rho_hat_clip(np.float64) == 1e-12
    assert ref.rho_hat_clip(np.float32) == 1e-6


@pytest.mark.parametrize("saturate_to", [0.0, 1.0])
def test_saturated_units_stay_finite_float64(saturate_to):
    """Biases of +-1000 make every activation exactly 0 or 1; the KL term
    then uses q = eps or 1 - eps (eps = 1e-12) and stays finite."""
    n, h, m = 3, 2, 4
    rho, beta, lam = 0.1, 3.0, 1e-3
    sign = 1.0 if saturate_to == 1.0 else -1.0
    params = (np.zeros((h, n)), np.full(h, sign * 1000.0),
              np.full((n, h), 0.1), np.zeros(n))
    X = np.linspace(0, 1, m * n).reshape(m, n)
    A = ref.encode(params[0], params[1], X)
    assert np.all(A == saturate_to)
    L, grads = ref.objective_and_gradients(params, X, rho=rho, beta=beta, lam=lam)
    assert np.isfinite(L)
    assert all(np.all(np.isfinite(g)) for g in grads)
    # Value: the sparsity part uses the clipped q.
    q = 1e-12 if saturate_to == 0.0 else 1 - 1e-12
    kl = rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q))
    L_no_sparsity = ref.objective(params, X, rho=rho, beta=0.0, lam=lam)
    assert abs((L - L_no_sparsity) - beta * h * kl) <= 1e-12 * beta * h * kl


def test_float32_clip_is_applied_in_float32():
    """float32 units saturated at 1: q = float32(1 - 1e-6) = 1 - 1.0132e-6,
    not 1 - 1e-6.  log(1 - q) is ill-conditioned there, so a backend that
    clips in double instead differs by ~1e-3 relative (10x the float32
    tolerance).  Pin the reference's choice, which backends must follow."""
    rho, beta, h = 0.05, 3.0, 4
    params = (np.zeros((h, 3), np.float32), np.full(h, 30.0, np.float32),
              np.zeros((3, h), np.float32), np.zeros(3, np.float32))
    X = np.full((2, 3), 0.5, np.float32)
    assert np.all(ref.encode(params[0], params[1], X) == 1.0)
    q = float(np.float32(1 - 1e-6))
    assert 1 - q > 1.01e-6
    kl = rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q))
    expected = beta * h * kl  # Y = sigmoid(0) = 0.5 = X: no reconstruction error
    L = ref.objective(params, X, rho=rho, beta=beta, lam=0.0)
    assert abs(L - expected) <= 1e-6 * expected


@pytest.mark.parametrize("decoder", DECODERS)
def test_saturated_units_stay_finite_float32(decoder):
    params = (np.full((2, 3), 60.0, np.float32), np.array([200.0, -200.0], np.float32),
              np.ones((3, 2), np.float32), np.zeros(3, np.float32))
    X = np.ones((5, 3), np.float32)
    L, grads = ref.objective_and_gradients(params, X, rho=0.05, beta=5.0, lam=1e-2,
                                           decoder=decoder)
    assert np.isfinite(L)
    assert all(np.all(np.isfinite(g)) for g in grads)


# --------------------------------------------------------------------------
# SGD
# --------------------------------------------------------------------------

HYPER = dict(rho=0.1, beta=2.0, lam=1e-3)


@pytest.mark.parametrize("decoder", DECODERS)
def test_sgd_step_is_theta_minus_lr_grad(decoder):
    params, X = make_problem(6, 4, 3, decoder, seed=31)
    lr = 0.3
    before = copy_params(params)
    L_expected, g = my_objective_and_gradients(before, X, HYPER["rho"], HYPER["beta"],
                                               HYPER["lam"], decoder)
    objects = [id(p) for p in params]
    L = ref.sgd_step(params, None, X, decoder=decoder, learning_rate=lr, **HYPER)
    assert [id(p) for p in params] == objects  # updated in place
    assert abs(L - L_expected) <= 1e-12 * L_expected  # objective before the update
    assert_params_rel(params, [t - lr * gi for t, gi in zip(before, g)], 1e-12)


@pytest.mark.parametrize("decoder", DECODERS)
def test_sgd_step_momentum_formula(decoder):
    params, X = make_problem(5, 3, 4, decoder, seed=32)
    lr, mu = 0.2, 0.9
    velocity = tuple(np.full_like(p, 0.01) for p in params)
    theta = [p.copy() for p in params]
    v = [q.copy() for q in velocity]
    for _ in range(3):
        _, g = my_objective_and_gradients(theta, X, HYPER["rho"], HYPER["beta"],
                                          HYPER["lam"], decoder)
        v = [mu * vi - lr * gi for vi, gi in zip(v, g)]
        theta = [t + vi for t, vi in zip(theta, v)]
        ref.sgd_step(params, velocity, X, decoder=decoder, learning_rate=lr,
                     momentum=mu, **HYPER)
    assert_params_rel(params, theta, 1e-12)
    assert_params_rel(velocity, v, 1e-12)


def test_sgd_step_nonfinite_update_leaves_parameters():
    """lr * g overflows to inf: nothing is applied (params nor velocity)."""
    params, X = make_problem(4, 3, 2, "linear", seed=33)
    X *= 5.0
    kw = dict(HYPER, decoder="linear")
    _, g = ref.objective_and_gradients(params, X, **kw)
    assert max(float(np.max(np.abs(gi))) for gi in g) > 2.0  # 1e308 * g overflows
    velocity = tuple(np.zeros_like(p) for p in params)
    before, vbefore = copy_params(params), copy_params(velocity)
    for mom, vel in ((0.0, None), (0.5, velocity)):
        with pytest.raises(NonFiniteError), np.errstate(over="ignore", invalid="ignore"):
            ref.sgd_step(params, vel, X, learning_rate=1e308, momentum=mom, **kw)
        for p, q in zip(params, before):
            np.testing.assert_array_equal(p, q)
        for p, q in zip(velocity, vbefore):
            np.testing.assert_array_equal(p, q)


def test_sgd_step_nan_data_raises():
    params, X = make_problem(4, 3, 2, "linear", seed=34)
    X[2, 1] = np.nan
    before = copy_params(params)
    with pytest.raises(NonFiniteError):
        ref.sgd_step(params, None, X, decoder="linear", learning_rate=0.1, **HYPER)
    for p, q in zip(params, before):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("m,batch_size", [(10, 3), (10, 1), (10, 10), (4, 7), (1, 1)])
@pytest.mark.parametrize("momentum", [0.0, 0.8])
def test_sgd_epoch_is_a_loop_of_steps(decoder, m, batch_size, momentum):
    params, X = make_problem(m, 4, 3, decoder, seed=40 + m)
    lr = 0.1
    velocity = tuple(np.zeros_like(p) for p in params) if momentum else None
    hand = copy_params(params)
    hand_v = copy_params(velocity) if momentum else None
    losses, rows = [], []
    for start in range(0, m, batch_size):
        batch = X[start:start + batch_size]
        losses.append(ref.sgd_step(hand, hand_v, batch, decoder=decoder, learning_rate=lr,
                                   momentum=momentum, **HYPER))
        rows.append(batch.shape[0])
    assert sum(rows) == m
    loss, state = ref.sgd_epoch(params, velocity, X, decoder=decoder, learning_rate=lr,
                                momentum=momentum, batch_size=batch_size, shuffle=False,
                                rng_state=12345, **HYPER)
    assert state == 12345  # no draws without shuffling
    assert abs(loss - np.dot(losses, rows) / m) <= 1e-12 * abs(loss)
    for p, q in zip(params, hand):
        np.testing.assert_array_equal(p, q)
    if momentum:
        for p, q in zip(velocity, hand_v):
            np.testing.assert_array_equal(p, q)


def test_sgd_epoch_batches_are_row_order_not_a_single_batch():
    """Guard against an epoch that ignores batch_size: steps on batches of 2
    differ from one full-batch step."""
    params, X = make_problem(6, 3, 2, "sigmoid", seed=50)
    p_full, p_mini = copy_params(params), copy_params(params)
    ref.sgd_epoch(p_full, None, X, learning_rate=0.5, batch_size=6, **HYPER)
    ref.sgd_epoch(p_mini, None, X, learning_rate=0.5, batch_size=2, **HYPER)
    assert rel_err(p_full[0], p_mini[0]) > 1e-6


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_sgd_epoch_shuffle_follows_permutation(batch_size):
    m, seed = 11, 987654321
    params, X = make_problem(m, 3, 2, "sigmoid", seed=51)
    hand = copy_params(params)
    state = seed
    for epoch in range(3):
        order, expected_state = my_permutation(m, state)
        losses = []
        for start in range(0, m, batch_size):
            batch = X[order[start:start + batch_size]]
            losses.append(ref.sgd_step(hand, None, batch, learning_rate=0.2, **HYPER)
                          * batch.shape[0])
        loss, state = ref.sgd_epoch(params, None, X, learning_rate=0.2, batch_size=batch_size,
                                    shuffle=True, rng_state=state, **HYPER)
        assert state == expected_state
        assert abs(loss - sum(losses) / m) <= 1e-12 * loss
        for p, q in zip(params, hand):
            np.testing.assert_array_equal(p, q)


def test_sgd_epoch_nonfinite_reports_batch_and_keeps_earlier_batches():
    """lr = 1e300, linear decoder, lambda > 0: the first step leaves finite
    weights of size ~1e300, the second batch's objective overflows."""
    params, X = make_problem(9, 3, 2, "linear", seed=52)
    kw = dict(rho=0.1, beta=1.0, lam=1e-2, decoder="linear", learning_rate=1e300)
    hand = copy_params(params)
    ref.sgd_step(hand, None, X[0:3], **kw)
    assert all(np.all(np.isfinite(p)) for p in hand)
    with pytest.raises(NonFiniteError) as info, np.errstate(over="ignore", invalid="ignore"):
        ref.sgd_epoch(params, None, X, batch_size=3, **kw)
    assert info.value.batch == 1
    for p, q in zip(params, hand):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("learning_rate", [1e300, 1e308])
def test_divergence_raises_nonfinite_error_not_a_numpy_warning(learning_rate):
    """Divergence must surface as NonFiniteError only.  The project runs
    with warnings as errors; an overflow RuntimeWarning from NumPy inside the
    reference would replace the NonFiniteError (and, for users, print noise
    before it), so the reference must silence them (np.errstate)."""
    params, X = make_problem(9, 3, 2, "linear", seed=52)
    X *= 5.0
    with pytest.raises(NonFiniteError):
        for _ in range(3):
            ref.sgd_epoch(params, None, X, rho=0.1, beta=1.0, lam=1e-2, decoder="linear",
                          learning_rate=learning_rate, batch_size=3)


# --------------------------------------------------------------------------
# SplitMix64, permutation, initialisation
# --------------------------------------------------------------------------

def test_splitmix64_published_outputs():
    """Vigna's splitmix64.c seeded with 1234567 (the outputs also quoted for
    Java's SplittableRandom)."""
    published = [6457827717110365317, 3203168211198807973, 9817491932198370423]
    mine, _ = splitmix64_ints(1234567, 3)
    assert mine == published
    out, state = ref.splitmix64(1234567, 3)
    assert out.dtype == np.uint64
    assert [int(v) for v in out] == published
    assert state == (1234567 + 3 * GAMMA) & MASK64


@pytest.mark.parametrize("seed", [0, 1, 1234567, 2 ** 63, MASK64])
def test_splitmix64_matches_integer_version(seed):
    out, state = ref.splitmix64(seed, 50)
    mine, my_state = splitmix64_ints(seed, 50)
    assert [int(v) for v in out] == mine
    assert state == my_state


@pytest.mark.parametrize("m", [0, 1, 2, 3, 10, 257])
@pytest.mark.parametrize("seed", [0, 42, MASK64])
def test_permutation_matches_fisher_yates(m, seed):
    order, state = ref.permutation(m, seed)
    my_order, my_state = my_permutation(m, seed)
    assert list(order) == my_order
    assert state == my_state
    assert np.array_equal(np.sort(order), np.arange(m))
    again, state2 = ref.permutation(m, seed)
    assert np.array_equal(order, again) and state2 == state


def test_permutation_trivial_sizes_draw_nothing():
    assert ref.permutation(0, 77)[1] == 77
    assert ref.permutation(1, 77)[1] == 77
    assert list(ref.permutation(1, 77)[0]) == [0]


def test_permutation_depends_on_seed_and_advances_state():
    a, s1 = ref.permutation(50, 1)
    b, _ = ref.permutation(50, 2)
    c, _ = ref.permutation(50, s1)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(50))


def test_permutation_is_uniform_for_m3():
    """All 6 orders of 3 items, chi-square over 3000 draws (df = 5; 25 is far
    beyond the 0.999 quantile 20.5 so a correct generator does not flake)."""
    counts = {}
    state = 2024
    for _ in range(3000):
        order, state = ref.permutation(3, state)
        counts[tuple(order)] = counts.get(tuple(order), 0) + 1
    assert len(counts) == 6
    chi2 = sum((c - 500) ** 2 / 500 for c in counts.values())
    assert chi2 < 25, counts


@pytest.mark.parametrize("n,h", [(1, 1), (5, 3), (64, 100)])
def test_init_params(n, h):
    seed = 99
    (W, b, Wd, bd), state = ref.init_params(n, h, seed)
    r = math.sqrt(6.0 / (n + h + 1))
    assert W.shape == (h, n) and Wd.shape == (n, h) and b.shape == (h,) and bd.shape == (n,)
    assert all(a.dtype == np.float64 for a in (W, b, Wd, bd))
    assert not b.any() and not bd.any()
    assert np.all(np.abs(W) <= r) and np.all(np.abs(Wd) <= r)
    assert state == (seed + 2 * n * h * GAMMA) & MASK64
    # Exact values: W row-major first, then Wd, u = (x >> 11) * 2^-53.
    raw, _ = splitmix64_ints(seed, 2 * n * h)
    w = [r * (2.0 * ((x >> 11) * 2.0 ** -53) - 1.0) for x in raw]
    assert W.ravel().tolist() == w[:n * h]
    assert Wd.ravel().tolist() == w[n * h:]
    # float32 is the float64 draw rounded.
    (W32, b32, Wd32, bd32), state32 = ref.init_params(n, h, seed, np.float32)
    assert W32.dtype == np.float32 and b32.dtype == np.float32
    assert np.array_equal(W32, W.astype(np.float32)) and np.array_equal(Wd32, Wd.astype(np.float32))
    assert state32 == state


def test_init_params_statistics():
    n, h = 200, 150
    (W, _, Wd, _), _ = ref.init_params(n, h, 7)
    r = math.sqrt(6.0 / (n + h + 1))
    w = np.concatenate([W.ravel(), Wd.ravel()]) / r  # uniform on [-1, 1], 60000 draws
    assert abs(w.mean()) < 0.02            # sd of the mean ~0.0024
    assert abs(w.var() - 1 / 3) < 0.01     # sd of the variance ~0.0012
    assert w.min() < -0.999 and w.max() > 0.999
    hist, _ = np.histogram(w, bins=10, range=(-1, 1))
    assert np.all(np.abs(hist - 6000) < 400)  # sd ~ 73 per bin
    (W2, _, _, _), _ = ref.init_params(n, h, 8)
    assert not np.array_equal(W, W2)
    (W3, _, _, _), _ = ref.init_params(n, h, 7)
    assert np.array_equal(W, W3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_rule_for_values_that_are_not_finite(dtype):
    """The engine's rule (tests/test_guarantees_nan_rule.py checks every kernel path):
    NaN gives NaN, +-inf and overflowing pre-activations give the limits 1
    and 0, without a warning (warnings are errors in this suite)."""
    big = np.finfo(dtype).max
    z = np.array([np.nan, np.inf, -np.inf, big, -big], dtype)
    np.testing.assert_array_equal(ref.sigmoid(z), np.array([np.nan, 1, 0, 1, 0], dtype))
    # products that overflow to +-inf; one unit per sign
    W = np.array([[big], [-big]], dtype)
    X = np.array([[2], [np.nan]], dtype)
    A = ref.encode(W, np.zeros(2, dtype), X)
    np.testing.assert_array_equal(A, np.array([[1, 0], [np.nan, np.nan]], dtype))
    np.testing.assert_array_equal(ref.decode(W, np.zeros(2, dtype), X, "sigmoid"), A)
