"""The C reader of model files (src_c/model_file.c): it
reads what Python saved, exactly, and refuses everything Python refuses
(and a few things Python accepts but C cannot read) with distinct status
codes; thousands of damaged files under ASan + UBSan cause no crash, and
every damaged file it accepts is one that Python loads to the same values.

The reader is called through ctypes on the in-place libcsae.so
(python setup.py build_ext --inplace builds it next to the extension)."""

import ctypes
import glob
import io
import json
import os
import shutil
import subprocess
import tempfile
import warnings
import zipfile

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder
from csae._persist import FORMAT_VERSION
from csae._state import frozen, frozen_tuple
from libcsae_ctypes import DeepReader, Model, Params, Reader, status_codes
from test_c_api import ROOT

NAMES = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")


@pytest.fixture(scope="module")
def reader():
    return Reader()


def fitted(dtype=np.float64, n=7, **kwargs):
    kwargs = {"solver": "sgd", "n_hidden": 4, "max_epochs": 2, "batch_size": 10, "random_state": 3,
              "dtype": dtype, **kwargs}
    X = np.random.default_rng(1).random((40, n)) * 5 - 1
    if not kwargs.get("scale_inputs") and kwargs.get("decoder", "sigmoid") == "sigmoid":
        X = (X + 1) / 5
    return SparseAutoencoder(**kwargs).fit(X)


def saved(tmp_path, name="model.npz", **kwargs):
    path = tmp_path / name
    fitted(**kwargs).save(path)
    return path


# --------------------------------------------------------------------------
# Files saved by Python read exactly
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("extra", [{}, {"momentum": 0.9, "scale_inputs": True},
                                   {"decoder": "linear", "sparsity_target": 0.2,
                                    "sparsity_weight": 0.5, "weight_decay": 3e-7}],
                         ids=["plain", "velocity+range", "linear"])
def test_reads_what_python_saved(reader, tmp_path, dtype, extra):
    model = fitted(dtype, **extra)
    path = tmp_path / "model.npz"
    model.save(path)
    st, info, elem = reader.info(path)
    assert st == "CSAE_OK"
    assert (info.n_features, info.n_hidden) == (7, 4)
    assert elem == np.dtype(dtype).itemsize
    assert info.decoder == (1 if model.decoder == "linear" else 0)
    assert info.sparsity_target == model.sparsity_target
    assert info.sparsity_weight == model.sparsity_weight
    assert info.weight_decay == model.weight_decay

    st, arrays = reader.read(path, info, dtype)
    assert st == "CSAE_OK"
    for name, array in zip(NAMES, arrays):
        expected = getattr(model, name + "_")
        assert array.dtype == expected.dtype
        np.testing.assert_array_equal(array, expected)

    st, flag, lo, scale = reader.input_range(path, info)
    assert st == "CSAE_OK"
    assert flag == int(bool(extra.get("scale_inputs")))
    if flag:
        np.testing.assert_array_equal(lo, model._state.data_min)
        np.testing.assert_array_equal(scale, model._state.data_scale)
    else:
        assert np.isnan(lo).all()  # left untouched


def test_version_matches_the_package(reader):
    assert reader.lib.csae_version().decode() == csae.__version__
    with open(os.path.join(csae.get_include(), "csae.h")) as f:
        assert f'#define CSAE_VERSION_STRING "{csae.__version__}"' in f.read()


def test_every_status_has_its_own_message(reader):
    codes = status_codes()
    for name in ("CSAE_ERR_NOT_FOUND", "CSAE_ERR_NOT_A_FILE", "CSAE_ERR_FILE",
                 "CSAE_ERR_FORMAT", "CSAE_ERR_UNSUPPORTED", "CSAE_ERR_DTYPE",
                 "CSAE_ERR_MISMATCH"):
        assert name in codes
    assert sorted(codes.values()) == list(range(len(codes)))
    messages = [reader.lib.csae_status_message(v).decode() for v in codes.values()]
    assert len(set(messages)) == len(messages)
    assert "unknown status" not in messages
    assert reader.lib.csae_status_message(len(codes)).decode() == "unknown status"


# --------------------------------------------------------------------------
# Bad input: arguments and paths
# --------------------------------------------------------------------------

def test_null_pointers_are_refused(reader, tmp_path):
    path = saved(tmp_path)
    lib, good = reader.lib, os.fsencode(path)
    st, info, _ = reader.info(path)
    elem = ctypes.c_size_t()
    arrays = [np.zeros(s) for s in ((4, 7), (4,), (7, 4), (7,))]
    full = [a.ctypes.data for a in arrays]
    bad = []
    bad.append(lib.csae_model_file_info(None, ctypes.byref(info), ctypes.byref(elem)))
    bad.append(lib.csae_model_file_info(good, None, ctypes.byref(elem)))
    bad.append(lib.csae_model_file_info(good, ctypes.byref(info), None))
    bad.append(lib.csae_model_file_read_f64(None, ctypes.byref(info), Params(*full)))
    bad.append(lib.csae_model_file_read_f64(good, None, Params(*full)))
    for k in range(4):
        missing = list(full)
        missing[k] = None
        bad.append(lib.csae_model_file_read_f64(good, ctypes.byref(info), Params(*missing)))
        bad.append(lib.csae_model_file_read_f32(good, ctypes.byref(info), Params(*missing)))
    flag = ctypes.c_int()
    lo = arrays[3].ctypes.data
    bad.append(lib.csae_model_file_input_range(None, ctypes.byref(info), ctypes.byref(flag),
                                               lo, lo))
    bad.append(lib.csae_model_file_input_range(good, None, ctypes.byref(flag), lo, lo))
    bad.append(lib.csae_model_file_input_range(good, ctypes.byref(info), None, lo, lo))
    bad.append(lib.csae_model_file_input_range(good, ctypes.byref(info), ctypes.byref(flag),
                                               lo, None))
    assert {reader.name(s) for s in bad} == {"CSAE_ERR_ARGUMENT"}
    # asking only (both range pointers NULL) is allowed
    assert reader.name(lib.csae_model_file_input_range(
        good, ctypes.byref(info), ctypes.byref(flag), None, None)) == "CSAE_OK"
    assert flag.value == 0


