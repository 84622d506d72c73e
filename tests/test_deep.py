"""Deep networks: sigmoid layers under a softmax output (csae_deep_* in the
engine, deep_* in the binding and in csae.reference).

The gradient check is UFLDL's for stackedAECost: every layer's gradient
against central finite differences of the objective, on a small network.
The engine is then checked against the reference (both dtypes, every
kernel path), against values worked out by hand, for the same bits across
the vector paths and thread counts, and for its refusals of bad input.
"""

import ctypes

import numpy as np
import pytest

from conftest import RTOL, engine, kernel_paths
from libcsae_ctypes import library, status_codes

from csae import reference as ref

eng = engine()
VECTOR_PATHS = [p for p in ("avx2", "avx512") if p in kernel_paths()]


def make_net(sizes, m, dtype=np.float64, seed=0, scale=1.0):
    """params for layer sizes [n, h_1, ..., h_L, k], X (m x n) in [0, 1)
    and labels y covering the classes."""
    rng = np.random.default_rng(seed)
    params = []
    for h_prev, h in zip(sizes[:-1], sizes[1:]):
        r = scale * np.sqrt(6.0 / (h + h_prev + 1))
        params.append((rng.uniform(-r, r, (h, h_prev)).astype(dtype),
                       rng.normal(0, 0.3, h).astype(dtype)))
    X = rng.uniform(0, 1, (m, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], m)
    return params, X, y


def numerical_gradients(objective, params, eps=1e-5):
    """Central differences (J(t + eps) - J(t - eps)) / (2 eps) for every
    entry of every layer's W and b (float64 params, changed and restored)."""
    out = []
    for W, b in params:
        layer = []
        for a in (W, b):
            g = np.empty_like(a)
            for idx in np.ndindex(a.shape):
                keep = a[idx]
                a[idx] = keep + eps
                up = objective(params)
                a[idx] = keep - eps
                down = objective(params)
                a[idx] = keep
                g[idx] = (up - down) / (2 * eps)
            layer.append(g)
        out.append(tuple(layer))
    return out


def assert_grads_close(actual, expected, rtol):
    assert len(actual) == len(expected)
    scale = max(float(np.abs(e).max()) for pair in expected for e in pair)
    for l, (got, want) in enumerate(zip(actual, expected)):
        for name, g, w in zip(("W", "b"), got, want):
            assert g.shape == w.shape, (l, name)
            err = float(np.abs(g.astype(np.float64) - w).max()) / scale
            assert err <= rtol, f"layer {l} d{name}: relative error {err:.3g} > {rtol:.0e}"


# Hidden layers 0 (softmax regression), 1, 2 (UFLDL's network) and 3.
SIZES = [[6, 4], [6, 5, 3], [8, 5, 4, 3], [7, 6, 5, 4, 3]]


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "-".join(map(str, s)))
def test_reference_gradients_match_finite_differences(sizes):
    params, X, y = make_net(sizes, 11, seed=1)
    lam = 3e-3
    _, grads = ref.deep_objective_and_gradients(params, X, y, lam=lam)
    numeric = numerical_gradients(lambda p: ref.deep_objective(p, X, y, lam=lam), params)
    assert_grads_close(grads, numeric, 1e-8)


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "-".join(map(str, s)))
def test_engine_gradients_match_finite_differences(kernel_path, sizes):
    """Every layer, every kernel path: the engine's gradient against central
    differences of the engine's own objective (float64)."""
    params, X, y = make_net(sizes, 13, seed=2)
    lam = 1e-2

    def objective(p):
        return eng.deep_objective_and_gradients(p, X, y, lam=lam, need_gradients=False)[0]

    _, grads = eng.deep_objective_and_gradients(params, X, y, lam=lam)
    assert_grads_close(grads, numerical_gradients(objective, params), 1e-8)


# Odd widths around both vector paths' tiles, products deeper than one
# GEMM panel (KC = 256 rows for the weight gradients), and one row.
ENGINE_CASES = [([6, 4], 9), ([8, 5, 4, 3], 17), ([31, 17, 33, 10], 300),
                ([65, 40, 23, 7, 5], 61), ([20, 9, 3], 1)]


