"""ONNX export of fitted csae models (needs ``pip install "csae[onnx]"``).

``to_onnx`` writes a ``SparseAutoencoder`` (its encoder, decoder or whole
reconstruction), a ``StackedEncoder`` (the same three, through every layer)
or a ``SparseAutoencoderClassifier`` (outputs ``label`` and
``probabilities``, as skl2onnx writes a scikit-learn classifier) as an ONNX
graph of standard operators (Gemm, Sigmoid, Softmax, ArgMax, Gather, and
Cast/Sub/Div/Mul/Add for the input scaling), so any ONNX runtime can serve
the model.  ``register_skl2onnx_converter`` teaches skl2onnx the
autoencoder, so that a scikit-learn ``Pipeline`` holding one converts as a
whole.

The graph repeats csae's arithmetic step by step: with ``scale_inputs`` the
inputs are scaled in float64 and then cast to the model dtype, as
``transform`` does (not folded into the weights, which would lose digits to
cancellation when features sit far from zero).  Results then differ from
``transform`` only by the runtime's summation order and its own sigmoid.

Every graph is built the same way: a ``_Graph`` collects nodes and
initializers as plain data, the blocks ``_scale_input``, ``_dense`` and
``_unscale_output`` append a model's steps to it (``_autoencoder_steps``
chains them for one autoencoder, a stack, or a classifier's hidden
layers), and ``_model_proto`` turns it into a checked ``onnx.ModelProto``.
A stack's graph uses the stack's own weights, in which ``csae.stack``
folded the scaling of the autoencoders above the first, so it computes
what ``transform`` computes.  The deep models' ``to_onnx`` methods
(csae/deep.py) hand their arrays to ``export_stacked`` and
``export_classifier``: values, not the estimator, and no import of
csae.deep here.

The onnx package is imported when a function here is called, never when
csae is imported.
"""

import numbers

import numpy as np

from csae._validation import NotFittedError

__all__ = ["to_onnx", "register_skl2onnx_converter"]

_WHAT = ("encoder", "decoder", "reconstruct")
# Every operator used has had its current form since opset 13.
OPSET = 17
# An ONNX file is one protobuf message, and protobuf refuses to serialize or
# parse a message of 2 GiB or more.  The graph's names, shapes and nodes take
# a few KB beyond the weights; the margin keeps the check on the safe side.
MAX_MESSAGE_BYTES = 2 ** 31 - 1
_GRAPH_MARGIN = 1 << 20


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('ONNX export needs the onnx package: pip install "csae[onnx]"') \
            from None
    return onnx


def _elem(dtype):
    """The ONNX element type of a NumPy dtype."""
    return _import_onnx().helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _check_model(model):
    from csae._estimator import SparseAutoencoder

    if not isinstance(model, SparseAutoencoder):
        raise TypeError(f"model must be a csae.SparseAutoencoder, got {type(model).__name__}")


def _check_what(what):
    if what not in _WHAT:
        raise ValueError(f"what must be one of {', '.join(map(repr, _WHAT))}, got {what!r}")


# --------------------------------------------------------------------------
# Sizes: refused before anything is built
# --------------------------------------------------------------------------

def _check_bytes(size, what, described, dtype, hint=""):
    """Refuse, before anything is built, a graph protobuf cannot hold:
    building it would take minutes and several times its size in memory
    before failing.  ``size``: bytes of the initializers, from the shapes."""
    if size + _GRAPH_MARGIN <= MAX_MESSAGE_BYTES:
        return
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        hint = "; a float32 model takes half as much" + hint
    raise ValueError(
        f"the ONNX {what} graph of this model needs {size / 2 ** 30:.2f} GiB of weights "
        f"({described}, {dtype.name}), but an ONNX file is one "
        f"protobuf message of less than 2 GiB; export a smaller model{hint}")


def _encoder_bytes(shapes, dtype, scaled):
    """Bytes of the initializers of layers with weights of the ``(h, n)``
    ``shapes`` in ``dtype``, and of the float64 input range when
    ``scaled``: from the shapes alone, nothing copied."""
    item = np.dtype(dtype).itemsize
    total = sum((h * n + h) * item for h, n in shapes)
    return total + (2 * shapes[0][1] * 8 if scaled else 0)


def _decoder_bytes(shape, dtype, scaled):
    """Bytes of the initializers of the decoder of an autoencoder whose
    encoder weights have ``shape`` (h, n), with its output range in
    ``dtype`` when ``scaled``."""
    h, n = shape
    item = np.dtype(dtype).itemsize
    return (n * h + n) * item + (2 * n * item if scaled else 0)


