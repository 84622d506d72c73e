"""Model files: a ``.npz`` archive that loading can never execute code from.

Layout (format "csae.SparseAutoencoder", version 4), one array per name:

    format              0-d str     "csae.SparseAutoencoder"
    format_version      0-d int64   4
    csae_version        0-d str     the csae version that wrote the file
    hyperparameters     (1,) str    JSON object: every constructor parameter
                                    (version 1 lacks solver, max_fun and tol;
                                    version 2 lacks beta_1, beta_2, epsilon,
                                    warm_start, early_stopping,
                                    validation_fraction, n_iter_no_change,
                                    sparsity_estimate, sparsity_smoothing;
                                    such files load with their defaults)
    encoder_weights     (h, n)      W  \\
    encoder_bias        (h,)        b   |  in the model dtype
    decoder_weights     (n, h)      W'  |
    decoder_bias        (n,)        b' /
    loss_curve          (k,) float64     objective per epoch
    n_iter              0-d int64        k
    rng_state           0-d uint64       optional: SplitMix64 state
    data_min, data_scale (n,) float64    optional: learned input range
    velocity_<weight>   like weight      optional: momentum velocities
    adam_m_<weight>     like weight      optional (version 3): Adam first moments
    adam_v_<weight>     like weight      optional (version 3): Adam second moments
    adam_t              0-d int64        with the moments: Adam steps taken
    rho_running         (h,) model dtype optional (version 3): running estimate q
    running_batches     0-d int64        with rho_running: minibatches q has seen
    stop_reason         0-d str          optional (version 4): why the last training
                                         call stopped (stop_reason_, one of
                                         csae.solvers.STOP_REASONS); absent when
                                         the model has none, and in older files,
                                         which load with stop_reason_ None

Files are written with ``np.savez`` (uncompressed members) through
``csae._files.write_atomically``: a temporary file in the target folder,
fsynced and renamed over the target, following symbolic links, keeping the
old file's permission bits, refusing anything but a regular file.

Loading treats the file as untrusted input, and reads it with the engine's
reader (src_c/model_file.c, through csae._engine.read_model_file): the C API
and ``load`` accept exactly the same files, with the same values, in memory
the model's size. When that reader refuses a file, the Python reader below,
which applies the same rules field by field, says why (and reads the
deflated or Fortran-ordered members the engine's reader does not). No
pickle is ever read, and no
member is inflated before its size is known to be what the fields before it
imply: the format strings and hyperparameter record are a few KB at most,
the weights, velocities and input range exactly as large as ``n_hidden`` and
the weights' width make them, the loss curve exactly ``n_iter`` values, and
a deflated member may expand at most 32 times. Every field is checked before
a model is built; anything wrong raises ``ValueError`` whose message quotes
at most a short prefix of what the file holds.
"""

import errno
import json
import os
import stat
import zipfile

import numpy as np

from csae._files import display_name, file_type_name, write_atomically
from csae._params import ADDED_IN, BY_NAME, RECORD_NAMES
from csae._state import (
    WEIGHT_NAMES,
    ModelState,
    frozen,
    frozen_tuple,
    require_fitted,
)
from csae._validation import validate_hyperparameters
from csae._version import __version__
from csae.solvers import STOP_REASONS, AdamState, MomentumState, solver_state_arrays

try:
    from csae import _engine
except ImportError:  # a build without the engine reads with the Python reader alone
    _engine = None  # type: ignore[assignment]