@pytest.mark.parametrize("sizes,m", ENGINE_CASES, ids=lambda c: str(c))
def test_engine_matches_reference(kernel_path, dtype, sizes, m):
    params, X, y = make_net(sizes, m, dtype, seed=3)
    lam = 1e-3
    J, grads = eng.deep_objective_and_gradients(params, X, y, lam=lam)
    J_ref, grads_ref = ref.deep_objective_and_gradients(params, X, y, lam=lam)
    assert isinstance(J, float)
    assert abs(J - J_ref) <= RTOL[dtype] * max(abs(J_ref), 1.0)
    for got, want in zip(grads, grads_ref):
        assert got[0].dtype == dtype and got[1].dtype == dtype
    assert_grads_close(grads, [(W.astype(np.float64), b.astype(np.float64))
                               for W, b in grads_ref], RTOL[dtype])
    P = eng.deep_forward(params, X)
    P_ref = ref.deep_forward(params, X)
    assert P.dtype == dtype and P.shape == (m, sizes[-1])
    assert float(np.abs(P.astype(np.float64) - P_ref).max()) <= RTOL[dtype]
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=10 * np.finfo(dtype).eps)
    # The forward pass and the objective's forward pass agree: the loss
    # is the mean -log P[i, y_i] (lam = 0 leaves no decay term).
    J0, _ = eng.deep_objective_and_gradients(params, X, y, lam=0.0, need_gradients=False)
    expected = -np.mean(np.log(P.astype(np.float64)[np.arange(m), y]))
    assert abs(J0 - expected) <= RTOL[dtype] * 10 * max(abs(expected), 1.0)


def test_values_worked_by_hand(dtype):
    """Zero weights and biases: every row's probabilities are 1/k, so
    J = log k + (lam/2) * 0, dW_o = (1/m) sum_i (1/k - onehot_i) a_i^T with
    a_i = sigmoid(0) = 1/2 for every hidden unit, and db_o the same without
    the a_i.  The hidden layers get no gradient (W_o = 0 blocks it) except
    their decay term, which is 0 too."""
    k, m = 4, 6
    sizes = [5, 3, k]
    params = [(np.zeros((h, h_prev), dtype), np.zeros(h, dtype))
              for h_prev, h in zip(sizes[:-1], sizes[1:])]
    X = np.linspace(0, 1, m * 5).reshape(m, 5).astype(dtype)
    y = np.array([0, 1, 1, 3, 3, 3])
    J, grads = eng.deep_objective_and_gradients(params, X, y, lam=0.5)
    assert abs(J - np.log(k)) <= 1e-6
    counts = np.array([1, 2, 0, 3])
    db_o = (m / k - counts) / m        # [1/12, -1/12, 1/4, -1/4]
    np.testing.assert_allclose(grads[1][1], db_o, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grads[1][0], np.outer(db_o, np.full(3, 0.5)), rtol=1e-6,
                               atol=1e-7)
    assert not grads[0][0].any() and not grads[0][1].any()
    np.testing.assert_allclose(eng.deep_forward(params, X), 1 / k, rtol=1e-6)


def test_weight_decay_covers_every_weight_matrix_and_no_bias(dtype):
    """J(lam) - J(0) = (lam/2) sum of every W's squares (softmax layer's
    included); the gradients differ by lam W for weights and not at all for
    biases."""
    params, X, y = make_net([7, 5, 4, 3], 10, dtype, seed=4)
    lam = 0.25
    J1, g1 = eng.deep_objective_and_gradients(params, X, y, lam=lam)
    J0, g0 = eng.deep_objective_and_gradients(params, X, y, lam=0.0)
    squares = sum(float(np.sum(W.astype(np.float64) ** 2)) for W, _ in params)
    assert abs((J1 - J0) - lam / 2 * squares) <= RTOL[dtype] * 10 * J1
    for (W, _), (gW1, gb1), (gW0, gb0) in zip(params, g1, g0):
        np.testing.assert_allclose(gW1 - gW0, lam * W, rtol=0, atol=20 * np.finfo(dtype).eps)
        np.testing.assert_array_equal(gb1, gb0)


