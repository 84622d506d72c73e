"""Model files (issue 5 section 4): exact round trips, atomic saves, and
loading that refuses truncated, corrupted, hand-crafted and pickled files."""

import copy
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder
from csae import _persist

NAMES = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")


def unit_data(m=30, n=5, seed=0):
    return np.random.default_rng(seed).random((m, n))


def trained(backend, dtype=np.float64, **kwargs):
    """A model with every piece of state set: momentum velocities, a
    learned input range, a shuffled RNG state and a loss curve."""
    kwargs = {"n_hidden": 3, "max_epochs": 3, "batch_size": 8, "momentum": 0.7,
              "scale_inputs": True, "random_state": 4, "backend": backend,
              "dtype": dtype, **kwargs}
    return SparseAutoencoder(**kwargs).fit(unit_data() * 10 - 2)


def assert_identical(a, b):
    """Same hyperparameters and bit-identical state."""
    pa, pb = a.get_params(), b.get_params()
    # Files store the dtype by name ("float32" for np.float32).
    assert np.dtype(pa.pop("dtype")) == np.dtype(pb.pop("dtype"))
    assert pa == pb
    for name in NAMES:
        x, y = getattr(a, name + "_"), getattr(b, name + "_")
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == b.n_iter_
    X = unit_data(seed=1) * 10 - 2
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.reconstruct(X), b.reconstruct(X))
    # Training on continues identically: velocities and RNG state survived.
    a.partial_fit(X)
    b.partial_fit(X)
    np.testing.assert_array_equal(a.encoder_weights_, b.encoder_weights_)


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------

def test_save_load_round_trip_is_exact(backend, dtype, tmp_path):
    model = trained(backend, dtype)
    path = tmp_path / "model.npz"
    model.save(path)
    assert_identical(model, SparseAutoencoder.load(path))
    model.save(str(path))
    assert_identical(model, csae.load(str(path)))


def test_save_writes_exactly_the_given_path_and_no_temporary_files(tmp_path):
    model = trained("python")
    model.save(tmp_path / "model")  # no suffix added
    assert sorted(os.listdir(tmp_path)) == ["model"]
    csae.load(tmp_path / "model")


def test_round_trip_of_a_model_built_from_weights(backend, tmp_path):
    rng = np.random.default_rng(0)
    model = SparseAutoencoder(n_hidden=2, backend=backend, random_state=None)
    for name, shape in zip(NAMES, [(2, 3), (2,), (3, 2), (3,)]):
        setattr(model, name + "_", rng.random(shape))
    model.save(tmp_path / "m.npz")
    loaded = csae.load(tmp_path / "m.npz")
    for name in NAMES:
        np.testing.assert_array_equal(getattr(model, name + "_"),
                                      getattr(loaded, name + "_"))
    assert loaded.n_iter_ == 0


def test_generator_random_state_is_saved_as_none(tmp_path):
    model = trained("python", random_state=np.random.default_rng(0))
    model.save(tmp_path / "m.npz")
    loaded = csae.load(tmp_path / "m.npz")
    assert loaded.random_state is None
    np.testing.assert_array_equal(model.encoder_weights_, loaded.encoder_weights_)


def test_pickle_and_deepcopy_round_trip_exactly(backend, dtype):
    model = trained(backend, dtype)
    assert_identical(model, pickle.loads(pickle.dumps(model)))
    model = trained(backend, dtype)
    assert_identical(model, copy.deepcopy(model))


def test_joblib_memory_mapped_copy_round_trips(backend, tmp_path):
    # joblib (used by GridSearchCV and friends) can hand back a model whose
    # arrays are read-only memory maps; it must still work and train.
    joblib = pytest.importorskip("joblib")
    model = trained(backend)
    joblib.dump(model, tmp_path / "model.joblib")
    assert_identical(model, joblib.load(tmp_path / "model.joblib", mmap_mode="r"))


# --------------------------------------------------------------------------
# Refusing what cannot be saved
# --------------------------------------------------------------------------