__all__ = ["save", "load", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "csae.SparseAutoencoder"
FORMAT_VERSION = 4
# Hyperparameters each format version added to the record (from the table,
# csae._params); a file of an older version takes the constructor's defaults
# for them, but solver="sgd", the solver that trained it (the estimator hands
# ``load`` these values: csae._estimator.defaults_for_older_models).
_ADDED_IN = {version: names for version, names in ADDED_IN.items() if version > 1}

_REQUIRED = frozenset(("format", "format_version", "csae_version", "hyperparameters",
                       "loss_curve", "n_iter") + WEIGHT_NAMES)
# The solvers name their state's members (csae.solvers).
_OPTIONAL = frozenset(("rng_state", "data_min", "data_scale") + MomentumState.FILE_NAMES)
# Members a file may hold from this version on.
_OPTIONAL_SINCE = {3: frozenset(AdamState.FILE_NAMES + ("rho_running", "running_batches")),
                   4: frozenset(("stop_reason",))}
_ALL_OPTIONAL = _OPTIONAL.union(*_OPTIONAL_SINCE.values())


class _FileError(ValueError):
    """A reason the file is not a valid model file (wrapped by ``load``)."""


# --------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------

def _record_value(p, raw, hp):
    """What the record holds for the parameter ``p`` given ``raw`` (the
    constructor's value) checked to ``hp``'s: the normalised value, but
    as close to what was passed as JSON can say it."""
    if p.kind == "dtype":
        return getattr(hp, p.name).name
    if p.kind == "seed":
        # A Generator/RandomState cannot be stored; the saved rng_state keeps
        # continued training reproducible anyway.
        return int(raw) if isinstance(raw, (int, np.integer)) else None
    if p.kind == "verbose" and isinstance(raw, (bool, np.bool_)):
        return bool(raw)
    if p.kind == "threads" and raw is None:
        return None
    return getattr(hp, p.name)


def _json_hyperparameters(params):
    """The constructor parameters ``params`` (as ``get_params`` gives them)
    as JSON-safe values (checked, since a file that ``load`` would refuse
    must not be written), named and converted by csae._params' table."""
    hp = validate_hyperparameters(params)
    return ({name: _record_value(BY_NAME[name], params[name], hp) for name in RECORD_NAMES},
            hp.dtype)


def _model_arrays(hyperparameters, state, estimator="SparseAutoencoder", stop_reason=None):
    """Everything ``save`` writes, as a dict of arrays: ``hyperparameters``
    (``get_params()``) and ``state`` (a ``ModelState``) of one snapshot, and
    the model's ``stop_reason_`` (None: not written)."""
    require_fitted(state, estimator)
    if stop_reason is not None and stop_reason not in STOP_REASONS:
        raise ValueError(f"stop_reason must be one of {sorted(STOP_REASONS)} or None, got "
                         f"{stop_reason!r}")
    hyper, dtype = _json_hyperparameters(hyperparameters)
    h = state.params[0].shape[0]
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
        "loss_curve": np.asarray(state.loss_curve, dtype=np.float64).reshape(-1),
        "n_iter": np.array(len(state.loss_curve), dtype=np.int64),
    }
    for name, array in zip(WEIGHT_NAMES, state.params):
        arrays[name] = np.ascontiguousarray(array, dtype=dtype)
    # Each solver writes its own state (velocities, Adam's moments).
    arrays.update(solver_state_arrays(state, dtype))
    if state.rho_running is not None:
        arrays["rho_running"] = np.ascontiguousarray(state.rho_running, dtype=dtype)
        arrays["running_batches"] = np.array(state.running_batches, dtype=np.int64)
    if state.rng_state is not None:
        arrays["rng_state"] = np.array(state.rng_state, dtype=np.uint64)
    if state.data_min is not None:
        arrays["data_min"] = np.asarray(state.data_min, dtype=np.float64)
        arrays["data_scale"] = np.asarray(state.data_scale, dtype=np.float64)
    if stop_reason is not None:
        arrays["stop_reason"] = np.array(stop_reason)
    return arrays


def save(path, hyperparameters, state, *, replace=True, estimator="SparseAutoencoder",
         stop_reason=None):
    """Write a model to ``path`` atomically (see ``csae._files``).

    Parameters
    ----------
    path : str, bytes or os.PathLike
        Target file, written exactly as named (a symbolic link is followed
        and its target replaced). Directories, FIFOs, sockets and devices
        are refused with ``ValueError``, a read-only file with
        ``PermissionError``; an existing file keeps its permission bits.
    hyperparameters : dict
        The constructor's parameters (``get_params()``), read together with
        ``state``.
    state : csae._state.ModelState
        The trained state (it must have weights).
    replace : bool, default=True
        When False, refuse (``FileExistsError``) to replace an existing file.
    estimator : str
        The class name an error message gives.
    stop_reason : str or None
        The model's ``stop_reason_`` (one of ``csae.solvers.STOP_REASONS``),
        written when not None.
    """
    write_arrays(_model_arrays(hyperparameters, state, estimator, stop_reason), path,
                 replace=replace)


def write_arrays(arrays, path, *, replace=True):
    """Write the dict ``arrays`` (from ``_model_arrays``) as a model file.

    Split from ``save`` so that a caller holding a consistent snapshot of a
    model's arrays can write them without the model."""
    def write(fh):
        np.savez(fh, **arrays)

    write_atomically(path, write, replace=replace)


# --------------------------------------------------------------------------
# Loading: a file is untrusted input, read within bounds
# --------------------------------------------------------------------------

# What a member may make ``load`` read. The hyperparameter record of today's
# csae is ~400 characters; the weights, velocities, input range and loss
# curve must be exactly as large as n_hidden, the weights' width and n_iter
# make them. Nothing larger is inflated.
_MAX_HEADER = 10_000      # bytes of a .npy header (NumPy's own limit)
_MAX_SCALAR = 16          # bytes of a 0-d number (format_version, n_iter, rng_state)
_MAX_LABEL = 64           # characters of "format" and "csae_version"
_MAX_RECORD = 2048        # characters of the hyperparameter record (JSON)
# csae writes uncompressed members; a deflated one (a file repacked by a zip
# tool) may expand this much, plus a little, and no more: memory stays
# proportional to the file's size, whatever its headers declare.
_MAX_EXPANSION = 32
_EXPANSION_SLACK = 16_384
_QUOTE = 40               # characters of file content quoted in a message
_CHUNK = 1 << 22          # bytes inflated at a time
_READS_WHAT = "csae.load reads files written by SparseAutoencoder.save"


