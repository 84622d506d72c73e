"""Checking what users pass in: data arrays, hyperparameters, random states.

Everything here runs before any weight is touched, so a mistake in the input
never damages a model.  Errors name the parameter or the offending value.
"""

import math
import numbers
import numpy as np

from csae._params import BY_NAME, HYPERPARAMETERS, MAX_THREADS, Hyperparameters
from csae._threads import default_n_threads

__all__ = [
    "NotFittedError",
    "Hyperparameters",
    "validate_hyperparameters",
    "resolve_dtype",
    "resolve_n_threads",
    "int_param",
    "as_numeric_array",
    "check_data",
    "check_frame_columns",
    "feature_names_of",
    "check_unit_interval",
    "check_values_in_unit_interval",
    "check_within_learned_range",
    "input_scale",
    "check_weight_array",
    "derive_seed",
]

DECODERS = BY_NAME["decoder"].choices
BACKENDS = BY_NAME["backend"].choices
SOLVERS = BY_NAME["solver"].choices
SPARSITY_ESTIMATES = BY_NAME["sparsity_estimate"].choices
_MASK64 = (1 << 64) - 1


class NotFittedError(ValueError, AttributeError):
    """A method that needs a trained model was called on an unfitted one.

    Subclasses both ``ValueError`` and ``AttributeError``, as scikit-learn's
    ``NotFittedError`` does, so ``hasattr(model, "encoder_weights_")`` is
    false before fitting and ``except ValueError`` also catches it.
    """


# --------------------------------------------------------------------------
# Hyperparameters
# --------------------------------------------------------------------------

def _is_int(value):
    # bool is an int in Python, but n_hidden=True is surely a mistake.
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def int_param(name, value, minimum, maximum=None):
    """``value`` as an int in [``minimum``, ``maximum``], or ValueError
    naming ``name``."""
    what = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if not _is_int(value):
        raise ValueError(f"{name} must be an integer {what}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {what}, got {value!r}")
    return int(value)


def _representable(name, value, dtype, *, positive=False, below_one=False):
    """Refuse a hyperparameter that the model dtype cannot hold: it would
    round to 0 or 1 (or overflow), and the engine, which computes in that
    dtype, would silently train another problem than the one asked for.
    ``positive``: must stay a normal number > 0 (sparsity_target's log and
    the learning rate); ``below_one``: must stay < 1 (1 - rho, momentum)."""
    with np.errstate(over="ignore"):
        rounded = float(dtype.type(value))
    info = np.finfo(dtype)
    # Messages start with the name, as every hyperparameter error does (the
    # command line maps it to its option).
    if not math.isfinite(rounded):
        raise ValueError(f"{name} overflows {dtype.name}: {value!r} is above its largest "
                         f"value {float(info.max):.4g}; choose a smaller value or "
                         "dtype='float64'")
    if positive and rounded < float(info.tiny):
        raise ValueError(f"{name} rounds to 0 in {dtype.name}: {value!r} is below its "
                         f"smallest normal value {float(info.tiny):.4g}")
    if below_one and rounded >= 1.0:
        raise ValueError(f"{name} rounds to 1 in {dtype.name}: {value!r}; the largest "
                         f"usable value is {1.0 - float(info.epsneg):.10g}")


def _real_param(name, value, low, high, low_open, high_open, what):
    try:
        v = float(value) if _is_real(value) else math.nan
    except OverflowError:  # an int beyond float range, e.g. 10**400
        v = math.inf
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite real number {what}, got {value!r}")
    below = v <= low if low_open else v < low
    above = v >= high if high_open else v > high
    if below or above:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def _bool_param(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _choice_param(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def resolve_dtype(value):
    """The model dtype (``np.dtype('float32')`` or ``np.dtype('float64')``)
    named by ``value`` ("float32", np.float32, np.dtype("f4"), ...)."""
    # np.dtype(None) is float64: refuse it rather than guess.
    if value is None or isinstance(value, (bool, np.bool_)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}")
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}") from None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}")
    return dtype.newbyteorder("=")


def resolve_n_threads(value):
    """The number of threads for the C engine: ``value``, or when it is
    None the default of ``csae._threads.default_n_threads`` (read now)."""
    if value is None:
        return default_n_threads()
    return int_param("n_threads", value, 1, MAX_THREADS)


