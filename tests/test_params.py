"""The hyperparameter table (csae._params) and everything built from it.

Each derived place is checked against the table: the constructor's
signature, the class docstring, the validated ``Hyperparameters``, the model
file's record, the command line and the C reader's checks
(src_c/model_file.c).  The ranges themselves are checked against the
documented ones written out here (not read from the table), at each bound:
the value at the bound and the nearest floats on either side."""

import inspect
import json
import math
import os

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder, _params
from csae._params import BY_NAME, HYPERPARAMETERS
from csae._validation import validate_hyperparameters

from test_model_file import arrays_of, saved, write

try:
    from csae import _engine
except ImportError:  # pragma: no cover - the C tests need the engine
    _engine = None

MAX_COUNT = 2**63 - 1

# The ranges the docstring states, written out by hand: (low, high, low
# closed, high closed).  A count's upper bound is what the engine's integers
# hold (documented in the error message).
DOCUMENTED = {
    "n_hidden": (1, None, True, None),
    "sparsity_target": (0.0, 1.0, False, False),
    "sparsity_weight": (0.0, math.inf, True, False),
    "weight_decay": (0.0, math.inf, True, False),
    "learning_rate": (0.0, math.inf, False, False),
    "momentum": (0.0, 1.0, True, False),
    "batch_size": (1, MAX_COUNT, True, True),
    "max_epochs": (1, MAX_COUNT, True, True),
    "n_threads": (1, 2**31 - 1, True, True),
    "max_fun": (1, MAX_COUNT, True, True),
    "tol": (0.0, math.inf, True, False),
    "beta_1": (0.0, 1.0, True, False),
    "beta_2": (0.0, 1.0, True, False),
    "epsilon": (0.0, math.inf, False, False),
    "validation_fraction": (0.0, 1.0, False, False),
    "n_iter_no_change": (1, MAX_COUNT, True, True),
    "sparsity_smoothing": (0.0, 1.0, False, True),
}
# Must stay a normal number > 0 in the model dtype (they are divided by or
# their log is taken): documented as "rounds to 0 in <dtype>".
POSITIVE = {"sparsity_target", "learning_rate", "epsilon", "sparsity_smoothing"}
# Must stay < 1 once rounded to the model dtype ("rounds to 1 in <dtype>").
BELOW_ONE = {"sparsity_target", "momentum", "beta_1", "beta_2"}
# Settings under which Python checks every value against the dtype.
ALL_CHECKS = {"solver": "adam", "sparsity_estimate": "running"}


def numeric(name):
    return BY_NAME[name].kind in ("int", "real", "threads")


def defaults(**changes):
    return {**SparseAutoencoder().get_params(), **ALL_CHECKS, **changes}


def accepted(params):
    try:
        validate_hyperparameters(params)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------
# The table and the places built from it
# --------------------------------------------------------------------------

def test_the_signature_names_the_table_in_order_with_its_defaults():
    signature = inspect.signature(SparseAutoencoder.__init__).parameters
    names = [name for name in signature if name != "self"]
    assert names == [p.name for p in HYPERPARAMETERS]
    for p in HYPERPARAMETERS:
        assert signature[p.name].default == p.default, p.name
        assert type(signature[p.name].default) is type(p.default), p.name


def test_every_numeric_range_is_the_documented_one():
    table = {p.name: p for p in HYPERPARAMETERS if p.kind in ("int", "real")}
    table["n_threads"] = BY_NAME["n_threads"]
    assert set(table) == set(DOCUMENTED)
    for name, (low, high, low_closed, high_closed) in DOCUMENTED.items():
        p = table[name]
        assert (p.low, p.high, not p.low_open) == (low, high, low_closed), name
        if high is not None and high != math.inf:
            assert (not p.high_open) == high_closed, name


def test_the_docstring_lists_the_table():
    doc = SparseAutoencoder.__doc__
    section = doc.split("Parameters\n    ----------\n")[1].split("\n    Attributes\n")[0]
    listed = [line.split(" : ")[0].strip() for line in section.split("\n")
              if line.startswith("    ") and not line.startswith("     ") and " : " in line]
    assert listed == [p.name for p in HYPERPARAMETERS]
    for p in HYPERPARAMETERS:
        first = p.doc.split("\n")[0]
        assert f"    {p.name} : {p.type_doc}, default=" in section
        assert first in section, p.name
    assert _params.PARAMETERS_MARKER not in doc
    # Docstring defaults as written before the table existed.
    assert "weight_decay : float, default=1e-4" in section
    assert "epsilon : float, default=1e-8" in section
    assert 'solver : {"lbfgs", "sgd", "adam"}, default="lbfgs"' in section


