"""The vector kernel paths give the same bits (docs/guarantees.md).

AVX2 and AVX-512 differ in register tiles (6x16 against 12x32 floats), in
vector width and in which columns form the tails, yet for the same data,
hyperparameters and random_state they must give bit-identical weights,
objectives, gradients and codes, at every thread count.  The tests compare
the two paths directly (never against values taken from either) and skip on
a machine that lacks one of them.  The portable path is allowed to differ.
"""

import numpy as np
import pytest

from conftest import engine, kernel_paths

from test_engine import _assert_identical, _run_everything, make_problem

from csae import SparseAutoencoder

eng = engine()
VECTOR_PATHS = [p for p in ("avx2", "avx512") if p in kernel_paths()]
pytestmark = pytest.mark.skipif(
    len(VECTOR_PATHS) < 2,
    reason="needs a CPU with both the avx2 and avx512 kernel paths")


def on_each_vector_path(fn):
    """fn() run on every vector path, the active path restored after."""
    before = eng.get_kernel_path()
    try:
        out = {}
        for path in VECTOR_PATHS:
            eng.set_kernel_path(path)
            out[path] = fn()
        return list(out.values())
    finally:
        eng.set_kernel_path(before)


def assert_same_bits(results):
    first, *rest = results
    for other in rest:
        _assert_identical(first, other)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_engine_calls_identical_across_vector_paths(dtype, decoder, n_threads):
    """encode, decode, reconstruct, objective, gradients, an SGD step with
    momentum and two shuffled epochs, on odd sizes (1001 x 97 -> 65) whose
    thread splits and column tails fall mid-tile on both paths."""
    assert_same_bits(on_each_vector_path(lambda: _run_everything(dtype, decoder, n_threads)))


# (m, n, h): one row (the GEMV and outer-product products), widths around
# both paths' tiles and vector widths (8, 16, 32 floats), deep products that
# span several KC panels (KC = 256), and the benchmark's S and M shapes.
SHAPES = [(1, 64, 25), (1, 785, 197), (2, 3, 1), (7, 17, 33), (13, 31, 15),
          (29, 48, 40), (100, 64, 25), (128, 784, 196), (40, 600, 70), (3, 700, 513)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_shapes_identical_across_vector_paths(dtype, shape):
    m, n, h = shape
    params, X = make_problem(m, n, h, "sigmoid", seed=7, dtype=dtype)
    kw = dict(rho=0.05, beta=3.0, lam=1e-3, decoder="sigmoid")

    def run():
        out = {"A": eng.encode(params[0], params[1], X)}
        out["L"], out["grads"] = eng.objective_and_gradients(params, X, **kw)
        p = tuple(np.array(q) for q in params)
        v = tuple(np.zeros_like(q) for q in params)
        out["loss"], _ = eng.sgd_epoch(p, v, X, learning_rate=0.1, momentum=0.5,
                                       batch_size=1, shuffle=True, rng_state=3, **kw)
        out["params"] = p
        return out
    assert_same_bits(on_each_vector_path(run))


def test_sigmoid_identical_over_its_whole_range(dtype):
    """Pre-activations from -1000 to 1000 (past both clamps of exp), -0.0 and
    tiny values, placed in every column position of a row whose width (37)
    leaves tails on both paths: the polynomial is evaluated lane by lane the
    same way in full vectors, half vectors and single values."""
    n_hidden = 37
    z = np.concatenate([np.linspace(-1000, 1000, 401), [-0.0, 0.0, 1e-30, -1e-30, 88.0,
                                                        -88.0, 709.0, -709.0, -745.0]])
    # 410 = 11 * 37 + 3: repeating z row after row moves every value through
    # every column.
    Z = np.resize(z, (z.size, n_hidden))
    # encode with W = I (one feature per unit): A = sigmoid(X + b), b = 0.
    W = np.eye(n_hidden, dtype=dtype)
    b = np.zeros(n_hidden, dtype=dtype)
    X = np.ascontiguousarray(Z, dtype=dtype)
    first, second = on_each_vector_path(lambda: {"A": eng.encode(W, b, X)})
    _assert_identical(first, second)
    # and the values are the sigmoid (a wrong lane would show here too)
    with np.errstate(over="ignore"):  # exp(1000) = inf gives 1 / inf = 0
        expected = 1 / (1 + np.exp(-X.astype(np.float64)))
    # Below the clamp of exp (-87 in float32, -708 in float64) the result
    # is exp(clamp), not the (even smaller) true value.
    tol, floor = (1e-6, 2e-38) if dtype == np.float32 else (1e-14, 4e-308)
    np.testing.assert_allclose(first["A"], expected, rtol=tol, atol=floor)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch_size", [1, 10, 64])
def test_estimator_identical_across_vector_paths(dtype, n_threads, batch_size):
    """What a user sees: fit (shuffled, momentum), its loss curve and weights,
    and transform of many rows and of one row."""
    rng = np.random.default_rng(4)
    X = rng.random((300, 45))

    def run():
        model = SparseAutoencoder(n_hidden=23, max_epochs=3, batch_size=batch_size,
                                  momentum=0.9, learning_rate=0.05, dtype=np.dtype(dtype).name,
                                  random_state=11, n_threads=n_threads).fit(X)
        return {"weights": (model.encoder_weights_, model.encoder_bias_,
                            model.decoder_weights_, model.decoder_bias_),
                "curve": np.asarray(model.loss_curve_),
                "codes": model.transform(X), "one": model.transform(X[:1])}
    assert_same_bits(on_each_vector_path(run))


def _adam_running_blockwise(dtype, n_threads, batch_size):
    """Adam with the running sparsity estimate over two shuffled epochs, and
    the block-wise objective, on sizes whose tails fall mid-tile."""
    params, X = make_problem(203, 97, 65, "sigmoid", seed=9, dtype=dtype)
    kw = dict(rho=0.05, beta=3.0, lam=1e-3, decoder="sigmoid")
    p = tuple(np.array(q) for q in params)
    m, v = tuple(np.zeros_like(q) for q in p), tuple(np.zeros_like(q) for q in p)
    q = np.zeros(65, dtype)
    out = {"losses": []}
    state, done = 5, 0
    for _ in range(2):
        loss, state = eng.sgd_epoch(p, None, X, learning_rate=0.01, batch_size=batch_size,
                                    shuffle=True, rng_state=state, solver="adam", adam_m=m,
                                    adam_v=v, adam_t=done, sparsity_smoothing=0.1,
                                    rho_running=q, running_batches=done,
                                    n_threads=n_threads, **kw)
        out["losses"].append(loss)
        done += -(-203 // batch_size)
    out.update(params=p, m=m, v=v, q=q)
    sums = eng.activation_sums(p[0], p[1], X[:100], n_threads=n_threads)
    sums = sums + eng.activation_sums(p[0], p[1], X[100:], n_threads=n_threads)
    out["part"], out["part_grads"] = eng.objective_part(
        p, X[100:], sums / 203, 203, rho=0.05, beta=3.0, n_threads=n_threads)
    out["sums"] = sums
    return out


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch_size", [1, 64])
def test_adam_running_blockwise_identical_across_vector_paths(dtype, n_threads, batch_size):
    assert_same_bits(on_each_vector_path(
        lambda: _adam_running_blockwise(dtype, n_threads, batch_size)))
