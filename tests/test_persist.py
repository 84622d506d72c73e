"""Model files: exact round trips, atomic saves, and
loading that refuses truncated, corrupted, hand-crafted and pickled files."""

import copy
import io
import json
import os
import pickle
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder
from csae import _files, _persist
from csae._estimator import snapshot

NAMES = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")


def unit_data(m=30, n=5, seed=0):
    return np.random.default_rng(seed).random((m, n))


def trained(backend, dtype=np.float64, **kwargs):
    """A model with every piece of state set: momentum velocities, a
    learned input range, a shuffled RNG state and a loss curve."""
    kwargs = {"solver": "sgd", "n_hidden": 3, "max_epochs": 3, "batch_size": 8, "momentum": 0.7,
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
    # Training on continues identically: velocities and RNG state survived
    # (on the training data: with scale_inputs, partial_fit refuses data
    # outside the learned range).
    a.partial_fit(unit_data() * 10 - 2)
    b.partial_fit(unit_data() * 10 - 2)
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
    return dict(_persist._model_arrays(*snapshot(trained("python", dtype=np.float32))))


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
    "newer version": (lambda: _with(format_version=np.array(_persist.FORMAT_VERSION + 1)),
                      "newer csae"),
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
    with pytest.raises(ValueError, match=r"must have shape \(3,\), got \(1000000000000,\)"):
        csae.load(path)


# --------------------------------------------------------------------------
# Bounded loads: nothing is inflated before its size is
# known to be what the fields before it imply
# --------------------------------------------------------------------------

def _write_member(zf, name, array, compress=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    zf.writestr(zipfile.ZipInfo(name + ".npy"), buffer.getvalue(), compress_type=compress)


def _write_deflated(zf, name, chunks):
    """A member made of the byte strings ``chunks``, deflated as they are
    streamed (the test never holds the inflated member in memory)."""
    info = zipfile.ZipInfo(name + ".npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as fh:
        for chunk in chunks:
            fh.write(chunk)


def _repeated(pattern, nbytes):
    """``nbytes`` bytes of ``pattern`` repeated, in 1 MiB chunks."""
    chunk = pattern * ((1 << 20) // len(pattern))
    for start in range(0, nbytes, len(chunk)):
        yield chunk[:min(len(chunk), nbytes - start)]


def _npy_header(dtype, shape):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                 "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _bomb_file(path, n_iter):
    """The issue's file: a valid model whose deflated loss_curve declares
    2**25 float64 zeros (256 MiB) in about a quarter of a megabyte."""
    fields = _fields()
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in fields.items():
            if name == "loss_curve":
                _write_deflated(zf, name, [_npy_header(np.float64, (2 ** 25,)),
                                           *_repeated(b"\0", 8 * 2 ** 25)])
            elif name == "n_iter":
                _write_member(zf, name, np.array(n_iter, dtype=np.int64))
            else:
                _write_member(zf, name, array)


_MEASURE_LOAD = """
import resource, sys, time
import csae
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    csae.load(sys.argv[1])
    outcome = "loaded"
except ValueError as err:
    outcome = str(err)
seconds = time.perf_counter() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(f"{grown} {seconds:.3f}")
print(outcome)
"""


def _load_in_subprocess(path):
    """csae.load(path) in a fresh interpreter: (peak memory growth in MiB,
    seconds, message or "loaded")."""
    done = subprocess.run([sys.executable, "-c", _MEASURE_LOAD, str(path)],
                          capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(csae.__file__))))
    assert done.returncode == 0, done.stderr
    first, message = done.stdout.split("\n", 1)
    grown_kib, seconds = first.split()
    return int(grown_kib) / 1024, float(seconds), message.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
@pytest.mark.parametrize("n_iter", [3, 2 ** 25], ids=["n_iter 3", "n_iter 2**25"])
def test_a_compression_bomb_is_refused_without_inflating(tmp_path, n_iter):
    # With n_iter 3 the curve is longer than n_iter allows; with n_iter 2**25
    # the fields agree, and the expansion ratio refuses it. Before the fix
    # either file made load allocate about 1.85 GB and take seconds.
    path = tmp_path / "bomb.npz"
    _bomb_file(path, n_iter)
    assert path.stat().st_size < 400_000
    grown_mib, seconds, message = _load_in_subprocess(path)
    assert "not a valid csae model file" in message and "loss_curve" in message
    assert len(message) < 400
    assert grown_mib < 50, f"load grew the process by {grown_mib:.0f} MiB"


def _record_file(path, record, deflate=False):
    """A valid model file whose hyperparameter record is ``record`` (a str,
    or with ``deflate`` a number of characters: a JSON record with a decoder
    name of that many "x", streamed and deflated)."""
    fields = _fields()
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in fields.items():
            if name == "hyperparameters" and deflate:
                head, tail = str(_hyper(decoder="@")[0]).split("@")
                length = len(head) + record + len(tail)
                _write_deflated(zf, name, [_npy_header(f"<U{length}", (1,)),
                                           head.encode("utf-32-le"),
                                           *_repeated("x".encode("utf-32-le"), 4 * record),
                                           tail.encode("utf-32-le")])
            elif name == "hyperparameters":
                _write_member(zf, name, np.array([record]))
            else:
                _write_member(zf, name, array)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_100_mb_hyperparameter_record_gives_a_short_message(tmp_path):
    # The file: 10**8 characters, deflated to a few hundred KB.
    # Before the fix the message was 100,000,127 characters long.
    path = tmp_path / "record.npz"
    _record_file(path, 10 ** 8, deflate=True)
    assert path.stat().st_size < 1_000_000
    grown_mib, _, message = _load_in_subprocess(path)
    assert "not a valid csae model file" in message and "hyperparameters" in message
    assert len(message) < 400
    assert grown_mib < 50


def test_oversized_records_are_refused_with_short_messages(tmp_path):
    path = tmp_path / "record.npz"
    # Stored, not deflated: a 1 MB record is refused from its declared size.
    big = json.dumps({"n_hidden": 3, "decoder": "x" * 1_000_000})
    _record_file(path, big)
    with pytest.raises(ValueError, match="hyperparameters declares") as info:
        csae.load(path)
    assert len(str(info.value)) < 400
    # Within the size limit, a long value or key is quoted, not copied.
    for changes in ({"decoder": "y" * 1500}, {"k" * 1500: 1}):
        record = str(_hyper(**changes)[0])
        _record_file(path, record)
        with pytest.raises(ValueError, match="not a valid csae model file") as info:
            csae.load(path)
        assert len(str(info.value)) < 600, len(str(info.value))


def test_a_long_member_name_is_quoted_briefly(tmp_path):
    path = tmp_path / "names.npz"
    fields = _fields()
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in fields.items():
            _write_member(zf, name, array)
        _write_member(zf, "z" * 50_000, np.zeros(1))
    with pytest.raises(ValueError, match="unknown fields: z") as info:
        csae.load(path)
    assert len(str(info.value)) < 400


def test_a_member_inflating_beyond_its_declared_size_is_cut_off(tmp_path):
    # A lying zip directory: decoder_bias declares the 148 bytes its shape
    # needs, but its deflated data inflates to 40 MiB. Reading stops at the
    # declared size and the CRC check refuses the file.
    path = tmp_path / "liar.npz"
    fields = _fields()
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in fields.items():
            if name == "decoder_bias":
                _write_deflated(zf, name, [_npy_header(np.float32, (5,)),
                                           *_repeated(b"\0", 40 << 20)])
            else:
                _write_member(zf, name, array)
    with zipfile.ZipFile(path) as zf:
        entry = zf.start_dir  # where the central directory begins
    data = bytearray(path.read_bytes())
    while data[entry + 46:entry + 46 + 16] != b"decoder_bias.npy":
        entry = data.index(b"PK\x01\x02", entry + 4)
    declared = len(_npy_header(np.float32, (5,))) + 20
    data[entry + 24:entry + 28] = declared.to_bytes(4, "little")  # uncompressed size
    # the same lie in the local header (a local header differing from its
    # directory entry is refused before anything is read)
    local = int.from_bytes(data[entry + 42:entry + 46], "little")
    assert data[local + 22:local + 26] == b"\xff" * 4  # the size is in the zip64 extra
    usize = local + 30 + 16 + 4
    data[usize:usize + 8] = declared.to_bytes(8, "little")
    path.write_bytes(bytes(data))
    assert zipfile.ZipFile(path).getinfo("decoder_bias.npy").file_size == declared
    with pytest.raises(ValueError, match="corrupted or truncated.*CRC"):
        csae.load(path)


def test_a_loss_curve_longer_than_n_iter_is_refused_before_reading(tmp_path):
    # Stored (no compression to object to): 2**20 values where n_iter is 3.
    path = tmp_path / "long-curve.npz"
    fields = _fields()
    fields["loss_curve"] = np.zeros(2 ** 20)
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in fields.items():
            _write_member(zf, name, array)
    with pytest.raises(ValueError, match=r"loss_curve declares 8388736 bytes, but "
                                         r"n_iter=3 values of float64 needs 24 bytes"):
        csae.load(path)


def test_a_member_whose_data_disagrees_with_its_header_is_refused(tmp_path):
    path = tmp_path / "short.npz"
    fields = _fields()
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in fields.items():
            if name == "encoder_bias":
                zf.writestr(name + ".npy", _npy_header(np.float32, (3,)) + bytes(8))
            else:
                _write_member(zf, name, array)
    with pytest.raises(ValueError, match="encoder_bias declares shape"):
        csae.load(path)


def test_a_deflated_model_file_still_loads(tmp_path):
    # A valid file repacked by a zip tool (deflated members) is not a bomb.
    path = tmp_path / "deflated.npz"
    model = trained("python", dtype=np.float32)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **_persist._model_arrays(*snapshot(model)))
    loaded = csae.load(path)
    np.testing.assert_array_equal(loaded.encoder_weights_, model.encoder_weights_)
    assert loaded.loss_curve_ == model.loss_curve_


# --------------------------------------------------------------------------
# Messages that say what the file is
# --------------------------------------------------------------------------

def test_a_pickle_or_joblib_file_is_named_as_such(tmp_path):
    model = trained("python")
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    with pytest.raises(ValueError, match="pickle stream") as info:
        csae.load(path)
    assert "SparseAutoencoder.save" in str(info.value)
    assert "joblib.load" in str(info.value)
    joblib = pytest.importorskip("joblib")
    joblib.dump(model, tmp_path / "model.joblib")
    with pytest.raises(ValueError, match="pickle stream.*joblib.load"):
        csae.load(tmp_path / "model.joblib")
    joblib.dump(model, tmp_path / "model.joblib.z", compress=3)
    with pytest.raises(ValueError, match="compressed stream.*joblib.load"):
        csae.load(tmp_path / "model.joblib.z")


def test_npy_and_foreign_npz_files_are_named_as_such(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"single NumPy array \(a .npy file") as info:
        csae.load(tmp_path / "x.npy")
    assert "SparseAutoencoder.save" in str(info.value)
    np.savez(tmp_path / "x.npz", weights=np.zeros(3), bias=np.zeros(2))
    with pytest.raises(ValueError, match=r"zip archive .* without csae's fields "
                                         r"\(it holds: weights, bias\)") as info:
        csae.load(tmp_path / "x.npz")
    assert "SparseAutoencoder.save" in str(info.value)
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="the file is empty"):
        csae.load(tmp_path / "empty.npz")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    # In a subprocess: before the fix, open() blocked forever on the FIFO.
    done = subprocess.run(
        [sys.executable, "-c", "import sys, csae\ntry:\n    csae.load(sys.argv[1])\n"
         "except ValueError as err:\n    print(err)\n", str(fifo)],
        capture_output=True, text=True, timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(csae.__file__))))
    assert "FIFO" in done.stdout and "not a regular file" in done.stdout, done.stderr
    with pytest.raises(IsADirectoryError):
        csae.load(tmp_path)