def test_validated_hyperparameters_have_a_field_per_parameter_but_the_seed():
    hp = validate_hyperparameters(SparseAutoencoder().get_params())
    fields = [f for f in hp.__dataclass_fields__]
    assert fields == [p.name for p in HYPERPARAMETERS if p.name != "random_state"]
    with pytest.raises(Exception):
        hp.n_hidden = 3  # frozen


def test_the_record_holds_the_table(tmp_path):
    path = saved(tmp_path)
    record = json.loads(str(arrays_of(path)["hyperparameters"][0]))
    assert list(record) == sorted(p.name for p in HYPERPARAMETERS)
    assert _params.RECORD_NAMES == tuple(sorted(record))
    # Format versions: version 1 had the first sixteen names.
    assert _params.ADDED_IN[2] == ("solver", "max_fun", "tol")
    assert len(_params.ADDED_IN[1]) == 16


def test_older_files_and_pickles_take_what_they_meant():
    from csae._estimator import defaults_for_older_models
    assert defaults_for_older_models(["solver", "tol", "beta_1"]) == {
        "solver": "sgd", "tol": 1e-5, "beta_1": 0.9}


@pytest.mark.skipif(_engine is None, reason="needs the C engine")
def test_the_c_reader_names_the_table(tmp_path):
    arrays = arrays_of(saved(tmp_path, n_hidden=1))
    record = json.loads(str(arrays["hyperparameters"][0]))

    def c_reads(rec):
        path = tmp_path / "r.npz"
        write(path, {**arrays, "hyperparameters": np.array([json.dumps(rec)])})
        return c_status(path) == 0

    assert c_reads(record)
    for name in record:
        assert not c_reads({k: v for k, v in record.items() if k != name}), name
    assert not c_reads({**record, "not_a_parameter": 1})


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------

def test_each_cli_option_is_the_python_name_with_its_old_spelling_kept():
    from csae.cli import build_parser
    parser = build_parser()
    base = ["train", "x.npy", "--n-hidden", "2", "--out", "m.npz"]
    old = {"n_hidden": "--hidden", "sparsity_target": "--rho", "sparsity_weight": "--beta",
           "weight_decay": "--lambda", "learning_rate": "--lr", "max_epochs": "--epochs",
           "random_state": "--seed", "n_threads": "--threads"}
    for p in HYPERPARAMETERS:
        if not p.cli:
            assert p.name in ("verbose", "warm_start"), p.name
            continue
        primary = "--" + p.name.replace("_", "-")
        if p.kind == "bool":
            if p.default:  # a flag that turns it off
                primary = "--no-" + p.name.replace("_", "-")
            args = parser.parse_args(base + [primary])
            assert getattr(args, p.name) is (not p.default)
            continue
        assert p.cli[0] == primary
        assert p.cli[1:] == ((old[p.name],) if p.name in old else ())
        value = p.choices[-1] if p.choices else "3"
        for option in p.cli:
            argv = [a for a in base if a not in ("--n-hidden", "2")] if p.name == "n_hidden" \
                else base
            args = parser.parse_args(argv + [option, value])
            assert str(getattr(args, p.name)).rstrip(".0") == value.rstrip(".0"), option


def test_cli_unset_options_leave_the_estimator_defaults(tmp_path, capsys):
    from csae.cli import main
    X = np.random.default_rng(0).random((30, 5))
    np.save(tmp_path / "x.npy", X)
    status = main(["train", str(tmp_path / "x.npy"), "--hidden", "2", "--epochs", "2",
                   "--solver", "sgd", "--seed", "0", "--quiet", "--out",
                   str(tmp_path / "m.npz")])
    assert status == 0
    model = csae.load(tmp_path / "m.npz")
    expected = {**SparseAutoencoder().get_params(), "n_hidden": 2, "max_epochs": 2,
                "solver": "sgd", "random_state": 0, "backend": model.backend}
    assert model.get_params() == expected
    status = main(["train", str(tmp_path / "x.npy"), "--n-hidden", "2", "--max-epochs", "2",
                   "--solver", "sgd", "--random-state", "0", "--quiet", "--out",
                   str(tmp_path / "m2.npz")])
    assert status == 0
    again = csae.load(tmp_path / "m2.npz")
    assert again.get_params() == expected
    np.testing.assert_array_equal(again.encoder_weights_, model.encoder_weights_)


# --------------------------------------------------------------------------
# Validation pinned at every bound
# --------------------------------------------------------------------------

