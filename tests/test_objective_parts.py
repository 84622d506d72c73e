"""Block-wise evaluation of the full-batch objective (CONTRACT section 2):
activation_sums and objective_part of the C engine, summed over row blocks
plus the decay and KL terms, against objective_and_gradients on all rows
(the reference's and the engine's) and against finite differences."""

import functools

import numpy as np
import pytest

from conftest import GRADCHECK_TOL, RTOL, assert_close, engine, random_problem

from csae import reference as ref

eng = engine()
RHO, BETA, LAM = 0.1, 3.0, 1e-3
# Hidden biases spread wider (0.5) than conftest's default.
problem = functools.partial(random_problem, bias_scale=0.5)


def blocks_of(X, cuts):
    edges = [0, *cuts, X.shape[0]]
    return [np.ascontiguousarray(X[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def kl_sum(rho_hat, dtype):
    """beta sum_j KL(rho || rho_hat_j), rho_hat clipped with the dtype's eps."""
    eps = ref.rho_hat_clip(dtype)
    q = np.clip(np.asarray(rho_hat, np.float64), eps, 1 - eps)
    return BETA * float(np.sum(RHO * np.log(RHO / q) + (1 - RHO) * np.log((1 - RHO) / (1 - q))))


def blockwise(module, params, X, cuts, decoder, n_threads=None):
    """The objective and gradient of X assembled from its blocks."""
    kw = {} if n_threads is None else dict(n_threads=n_threads)
    W, b, Wd, bd = params
    blocks = blocks_of(X, cuts)
    sums = sum(module.activation_sums(W, b, B, **kw) for B in blocks)
    rho_hat = sums / X.shape[0]
    loss = 0.0
    grads = [np.zeros(p.shape, np.float64) for p in params]
    for B in blocks:
        part, g = module.objective_part(params, B, rho_hat, X.shape[0], rho=RHO, beta=BETA,
                                        decoder=decoder, **kw)
        assert isinstance(part, float)
        for k in range(4):
            assert g[k].dtype == X.dtype and g[k].shape == params[k].shape
            grads[k] += g[k]
        loss += part
    loss += LAM * (np.sum(W.astype(np.float64) ** 2) + np.sum(Wd.astype(np.float64) ** 2))
    loss += kl_sum(rho_hat, X.dtype)
    grads[0] += 2 * LAM * W
    grads[2] += 2 * LAM * Wd
    return loss, grads, rho_hat


CUTS = [[], [0], [17], [1, 2, 30], [10, 10, 25]]   # includes empty blocks


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
@pytest.mark.parametrize("cuts", CUTS, ids=lambda c: "-".join(map(str, c)) or "whole")
def test_blocks_add_up_to_the_whole(kernel_path, dtype, decoder, cuts):
    params, X = problem(40, 9, 7, dtype, seed=1, decoder=decoder)
    loss, grads, rho_hat = blockwise(eng, params, X, cuts, decoder)
    hyper = dict(rho=RHO, beta=BETA, lam=LAM, decoder=decoder)
    for module in (ref, eng):
        L, g = module.objective_and_gradients(params, X, **hyper)
        # float64: the same sums in another order (1e-12-ish).
        tol = 1e-12 if dtype == np.float64 else RTOL[dtype]
        assert abs(loss - L) <= tol * abs(L)
        for a, b in zip(grads, g):
            scale = max(float(np.max(np.abs(b))), 1e-30)
            assert float(np.max(np.abs(a - b))) <= tol * scale * (10 if dtype == np.float32 else 1)
    A = ref.encode(params[0].astype(np.float64), params[1].astype(np.float64),
                   X.astype(np.float64))
    assert_close(rho_hat, A.mean(axis=0), dtype)


def test_blocks_match_finite_differences():
    params, X = problem(30, 5, 4, np.float64, seed=2)
    cuts = [7, 19]
    _, grads, _ = blockwise(eng, params, X, cuts, "sigmoid")
    for k, p in enumerate(params):
        fd = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            up = [q.copy() for q in params]
            down = [q.copy() for q in params]
            up[k][idx] += 1e-6
            down[k][idx] -= 1e-6
            fd[idx] = (blockwise(eng, tuple(up), X, cuts, "sigmoid")[0]
                       - blockwise(eng, tuple(down), X, cuts, "sigmoid")[0]) / 2e-6
        scale = max(float(np.max(np.abs(fd))), 1e-12)
        assert float(np.max(np.abs(grads[k] - fd))) <= GRADCHECK_TOL[np.float64] * scale


def test_activation_sums(kernel_path, dtype):
    params, X = problem(37, 11, 9, dtype, seed=3)
    W, b = params[0], params[1]
    got = eng.activation_sums(W, b, X)
    assert got.dtype == np.float64 and got.shape == (9,)
    A = ref.encode(W, b, X)  # in the model dtype, as the contract says
    want = np.zeros(9)
    for row in A:  # float64 accumulation in row order
        want += row.astype(np.float64)
    assert_close(got, want, dtype)
    assert np.all(eng.activation_sums(W, b, X[:0]) == 0)


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_engine_part_matches_reference_part(kernel_path, dtype, decoder):
    if not hasattr(ref, "objective_part"):
        pytest.skip("csae.reference.objective_part not merged yet (helper 'scale')")
    params, X = problem(25, 8, 6, dtype, seed=4, decoder=decoder)
    rho_hat = np.array([1e-13, 0.02, 0.3, 0.7, 1 - 1e-7, 1.0])  # clipped at both ends
    for B in (X, X[3:4], X[:0]):
        part, g = eng.objective_part(params, B, rho_hat, 40, rho=RHO, beta=BETA,
                                     decoder=decoder)
        part_r, g_r = ref.objective_part(params, B, rho_hat, 40, rho=RHO, beta=BETA,
                                         decoder=decoder)
        assert_close(part, part_r, dtype, scale=max(abs(part_r), 1e-30))
        for a, b in zip(g, g_r):
            assert_close(a, b, dtype, scale=max(float(np.max(np.abs(b))), 1e-30))
    W, b = params[0], params[1]
    assert_close(eng.activation_sums(W, b, X), ref.activation_sums(W, b, X), dtype)


def test_empty_block_is_zero(dtype):
    params, X = problem(5, 4, 3, dtype, seed=5)
    part, grads = eng.objective_part(params, X[:0], np.full(3, 0.2), 5, rho=RHO, beta=BETA)
    assert part == 0.0
    assert all(not np.any(g) for g in grads)


def test_threads_bit_identical(kernel_path, dtype):
    params, X = problem(300, 120, 100, dtype, seed=6)
    one = blockwise(eng, params, X, [100, 200], "sigmoid", n_threads=1)
    two = blockwise(eng, params, X, [100, 200], "sigmoid", n_threads=2)
    assert one[0] == two[0]
    for a, b in zip(one[1], two[1]):
        np.testing.assert_array_equal(a, b)


def test_backend_methods(dtype):
    from csae._backends import Backend
    params, X = problem(20, 6, 5, dtype, seed=7)
    back = Backend("c", n_threads=2)
    sums = back.activation_sums(params[0], params[1], X)
    part, grads = back.objective_part(params, X, sums / 20, 20, rho=RHO, beta=BETA,
                                      decoder="sigmoid")
    want = eng.objective_part(params, X, sums / 20, 20, rho=RHO, beta=BETA)
    assert part == want[0]
    for a, b in zip(grads, want[1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case,exc", [
    ("rho_hat shape", ValueError), ("rho_hat 2-d", ValueError), ("rho_hat nan", ValueError),
    ("rho_hat complex", TypeError), ("n_total < rows", ValueError), ("n_total 0", ValueError),
    ("n_total float", TypeError), ("X dtype", TypeError), ("X columns", ValueError),
    ("rho", ValueError), ("beta", ValueError), ("decoder", ValueError),
])
def test_bad_arguments(case, exc):
    params, X = problem(6, 4, 3, np.float64, seed=8)
    kw = dict(rho=RHO, beta=BETA, decoder="sigmoid")
    rho_hat, n_total = np.full(3, 0.2), 10
    if case == "rho_hat shape":
        rho_hat = np.full(4, 0.2)
    elif case == "rho_hat 2-d":
        rho_hat = np.full((1, 3), 0.2)
    elif case == "rho_hat nan":
        rho_hat = np.array([0.2, np.nan, 0.2])
    elif case == "rho_hat complex":
        rho_hat = np.full(3, 0.2 + 0j)
    elif case == "n_total < rows":
        n_total = 5
    elif case == "n_total 0":
        n_total, X = 0, X[:0]
    elif case == "n_total float":
        n_total = 10.0
    elif case == "X dtype":
        X = X.astype(np.float32)
    elif case == "X columns":
        X = np.ones((6, 5))
    elif case in ("rho", "beta"):
        kw[case] = -1.0
    elif case == "decoder":
        kw["decoder"] = "tanh"
    with pytest.raises(exc):
        eng.objective_part(params, X, rho_hat, n_total, **kw)


def test_activation_sums_bad_arguments():
    params, X = problem(6, 4, 3, np.float64, seed=9)
    W, b = params[0], params[1]
    with pytest.raises(TypeError):
        eng.activation_sums(W, b, X.astype(np.float32))
    with pytest.raises(ValueError):
        eng.activation_sums(W, b, np.ones((6, 5)))
    with pytest.raises(ValueError):
        eng.activation_sums(W, np.ones(4), X)