# --------------------------------------------------------------------------
# Safe saves
# --------------------------------------------------------------------------

def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def test_an_existing_file_keeps_its_permission_bits(tmp_path):
    path = tmp_path / "private.npz"
    trained("python").save(path)
    os.chmod(path, 0o600)
    trained("python", random_state=9).save(path)  # before the fix: 0o644
    assert _mode(path) == 0o600
    os.chmod(path, 0o640)
    trained("python").save(path)
    assert _mode(path) == 0o640


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="only root may give a file to another user")
def test_root_keeps_an_existing_files_owner(tmp_path):
    # Containers often run as root: replacing a user's model must not hand
    # the file to root.
    path = tmp_path / "theirs.npz"
    trained("python").save(path)
    os.chown(path, 12345, 23456)
    trained("python", random_state=9).save(path)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (12345, 23456)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_umask_mode(tmp_path, umask, mask):
    umask(mask)
    path = tmp_path / "new.npz"
    trained("python").save(path)
    assert _mode(path) == 0o666 & ~mask


def test_a_read_only_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "frozen.npz"
    trained("python").save(path)
    os.chmod(path, 0o444)
    before = path.read_bytes()
    with pytest.raises(PermissionError, match="read-only"):
        trained("python", random_state=9).save(path)
    assert path.read_bytes() == before and _mode(path) == 0o444
    assert sorted(os.listdir(tmp_path)) == ["frozen.npz"]


