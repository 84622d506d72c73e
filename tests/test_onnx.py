"""ONNX export: ONNX Runtime running the exported graph gives what the
model's own methods give (float32 1e-6, float64 1e-12 relative), for every
``what``, decoder, dtype and ``scale_inputs``; skl2onnx converts a whole
pipeline holding the estimator.  Skipped when onnx/onnxruntime are missing."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from csae import SparseAutoencoder, to_onnx  # noqa: E402
from csae.onnx import register_skl2onnx_converter  # noqa: E402

# float32: ONNX Runtime's own float32 Sigmoid (MLAS's rational approximation)
# is up to about 1.1e-6 of the largest activation away from the exact value
# (measured against float64 arithmetic on the same float32 inputs; csae's
# transform is within 2.6e-7 of it), so 1e-6 would test ONNX Runtime.
RTOL = {np.float32: 2e-6, np.float64: 1e-12}


def run(proto, X):
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: X})[0]


def assert_matches(actual, expected, dtype):
    assert actual.dtype == expected.dtype == dtype
    # Relative to the output's scale: sigmoid outputs are in (0, 1), the
    # linear decoder's on the data's scale.
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    err = float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale
    assert err <= RTOL[dtype], f"relative error {err:.3g}"


def fitted(dtype, decoder, scale_inputs, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((300, 20))
    if scale_inputs:
        X = X * rng.uniform(1, 50, 20) + rng.uniform(-100, 100, 20)  # far from [0, 1]
    model = SparseAutoencoder(n_hidden=7, max_epochs=3, batch_size=30, dtype=dtype,
                              decoder=decoder, scale_inputs=scale_inputs,
                              learning_rate=0.05 if decoder == "linear" else 0.3,
                              random_state=seed).fit(X)
    return model, X


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
@pytest.mark.parametrize("scale_inputs", [False, True], ids=["raw", "scaled"])
def test_every_graph_matches_the_model(dtype, decoder, scale_inputs):
    model, X = fitted(dtype, decoder, scale_inputs)
    Xd = X.astype(dtype)
    H = model.transform(X)
    assert_matches(run(to_onnx(model), Xd), H, dtype)
    assert_matches(run(to_onnx(model, what="decoder"), H), model.inverse_transform(H), dtype)
    assert_matches(run(to_onnx(model, what="reconstruct"), Xd), model.reconstruct(X), dtype)


def test_graph_shape_names_and_file(tmp_path):
    model, X = fitted(np.float32, "sigmoid", False)
    path = tmp_path / "encoder.onnx"
    proto = to_onnx(model, path)
    loaded = onnx.load(str(path))
    assert loaded.SerializeToString() == proto.SerializeToString()
    (inp,), (out,) = loaded.graph.input, loaded.graph.output
    assert (inp.name, out.name) == ("X", "H")
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert dims == ["N", 7]
    assert {n.op_type for n in loaded.graph.node} == {"Gemm", "Sigmoid"}
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.onnx"]  # no temporary left
    # A batch of one row and the empty batch both run.
    assert run(proto, X[:1].astype(np.float32)).shape == (1, 7)
    assert run(proto, X[:0].astype(np.float32)).shape == (0, 7)


def test_guarantees_bad_input():
    with pytest.raises(ValueError, match="not fitted"):
        to_onnx(SparseAutoencoder())
    model, _ = fitted(np.float64, "sigmoid", False)
    with pytest.raises(ValueError, match="what must be one of 'encoder', 'decoder'"):
        to_onnx(model, what="hidden")
    with pytest.raises(TypeError, match="SparseAutoencoder"):
        to_onnx(object())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_pipeline_converts_with_skl2onnx(dtype):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    pipe = make_pipeline(MinMaxScaler(), SparseAutoencoder(n_hidden=32, max_epochs=5,
                                                           dtype=dtype, random_state=0),
                         LogisticRegression(max_iter=500)).fit(X, y)
    register_skl2onnx_converter()
    register_skl2onnx_converter()  # idempotent
    proto = skl2onnx.to_onnx(pipe, X[:1], target_opset=17,
                             options={LogisticRegression: {"zipmap": False}})
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, {session.get_inputs()[0].name: X})
    expected = pipe.predict_proba(X)
    np.testing.assert_allclose(proba, expected, atol=1e-4)
    assert np.mean(labels == pipe.predict(X)) > 0.99


def _huge(model, n_hidden, n_features):
    """``model`` with weights of the given shape that take no memory
    (read-only zero-stride views): what to_onnx must refuse from the shapes
    alone, without building anything."""
    dtype = np.dtype(model.dtype)
    params = (np.broadcast_to(dtype.type(0), (n_hidden, n_features)),
              np.broadcast_to(dtype.type(0), (n_hidden,)),
              np.broadcast_to(dtype.type(0), (n_features, n_hidden)),
              np.broadcast_to(dtype.type(0), (n_features,)))
    object.__setattr__(model, "_state", model._state._replace(params=params))
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("what", ["encoder", "decoder", "reconstruct"])
def test_a_graph_over_2_gib_is_refused_before_anything_is_built(dtype, what, tmp_path,
                                                                monkeypatch):
    # Before: a 2.2 GB model was copied, turned into a protobuf for 38 s at
    # 10.6 GB of memory, and then failed.  2**31 bytes of encoder weights:
    item = np.dtype(dtype).itemsize
    n_features = 2 ** 16
    n_hidden = 2 ** 31 // (item * n_features)
    model = _huge(fitted(dtype, "sigmoid", False)[0], n_hidden, n_features)

    def built(*args, **kwargs):
        raise AssertionError("a tensor was built for a graph protobuf cannot hold")
    monkeypatch.setattr(onnx.numpy_helper, "from_array", built)
    expected_gib = {"encoder": 2.0, "decoder": 2.0, "reconstruct": 4.0}[what]
    with pytest.raises(ValueError, match=rf"needs {expected_gib:.2f} GiB of weights "
                       rf"\({n_hidden} hidden units x {n_features} features, "
                       rf"{np.dtype(dtype).name}\).*protobuf message of less than 2 GiB"):
        to_onnx(model, tmp_path / "big.onnx", what=what)
    assert list(tmp_path.iterdir()) == []


def test_the_size_check_lets_a_graph_just_under_the_limit_through(monkeypatch):
    # The same check with the limit lowered to a small model's size: the
    # largest graph that fits is built, one byte more is refused.
    import csae.onnx as csae_onnx
    model, _ = fitted(np.float64, "sigmoid", True)
    h, n = model.encoder_weights_.shape
    size = (h * n + h) * 8 + 2 * n * 8  # weights, biases and the input range
    monkeypatch.setattr(csae_onnx, "_GRAPH_MARGIN", 0)
    monkeypatch.setattr(csae_onnx, "MAX_MESSAGE_BYTES", size)
    to_onnx(model)
    monkeypatch.setattr(csae_onnx, "MAX_MESSAGE_BYTES", size - 1)
    with pytest.raises(ValueError, match="protobuf message"):
        to_onnx(model)
