"""Deep models' files (csae/_deep_persist.py): StackedEncoder and
SparseAutoencoderClassifier saved and loaded exactly, read from C
(csae_deep_file_* with csae_deep_encode_* / csae_deep_forward_*) to the same
bits as Python's transform and predict_proba, and hostile files refused by
both readers with a clear message."""

import json
import os
import shutil
import subprocess
import warnings
import zipfile

import numpy as np
import pytest

import csae
from csae import _deep_persist, _engine, _persist
from libcsae_ctypes import DeepReader, Reader
from test_c_api import ROOT


@pytest.fixture(scope="module")
def reader():
    return DeepReader()


def data(m=80, n=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((m, n)) * 4 - 1
    return X


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def classifier(dtype="float64", labels=None, **kwargs):
    X = data()
    y = labels if labels is not None else np.where(X[:, 0] + X[:, 1] > 1, "yes", "no")
    kwargs = {"hidden_layer_sizes": (5, 3), "autoencoder_params": {"max_epochs": 8},
              "max_iter": 6, "softmax_max_iter": 6, "random_state": 0, "dtype": dtype,
              **kwargs}
    return quiet(csae.SparseAutoencoderClassifier(**kwargs).fit, X, y)


def stacked(dtype="float64", scale_upper=True):
    X = data()
    ae1 = quiet(csae.SparseAutoencoder(n_hidden=5, max_epochs=4, random_state=0, dtype=dtype,
                                       scale_inputs=True).fit, X)
    H = ae1.transform(X)
    ae2 = quiet(csae.SparseAutoencoder(n_hidden=3, max_epochs=4, random_state=1, dtype=dtype,
                                       scale_inputs=scale_upper, solver="sgd").fit, H)
    return csae.stack(ae1, ae2, n_threads=1)


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_same_layers(a, b):
    assert len(a) == len(b)
    for (Wa, ba), (Wb, bb) in zip(a, b):
        assert same_bits(Wa, Wb) and same_bits(ba, bb)


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------

LABELS = {
    "strings": None,
    "ints": lambda X: (X[:, 0] > 1).astype(np.int64) * 7 - 3,
    "three floats": lambda X: np.digitize(X[:, 0], [0.0, 1.5]).astype(np.float64) * 2 - 1,
    "bools": lambda X: X[:, 0] > 1,
    "objects": lambda X: np.where(X[:, 0] > 1, "ünïcode label", "b").astype(object),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("labels", sorted(LABELS))
def test_a_classifier_round_trips_exactly(tmp_path, dtype, labels):
    make = LABELS[labels]
    clf = classifier(dtype, labels=None if make is None else make(data()))
    clf.save(tmp_path / "c.npz")
    loaded = csae.load(tmp_path / "c.npz")
    assert type(loaded) is csae.SparseAutoencoderClassifier
    assert loaded.get_params() == clf.get_params()
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert list(loaded.classes_) == list(clf.classes_)
    X = data(seed=3)
    assert same_bits(loaded.predict_proba(X), clf.predict_proba(X))
    assert (loaded.predict(X) == clf.predict(X)).all()
    assert_same_layers(loaded.layers_, clf.layers_)
    assert_same_layers(loaded.pretrained_layers_, clf.pretrained_layers_)
    assert loaded.loss_curve_ == clf.loss_curve_ and loaded.n_iter_ == clf.n_iter_
    assert (loaded.best_iteration_, loaded.validation_loss_curve_) == (None, None)
    assert loaded.n_features_in_ == clf.n_features_in_
    features = X
    for a, b in zip(loaded.autoencoders_, clf.autoencoders_):
        assert a.get_params() == b.get_params()
        assert same_bits(a.decoder_weights_, b.decoder_weights_)
        assert a.loss_curve_ == b.loss_curve_ and a.stop_reason_ == b.stop_reason_
        assert same_bits(a.transform(features), b.transform(features))
        features = b.transform(features)


@pytest.mark.parametrize("kwargs", [{"pretrain": False}, {"early_stopping": True},
                                    {"scale_inputs": False, "autoencoder_params": {
                                        "max_epochs": 8, "decoder": "linear"}},
                                    {"solver": "adam", "batch_size": 16, "beta_1": 0.8}],
                         ids=["no pretraining", "early stopping", "no scaling", "adam"])
def test_classifier_variants_round_trip(tmp_path, kwargs):
    clf = classifier(**kwargs)
    clf.save(tmp_path / "c.npz")
    loaded = csae.load(tmp_path / "c.npz")
    assert loaded.get_params() == clf.get_params()
    assert same_bits(loaded.predict_proba(data(seed=2)), clf.predict_proba(data(seed=2)))
    assert loaded.best_iteration_ == clf.best_iteration_
    assert loaded.validation_loss_curve_ == clf.validation_loss_curve_
    assert (loaded.autoencoders_ is None) == (clf.autoencoders_ is None)


def test_a_classifier_from_given_autoencoders_round_trips(tmp_path):
    stack = stacked()
    clf = quiet(csae.SparseAutoencoderClassifier(autoencoders=stack, max_iter=3,
                                                 softmax_max_iter=3).fit,
                data(), (data()[:, 0] > 1).astype(int))
    clf.save(tmp_path / "c.npz")
    loaded = csae.load(tmp_path / "c.npz")
    # The given autoencoders come back as a list of the loaded ones.
    assert [a.get_params() for a in loaded.autoencoders] == [
        a.get_params() for a in stack.autoencoders_]
    assert same_bits(loaded.predict_proba(data(seed=1)), clf.predict_proba(data(seed=1)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scale_upper", [True, False], ids=["folded", "plain"])
def test_a_stack_round_trips_exactly(tmp_path, dtype, scale_upper):
    stack = stacked(dtype, scale_upper)
    stack.save(tmp_path / "s.npz")
    assert ("autoencoder_weights_1" in np.load(tmp_path / "s.npz").files) == scale_upper
    loaded = csae.load(tmp_path / "s.npz")
    assert type(loaded) is csae.StackedEncoder
    assert loaded.n_threads == stack.n_threads
    X = data(seed=5)
    H = stack.transform(X)
    assert same_bits(loaded.transform(X), H)
    assert same_bits(loaded.inverse_transform(H), stack.inverse_transform(H))
    assert_same_layers(loaded.layers_, stack.layers_)
    features = X
    for a, b in zip(loaded.autoencoders_, stack.autoencoders_):
        assert a.get_params() == b.get_params()
        assert same_bits(a.encoder_weights_, b.encoder_weights_)
        assert same_bits(a.transform(features), b.transform(features))
        features = b.transform(features)


def test_unfitted_models_are_not_saved(tmp_path):
    for model in (csae.StackedEncoder(), csae.SparseAutoencoderClassifier()):
        with pytest.raises(csae.NotFittedError):
            model.save(tmp_path / "x.npz")
        assert not (tmp_path / "x.npz").exists()


def test_the_member_lists_of_both_readers_agree():
    assert tuple(_engine.deep_member_names()) == _deep_persist.MEMBERS


# --------------------------------------------------------------------------
# Read from C, run with the C API: the same bits
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def c_program(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler found (cc or gcc)")
    exe = tmp_path_factory.mktemp("deep_c") / "deep_file_test"
    sources = sorted(str(p) for p in (ROOT / "src_c").glob("*.c"))
    cmd = [cc, "-std=c11", "-O2", "-fopenmp-simd", "-Wall", "-Wextra", "-Werror",
           f"-I{ROOT / 'src_c'}", str(ROOT / "tests" / "deep_file_test.c"), *sources,
           "-lm", "-lpthread", "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return exe


def run_c(exe, tmp_path, model_path, X, dtype, columns):
    (tmp_path / "x.bin").write_bytes(np.ascontiguousarray(X, np.float64).tobytes())
    run = subprocess.run([str(exe), str(model_path), str(tmp_path / "x.bin"),
                          str(tmp_path / "out.bin")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return np.frombuffer((tmp_path / "out.bin").read_bytes(), dtype=dtype).reshape(-1, columns)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_c_forwards_a_saved_classifier_to_pythons_bits(c_program, tmp_path, dtype):
    clf = classifier(dtype)
    clf.save(tmp_path / "c.npz")
    X = data(seed=9)
    P = run_c(c_program, tmp_path, tmp_path / "c.npz", X, dtype, len(clf.classes_))
    assert same_bits(P, clf.predict_proba(X))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_c_encodes_with_a_saved_stack_to_pythons_bits(c_program, tmp_path, dtype):
    stack = stacked(dtype, scale_upper=True)
    stack.save(tmp_path / "s.npz")
    X = data(seed=8)
    H = run_c(c_program, tmp_path, tmp_path / "s.npz", X, dtype, 3)
    assert same_bits(H, stack.transform(X))


def test_c_info_describes_the_file(reader, tmp_path):
    clf = classifier("float32")
    clf.save(tmp_path / "c.npz")
    st, info = reader.info(tmp_path / "c.npz")
    assert st == "CSAE_OK"
    assert (info.kind, info.n_hidden_layers, list(info.sizes[:4])) == (2, 2, [7, 5, 3, 2])
    assert (info.elem_size, info.has_range) == (4, 1)
    assert info.n_params == 5 * 7 + 5 + 3 * 5 + 3 + 2 * 3 + 2
    st, theta = reader.read(tmp_path / "c.npz", info, np.float32)
    assert st == "CSAE_OK"
    assert same_bits(theta, np.concatenate([a.ravel() for layer in clf.layers_ for a in layer]))
    assert reader.read(tmp_path / "c.npz", info, np.float64)[0] == "CSAE_ERR_DTYPE"
    st, lo, scale = reader.input_range(tmp_path / "c.npz", info)
    assert st == "CSAE_OK" and same_bits(lo, clf._data_min) and same_bits(scale, clf._data_scale)
    info.has_range = 0  # not this file
    assert reader.read(tmp_path / "c.npz", info, np.float32)[0] == "CSAE_ERR_MISMATCH"
    info.has_range, info.sizes[1] = 1, info.sizes[1] + 1  # sizes against n_params
    assert reader.read(tmp_path / "c.npz", info, np.float32)[0] == "CSAE_ERR_ARGUMENT"


# --------------------------------------------------------------------------
# Hostile files: refused by both readers, with a short clear message
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A float64 classifier's file with every optional member, and its arrays."""
    path = tmp_path_factory.mktemp("deep_base") / "c.npz"
    classifier(early_stopping=True).save(path)
    with np.load(path) as f:
        return path, {k: f[k] for k in f.files}


def _set(**changes):
    def edit(a):
        a.update(changes)
    return edit


def _drop(*names):
    def edit(a):
        for name in names:
            del a[name]
    return edit


def _apply(name, fn):
    def edit(a):
        a[name] = fn(a[name])
    return edit


def _record(change):
    def edit(a):
        record = json.loads(str(a["hyperparameters"][0]))
        change(record)
        a["hyperparameters"] = np.array([json.dumps(record)])
    return edit


def _nan(x):
    x = x.copy()
    x.reshape(-1)[1] = np.nan
    return x


HUGE = 2 ** 62
BAD = {
    # name: (edit, a fragment of Python's message)
    "newer version": (_set(format_version=np.array(2)), "newer csae"),
    "version zero": (_set(format_version=np.array(0)), "format_version 0"),
    "unknown member": (_set(extra=np.zeros(2)), "unknown fields: extra"),
    "sizes missing": (_drop("sizes"), "fields missing: sizes"),
    "weights missing": (_drop("weights_1"), "weights_1 is missing"),
    "a layer too many": (_set(weights_3=np.zeros((2, 2)), bias_3=np.zeros(2)), "weights_3 is present"),
    "sizes that do not chain": (_apply("sizes", lambda s: s + np.array([0, 1, 0, 0])),
                                "weights_0 must have shape (6, 7)"),
    "wrong shape": (_apply("bias_1", lambda b: b[:-1]), "bias_1 must have shape"),
    "transposed weights": (_apply("weights_0", lambda w: np.ascontiguousarray(w.T)),
                           "weights_0 must have shape"),
    "counts that overflow": (_set(sizes=np.array([HUGE, HUGE, 3, 2])), "more parameters"),
    "a zero size": (_apply("sizes", lambda s: s * np.array([1, 0, 1, 1])), "at least 1"),
    "one class": (_apply("sizes", lambda s: np.array([7, 5, 3, 1])), "at least 2 classes"),
    "sizes as float": (_apply("sizes", lambda s: s.astype(np.float64)), "sizes must be int64"),
    "too many layers": (_set(sizes=np.arange(1, 21, dtype=np.int64)), "1 to 16 hidden layers"),
    "NaN weight": (_apply("weights_1", _nan), "weights_1 contains NaN"),
    "NaN pretrained weight": (_apply("pretrained_weights_0", _nan), "contains NaN"),
    "NaN decoder": (_apply("decoder_weights_0", _nan), "decoder_weights_0 contains NaN"),
    "NaN in the range": (_apply("data_min", _nan), "data_min contains NaN"),
    "zero scale": (_apply("data_scale", lambda s: s * 0), "data_scale must be positive"),
    "mixed dtypes": (_apply("bias_0", lambda b: b.astype(np.float32)), "bias_0 must have dtype"),
    "half a range": (_drop("data_scale"), "both present or both absent"),
    "half an autoencoder": (_drop("decoder_bias_1"), "decoder_bias_1"),
    "classes too short": (_apply("classes", lambda c: c[:1]), "classes must be 2"),
    "classes as bool": (_apply("classes", lambda c: np.array([False, True])), "classes must"),
    "big-endian classes": (_set(classes=np.array([1, 2], dtype=">i8")), "native byte order"),
    "classes unsorted": (_apply("classes", lambda c: c[::-1].copy()), "distinct and sorted"),
    "classes_dtype wrong": (_record(lambda r: r.update(classes_dtype="int64")), "disagrees"),
    "loss curve NaN": (_apply("loss_curve", _nan), "loss_curve contains NaN"),
    "n_iter wrong": (_record(lambda r: r.update(n_iter=r["n_iter"] + 1)), "n_iter differs"),
    "record not JSON": (_set(hyperparameters=np.array(["{oops"])), "not valid JSON"),
    "record not ASCII": (_set(hyperparameters=np.array(['{"é": 1}'])), "not plain ASCII"),
    "unknown hyperparameter": (_record(lambda r: r["estimator"].update(colour=1)),
                               "unexpected hyperparameters: 'colour'"),
    "invalid hyperparameter": (_record(lambda r: r["estimator"].update(alpha=-1)), "alpha"),
    "autoencoder record of another size": (
        _record(lambda r: r["autoencoders"][1]["hyperparameters"].update(n_hidden=4)),
        "disagree with its arrays"),
    "stack members in a classifier": (_set(format=np.array("csae.StackedEncoder")),
                                      "pretrained_weights_0 is present"),
    "other format": (_set(format=np.array("csae.Something")), "format is 'csae.Something'"),
}

# Checked by the C reader as well (the rest are record checks, Python's).
C_REFUSES = set(BAD) - {"classes unsorted", "classes_dtype wrong", "n_iter wrong",
                        "record not JSON", "unknown hyperparameter", "invalid hyperparameter",
                        "autoencoder record of another size"}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_hostile_file_is_refused_by_both_readers(reader, base, tmp_path, case):
    edit, message = BAD[case]
    arrays = dict(base[1])
    edit(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="not a valid csae model file") as err:
        csae.load(path)
    assert message in str(err.value), str(err.value)
    assert len(str(err.value)) < 400
    st, _ = reader.info(path)
    if case in C_REFUSES:
        assert st != "CSAE_OK"
        assert st == ("CSAE_ERR_UNSUPPORTED" if case == "newer version" else "CSAE_ERR_FORMAT")
    else:
        assert st == "CSAE_OK"


def test_every_truncation_is_refused(reader, base, tmp_path):
    whole = base[0].read_bytes()
    path = tmp_path / "cut.npz"
    for length in list(range(0, len(whole), max(1, len(whole) // 150))) + [len(whole) - 1]:
        path.write_bytes(whole[:length])
        with pytest.raises(ValueError, match="not a valid csae model file"):
            csae.load(path)
        assert reader.info(path)[0] != "CSAE_OK"


def test_bytes_appended_are_refused(reader, base, tmp_path):
    path = tmp_path / "long.npz"
    path.write_bytes(base[0].read_bytes() + b"\0" * 8)
    with pytest.raises(ValueError, match="not a valid csae model file"):
        csae.load(path)
    assert reader.info(path)[0] == "CSAE_ERR_FORMAT"


def test_a_single_model_file_and_a_deep_one_are_never_confused(tmp_path):
    single = quiet(csae.SparseAutoencoder(n_hidden=3, max_epochs=3, random_state=0).fit,
                   (data() + 1) / 4)
    single.save(tmp_path / "single.npz")
    classifier().save(tmp_path / "deep.npz")
    stacked().save(tmp_path / "stack.npz")
    deep, plain = DeepReader(), Reader()
    assert deep.info(tmp_path / "single.npz")[0] == "CSAE_ERR_FORMAT"
    assert type(csae.load(tmp_path / "single.npz")) is csae.SparseAutoencoder
    for name, kind in (("deep.npz", "SparseAutoencoderClassifier"),
                       ("stack.npz", "StackedEncoder")):
        assert plain.info(tmp_path / name)[0] == "CSAE_ERR_FORMAT"
        with pytest.raises(ValueError, match=f"it holds a {kind} .*load it with csae.load"):
            csae.SparseAutoencoder.load(tmp_path / name)


def test_a_deflated_file_loads_through_the_python_reader(reader, base, tmp_path):
    path = tmp_path / "deflated.npz"
    with zipfile.ZipFile(base[0]) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
    assert reader.info(path)[0] == "CSAE_ERR_UNSUPPORTED"
    loaded, original = csae.load(path), csae.load(base[0])
    assert same_bits(loaded.predict_proba(data()), original.predict_proba(data()))


def test_the_two_readers_read_the_same_fields(base):
    with open(base[0], "rb") as fh:
        status, c_fields = _engine.read_deep_file(fh.fileno())
        fh.seek(0)
        py_fields = _deep_persist._python_fields(fh, os.path.getsize(base[0]))
    assert status == 0
    assert {k: v for k, v in c_fields.items() if k != "arrays"} == {
        k: v for k, v in py_fields.items() if k != "arrays"}
    assert sorted(c_fields["arrays"]) == sorted(py_fields["arrays"])
    for name, value in c_fields["arrays"].items():
        assert same_bits(value, py_fields["arrays"][name]), name


def test_a_stack_whose_range_differs_from_its_first_autoencoders_is_refused(reader, tmp_path):
    stacked().save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["data_min"] = arrays["data_min"] + 0.5
    np.savez(tmp_path / "bad.npz", **arrays)
    # C reads the network's range (data_min) and never the autoencoder's:
    # the file is one C can run; Python, which builds both, refuses it.
    assert reader.info(tmp_path / "bad.npz")[0] == "CSAE_OK"
    with pytest.raises(ValueError, match="first autoencoder's input range"):
        csae.load(tmp_path / "bad.npz")


def test_numpy_values_in_the_hyperparameters_are_written_as_plain_json(tmp_path):
    clf = classifier(hidden_layer_sizes=(np.int64(4),),
                     autoencoder_params={"max_epochs": np.int64(5)})
    clf.save(tmp_path / "c.npz")
    loaded = csae.load(tmp_path / "c.npz")
    assert loaded.hidden_layer_sizes == (4,)
    assert loaded.autoencoder_params == {"max_epochs": 5}
    assert same_bits(loaded.predict_proba(data()), clf.predict_proba(data()))
