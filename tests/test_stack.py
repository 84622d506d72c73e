"""csae.stack and StackedEncoder: fitted autoencoders joined into one deep
encoder whose transform is one engine call (csae_deep_encode_*).

The stacked transform is checked against the chain of the autoencoders' own
transforms (the same bits), against a plain NumPy chain of sigmoids, and for
its refusals of stacks that cannot work.
"""

import pickle
import warnings

import numpy as np
import pytest

from conftest import DTYPES, RTOL, engine, kernel_paths

import csae
from csae import NotFittedError

eng = engine()


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def fitted(X, h, dtype=np.float64, seed=0, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few iterations on purpose
        return csae.SparseAutoencoder(n_hidden=h, max_epochs=15, random_state=seed,
                                      dtype=dtype, **kw).fit(X)


def three_layers(dtype, scale_first=False):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (120, 20))
    if scale_first:
        X = 5 * X - 2   # outside [0, 1]: the first autoencoder must scale
    ae1 = fitted(X, 12, dtype, 1, scale_inputs=scale_first)
    H1 = ae1.transform(X)
    ae2 = fitted(H1, 8, dtype, 2)
    H2 = ae2.transform(H1)
    ae3 = fitted(H2, 5, dtype, 3)
    return X, (ae1, ae2, ae3), ae3.transform(H2)


# ---------------------------------------------------------------------------
# The engine function
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", kernel_paths())
def test_deep_encode_equals_chain_of_encodes(dtype, path):
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (37, 11)).astype(dtype)
    layers = [(rng.normal(0, 1, (h, p)).astype(dtype), rng.normal(0, 1, h).astype(dtype))
              for p, h in [(11, 9), (9, 6), (6, 4)]]
    before = eng.get_kernel_path()
    eng.set_kernel_path(path)
    try:
        H = eng.deep_encode(layers, X)
        A = X
        for W, b in layers:
            A = eng.encode(W, b, A)
    finally:
        eng.set_kernel_path(before)
    assert H.dtype == dtype and H.shape == (37, 4)
    np.testing.assert_array_equal(H, A)
    # And against NumPy's sigmoid chain, independently of the engine.
    R = X.astype(np.float64)
    for W, b in layers:
        R = sigmoid(R @ W.T.astype(np.float64) + b)
    np.testing.assert_allclose(H, R, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_deep_encode_same_bits_for_any_thread_count(dtype):
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, (300, 30)).astype(dtype)
    layers = [(rng.normal(0, 1, (h, p)).astype(dtype), rng.normal(0, 1, h).astype(dtype))
              for p, h in [(30, 25), (25, 7)]]
    np.testing.assert_array_equal(eng.deep_encode(layers, X, 1), eng.deep_encode(layers, X, 2))


def test_deep_encode_nan_rule():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (5, 4))
    layers = [(rng.normal(0, 1, (3, 4)), np.zeros(3)), (rng.normal(0, 1, (2, 3)), np.zeros(2))]
    X[2, 1] = np.inf
    H = eng.deep_encode(layers, X)
    assert np.isnan(H[2]).all() and np.isfinite(np.delete(H, 2, axis=0)).all()
    layers[1][0][0, 0] = np.nan
    assert np.isnan(eng.deep_encode(layers, X[:2])).all()


def test_deep_encode_refusals():
    W, b = np.ones((3, 4)), np.zeros(3)
    with pytest.raises(TypeError, match="non-empty"):
        eng.deep_encode([], np.ones((2, 4)))
    with pytest.raises(ValueError):
        eng.deep_encode([(W, b), (np.ones((2, 5)), np.zeros(2))], np.ones((2, 4)))
    with pytest.raises(ValueError):
        eng.deep_encode([(W, b)], np.ones((2, 5)))


# ---------------------------------------------------------------------------
# stack
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale_first", [False, True])
def test_stacked_transform_equals_chain(dtype, scale_first):
    X, aes, H = three_layers(dtype, scale_first)
    s = csae.stack(*aes)
    out = s.transform(X)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, H)
    assert s.n_features_in_ == 20
    assert [W.shape for W, _ in s.layers_] == [(12, 20), (8, 12), (5, 8)]
    np.testing.assert_array_equal(csae.stack(list(aes)).transform(X), H)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inverse_transform_through_the_decoders(dtype):
    X, aes, H = three_layers(dtype, scale_first=True)
    s = csae.stack(*aes)
    expected = aes[0].inverse_transform(aes[1].inverse_transform(aes[2].inverse_transform(H)))
    np.testing.assert_array_equal(s.inverse_transform(H), expected)
    np.testing.assert_array_equal(s.reconstruct(X), expected)


def test_inner_scaling_is_folded_into_the_weights():
    rng = np.random.default_rng(4)
    X = rng.uniform(0, 1, (100, 10))
    ae1 = fitted(X, 6)
    H1 = ae1.transform(X)
    ae2 = fitted(H1, 4, scale_inputs=True)
    s = csae.stack(ae1, ae2)
    np.testing.assert_allclose(s.transform(X), ae2.transform(H1), rtol=1e-12, atol=1e-14)


