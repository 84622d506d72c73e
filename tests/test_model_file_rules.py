"""One set of rules for a model file's hyperparameters and small members:
csae.load (csae._validation through csae._persist) and the C reader
(src_c/model_file.c) accept exactly the same records.

A table of edge values per hyperparameter (each limit, just inside and just
outside it, in both dtypes, with the solver or sparsity estimate that makes
Python check a value's representability), odd JSON, the record's length and
oversized string members: each written into an otherwise valid file and read
by both.  Both must accept (to the same values) or both refuse.  The cases
from the limits Python documents are also checked against that documented
outcome, so that agreeing on a wrong answer fails too."""

import json

import numpy as np
import pytest

import csae
from libcsae_ctypes import Reader
from test_model_file import NAMES, arrays_of, saved, write

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)
F64_TINY = float(np.finfo(np.float64).tiny)
# Just past halfway between float32's largest value and 2**128: rounds to inf.
F32_OVERFLOWS = float(np.nextafter(np.float64(F32_MAX) + 2.0 ** 103, np.inf))

COUNTS = ("batch_size", "max_epochs", "max_fun", "n_iter_no_change")

# (parameter changes, documented outcome: True accepted, False refused,
#  None undocumented (only agreement is checked); a pair is per dtype
#  (float64, float32))
CASES = []
for name in COUNTS:
    CASES += [({name: 1}, True), ({name: 2 ** 63 - 1}, True), ({name: 2 ** 63}, False),
              ({name: 2 ** 64}, False), ({name: 10 ** 30}, False), ({name: 0}, False),
              ({name: 1.0}, False), ({name: True}, False), ({name: None}, False)]
CASES += [({"n_threads": None}, True), ({"n_threads": 1}, True),
          ({"n_threads": 2 ** 31 - 1}, True), ({"n_threads": 2 ** 31}, False),
          ({"n_threads": 2 ** 64}, False), ({"n_threads": 0}, False),
          ({"n_threads": -1}, False), ({"n_threads": True}, False),
          ({"verbose": 0}, True), ({"verbose": True}, True), ({"verbose": 2 ** 70}, True),
          ({"verbose": -1}, False), ({"verbose": 1.5}, False),
          ({"random_state": None}, True), ({"random_state": 2 ** 64 - 1}, True),
          ({"random_state": 2 ** 64}, False), ({"random_state": -1}, False),
          ({"random_state": 3.0}, False)]
CASES += [
    ({"sparsity_target": 0.5}, True), ({"sparsity_target": 1e-40}, (True, False)),
    ({"sparsity_target": F32_TINY}, True), ({"sparsity_target": F32_TINY * 0.99}, (True, False)),
    ({"sparsity_target": 1e-310}, False), ({"sparsity_target": F64_TINY}, (True, False)),
    ({"sparsity_target": 0.99999999}, (True, False)),
    ({"sparsity_target": 0.9999999999999999}, (True, False)),
    ({"sparsity_target": 0}, False), ({"sparsity_target": 1}, False),
    ({"sparsity_target": -0.1}, False),
    ({"sparsity_weight": 0}, True), ({"sparsity_weight": -0.0}, True),
    ({"sparsity_weight": F32_MAX}, True), ({"sparsity_weight": F32_OVERFLOWS}, (True, False)),
    ({"sparsity_weight": 1e39}, (True, False)), ({"sparsity_weight": 1e308}, (True, False)),
    ({"sparsity_weight": 10 ** 400}, False), ({"sparsity_weight": 1e-320}, True),
    ({"weight_decay": 1e39}, (True, False)), ({"weight_decay": 1e-45}, True),
    ({"weight_decay": -1e-300}, False),
    ({"learning_rate": 1e-39}, (True, False)), ({"learning_rate": 1e-310}, False),
    ({"learning_rate": F64_TINY}, (True, False)), ({"learning_rate": 1e39}, (True, False)),
    ({"learning_rate": 0}, False),
    ({"momentum": 0}, True), ({"momentum": 0.99999999}, (True, False)),
    ({"momentum": 0.9999999999999999}, (True, False)), ({"momentum": 1}, False),
    ({"tol": 0}, True), ({"tol": 1e300}, True), ({"tol": -1e-9}, False),
]
for solver, checked in (("adam", False), ("sgd", True), ("lbfgs", True)):
    # Python checks beta_1, beta_2 and epsilon against the dtype only for adam.
    f32 = True if checked else False
    CASES += [({"solver": solver, "beta_1": 0.99999999}, (True, f32)),
              ({"solver": solver, "beta_2": 0.999999999}, (True, f32)),
              ({"solver": solver, "epsilon": 1e-46}, (True, f32)),
              ({"solver": solver, "epsilon": 1e-310}, None),
              ({"solver": solver, "beta_1": 1}, False),
              ({"solver": solver, "epsilon": 0}, False)]
for estimate, checked in (("running", False), ("batch", True)):
    CASES += [({"sparsity_estimate": estimate, "sparsity_smoothing": 1e-40},
               (True, True if checked else False)),
              ({"sparsity_estimate": estimate, "sparsity_smoothing": 1e-310}, None),
              ({"sparsity_estimate": estimate, "sparsity_smoothing": 1}, True),
              ({"sparsity_estimate": estimate, "sparsity_smoothing": 0}, False)]