def _verbose_param(name, value):
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    return int_param(name, value, 0)


def _seed_param(name, value):
    check_random_state(value)
    return value


# How each kind of table entry (csae._params.Param.kind) is checked; each
# returns the normalised value or raises ValueError naming the parameter.
_CHECKS = {
    "int": lambda p, v: int_param(p.name, v, p.low, p.high),
    "real": lambda p, v: _real_param(p.name, v, p.low, p.high, p.low_open, p.high_open,
                                     p.range_text()),
    "bool": lambda p, v: _bool_param(p.name, v),
    "choice": lambda p, v: _choice_param(p.name, v, p.choices),
    "dtype": lambda p, v: resolve_dtype(v),
    "threads": lambda p, v: resolve_n_threads(v),
    "verbose": lambda p, v: _verbose_param(p.name, v),
    "seed": lambda p, v: _seed_param(p.name, v),
}


def validate_hyperparameters(params):
    """Check every hyperparameter in the dict ``params`` (as returned by
    ``get_params``) by its entry in ``csae._params.HYPERPARAMETERS`` and
    return them normalised as ``Hyperparameters``.

    Raises ValueError naming the first invalid parameter.
    """
    values = {p.name: _CHECKS[p.kind](p, params[p.name]) for p in HYPERPARAMETERS}
    # The engine computes in the model dtype: check the values it will see.
    _check_in_dtype(values, values["dtype"])
    del values["random_state"]
    return Hyperparameters(**values)


def _check_in_dtype(values, dtype):
    """The "real" values of ``values`` whose entries say so, as the engine
    will see them in ``dtype``."""
    for name, value in values.items():
        p = BY_NAME[name]
        if p.in_dtype is None:
            continue
        if p.in_dtype_when is not None and values.get(p.in_dtype_when[0]) != p.in_dtype_when[1]:
            continue
        _representable(p.name, value, dtype, positive="positive" in p.in_dtype,
                       below_one="below_one" in p.in_dtype)


def validate_shared(params, dtype):
    """Check the hyperparameters in the dict ``params`` that another
    estimator shares with SparseAutoencoder (the classifier's minibatch
    fine-tuning: learning_rate, momentum, batch_size, beta_1, ...) by their
    entries in ``csae._params.HYPERPARAMETERS`` (the same ranges and
    messages), and as the engine will see them in ``dtype``; returns them
    normalised.  ValueError names the first invalid one."""
    values = {name: _CHECKS[BY_NAME[name].kind](BY_NAME[name], value)
              for name, value in params.items()}
    _check_in_dtype(values, dtype)
    return values


# --------------------------------------------------------------------------
# Randomness
# --------------------------------------------------------------------------

def check_random_state(random_state):
    """Raise ValueError unless ``random_state`` is None, an int in
    [0, 2**64) or a NumPy Generator/RandomState."""
    if random_state is None or isinstance(random_state,
                                          (np.random.Generator, np.random.RandomState)):
        return
    if not _is_int(random_state) or not 0 <= int(random_state) <= _MASK64:
        raise ValueError("random_state must be None, an integer in [0, 2**64) or a "
                         f"numpy Generator/RandomState, got {random_state!r}")


def derive_seed(random_state):
    """A 64-bit SplitMix64 seed from ``random_state``.

    An int always gives the same seed; it is passed through NumPy's
    SeedSequence so that nearby ints give unrelated streams (SplitMix64
    started at s and at s + gamma would give shifted copies of one stream).
    None draws fresh entropy; a Generator or RandomState is advanced.
    """
    check_random_state(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, _MASK64, dtype=np.uint64, endpoint=True))
    if isinstance(random_state, np.random.RandomState):
        hi, lo = random_state.randint(0, 1 << 32, size=2, dtype=np.uint64)
        return (int(hi) << 32) | int(lo)
    seq = np.random.SeedSequence(None if random_state is None else int(random_state))
    return int(seq.generate_state(1, dtype=np.uint64)[0])


# --------------------------------------------------------------------------
# Data arrays
# --------------------------------------------------------------------------

