"""ONNX export of the deep models: ONNX Runtime running a StackedEncoder's
graphs gives its transform / inverse_transform / reconstruct, and a
SparseAutoencoderClassifier's graph gives predict_proba (within the
per-dtype tolerance of tests/test_onnx.py) and predict (exactly, on
well-separated classes), for 1 to 3 layers, both dtypes, with and without
input scaling; the classifier's outputs look like skl2onnx's for a
scikit-learn classifier.  Skipped when onnx/onnxruntime are missing."""

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import csae  # noqa: E402
from csae import NotFittedError, SparseAutoencoder, SparseAutoencoderClassifier  # noqa: E402
# The single model's table: each sigmoid layer may add ONNX Runtime's
# float32 Sigmoid error (about 1.1e-6 of the largest activation), and the
# next layer damps what comes from below by its derivative (at most 1/4)
# times its weights: measured worst cases on these networks are 2e-7
# (stack) and 9e-7 (3 layers and a softmax), so the single model's bound
# holds for the deep ones.  float64 differs only by summation order.
from test_onnx import RTOL  # noqa: E402

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
SIZES = {1: (12,), 2: (12, 8), 3: (12, 8, 5)}


def run(proto, X):
    """Every output of the graph on X, by name."""
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: X})))


def assert_matches(actual, expected, dtype):
    assert actual.dtype == expected.dtype == dtype
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    err = float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale
    assert err <= RTOL[dtype], f"relative error {err:.3g}"


def data(scaled, seed=0, m=300, n=20):
    rng = np.random.default_rng(seed)
    X = rng.random((m, n))
    if scaled:
        X = X * rng.uniform(1, 50, n) + rng.uniform(-100, 100, n)  # far from [0, 1]
    return X


def stacked(dtype, n_layers, scaled, scale_every_layer=False, decoder="sigmoid"):
    """A stack of ``n_layers`` autoencoders, each trained on the previous
    one's features (a few epochs), and its training data."""
    X = data(scaled)
    aes, features = [], X
    for l, h in enumerate(SIZES[n_layers]):
        ae = SparseAutoencoder(n_hidden=h, max_epochs=3, batch_size=30, dtype=dtype,
                               scale_inputs=scaled and (l == 0 or scale_every_layer),
                               decoder=decoder, learning_rate=0.05 if decoder == "linear"
                               else 0.3, random_state=l).fit(features)
        features = ae.transform(features)
        aes.append(ae)
    return csae.stack(aes), X


