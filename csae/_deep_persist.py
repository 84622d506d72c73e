"""Deep models' files: ``StackedEncoder`` and ``SparseAutoencoderClassifier``.

The same kind of file as a SparseAutoencoder's (csae/_persist.py): an
``.npz`` archive of uncompressed members written atomically through
``csae._files.write_atomically``, read as untrusted input by the engine's
reader (src_c/model_file.c, through ``csae._engine.read_deep_file``, the code
``csae_deep_file_*`` in csae.h run), never a pickle; when that reader
refuses a file, a Python reader applying the same rules member by member
says why (and reads the deflated members the engine's reader does not).
Every field is checked before a model is built; a refusal is a
``ValueError`` quoting at most a short prefix of the file.

Layout (formats "csae.StackedEncoder" and "csae.SparseAutoencoderClassifier",
version 1).  ``l`` numbers the layers from 0; a network of L hidden layers
has widths ``sizes = [n, h_1, ..., h_L]`` (a classifier's end with the
number of classes k), and layer l maps ``sizes[l]`` to ``sizes[l + 1]``:

    format, csae_version     0-d str
    format_version           0-d int64     1
    hyperparameters          (1,) str      JSON (ASCII, at most 65536 characters):
                                           the estimator's parameters, each
                                           autoencoder's record, the classifier's
                                           n_iter, best_iteration, classes_dtype
    sizes                    (L+1,) or (L+2,) int64, each >= 1 (k >= 2)
    weights_<l>, bias_<l>    (h_{l+1}, h_l), (h_{l+1},) in the model dtype: the
                             network as transform / predict_proba compute it (a
                             classifier's softmax layer is l = L)
    pretrained_weights_<l>,  classifier only: pretrained_layers_, same shapes
    pretrained_bias_<l>
    decoder_weights_<l>,     l < L, the autoencoder of hidden layer l (every layer
    decoder_bias_<l>,        of a stack; all or none of a classifier's): its
    autoencoder_loss_curve_<l>  decoder (h_l, h_{l+1}), (h_l,), loss curve (float64)
    autoencoder_data_min_<l>,   optional (h_l,) float64: its input range
    autoencoder_data_scale_<l>  (scale_inputs=True)
    autoencoder_weights_<l>,    present exactly when l > 0 and that range is:
    autoencoder_bias_<l>        its own encoder, whose scaling the network's
                                layer l has folded into its weights
    data_min, data_scale     optional (n,) float64: the network's input range
    classes                  classifier: (k,) labels in sorted order
    loss_curve               classifier: (n_iter,) float64
    validation_loss_curve    classifier, optional: float64

Class labels are stored as a plain typed array (int, unsigned, float or
UTF-32 text, native byte order) whose original NumPy dtype the record names
(``classes_dtype``: a bool or object array is stored as uint8 or text and
cast back).  C programs get the probabilities column by column in that
order and never need the labels: the C reader checks the member's type,
shape (k) and bytes and skips it, so it needs no string handling beyond
what the .npy header parser already has, and Python reads labels of any
length and alphabet exactly.

Not stored: ``feature_names_in_`` (as in a SparseAutoencoder's file) and the
autoencoders' optimizer state (momentum velocities, Adam moments): a loaded
autoencoder transforms and reconstructs exactly, and its further training
starts its solver afresh (its random state is kept).
"""

import json

import numpy as np

from csae import _persist
from csae._estimator import defaults_for_older_models, from_state, snapshot, SparseAutoencoder
from csae._files import display_name, write_atomically
from csae._persist import _FileError, _finite, _integer, _past_unicode, _quote, _short, _string
from csae._state import require_fitted
from csae._version import __version__

try:
    from csae import _engine
except ImportError:  # a build without the engine reads with the Python reader alone
    _engine = None  # type: ignore[assignment]

__all__ = ["save", "load", "FORMAT_NAMES", "FORMAT_VERSION", "MEMBERS"]

FORMAT_NAMES = {"encoder": "csae.StackedEncoder", "classifier": "csae.SparseAutoencoderClassifier"}
FORMAT_VERSION = 1
MAX_LAYERS = 16           # csae.h's CSAE_DEEP_FILE_MAX_LAYERS
_MAX_RECORD = 65536       # model_file.h's CSAE_DEEP_RECORD_MAX
_MAX_LABEL_CHARS = 256    # longest class label, in characters
_MAX_COUNT = 2 ** 63 - 1
_SIZE_LIMIT = 2 ** 64     # a byte count must fit the C reader's size_t