def test_paths_that_are_not_model_files(reader, tmp_path):
    assert reader.info(tmp_path / "missing.npz")[0] == "CSAE_ERR_NOT_FOUND"
    assert reader.info(tmp_path / "no_folder" / "m.npz")[0] == "CSAE_ERR_NOT_FOUND"
    assert reader.info("")[0] == "CSAE_ERR_NOT_FOUND"
    assert reader.info(tmp_path)[0] == "CSAE_ERR_NOT_A_FILE"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert reader.info(fifo)[0] == "CSAE_ERR_NOT_A_FILE"  # and does not block
    (tmp_path / "empty.npz").write_bytes(b"")
    assert reader.info(tmp_path / "empty.npz")[0] == "CSAE_ERR_FORMAT"
    path = saved(tmp_path)
    _, info, _ = reader.info(path)
    assert reader.read(tmp_path / "missing.npz", info, np.float64)[0] == "CSAE_ERR_NOT_FOUND"
    assert reader.read(tmp_path, info, np.float64)[0] == "CSAE_ERR_NOT_A_FILE"
    assert reader.input_range(tmp_path, info)[0] == "CSAE_ERR_NOT_A_FILE"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(reader, tmp_path):
    path = saved(tmp_path)
    os.chmod(path, 0)
    assert reader.info(path)[0] == "CSAE_ERR_FILE"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_the_other_dtype_is_refused_untouched(reader, tmp_path, dtype):
    path = saved(tmp_path, dtype=dtype)
    _, info, _ = reader.info(path)
    other = np.float32 if dtype == np.float64 else np.float64
    st, arrays = reader.read(path, info, other)
    assert st == "CSAE_ERR_DTYPE"
    assert all(np.isnan(a).all() for a in arrays)


@pytest.mark.parametrize("field,value", [("n_features", 8), ("n_hidden", 3), ("decoder", 1),
                                         ("sparsity_target", 0.06),
                                         ("sparsity_weight", 2.0), ("weight_decay", 0.0)])
def test_a_different_model_is_refused_untouched(reader, tmp_path, field, value):
    path = saved(tmp_path)
    _, info, _ = reader.info(path)
    setattr(info, field, value)
    st, arrays = reader.read(path, info, np.float64)
    assert st == "CSAE_ERR_MISMATCH"
    assert all(np.isnan(a).all() for a in arrays)
    assert reader.input_range(path, info)[0] == "CSAE_ERR_MISMATCH"


def test_scale_inputs_without_a_range(reader, tmp_path):
    """Python loads it but cannot transform with it; neither can C."""
    model = fitted()
    model.scale_inputs = True
    path = tmp_path / "model.npz"
    model.save(path)
    csae.load(path)
    st, info, _ = reader.info(path)
    assert st == "CSAE_OK"
    st, flag, lo, _ = reader.input_range(path, info)
    assert (st, flag) == ("CSAE_ERR_UNSUPPORTED", 1)
    assert np.isnan(lo).all()


# --------------------------------------------------------------------------
# Bad files, each built with valid zip CRCs so the damage is seen by the
# parsers behind the CRC check
# --------------------------------------------------------------------------

def arrays_of(path):
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def write(path, arrays, compressed=False, **kwargs):
    (np.savez_compressed if compressed else np.savez)(path, **arrays, **kwargs)


def hyper_edit(**changes):
    def edit(a):
        hp = json.loads(str(a["hyperparameters"][0]))
        for k, v in changes.items():
            if v is KeyError:
                del hp[k]
            else:
                hp[k] = v
        a["hyperparameters"] = np.array([json.dumps(hp)])
    return edit


def setter(name, value):
    def edit(a):
        a[name] = value(a) if callable(value) else value
    return edit


def dropper(*names):
    def edit(a):
        for name in names:
            del a[name]
    return edit


def nan_at(name, index=0, value=np.nan):
    def edit(a):
        x = a[name].copy()
        x.reshape(-1)[index] = value
        a[name] = x
    return edit


NEWER = FORMAT_VERSION + 1
# Format version 3 added these hyperparameters and optional fields.
V3_DROPPED = dict.fromkeys(("beta_1", "beta_2", "epsilon", "warm_start", "early_stopping",
                            "validation_fraction", "n_iter_no_change", "sparsity_estimate",
                            "sparsity_smoothing"), KeyError)
# Version 4: stop_reason (the fields of version 3 and later, as older files lack them).
V4_FIELDS = ("stop_reason",)
V3_FIELDS = tuple(f"adam_{k}_{name}" for k in "mv" for name in NAMES) + (
    "adam_t", "rho_running", "running_batches") + V4_FIELDS

