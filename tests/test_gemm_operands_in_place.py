"""Products that read their operands in place keep the bit-identity rules.

The GEMM driver reads a transposed A (D^T in the weight gradients) and, when
C has few rows, B's contiguous rows without packing them, and the AVX-512
path stores edge tiles through masks where the AVX2 path computes them into
scratch.  These shapes put those cases where they are easiest to get wrong:
weight gradients over several KC panels (k = m rows > 256, so later panels
add onto C), C with at most 4 x MR rows (B in place) and with more, widths
with a partial last panel on both paths' tiles (n mod 32 and mod 16 not 0),
and row counts that are not a multiple of the tile height; rows 4 or 8 KiB
apart (n = 1024 inputs, h = 512 units), and last tiles at most one vector
wide, which the AVX-512 path computes at half width.  The two vector
paths are compared directly, at 1, 2 and 3 threads, and the deep network's
gradient too (its top layer's gradient is a 10-row product over all rows).
"""

import numpy as np
import pytest

from conftest import engine, kernel_paths

from test_engine import make_problem

eng = engine()
VECTOR_PATHS = [p for p in ("avx2", "avx512") if p in kernel_paths()]
pytestmark = pytest.mark.skipif(
    len(VECTOR_PATHS) < 2,
    reason="needs a CPU with both the avx2 and avx512 kernel paths")


def _on_each_vector_path(fn):
    before = eng.get_kernel_path()
    try:
        out = []
        for path in VECTOR_PATHS:
            eng.set_kernel_path(path)
            out.append(fn())
        return out
    finally:
        eng.set_kernel_path(before)


# (m, n, h): m rows is the depth of the weight gradients.
SHAPES = [(600, 40, 9), (777, 64, 25), (1030, 33, 47), (513, 97, 14),
          (300, 1024, 20), (600, 64, 512)]


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_objective_gradients_identical_across_vector_paths(dtype, shape, n_threads):
    m, n, h = shape
    params, X = make_problem(m, n, h, "sigmoid", seed=11, dtype=dtype)
    ev = eng.ObjectiveEvaluator(X, h, rho=0.05, beta=3.0, lam=1e-3, n_threads=n_threads)
    theta = np.concatenate([np.asarray(q, np.float64).ravel() for q in params])

    def run():
        grad = np.empty_like(theta)
        return ev.evaluate_flat(theta, grad), grad

    (l0, g0), (l1, g1) = _on_each_vector_path(run)
    assert np.float64(l0).tobytes() == np.float64(l1).tobytes()
    assert g0.tobytes() == g1.tobytes()


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_deep_gradient_identical_across_vector_paths(dtype, n_threads):
    sizes = [70, 37, 29, 10]
    rng = np.random.default_rng(5)
    m = 611
    X = rng.random((m, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], m)
    ev = eng.DeepEvaluator(sizes, X, y, lam=1e-3, n_threads=n_threads)
    theta = rng.uniform(-0.3, 0.3, ev.n_params)

    def run():
        grad = np.empty_like(theta)
        return ev.evaluate_flat(theta, grad), grad

    (l0, g0), (l1, g1) = _on_each_vector_path(run)
    assert np.float64(l0).tobytes() == np.float64(l1).tobytes()
    assert g0.tobytes() == g1.tobytes()
