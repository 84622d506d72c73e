"""Model files: a ``.npz`` archive that loading can never execute code from.

Layout (format "csae.SparseAutoencoder", version 1), one array per name:

    format              0-d str     "csae.SparseAutoencoder"
    format_version      0-d int64   1
    csae_version        0-d str     the csae version that wrote the file
    hyperparameters     (1,) str    JSON object: every constructor parameter
    encoder_weights     (h, n)      W  \\
    encoder_bias        (h,)        b   |  in the model dtype
    decoder_weights     (n, h)      W'  |
    decoder_bias        (n,)        b' /
    loss_curve          (k,) float64     objective per epoch
    n_iter              0-d int64        k
    rng_state           0-d uint64       optional: SplitMix64 state
    data_min, data_scale (n,) float64    optional: learned input range
    velocity_<weight>   like weight      optional: momentum velocities

Files are written with ``np.savez`` to a temporary file in the target folder,
fsynced and renamed over the target, and read with
``np.load(allow_pickle=False)``; every field is checked before a model is
built, and anything wrong raises ``ValueError``.
"""

import json
import os
import tempfile

import numpy as np

from csae._estimator import WEIGHT_NAMES, SparseAutoencoder
from csae._validation import validate_hyperparameters
from csae._version import __version__

__all__ = ["save", "load", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "csae.SparseAutoencoder"
FORMAT_VERSION = 1

_VELOCITY_NAMES = tuple("velocity_" + name for name in WEIGHT_NAMES)
_REQUIRED = frozenset(("format", "format_version", "csae_version", "hyperparameters",
                       "loss_curve", "n_iter") + WEIGHT_NAMES)
_OPTIONAL = frozenset(("rng_state", "data_min", "data_scale") + _VELOCITY_NAMES)


class _FileError(ValueError):
    """A reason the file is not a valid model file (wrapped by ``load``)."""


# --------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------

def _json_hyperparameters(model):
    """The constructor parameters as JSON-safe values (checked, since a file
    that ``load`` would refuse must not be written)."""
    hp = validate_hyperparameters(model.get_params())
    random_state = model.random_state
    # A Generator/RandomState cannot be stored; the saved rng_state keeps
    # continued training reproducible anyway.
    if not (random_state is None or isinstance(random_state, (int, np.integer))):
        random_state = None
    return {
        "n_hidden": hp.n_hidden, "sparsity_target": hp.sparsity_target,
        "sparsity_weight": hp.sparsity_weight, "weight_decay": hp.weight_decay,
        "decoder": hp.decoder, "learning_rate": hp.learning_rate,
        "momentum": hp.momentum, "batch_size": hp.batch_size,
        "max_epochs": hp.max_epochs, "shuffle": hp.shuffle,
        "scale_inputs": hp.scale_inputs, "dtype": hp.dtype.name,
        "backend": hp.backend,
        "random_state": None if random_state is None else int(random_state),
        "verbose": (bool(model.verbose) if isinstance(model.verbose, (bool, np.bool_))
                    else hp.verbose),
        "n_threads": None if model.n_threads is None else hp.n_threads,
    }, hp.dtype


def _model_arrays(model):
    """Everything ``save`` writes, as a dict of arrays."""
    model._check_fitted()
    hyper, dtype = _json_hyperparameters(model)
    h = model._params[0].shape[0]
    if hyper["n_hidden"] != h:
        # load checks the weights against n_hidden; refuse to write a file
        # it would reject.
        raise ValueError(f"n_hidden is {hyper['n_hidden']} but the weights have {h} "
                         "hidden units (n_hidden was changed after fitting); refit, or "
                         f"set n_hidden={h} before saving")
    arrays = {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "csae_version": np.array(__version__),
        "hyperparameters": np.array([json.dumps(hyper, sort_keys=True)]),
        "loss_curve": np.asarray(model._loss_curve, dtype=np.float64).reshape(-1),
        "n_iter": np.array(len(model._loss_curve), dtype=np.int64),
    }
    for name, array in zip(WEIGHT_NAMES, model._params):
        arrays[name] = np.ascontiguousarray(array, dtype=dtype)
    if model._velocity is not None:
        for name, array in zip(_VELOCITY_NAMES, model._velocity):
            arrays[name] = np.ascontiguousarray(array, dtype=dtype)
    if model._rng_state is not None:
        arrays["rng_state"] = np.array(model._rng_state, dtype=np.uint64)
    if model._data_min is not None:
        arrays["data_min"] = np.asarray(model._data_min, dtype=np.float64)
        arrays["data_scale"] = np.asarray(model._data_scale, dtype=np.float64)
    return arrays


def _file_mode():
    """Permissions for a new file under the current umask (mkstemp's 0600
    would make saved models private to their owner)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def save(model, path):
    """Write ``model`` to ``path`` atomically (see the module docstring).

    Parameters
    ----------
    model : SparseAutoencoder
        A fitted model.
    path : str or os.PathLike
        Target file, written exactly as named.
    """
    arrays = _model_arrays(model)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        # Never leave the temporary file behind, whatever went wrong.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # Make the rename itself durable (POSIX only; Windows cannot open folders).
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

def _read_header(zf, member):
    """Check one ``.npy`` member's header before NumPy reads it: a known
    format version, no Python objects (pickle) and no more data declared
    than the member holds (a crafted shape must not allocate terabytes)."""
    info = zf.getinfo(member)
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise _FileError(f"{member} uses .npy format version {version}, "
                             "which csae never writes")
    if dtype.hasobject:
        raise _FileError(f"{member} holds Python objects (pickled data); refused")
    if int(np.prod(shape, dtype=object)) * dtype.itemsize > info.file_size:
        raise _FileError(f"{member} declares shape {shape}, more data than it holds")


def _read_arrays(fh):
    """All arrays of the archive open in ``fh``, as a dict."""
    data = np.load(fh, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise _FileError("it is a single .npy array, not an .npz archive")
    with data:
        names = set(data.files)
        missing = sorted(_REQUIRED - names)
        if missing:
            raise _FileError(f"fields missing: {', '.join(missing)}")
        unknown = sorted(names - _REQUIRED - _OPTIONAL)
        if unknown:
            raise _FileError(f"unknown fields: {', '.join(unknown)}")
        arrays = {}
        for name in names:
            _read_header(data.zip, name + ".npy")
            arrays[name] = data[name]
    return arrays


def _string(arrays, name, shape=()):
    value = arrays[name]
    if not isinstance(value, np.ndarray) or value.dtype.kind != "U" or value.shape != shape:
        raise _FileError(f"{name} must be a string array of shape {shape}")
    return str(value.reshape(-1)[0]) if value.size else ""


def _integer(arrays, name, kinds="iu"):
    value = arrays[name]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds or value.shape != ():
        raise _FileError(f"{name} must be a 0-d integer array")
    return int(value)


def _float_array(arrays, name, shape, dtype):
    value = arrays[name]
    if not isinstance(value, np.ndarray) or value.dtype != dtype:
        raise _FileError(f"{name} must have dtype {dtype.name}, got "
                         f"{getattr(value, 'dtype', type(value).__name__)}")
    if value.shape != tuple(shape):
        raise _FileError(f"{name} must have shape {tuple(shape)}, got {value.shape}")
    if not np.isfinite(value).all():
        raise _FileError(f"{name} contains NaN or inf")
    return np.array(value, dtype=dtype, order="C", copy=True)


def _hyperparameters(arrays, cls):
    text = _string(arrays, "hyperparameters", shape=(1,))
    try:
        hyper = json.loads(text)
    except ValueError as err:
        raise _FileError(f"hyperparameters are not valid JSON ({err})") from None
    expected = set(cls._get_param_names())
    if not isinstance(hyper, dict) or set(hyper) != expected:
        got = sorted(hyper) if isinstance(hyper, dict) else type(hyper).__name__
        raise _FileError(f"hyperparameters must name exactly {sorted(expected)}, got {got}")
    try:
        hp = validate_hyperparameters(hyper)
    except ValueError as err:
        raise _FileError(f"invalid hyperparameter: {err}") from None
    return hyper, hp


def _build_model(arrays, cls):
    """A model from the arrays of a file, after checking every one."""
    if _string(arrays, "format") != FORMAT_NAME:
        raise _FileError(f"format is not {FORMAT_NAME!r}")
    version = _integer(arrays, "format_version")
    if version > FORMAT_VERSION:
        raise _FileError(f"it was written by a newer csae (format version {version}; "
                         f"this csae {__version__} reads up to {FORMAT_VERSION}); "
                         "upgrade csae to load it")
    if version < 1:
        raise _FileError(f"format_version {version} is not a valid version")
    _string(arrays, "csae_version")
    hyper, hp = _hyperparameters(arrays, cls)

    W = arrays["encoder_weights"]
    if not isinstance(W, np.ndarray) or W.ndim != 2 or W.shape[1] < 1:
        raise _FileError("encoder_weights must be a 2-D array with at least one column")
    h, n = hp.n_hidden, W.shape[1]
    shapes = ((h, n), (h,), (n, h), (n,))
    params = tuple(_float_array(arrays, name, shape, hp.dtype)
                   for name, shape in zip(WEIGHT_NAMES, shapes))

    present = [name in arrays for name in _VELOCITY_NAMES]
    if any(present) and not all(present):
        raise _FileError("velocity fields must be all present or all absent")
    velocity = (tuple(_float_array(arrays, name, shape, hp.dtype)
                      for name, shape in zip(_VELOCITY_NAMES, shapes))
                if all(present) else None)

    curve = arrays["loss_curve"]
    if not isinstance(curve, np.ndarray) or curve.ndim != 1:
        raise _FileError("loss_curve must be a 1-D array")
    curve = _float_array(arrays, "loss_curve", curve.shape, np.dtype(np.float64))
    if _integer(arrays, "n_iter") != curve.size:
        raise _FileError(f"n_iter ({int(arrays['n_iter'])}) differs from the length of "
                         f"loss_curve ({curve.size})")

    rng_state = _integer(arrays, "rng_state", kinds="u") if "rng_state" in arrays else None
    if rng_state is not None and arrays["rng_state"].dtype != np.uint64:
        raise _FileError("rng_state must be a uint64")

    if ("data_min" in arrays) != ("data_scale" in arrays):
        raise _FileError("data_min and data_scale must be both present or both absent")
    data_min = data_scale = None
    if "data_min" in arrays:
        data_min = _float_array(arrays, "data_min", (n,), np.dtype(np.float64))
        data_scale = _float_array(arrays, "data_scale", (n,), np.dtype(np.float64))
        if not (data_scale > 0).all():
            raise _FileError("data_scale must be positive")

    model = cls(**hyper)
    model._params, model._velocity, model._rng_state = params, velocity, rng_state
    model._data_min, model._data_scale = data_min, data_scale
    model._loss_curve = [float(v) for v in curve]
    return model


def load(path, cls=None):
    """Read a model written by ``save``.

    Parameters
    ----------
    path : str or os.PathLike
    cls : type, optional
        Class to build (``SparseAutoencoder`` or a subclass).

    Returns
    -------
    model : SparseAutoencoder

    Raises
    ------
    ValueError
        The file is not a valid csae model file: truncated, corrupted,
        hand-crafted, holding pickled objects, or from a newer csae.
    OSError
        The file cannot be opened (missing, a folder, no permission).
    """
    cls = SparseAutoencoder if cls is None else cls
    # Opening errors (missing file, ...) stay OSError: they are not about
    # the file's content.
    with open(path, "rb") as fh:
        try:
            arrays = _read_arrays(fh)
            return _build_model(arrays, cls)
        except _FileError as err:
            raise ValueError(f"{os.fspath(path)!s} is not a valid csae model file: "
                             f"{err}") from None
        except Exception as err:
            # Truncated or bit-flipped archives fail inside zipfile/NumPy in
            # many ways (BadZipFile, EOFError, OSError, NotImplementedError,
            # MemoryError, ...): all mean the same thing here.
            raise ValueError(f"{os.fspath(path)!s} is not a valid csae model file "
                             f"(corrupted or truncated: {type(err).__name__}: {err})"
                             ) from err