def test_a_symlink_is_followed_and_kept(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "real.npz"
    trained("python").save(target)
    os.chmod(target, 0o600)
    link = tmp_path / "link.npz"
    os.symlink(os.path.join("store", "real.npz"), link)  # relative, as ln -s makes
    new = trained("python", random_state=9)
    new.save(link)
    assert os.path.islink(link)  # before the fix: replaced by a regular file
    assert os.readlink(link) == os.path.join("store", "real.npz")
    np.testing.assert_array_equal(csae.load(target).encoder_weights_,
                                  new.encoder_weights_)
    assert _mode(target) == 0o600
    assert sorted(os.listdir(tmp_path / "store")) == ["real.npz"]
    # A dangling link: its target is created, as open(link, "w") would.
    dangling = tmp_path / "dangling.npz"
    os.symlink("store/later.npz", dangling)
    new.save(dangling)
    assert os.path.islink(dangling) and (tmp_path / "store" / "later.npz").is_file()


def _special_files(tmp_path):
    """Non-regular files that exist here: a directory, a FIFO, a socket and,
    where this process may create one, a character device like /dev/null
    (made in tmp_path: the real /dev/null is never touched)."""
    made = {"a directory": tmp_path / "folder"}
    os.mkdir(made["a directory"])
    if hasattr(os, "mkfifo"):
        made["a FIFO"] = tmp_path / "fifo"
        os.mkfifo(made["a FIFO"])
    if hasattr(socket, "AF_UNIX"):
        short = tempfile.mkdtemp(prefix="csae")  # socket paths are limited to ~100 bytes
        made["a socket"] = os.path.join(short, "sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(made["a socket"])
        server.close()
    try:
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        made["a character device"] = tmp_path / "null"
    except (AttributeError, OSError):
        pass
    return made


def test_special_files_are_never_replaced(tmp_path):
    model = trained("python")
    made = _special_files(tmp_path)
    assert "a FIFO" in made
    for kind, path in made.items():
        before = os.lstat(path)
        with pytest.raises(ValueError, match=f"it is {kind}.*not a regular file"):
            model.save(path)
        after = os.lstat(path)
        assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode), kind
        assert after.st_ino == before.st_ino, kind
        # A link to one is refused the same way (the link is followed).
        link = tmp_path / "link-to-special"
        os.symlink(path, link)
        with pytest.raises(ValueError, match="not a regular file"):
            model.save(link)
        assert os.path.islink(link)
        os.unlink(link)
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith(".tmp")) == []
    if "a socket" in made:
        shutil.rmtree(os.path.dirname(made["a socket"]))