def _edges(name):
    """(value, inside the documented range) at each finite bound: the bound
    and its nearest neighbours on both sides."""
    low, high, low_closed, high_closed = DOCUMENTED[name]
    out = []
    for bound, closed, is_low in ((low, low_closed, True), (high, high_closed, False)):
        if bound is None or bound == math.inf:
            continue
        if isinstance(bound, int):
            below, above = bound - 1, bound + 1
        else:
            below = float(np.nextafter(bound, -np.inf))
            above = float(np.nextafter(bound, np.inf))
        inward, outward = (above, below) if is_low else (below, above)
        out += [(bound, closed), (outward, False), (inward, True)]
    return out


def _float64_allows(name, value):
    """What the documentation adds for a float64 model: positive values
    stay normal numbers, values below one stay below one."""
    if name in POSITIVE and 0 < value < np.finfo(np.float64).tiny:
        return False
    return True


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_bound_is_pinned(name):
    for value, inside in _edges(name):
        expected = inside and _float64_allows(name, value)
        assert accepted(defaults(**{name: value})) is expected, (name, value)


@pytest.mark.parametrize("name", sorted(POSITIVE))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_positive_values_stay_normal_in_the_model_dtype(name, dtype):
    tiny = float(np.finfo(dtype).tiny)
    assert accepted(defaults(**{name: tiny, "dtype": dtype}))
    # The largest float64 that rounds below the dtype's smallest normal:
    # halfway to the subnormal below rounds to even (up to tiny), so just
    # under halfway.
    below = tiny - float(np.finfo(dtype).smallest_subnormal) / 2
    while float(np.dtype(dtype).type(below)) >= tiny:
        below = float(np.nextafter(below, 0))
    with pytest.raises(ValueError, match=f"^{name} rounds to 0 in {dtype}"):
        validate_hyperparameters(defaults(**{name: below, "dtype": dtype}))
    assert accepted(defaults(**{name: float(np.nextafter(below, 1)), "dtype": dtype}))


@pytest.mark.parametrize("name", sorted(BELOW_ONE))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_values_below_one_stay_below_one_in_the_model_dtype(name, dtype):
    largest = float(1 - np.finfo(dtype).epsneg)  # the dtype's largest value below 1
    assert accepted(defaults(**{name: largest, "dtype": dtype}))
    # The smallest float64 that rounds to 1 in the dtype: halfway between
    # its largest value below 1 and 1 rounds to even, up to 1 (in float64
    # that is 1 itself, refused by the range).
    up = 1 - float(np.finfo(dtype).epsneg) / 2
    assert float(np.dtype(dtype).type(up)) == 1
    message = f"rounds to 1 in {dtype}" if up < 1 else "must be in"
    with pytest.raises(ValueError, match=f"^{name} {message}"):
        validate_hyperparameters(defaults(**{name: up, "dtype": dtype}))
    assert accepted(defaults(**{name: float(np.nextafter(up, 0)), "dtype": dtype}))


@pytest.mark.parametrize("name", ["sparsity_weight", "weight_decay", "learning_rate",
                                  "sparsity_target"])
def test_values_that_overflow_float32_are_refused(name):
    largest = float(np.finfo(np.float32).max)
    if name != "sparsity_target":
        assert accepted(defaults(**{name: largest, "dtype": "float32"}))
    # float32's rounding sends halfway between its largest value and 2**128 up.
    halfway = largest + 2.0 ** 103
    with pytest.raises(ValueError, match=f"^{name} (overflows float32|must be)"):
        validate_hyperparameters(defaults(**{name: halfway, "dtype": "float32"}))
    if name != "sparsity_target":
        assert accepted(defaults(**{name: float(np.nextafter(halfway, 0)),
                                    "dtype": "float32"}))


@pytest.mark.parametrize("name, checked_when, other", [
    ("beta_1", ("solver", "adam"), ("solver", "sgd")),
    ("epsilon", ("solver", "adam"), ("solver", "lbfgs")),
    ("sparsity_smoothing", ("sparsity_estimate", "running"), ("sparsity_estimate", "batch")),
])
def test_dtype_checks_apply_only_where_the_value_is_used(name, checked_when, other):
    value = 1e-40 if name != "beta_1" else 0.99999999
    params = defaults(**{name: value, "dtype": "float32"})
    assert not accepted({**params, checked_when[0]: checked_when[1]})
    assert accepted({**params, other[0]: other[1]})


def test_verbose_and_random_state_bounds():
    assert accepted(defaults(verbose=0)) and not accepted(defaults(verbose=-1))
    assert accepted(defaults(verbose=True))
    assert accepted(defaults(random_state=0)) and not accepted(defaults(random_state=-1))
    assert accepted(defaults(random_state=2**64 - 1))
    assert not accepted(defaults(random_state=2**64))