CASES += [({"dtype": "f8"}, None), ({"dtype": "double"}, None), ({"dtype": "float16"}, False),
          ({"decoder": "Sigmoid"}, False), ({"backend": "python"}, True),
          ({"validation_fraction": 1}, False), ({"early_stopping": 1}, False)]


def case_id(case):
    return ",".join(f"{k}={v!r}"[:40] for k, v in case[0].items())


@pytest.fixture(scope="module")
def reader():
    return Reader()


@pytest.fixture(scope="module", params=["float64", "float32"])
def base(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    return request.param, arrays_of(saved(tmp, dtype=np.dtype(request.param)))


def outcome(reader, path, dtype):
    """(accepted by csae.load, accepted by C); when both accept, the values
    must be the same."""
    try:
        model = csae.load(path)
    except ValueError:
        model = None
    st, info, _ = reader.info(path)
    if model is not None and st == "CSAE_OK":
        assert info.sparsity_target == model.sparsity_target
        assert info.sparsity_weight == model.sparsity_weight
        assert info.weight_decay == model.weight_decay
        st2, weights = reader.read(path, info, dtype)
        assert st2 == "CSAE_OK"
        for name, w in zip(NAMES, weights):
            np.testing.assert_array_equal(w, getattr(model, name + "_"))
    return model is not None, st == "CSAE_OK"


def with_record(arrays, text, dtype=None):
    arrays = dict(arrays)
    arrays["hyperparameters"] = np.array([text], dtype=dtype)
    return arrays


def record(arrays):
    return str(arrays["hyperparameters"][0])


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_hyperparameter_edges_read_alike(reader, base, tmp_path, case):
    dtype, arrays = base
    changes, documented = case
    hp = json.loads(record(arrays))
    hp.update(changes)
    path = tmp_path / "edge.npz"
    write(path, with_record(arrays, json.dumps(hp)))
    py, c = outcome(reader, path, dtype)
    assert py == c, f"csae.load {'accepts' if py else 'refuses'}, C {'accepts' if c else 'refuses'}"
    if isinstance(documented, tuple):
        documented = documented[dtype == "float32"]
    if documented is not None:
        assert py == documented


def json_variants(text):
    """Records that are not what json.dumps writes."""
    hp = json.loads(text)
    body = text[1:-1]
    n_hidden = hp["n_hidden"]
    long_number = "0." + "0" * 90 + "1"
    assert hp["decoder"] == "sigmoid"
    variants = {
        "indented": (json.dumps(hp, indent=2), True),
        "key twice, same value": ("{" + body + f', "n_hidden": {n_hidden}' + "}", False),
        "key twice, other value": ("{" + body + ', "n_hidden": 9}', False),
        "escaped string": (text.replace('"sigmoid"', '"\\u0073igmoid"'), False),
        "escaped key": (text.replace('"tol"', '"\\u0074ol"'), False),
        "long number": (text.replace(f'"weight_decay": {json.dumps(hp["weight_decay"])}',
                                     f'"weight_decay": {long_number}'), True),
        "NaN": (text.replace(f'"tol": {json.dumps(hp["tol"])}', '"tol": NaN'), False),
        "Infinity": (text.replace(f'"tol": {json.dumps(hp["tol"])}', '"tol": Infinity'),
                     False),
        "leading zero": (text.replace(f'"n_hidden": {n_hidden}', f'"n_hidden": 0{n_hidden}'),
                         False),
        "exponent int": (text.replace(f'"n_hidden": {n_hidden}', f'"n_hidden": {n_hidden}e0'),
                         False),
        "trailing comma": (text[:-1] + ",}", False),
        "2048 characters": (text + " " * (2048 - len(text)), True),
        "2049 characters": (text + " " * (2049 - len(text)), False),
        "4096 characters": (text + " " * (4096 - len(text)), False),
        "non-ASCII space": (text.replace(",", ",\u00a0", 1), False),
    }
    for name, (variant, _) in variants.items():
        assert variant != text, f"the {name!r} edit changed nothing"
    return variants


def test_json_forms_read_alike(reader, base, tmp_path):
    dtype, arrays = base
    failures = []
    for name, (text, documented) in json_variants(record(arrays)).items():
        path = tmp_path / "json.npz"
        write(path, with_record(arrays, text))
        py, c = outcome(reader, path, dtype)
        if not py == c == documented:
            failures.append(f"{name}: csae.load {py}, C {c}, expected {documented}")
    assert not failures, failures


def test_string_members_of_any_size_csae_load_reads_and_no_larger(reader, base, tmp_path):
    """Members padded with the NULs numpy strips: Python bounds a string
    member's size before reading it (a .npy header plus 4 bytes per
    character of its limit), and so does C."""
    dtype, arrays = base
    text = record(arrays)
    cases = {
        "record padded within bounds": (with_record(arrays, text, "U2048"), True),
        "record member too large": (with_record(arrays, text, "U5000"), False),
        "format padded within bounds": (
            {**arrays, "format": np.array("csae.SparseAutoencoder", dtype="U64")}, True),
        "format member too large": (
            {**arrays, "format": np.array("csae.SparseAutoencoder", dtype="U3000")}, False),
        "csae_version member too large": (
            {**arrays, "csae_version": np.array(csae.__version__, dtype="U2600")}, False),
    }
    failures = []
    for name, (members, documented) in cases.items():
        path = tmp_path / "members.npz"
        write(path, members)
        py, c = outcome(reader, path, dtype)
        if not py == c == documented:
            failures.append(f"{name}: csae.load {py}, C {c}, expected {documented}")
    assert not failures, failures