def blobs(k=3, m=240, n=10, seed=0, scaled=False):
    """Well-separated classes: centres 12 standard deviations apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (k, n))
    y = np.arange(m) % k
    X = centres[y] + rng.normal(0, 0.5, (m, n))
    if scaled:
        return X * 40 + 250, y  # far from [0, 1]: the graph must scale it
    # In [0, 1] for the sigmoid decoders of pretraining, without csae's scaling.
    return (X - X.min()) / (X.max() - X.min()), y


def classifier(dtype, n_layers, scaled, X, labels):
    clf = SparseAutoencoderClassifier(hidden_layer_sizes=SIZES[n_layers], dtype=dtype,
                                      scale_inputs=scaled, max_iter=30, softmax_max_iter=30,
                                      autoencoder_params=dict(max_epochs=20), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few iterations on purpose
        return clf.fit(X, labels)


# ---------------------------------------------------------------------------
# StackedEncoder
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("scaled", [False, True], ids=["raw", "scaled"])
def test_every_stacked_graph_matches_the_stack(dtype, n_layers, scaled):
    stack, X = stacked(dtype, n_layers, scaled)
    Xd = X.astype(dtype)
    H = stack.transform(Xd)
    assert_matches(run(stack.to_onnx(), Xd)["H"], H, dtype)
    assert_matches(run(stack.to_onnx(what="decoder"), H)["Y"], stack.inverse_transform(H),
                   dtype)
    assert_matches(run(csae.to_onnx(stack, what="reconstruct"), Xd)["Y"],
                   stack.reconstruct(Xd), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_a_stack_whose_upper_layers_scale_their_inputs(dtype, decoder):
    # The upper autoencoders' input scaling is folded into the stack's
    # weights for transform, and undone by their own decoders in
    # inverse_transform: the graphs follow both.
    stack, X = stacked(dtype, 3, True, scale_every_layer=True, decoder=decoder)
    Xd = X.astype(dtype)
    H = stack.transform(Xd)
    assert_matches(run(stack.to_onnx(), Xd)["H"], H, dtype)
    assert_matches(run(stack.to_onnx(what="reconstruct"), Xd)["Y"], stack.reconstruct(Xd),
                   dtype)


def test_stacked_graph_names_shapes_and_file(tmp_path):
    stack, X = stacked(np.float32, 2, False)
    path = tmp_path / "stack.onnx"
    proto = stack.to_onnx(path, what="reconstruct")
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded)
    assert loaded.SerializeToString() == proto.SerializeToString()
    assert [p.name for p in tmp_path.iterdir()] == ["stack.onnx"]  # no temporary left
    assert csae.to_onnx(stack, what="reconstruct").SerializeToString() == \
        proto.SerializeToString()
    for what, ends in {"encoder": ("X", 20, "H", 8), "decoder": ("H", 8, "Y", 20),
                       "reconstruct": ("X", 20, "Y", 20)}.items():
        graph = stack.to_onnx(what=what).graph
        (inp,), (out,) = graph.input, graph.output
        dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in (inp, out)]
        assert (inp.name, dims[0], out.name, dims[1]) == (ends[0], ["N", ends[1]], ends[2],
                                                         ["N", ends[3]])
    assert run(proto, X[:1].astype(np.float32))["Y"].shape == (1, 20)
    assert run(proto, X[:0].astype(np.float32))["Y"].shape == (0, 20)


# ---------------------------------------------------------------------------
# SparseAutoencoderClassifier
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("scaled", [False, True], ids=["raw", "scaled"])
def test_classifier_graph_matches_predict_proba_and_predict(dtype, n_layers, scaled):
    X, y = blobs(scaled=scaled)
    labels = np.array(["cat", "dog", "émeu"])[y]
    clf = classifier(dtype, n_layers, scaled, X, labels)
    Xd = X.astype(dtype)
    out = run(clf.to_onnx(), Xd)
    P = clf.predict_proba(Xd)
    assert_matches(out["probabilities"], P, dtype)
    predicted = clf.predict(Xd)
    assert np.array_equal(predicted, labels)  # well separated: the test means something
    assert out["label"].tolist() == predicted.tolist()
    assert all(isinstance(v, str) for v in out["label"])


@pytest.mark.parametrize("labels, expected", [
    (np.array([3, 7, 11]), [3, 7, 11]),
    (np.array([-2.0, 0.0, 5.0]), [-2, 0, 5]),
    (np.array([10, 20, 30], dtype=np.uint8), [10, 20, 30]),
    (np.array(["a", "b", "c"], dtype=object), ["a", "b", "c"]),
], ids=["int", "whole-float", "uint8", "object-str"])
def test_labels_come_out_as_int64_or_strings(labels, expected):
    X, y = blobs()
    clf = classifier(np.float64, 1, False, X, labels[y])
    out = run(clf.to_onnx(), X)
    want = np.array(expected, dtype=object if isinstance(expected[0], str) else np.int64)[y]
    assert out["label"].dtype == want.dtype
    assert out["label"].tolist() == want.tolist() == clf.predict(X).tolist()


def test_bytes_labels_are_refused_with_the_types_onnx_labels_take():
    X, y = blobs()
    clf = classifier(np.float64, 1, False, X, np.array([b"a", b"b", b"c"])[y])
    with pytest.raises(ValueError, match="labels are integers or strings"):
        clf.to_onnx()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", ["int", "str"])
def test_classifier_outputs_read_like_skl2onnx_ones(dtype, kind):
    # A serving stack written for skl2onnx classifiers (zipmap=False) finds
    # the same input and outputs: names, element types and shapes.
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.linear_model import LogisticRegression

    X, y = blobs()
    X = X.astype(dtype)
    labels = y if kind == "int" else np.array(["x", "y", "z"])[y]
    ours = classifier(dtype, 1, False, X, labels).to_onnx().graph
    theirs = skl2onnx.to_onnx(LogisticRegression().fit(X, labels), X[:1], target_opset=17,
                              options={"zipmap": False}).graph

    def signature(values):
        # A free dimension has dim_value 0 (skl2onnx leaves it unnamed, csae
        # names the batch dimension "N").
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]
    assert signature(ours.input) == signature(theirs.input) == [
        ("X", onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), [0, 10])]
    assert signature(ours.output) == signature(theirs.output)
    assert [name for name, _, _ in signature(ours.output)] == ["label", "probabilities"]


def test_classifier_graph_file(tmp_path):
    X, y = blobs()
    clf = classifier(np.float32, 2, True, X, y)
    path = tmp_path / "clf.onnx"
    proto = clf.to_onnx(path)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded)
    assert loaded.SerializeToString() == proto.SerializeToString()
    assert csae.to_onnx(clf).SerializeToString() == proto.SerializeToString()
    assert [p.name for p in tmp_path.iterdir()] == ["clf.onnx"]
    out = run(proto, X[:0].astype(np.float32))
    assert out["label"].shape == (0,) and out["probabilities"].shape == (0, 3)


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("make", [SparseAutoencoder, lambda: csae.StackedEncoder(),
                                  SparseAutoencoderClassifier],
                         ids=["autoencoder", "stack", "classifier"])
def test_an_unfitted_model_raises_not_fitted(make, tmp_path):
    # The same error from all three (a ValueError), and no file.
    model = make()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        csae.to_onnx(model, tmp_path / "x.onnx")
    if not isinstance(model, SparseAutoencoder):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            model.to_onnx(tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments():
    stack, _ = stacked(np.float64, 2, False)
    with pytest.raises(ValueError, match="what must be one of 'encoder', 'decoder'"):
        stack.to_onnx(what="hidden")
    X, y = blobs()
    clf = classifier(np.float64, 1, False, X, y)
    with pytest.raises(TypeError, match="what"):
        csae.to_onnx(clf, what="encoder")
    with pytest.raises(TypeError, match="SparseAutoencoderClassifier, got object"):
        csae.to_onnx(object())


def _initializer_bytes(proto):
    """What the graph's initializers hold, read from the graph itself."""
    total = 0
    for t in proto.graph.initializer:
        total += len(t.raw_data) if t.raw_data else sum(len(s) for s in t.string_data)
    return total