def _short(value, limit=_QUOTE):
    """``str(value)``, cut to ``limit`` characters: file content is quoted,
    never copied whole, into a message."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def _quote(value, limit=_QUOTE):
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


# Leading bytes of what users most often hand to csae.load by mistake.
_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"),
               (b"\x04\x22\x4d\x18", "lz4"), (b"\x28\xb5\x2f\xfd", "zstd"),
               (b"\x78\x01", "zlib"), (b"\x78\x5e", "zlib"), (b"\x78\x9c", "zlib"),
               (b"\x78\xda", "zlib"))


def _describe_foreign(head):
    """What a file that is not a zip archive looks like, and what reads it."""
    if not head:
        return f"the file is empty; {_READS_WHAT}"
    if head.startswith(b"\x93NUMPY"):
        return ("it is a single NumPy array (a .npy file, as np.save writes), not a "
                f"model archive; {_READS_WHAT}")
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return ("it is a Python pickle stream (as pickle.dump or joblib.dump write); "
                f"{_READS_WHAT} (a pickled or joblib model is read with joblib.load or "
                "pickle.load, which run code from the file: only on files you trust)")
    for magic, kind in _COMPRESSED:
        if head.startswith(magic):
            return (f"it is a {kind}-compressed stream (joblib.dump(..., compress=...) "
                    f"writes these); {_READS_WHAT} (a compressed joblib model is read "
                    "with joblib.load, only on files you trust)")
    if head.startswith(b"PK"):
        return "it is a damaged zip archive (corrupted or truncated)"
    return f"it is not a zip archive (it starts with {head[:8]!r}); {_READS_WHAT}"


class _Reader:
    """The members of a model archive, each read within bounds.

    Every member's declared sizes are checked against the file's size when
    the archive is opened; a member's ``.npy`` header (at most
    ``_MAX_HEADER`` bytes inflated) is checked against the shape and dtype
    the caller expects before any of its data is inflated, and then exactly
    the bytes the header promises are read."""

    def __init__(self, fh, file_size, fields=None):
        # fields: (required, known) member names; a SparseAutoencoder's by
        # default (csae._deep_persist passes a deep model's).
        required, known = fields or (_REQUIRED, _REQUIRED | _ALL_OPTIONAL)
        head = fh.read(8)
        fh.seek(0)
        try:
            self.zip = zipfile.ZipFile(fh)
        except zipfile.BadZipFile:
            raise _FileError(_describe_foreign(head)) from None
        self.infos = {}
        unknown = []
        for info in self.zip.infolist():
            name = info.filename
            field = name[:-4] if name.endswith(".npy") else name
            if field in self.infos:
                raise _FileError(f"member {_quote(name)} appears twice")
            if field not in known:
                unknown.append(field)
            self.infos[field] = info
        if "format" not in self.infos:
            held = ", ".join(_short(name) for name in list(self.infos)[:5])
            more = f" and {len(self.infos) - 5} more" if len(self.infos) > 5 else ""
            raise _FileError(f"it is a zip archive (an .npz file?) without csae's fields "
                             f"(it holds: {held or 'nothing'}{more}); {_READS_WHAT}")
        if fields is None and (unknown or _REQUIRED - set(self.infos)):
            _refuse_other_models(self)
        missing = sorted(required - set(self.infos))
        if missing:
            raise _FileError(f"fields missing: {', '.join(missing)}")
        if unknown:
            listed = ", ".join(_short(name) for name in sorted(unknown)[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise _FileError(f"unknown fields: {listed}{more}")
        for field, info in self.infos.items():
            _check_declared_sizes(field, info, file_size)
        _check_unambiguous(fh, file_size, self.zip.infolist())

    def __contains__(self, field):
        return field in self.infos

    def header(self, field):
        """``(shape, dtype)`` from the member's header, nothing more read."""
        with self.zip.open(self.infos[field]) as fh:
            shape, _, dtype, _ = _read_npy_header(fh, field)
        return shape, dtype

    def small(self, field, max_data_bytes):
        """A member nothing else bounds (strings, scalars): refused unless its
        declared size is at most ``max_data_bytes`` plus a header."""
        info = self.infos[field]
        limit = _MAX_HEADER + max_data_bytes
        if info.file_size > limit:
            raise _FileError(f"{field} declares {info.file_size} bytes; a csae file "
                             f"uses at most {limit}")
        return self._read(field)

    def bound(self, field, shape, dtype, why=None):
        """Refuse, from the zip directory alone, a member declaring more bytes
        than ``shape`` and ``dtype`` (and a header) need."""
        info = self.infos[field]
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if info.file_size > nbytes + _MAX_HEADER:
            raise _FileError(f"{field} declares {info.file_size} bytes, but "
                             f"{why or f'shape {tuple(shape)}'} of {dtype.name} needs "
                             f"{nbytes} bytes plus a header; refused without reading it")

    def array(self, field, shape, dtype):
        """A member that must have exactly ``shape`` and ``dtype``."""
        self.bound(field, shape, dtype)
        return self._read(field, shape, dtype)

    def _read(self, field, shape=None, dtype=None):
        info = self.infos[field]
        with self.zip.open(info) as fh:
            got_shape, fortran, got_dtype, header_bytes = _read_npy_header(fh, field)
            if dtype is not None and got_dtype != dtype:
                raise _FileError(f"{field} must have dtype {dtype.name}, got "
                                 f"{_short(got_dtype.str)}")
            if shape is not None and got_shape != tuple(shape):
                raise _FileError(f"{field} must have shape {tuple(shape)}, got "
                                 f"{_short(got_shape)}")
            count = int(np.prod(got_shape, dtype=object))
            nbytes = count * got_dtype.itemsize
            if header_bytes + nbytes != info.file_size:
                raise _FileError(f"{field} declares shape {_short(got_shape)} "
                                 f"({nbytes} bytes) but holds "
                                 f"{info.file_size - header_bytes} bytes")
            array = np.empty(count, dtype=got_dtype)
            if nbytes:
                _read_exactly(fh, memoryview(array.view(np.uint8)), field)
            if fh.read(1):  # also makes zipfile check the CRC
                raise _FileError(f"{field} holds more data than its header declares")
        if fortran and len(got_shape) > 1:
            return array.reshape(got_shape[::-1]).transpose()
        return array.reshape(got_shape)