def test_a_device_node_check_does_not_depend_on_mknod(tmp_path, monkeypatch):
    # Where mknod is not allowed, show the character-device branch anyway by
    # making the target look like one.
    path = tmp_path / "looks-like-null"
    path.write_bytes(b"")
    real_stat = os.stat

    def fake_stat(p, *args, **kwargs):
        st = real_stat(p, *args, **kwargs)
        if os.fspath(p) == str(path):
            return os.stat_result((stat.S_IFCHR | 0o666,) + tuple(st)[1:])
        return st

    monkeypatch.setattr(_files.os, "stat", fake_stat)
    with pytest.raises(ValueError, match="a character device"):
        trained("python").save(path)
    assert path.read_bytes() == b""


def test_bytes_and_pathlike_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = trained("python")
    model.save(b"bytes.npz")  # before the fix: "can only concatenate str"
    assert_identical(model, csae.load(b"bytes.npz"))

    class Path:
        def __init__(self, path):
            self.path = path

        def __fspath__(self):
            return self.path

    model = trained("python")
    model.save(Path("custom.npz"))
    assert_identical(model, csae.load(Path("custom.npz")))
    with pytest.raises(TypeError):
        model.save(12)


def test_replace_false_refuses_an_existing_file(tmp_path):
    path = tmp_path / "m.npz"
    trained("python").save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        _persist.save(path, *snapshot(trained("python", random_state=9)), replace=False)
    assert path.read_bytes() == before
    _persist.save(tmp_path / "other.npz", *snapshot(trained("python")), replace=False)
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "other.npz"]


def test_save_into_a_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such folder"):
        trained("python").save(tmp_path / "nowhere" / "m.npz")
    with pytest.raises(ValueError, match="ends in a separator"):
        trained("python").save(str(tmp_path / "m.npz") + os.sep)


_ADDED_IN_3 = ("beta_1", "beta_2", "epsilon", "warm_start", "early_stopping",
               "validation_fraction", "n_iter_no_change", "sparsity_estimate",
               "sparsity_smoothing")