@pytest.mark.parametrize("name", [p.name for p in HYPERPARAMETERS if p.kind == "real"])
def test_real_messages_say_the_documented_range(name):
    low, high, low_closed, high_closed = DOCUMENTED[name]
    if high == math.inf:
        what = (">= 0" if low_closed else "> 0")
    elif not low_closed and not high_closed:
        what = "in the open interval (0, 1)"
    else:
        what = f"in {'[' if low_closed else '('}0, 1{']' if high_closed else ')'}"
    with pytest.raises(ValueError, match=rf"^{name} must be {re_escape(what)}, got -1"):
        validate_hyperparameters(defaults(**{name: -1}))


def re_escape(text):
    import re
    return re.escape(text)


# --------------------------------------------------------------------------
# The C reader's checks equal Python's, at every bound
# --------------------------------------------------------------------------

def c_status(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return _engine.read_model_file(fd)[0]
    finally:
        os.close(fd)


def _c_cases():
    """Every numeric parameter at its bounds and their neighbours, plus the
    dtype edges of the values the engine computes with."""
    for p in HYPERPARAMETERS:
        if not numeric(p.name) or p.name == "n_hidden":
            continue
        values = [v for v, _ in _edges(p.name)]
        if p.name in POSITIVE:
            for dtype in (np.float32, np.float64):
                tiny = float(np.finfo(dtype).tiny)
                values += [tiny, float(np.nextafter(tiny, 0)), tiny * (1 - 2.0**-25),
                           tiny - 2.0**-150]
        if p.name in BELOW_ONE:
            values += [1 - 2.0**-25, float(np.nextafter(1 - 2.0**-25, 0)),
                       float(np.nextafter(1 - 2.0**-25, 1))]
        if p.kind == "real":
            f32 = float(np.finfo(np.float32).max)
            values += [f32, f32 + 2.0**103, float(np.nextafter(f32 + 2.0**103, 0))]
        for value in values:
            yield p.name, value


@pytest.fixture(scope="module", params=["float64", "float32"])
def one_unit_file(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    return arrays_of(saved(tmp, n_hidden=1, dtype=np.dtype(request.param)))


@pytest.mark.skipif(_engine is None, reason="needs the C engine")
@pytest.mark.parametrize("settings", [{}, ALL_CHECKS], ids=["sgd-batch", "adam-running"])
def test_c_reader_accepts_exactly_what_python_accepts(one_unit_file, settings, tmp_path):
    arrays = one_unit_file
    base = {**json.loads(str(arrays["hyperparameters"][0])), **settings}
    disagree = []
    for name, value in [("n_hidden", 0), ("n_hidden", 1)] + list(_c_cases()):
        record = {**base, name: value}
        path = tmp_path / "edge.npz"
        write(path, {**arrays, "hyperparameters": np.array([json.dumps(record)])})
        python = accepted(record)
        c = c_status(path) == 0
        if python != c:
            disagree.append((name, value, python, c))
        if c:
            # And csae.load, which reads with the C reader, agrees.
            assert csae.load(path).get_params()[name] == value
    assert disagree == []


# --------------------------------------------------------------------------
# tol and n_iter_no_change at their edge
# --------------------------------------------------------------------------

def test_an_improvement_of_exactly_tol_is_not_an_improvement():
    # The documented rule: stop after n_iter_no_change epochs that did not
    # improve on the best by *more than* tol times that best (values exact
    # in binary: 0.125 * 4 = 0.5, 0.125 * 3.5 = 0.4375).
    from csae.solvers._monitor import StoppingRule
    hp = validate_hyperparameters(defaults(tol=0.125, n_iter_no_change=2))
    rule = StoppingRule(hp, early_stopping=False)
    assert not rule.update(4.0)     # the first epoch sets the best
    assert not rule.update(3.5)     # exactly tol better: one epoch without improvement
    assert rule.update(3.0625)      # and again: two, stop
    rule = StoppingRule(hp, early_stopping=False)
    assert not rule.update(4.0)
    assert not rule.update(float(np.nextafter(3.5, 0)))  # more than tol: counts as better
    assert not rule.update(3.25)                        # one without improvement
    assert rule.update(3.25)                            # two: stop


def test_early_stopping_keeps_the_first_of_equal_best_epochs():
    # A learning rate so small that no weight moves: every epoch has the
    # same validation objective, and the first of them is the best (as in
    # scikit-learn, a later epoch must be strictly better to replace it).
    import warnings
    X = np.random.default_rng(0).random((40, 5))
    model = SparseAutoencoder(n_hidden=2, solver="sgd", learning_rate=1e-300,
                              early_stopping=True, n_iter_no_change=3, max_epochs=20,
                              shuffle=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    curve = model.validation_loss_curve_
    assert len(curve) == 4 and len(set(curve)) == 1
    assert model.best_epoch_ == 1