@pytest.mark.parametrize("big", [1e3, 1e30])
def test_softmax_stable_for_huge_logits(dtype, big):
    """Logits far past exp's range (exp(89) overflows float32, exp(710)
    float64): probabilities stay finite and sum to 1, the loss is the
    logit gap, and the gradient is finite."""
    big = dtype(min(big, np.finfo(dtype).max / 4))
    params = [(np.zeros((3, 2), dtype), np.array([big, 0, -big], dtype))]
    X = np.ones((3, 2), dtype)
    y = np.array([0, 1, 2])
    P = eng.deep_forward(params, X)
    assert np.all(np.isfinite(P))
    np.testing.assert_array_equal(P, np.tile(np.array([1, 0, 0], dtype), (3, 1)))
    J, grads = eng.deep_objective_and_gradients(params, X, y, lam=0.0)
    # Row losses: 0, big, 2 big (each -log P = max - z_y + log(1 + tiny)).
    assert J == pytest.approx((0 + float(big) + 2 * float(big)) / 3, rel=1e-6)
    assert all(np.all(np.isfinite(a)) for pair in grads for a in pair)
    J_ref = ref.deep_objective(params, X, y, lam=0.0)
    assert J == pytest.approx(J_ref, rel=1e-6)


def test_nan_in_gives_nan_out(dtype):
    params, X, y = make_net([6, 5, 3], 4, dtype, seed=5)
    X[2, 1] = np.nan
    P = eng.deep_forward(params, X)
    assert np.all(np.isnan(P[2]))
    assert np.all(np.isfinite(np.delete(P, 2, axis=0)))
    J, grads = eng.deep_objective_and_gradients(params, X, y, lam=0.0)
    assert np.isnan(J)
    assert all(np.all(np.isnan(a)) for pair in grads for a in pair)
    X[2, 1] = np.inf
    assert np.all(np.isnan(eng.deep_forward(params, X)[2]))
    X[2, 1] = 0.5
    params[1][0][0, 0] = np.nan
    assert np.all(np.isnan(eng.deep_forward(params, X)))
    assert np.isnan(eng.deep_objective_and_gradients(params, X, y, lam=0.0)[0])


# ---- The same bits on every vector path and thread count ------------------

def run_all(dtype, n_threads, path=None):
    """Objective, gradients and probabilities of a network big enough that
    its products split over threads (m n k >= 2^20) and deep enough that the
    weight gradients span several GEMM panels."""
    params, X, y = make_net([300, 130, 71, 10], 517, dtype, seed=6)
    before = eng.get_kernel_path()
    try:
        if path:
            eng.set_kernel_path(path)
        J, grads = eng.deep_objective_and_gradients(params, X, y, lam=1e-3,
                                                    n_threads=n_threads)
        P = eng.deep_forward(params, X, n_threads=n_threads)
    finally:
        eng.set_kernel_path(before)
    return J, [a for pair in grads for a in pair], P


def assert_same_bits(a, b):
    assert np.float64(a[0]).tobytes() == np.float64(b[0]).tobytes()
    for x, y in zip(a[1], b[1]):
        assert x.tobytes() == y.tobytes()
    assert a[2].tobytes() == b[2].tobytes()


@pytest.mark.parametrize("path", kernel_paths())
def test_same_bits_for_any_thread_count(dtype, path):
    one = run_all(dtype, 1, path)
    for n_threads in (2, 3):
        assert_same_bits(one, run_all(dtype, n_threads, path))


@pytest.mark.skipif(len(VECTOR_PATHS) < 2, reason="needs both the avx2 and avx512 paths")
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_same_bits_across_vector_paths(dtype, n_threads):
    assert_same_bits(run_all(dtype, n_threads, "avx2"), run_all(dtype, n_threads, "avx512"))


# ---- Bad input: clear errors from the binding ---------------------------------

def good():
    return make_net([5, 4, 3], 6, seed=7)


def test_bad_labels():
    params, X, y = good()
    for bad in (np.array([0, 1, 2, 3, 0, 1]), np.array([0, -1, 2, 0, 0, 1])):
        with pytest.raises(ValueError, match="labels must lie in 0..2"):
            eng.deep_objective_and_gradients(params, X, bad, lam=0.0)
    with pytest.raises(TypeError, match="integer class indices"):
        eng.deep_objective_and_gradients(params, X, y.astype(float), lam=0.0)
    with pytest.raises(TypeError, match="integer class indices"):
        eng.deep_objective_and_gradients(params, X, y > 0, lam=0.0)
    with pytest.raises(ValueError, match="one label per row"):
        eng.deep_objective_and_gradients(params, X, y[:-1], lam=0.0)
    with pytest.raises(ValueError, match="one label per row"):
        eng.deep_objective_and_gradients(params, X, y[:, None], lam=0.0)