def _check_size(state, model, what):
    """An autoencoder's ``what`` graph, checked by ``_check_bytes``."""
    h, n = state.params[0].shape
    dtype, scaled = model.dtype, model.scale_inputs
    size = ((_encoder_bytes([(h, n)], dtype, scaled) if what != "decoder" else 0)
            + (_decoder_bytes((h, n), dtype, scaled) if what != "encoder" else 0))
    hint = ('; what="encoder" and what="decoder" each take half of "reconstruct"'
            if what == "reconstruct" else "")
    _check_bytes(size, what, f"{h} hidden units x {n} features", dtype, hint)


def _described(shapes):
    """``layers 64-30-20-10``: a network's sizes from its weights' shapes,
    for messages."""
    return "layers " + "-".join(map(str, [shapes[0][1]] + [h for h, _ in shapes]))


# --------------------------------------------------------------------------
# The graph as plain data, and the blocks every model's graph is made of
# --------------------------------------------------------------------------

class _Graph:
    """Nodes ``(op_type, inputs, outputs, attributes)`` and initializers
    ``(name, array)`` of a graph being built, with ``current`` the tensor
    the next step reads.  Names other than the graph's input and outputs
    are local ones that a caller may rename (the skl2onnx converter does)."""

    def __init__(self, dtype, inp):
        self.dtype = np.dtype(dtype)
        self.nodes, self.inits = [], []
        self.current = inp

    def node(self, op, inputs, output, **attrs):
        self.nodes.append((op, list(inputs), [output], attrs))
        return output

    def const(self, name, array):
        self.inits.append((name, np.ascontiguousarray(array)))
        return name

    def apply(self, op, output, *operands, **attrs):
        """``current = op(current, *operands)``."""
        self.current = self.node(op, [self.current, *operands], output, **attrs)
        return self.current

    def finish(self, out):
        """The last node writes the graph's output ``out``; returns self."""
        op, inputs, _, attrs = self.nodes[-1]
        self.nodes[-1] = (op, inputs, [out], attrs)
        return self


def _scale_input(g, scaling):
    """``(X - min) / scale`` in float64, then cast to the model dtype: the
    steps of ``scale_inputs=True`` (nothing when ``scaling`` is None)."""
    if scaling is None:
        return
    data_min, data_scale = scaling
    f64 = np.dtype(np.float64)
    if g.dtype != f64:
        g.apply("Cast", "x_float64", to=_elem(f64))
    g.apply("Sub", "x_centred", g.const("data_min", data_min))
    g.apply("Div", "x_scaled64", g.const("data_scale", data_scale))
    if g.dtype != f64:
        g.apply("Cast", "x_scaled", to=_elem(g.dtype))


def _dense(g, name, W, b, activation, out=None):
    """``activation(current @ W.T + b)``: one Gemm, then a Sigmoid, a
    row-wise Softmax or nothing ("linear")."""
    z = f"{name}_z" if activation != "linear" else (out or name)
    g.apply("Gemm", z, g.const(f"{name}_weights", W), g.const(f"{name}_bias", b), transB=1)
    if activation == "sigmoid":
        g.apply("Sigmoid", out or name)
    elif activation == "softmax":
        g.apply("Softmax", out or name, axis=1)


def _unscale_output(g, scaling, name):
    """``min + scale * current`` in the model dtype: what
    ``inverse_transform`` does after the decoder of a ``scale_inputs`` model."""
    data_min, data_scale = scaling
    g.apply("Mul", f"{name}_scaled", g.const(f"{name}_scale", data_scale.astype(g.dtype)))
    g.apply("Add", f"{name}_unscaled", g.const(f"{name}_min", data_min.astype(g.dtype)))