def test_a_pickle_from_before_solvers_keeps_training_by_sgd():
    # A model pickled before the solver hyperparameter existed was trained
    # by minibatch SGD: it comes back with solver="sgd" (not today's default,
    # "lbfgs"), so partial_fit still continues it; other hyperparameters it
    # lacks take their defaults.
    model = trained("python")
    state = model.__getstate__()
    for name in ("solver", "max_fun", "tol") + _ADDED_IN_3:
        del state[name]
    old = SparseAutoencoder.__new__(SparseAutoencoder)
    old.__setstate__(state)
    assert (old.solver, old.max_fun, old.tol, old.beta_1) == ("sgd", 15000,
                                                             SparseAutoencoder().tol, 0.9)
    old.partial_fit(unit_data() * 10 - 2)
    assert old.n_iter_ == model.n_iter_ + 1


def test_a_format_version_1_file_loads_with_the_new_defaults(tmp_path):
    # Files written before solver, max_fun and tol existed (format version
    # 1) name only the older hyperparameters; they load with the defaults,
    # except solver: "sgd", the only solver then (today's default is lbfgs).
    fields = _fields()
    hyper = json.loads(str(fields["hyperparameters"][0]))
    for name in ("solver", "max_fun", "tol") + _ADDED_IN_3:
        del hyper[name]
    fields.update(format_version=np.array(1), hyperparameters=np.array([json.dumps(hyper)]))
    path = tmp_path / "v1.npz"
    np.savez(path, **fields)
    model = csae.load(path)
    assert (model.solver, model.max_fun, model.tol) == ("sgd", 15000, SparseAutoencoder().tol)
    np.testing.assert_array_equal(model.encoder_weights_, fields["encoder_weights"])
    # A version-1 record that names a later hyperparameter is not one.
    hyper["solver"] = "sgd"
    fields.update(hyperparameters=np.array([json.dumps(hyper)]))
    np.savez(path, **fields)
    with pytest.raises(ValueError, match="unexpected: 'solver'"):
        csae.load(path)


# --------------------------------------------------------------------------
# stop_reason_ (format version 4)
# --------------------------------------------------------------------------

def _c_reads(path):
    """The engine's reader's status on ``path`` (0: it reads the file)."""
    from csae import _engine
    with open(path, "rb") as fh:
        return _engine.read_model_file(fh.fileno())[0]


@pytest.mark.parametrize("kwargs, expected", [
    ({"solver": "lbfgs", "max_epochs": 2}, "max_epochs"),
    ({"solver": "sgd", "max_epochs": 2, "tol": 1e9, "n_iter_no_change": 1}, "no_improvement"),
])
def test_stop_reason_survives_a_model_file(kwargs, expected, tmp_path):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SparseAutoencoder(n_hidden=3, random_state=0, **kwargs).fit(unit_data())
    assert model.stop_reason_ == expected
    model.save(tmp_path / "m.npz")
    assert _persist.FORMAT_VERSION == 4
    assert int(np.load(tmp_path / "m.npz")["format_version"]) == 4
    assert _c_reads(tmp_path / "m.npz") == 0
    assert csae.load(tmp_path / "m.npz").stop_reason_ == expected


def test_a_model_without_a_stop_reason_writes_none(tmp_path):
    weights = trained("python")
    built = SparseAutoencoder(n_hidden=3)
    built._publish(weights._state)  # weights given by hand: no training call
    built.save(tmp_path / "m.npz")
    assert "stop_reason" not in np.load(tmp_path / "m.npz").files
    assert csae.load(tmp_path / "m.npz").stop_reason_ is None


def test_a_format_version_3_file_loads_with_no_stop_reason(tmp_path):
    fields = _fields()  # written without a stop_reason, as version 3 was
    fields["format_version"] = np.array(3)
    np.savez(tmp_path / "v3.npz", **fields)
    assert _c_reads(tmp_path / "v3.npz") == 0
    model = csae.load(tmp_path / "v3.npz")
    assert model.stop_reason_ is None
    np.testing.assert_array_equal(model.encoder_weights_, fields["encoder_weights"])


@pytest.mark.parametrize("version, reason, message", [
    (3, "max_epochs", "stop_reason appear in a format version 3 file"),
    (4, "bored", "stop_reason 'bored' is not one of"),
    (4, "max_epochs" * 20, "stop_reason 'max_epochs"),
])
def test_a_bad_stop_reason_is_refused_by_both_readers(version, reason, message, tmp_path):
    fields = _with(format_version=np.array(version), stop_reason=np.array(reason))
    np.savez(tmp_path / "bad.npz", **fields)
    assert _c_reads(tmp_path / "bad.npz") != 0
    with pytest.raises(ValueError, match=message) as info:
        csae.load(tmp_path / "bad.npz")
    assert len(str(info.value)) < 400