def _is_dataframe(X):
    # pandas and polars DataFrames, recognised without importing either.
    return hasattr(X, "columns") and hasattr(X, "dtypes") and not isinstance(X, np.ndarray)


def feature_names_of(X):
    """The column names of a DataFrame whose names are all strings, as an
    object array (scikit-learn's ``feature_names_in_``), else None.  Mixed
    string and non-string names raise TypeError, as in scikit-learn."""
    if not _is_dataframe(X):
        return None
    names = np.asarray(list(X.columns), dtype=object)
    if names.size == 0:
        return None
    types = sorted({type(v).__qualname__ for v in names})
    if len(types) > 1 and "str" in types:
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but your input has {types} as feature name / column name types. Convert "
            "them all to strings (X.columns = X.columns.astype(str)) or all to another type.")
    return names if types == ["str"] else None


def check_frame_columns(X, name):
    """Every column of the DataFrame X holds numbers, or ValueError naming
    the first one that does not (dates, text, categories...)."""
    for column, dtype in zip(X.columns, X.dtypes):
        is_numeric = getattr(dtype, "is_numeric", None)  # polars
        if callable(is_numeric):
            numeric = is_numeric() or str(dtype) == "Boolean"
        else:  # pandas and NumPy-like dtypes (nullable Int64 has kind "i")
            numeric = getattr(dtype, "kind", "O") in "biuf"
            if not numeric and getattr(dtype, "kind", None) == "O":
                # An object column may still hold plain numbers.
                numeric = all(_is_real(v) or isinstance(v, (bool, np.bool_))
                              for v in X[column])
        if not numeric:
            raise ValueError(f"{name} column {column!r} is not numeric (dtype {dtype}); "
                             "csae needs numbers: encode or drop that column first")


def as_numeric_array(X, name):
    """``X`` as a NumPy array of real numbers (any real dtype), or TypeError."""
    if X is None:
        raise TypeError(f"{name} must be an array-like of numbers, got None")
    if _is_dataframe(X):
        check_frame_columns(X, name)
    # Sparse matrices would become a 0-d object array; say what to do instead.
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise TypeError(f"{name} is a sparse matrix; sparse input is not supported. "
                        f"Convert it with {name}.toarray()")
    if isinstance(X, (str, bytes, dict)):
        raise TypeError(f"{name} must be an array-like of numbers, got {type(X).__name__}")
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as a 2-D array of numbers: {err}") from None
    kind = arr.dtype.kind
    if kind == "c":
        # This wording is what scikit-learn's checks look for.
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}")
    if kind == "O":
        # Object arrays of plain numbers (from pandas, lists of mixed ints and
        # floats) are converted like scikit-learn does; anything else is refused.
        for item in arr.flat:
            if not _is_real(item) and not isinstance(item, (bool, np.bool_)):
                raise TypeError(f"{name} must contain only real numbers: float() "
                                f"argument must be a string or a real number, not "
                                f"{type(item).__name__!r} (found {item!r:.40})")
        return arr.astype(np.float64)
    if kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr


def check_data(X, dtype, *, name="X", n_features=None, estimator="SparseAutoencoder",
               expected_name="features"):
    """Validate a 2-D data array and return it C-contiguous in ``dtype``.

    ``X`` itself is never modified: a new array is made whenever a conversion
    is needed, and the result may be ``X`` itself only when it already
    matches (callers must not write to the result).

    Raises TypeError for non-numeric input and ValueError for wrong shapes,
    empty arrays, a wrong number of columns (``n_features``) and NaN/inf.
    """
    arr = as_numeric_array(X, name)
    if arr.ndim != 2:
        hint = (" Reshape your data with X.reshape(-1, 1) for a single feature or "
                "X.reshape(1, -1) for a single sample." if arr.ndim == 1 else "")
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_{expected_name}), "
                         f"got {arr.ndim}-D with shape {arr.shape}.{hint}")
    m, n = arr.shape
    if m == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={arr.shape}) while a "
                         f"minimum of 1 is required: {name} has no rows")
    if n == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a "
                         f"minimum of 1 is required: {name} has no columns")
    if n_features is not None and n != n_features:
        # scikit-learn's wording, which its estimator checks look for.
        raise ValueError(f"{name} has {n} {expected_name}, but {estimator} is expecting "
                         f"{n_features} {expected_name} as input")
    # Check finiteness before the cast: a float64 value too large for float32
    # would otherwise turn into inf and be reported as the user's inf.
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"Input {name} contains NaN or inf; remove or impute them first")
    with np.errstate(over="ignore"):  # reported just below, with advice
        out = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError(f"Input {name} has values too large for {dtype.name} "
                         "(they overflow to inf); rescale the data or use dtype='float64'")
    return out