def test_bad_params_and_X():
    params, X, y = good()
    cases = [
        (TypeError, "non-empty list", [], X),
        (TypeError, "pair", [params[0], (params[1][0],)], X),
        (TypeError, "NumPy arrays", [params[0], (params[1][0].tolist(), params[1][1])], X),
        (TypeError, "one dtype", [params[0], (params[1][0].astype(np.float32), params[1][1])], X),
        (TypeError, "float32 or float64", [(W.astype(int), b.astype(int)) for W, b in params],
         X.astype(int)),
        (ValueError, "input has 4 columns", [params[0], (params[1][0][:, :3], params[1][1])], X),
        (ValueError, "bias shape", [params[0], (params[1][0], params[1][1][:2])], X),
        (ValueError, "input has 4 columns but the weights expect 5", params, X[:, :4].copy()),
        (ValueError, "X must be 2-D", params, X[0]),
        (ValueError, ">= 1", [(np.zeros((0, 5)), np.zeros(0)), (np.zeros((3, 0)), np.zeros(3))],
         X),
    ]
    for exc, match, p, x in cases:
        with pytest.raises(exc, match=match):
            eng.deep_objective_and_gradients(p, x, y, lam=0.0)
        with pytest.raises(exc, match=match):
            eng.deep_forward(p, x)
    with pytest.raises(ValueError, match="no rows"):
        eng.deep_objective_and_gradients(params, X[:0], y[:0], lam=0.0)
    assert eng.deep_forward(params, X[:0]).shape == (0, 3)


def test_bad_lam_and_threads():
    params, X, y = good()
    for lam in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="lam must be finite"):
            eng.deep_objective_and_gradients(params, X, y, lam=lam)
    with pytest.raises(TypeError, match="lam must be a real number"):
        eng.deep_objective_and_gradients(params, X, y, lam="big")
    with pytest.raises(ValueError, match="n_threads"):
        eng.deep_objective_and_gradients(params, X, y, lam=0.0, n_threads=0)
    with pytest.raises(TypeError, match="n_threads"):
        eng.deep_forward(params, X, n_threads=1.5)


def test_inputs_left_unchanged():
    params, X, y = good()
    before = [a.copy() for pair in params for a in pair], X.copy(), y.copy()
    eng.deep_objective_and_gradients(params, X, y, lam=0.1)
    eng.deep_forward(params, X)
    for a, b in zip([a for pair in params for a in pair], before[0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(X, before[1])
    np.testing.assert_array_equal(y, before[2])


# ---- The C API's own checks (through libcsae) ----------------------------------

class DeepNet(ctypes.Structure):
    """csae_deep_net."""
    _fields_ = [("n_hidden_layers", ctypes.c_size_t), ("sizes", ctypes.POINTER(ctypes.c_size_t))]


class Workspace(ctypes.Structure):
    """csae_workspace."""
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_size_t),
                ("n_threads", ctypes.c_size_t)]


SIZE_MAX = ctypes.c_size_t(-1).value


