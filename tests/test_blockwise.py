"""The full-batch objective assembled from row blocks.

``activation_sums`` and ``objective_part`` (CONTRACT section 2) let a data set
that is never in memory as a whole (a memory-mapped file read in chunks, a
dask array spread over workers) be evaluated in two passes.  Here the
assembled objective and gradients are checked against
``reference.objective_and_gradients`` over all the rows at once: float64
within 1e-12 relative (the only difference is the order of the sums),
float32 within 1e-5.
"""

import numpy as np
import pytest

from csae import reference as ref

DECODERS = ("sigmoid", "linear")
HYPER = dict(rho=0.1, beta=3.0, lam=1e-3)


def make_problem(m, n, h, decoder, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = (rng.normal(0, 0.5, (h, n)), rng.normal(0, 0.5, h),
              rng.normal(0, 0.5, (n, h)), rng.normal(0, 0.5, n))
    X = rng.uniform(0, 1, (m, n)) if decoder == "sigmoid" else rng.normal(0, 1, (m, n))
    return (tuple(np.ascontiguousarray(p, dtype=dtype) for p in params),
            np.ascontiguousarray(X, dtype=dtype))


def split_rows(m, seed):
    """Random block boundaries over m rows, with a one-row block when m > 2."""
    rng = np.random.default_rng(seed)
    cuts = sorted(set(rng.integers(1, m, size=min(4, m - 1)).tolist())) if m > 1 else []
    if m > 2:
        cuts = sorted(set(cuts) | {1})
    edges = [0] + cuts + [m]
    return list(zip(edges[:-1], edges[1:]))


def assemble(params, X, blocks, *, rho, beta, lam, decoder, dtype):
    """The objective and gradients from the block functions, with the decay
    and KL terms written out here from MATH.md."""
    W, b, Wd, bd = params
    m = X.shape[0]
    sums = sum(ref.activation_sums(W, b, X[i:j]) for i, j in blocks)
    rho_hat = sums / m
    total, grads = 0.0, [np.zeros_like(p, dtype=np.float64) for p in params]
    for i, j in blocks:
        part, g = ref.objective_part(params, X[i:j], rho_hat, m, rho=rho, beta=beta,
                                     decoder=decoder)
        assert isinstance(part, float)
        assert all(a.dtype == dtype and a.shape == p.shape for a, p in zip(g, params))
        total += part
        for acc, a in zip(grads, g):
            acc += a
    eps = 1e-12 if dtype == np.float64 else 1e-6
    q = np.clip(rho_hat, eps, 1 - eps)
    kl = np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q)))
    W64, Wd64 = W.astype(np.float64), Wd.astype(np.float64)
    total += lam * (np.sum(W64 ** 2) + np.sum(Wd64 ** 2)) + beta * kl
    grads[0] += 2 * lam * W64
    grads[2] += 2 * lam * Wd64
    return total, grads


def relative_error(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("m,n,h", [(1, 3, 2), (2, 1, 1), (37, 5, 4), (200, 16, 9)])
def test_activation_sums_are_column_sums(decoder, m, n, h):
    params, X = make_problem(m, n, h, decoder, seed=m + n)
    W, b = params[:2]
    A = 1.0 / (1.0 + np.exp(-(X @ W.T + b)))
    sums = ref.activation_sums(W, b, X)
    assert sums.dtype == np.float64 and sums.shape == (h,)
    np.testing.assert_allclose(sums, A.sum(axis=0), rtol=1e-13)


def test_activation_sums_float32_accumulates_in_float64():
    # One row with activation 1 and 1000 with about 1e-8: a float32
    # accumulator would stay at 1.0; the float64 one gains 1000 * 1e-8.
    W = np.ones((1, 1), np.float32)
    b = np.zeros(1, np.float32)
    X = np.array([[40.0]] + [[-18.42]] * 1000, np.float32)
    tiny = float(1.0 / (1.0 + np.exp(np.float64(np.float32(18.42)))))
    sums = ref.activation_sums(W, b, X)
    assert sums.dtype == np.float64
    assert sums[0] == pytest.approx(1.0 + 1000 * tiny, rel=1e-6)
    assert sums[0] - 1.0 > 5e-6


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("m,n,h", [(1, 3, 2), (3, 2, 5), (37, 5, 4), (200, 16, 9)])
@pytest.mark.parametrize("seed", [0, 1])
def test_parts_add_up_to_the_whole_float64(decoder, m, n, h, seed):
    params, X = make_problem(m, n, h, decoder, seed)
    L, grads = ref.objective_and_gradients(params, X, decoder=decoder, **HYPER)
    total, parts = assemble(params, X, split_rows(m, seed), decoder=decoder,
                            dtype=np.float64, **HYPER)
    assert abs(total - L) <= 1e-12 * abs(L)
    for mine, whole in zip(parts, grads):
        assert relative_error(mine, whole) <= 1e-12


@pytest.mark.parametrize("decoder", DECODERS)
def test_parts_add_up_to_the_whole_float32(decoder):
    params, X = make_problem(150, 12, 7, decoder, seed=3, dtype=np.float32)
    L, grads = ref.objective_and_gradients(params, X, decoder=decoder, **HYPER)
    total, parts = assemble(params, X, split_rows(150, 3), decoder=decoder,
                            dtype=np.float32, **HYPER)
    assert abs(total - L) <= 1e-5 * abs(L)
    for mine, whole in zip(parts, grads):
        assert relative_error(mine, whole) <= 1e-5


def test_one_block_is_the_whole_without_decay_and_kl():
    params, X = make_problem(50, 6, 4, "sigmoid", seed=5)
    rho_hat = ref.activation_sums(*params[:2], X) / 50
    part, g = ref.objective_part(params, X, rho_hat, 50, rho=0.1, beta=3.0)
    L, grads = ref.objective_and_gradients(params, X, rho=0.1, beta=3.0, lam=0.0)
    eps = 1e-12
    q = np.clip(rho_hat, eps, 1 - eps)
    kl = 3.0 * np.sum(0.1 * np.log(0.1 / q) + 0.9 * np.log(0.9 / (1 - q)))
    assert part == pytest.approx(L - kl, rel=1e-12)
    for mine, whole in zip(g, grads):
        assert relative_error(mine, whole) <= 1e-12


def test_saturated_rho_hat_is_clipped():
    # rho_hat of exactly 0 and 1 (as a block of saturated units gives) must
    # give a finite sparsity derivative, clipped as in the whole objective.
    params, X = make_problem(10, 3, 2, "sigmoid", seed=6)
    for value in (0.0, 1.0):
        part, g = ref.objective_part(params, X, np.full(2, value), 10, rho=0.1, beta=3.0)
        assert np.isfinite(part) and all(np.isfinite(a).all() for a in g)


def test_objective_part_refuses_bad_rho_hat_and_n_total():
    params, X = make_problem(10, 3, 2, "sigmoid", seed=7)
    with pytest.raises(ValueError, match="rho_hat must have shape"):
        ref.objective_part(params, X, np.zeros(3), 10, rho=0.1, beta=3.0)
    with pytest.raises(ValueError, match="n_total"):
        ref.objective_part(params, X, np.full(2, 0.1), 9, rho=0.1, beta=3.0)