# Formats of the other models' files (csae/_deep_persist.py).
DEEP_FORMATS = ("csae.StackedEncoder", "csae.SparseAutoencoderClassifier")


def format_of(reader):
    """The text of ``reader``'s format member, or None when it has none that
    is a short string (read within bounds)."""
    if "format" not in reader:
        return None
    try:
        value = reader.small("format", 4 * _MAX_LABEL)
    except Exception:  # damaged: the caller's checks explain it
        return None
    return str(value) if value.dtype.kind == "U" and value.shape == () else None


def _refuse_other_models(reader):
    """A deep model's file given to SparseAutoencoder's reader: say so."""
    name = format_of(reader)
    if name in DEEP_FORMATS:
        raise _FileError(f"it holds a {name.split('.')[1]} (format {name!r}), not a "
                         "SparseAutoencoder; load it with csae.load")


_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_LOCATOR64 = b"PK\x06\x07"
_LOCAL = b"PK\x03\x04"


def _check_unambiguous(fh, file_size, infos):
    """Refuse the zip layouts on which zip readers disagree, so that this
    loader and the C one (src_c/npz.c, which applies the same rules) always
    read one model from one file: the end record must be the file's last 22
    bytes (no archive comment: zipfile takes the last signature in a comment,
    others the record whose comment ends the file); a zip64 end record must
    sit right before its locator, where the locator points (zipfile reads it
    there whatever the locator says); the directory must end where the end
    records begin; each local header must say what its directory entry says
    (name, flags, method, CRC-32 and sizes), and no two members may share
    bytes."""
    fh.seek(file_size - 22)
    end = fh.read(22)
    if len(end) != 22 or end[:4] != _EOCD or int.from_bytes(end[20:22], "little"):
        raise _FileError("its zip end record is not the file's last 22 bytes (an archive "
                         "comment or data after the archive; csae writes neither)")
    entries = int.from_bytes(end[10:12], "little")
    cd_size = int.from_bytes(end[12:16], "little")
    cd_offset = int.from_bytes(end[16:20], "little")
    records = file_size - 22
    if records >= 20:
        fh.seek(records - 20)
        locator = fh.read(20)
        if locator[:4] == _LOCATOR64:
            at = records - 20 - 56
            if at < 0 or int.from_bytes(locator[8:16], "little") != at:
                raise _FileError("its zip64 end record is not where its locator points")
            fh.seek(at)
            rec = fh.read(56)
            if rec[:4] != _EOCD64 or int.from_bytes(rec[4:12], "little") != 44:
                raise _FileError("its zip64 end record is not where its locator points")
            entries = int.from_bytes(rec[32:40], "little")
            cd_size = int.from_bytes(rec[40:48], "little")
            cd_offset = int.from_bytes(rec[48:56], "little")
            records = at
    if cd_offset + cd_size != records or entries != len(infos):
        raise _FileError("its zip directory does not end where the end records begin")
    spans = []
    for info in infos:
        fh.seek(info.header_offset)
        local = fh.read(30)
        name = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
        if len(local) != 30 or local[:4] != _LOCAL:
            raise _FileError(f"member {_quote(info.filename)} has no local header")
        nlen = int.from_bytes(local[26:28], "little")
        xlen = int.from_bytes(local[28:30], "little")
        extra = fh.read(nlen + xlen)
        flags = int.from_bytes(local[6:8], "little")
        method = int.from_bytes(local[8:10], "little")
        same = extra[:nlen] == name and flags == info.flag_bits and method == info.compress_type
        if same and not flags & 0x08:
            crc = int.from_bytes(local[14:18], "little")
            csize = int.from_bytes(local[18:22], "little")
            usize = int.from_bytes(local[22:26], "little")
            sizes = _local_zip64_sizes(extra[nlen:], usize, csize)
            same = crc == info.CRC and sizes == (info.file_size, info.compress_size)
        if not same:
            raise _FileError(f"the local header of member {_quote(info.filename)} differs "
                             "from its directory entry")
        spans.append((info.header_offset, info.header_offset + 30 + nlen + xlen
                      + info.compress_size))
    spans.sort()
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        if start < stop:
            raise _FileError("two members of the zip archive overlap")
    if spans and spans[-1][1] > cd_offset:
        raise _FileError("a member of the zip archive overlaps its directory")


