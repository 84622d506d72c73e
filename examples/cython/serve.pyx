# cython: language_level=3, boundscheck=False, wraparound=False
"""serve: another Cython extension that uses csae's engine directly.

It cimports the C API from ``csae.engine`` and links against the installed
``libcsae`` (see setup.py next to this file), so its hot loop runs without
the GIL and without going through csae's Python layer:

    encode(W, b, X)   hidden activations of the rows of X, from a trained
                      model's arrays (model.encoder_weights_, encoder_bias_)
    load(path)        the arrays of a model file, read by the C loader

Float64 only, to keep the example short (the _f32 functions are the same).
"""
import os

import numpy as np

from libc.stdlib cimport free, malloc

from csae.engine cimport (
    CSAE_DECODER_SIGMOID,
    CSAE_OK,
    csae_encode_f64,
    csae_forward_workspace_size,
    csae_model,
    csae_model_file_info,
    csae_model_file_input_range,
    csae_model_file_read_f64,
    csae_params_f64,
    csae_status,
    csae_status_message,
    csae_workspace,
)


cdef void _check(csae_status status, what) except *:
    if status != CSAE_OK:
        raise ValueError(f"{what}: {csae_status_message(status).decode()}")


def encode(const double[:, ::1] W, const double[::1] b, const double[:, ::1] X,
           size_t n_threads=1):
    """sigmoid(X W^T + b), computed by csae_encode_f64 outside the GIL."""
    cdef csae_model model
    model.n_hidden = W.shape[0]
    model.n_features = W.shape[1]
    # encode reads only the shape; the objective's fields must merely be valid
    model.decoder = CSAE_DECODER_SIGMOID
    model.sparsity_target = 0.05
    model.sparsity_weight = 0.0
    model.weight_decay = 0.0
    if b.shape[0] != W.shape[0] or X.shape[1] != W.shape[1]:
        raise ValueError(f"shapes differ: W ({W.shape[0]}, {W.shape[1]}), b ({b.shape[0]},), "
                         f"X ({X.shape[0]}, {X.shape[1]})")
    cdef size_t m = X.shape[0]
    out = np.empty((m, model.n_hidden), dtype=np.float64)
    if m == 0:
        return out
    cdef double[:, ::1] A = out
    cdef csae_workspace ws
    ws.n_threads = n_threads
    ws.size = csae_forward_workspace_size(&model, m, sizeof(double), n_threads)
    ws.data = malloc(ws.size)
    if ws.data == NULL:
        raise MemoryError()
    cdef csae_status status
    with nogil:
        status = csae_encode_f64(&model, &W[0, 0], &b[0], &X[0, 0], m, &A[0, 0], &ws)
    free(ws.data)
    _check(status, "csae_encode_f64")
    return out


def load(path):
    """A float64 model file's arrays, read by the C loader: a dict with
    W, b, Wd, bd and, for a scale_inputs model, data_min and data_scale."""
    cdef bytes name = os.fsencode(path)
    cdef const char *c_path = name
    cdef csae_model model
    cdef size_t elem = 0
    cdef csae_status status
    with nogil:
        status = csae_model_file_info(c_path, &model, &elem)
    _check(status, str(path))
    if elem != sizeof(double):
        raise ValueError(f"{path} holds a float32 model; this example reads float64 only")
    n, h = model.n_features, model.n_hidden
    arrays = {"W": np.empty((h, n)), "b": np.empty(h), "Wd": np.empty((n, h)),
              "bd": np.empty(n), "data_min": np.empty(n), "data_scale": np.empty(n)}
    cdef double[:, ::1] W = arrays["W"], Wd = arrays["Wd"]
    cdef double[::1] b = arrays["b"], bd = arrays["bd"]
    cdef double[::1] lo = arrays["data_min"], scale = arrays["data_scale"]
    cdef csae_params_f64 params
    params.W, params.b, params.Wd, params.bd = &W[0, 0], &b[0], &Wd[0, 0], &bd[0]
    cdef int scale_inputs = 0
    with nogil:
        status = csae_model_file_read_f64(c_path, &model, params)
        if status == CSAE_OK:
            status = csae_model_file_input_range(c_path, &model, &scale_inputs,
                                                 &lo[0], &scale[0])
    _check(status, str(path))
    if not scale_inputs:
        del arrays["data_min"], arrays["data_scale"]
    return arrays