# Rounding in a user's own scaling (MinMaxScaler gives 1 + 2e-16) is not a
# mistake worth an error; anything further outside [0, 1] is.
UNIT_INTERVAL_SLACK = 1e-6


def check_unit_interval(X):
    """Raise ValueError unless every entry of X lies in [0, 1] (needed by the
    sigmoid decoder, whose outputs cannot leave that range), give or take
    ``UNIT_INTERVAL_SLACK`` for rounding."""
    check_values_in_unit_interval(float(X.min()), float(X.max()))


def check_values_in_unit_interval(low, high):
    """``check_unit_interval`` for data whose smallest and largest values are
    ``low`` and ``high`` (found chunk by chunk or block by block)."""
    if low < -UNIT_INTERVAL_SLACK or high > 1.0 + UNIT_INTERVAL_SLACK:
        raise ValueError(
            f"X has values in [{low:.6g}, {high:.6g}], outside [0, 1], which the sigmoid "
            "decoder (decoder='sigmoid') cannot reconstruct. Rescale X to [0, 1] "
            "(for example with sklearn's MinMaxScaler), pass scale_inputs=True, or use "
            "decoder='linear'")


def check_within_learned_range(low, high, data_min, data_scale):
    """Training data for the sigmoid decoder with ``scale_inputs=True`` and a
    range learned before (``partial_fit`` after the first call, a warm
    start): its per-feature minimum ``low`` and maximum ``high`` (float64,
    raw values) must map into [0, 1] by that range, give or take
    ``UNIT_INTERVAL_SLACK``, since the decoder cannot reconstruct targets
    outside it.  Raises ValueError naming the first feature outside and the
    range learned for it."""
    with np.errstate(all="ignore"):
        scaled_low = (np.asarray(low, dtype=np.float64) - data_min) / data_scale
        scaled_high = (np.asarray(high, dtype=np.float64) - data_min) / data_scale
    outside = np.flatnonzero(~(scaled_low >= -UNIT_INTERVAL_SLACK)
                             | ~(scaled_high <= 1.0 + UNIT_INTERVAL_SLACK))
    if outside.size == 0:
        return
    j = int(outside[0])
    raise ValueError(
        f"X has values outside the input range learned when this model was first "
        f"trained (scale_inputs=True): feature {j} was learned on [{data_min[j]:.6g}, "
        f"{data_min[j] + data_scale[j]:.6g}] and X has [{low[j]:.6g}, {high[j]:.6g}] "
        f"there ({outside.size} feature(s) outside in all), which scale to "
        f"[{scaled_low[j]:.6g}, {scaled_high[j]:.6g}], beyond the [0, 1] the sigmoid "
        "decoder can reconstruct. Call fit on data that covers the whole range (it "
        "learns the range again), use decoder='linear', or scale X yourself with "
        "scale_inputs=False")


def input_scale(data_min, data_max):
    """``scale_inputs``' per-feature scale, ``data_max - data_min`` (float64
    arrays).  Constant features get scale 1, so they map to 0 instead of
    dividing by zero."""
    scale = data_max - data_min
    if not np.isfinite(scale).all():
        raise ValueError("X has a feature whose range (max - min) overflows float64; "
                         "rescale it before fitting")
    scale[scale == 0] = 1.0
    return scale


def check_weight_array(name, value, shape, dtype):
    """A copy of ``value`` as a C-contiguous ``dtype`` array of ``shape``,
    after checking that it is numeric, of that shape and finite."""
    arr = as_numeric_array(value, name)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    with np.errstate(over="ignore"):
        out = np.array(arr, dtype=dtype, order="C", copy=True)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} has values too large for {dtype.name}")
    return out