def _local_zip64_sizes(extra, usize, csize):
    """(usize, csize) of a local header, those stored as 0xFFFFFFFF taken
    from its zip64 extra field (None if it has none)."""
    i = 0
    while i + 4 <= len(extra):
        kind = int.from_bytes(extra[i:i + 2], "little")
        n = int.from_bytes(extra[i + 2:i + 4], "little")
        if kind == 1:
            field = extra[i + 4:i + 4 + n]
            values = []
            for value in (usize, csize):
                if value == 0xFFFFFFFF:
                    if len(field) < 8:
                        return None
                    value, field = int.from_bytes(field[:8], "little"), field[8:]
                values.append(value)
            return tuple(values)
        i += 4 + n
    if 0xFFFFFFFF in (usize, csize):
        return None
    return usize, csize


def _check_declared_sizes(field, info, file_size):
    """A member's sizes from the zip directory, checked before it is opened:
    no member larger than the file, and no inflation beyond _MAX_EXPANSION
    (a compression bomb is refused without inflating a byte of it)."""
    if info.compress_size > file_size:
        raise _FileError(f"{field} claims {info.compress_size} bytes in a file of "
                         f"{file_size}")
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise _FileError(f"{field} is stored uncompressed but declares "
                             f"{info.file_size} bytes in {info.compress_size}")
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > _MAX_EXPANSION * info.compress_size + _EXPANSION_SLACK:
            raise _FileError(f"{field} would inflate from {info.compress_size} to "
                             f"{info.file_size} bytes (a compression bomb?); csae "
                             "writes uncompressed files and refuses members that "
                             f"expand more than {_MAX_EXPANSION} times")
    else:
        raise _FileError(f"{field} uses zip compression method {info.compress_type}, "
                         "which csae never writes")


def _read_npy_header(fh, field):
    """``(shape, fortran_order, dtype, header_bytes)`` of one ``.npy``
    member: a known format version, no Python objects (pickle), and a
    header of at most _MAX_HEADER bytes."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        read = np.lib.format.read_array_header_1_0
    elif version == (2, 0):
        read = np.lib.format.read_array_header_2_0
    else:
        raise _FileError(f"{field} uses .npy format version {_short(version)}, "
                         "which csae never writes")
    try:
        shape, fortran, dtype = read(fh, max_header_size=_MAX_HEADER)
    except ValueError as err:
        raise _FileError(f"{field} has an invalid .npy header ({_short(err, 80)})") from None
    if dtype.hasobject:
        raise _FileError(f"{field} holds Python objects (pickled data); refused")
    return shape, fortran, dtype, fh.tell()


def _read_exactly(fh, view, field):
    """Fill ``view`` from ``fh``, a bounded chunk at a time."""
    done = 0
    while done < len(view):
        got = fh.readinto(view[done:done + _CHUNK])
        if not got:
            raise _FileError(f"{field} is truncated")
        done += got


def _past_unicode(value):
    """Whether a numpy str array holds a value past U+10FFFF: numpy stores
    any 32-bit value as a character, but none of those is one (C's reader
    refuses them too, in a stored member or a deflated one)."""
    return bool(value.size) and bool(
        (value.reshape(-1).view(value.dtype.str[0] + "u4") > 0x10FFFF).any())


def _string(value, name, shape=()):
    if value.dtype.kind != "U" or value.shape != shape:
        raise _FileError(f"{name} must be a string array of shape {shape}")
    if _past_unicode(value):
        raise _FileError(f"{name} holds a code point past U+10FFFF (not Unicode text)")
    return str(value.reshape(-1)[0]) if value.size else ""


def _integer(value, name, kinds="iu"):
    if value.dtype.kind not in kinds or value.shape != ():
        raise _FileError(f"{name} must be a 0-d integer array")
    return int(value)


def _finite(value, name):
    if not np.isfinite(value).all():
        raise _FileError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(value)


def _hyperparameters(reader, defaults, version):
    value = reader.small("hyperparameters", 4 * _MAX_RECORD)
    return _parse_record(_string(value, "hyperparameters", shape=(1,)), defaults, version)


def _parse_record(text, defaults, version):
    """``(hyper, hp)``: the constructor's arguments the record ``text`` of a
    format ``version`` file gives, and them validated.  ``defaults`` names
    every constructor parameter, with the value a file written before it
    existed means by it."""
    if len(text) > _MAX_RECORD:
        raise _FileError(f"the hyperparameter record holds {len(text)} characters; "
                         f"a csae file uses at most {_MAX_RECORD}")
    # csae writes plain ASCII JSON: no escape sequences, each key once. The
    # C reader (src_c/model_file.c) reads no more than that, and the two
    # must agree on every record: "\u0061dam" and a key given twice (which
    # json.loads would settle silently, the last one winning) are refused.
    if "\\" in text:
        raise _FileError("hyperparameters hold an escape sequence (\\), which csae never "
                         "writes")
    try:
        hyper = json.loads(text, object_pairs_hook=_unique_keys)
    except _FileError:
        raise
    except ValueError as err:
        raise _FileError(f"hyperparameters are not valid JSON ({_short(err, 80)})") from None
    later = {name for v, names in _ADDED_IN.items() if v > version for name in names}
    expected = set(defaults) - later
    if not isinstance(hyper, dict):
        raise _FileError("hyperparameters must be a JSON object naming the constructor's "
                         f"parameters, got a JSON {type(hyper).__name__}")
    if set(hyper) != expected:
        missing = ", ".join(sorted(expected - set(hyper))) or "none"
        unexpected = sorted(set(hyper) - expected)
        listed = ", ".join(_quote(k) for k in unexpected[:3]) or "none"
        more = f" and {len(unexpected) - 3} more" if len(unexpected) > 3 else ""
        raise _FileError("hyperparameters must name exactly the constructor's "
                         f"parameters; missing: {_short(missing, 300)}; unexpected: "
                         f"{listed}{more}")
    # save writes the dtype's name; the constructor also takes "f8",
    # "double", ... but a file naming it so is not one csae wrote (and the C
    # reader knows the two names only).
    if hyper["dtype"] not in ("float32", "float64"):
        raise _FileError("invalid hyperparameter: dtype must be 'float32' or 'float64', "
                         f"got {_short(repr(hyper['dtype']), 60)}")
    hyper = {**hyper, **{name: defaults[name] for name in later}}
    try:
        hp = validate_hyperparameters(hyper)
    except ValueError as err:
        raise _FileError(f"invalid hyperparameter: {_short(err, 200)}") from None
    return hyper, hp


def _unique_keys(pairs):
    """A JSON object as a dict, refusing a key given twice."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise _FileError(f"hyperparameters name {_quote(key)} twice")
        result[key] = value
    return result


