"""ONNX export of a fitted ``SparseAutoencoder`` (needs ``pip install "csae[onnx]"``).

``to_onnx`` writes the encoder, the decoder or the whole reconstruction as
an ONNX graph of standard operators (Gemm, Sigmoid, and Cast/Sub/Div/Mul/Add
for ``scale_inputs``), so any ONNX runtime can serve the model.
``register_skl2onnx_converter`` teaches skl2onnx the estimator, so that a
scikit-learn ``Pipeline`` holding one converts as a whole.

The graph repeats csae's arithmetic step by step: with ``scale_inputs`` the
inputs are scaled in float64 and then cast to the model dtype, as
``transform`` does (not folded into the weights, which would lose digits to
cancellation when features sit far from zero).  Results then differ from
``transform`` only by the runtime's summation order.

The onnx package is imported when a function here is called, never when
csae is imported.
"""

import numpy as np

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


def _check_model(model):
    from csae._estimator import SparseAutoencoder

    if not isinstance(model, SparseAutoencoder):
        raise TypeError(f"model must be a csae.SparseAutoencoder, got {type(model).__name__}")


def _snapshot(model, state=None):
    """The fitted state the graph needs, read once: weights in the model
    dtype, decoder, and the learned input range (or None)."""
    _check_model(model)
    if state is None:
        from csae._estimator import snapshot
        state = snapshot(model)[1]
    if state.params is None:
        raise ValueError("this SparseAutoencoder is not fitted yet: call fit before "
                         "exporting it to ONNX")
    dtype = np.dtype(model.dtype)
    weights = tuple(np.array(w, dtype=dtype) for w in state.params)
    scaling = None
    if model.scale_inputs:
        if state.data_min is None:
            raise ValueError("scale_inputs=True but this model has not learned an input "
                             "range: fit it with scale_inputs=True first")
        scaling = (np.array(state.data_min, np.float64), np.array(state.data_scale, np.float64))
    return dict(dtype=dtype, weights=weights, decoder=model.decoder, scaling=scaling)


def _graph_bytes(state, dtype, scale_inputs, what):
    """Bytes of the initializers ``_steps`` puts in the graph, from the
    shapes alone (nothing is copied): what one protobuf message must hold."""
    h, n = state.params[0].shape
    item = np.dtype(dtype).itemsize
    total = 0
    if what in ("encoder", "reconstruct"):
        total += (h * n + h) * item + (2 * n * 8 if scale_inputs else 0)
    if what in ("decoder", "reconstruct"):
        total += (n * h + n) * item + (2 * n * item if scale_inputs else 0)
    return total


def _check_size(state, model, what):
    """Refuse, before anything is built, a graph protobuf cannot hold:
    building it would take minutes and several times its size in memory
    before failing."""
    if state.params is None:
        return
    size = _graph_bytes(state, model.dtype, model.scale_inputs, what)
    if size + _GRAPH_MARGIN <= MAX_MESSAGE_BYTES:
        return
    h, n = state.params[0].shape
    dtype = np.dtype(model.dtype)
    hint = ("; a float32 model takes half as much" if dtype == np.float64 else "")
    if what == "reconstruct":
        hint += '; what="encoder" and what="decoder" each take half of "reconstruct"'
    raise ValueError(
        f"the ONNX {what} graph of this model needs {size / 2 ** 30:.2f} GiB of weights "
        f"({h} hidden units x {n} features, {dtype.name}), but an ONNX file is one "
        f"protobuf message of less than 2 GiB; export a smaller model{hint}")


def _steps(snap, what, inp, out):
    """The graph as plain data: (nodes, initializers) with nodes as
    (op_type, inputs, outputs, attributes) and initializers as
    (name, array).  Names other than ``inp`` and ``out`` are local ones
    that the caller may rename."""
    onnx = _import_onnx()
    elem = {np.dtype(np.float32): onnx.TensorProto.FLOAT,
            np.dtype(np.float64): onnx.TensorProto.DOUBLE}
    dtype = snap["dtype"]
    W, b, Wd, bd = snap["weights"]
    nodes, inits = [], []

    def node(op, inputs, output, **attrs):
        nodes.append((op, list(inputs), [output], attrs))
        return output

    def const(name, array):
        inits.append((name, np.ascontiguousarray(array)))
        return name

    current = inp
    if what in ("encoder", "reconstruct"):
        if snap["scaling"] is not None:
            data_min, data_scale = snap["scaling"]
            x64 = current if dtype == np.float64 else node(
                "Cast", [current], "x_float64", to=elem[np.dtype(np.float64)])
            centred = node("Sub", [x64, const("data_min", data_min)], "x_centred")
            current = node("Div", [centred, const("data_scale", data_scale)], "x_scaled64")
            if dtype != np.float64:
                current = node("Cast", [current], "x_scaled", to=elem[dtype])
        z1 = node("Gemm", [current, const("encoder_weights", W), const("encoder_bias", b)],
                  "z_hidden", transB=1)
        current = node("Sigmoid", [z1], "hidden")
    if what in ("decoder", "reconstruct"):
        current = node("Gemm", [current, const("decoder_weights", Wd),
                                const("decoder_bias", bd)], "z_output", transB=1)
        if snap["decoder"] == "sigmoid":
            current = node("Sigmoid", [current], "output")
        if snap["scaling"] is not None:
            data_min, data_scale = snap["scaling"]
            scaled = node("Mul", [current, const("output_scale", data_scale.astype(dtype))],
                          "output_scaled")
            current = node("Add", [scaled, const("output_min", data_min.astype(dtype))],
                           "output_unscaled")
    # The last node writes the graph's output.
    op, inputs, _, attrs = nodes[-1]
    nodes[-1] = (op, inputs, [out], attrs)
    return nodes, inits