BAD_FILES = {
    # name: (edit of the arrays, status from C)
    "nan weight": (nan_at("encoder_weights", 5), "CSAE_ERR_FORMAT"),
    "inf decoder bias": (nan_at("decoder_bias", 0, np.inf), "CSAE_ERR_FORMAT"),
    "nan velocity": (nan_at("velocity_decoder_weights", 3), "CSAE_ERR_FORMAT"),
    "inf loss": (nan_at("loss_curve", 1, -np.inf), "CSAE_ERR_FORMAT"),
    "nan data_min": (nan_at("data_min", 2), "CSAE_ERR_FORMAT"),
    "zero data_scale": (nan_at("data_scale", 2, 0.0), "CSAE_ERR_FORMAT"),
    "newer format": (setter("format_version", np.array(NEWER, dtype=np.int64)),
                     "CSAE_ERR_UNSUPPORTED"),
    "newer format with a new field": (
        lambda a: (setter("format_version", np.array(NEWER))(a),
                   setter("new_field", np.zeros(1))(a)),
        "CSAE_ERR_UNSUPPORTED"),
    "format version 0": (setter("format_version", np.array(0)), "CSAE_ERR_FORMAT"),
    "format version negative": (setter("format_version", np.array(-1, dtype=np.int8)),
                                "CSAE_ERR_FORMAT"),
    "format version float": (setter("format_version", np.array(1.0)), "CSAE_ERR_FORMAT"),
    "other format name": (setter("format", np.array("csae.Other")), "CSAE_ERR_FORMAT"),
    "format name as bytes": (setter("format", np.array(b"csae.SparseAutoencoder")),
                             "CSAE_ERR_FORMAT"),
    "unknown field": (setter("extra", np.zeros(3)), "CSAE_ERR_FORMAT"),
    "missing decoder bias": (dropper("decoder_bias"), "CSAE_ERR_FORMAT"),
    "missing hyperparameters": (dropper("hyperparameters"), "CSAE_ERR_FORMAT"),
    "missing format": (dropper("format"), "CSAE_ERR_FORMAT"),
    "one velocity": (dropper("velocity_encoder_bias", "velocity_decoder_weights",
                             "velocity_decoder_bias"), "CSAE_ERR_FORMAT"),
    "data_min alone": (dropper("data_scale"), "CSAE_ERR_FORMAT"),
    "float32 weights in a float64 model": (
        setter("encoder_weights", lambda a: a["encoder_weights"].astype(np.float32)),
        "CSAE_ERR_FORMAT"),
    "big-endian weights": (
        setter("decoder_weights", lambda a: a["decoder_weights"].astype(">f8")),
        "CSAE_ERR_FORMAT"),
    "3-D weights": (setter("encoder_weights", lambda a: a["encoder_weights"][None]),
                    "CSAE_ERR_FORMAT"),
    "transposed decoder": (setter("decoder_weights", lambda a: np.ascontiguousarray(
        a["decoder_weights"].T)), "CSAE_ERR_FORMAT"),
    "short bias": (setter("encoder_bias", lambda a: a["encoder_bias"][:-1]),
                   "CSAE_ERR_FORMAT"),
    "integer weights": (setter("encoder_bias", lambda a: a["encoder_bias"].astype(np.int64)),
                        "CSAE_ERR_FORMAT"),
    "n_iter off by one": (setter("n_iter", lambda a: a["n_iter"] + 1), "CSAE_ERR_FORMAT"),
    "signed rng_state": (setter("rng_state", np.array(5, dtype=np.int64)), "CSAE_ERR_FORMAT"),
    "hyperparameters 0-d": (setter("hyperparameters", lambda a: a["hyperparameters"][0]),
                            "CSAE_ERR_FORMAT"),
    "hyperparameters not JSON": (setter("hyperparameters", np.array(["{'n_hidden': 4}"])),
                                 "CSAE_ERR_FORMAT"),
    "hyperparameters a list": (setter("hyperparameters", np.array(["[1, 2]"])),
                               "CSAE_ERR_FORMAT"),
    "hyperparameter missing": (hyper_edit(momentum=KeyError), "CSAE_ERR_FORMAT"),
    "hyperparameter unknown": (hyper_edit(colour="red"), "CSAE_ERR_FORMAT"),
    "n_hidden differs from the weights": (hyper_edit(n_hidden=5), "CSAE_ERR_FORMAT"),
    "n_hidden a float": (hyper_edit(n_hidden=4.0), "CSAE_ERR_FORMAT"),
    "n_hidden a bool": (hyper_edit(n_hidden=True), "CSAE_ERR_FORMAT"),
    "sparsity_target 1": (hyper_edit(sparsity_target=1), "CSAE_ERR_FORMAT"),
    "sparsity_weight negative": (hyper_edit(sparsity_weight=-0.5), "CSAE_ERR_FORMAT"),
    "weight_decay huge int": (hyper_edit(weight_decay=10 ** 400), "CSAE_ERR_FORMAT"),
    "learning_rate 0": (hyper_edit(learning_rate=0), "CSAE_ERR_FORMAT"),
    "momentum 1": (hyper_edit(momentum=1.0), "CSAE_ERR_FORMAT"),
    "decoder unknown": (hyper_edit(decoder="relu"), "CSAE_ERR_FORMAT"),
    "dtype unknown": (hyper_edit(dtype="float16"), "CSAE_ERR_FORMAT"),
    "dtype says float32": (hyper_edit(dtype="float32"), "CSAE_ERR_FORMAT"),
    "batch_size 0": (hyper_edit(batch_size=0), "CSAE_ERR_FORMAT"),
    "shuffle a string": (hyper_edit(shuffle="yes"), "CSAE_ERR_FORMAT"),
    "random_state 2**64": (hyper_edit(random_state=2 ** 64), "CSAE_ERR_FORMAT"),
    "random_state negative": (hyper_edit(random_state=-1), "CSAE_ERR_FORMAT"),
    "n_threads 0": (hyper_edit(n_threads=0), "CSAE_ERR_FORMAT"),
    "verbose negative": (hyper_edit(verbose=-2), "CSAE_ERR_FORMAT"),
    "backend unknown": (hyper_edit(backend="gpu"), "CSAE_ERR_FORMAT"),
    "solver unknown": (hyper_edit(solver="adamw"), "CSAE_ERR_FORMAT"),
    "max_fun 0": (hyper_edit(max_fun=0), "CSAE_ERR_FORMAT"),
    "tol negative": (hyper_edit(tol=-1e-4), "CSAE_ERR_FORMAT"),
    "tol missing": (hyper_edit(tol=KeyError), "CSAE_ERR_FORMAT"),
    # Version 1 records had no solver, max_fun or tol: naming one there is wrong.
    "version 1 naming solver": (lambda a: (setter("format_version", np.array(1))(a),
                                           hyper_edit(max_fun=KeyError, tol=KeyError,
                                                      **V3_DROPPED)(a)),
                                "CSAE_ERR_FORMAT"),
    # Version 4: stop_reason, one of csae.solvers.STOP_REASONS.
    "version 3 with stop_reason": (setter("format_version", np.array(3)), "CSAE_ERR_FORMAT"),
    "unknown stop_reason": (setter("stop_reason", np.array("bored")), "CSAE_ERR_FORMAT"),
    "stop_reason not a string": (setter("stop_reason", np.array(1)), "CSAE_ERR_FORMAT"),
    "stop_reason of shape (1,)": (setter("stop_reason", np.array(["max_epochs"])),
                                  "CSAE_ERR_FORMAT"),
    # Version 3: Adam, early stopping and the running sparsity estimate.
    "version 2 naming beta_1": (lambda a: (setter("format_version", np.array(2))(a),
                                           hyper_edit(**{**V3_DROPPED, "beta_1": 0.9})(a),
                                           dropper(*V3_FIELDS)(a)),
                                "CSAE_ERR_FORMAT"),
    "version 2 with Adam moments": (lambda a: (setter("format_version", np.array(2))(a),
                                               hyper_edit(**V3_DROPPED)(a)),
                                    "CSAE_ERR_FORMAT"),
    "beta_1 1": (hyper_edit(beta_1=1.0), "CSAE_ERR_FORMAT"),
    "beta_2 negative": (hyper_edit(beta_2=-0.1), "CSAE_ERR_FORMAT"),
    "epsilon 0": (hyper_edit(epsilon=0), "CSAE_ERR_FORMAT"),
    "validation_fraction 1": (hyper_edit(validation_fraction=1.0), "CSAE_ERR_FORMAT"),
    "n_iter_no_change 0": (hyper_edit(n_iter_no_change=0), "CSAE_ERR_FORMAT"),
    "early_stopping a string": (hyper_edit(early_stopping="yes"), "CSAE_ERR_FORMAT"),
    "warm_start missing": (hyper_edit(warm_start=KeyError), "CSAE_ERR_FORMAT"),
    "sparsity_estimate unknown": (hyper_edit(sparsity_estimate="ema"), "CSAE_ERR_FORMAT"),
    "sparsity_smoothing 0": (hyper_edit(sparsity_smoothing=0), "CSAE_ERR_FORMAT"),
    "sparsity_smoothing above 1": (hyper_edit(sparsity_smoothing=1.5), "CSAE_ERR_FORMAT"),
    "nan Adam moment": (nan_at("adam_m_decoder_weights", 2), "CSAE_ERR_FORMAT"),
    "negative second moment": (nan_at("adam_v_encoder_bias", 1, -1e-3), "CSAE_ERR_FORMAT"),
    "Adam moments without adam_t": (dropper("adam_t"), "CSAE_ERR_FORMAT"),
    "one Adam moment missing": (dropper("adam_v_decoder_bias"), "CSAE_ERR_FORMAT"),
    "negative adam_t": (setter("adam_t", np.array(-1, dtype=np.int64)), "CSAE_ERR_FORMAT"),
    "short Adam moment": (setter("adam_m_encoder_bias",
                                 lambda a: a["adam_m_encoder_bias"][:-1]), "CSAE_ERR_FORMAT"),
    "rho_running above 1": (nan_at("rho_running", 0, 1.5), "CSAE_ERR_FORMAT"),
    "rho_running alone": (dropper("running_batches"), "CSAE_ERR_FORMAT"),
    "running_batches a float": (setter("running_batches", np.array(3.0)), "CSAE_ERR_FORMAT"),
}