def _build_model(reader, defaults):
    """``(hyperparameters, state)`` from the members of a file, after
    checking every one (each read only once the ones before it have said
    how large it may be)."""
    label = 4 * _MAX_LABEL
    if _string(reader.small("format", label), "format") != FORMAT_NAME:
        raise _FileError(f"format is not {FORMAT_NAME!r}")
    version = _integer(reader.small("format_version", _MAX_SCALAR), "format_version")
    if version > FORMAT_VERSION:
        raise _FileError(f"it was written by a newer csae (format version {version}; "
                         f"this csae {__version__} reads up to {FORMAT_VERSION}); "
                         "upgrade csae to load it")
    if version < 1:
        raise _FileError(f"format_version {version} is not a valid version")
    _string(reader.small("csae_version", label), "csae_version")
    hyper, hp = _hyperparameters(reader, defaults, version)

    shape, _ = reader.header("encoder_weights")
    if len(shape) != 2 or shape[1] < 1:
        raise _FileError("encoder_weights must be a 2-D array with at least one column")
    h, n = hp.n_hidden, shape[1]
    shapes = ((h, n), (h,), (n, h), (n,))
    params = tuple(_finite(reader.array(name, s, hp.dtype), name)
                   for name, s in zip(WEIGHT_NAMES, shapes))

    source = StateSource(reader, hp.dtype)
    momentum = MomentumState.read(source, shapes)

    curve, rng_state, data_min, data_scale = _read_history(reader, n)
    adam, rho_running, running_batches = _read_solver_state(reader, source, version, shapes,
                                                            hp.dtype)
    stop_reason = None
    if "stop_reason" in reader:  # version 4 (_read_solver_state refused it before)
        stop_reason = _stop_reason(_string(reader.small("stop_reason", 4 * _MAX_LABEL),
                                           "stop_reason"))
    return hyper, stop_reason, _state(params=params,
                         velocity=None if momentum is None else momentum.velocity,
                         rng_state=rng_state,
                         adam_m=None if adam is None else adam.m,
                         adam_v=None if adam is None else adam.v,
                         adam_t=0 if adam is None else adam.t,
                         rho_running=rho_running, running_batches=running_batches,
                         data_min=data_min, data_scale=data_scale, loss_curve=curve)


def _stop_reason(text):
    """``text`` as a ``stop_reason_``: one of csae.solvers.STOP_REASONS."""
    if text not in STOP_REASONS:
        raise _FileError(f"stop_reason {_quote(text)} is not one of "
                         f"{', '.join(sorted(STOP_REASONS))}")
    return text