@pytest.fixture(scope="module")
def c_api():
    lib = library()
    lib.csae_deep_n_params.restype = ctypes.c_size_t
    lib.csae_deep_n_params.argtypes = [ctypes.POINTER(DeepNet)]
    for name in ("csae_deep_forward_workspace_size", "csae_deep_objective_workspace_size"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_size_t
        fn.argtypes = [ctypes.POINTER(DeepNet), ctypes.c_size_t, ctypes.c_size_t,
                       ctypes.c_size_t]
    p = ctypes.c_void_p
    lib.csae_deep_objective_f64.restype = ctypes.c_int
    lib.csae_deep_objective_f64.argtypes = [ctypes.POINTER(DeepNet), p, p, p, ctypes.c_size_t,
                                            ctypes.c_double, p, p, ctypes.POINTER(Workspace)]
    lib.csae_deep_forward_f64.restype = ctypes.c_int
    lib.csae_deep_forward_f64.argtypes = [ctypes.POINTER(DeepNet), p, p, ctypes.c_size_t, p,
                                          ctypes.POINTER(Workspace)]
    return lib, status_codes()


def c_net(sizes):
    arr = (ctypes.c_size_t * len(sizes))(*sizes)
    return DeepNet(len(sizes) - 2, arr), arr


def test_c_sizes(c_api):
    lib, _ = c_api
    net, keep = c_net([5, 4, 3])
    assert lib.csae_deep_n_params(ctypes.byref(net)) == 4 * 5 + 4 + 3 * 4 + 3
    bad, keep2 = c_net([5, 0, 3])
    assert lib.csae_deep_n_params(ctypes.byref(bad)) == 0
    assert lib.csae_deep_objective_workspace_size(ctypes.byref(bad), 10, 8, 1) == SIZE_MAX
    huge, keep3 = c_net([1 << 40, 1 << 40, 2])
    assert lib.csae_deep_n_params(ctypes.byref(huge)) == 0
    # Rows so many that the activations' bytes overflow.
    assert lib.csae_deep_objective_workspace_size(ctypes.byref(net), 1 << 62, 8, 1) == SIZE_MAX
    assert lib.csae_deep_forward_workspace_size(ctypes.byref(net), 1 << 62, 8, 1) == SIZE_MAX
    assert lib.csae_deep_objective_workspace_size(ctypes.byref(net), 10, 3, 1) == SIZE_MAX


def test_c_statuses(c_api):
    """Labels out of range, outputs overlapping inputs or the workspace, and
    a short workspace, each with its status, and nothing written."""
    lib, codes = c_api
    params, X, y = good()
    net, keep = c_net([5, 4, 3])
    theta = np.concatenate([a.ravel() for pair in params for a in pair])
    m = X.shape[0]
    size = lib.csae_deep_objective_workspace_size(ctypes.byref(net), m, 8, 1)
    buf = np.zeros(size, np.uint8)
    ws = Workspace(buf.ctypes.data, size, 1)
    loss = np.full(1, -7.0)
    grad = np.full_like(theta, -7.0)
    y64 = y.astype(np.int64)

    def call(y_=y64, grad_=grad, loss_=loss, ws_=ws, theta_=theta):
        return lib.csae_deep_objective_f64(
            ctypes.byref(net), theta_.ctypes.data, X.ctypes.data, y_.ctypes.data, m, 0.1,
            loss_.ctypes.data, grad_.ctypes.data if grad_ is not None else None,
            ctypes.byref(ws_))

    assert call() == codes["CSAE_OK"]
    J, grads = ref.deep_objective_and_gradients(params, X, y, lam=0.1)
    assert loss[0] == pytest.approx(J, rel=1e-12)
    loss[:] = grad[:] = -7.0
    for label in (3, -1):
        bad = y64.copy()
        bad[4] = label
        assert call(y_=bad) == codes["CSAE_ERR_LABEL"]
    copy = theta.copy()
    assert call(grad_=copy, theta_=copy) == codes["CSAE_ERR_ARGUMENT"]
    assert call(loss_=y64.view(np.float64)[1:]) == codes["CSAE_ERR_ARGUMENT"]
    inside = Workspace(theta.ctypes.data, theta.nbytes, 1)
    assert call(ws_=inside) == codes["CSAE_ERR_ARGUMENT"]
    assert call(ws_=Workspace(buf.ctypes.data, size - 1, 1)) == codes["CSAE_ERR_WORKSPACE"]
    assert np.all(loss == -7.0) and np.all(grad == -7.0)
    np.testing.assert_array_equal(theta, copy)
    # The forward pass refuses P over X.
    P_over_X = X.copy()
    assert lib.csae_deep_forward_f64(ctypes.byref(net), theta.ctypes.data, P_over_X.ctypes.data,
                                     2, P_over_X.ctypes.data, ctypes.byref(ws)) \
        == codes["CSAE_ERR_ARGUMENT"]
    assert lib.csae_status_message(codes["CSAE_ERR_LABEL"]).startswith(b"class label")