def _check_what(what):
    if what not in _WHAT:
        raise ValueError(f"what must be one of {', '.join(map(repr, _WHAT))}, got {what!r}")


def to_onnx(model, path=None, what="encoder"):
    """A fitted model as an ONNX graph.

    Parameters
    ----------
    model : SparseAutoencoder
        A fitted model.
    path : str, bytes, os.PathLike or None, default=None
        Where to write the graph (``.onnx``), by the rules of
        ``SparseAutoencoder.save``: written to a temporary name in the same
        folder and renamed when complete, so an existing file is replaced
        only by a complete one; a new file gets the mode ``open`` would give
        it (0o666 minus the umask), an existing one keeps its mode; a
        symbolic link is followed and kept; a read-only file
        (``PermissionError``) and a directory, FIFO, socket or device
        (``ValueError``) are refused.  None: write nothing.
    what : {"encoder", "decoder", "reconstruct"}, default="encoder"
        "encoder" maps X (n_samples, n_features_in_) to the hidden
        activations H, as ``transform``; "decoder" maps H to outputs, as
        ``inverse_transform``; "reconstruct" maps X to outputs, as
        ``reconstruct``.

    Returns
    -------
    onnx.ModelProto
        Input "X" (or "H" for the decoder) and output "H" (or "Y"), in the
        model dtype, with a free batch dimension.  The input scaling of
        ``scale_inputs=True`` is part of the graph.

    Raises
    ------
    ValueError
        The model is not fitted, ``what`` is unknown, or the graph's weights
        do not fit one protobuf message (2 GiB): checked from the shapes,
        before anything is built.
    """
    _check_what(what)
    _check_model(model)
    from csae._estimator import snapshot
    state = snapshot(model)[1]  # one immutable snapshot: weights and range that belong together
    _check_size(state, model, what)
    snap = _snapshot(model, state)
    onnx = _import_onnx()
    from onnx import helper, numpy_helper

    elem = onnx.TensorProto.FLOAT if snap["dtype"] == np.float32 else onnx.TensorProto.DOUBLE
    h, n = snap["weights"][0].shape
    inp, width_in = ("H", h) if what == "decoder" else ("X", n)
    out, width_out = ("H", h) if what == "encoder" else ("Y", n)
    nodes, inits = _steps(snap, what, inp, out)
    graph = helper.make_graph(
        [helper.make_node(op, i, o, name=f"{op.lower()}_{k}", **attrs)
         for k, (op, i, o, attrs) in enumerate(nodes)],
        f"csae_sparse_autoencoder_{what}",
        [helper.make_tensor_value_info(inp, elem, ["N", width_in])],
        [helper.make_tensor_value_info(out, elem, ["N", width_out])],
        [numpy_helper.from_array(a, name) for name, a in inits])
    proto = helper.make_model(graph, producer_name="csae",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(proto)
    if path is not None:
        from csae._files import write_atomically
        write_atomically(path, lambda fh: fh.write(proto.SerializeToString()))
    return proto


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
    _check_model(model)
    from csae._estimator import snapshot
    state = snapshot(model)[1]
    _check_size(state, model, "encoder")
    snap = _snapshot(model, state)
    pipeline_type = operator.inputs[0].type.to_onnx_type().tensor_type.elem_type
    model_type = numpy_helper.from_array(np.zeros(1, snap["dtype"])).data_type
    inp, out = operator.inputs[0].full_name, operator.outputs[0].full_name
    if model_type != pipeline_type:
        cast_in = scope.get_unique_variable_name("csae_input")
        container.add_node("Cast", [inp], [cast_in], to=model_type,
                           name=scope.get_unique_operator_name("Cast"))
        inp = cast_in
        final = scope.get_unique_variable_name("csae_hidden")
    else:
        final = out
    nodes, inits = _steps(snap, "encoder", inp, final)
    names = {}

    def rename(name):
        if name in (inp, final):
            return name
        if name not in names:
            names[name] = scope.get_unique_variable_name(f"csae_{name}")
        return names[name]

    for name, array in inits:
        tensor = numpy_helper.from_array(array)
        container.add_initializer(rename(name), tensor.data_type, list(array.shape),
                                  array.ravel().tolist())
    for op, inputs, outputs, attrs in nodes:
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