def _read_history(reader, n):
    """``(loss_curve, rng_state, data_min, data_scale)`` of a file whose
    weights have ``n`` features (rng_state and the range may be None)."""
    n_iter = _integer(reader.small("n_iter", _MAX_SCALAR), "n_iter")
    if n_iter < 0:
        raise _FileError(f"n_iter is {n_iter}")
    float64 = np.dtype(np.float64)
    reader.bound("loss_curve", (n_iter,), float64, why=f"n_iter={n_iter} values")
    shape, _ = reader.header("loss_curve")
    if len(shape) != 1:
        raise _FileError("loss_curve must be a 1-D array")
    if shape[0] != n_iter:
        raise _FileError(f"n_iter ({n_iter}) differs from the length of loss_curve "
                         f"({shape[0]})")
    curve = _finite(reader.array("loss_curve", (n_iter,), np.dtype(np.float64)),
                    "loss_curve")

    rng_state = None
    if "rng_state" in reader:
        value = reader.small("rng_state", _MAX_SCALAR)
        if value.dtype != np.uint64 or value.shape != ():
            raise _FileError("rng_state must be a uint64")
        rng_state = int(value)

    if ("data_min" in reader) != ("data_scale" in reader):
        raise _FileError("data_min and data_scale must be both present or both absent")
    data_min = data_scale = None
    if "data_min" in reader:
        data_min = _finite(reader.array("data_min", (n,), np.dtype(np.float64)), "data_min")
        data_scale = _finite(reader.array("data_scale", (n,), np.dtype(np.float64)),
                             "data_scale")
        if not (data_scale > 0).all():
            raise _FileError("data_scale must be positive")
    return curve, rng_state, data_min, data_scale


def _read_solver_state(reader, source, version, shapes, dtype):
    """``(AdamState or None, rho_running, running_batches)`` of a file of
    format ``version`` whose weights have ``shapes`` (each optional)."""
    h = shapes[1][0]
    rho_running, running_batches = None, 0
    newer = sorted(f for v, fields in _OPTIONAL_SINCE.items() if v > version
                   for f in fields if f in reader)
    if newer:
        raise _FileError(f"{', '.join(newer)} appear in a format version {version} file, "
                         "which has no such fields")
    adam = AdamState.read(source, shapes)
    if ("rho_running" in reader) != ("running_batches" in reader):
        raise _FileError("rho_running and running_batches must be both present or both "
                         "absent")
    if "rho_running" in reader:
        rho_running = _finite(reader.array("rho_running", (h,), dtype), "rho_running")
        if ((rho_running < 0) | (rho_running > 1)).any():
            raise _FileError("rho_running (mean activations) must lie in [0, 1]")
        running_batches = _integer(reader.small("running_batches", _MAX_SCALAR),
                                   "running_batches")
        if running_batches < 0:
            raise _FileError(f"running_batches is {running_batches}")
    return adam, rho_running, running_batches


class StateSource:
    """A solver state's access to a model file's members (``read`` of
    ``MomentumState``, ``AdamState``): each array checked as every member
    is (shape, the model's dtype, finite), each count a non-negative
    integer, and every refusal a reason the file is invalid."""

    def __init__(self, reader, dtype):
        self.reader, self.dtype = reader, dtype

    def all_or_none(self, names, message):
        """True when the file holds all of ``names``, False when none;
        refused with ``message`` when only some."""
        present = [name in self.reader for name in names]
        if any(present) and not all(present):
            raise _FileError(message)
        return all(present)

    def array(self, name, shape):
        return _finite(self.reader.array(name, shape, self.dtype), name)

    def count(self, name):
        value = _integer(self.reader.small(name, _MAX_SCALAR), name)
        if value < 0:
            raise _FileError(f"{name} is {value}")
        return value

    def refuse(self, message):
        raise _FileError(message)


def _state(*, params, velocity, rng_state, adam_m, adam_v, adam_t, rho_running,
           running_batches, data_min, data_scale, loss_curve):
    """The ``ModelState`` a file's fields make (its arrays frozen)."""
    def optional(array):
        return None if array is None else frozen(array)
    return ModelState(params=frozen_tuple(params), velocity=frozen_tuple(velocity),
                      rng_state=None if rng_state is None else int(rng_state),
                      data_min=optional(data_min), data_scale=optional(data_scale),
                      loss_curve=tuple(float(x) for x in loss_curve.tolist()),
                      adam_m=frozen_tuple(adam_m), adam_v=frozen_tuple(adam_v),
                      adam_t=int(adam_t), rho_running=optional(rho_running),
                      running_batches=int(running_batches))


def _model_from_fields(fields, defaults):
    """``(hyperparameters, state)`` from what the C reader read
    (csae._engine.read_model_file): every rule is already checked there but
    the constructor's own, which the record goes through again here."""
    hyper, _ = _parse_record(fields["record"], defaults, fields["version"])
    stop_reason = (None if fields["stop_reason"] is None
                   else _stop_reason(fields["stop_reason"]))
    return hyper, stop_reason, _state(params=fields["params"], velocity=fields["velocity"],
                         rng_state=fields["rng_state"], adam_m=fields["adam_m"],
                         adam_v=fields["adam_v"], adam_t=fields["adam_t"],
                         rho_running=fields["rho_running"],
                         running_batches=fields["running_batches"],
                         data_min=fields["data_min"], data_scale=fields["data_scale"],
                         loss_curve=fields["loss_curve"])