# Files Python accepts with the same values, and C as well.
GOOD_VARIANTS = {
    "hyperparameters, other order and spacing": lambda a: setter("hyperparameters", np.array(
        [json.dumps(json.loads(str(a["hyperparameters"][0])), indent=2)]))(a),
    "random_state 2**64 - 1": hyper_edit(random_state=2 ** 64 - 1),
    "verbose huge": hyper_edit(verbose=10 ** 30),
    "sparsity_weight an int": hyper_edit(sparsity_weight=2),
    "weight_decay -0.0": hyper_edit(weight_decay=-0.0),
    "int32 format_version": setter("format_version",
                                   np.array(FORMAT_VERSION, dtype=np.int32)),
    "format name padded with NULs": setter("format", np.array("csae.SparseAutoencoder",
                                                              dtype="<U30")),
    "no optional fields": dropper("rng_state", "velocity_encoder_weights",
                                  "velocity_encoder_bias", "velocity_decoder_weights",
                                  "velocity_decoder_bias"),
    "empty loss curve": lambda a: (setter("loss_curve", np.zeros(0))(a),
                                   setter("n_iter", np.array(0))(a)),
    "solver lbfgs": hyper_edit(solver="lbfgs", max_fun=50, tol=0),
    "format version 1 (before solver, max_fun, tol)": lambda a: (
        setter("format_version", np.array(1))(a),
        hyper_edit(solver=KeyError, max_fun=KeyError, tol=KeyError, **V3_DROPPED)(a),
        dropper(*V3_FIELDS)(a)),
    "format version 2 (before Adam, early stopping, running estimate)": lambda a: (
        setter("format_version", np.array(2))(a), hyper_edit(**V3_DROPPED)(a),
        dropper(*V3_FIELDS)(a)),
    "no Adam state or running estimate": dropper(*V3_FIELDS),
    "format version 3 (before stop_reason)": lambda a: (
        setter("format_version", np.array(3))(a), dropper(*V4_FIELDS)(a)),
    "no stop_reason": dropper(*V4_FIELDS),
    "solver adam, running estimate, early stopping": hyper_edit(
        solver="adam", beta_1=0.5, beta_2=0.0, epsilon=1e-3, sparsity_estimate="running",
        sparsity_smoothing=1, early_stopping=True, validation_fraction=0.5,
        n_iter_no_change=7, warm_start=True),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A float64 file with every optional field, and its arrays."""
    path = tmp_path_factory.mktemp("base") / "model.npz"
    model = fitted(momentum=0.5, scale_inputs=True)
    # Adam moments and a running estimate next to the momentum velocities
    # (as a model trained with sgd and then warm-started with adam has).
    params = model._state.params
    model._publish(model._state._replace(
        adam_m=frozen_tuple(np.full_like(p, -0.01) for p in params),
        adam_v=frozen_tuple(np.full_like(p, 1e-4) for p in params), adam_t=8,
        rho_running=frozen(np.full(params[1].shape, 0.05)), running_batches=8))
    model.save(path)
    assert "stop_reason" in arrays_of(path)
    return path, arrays_of(path)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_refused_like_python_refuses_it(reader, base, tmp_path, case):
    edit, expected = BAD_FILES[case]
    arrays = dict(base[1])
    edit(arrays)
    path = tmp_path / "bad.npz"
    write(path, arrays)
    with pytest.raises(ValueError, match="not a valid csae model file"):
        csae.load(path)
    st, info, _ = reader.info(path)
    assert st == expected
    _, good, _ = reader.info(base[0])
    st, arrays = reader.read(path, good, np.float64)
    assert st == expected
    assert all(np.isnan(a).all() for a in arrays), "a refused read wrote into the arrays"


@pytest.mark.parametrize("case", sorted(GOOD_VARIANTS))
def test_unusual_but_valid_files_read_as_python_reads_them(reader, base, tmp_path, case):
    arrays = dict(base[1])
    GOOD_VARIANTS[case](arrays)
    path = tmp_path / "variant.npz"
    write(path, arrays)
    model = csae.load(path)
    st, info, _ = reader.info(path)
    assert st == "CSAE_OK"
    st, weights = reader.read(path, info, np.float64)
    assert st == "CSAE_OK"
    for name, w in zip(NAMES, weights):
        np.testing.assert_array_equal(w, getattr(model, name + "_"))


def test_compressed_or_fortran_files_are_unsupported_not_corrupt(reader, base, tmp_path):
    """Python reads these (save never writes them); C says it cannot."""
    path = tmp_path / "compressed.npz"
    write(path, base[1], compressed=True)
    csae.load(path)
    assert reader.info(path)[0] == "CSAE_ERR_UNSUPPORTED"
    arrays = dict(base[1])
    arrays["encoder_weights"] = np.asfortranarray(arrays["encoder_weights"])
    path = tmp_path / "fortran.npz"
    write(path, arrays)
    csae.load(path)
    assert reader.info(path)[0] == "CSAE_ERR_UNSUPPORTED"


def test_pickled_member_and_non_zip_files(reader, base, tmp_path):
    arrays = dict(base[1])
    arrays["extra"] = np.array([{"a": 1}], dtype=object)
    path = tmp_path / "pickle.npz"
    np.savez(path, **arrays, allow_pickle=True)
    assert reader.info(path)[0] == "CSAE_ERR_FORMAT"
    path = tmp_path / "single.npy"
    np.save(path, np.zeros(3))
    assert reader.info(path)[0] == "CSAE_ERR_FORMAT"
    path = tmp_path / "text.npz"
    path.write_text("hello")
    assert reader.info(path)[0] == "CSAE_ERR_FORMAT"


def test_zip_level_damage(reader, base, tmp_path):
    """Comment after the archive (refused: csae writes none, and readers
    disagree on which end record a comment may hide), encrypted flag, a
    second entry of the same name, entries overlapping."""
    data = base[0].read_bytes()
    path = tmp_path / "z.npz"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = [(info.filename, z.read(info)) for info in z.infolist()]

    def rezip(members, comment=b""):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns of a duplicate name
            out.comment = comment
            for name, blob in members:
                out.writestr(name, blob)
        path.write_bytes(buf.getvalue())

    # a zip comment: refused by both readers
    rezip(members, comment=b"trained on Tuesday")
    with pytest.raises(ValueError, match="archive comment"):
        csae.load(path)
    assert reader.info(path)[0] == "CSAE_ERR_FORMAT"
    rezip(members)
    csae.load(path)  # the same archive without the comment reads
    assert reader.info(path)[0] == "CSAE_OK"
    # the same member twice
    rezip(members + members[-1:])
    assert reader.info(path)[0] == "CSAE_ERR_FORMAT"
    # encrypted flag on the first central entry
    blob = bytearray(data)
    cd = blob.rindex(b"PK\x01\x02", 0, len(blob))
    first = blob.index(b"PK\x01\x02")
    blob[first + 8] |= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError):
        csae.load(path)
    assert reader.info(path)[0] == "CSAE_ERR_UNSUPPORTED"
    # the last entry's data offset pointing at the first member's data
    blob = bytearray(data)
    blob[cd + 42:cd + 46] = (0).to_bytes(4, "little")
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError):
        csae.load(path)
    assert reader.info(path)[0] == "CSAE_ERR_FORMAT"


def test_every_truncation_is_refused(reader, base, tmp_path):
    data = base[0].read_bytes()
    path = tmp_path / "cut.npz"
    statuses = set()
    for length in range(0, len(data), 13):
        path.write_bytes(data[:length])
        statuses.add(reader.info(path)[0])
    assert statuses == {"CSAE_ERR_FORMAT"}


# --------------------------------------------------------------------------
# Text members: every caller of the one UTF-32 scanner, with hostile text
# --------------------------------------------------------------------------

def utf32(codes, order="<", pad=0, shape=()):
    """A numpy str array holding exactly these code points (any 32-bit
    value, even past U+10FFFF, which no Python str holds), then pad NULs."""
    raw = np.array([*codes, *[0] * pad], dtype=order + "u4")
    return raw.view(f"{order}U{len(raw)}").reshape(shape)


# The rules each text member is read by (csae/_persist.py, _deep_persist.py):
# every member is Unicode in either byte order with numpy's trailing NULs
# stripped; names must be one that is known; csae_version is only shown,
# so anything Unicode goes, of any length; a record is tab, newline, CR and
# printable ASCII up to its limit, JSON that C parses ("json") or, in a deep
# model's file, text whose JSON is Python's to check ("text").
TEXT_FIELDS = {  # (file, member): kind of text, longest record
    ("single", "format"): ("name", None),
    ("single", "stop_reason"): ("name", None),
    ("single", "csae_version"): ("any", None),
    ("single", "hyperparameters"): ("json", 2048),
    ("deep", "format"): ("name", None),
    ("deep", "csae_version"): ("any", None),
    ("deep", "hyperparameters"): ("text", 65536),
}


def text_variants(text, kind, limit):
    """(name, code points, byte order, trailing NULs, accepted) for text
    read as kind; what is inserted goes after the first character (inside a
    name, where JSON allows white space in a record)."""
    codes = [ord(ch) for ch in text]

    def ins(*extra):
        return codes[:1] + list(extra) + codes[1:]

    strict = kind != "any"
    variants = [
        ("as saved", codes, "<", 0, True),
        ("big-endian", codes, ">", 0, True),
        # more NULs than any name's buffer holds: stripped, not counted
        ("trailing NULs", codes, "<", 40, True),
        ("embedded NUL", ins(0), "<", 0, not strict),
        ("NULs first", [0, 0] + codes, "<", 0, not strict),
        ("embedded NUL, big-endian", ins(0), ">", 0, not strict),
        ("U+10FFFF", ins(0x10FFFF), "<", 0, not strict),
        ("past U+10FFFF", ins(0x110000), "<", 0, False),
        ("past U+10FFFF, big-endian", ins(0x110000), ">", 0, False),
        ("past U+10FFFF after trailing text", codes + [0, 0x7FFFFFFF], "<", 0, False),
        ("0x1F", ins(0x1F), "<", 0, not strict),
        ("DEL", ins(0x7F), "<", 0, not strict),
        ("e acute", ins(0xE9), "<", 0, not strict),
    ]
    if kind == "any":
        # longer than any buffer C keeps text in
        variants.append(("2100 characters", codes + [ord("x")] * (2100 - len(codes)), "<", 0,
                         True))
    if kind == "text":
        variants.append(("tilde, space", ins(0x7E, 0x20), "<", 0, True))
    if kind in ("json", "text"):
        spaces = [0x20] * (limit - len(codes))
        variants += [
            ("tab, newline, CR", ins(9, 10, 13), "<", 0, True),
            ("tab, newline, CR, big-endian", ins(9, 10, 13), ">", 0, True),
            ("at the limit", codes + spaces, "<", 0, True),
            ("at the limit, big-endian, trailing NULs", codes + spaces, ">", 9, True),
            ("one past the limit", codes + spaces + [0x20], "<", 0, False),
            ("NUL past the limit", codes + spaces + [0, 0x20], "<", 0, False),
            ("empty", [], "<", 3, False),
        ]
    return variants


@pytest.fixture(scope="module")
def deep_base(tmp_path_factory):
    path = deep_seeds(tmp_path_factory.mktemp("deep_text"))[0]
    return path, arrays_of(path)


@pytest.mark.parametrize("where", sorted(TEXT_FIELDS), ids="-".join)
def test_text_members_are_scanned_alike_by_every_caller(reader, base, deep_base, tmp_path,
                                                        where):
    """Byte order, NULs (trailing, embedded, first), code points at and past
    U+10FFFF, control, DEL and non-ASCII characters, and lengths at and one
    past a record's limit, in each member the C reader reads as text."""
    file, member = where
    kind, limit = TEXT_FIELDS[where]
    arrays = (base if file == "single" else deep_base)[1]
    info = reader.info if file == "single" else DeepReader().info
    text = arrays[member]
    failures = []
    for name, codes, order, pad, accepted in text_variants(str(text.reshape(-1)[0]), kind,
                                                           limit):
        path = tmp_path / "text.npz"
        write(path, {**arrays, member: utf32(codes, order, pad, text.shape)})
        st = info(path)[0]
        if st != ("CSAE_OK" if accepted else "CSAE_ERR_FORMAT"):
            failures.append(f"{name}: {st}")
    assert not failures, failures


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("where", sorted(TEXT_FIELDS), ids="-".join)
def test_a_code_point_past_unicode_is_refused_by_both_readers(base, deep_base, tmp_path, where,
                                                              compressed):
    """C refuses a text member holding a value past U+10FFFF; Python's reader,
    which alone reads deflated members, refused it only by accident (a
    SystemError inside numpy) or not at all (csae_version loaded)."""
    file, member = where
    arrays = (base if file == "single" else deep_base)[1]
    text = arrays[member]
    codes = [ord(ch) for ch in str(text.reshape(-1)[0])]
    path = tmp_path / "past_unicode.npz"
    write(path, {**arrays, member: utf32(codes[:1] + [0x110000] + codes[1:], shape=text.shape)},
          compressed=compressed)
    # (A format that is not Unicode is first of all none of the known names.)
    said = "format is" if member == "format" else f"{member} holds a code point past U"
    with pytest.raises(ValueError, match=said):
        csae.load(path)


@pytest.mark.parametrize("member", ["csae_version", "hyperparameters"])
@pytest.mark.parametrize("file", ["single", "deep"])
def test_an_unknown_member_is_refused_before_the_text_members_are_read(
        reader, base, deep_base, tmp_path, file, member):
    """Once the format and its version are known, a member the format does
    not know makes the file corrupt, whatever the members after it hold:
    both C readers refuse it before reading csae_version and the record,
    as Python's readers do (the deep reader read both first, and so called
    a file with an unknown member and a Fortran-ordered matrix there
    unsupported)."""
    arrays = (base if file == "single" else deep_base)[1]
    fortran = np.asfortranarray(np.array([["a", "b", "c"], ["d", "e", "f"]]))
    path = tmp_path / "unknown.npz"
    write(path, {**arrays, member: fortran})
    info = reader.info if file == "single" else DeepReader().info
    assert info(path)[0] == "CSAE_ERR_UNSUPPORTED"  # the matrix alone
    write(path, {**arrays, member: fortran, "extra": np.zeros(2)})
    assert info(path)[0] == "CSAE_ERR_FORMAT"
    with pytest.raises(ValueError, match="unknown fields: extra"):
        csae.load(path)


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_a_class_label_past_unicode_is_refused_by_both_readers(deep_base, tmp_path, compressed):
    """The classifier's string labels follow the same rule as its text members."""
    arrays = deep_base[1]
    classes = arrays["classes"]
    assert classes.dtype.kind == "U"
    codes = np.array(classes).view(np.uint32).reshape(len(classes), -1).copy()
    codes[0, 0] = 0x110000
    path = tmp_path / "label_past_unicode.npz"
    write(path, {**arrays, "classes": codes.view(classes.dtype).reshape(classes.shape)},
          compressed=compressed)
    with pytest.raises(ValueError, match="classes hold a character beyond U"):
        csae.load(path)


# --------------------------------------------------------------------------
# Fuzzing under AddressSanitizer and UBSan
# --------------------------------------------------------------------------

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g", "-O1"]


def _fast_tmpdir():
    """A folder in RAM when there is one: the harness writes ~40 000 files."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return tempfile.TemporaryDirectory(dir=shm, prefix="csae-fuzz-")
    return tempfile.TemporaryDirectory(prefix="csae-fuzz-")


def deep_seeds(tmp_path):
    """Small deep models' files: a float64 classifier with every optional
    member (early stopping, string labels) and a float32 stack whose upper
    layer's scaling is folded."""
    import warnings
    X = np.random.default_rng(2).random((30, 4)) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = csae.SparseAutoencoderClassifier(
            hidden_layer_sizes=(3,), autoencoder_params={"max_epochs": 2}, max_iter=2,
            softmax_max_iter=2, early_stopping=True, random_state=0).fit(
                X, np.where(X[:, 0] > 1.5, "a", "bc"))
        ae1 = SparseAutoencoder(n_hidden=3, max_epochs=2, scale_inputs=True, dtype=np.float32,
                                random_state=0).fit(X)
        ae2 = SparseAutoencoder(n_hidden=2, max_epochs=2, scale_inputs=True, dtype=np.float32,
                                random_state=0).fit(ae1.transform(X))
    clf.save(tmp_path / "deep_classifier.npz")
    csae.stack(ae1, ae2).save(tmp_path / "deep_stack.npz")
    return [tmp_path / "deep_classifier.npz", tmp_path / "deep_stack.npz"]


def test_fuzzed_files_never_crash_the_reader(reader, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler found (cc or gcc)")
    exe = tmp_path / "model_file_fuzz"
    # The reader, the archive layer, the status messages and the RNG: nothing
    # else is needed.
    sources = [ROOT / "src_c" / name for name in ("model_file.c", "npz.c", "library.c", "rng.c", "spans.c")]
    cmd = [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", *SANITIZE, f"-I{ROOT / 'src_c'}",
           str(ROOT / "tests" / "model_file_fuzz.c"), *map(str, sources), "-lm",
           "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr

    seeds = [saved(tmp_path, "f64.npz", momentum=0.5, scale_inputs=True),
             saved(tmp_path, "f32.npz", dtype=np.float32, n=3, n_hidden=2),
             saved(tmp_path, "linear.npz", decoder="linear", n=5, n_hidden=6),
             *deep_seeds(tmp_path)]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    with _fast_tmpdir() as work:
        run = subprocess.run([str(exe), work, "4000", "7", *map(str, seeds)],
                             capture_output=True, text=True, env=env, timeout=900)
        report = run.stdout[-5000:] + run.stderr[-5000:]
        assert run.returncode == 0, report
        assert "runtime error" not in report and "Sanitizer" not in report, report
        last = run.stdout.strip().splitlines()[-1]
        assert last.endswith(" 0 failed"), report
        assert int(last.split()[0]) >= 12000, report

        # Whatever damaged file C accepted, Python loads to the same weights.
        kept = sorted(glob.glob(os.path.join(work, "accepted_*.npz")))
        assert kept, "no mutant was accepted: the deep mutations never left a valid file"
        deep = DeepReader()
        for path in kept:
            model = csae.load(path)
            if not isinstance(model, SparseAutoencoder):
                st, info = deep.info(path)
                assert st == "CSAE_OK"
                st, theta = deep.read(path, info, model.layers_[0][0].dtype)
                assert st == "CSAE_OK"
                assert theta.tobytes() == b"".join(a.tobytes() for layer in model.layers_
                                                   for a in layer)
                continue
            st, info, elem = reader.info(path)
            assert st == "CSAE_OK"
            st, weights = reader.read(path, info, model.encoder_weights_.dtype)
            assert st == "CSAE_OK"
            for name, w in zip(NAMES, weights):
                np.testing.assert_array_equal(w, getattr(model, name + "_"))


# --------------------------------------------------------------------------
# A program that switched to a locale with a decimal comma
# --------------------------------------------------------------------------

LOCALE_PROGRAM = r"""
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <csae.h>
int main(int argc, char **argv)
{
    if (!setlocale(LC_NUMERIC, "de_DE.UTF-8") || strcmp(localeconv()->decimal_point, ",") != 0)
        return 3;
    csae_model model;
    size_t elem;
    csae_status st = csae_model_file_info(argv[1], &model, &elem);
    if (st != CSAE_OK)
        return 1;
    uint64_t bits[3];
    memcpy(&bits[0], &model.sparsity_target, 8);
    memcpy(&bits[1], &model.sparsity_weight, 8);
    memcpy(&bits[2], &model.weight_decay, 8);
    printf("%llu %llu %llu\n", (unsigned long long)bits[0], (unsigned long long)bits[1],
           (unsigned long long)bits[2]);
    (void)argc;
    return 0;
}
"""


def test_hyperparameters_read_the_same_under_a_decimal_comma_locale(tmp_path):
    """strtod follows LC_NUMERIC: the reader must not read 0.05 as 0 in a
    program that set a German locale."""
    localedef = shutil.which("localedef")
    if localedef is None or not os.path.isdir("/usr/share/i18n/locales"):
        pytest.skip("localedef or the locale sources are not installed")
    locales = tmp_path / "locales"
    locales.mkdir()
    made = subprocess.run([localedef, "-i", "de_DE", "-f", "UTF-8",
                           str(locales / "de_DE.UTF-8")], capture_output=True, text=True)
    if not (locales / "de_DE.UTF-8").is_dir():
        pytest.skip(f"localedef could not build de_DE.UTF-8: {made.stderr[-300:]}")
    src = tmp_path / "locale.c"
    src.write_text(LOCALE_PROGRAM)
    exe = tmp_path / "locale_program"
    libdir = os.path.dirname(csae.get_library())
    cc = shutil.which("cc") or shutil.which("gcc")
    built = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", str(src),
                            f"-I{csae.get_include()}", f"-L{libdir}", f"-Wl,-rpath,{libdir}",
                            "-lcsae", "-o", str(exe)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    model = fitted(sparsity_target=0.07, sparsity_weight=2.5, weight_decay=3e-5)
    model.save(tmp_path / "model.npz")
    run = subprocess.run([str(exe), str(tmp_path / "model.npz")], capture_output=True,
                         text=True, env=dict(os.environ, LOCPATH=str(locales)))
    assert run.returncode == 0, (run.returncode, run.stderr)
    got = [int(v) for v in run.stdout.split()]
    expected = [int(np.array(v, dtype=np.float64).view(np.uint64))
                for v in (0.07, 2.5, 3e-5)]
    assert got == expected