@pytest.mark.parametrize("model", ["stack-encoder", "stack-reconstruct", "classifier-int",
                                   "classifier-str"])
def test_the_size_check_counts_what_the_graph_holds(model, monkeypatch):
    # The limit lowered to the graph's own size: it is built; one byte less
    # is refused, before anything is built, with the network's sizes.
    import csae.onnx as csae_onnx
    if model.startswith("stack"):
        stack, _ = stacked(np.float64, 2, True, scale_every_layer=True)
        what = model.split("-")[1]
        export = lambda: stack.to_onnx(what=what)  # noqa: E731
        message = r"the ONNX %s graph .* \(layers 20-12-8, float64\)" % what
    else:
        X, y = blobs()
        labels = y if model.endswith("int") else np.array(["one", "two", "three"])[y]
        clf = classifier(np.float64, 2, True, X, labels)
        export = clf.to_onnx
        message = r"the ONNX classifier graph .* \(layers 10-12-8-3, float64\)"
    size = _initializer_bytes(export())
    monkeypatch.setattr(csae_onnx, "_GRAPH_MARGIN", 0)
    monkeypatch.setattr(csae_onnx, "MAX_MESSAGE_BYTES", size)
    export()
    monkeypatch.setattr(csae_onnx, "MAX_MESSAGE_BYTES", size - 1)

    def built(*args, **kwargs):
        raise AssertionError("a tensor was built for a graph that is refused")
    monkeypatch.setattr(onnx.numpy_helper, "from_array", built)
    with pytest.raises(ValueError, match=message):
        export()