# More members than this in the zip directory is no csae file (whatever the
# format version; src_c/npz.h's CSAE_NPZ_MAX_ENTRIES is the same bound); the
# explaining reader below is not run on it, since zipfile builds an object
# per entry before anything can be refused.
_MAX_MEMBERS = 64
_MAX_DIRECTORY = 1 << 20
# A deep model's file has members per layer (src_c/model_file.c's
# DEEP_MAX_ENTRIES): a directory this long is read far enough to say what
# the file holds.
MAX_DEEP_MEMBERS = 256


def _check_directory_size(fh, size, limit=MAX_DEEP_MEMBERS):
    """Refuse, from the zip end records alone, a directory too large to be a
    model's: the end record zipfile would take (the last signature in the
    final 64 KiB), and the zip64 record it would read."""
    start = max(0, size - 22 - (1 << 16))
    fh.seek(start)
    tail = fh.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return  # not a zip archive: zipfile explains what it is
    entries = int.from_bytes(tail[at + 10:at + 12], "little")
    cd_size = int.from_bytes(tail[at + 12:at + 16], "little")
    eocd = start + at
    if eocd >= 76:
        fh.seek(eocd - 76)
        records = fh.read(76)
        if records[56:60] == _LOCATOR64 and records[:4] == _EOCD64:
            entries = int.from_bytes(records[32:40], "little")
            cd_size = int.from_bytes(records[40:48], "little")
    if entries > limit or cd_size > _MAX_DIRECTORY:
        raise _FileError(f"its zip directory lists {entries} members in {cd_size} bytes; "
                         f"a csae model file has at most {limit} members")


def _open_regular(path, name):
    """Open ``path`` for reading, refusing what is not a regular file
    (O_NONBLOCK: opening a FIFO must not wait for a writer)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", name)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{name} is not a valid csae model file: it is "
                             f"{file_type_name(st.st_mode)}, not a regular file; "
                             f"{_READS_WHAT}")
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def load(path, defaults):
    """Read a model written by ``save``.

    Parameters
    ----------
    path : str, bytes or os.PathLike
    defaults : dict
        Every constructor parameter, with the value a file written before
        that parameter existed means by it (the estimator gives these:
        ``csae._estimator.defaults_for_older_models``).

    Returns
    -------
    hyperparameters : dict
        The constructor's arguments.
    stop_reason : str or None
        The model's ``stop_reason_`` (None in files before version 4, and
        when the model had none).
    state : csae._state.ModelState
        The trained state, which the estimator publishes.

    Raises
    ------
    ValueError
        The file is not a valid csae model file: truncated, corrupted,
        hand-crafted, holding pickled objects, another kind of file (a
        pickle or joblib stream, a plain ``.npy``, another ``.npz``), not a
        regular file, or from a newer csae. The message quotes at most a
        short prefix of anything read from the file.
    OSError
        The file cannot be opened (missing, a folder, no permission).
    """
    name = display_name(path)
    # Opening errors (missing file, ...) stay OSError: they are not about
    # the file's content.
    fh, size = _open_regular(path, name)
    with fh:
        # One reader: the C one decides which files load and reads their
        # values (so C and Python accept the same files, and memory is the
        # model's size). When it refuses, the Python reader below, which
        # checks the same rules field by field, says why.
        status, fields = (_engine.read_model_file(fh.fileno()) if _engine is not None
                          else (None, None))
        if status == 0:
            try:
                return _model_from_fields(fields, defaults)
            except _FileError as err:
                raise ValueError(f"{name} is not a valid csae model file: {err}") from None
        try:
            _check_directory_size(fh, size)
            fh.seek(0)
            loaded = _build_model(_Reader(fh, size), defaults)
        except _FileError as err:
            raise ValueError(f"{name} is not a valid csae model file: {err}") from None
        except Exception as err:
            # Truncated or bit-flipped archives fail inside zipfile/NumPy in
            # many ways (BadZipFile, EOFError, OSError, NotImplementedError,
            # MemoryError, ...): all mean the same thing here.
            raise ValueError(f"{name} is not a valid csae model file (corrupted or "
                             f"truncated: {type(err).__name__}: {_short(err, 200)})"
                             ) from err
    if status == _engine.MODEL_FILE_CHANGED:
        raise ValueError(f"{name} changed while it was being read (another process wrote "
                         "to it); load it again once it is complete")
    if status is None or status == _engine.MODEL_FILE_UNSUPPORTED:
        # Deflated or Fortran-ordered members (a file repacked by a zip
        # tool): valid, never written by save, and beyond the C reader,
        # which reads members in place. Python's reader, under the same zip
        # and field rules, reads them.
        return loaded
    raise ValueError(f"{name} is not a valid csae model file: "
                     f"{_engine.status_message(status)}")