def test_stack_keeps_copies():
    X, aes, H = three_layers(np.float64)
    s = csae.stack(*aes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aes[0].set_params(max_epochs=1).fit(X)   # the original changes, the stack does not
    assert not np.array_equal(aes[0].encoder_weights_, s.layers_[0][0])
    np.testing.assert_array_equal(s.transform(X), H)


def test_pickle_round_trip():
    X, aes, H = three_layers(np.float32, scale_first=True)
    s = pickle.loads(pickle.dumps(csae.stack(*aes)))
    np.testing.assert_array_equal(s.transform(X), H)
    np.testing.assert_array_equal(s.inverse_transform(H), csae.stack(*aes).inverse_transform(H))


def test_fit_trains_copies_greedily():
    X, aes, H = three_layers(np.float64)
    unfitted = [csae.SparseAutoencoder(n_hidden=h, max_epochs=15, random_state=seed)
                for h, seed in [(12, 1), (8, 2), (5, 3)]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = csae.StackedEncoder(unfitted).fit(X)
    np.testing.assert_array_equal(s.transform(X), H)
    assert not any(hasattr(ae, "encoder_weights_") for ae in unfitted)   # params untouched


def test_bad_stacks_are_refused():
    X, (ae1, ae2, ae3), _ = three_layers(np.float64)
    with pytest.raises(ValueError, match="do not chain: autoencoder 0 has 12 hidden units "
                                         "but autoencoder 1 takes 8"):
        csae.stack(ae1, ae3)
    with pytest.raises(NotFittedError, match="autoencoder 1 of the stack is not fitted"):
        csae.stack(ae1, csae.SparseAutoencoder(n_hidden=3))
    with pytest.raises(TypeError, match="argument 1 is a str"):
        csae.stack(ae1, "ae2")
    with pytest.raises(ValueError, match="at least one"):
        csae.stack()
    ae2_32 = fitted(ae1.transform(X), 8, np.float32)
    with pytest.raises(ValueError, match="share one dtype"):
        csae.stack(ae1, ae2_32)
    with pytest.raises(NotFittedError):
        csae.StackedEncoder([ae1]).transform(X)


def test_bad_input_to_transform():
    X, aes, _ = three_layers(np.float64)
    s = csae.stack(*aes)
    with pytest.raises(ValueError, match="X has 19 features, but StackedEncoder is expecting 20"):
        s.transform(X[:, 1:])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        s.transform(bad)


def test_in_a_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    X, aes, H = three_layers(np.float64)
    y = (X[:, 0] > 0.5).astype(int)
    pipe = make_pipeline(csae.stack(*aes), LogisticRegression()).fit(X, y)
    assert pipe.predict(X).shape == (120,)


# ---------------------------------------------------------------------------
# The C function, through the shared library
# ---------------------------------------------------------------------------

def test_c_deep_encode_statuses():
    """csae_deep_encode_f64: reads only the hidden layers' part of theta,
    refuses a net without hidden layers, H over X, and a short workspace."""
    import ctypes

    from libcsae_ctypes import library, status_codes
    from test_deep import DeepNet, Workspace, c_net

    lib, codes = library(), status_codes()
    p = ctypes.c_void_p
    lib.csae_deep_encode_f64.restype = ctypes.c_int
    lib.csae_deep_encode_f64.argtypes = [ctypes.POINTER(DeepNet), p, p, ctypes.c_size_t, p,
                                         ctypes.POINTER(Workspace)]
    lib.csae_deep_forward_workspace_size.restype = ctypes.c_size_t
    lib.csae_deep_forward_workspace_size.argtypes = [ctypes.POINTER(DeepNet), ctypes.c_size_t,
                                                     ctypes.c_size_t, ctypes.c_size_t]
    rng = np.random.default_rng(5)
    layers = [(rng.normal(0, 1, (4, 5)), rng.normal(0, 1, 4)),
              (rng.normal(0, 1, (3, 4)), rng.normal(0, 1, 3))]
    theta = np.concatenate([a.ravel() for layer in layers for a in layer])  # no softmax part
    X = rng.uniform(0, 1, (6, 5))
    net, keep = c_net([5, 4, 3, 7])
    size = lib.csae_deep_forward_workspace_size(ctypes.byref(net), 6, 8, 1)
    buf = np.zeros(size, np.uint8)
    ws = Workspace(buf.ctypes.data, size, 1)
    H = np.full((6, 3), -7.0)

    def call(net_=net, H_=H, ws_=ws):
        return lib.csae_deep_encode_f64(ctypes.byref(net_), theta.ctypes.data, X.ctypes.data,
                                        6, H_.ctypes.data, ctypes.byref(ws_))

    assert call() == codes["CSAE_OK"]
    np.testing.assert_array_equal(H, eng.deep_encode(layers, X))
    H[:] = -7.0
    no_hidden, keep2 = c_net([5, 4])
    assert call(net_=no_hidden) == codes["CSAE_ERR_ARGUMENT"]
    assert call(H_=X) == codes["CSAE_ERR_ARGUMENT"]
    assert call(ws_=Workspace(buf.ctypes.data, size - 1, 1)) == codes["CSAE_ERR_WORKSPACE"]
    assert np.all(H == -7.0)