_GLOBAL = ("format", "format_version", "csae_version", "hyperparameters", "sizes", "data_min",
           "data_scale", "classes", "loss_curve", "validation_loss_curve")
_PER_LAYER = ("weights_", "bias_", "pretrained_weights_", "pretrained_bias_",
              "decoder_weights_", "decoder_bias_", "autoencoder_data_min_",
              "autoencoder_data_scale_", "autoencoder_weights_", "autoencoder_bias_",
              "autoencoder_loss_curve_")
# Every member a file may hold, in model_file.h's order (a test holds the
# two lists equal).
MEMBERS = _GLOBAL + tuple(f"{p}{l}" for l in range(MAX_LAYERS + 1) for p in _PER_LAYER)
_READS_WHAT = "csae.load reads files written by the save methods of csae's models"


# --------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------

def _json_value(name, value):
    """A hyperparameter as JSON can hold it (NumPy scalars as Python's, in
    lists and dicts too)."""
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.random.Generator) or isinstance(value, np.random.RandomState):
        return None  # as a SparseAutoencoder's file: the weights are what count
    if isinstance(value, (list, tuple)):
        return [_json_value(name, v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(name, v) for k, v in value.items()}
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ValueError(f"the hyperparameter {name}={_short(repr(value), 60)} cannot be "
                         "written to a model file (JSON values only)") from None
    return value


def _estimator_record(params):
    """The estimator's parameters but ``autoencoders`` (the models are stored
    as arrays), and which of them were tuples (JSON has lists only)."""
    record = {name: _json_value(name, value) for name, value in params.items()
              if name != "autoencoders"}
    tuples = sorted(name for name, value in params.items() if isinstance(value, tuple)
                    and name != "autoencoders")
    return record, tuples


def _autoencoder(l, ae, dtype, arrays):
    """Members of the autoencoder of hidden layer ``l`` into ``arrays``; its
    record entry."""
    raw, state = snapshot(ae)
    require_fitted(state, "SparseAutoencoder")
    hyper, _ = _persist._json_hyperparameters(raw)
    W, b, Wd, bd = state.params
    arrays[f"decoder_weights_{l}"] = np.ascontiguousarray(Wd, dtype=dtype)
    arrays[f"decoder_bias_{l}"] = np.ascontiguousarray(bd, dtype=dtype)
    arrays[f"autoencoder_loss_curve_{l}"] = np.asarray(state.loss_curve, np.float64).reshape(-1)
    if hyper["scale_inputs"] and state.data_min is not None:
        arrays[f"autoencoder_data_min_{l}"] = np.asarray(state.data_min, np.float64)
        arrays[f"autoencoder_data_scale_{l}"] = np.asarray(state.data_scale, np.float64)
        if l > 0:  # the network's layer l has this scaling folded in
            arrays[f"autoencoder_weights_{l}"] = np.ascontiguousarray(W, dtype=dtype)
            arrays[f"autoencoder_bias_{l}"] = np.ascontiguousarray(b, dtype=dtype)
    return {"hyperparameters": hyper, "stop_reason": ae.stop_reason_,
            "rng_state": state.rng_state}


def _classes_array(classes):
    """``(array, dtype name)``: the labels as a type the C reader checks."""
    classes = np.asarray(classes)
    if classes.dtype == np.bool_:
        return classes.astype(np.uint8), "bool"
    if classes.dtype.kind == "O":
        if not all(isinstance(c, str) for c in classes):
            raise ValueError("classes_ of mixed Python objects cannot be written to a model "
                             "file (strings or numbers only)")
        return classes.astype(str), "object"
    if classes.dtype.kind not in "iufU":
        raise ValueError(f"classes_ of dtype {classes.dtype} cannot be written to a model file")
    if classes.dtype.kind == "U" and classes.dtype.itemsize > 4 * _MAX_LABEL_CHARS:
        raise ValueError(f"a class label is longer than {_MAX_LABEL_CHARS} characters")
    native = classes.astype(classes.dtype.newbyteorder("="))
    return native, classes.dtype.name if classes.dtype.kind != "U" else "str"


def save(path, kind, *, params, layers, data_min, data_scale, autoencoders, classifier=None):
    """Write a deep model (``kind`` "encoder" or "classifier") to ``path``.

    ``params`` are its ``get_params()``, ``layers`` its network (a list of
    ``(W, b)``; a classifier's softmax layer last), ``data_min`` and
    ``data_scale`` its input range or None, ``autoencoders`` the fitted
    autoencoders of its hidden layers or None; ``classifier`` a dict of a
    classifier's ``classes``, ``pretrained`` layers, ``loss_curve``,
    ``validation_loss_curve``, ``best_iteration`` and ``autoencoders_given``."""
    dtype = layers[0][0].dtype
    n = layers[0][0].shape[1]
    sizes = [n] + [W.shape[0] for W, _ in layers]
    hidden = len(layers) - (kind == "classifier")
    if not 1 <= hidden <= MAX_LAYERS:
        raise ValueError(f"a model file holds 1 to {MAX_LAYERS} hidden layers, not {hidden}")
    estimator, tuples = _estimator_record(params)
    record = {"estimator": estimator, "tuples": tuples, "autoencoders": None}
    arrays = {"format": np.array(FORMAT_NAMES[kind]),
              "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
              "csae_version": np.array(__version__),
              "sizes": np.array(sizes, dtype=np.int64)}
    for l, (W, b) in enumerate(layers):
        arrays[f"weights_{l}"] = np.ascontiguousarray(W, dtype=dtype)
        arrays[f"bias_{l}"] = np.ascontiguousarray(b, dtype=dtype)
    if autoencoders is not None:
        record["autoencoders"] = [_autoencoder(l, ae, dtype, arrays)
                                  for l, ae in enumerate(autoencoders)]
    if data_min is not None:
        arrays["data_min"] = np.asarray(data_min, np.float64)
        arrays["data_scale"] = np.asarray(data_scale, np.float64)
    if classifier is not None:
        _classifier_members(classifier, dtype, arrays, record)
    arrays["hyperparameters"] = np.array([json.dumps(record, sort_keys=True)])
    if len(arrays["hyperparameters"][0]) > _MAX_RECORD:
        raise ValueError(f"the model's hyperparameters take more than {_MAX_RECORD} "
                         "characters of JSON, more than a model file holds")

    def write(fh):
        np.savez(fh, **arrays)

    write_atomically(path, write)


def _classifier_members(c, dtype, arrays, record):
    """A classifier's own members and record entries."""
    for l, (W, b) in enumerate(c["pretrained"]):
        arrays[f"pretrained_weights_{l}"] = np.ascontiguousarray(W, dtype=dtype)
        arrays[f"pretrained_bias_{l}"] = np.ascontiguousarray(b, dtype=dtype)
    arrays["classes"], record["classes_dtype"] = _classes_array(c["classes"])
    arrays["loss_curve"] = np.asarray(c["loss_curve"], np.float64).reshape(-1)
    if c["validation_loss_curve"] is not None:
        arrays["validation_loss_curve"] = np.asarray(c["validation_loss_curve"], np.float64)
    record.update(n_iter=len(c["loss_curve"]), best_iteration=c["best_iteration"],
                  autoencoders_given=bool(c["autoencoders_given"]))


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

def load(path, param_names):
    """Read a model file of any csae model.

    Returns ``(kind, saved)``: ``("single", None)`` for a SparseAutoencoder's
    file (the caller loads it with ``SparseAutoencoder.load``), else
    ``("encoder" or "classifier", saved)`` with everything checked:
    ``params`` (the constructor's, but ``autoencoders``), ``layers``,
    ``data_min``, ``data_scale``, ``autoencoders`` (fitted SparseAutoencoder
    models or None), and a classifier's ``classes``, ``pretrained``,
    ``loss_curve``, ``validation_loss_curve``, ``best_iteration``,
    ``autoencoders_given``.  ``param_names`` maps each kind to its
    constructor's parameter names.

    Raises ValueError for a file that is no valid model, OSError when it
    cannot be opened."""
    name = display_name(path)
    fh, size = _persist._open_regular(path, name)
    with fh:
        status, fields = (_engine.read_deep_file(fh.fileno()) if _engine is not None
                          else (None, None))
        try:
            if status != 0:
                _persist._check_directory_size(fh, size)
                fh.seek(0)
                fields = _python_fields(fh, size)
                if fields is None:
                    return "single", None
            saved = _checked(fields, param_names)
        except _FileError as err:
            raise ValueError(f"{name} is not a valid csae model file: {err}") from None
        except Exception as err:
            raise ValueError(f"{name} is not a valid csae model file (corrupted or "
                             f"truncated: {type(err).__name__}: {_short(err, 200)})") from err
    if status in (0, None) or status == _engine.MODEL_FILE_UNSUPPORTED:
        return fields["kind"], saved
    if status == _engine.MODEL_FILE_CHANGED:
        raise ValueError(f"{name} changed while it was being read (another process wrote "
                         "to it); load it again once it is complete")
    raise ValueError(f"{name} is not a valid csae model file: "
                     f"{_engine.status_message(status)}")


# -- The Python reader: the C reader's rules, each refusal explained ----------

def _python_fields(fh, size):
    """The fields the C reader gives (``read_deep_file``), read under the
    same rules; None for a SparseAutoencoder's file."""
    known = frozenset(MEMBERS) | _persist._REQUIRED | _persist._ALL_OPTIONAL
    reader = _persist._Reader(fh, size, fields=(frozenset({"format"}), known))
    name = _persist.format_of(reader)
    if name == _persist.FORMAT_NAME:
        return None
    kinds = {v: k for k, v in FORMAT_NAMES.items()}
    if name not in kinds:
        raise _FileError(f"format is {_quote(name) if name else 'not a string'}, not one of "
                         f"{', '.join(repr(f) for f in (_persist.FORMAT_NAME, *kinds))}")
    kind = kinds[name]
    version = _integer(reader.small("format_version", _persist._MAX_SCALAR), "format_version")
    if version > FORMAT_VERSION:
        raise _FileError(f"it was written by a newer csae (format version {version}; this "
                         f"csae {__version__} reads up to {FORMAT_VERSION}); upgrade csae "
                         "to load it")
    if version < 1:
        raise _FileError(f"format_version {version} is not a valid version")
    unknown = sorted(set(reader.infos) - set(MEMBERS))
    if unknown:
        raise _FileError(f"unknown fields: {', '.join(_short(u) for u in unknown[:5])}")
    missing = [f for f in ("csae_version", "hyperparameters", "sizes") if f not in reader]
    if missing:
        raise _FileError(f"fields missing: {', '.join(missing)}")
    _string(reader.small("csae_version", 4 * _persist._MAX_LABEL), "csae_version")
    fields = {"kind": kind, "version": version, "record": _record_text(reader), "arrays": {}}
    fields["sizes"] = _sizes(reader, kind)
    _layers(reader, fields)
    _rest(reader, fields)
    return fields


def _record_text(reader):
    value = _string(reader.small("hyperparameters", 4 * _MAX_RECORD), "hyperparameters",
                    shape=(1,))
    if not value or len(value) > _MAX_RECORD:
        raise _FileError(f"the hyperparameter record holds {len(value)} characters; a "
                         f"csae file holds 1 to {_MAX_RECORD}")
    if any(not (" " <= ch <= "~" or ch in "\t\n\r") for ch in value):
        raise _FileError("the hyperparameter record is not plain ASCII text")
    return value


def _sizes(reader, kind):
    """The widths, checked as the C reader does (byte counts fit size_t)."""
    extra = 2 if kind == "classifier" else 1
    shape, dtype = reader.header("sizes")
    if dtype != np.dtype(np.int64) or len(shape) != 1 or not (
            extra + 1 <= shape[0] <= extra + MAX_LAYERS):
        raise _FileError(f"sizes must be int64 of length {extra + 1} to "
                         f"{extra + MAX_LAYERS} (1 to {MAX_LAYERS} hidden layers)")
    sizes = [int(v) for v in reader.array("sizes", shape, np.dtype(np.int64))]
    if min(sizes) < 1:
        raise _FileError(f"sizes must be at least 1, got {_short(sizes)}")
    if kind == "classifier" and sizes[-1] < 2:
        raise _FileError("a classifier has at least 2 classes")
    total = 0
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        total += fan_out * fan_in + fan_out
        if total * 8 >= _SIZE_LIMIT:
            raise _FileError(f"sizes {_short(sizes)} make more parameters than memory holds")
    return sizes


def _floats(reader, fields, name, shape, dtype, positive=False):
    """A float member of ``shape`` (a None length: any), finite."""
    if shape[0] is None:
        got, _ = reader.header(name)
        if len(got) != 1:
            raise _FileError(f"{name} must be a 1-D array")
        shape = got
    value = _finite(reader.array(name, shape, np.dtype(dtype)), name)
    if positive and not (value > 0).all():
        raise _FileError(f"{name} must be positive")
    fields["arrays"][name] = value


def _layers(reader, fields):
    """Every layer slot, as src_c/model_file.c's deep_layers checks it."""
    kind, z = fields["kind"], fields["sizes"]
    classifier = kind == "classifier"
    L = len(z) - 1 - classifier
    layers = L + classifier
    if "weights_0" not in reader:
        raise _FileError("fields missing: weights_0")
    _, dtype = reader.header("weights_0")
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise _FileError(f"weights_0 must be float32 or float64, got {_short(dtype.str)}")
    fields["elem_size"] = dtype.itemsize
    autoencoders = "decoder_weights_0" in reader
    if not classifier and not autoencoders:
        raise _FileError("fields missing: decoder_weights_0 (a stack's autoencoders)")
    for l in range(MAX_LAYERS + 1):
        expected = {"weights_": l < layers, "bias_": l < layers,
                    "pretrained_weights_": classifier and l < layers,
                    "pretrained_bias_": classifier and l < layers,
                    "decoder_weights_": autoencoders and l < L}
        for prefix in _PER_LAYER:
            there = f"{prefix}{l}" in reader
            if prefix in expected and there != expected[prefix]:
                raise _FileError(f"{prefix}{l} is {'present' if there else 'missing'} in a "
                                 f"file of {L} hidden layers ({kind})")
            if prefix not in expected and there and not expected["decoder_weights_"]:
                raise _FileError(f"{prefix}{l} is present without decoder_weights_{l}")
        if l >= layers:
            continue
        for prefix in ("", "pretrained_") if classifier else ("",):
            _floats(reader, fields, f"{prefix}weights_{l}", (z[l + 1], z[l]), dtype)
            _floats(reader, fields, f"{prefix}bias_{l}", (z[l + 1],), dtype)
        if expected["decoder_weights_"]:
            _autoencoder_members(reader, fields, l, dtype)


def _autoencoder_members(reader, fields, l, dtype):
    z = fields["sizes"]
    for name in (f"decoder_bias_{l}", f"autoencoder_loss_curve_{l}"):
        if name not in reader:
            raise _FileError(f"fields missing: {name}")
    ranged = f"autoencoder_data_min_{l}" in reader
    if ranged != (f"autoencoder_data_scale_{l}" in reader):
        raise _FileError(f"autoencoder_data_min_{l} and autoencoder_data_scale_{l} must be "
                         "both present or both absent")
    own = ranged and l > 0
    for name in (f"autoencoder_weights_{l}", f"autoencoder_bias_{l}"):
        if (name in reader) != own:
            raise _FileError(f"{name} must be present exactly when layer {l} > 0 has an "
                             "input range")
    _floats(reader, fields, f"decoder_weights_{l}", (z[l], z[l + 1]), dtype)
    _floats(reader, fields, f"decoder_bias_{l}", (z[l],), dtype)
    _floats(reader, fields, f"autoencoder_loss_curve_{l}", (None,), np.float64)
    if ranged:
        _floats(reader, fields, f"autoencoder_data_min_{l}", (z[l],), np.float64)
        _floats(reader, fields, f"autoencoder_data_scale_{l}", (z[l],), np.float64,
                positive=True)
    if own:
        _floats(reader, fields, f"autoencoder_weights_{l}", (z[l + 1], z[l]), dtype)
        _floats(reader, fields, f"autoencoder_bias_{l}", (z[l + 1],), dtype)


def _rest(reader, fields):
    """The input range, and a classifier's labels and curves."""
    kind, z = fields["kind"], fields["sizes"]
    classifier = kind == "classifier"
    ranged = "data_min" in reader
    if ranged != ("data_scale" in reader):
        raise _FileError("data_min and data_scale must be both present or both absent")
    if not classifier and ranged != ("autoencoder_data_min_0" in reader):
        raise _FileError("a stack's data_min must be its first autoencoder's input range")
    if ranged:
        _floats(reader, fields, "data_min", (z[0],), np.float64)
        _floats(reader, fields, "data_scale", (z[0],), np.float64, positive=True)
    for name in ("classes", "loss_curve", "validation_loss_curve"):
        if name in reader and not classifier:
            raise _FileError(f"{name} appears in a {kind} file")
        if name in reader or name == "validation_loss_curve" or not classifier:
            continue
        raise _FileError(f"fields missing: {name}")
    if not classifier:
        return
    shape, dtype = reader.header("classes")
    k = z[-1]
    if (len(shape) != 1 or shape[0] != k or dtype.kind not in "iufU" or not dtype.isnative
            or (dtype.kind == "U" and not 4 <= dtype.itemsize <= 4 * _MAX_LABEL_CHARS)):
        raise _FileError(f"classes must be {k} numbers or strings (of at most "
                         f"{_MAX_LABEL_CHARS} characters) in native byte order")
    classes = reader.array("classes", (k,), dtype)
    if dtype.kind == "f":
        classes = _finite(classes, "classes")
    if dtype.kind == "U" and _past_unicode(classes):
        raise _FileError("classes hold a character beyond U+10FFFF")
    fields["arrays"]["classes"] = classes
    _floats(reader, fields, "loss_curve", (None,), np.float64)
    if "validation_loss_curve" in reader:
        _floats(reader, fields, "validation_loss_curve", (None,), np.float64)


# -- What both readers' fields mean: the models' pieces, checked ------------

def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _checked(fields, param_names):
    """The pieces of the model ``fields`` (as read_deep_file gives them)
    describe, after the checks the C reader leaves to Python: the record's
    content, the labels, the autoencoders' hyperparameters."""
    kind, arrays, z = fields["kind"], fields["arrays"], fields["sizes"]
    dtype = np.dtype(np.float64 if fields["elem_size"] == 8 else np.float32)
    try:
        record = json.loads(fields["record"])
    except ValueError as err:
        raise _FileError(f"hyperparameters are not valid JSON ({_short(err, 80)})") from None
    keys = {"estimator", "tuples", "autoencoders"} | (
        {"classes_dtype", "n_iter", "best_iteration", "autoencoders_given"}
        if kind == "classifier" else set())
    if not isinstance(record, dict) or set(record) != keys:
        raise _FileError(f"the hyperparameter record must be a JSON object of "
                         f"{', '.join(sorted(keys))}")
    params = _params(record, param_names[kind])
    layers_count = len(z) - 1
    saved = {"params": params, "dtype": dtype,
             "layers": [(arrays[f"weights_{l}"], arrays[f"bias_{l}"])
                        for l in range(layers_count)],
             "data_min": arrays.get("data_min"), "data_scale": arrays.get("data_scale")}
    L = layers_count - (kind == "classifier")
    saved["autoencoders"] = _autoencoders(record["autoencoders"], arrays, saved, L, kind,
                                          dtype)
    if kind == "encoder" and saved["data_min"] is not None and not (
            same_bits(saved["data_min"], arrays["autoencoder_data_min_0"])
            and same_bits(saved["data_scale"], arrays["autoencoder_data_scale_0"])):
        raise _FileError("a stack's data_min and data_scale must be its first "
                         "autoencoder's input range")
    if kind == "classifier":
        _classifier_pieces(record, arrays, saved, layers_count)
    return saved


def _params(record, names):
    """The constructor's parameters: those the record names (each one the
    constructor has), the later ones left to their defaults."""
    estimator, tuples = record["estimator"], record["tuples"]
    if not isinstance(estimator, dict) or not isinstance(tuples, list):
        raise _FileError("the record's estimator must be a JSON object, tuples a list")
    unknown = sorted(set(estimator) - set(names) | {"autoencoders"} & set(estimator))
    if unknown:
        raise _FileError(f"unexpected hyperparameters: "
                         f"{', '.join(_quote(u) for u in unknown[:3])}")
    params = dict(estimator)
    for name in tuples:
        if name not in params or not isinstance(params[name], list):
            raise _FileError(f"tuples names {_quote(name)}, not a list of the record")
        params[name] = tuple(params[name])
    return params


def _autoencoders(entries, arrays, saved, L, kind, dtype):
    """The fitted autoencoders of the hidden layers, or None."""
    has = "decoder_weights_0" in arrays
    if entries is None and not has:
        return None
    if not isinstance(entries, list) or len(entries) != L or not has:
        raise _FileError("the record's autoencoders must list one entry per hidden layer "
                         "exactly when the file holds their decoders")
    # The network's layer l is the autoencoder's encoder but where its own
    # encoder is stored (its input scaling folded in): the stack's layers,
    # or the classifier's pretrained ones.
    network = (saved["layers"] if kind == "encoder" else
               [(arrays[f"pretrained_weights_{l}"], arrays[f"pretrained_bias_{l}"])
                for l in range(L)])
    defaults = defaults_for_older_models(SparseAutoencoder._get_param_names(),
                                         SparseAutoencoder)
    return [_one_autoencoder(l, entry, arrays, network[l], defaults, dtype)
            for l, entry in enumerate(entries)]


def _one_autoencoder(l, entry, arrays, encoder, defaults, dtype):
    if not isinstance(entry, dict) or set(entry) != {"hyperparameters", "stop_reason",
                                                     "rng_state"}:
        raise _FileError(f"autoencoder {l}'s record must name hyperparameters, stop_reason "
                         "and rng_state")
    text = json.dumps(entry["hyperparameters"], sort_keys=True)
    hyper, hp = _persist._parse_record(text, defaults, _persist.FORMAT_VERSION)
    W, b = ((arrays[f"autoencoder_weights_{l}"], arrays[f"autoencoder_bias_{l}"])
            if f"autoencoder_weights_{l}" in arrays else encoder)
    ranged = f"autoencoder_data_min_{l}" in arrays
    if hp.n_hidden != W.shape[0] or hp.dtype != dtype or bool(hp.scale_inputs) != ranged:
        raise _FileError(f"autoencoder {l}'s hyperparameters (n_hidden, dtype, "
                         "scale_inputs) disagree with its arrays")
    reason, rng = entry["stop_reason"], entry["rng_state"]
    if reason is not None:
        reason = _persist._stop_reason(str(reason))
    if rng is not None and not (isinstance(rng, int) and 0 <= rng < 2 ** 64):
        raise _FileError(f"autoencoder {l}'s rng_state must be a 64-bit unsigned integer")
    state = _persist._state(
        params=(W, b, arrays[f"decoder_weights_{l}"], arrays[f"decoder_bias_{l}"]),
        velocity=None, rng_state=rng, adam_m=None, adam_v=None, adam_t=0,
        rho_running=None, running_batches=0,
        data_min=arrays.get(f"autoencoder_data_min_{l}"),
        data_scale=arrays.get(f"autoencoder_data_scale_{l}"),
        loss_curve=arrays[f"autoencoder_loss_curve_{l}"])
    return from_state(hyper, state, reason)


_CLASS_DTYPES = {"bool": "u", "object": "U", "str": "U"}


def _classifier_pieces(record, arrays, saved, layers_count):
    """A classifier's labels, pretrained network and training record."""
    stored = arrays["classes"]
    name = record["classes_dtype"]
    try:
        numeric = np.dtype(name) if name not in _CLASS_DTYPES else None
    except TypeError:
        raise _FileError(f"classes_dtype {_quote(name)} is not a NumPy dtype") from None
    if (numeric is not None and numeric.kind != stored.dtype.kind) or (
            numeric is None and _CLASS_DTYPES[name] != stored.dtype.kind):
        raise _FileError(f"classes_dtype {_quote(name)} disagrees with the classes stored")
    classes = (stored.astype(bool) if name == "bool" else stored.astype(object)
               if name == "object" else stored.astype(numeric) if numeric is not None
               else stored)
    if len(np.unique(classes)) != len(classes) or not (np.sort(classes) == classes).all():
        raise _FileError("classes must be distinct and sorted")
    n_iter, best = record["n_iter"], record["best_iteration"]
    curve, validation = arrays["loss_curve"], arrays.get("validation_loss_curve")
    if not isinstance(n_iter, int) or n_iter != len(curve):
        raise _FileError(f"n_iter differs from the length of loss_curve ({len(curve)})")
    if (best is None) != (validation is None) or (
            best is not None and not (isinstance(best, int) and 0 <= best <= n_iter)):
        raise _FileError("best_iteration must be an iteration run, given exactly with "
                         "validation_loss_curve")
    if not isinstance(record["autoencoders_given"], bool):
        raise _FileError("autoencoders_given must be true or false")
    saved.update(classes=classes, loss_curve=[float(x) for x in curve],
                 validation_loss_curve=(None if validation is None
                                        else [float(x) for x in validation]),
                 best_iteration=best, autoencoders_given=record["autoencoders_given"],
                 pretrained=[(arrays[f"pretrained_weights_{l}"],
                              arrays[f"pretrained_bias_{l}"]) for l in range(layers_count)])