def test_unfitted_or_invalid_models_are_not_saved(tmp_path):
    with pytest.raises(csae.NotFittedError):
        SparseAutoencoder().save(tmp_path / "m.npz")
    model = trained("python").set_params(sparsity_target=2.0)
    with pytest.raises(ValueError, match="sparsity_target"):
        model.save(tmp_path / "m.npz")
    model = trained("python").set_params(n_hidden=7)
    with pytest.raises(ValueError, match="n_hidden is 7 but the weights have 3"):
        model.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_a_failed_save_leaves_the_old_file_in_place(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = trained("python", random_state=1)
    old.save(path)
    before = path.read_bytes()

    def crash(fh, **arrays):
        fh.write(b"PK\x03\x04 half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_persist.np, "savez", crash)
    with pytest.raises(OSError, match="No space left"):
        trained("python", random_state=2).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        csae.load(tmp_path / "nothing.npz")


# --------------------------------------------------------------------------
# Corrupted and truncated files
# --------------------------------------------------------------------------

def _saved_bytes(tmp_path):
    path = tmp_path / "good.npz"
    trained("python").save(path)
    return path.read_bytes()


def test_truncated_files_are_refused(tmp_path):
    data = _saved_bytes(tmp_path)
    path = tmp_path / "cut.npz"
    for length in sorted({0, 1, 4, 30, 100, len(data) // 3, len(data) // 2,
                          len(data) - 100, len(data) - 22, len(data) - 1}):
        path.write_bytes(data[:length])
        with pytest.raises(ValueError, match="not a valid csae model file"):
            csae.load(path)


def test_bit_flips_are_refused_or_harmless(tmp_path):
    # The zip CRCs cover every array, so a flipped bit either makes the file
    # invalid or hits bookkeeping that does not change the model.
    data = _saved_bytes(tmp_path)
    original = csae.load(tmp_path / "good.npz")
    rng = np.random.default_rng(0)
    path = tmp_path / "flipped.npz"
    refused = 0
    for position in rng.choice(len(data), size=150, replace=False):
        mutated = bytearray(data)
        mutated[position] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(mutated))
        try:
            loaded = csae.load(path)
        except ValueError as err:
            assert "not a valid csae model file" in str(err)
            refused += 1
            continue
        for name in NAMES:
            np.testing.assert_array_equal(getattr(loaded, name + "_"),
                                          getattr(original, name + "_"))
        assert loaded.get_params() == original.get_params()
        assert loaded.loss_curve_ == original.loss_curve_
    assert refused > 100


def test_garbage_and_other_formats_are_refused(tmp_path):
    path = tmp_path / "bad"
    cases = {
        "random bytes": np.random.default_rng(0).bytes(500),
        "empty": b"",
        "text": b"encoder_weights = [1, 2, 3]\n",
    }
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    cases["a single .npy"] = buffer.getvalue()
    for label, content in cases.items():
        path.write_bytes(content)
        with pytest.raises(ValueError, match="not a valid csae model file"):
            csae.load(path)


# --------------------------------------------------------------------------
# Hand-crafted files: every field is checked
# --------------------------------------------------------------------------

def _fields():
    return dict(_persist._model_arrays(trained("python", dtype=np.float32)))


def _hyper(**changes):
    fields = _fields()
    hyper = json.loads(str(fields["hyperparameters"][0]))
    hyper.update(changes)
    return np.array([json.dumps(hyper)])


def _without(*names):
    fields = _fields()
    for name in names:
        del fields[name]
    return fields


def _with(**changes):
    fields = _fields()
    fields.update(changes)
    return fields


CRAFTED = {
    "missing weights": (lambda: _without("decoder_bias"), "fields missing: decoder_bias"),
    "unknown field": (lambda: _with(extra=np.zeros(2)), "unknown fields: extra"),
    "wrong format": (lambda: _with(format=np.array("something.else")), "format"),
    "newer version": (lambda: _with(format_version=np.array(2)), "newer csae"),
    "version zero": (lambda: _with(format_version=np.array(0)), "format_version"),
    "float version": (lambda: _with(format_version=np.array(1.0)), "format_version"),
    "bad json": (lambda: _with(hyperparameters=np.array(["{not json"])), "JSON"),
    "json list": (lambda: _with(hyperparameters=np.array(["[1, 2]"])), "hyperparameters"),
    "missing hyperparameter": (
        lambda: _with(hyperparameters=np.array([json.dumps({"n_hidden": 3})])),
        "hyperparameters must name"),
    "invalid rho": (lambda: _with(hyperparameters=_hyper(sparsity_target=2.0)),
                    "sparsity_target"),
    "nan learning rate": (lambda: _with(hyperparameters=_hyper(learning_rate=float("nan"))),
                          "learning_rate"),
    "hidden size mismatch": (lambda: _with(hyperparameters=_hyper(n_hidden=4)),
                             r"must have shape \(4, 5\)"),
    "dtype mismatch": (lambda: _with(hyperparameters=_hyper(dtype="float64")),
                       "dtype float64"),
    "wrong shape": (lambda: _with(decoder_bias=np.zeros(4, np.float32)),
                    r"decoder_bias must have shape \(5,\)"),
    "1-d weights": (lambda: _with(encoder_weights=np.zeros(3, np.float32)),
                    "encoder_weights must be a 2-D"),
    "nan weight": (lambda: _with(encoder_bias=np.array([0, np.nan, 0], np.float32)),
                   "encoder_bias contains NaN"),
    "inf velocity": (lambda: _with(velocity_decoder_bias=np.full(5, np.inf, np.float32)),
                     "velocity_decoder_bias contains NaN or inf"),
    "half the velocities": (lambda: _without("velocity_encoder_bias"),
                            "velocity fields"),
    "big-endian weights": (lambda: _with(encoder_bias=np.zeros(3, ">f4")), "dtype"),
    "n_iter mismatch": (lambda: _with(n_iter=np.array(7)), "n_iter"),
    "2-d loss curve": (lambda: _with(loss_curve=np.zeros((3, 1))), "loss_curve"),
    "signed rng state": (lambda: _with(rng_state=np.array(5, np.int64)), "rng_state"),
    "range without scale": (lambda: _without("data_scale"), "data_min and data_scale"),
    "zero scale": (lambda: _with(data_scale=np.zeros(5)), "data_scale must be positive"),
    "string weights": (lambda: _with(encoder_bias=np.array(["a", "b", "c"])), "dtype"),
}


@pytest.mark.parametrize("label", sorted(CRAFTED))
def test_hand_crafted_files_are_refused(label, tmp_path):
    make, match = CRAFTED[label]
    path = tmp_path / "crafted.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **make())
    with pytest.raises(ValueError, match=match):
        csae.load(path)


def test_the_unmodified_fields_load(tmp_path):
    # The crafted cases above start from valid fields: prove they are.
    path = tmp_path / "plain.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **_fields())
    assert csae.load(path).dtype == "float32"


# --------------------------------------------------------------------------
# Pickle payloads are never executed
# --------------------------------------------------------------------------

class _Payload:
    """Unpickling this creates a folder: the visible sign of executed code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_planted_pickle_payload_is_refused(tmp_path):
    marker = str(tmp_path / "payload-ran")
    fields = _fields()
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    fields["encoder_bias"] = evil
    path = tmp_path / "evil.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **fields)  # np.savez pickles object arrays
    # The payload really is live: unpickling it the unsafe way runs it.
    with np.load(path, allow_pickle=True) as unsafe:
        unsafe["encoder_bias"]
    assert os.path.isdir(marker)
    os.rmdir(marker)

    with pytest.raises(ValueError, match="pickle"):
        csae.load(path)
    assert not os.path.exists(marker)

    # A whole-file pickle (e.g. pickle.dump(model)) is refused the same way.
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match="not a valid csae model file"):
        csae.load(path)
    assert not os.path.exists(marker)


def test_huge_declared_shapes_are_refused_without_allocating(tmp_path):
    # A member whose header claims 10**12 floats (4 TB) but holds three.
    fields = _fields()
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        member, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12,)})
    member.write(np.zeros(3, np.float32).tobytes())
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in fields.items():
            if name == "encoder_bias":
                zf.writestr(name + ".npy", member.getvalue())
            else:
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, array, allow_pickle=False)
                zf.writestr(name + ".npy", buffer.getvalue())
    with pytest.raises(ValueError, match="declares shape"):
        csae.load(path)