def _model_proto(g, graph_name, inputs, outputs):
    """The checked ``onnx.ModelProto`` of ``g``; ``inputs`` and ``outputs``
    are ``(name, element type, dims)``, the batch dimension named "N"."""
    onnx = _import_onnx()
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node(op, i, o, name=f"{op.lower()}_{k}", **attrs)
         for k, (op, i, o, attrs) in enumerate(g.nodes)],
        graph_name,
        [helper.make_tensor_value_info(*value) for value in inputs],
        [helper.make_tensor_value_info(*value) for value in outputs],
        [numpy_helper.from_array(a, name) for name, a in g.inits])
    proto = helper.make_model(graph, producer_name="csae",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(proto)
    return proto


def _write(proto, path):
    """``proto`` written to ``path`` by the rules of ``save`` (nothing when
    ``path`` is None); returns ``proto``."""
    if path is not None:
        from csae._files import write_atomically
        write_atomically(path, lambda fh: fh.write(proto.SerializeToString()))
    return proto


# --------------------------------------------------------------------------
# Autoencoders: one SparseAutoencoder, or a StackedEncoder's layers
# --------------------------------------------------------------------------

def _fitted_state(model):
    """The model's immutable state (weights and input range that belong
    together), checked to be fitted."""
    _check_model(model)
    from csae._estimator import snapshot
    state = snapshot(model)[1]
    if state.params is None:
        raise NotFittedError(f"this {type(model).__name__} is not fitted yet: call fit before "
                             "exporting it to ONNX")
    return state


def _snapshot(model, state=None):
    """The fitted state the graph needs, read once: weights in the model
    dtype, decoder, and the learned input range (or None)."""
    if state is None:
        state = _fitted_state(model)
    dtype = np.dtype(model.dtype)
    weights = tuple(np.array(w, dtype=dtype) for w in state.params)
    scaling = None
    if model.scale_inputs:
        if state.data_min is None:
            raise ValueError("scale_inputs=True but this model has not learned an input "
                             "range: fit it with scale_inputs=True first")
        scaling = (np.array(state.data_min, np.float64), np.array(state.data_scale, np.float64))
    return dict(dtype=dtype, weights=weights, decoder=model.decoder, scaling=scaling)


def _autoencoder_steps(g, layers, scaling, decoders, what):
    """The steps of ``what`` appended to ``g``: "encoder" is the input
    scaling and every ``(W, b)`` layer, bottom first; "decoder" every
    decoder of the ``decoders`` (``_snapshot``s, bottom first) run top
    first, each followed by its output scaling; "reconstruct" both.
    Returns ``g``."""
    if what != "decoder":
        _scale_input(g, scaling)
        for l, (W, b) in enumerate(layers, 1):
            _dense(g, f"layer{l}", W, b, "sigmoid")
    if what != "encoder":
        for l in range(len(decoders), 0, -1):
            snap = decoders[l - 1]
            Wd, bd = snap["weights"][2:]
            _dense(g, f"decoder{l}", Wd, bd, snap["decoder"])
            if snap["scaling"] is not None:
                _unscale_output(g, snap["scaling"], f"decoder{l}_output")
    return g


def _export_autoencoders(layers, scaling, decoders, what, graph_name, path):
    """The ``_autoencoder_steps`` graph as a model: X -> H ("encoder"),
    H -> Y ("decoder") or X -> Y ("reconstruct"), written to ``path``."""
    dtype = np.dtype(layers[0][0].dtype)
    elem = _elem(dtype)
    n, h = layers[0][0].shape[1], layers[-1][0].shape[0]
    inp, width_in = ("H", h) if what == "decoder" else ("X", n)
    out, width_out = ("H", h) if what == "encoder" else ("Y", n)
    g = _autoencoder_steps(_Graph(dtype, inp), layers, scaling, decoders, what).finish(out)
    proto = _model_proto(g, graph_name, [(inp, elem, ["N", width_in])],
                         [(out, elem, ["N", width_out])])
    return _write(proto, path)


def _export_autoencoder(model, path, what):
    _check_what(what)
    state = _fitted_state(model)  # one snapshot: weights and range that belong together
    _check_size(state, model, what)
    snap = _snapshot(model, state)
    return _export_autoencoders([snap["weights"][:2]], snap["scaling"], [snap], what,
                                f"csae_sparse_autoencoder_{what}", path)


def export_stacked(layers, autoencoders, scaling, path=None, what="encoder"):
    """A stacked encoder's graph: what ``StackedEncoder.to_onnx`` returns.

    ``layers``: its ``(W, b)`` pairs, bottom first (the arrays ``transform``
    computes with); ``autoencoders``: the fitted autoencoders whose decoders
    ``inverse_transform`` runs, bottom first; ``scaling``: the first one's
    float64 ``(data_min, data_scale)`` or None.
    """
    _check_what(what)
    dtype = layers[0][0].dtype
    shapes = [W.shape for W, _ in layers]
    states = [_fitted_state(ae) for ae in autoencoders] if what != "encoder" else []
    size = _encoder_bytes(shapes, dtype, scaling is not None) if what != "decoder" else 0
    size += sum(_decoder_bytes(state.params[0].shape, dtype, ae.scale_inputs)
                for ae, state in zip(autoencoders, states))
    hint = ('; what="encoder" and what="decoder" each take a part of "reconstruct"'
            if what == "reconstruct" else "")
    _check_bytes(size, what, _described(shapes), dtype, hint)
    decoders = [_snapshot(ae, state) for ae, state in zip(autoencoders, states)]
    return _export_autoencoders(layers, scaling, decoders, what,
                                f"csae_stacked_encoder_{what}", path)


# --------------------------------------------------------------------------
# SparseAutoencoderClassifier (its to_onnx method)
# --------------------------------------------------------------------------

def _label_values(classes):
    """``classes_`` as the values of the ``label`` output: int64 for integer
    labels (bool and whole floats included), strings for text; skl2onnx's
    two label types."""
    c = np.asarray(classes)
    if c.dtype.kind == "O" and all(isinstance(v, str) for v in c):
        return np.array([str(v) for v in c], dtype=object)
    if c.dtype.kind == "U":
        return c.astype(object)
    if c.dtype.kind == "O" and all(isinstance(v, numbers.Integral) for v in c):
        c = np.array([int(v) for v in c])
    if c.dtype.kind in "biuf" and np.isfinite(c.astype(np.float64)).all() \
            and (c == np.round(c)).all() and (np.abs(c.astype(np.float64)) < 2.0 ** 63).all():
        return c.astype(np.int64)
    raise ValueError("an ONNX classifier's labels are integers or strings (the label types of "
                     f"skl2onnx); classes_ holds {c.dtype} values {c[:3].tolist()!r}")


def export_classifier(layers, classes, scaling, path=None):
    """A classifier's graph: what ``SparseAutoencoderClassifier.to_onnx``
    returns.

    ``layers``: the network's ``(W, b)`` pairs, hidden layers first, the
    softmax layer last; ``classes``: ``classes_``; ``scaling``: float64
    ``(data_min, data_scale)`` or None.
    """
    dtype = layers[0][0].dtype
    labels = _label_values(classes)
    label_bytes = (labels.nbytes if labels.dtype == np.int64
                   else sum(len(v.encode("utf-8")) for v in labels))
    shapes = [W.shape for W, _ in layers]
    _check_bytes(_encoder_bytes(shapes, dtype, scaling is not None) + label_bytes,
                 "classifier", _described(shapes), dtype)
    # The hidden layers are a stacked encoder's, the softmax layer on top.
    g = _autoencoder_steps(_Graph(dtype, "X"), layers[:-1], scaling, [], "encoder")
    _dense(g, "softmax", *layers[-1], "softmax", out="probabilities")
    # The first of equal probabilities, as numpy's argmax in predict.
    g.apply("ArgMax", "class_index", axis=1, keepdims=0)
    g.node("Gather", [g.const("classes", labels), "class_index"], "label", axis=0)
    elem = _elem(dtype)
    label_elem = _elem(labels.dtype)  # int64, or object: STRING
    k = labels.shape[0]
    proto = _model_proto(g, "csae_sparse_autoencoder_classifier",
                         [("X", elem, ["N", layers[0][0].shape[1]])],
                         [("label", label_elem, ["N"]), ("probabilities", elem, ["N", k])])
    return _write(proto, path)


# --------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------

def to_onnx(model, path=None, what=None):
    """A fitted model as an ONNX graph.

    Parameters
    ----------
    model : SparseAutoencoder, StackedEncoder or SparseAutoencoderClassifier
        A fitted model (for the deep models, the same as
        ``model.to_onnx(path, ...)``).
    path : str, bytes, os.PathLike or None, default=None
        Where to write the graph (``.onnx``), by the rules of
        ``SparseAutoencoder.save``: written to a temporary name in the same
        folder and renamed when complete, so an existing file is replaced
        only by a complete one; a new file gets the mode ``open`` would give
        it (0o666 minus the umask), an existing one keeps its mode; a
        symbolic link is followed and kept; a read-only file
        (``PermissionError``) and a directory, FIFO, socket or device
        (``ValueError``) are refused.  None: write nothing.
    what : {"encoder", "decoder", "reconstruct"} or None, default=None
        For an autoencoder or a stack (None: "encoder"): "encoder" maps X
        (n_samples, n_features_in_) to the (top) hidden activations H, as
        ``transform``; "decoder" maps H to outputs, as
        ``inverse_transform``; "reconstruct" maps X to outputs, as
        ``reconstruct``.  A classifier takes none: its graph is
        ``predict`` and ``predict_proba``.

    Returns
    -------
    onnx.ModelProto
        Input "X" (or "H" for the decoder) and output "H" (or "Y"), in the
        model dtype, with a free batch dimension.  A classifier's outputs
        are "label" (N,), the ``classes_`` values (int64, or strings), and
        "probabilities" (N, n_classes) in the model dtype, as skl2onnx
        writes a scikit-learn classifier with ``zipmap=False``.  The input
        scaling of ``scale_inputs=True`` is part of the graph.

    Raises
    ------
    NotFittedError
        The model is not fitted (a ``ValueError``).
    ValueError
        ``what`` is unknown, or the graph's weights do not fit one protobuf
        message (2 GiB): checked from the shapes, before anything is built.
    TypeError
        ``model`` is none of the three.
    """
    from csae._base import ParamsMixin
    from csae._estimator import SparseAutoencoder

    if isinstance(model, SparseAutoencoder):
        return _export_autoencoder(model, path, "encoder" if what is None else what)
    # The deep models (csae.deep, which imports this module) export themselves.
    if isinstance(model, ParamsMixin) and callable(getattr(model, "to_onnx", None)):
        return model.to_onnx(path) if what is None else model.to_onnx(path, what=what)
    raise TypeError("model must be a csae.SparseAutoencoder, StackedEncoder or "
                    f"SparseAutoencoderClassifier, got {type(model).__name__}")


# --------------------------------------------------------------------------
# skl2onnx
# --------------------------------------------------------------------------

def _skl2onnx_shape(operator):
    """Output: (N, n_hidden), in the type of the input."""
    model = operator.raw_operator
    kind = type(operator.inputs[0].type)
    operator.outputs[0].type = kind([operator.inputs[0].type.shape[0],
                                     model.encoder_weights_.shape[0]])


def _skl2onnx_convert(scope, operator, container):
    """The encoder's steps, computed in the model dtype whatever the
    pipeline's tensor type (casts at both ends when they differ)."""
    from onnx import numpy_helper

    model = operator.raw_operator
    state = _fitted_state(model)
    _check_size(state, model, "encoder")
    snap = _snapshot(model, state)
    pipeline_type = operator.inputs[0].type.to_onnx_type().tensor_type.elem_type
    model_type = _elem(snap["dtype"])
    inp, out = operator.inputs[0].full_name, operator.outputs[0].full_name
    if model_type != pipeline_type:
        cast_in = scope.get_unique_variable_name("csae_input")
        container.add_node("Cast", [inp], [cast_in], to=model_type,
                           name=scope.get_unique_operator_name("Cast"))
        inp = cast_in
        final = scope.get_unique_variable_name("csae_hidden")
    else:
        final = out
    g = _autoencoder_steps(_Graph(snap["dtype"], inp), [snap["weights"][:2]], snap["scaling"],
                           [], "encoder").finish(final)
    names = {}

    def rename(name):
        if name in (inp, final):
            return name
        if name not in names:
            names[name] = scope.get_unique_variable_name(f"csae_{name}")
        return names[name]

    for name, array in g.inits:
        tensor = numpy_helper.from_array(array)
        container.add_initializer(rename(name), tensor.data_type, list(array.shape),
                                  array.ravel().tolist())
    for op, inputs, outputs, attrs in g.nodes:
        container.add_node(op, [rename(i) for i in inputs], [rename(o) for o in outputs],
                           name=scope.get_unique_operator_name(op), **attrs)
    if final != out:
        container.add_node("Cast", [final], [out], to=pipeline_type,
                           name=scope.get_unique_operator_name("Cast"))


def register_skl2onnx_converter():
    """Register ``SparseAutoencoder`` with skl2onnx (idempotent).

    Afterwards ``skl2onnx.to_onnx(pipeline, X[:1])`` converts a scikit-learn
    pipeline that contains a fitted ``SparseAutoencoder`` (its ``transform``
    step: the encoder) together with the other steps.  Needs skl2onnx.
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError:
        raise ImportError("converting pipelines needs skl2onnx: pip install skl2onnx") \
            from None
    from csae._estimator import SparseAutoencoder

    update_registered_converter(SparseAutoencoder, "CsaeSparseAutoencoder",
                                _skl2onnx_shape, _skl2onnx_convert)
