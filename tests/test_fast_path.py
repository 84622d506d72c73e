"""The latency path of transform: csae._engine.encode_fast and its use by
the estimator.  It must give the reference's answer, and hand everything
unusual back (None) to the validating path rather than guess."""

import numpy as np
import pytest

from conftest import assert_close, engine
from csae import SparseAutoencoder, reference

eng = engine()


def problem(dtype, m=3, n=7, h=5, seed=0):
    rng = np.random.default_rng(seed)
    (W, b, _, _), _ = reference.init_params(n, h, seed, dtype)
    b = rng.normal(size=h).astype(dtype)
    return W, b, rng.random((m, n)).astype(dtype)


@pytest.mark.parametrize("m", [1, 2, 17])
def test_matches_reference(kernel_path, dtype, m):
    W, b, X = problem(dtype, m=m)
    A = eng.encode_fast(W, b, X, 1)
    assert A.dtype == dtype and A.shape == (m, W.shape[0])
    assert_close(A, reference.encode(W, b, X), dtype)


def odd_inputs(W, b, X):
    yield "list", W, b, X.tolist()
    yield "int dtype", W, b, (X * 10).astype(np.int64)
    yield "other float dtype", W, b, X.astype(np.float16)
    yield "Fortran order", W, b, np.asfortranarray(np.vstack([X, X]))
    yield "strided", W, b, np.vstack([X, X])[::2]
    yield "big-endian", W, b, X.astype(X.dtype.newbyteorder(">"))
    yield "wrong width", W, b, X[:, :-1].copy()
    yield "1-D", W, b, X[0].copy()
    yield "no rows", W, b, X[:0].copy()
    yield "NaN", W, b, np.where(np.arange(X.size).reshape(X.shape) == 4, np.nan, X).astype(X.dtype)
    yield "inf", W, b, np.full_like(X, np.inf)
    yield "bias length", W, b[:-1].copy(), X
    yield "bias dtype", W, b.astype(np.float16), X
    yield "weights as list", W.tolist(), b, X


@pytest.mark.parametrize("case", [c[0] for c in odd_inputs(*problem(np.float64))])
def test_unusual_input_is_handed_back(dtype, case):
    cases = {name: args for name, *args in odd_inputs(*problem(dtype))}
    W, b, X = cases[case]
    assert eng.encode_fast(W, b, X, 1) is None


def test_transform_takes_the_fast_path_only_when_safe(monkeypatch):
    X = np.random.default_rng(1).random((40, 6))
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=2, random_state=0).fit(X)
    calls = []
    real = eng.encode_fast

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(eng, "encode_fast", spy)
    expected = reference.encode(model.encoder_weights_, model.encoder_bias_, X[:1])
    np.testing.assert_allclose(model.transform(X[:1]), expected, rtol=1e-12)
    assert len(calls) == 1

    # A hyperparameter changed since validation: the validating path runs
    # (and here must reject it) instead of the fast one.
    model.set_params(n_hidden=0)
    with pytest.raises(ValueError, match="n_hidden"):
        model.transform(X[:1])
    assert len(calls) == 1

    model.set_params(n_hidden=3, backend="python")
    np.testing.assert_allclose(model.transform(X[:1]), expected, rtol=1e-12)
    assert len(calls) == 1

    # NaN is handed back by the engine and reported by the validating path.
    model.set_params(backend="c")
    bad = X[:1].copy()
    bad[0, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.transform(bad)


@pytest.mark.parametrize("model_dtype, input_dtype", [("float32", np.float64),
                                                      ("float64", np.float32)])
def test_other_float_width_takes_the_fast_path_after_one_cast(monkeypatch, model_dtype,
                                                              input_dtype):
    """A float64 row into a float32 model (NumPy's default dtype: the usual
    case) is cast once, as the validating path would, and encoded on the
    fast path: the same bits as the validating path, without its cost."""
    X = np.random.default_rng(2).random((40, 6))
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=2, random_state=0,
                              dtype=model_dtype).fit(X)
    rows = X[:3].astype(input_dtype)
    slow = model.transform(np.asfortranarray(rows.astype(model_dtype)).tolist())

    def no_validation(*args, **kwargs):
        raise AssertionError("the validating path ran")

    monkeypatch.setattr(SparseAutoencoder, "_ready", no_validation)
    fast = model.transform(rows)
    assert fast.dtype == np.dtype(model_dtype)
    np.testing.assert_array_equal(fast, slow)


def test_cast_hands_back_what_the_cast_cannot_keep():
    W, b, X = problem(np.float32)
    assert eng.encode_fast(W, b, X.astype(np.float64), 1) is None     # cast not asked
    np.testing.assert_array_equal(eng.encode_fast(W, b, X.astype(np.float64), 1, True),
                                  eng.encode_fast(W, b, X, 1))
    for bad in (np.inf, np.nan, 1e39):
        Xb = X.astype(np.float64)
        Xb[0, 1] = bad
        assert eng.encode_fast(W, b, Xb, 1, True) is None
    W64, b64, X64 = problem(np.float64)
    Xb = X64.astype(np.float32)
    Xb[-1, -1] = np.nan
    assert eng.encode_fast(W64, b64, Xb, 1, True) is None


def test_other_float_width_that_overflows_gets_the_validating_message():
    X = np.random.default_rng(2).random((40, 6))
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=2, random_state=0,
                              dtype="float32").fit(X)
    with pytest.raises(ValueError, match="overflow"):
        model.transform(np.full((1, 6), 1e300))


@pytest.mark.filterwarnings("ignore::csae._warnings.LearnedNothingWarning")  # 3 epochs
@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_published_weights_start_on_a_cache_line(tmp_path, solver):
    """transform reads the encoder's weights in place: every weight array a
    model publishes (after fit, after load, and set by hand from a
    misaligned array) starts on a 64-byte boundary, so a row of W never
    straddles more cache lines than it must; republishing an array does not
    copy it again."""
    import csae
    from csae._state import frozen
    X = np.random.default_rng(0).random((40, 13))
    model = SparseAutoencoder(n_hidden=7, solver=solver, max_epochs=3, tol=0,
                              random_state=0).fit(X)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = csae.load(path)
    raw = np.random.default_rng(1).random(7 * 13 + 1)
    start = 1 if raw.ctypes.data % 64 == 0 else 0
    misaligned = raw[start:start + 91].reshape(7, 13)
    assert misaligned.ctypes.data % 64 != 0
    by_hand = SparseAutoencoder(n_hidden=7)
    by_hand.encoder_weights_ = misaligned
    for source in (model, loaded):
        for array in (source.encoder_weights_, source.encoder_bias_,
                      source.decoder_weights_, source.decoder_bias_):
            assert array.ctypes.data % 64 == 0
        # The attributes are views of the state's arrays, which frozen keeps.
        assert all(frozen(array) is array for array in source._state.params)
    assert by_hand.encoder_weights_.ctypes.data % 64 == 0
    np.testing.assert_array_equal(by_hand.encoder_weights_, misaligned)
