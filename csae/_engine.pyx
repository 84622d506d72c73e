# cython: language_level=3
"""The compiled backend: the C engine (src_c/) behind the same functions as
``csae.reference``.

This layer checks shapes and dtypes, allocates the output and the engine's
workspace, releases the GIL for the call and turns status codes into
exceptions.  It computes nothing itself.  Arrays must already be
C-contiguous and of one dtype (float32 or float64); the estimator converts
user input before it gets here.
"""

import operator
import threading

import numpy as np

cimport numpy as cnp
from libc.math cimport fabs, isfinite
from libc.float cimport FLT_MAX
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset
from cpython.exc cimport PyErr_CheckSignals

from csae.engine cimport *
from csae._errors import NonFiniteError
from csae._threads import effective_n_threads

# Engine internals the binding needs (kernels.h is not public API).
cdef extern from "kernels.h" nogil:
    # Multiply-adds below which a product stays on one thread.
    enum: CSAE_GEMM_PARALLEL_MIN
    void csae_pool_stats(size_t *workers, size_t *last_job, unsigned long *worker_runs)

# The whole of a model file, for csae.load (model_file.h mirrors this; it is
# internal, not in csae.h, so not in engine.pxd, which Cython users cimport).
cdef extern from "model_file.h" nogil:
    enum: CSAE_MODEL_RECORD_MAX

    ctypedef struct csae_model_layout:
        csae_model model
        size_t elem_size
        int scale_inputs
        uint64_t version
        uint64_t n_iter
        int has_velocity, has_adam, has_running, has_range, has_rng
        uint64_t rng_state, adam_t, running_batches
        int has_stop_reason
        char stop_reason[32]
        size_t record_len
        char record[CSAE_MODEL_RECORD_MAX + 1]

    ctypedef struct csae_model_arrays:
        void *params[4]
        void *velocity[4]
        void *adam_m[4]
        void *adam_v[4]
        void *rho_running
        double *loss_curve
        double *data_min
        double *data_scale

    csae_status csae_model_file_layout(int fd, csae_model_layout *layout)
    csae_status csae_model_file_read_all(int fd, const csae_model_layout *layout,
                                         const csae_model_arrays *dest)

    enum: CSAE_DEEP_RECORD_MAX
    enum: CSAE_DEEP_MEMBERS
    ctypedef struct csae_deep_shape:
        csae_deep_file info
        uint64_t version
        int present[CSAE_DEEP_MEMBERS]
        char kind[CSAE_DEEP_MEMBERS]
        uint64_t itemsize[CSAE_DEEP_MEMBERS]
        int ndim[CSAE_DEEP_MEMBERS]
        uint64_t shape[CSAE_DEEP_MEMBERS][2]
        size_t record_len

    ctypedef struct csae_deep_layout:
        csae_deep_shape shape
        char record[CSAE_DEEP_RECORD_MAX + 1]

    size_t csae_deep_member_name(size_t i, char *out, size_t cap)
    csae_status csae_deep_file_layout(int fd, csae_deep_layout *layout)
    csae_status csae_deep_file_read_all(int fd, const csae_deep_layout *layout,
                                        void *const *dest)

cnp.import_array()

ctypedef fused real:
    float
    double

_MASK64 = (1 << 64) - 1
_DECODERS = {"sigmoid": CSAE_DECODER_SIGMOID, "linear": CSAE_DECODER_LINEAR}


# ---------------------------------------------------------------------------
# Kernel paths
# ---------------------------------------------------------------------------

def _path_ids():
    """{name: id} of the kernel paths this build has, in the engine's order
    (portable first, best last): the engine's registration table is the
    one list of them."""
    cdef size_t i
    cdef csae_kernel_path path
    ids = {}
    for i in range(csae_kernel_path_count()):
        path = csae_kernel_path_at(i)
        ids[csae_kernel_path_name(path).decode("ascii")] = path
    return ids


def kernel_paths():
    """Names of the kernel paths this CPU can run, portable first and the
    best (the default) last."""
    return [name for name, path in _path_ids().items() if csae_kernel_path_supported(path)]


def get_kernel_path():
    """Name of the kernel path in use ("portable", "avx2", "avx512" or "neon")."""
    cdef const char *name = csae_kernel_path_name(csae_get_kernel_path())
    if name == NULL:
        raise RuntimeError(f"the engine reports an unknown kernel path {<int>csae_get_kernel_path()}")
    return name.decode("ascii")


def set_kernel_path(name):
    """Use the kernel path ``name`` ("portable", "avx2", "avx512", "neon" or
    "auto") from now on, for the whole process."""
    paths = _path_ids()
    path = CSAE_PATH_AUTO if name == "auto" else paths.get(name)
    if path is None:
        raise ValueError(f"unknown kernel path {name!r}; expected 'auto' or one of {list(paths)}")
    if csae_set_kernel_path(path) != CSAE_OK:
        raise ValueError(f"kernel path {name!r} is not supported on this CPU")


def _warn_if_forced_path_ignored():
    """The engine reads CSAE_KERNEL_PATH once and falls back to the best
    path when it names no path this CPU has: say so rather than let a
    benchmark or a test silently run another path."""
    import os
    import warnings
    forced = os.environ.get("CSAE_KERNEL_PATH")
    if forced and forced != get_kernel_path():
        warnings.warn(f"CSAE_KERNEL_PATH={forced!r} is not a kernel path this CPU runs "
                      f"(it runs {kernel_paths()}); using {get_kernel_path()!r}",
                      RuntimeWarning, stacklevel=2)


_warn_if_forced_path_ignored()


# ---------------------------------------------------------------------------
# Worker pool
# ---------------------------------------------------------------------------

def _pool_stats():
    """Test hook: ``(workers, last_job, worker_runs)`` of this process's
    worker pool: workers started so far, workers the last parallel job
    waited on, and jobs run by all workers since they started."""
    cdef size_t workers, last_job
    cdef unsigned long worker_runs
    csae_pool_stats(&workers, &last_job, &worker_runs)
    return workers, last_job, worker_runs


# ---------------------------------------------------------------------------
# Translation helpers
# ---------------------------------------------------------------------------

cdef class _Workspace:
    """Scratch memory for one engine call, freed with the object."""
    cdef csae_workspace ws

    def __cinit__(self, size_t size, size_t n_threads):
        if size == <size_t>-1:
            raise ValueError("problem too large: workspace size overflows")
        self.ws.data = malloc(size if size else 1)
        if self.ws.data == NULL:
            raise MemoryError(f"cannot allocate a {size}-byte workspace")
        self.ws.size = size
        self.ws.n_threads = n_threads

    def __dealloc__(self):
        free(self.ws.data)


cdef int _raise_for(csae_status status) except -1:
    if status == CSAE_OK:
        return 0
    message = csae_status_message(status).decode()
    if status == CSAE_ERR_NONFINITE:
        raise NonFiniteError(f"the objective, its gradient or the updated parameters are not finite ({message})")
    raise ValueError(f"csae engine: {message}")


cdef csae_model _model(size_t n, size_t h, decoder, double rho, double beta,
                       double lam) except *:
    cdef csae_model model
    if decoder not in _DECODERS:
        raise ValueError(f"decoder must be one of {tuple(_DECODERS)}, got {decoder!r}")
    if not 0.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (0, 1), got {rho!r}")
    if not (beta >= 0 and isfinite(beta)):
        raise ValueError(f"beta must be finite and >= 0, got {beta!r}")
    if not (lam >= 0 and isfinite(lam)):
        raise ValueError(f"lam must be finite and >= 0, got {lam!r}")
    model = _forward_model(n, h)
    model.decoder = _DECODERS[decoder]
    model.sparsity_target = rho
    model.sparsity_weight = beta
    model.weight_decay = lam
    return model


cdef inline csae_model _forward_model(size_t n, size_t h) noexcept:
    """A model for the calls that only run the network (encode, decode,
    initialisation): the objective's hyperparameters are unused there, so
    they get valid neutral values (rho 0.5, no penalty)."""
    cdef csae_model model
    model.n_features = n
    model.n_hidden = h
    model.decoder = CSAE_DECODER_SIGMOID
    model.sparsity_target = 0.5
    model.sparsity_weight = 0.0
    model.weight_decay = 0.0
    return model


cdef size_t _threads(n_threads) except 0:
    try:
        count = operator.index(n_threads)
    except TypeError:
        raise TypeError(f"n_threads must be an integer, got {n_threads!r}") from None
    if count < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads!r}")
    # The engine uses at most CSAE_MAX_THREADS; asking for more is harmless.
    return min(count, CSAE_MAX_THREADS)


def _dtype_of(*arrays):
    """The common floating dtype of the arrays, or TypeError."""
    dtypes = {np.asarray(a).dtype for a in arrays}
    if len(dtypes) != 1:
        raise TypeError(f"all arrays must share one dtype, got {sorted(map(str, dtypes))}")
    dtype = dtypes.pop()
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"arrays must be float32 or float64, got {dtype}")
    return dtype


def _check_params(params, n=None):
    """(W, b, Wd, bd) with consistent shapes; returns (n, h)."""
    if not isinstance(params, (tuple, list)) or len(params) != 4:
        raise TypeError("params must be a tuple (W, b, Wd, bd)")
    W, b, Wd, bd = params
    if np.ndim(W) != 2:
        raise ValueError(f"W must be 2-D (h, n), got shape {np.shape(W)}")
    h, n_w = W.shape
    if b.shape != (h,) or Wd.shape != (n_w, h) or bd.shape != (n_w,):
        raise ValueError(
            f"inconsistent parameter shapes: W {W.shape}, b {b.shape}, Wd {Wd.shape}, bd {bd.shape}")
    if n is not None and n != n_w:
        raise ValueError(f"X has {n} features but the parameters expect {n_w}")
    return n_w, h


def _check_layer(weights, bias, inputs, name):
    """One layer's weights (outputs, inputs) and bias (outputs,) against the
    number of input columns; returns the number of outputs."""
    if np.ndim(weights) != 2 or np.ndim(bias) != 1:
        raise ValueError(f"{name}: weights must be 2-D and the bias 1-D, got shapes "
                         f"{np.shape(weights)} and {np.shape(bias)}")
    outputs, width = weights.shape
    if width != inputs:
        raise ValueError(f"{name}: the input has {inputs} columns but the weights expect {width}")
    if bias.shape != (outputs,):
        raise ValueError(f"{name}: bias shape {bias.shape} does not match {outputs} outputs")
    return outputs


def _check_X(X):
    if np.ndim(X) != 2:
        raise ValueError(f"X must be 2-D (m, n), got shape {np.shape(X)}")
    return X.shape


# ---------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------

cdef _encode(const real[:, ::1] W, const real[::1] b, const real[:, ::1] X,
             real[:, ::1] A, csae_model *model, size_t n_threads):
    cdef size_t m = X.shape[0]
    cdef _Workspace work = _Workspace(
        csae_forward_workspace_size(model, m, sizeof(real), n_threads), n_threads)
    cdef csae_status status
    with nogil:
        if real is double:
            status = csae_encode_f64(model, &W[0, 0], &b[0], &X[0, 0] if m else NULL,
                                     m, &A[0, 0] if m else NULL, &work.ws)
        else:
            status = csae_encode_f32(model, &W[0, 0], &b[0], &X[0, 0] if m else NULL,
                                     m, &A[0, 0] if m else NULL, &work.ws)
    _raise_for(status)


def encode(W, b, X, *, n_threads=1):
    """Hidden activations A = sigmoid(X W^T + b), shape (m, h)."""
    dtype = _dtype_of(W, b, X)
    m, n = _check_X(X)
    h = _check_layer(W, b, n, "encode")
    cdef csae_model model = _forward_model(n, h)
    A = np.empty((m, h), dtype)
    if dtype == np.float64:
        _encode[double](W, b, X, A, &model, _threads(n_threads))
    else:
        _encode[float](W, b, X, A, &model, _threads(n_threads))
    return A


cdef bint _plain_matrix(object a, int typenum, cnp.npy_intp cols):
    """a is an aligned, native-byte-order, C-contiguous 2-D ndarray of typenum
    with `cols` columns and at least one row: what the engine can read as it is."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_NDIM(arr) == 2 and cnp.PyArray_TYPE(arr) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)
            and cnp.PyArray_ISNOTSWAPPED(arr) and cnp.PyArray_DIMS(arr)[0] >= 1 and cnp.PyArray_DIMS(arr)[1] == cols)


cdef bint _all_finite_f64(const double *x, size_t count) noexcept nogil:
    # A value is NaN or inf exactly when its exponent bits are all ones.  An
    # integer OR over the bit patterns vectorises (a float test would not),
    # which matters when checking a whole batch before encoding it.
    cdef const uint64_t *bits = <const uint64_t *>x
    cdef uint64_t bad = 0
    cdef size_t i
    for i in range(count):
        bad |= (bits[i] & 0x7FF0000000000000ULL) == 0x7FF0000000000000ULL
    return bad == 0


cdef bint _all_finite_f32(const float *x, size_t count) noexcept nogil:
    cdef const uint32_t *bits = <const uint32_t *>x
    cdef uint32_t bad = 0
    cdef size_t i
    for i in range(count):
        bad |= (bits[i] & 0x7F800000U) == 0x7F800000U
    return bad == 0


cdef object _cast_finite(object X, int typenum):
    """X (a plain matrix of the other float width) cast to typenum, or None
    if a value is not finite or (float64 to float32) beyond float32's range:
    the validating path then reports it."""
    cdef cnp.ndarray src = <cnp.ndarray>X
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(src), typenum, 0)
    cdef size_t i, count = <size_t>cnp.PyArray_SIZE(src)
    cdef const double *d64
    cdef const float *d32
    cdef bint ok = True
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            d64 = <const double *>cnp.PyArray_DATA(src)
            for i in range(count):
                if not fabs(d64[i]) <= FLT_MAX:
                    ok = False
                    break
                (<float *>cnp.PyArray_DATA(out))[i] = <float>d64[i]
        else:
            d32 = <const float *>cnp.PyArray_DATA(src)
            ok = _all_finite_f32(d32, count)
            if ok:
                for i in range(count):
                    (<double *>cnp.PyArray_DATA(out))[i] = d32[i]
    return out if ok else None


def encode_fast(W, b, X, n_threads=1, cast=False):
    """``encode`` for the latency-bound case, or None.

    When W (h, n) and b (h,) are C-contiguous arrays of one float dtype and X
    is an aligned, native-byte-order, C-contiguous 2-D array of that dtype
    with n columns, at least one row and only finite values, returns its activations; for
    anything else returns None, and the caller takes the validating path
    (which says what is wrong).  All checks happen here at C level, so a
    call on one row costs about a microsecond.

    ``n_threads`` is the estimator's (already validated): an int, or None
    for the default.  It is resolved as the estimator does
    (``csae._threads.effective_n_threads``: capped at the CPUs, None read
    from ``OMP_NUM_THREADS``, the affinity and threadpoolctl's limit), and
    only when the call is big enough for the engine to split it; smaller
    calls run on one thread whatever it says, so they pay nothing for it.

    ``cast=True`` also takes X of the other float width (float64 for a
    float32 model, the usual case, or float32 for a float64 one), cast once
    here as the validating path would cast it.
    """
    if type(W) is not cnp.ndarray or type(b) is not cnp.ndarray:
        return None
    cdef cnp.ndarray Wa = <cnp.ndarray>W, ba = <cnp.ndarray>b
    if cnp.PyArray_NDIM(Wa) != 2 or cnp.PyArray_NDIM(ba) != 1:
        return None
    cdef int typenum = cnp.PyArray_TYPE(Wa)
    if typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT:
        return None
    cdef cnp.npy_intp h = cnp.PyArray_DIMS(Wa)[0], n = cnp.PyArray_DIMS(Wa)[1]
    if (not _plain_matrix(W, typenum, n) or cnp.PyArray_TYPE(ba) != typenum
            or not cnp.PyArray_IS_C_CONTIGUOUS(ba) or not cnp.PyArray_ISALIGNED(ba)
            or not cnp.PyArray_ISNOTSWAPPED(ba)
            or cnp.PyArray_DIMS(ba)[0] != h):
        return None
    if not _plain_matrix(X, typenum, n):
        other = cnp.NPY_FLOAT if typenum == cnp.NPY_DOUBLE else cnp.NPY_DOUBLE
        if not (cast and _plain_matrix(X, other, n)):
            return None
        X = _cast_finite(X, typenum)
        if X is None:
            return None
    cdef cnp.ndarray Xa = <cnp.ndarray>X
    cdef size_t m = cnp.PyArray_DIMS(Xa)[0]
    cdef csae_model model = _forward_model(n, h)
    cdef size_t threads = 1
    if <double>m * n * h >= CSAE_GEMM_PARALLEL_MIN:
        threads = max(1, min(effective_n_threads(n_threads), CSAE_MAX_THREADS))
    cdef size_t elem = 8 if typenum == cnp.NPY_DOUBLE else 4
    cdef size_t size = csae_forward_workspace_size(&model, m, elem, threads)
    if size == <size_t>-1:
        return None
    cdef cnp.npy_intp dims[2]
    dims[0] = m
    dims[1] = h
    cdef cnp.ndarray A = cnp.PyArray_EMPTY(2, dims, typenum, 0)
    # A single row needs only a few hundred bytes: no heap allocation then.
    cdef char small[4096]
    cdef csae_workspace ws
    ws.data = small if size <= sizeof(small) else malloc(size)
    if ws.data == NULL:
        raise MemoryError(f"cannot allocate a {size}-byte workspace")
    ws.size = size
    ws.n_threads = threads
    cdef csae_status status = CSAE_OK
    cdef bint finite
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            finite = _all_finite_f64(<const double *>cnp.PyArray_DATA(Xa), m * n)
            if finite:
                status = csae_encode_f64(&model, <const double *>cnp.PyArray_DATA(Wa),
                                         <const double *>cnp.PyArray_DATA(ba),
                                         <const double *>cnp.PyArray_DATA(Xa), m,
                                         <double *>cnp.PyArray_DATA(A), &ws)
        else:
            finite = _all_finite_f32(<const float *>cnp.PyArray_DATA(Xa), m * n)
            if finite:
                status = csae_encode_f32(&model, <const float *>cnp.PyArray_DATA(Wa),
                                         <const float *>cnp.PyArray_DATA(ba),
                                         <const float *>cnp.PyArray_DATA(Xa), m,
                                         <float *>cnp.PyArray_DATA(A), &ws)
    if ws.data != <void *>small:
        free(ws.data)
    if not finite:
        return None
    _raise_for(status)
    return A


cdef _decode(const real[:, ::1] Wd, const real[::1] bd, const real[:, ::1] A,
             real[:, ::1] Y, csae_model *model, size_t n_threads):
    cdef size_t m = A.shape[0]
    cdef _Workspace work = _Workspace(
        csae_forward_workspace_size(model, m, sizeof(real), n_threads), n_threads)
    cdef csae_status status
    with nogil:
        if real is double:
            status = csae_decode_f64(model, &Wd[0, 0], &bd[0], &A[0, 0] if m else NULL,
                                     m, &Y[0, 0] if m else NULL, &work.ws)
        else:
            status = csae_decode_f32(model, &Wd[0, 0], &bd[0], &A[0, 0] if m else NULL,
                                     m, &Y[0, 0] if m else NULL, &work.ws)
    _raise_for(status)


def decode(Wd, bd, A, decoder="sigmoid", *, n_threads=1):
    """Decoder output Y = g(A Wd^T + bd), shape (m, n)."""
    dtype = _dtype_of(Wd, bd, A)
    m, h = _check_X(A)
    n = _check_layer(Wd, bd, h, "decode")
    cdef csae_model model = _model(n, h, decoder, 0.5, 0.0, 0.0)
    Y = np.empty((m, n), dtype)
    if dtype == np.float64:
        _decode[double](Wd, bd, A, Y, &model, _threads(n_threads))
    else:
        _decode[float](Wd, bd, A, Y, &model, _threads(n_threads))
    return Y


def reconstruct(params, X, decoder="sigmoid", *, n_threads=1):
    """decode(encode(X)): the model's reconstruction of X, shape (m, n)."""
    W, b, Wd, bd = params
    _check_params(params, _check_X(X)[1])
    return decode(Wd, bd, encode(W, b, X, n_threads=n_threads), decoder,
                  n_threads=n_threads)


# ---------------------------------------------------------------------------
# Objective, gradients and SGD
# ---------------------------------------------------------------------------

cdef double _objective(real[:, ::1] W, real[::1] b, real[:, ::1] Wd, real[::1] bd,
                       const real[:, ::1] X, real[:, ::1] gW, real[::1] gb,
                       real[:, ::1] gWd, real[::1] gbd, bint need_gradients,
                       csae_model *model, size_t n_threads) except? -1.0:
    cdef size_t m = X.shape[0]
    cdef _Workspace work = _Workspace(
        csae_train_workspace_size(model, m, sizeof(real), n_threads), n_threads)
    cdef csae_status status
    cdef double loss = 0.0
    cdef csae_params_f64 p64, g64
    cdef csae_params_f32 p32, g32
    with nogil:
        if real is double:
            p64 = csae_params_f64(&W[0, 0], &b[0], &Wd[0, 0], &bd[0])
            g64 = csae_params_f64(NULL, NULL, NULL, NULL)
            if need_gradients:
                g64 = csae_params_f64(&gW[0, 0], &gb[0], &gWd[0, 0], &gbd[0])
            status = csae_objective_f64(model, p64, &X[0, 0], m, &loss, g64, NULL, &work.ws)
        else:
            p32 = csae_params_f32(&W[0, 0], &b[0], &Wd[0, 0], &bd[0])
            g32 = csae_params_f32(NULL, NULL, NULL, NULL)
            if need_gradients:
                g32 = csae_params_f32(&gW[0, 0], &gb[0], &gWd[0, 0], &gbd[0])
            status = csae_objective_f32(model, p32, &X[0, 0], m, &loss, g32, NULL, &work.ws)
    _raise_for(status)
    return loss


def _const_params(params):
    """The engine never writes params here; read-only arrays are copied so the
    writable memoryviews of the shared code path accept them."""
    return tuple(p if p.flags.writeable else p.copy() for p in params)


def objective_and_gradients(params, X, *, rho, beta, lam, decoder="sigmoid",
                            need_gradients=True, n_threads=1):
    """Objective L on the batch X and its gradients ``(dW, db, dWd, dbd)``
    (``None`` when ``need_gradients`` is false)."""
    dtype = _dtype_of(*params, X)
    m, n = _check_X(X)
    n, h = _check_params(params, n)
    if m == 0:
        raise ValueError("X has no rows")
    cdef csae_model model = _model(n, h, decoder, rho, beta, lam)
    W, b, Wd, bd = _const_params(params)
    grads = gW, gb, gWd, gbd = tuple(np.empty_like(p) for p in (W, b, Wd, bd))
    if dtype == np.float64:
        loss = _objective[double](W, b, Wd, bd, X, gW, gb, gWd, gbd, need_gradients,
                                  &model, _threads(n_threads))
    else:
        loss = _objective[float](W, b, Wd, bd, X, gW, gb, gWd, gbd, need_gradients,
                                 &model, _threads(n_threads))
    return float(loss), (grads if need_gradients else None)


def objective(params, X, *, rho, beta, lam, decoder="sigmoid", n_threads=1):
    """Objective L on the batch X (rho_hat is the mean activation over X)."""
    return objective_and_gradients(params, X, rho=rho, beta=beta, lam=lam,
                                   decoder=decoder, need_gradients=False,
                                   n_threads=n_threads)[0]


_SOLVERS = ("sgd", "adam")


cdef csae_sgd _sgd(learning_rate, momentum, batch_size, shuffle) except *:
    cdef csae_sgd sgd
    if not (learning_rate > 0 and np.isfinite(learning_rate)):
        raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    sgd.learning_rate = learning_rate
    sgd.momentum = momentum
    sgd.batch_size = int(batch_size)
    sgd.shuffle = bool(shuffle)
    return sgd


cdef csae_solver _solver(solver, beta_1, beta_2, epsilon, sparsity_smoothing) except *:
    cdef csae_solver out
    memset(&out, 0, sizeof(out))
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}")
    if solver == "adam":
        if not 0 <= beta_1 < 1:
            raise ValueError(f"beta_1 must lie in [0, 1), got {beta_1!r}")
        if not 0 <= beta_2 < 1:
            raise ValueError(f"beta_2 must lie in [0, 1), got {beta_2!r}")
        if not (epsilon > 0 and np.isfinite(epsilon)):
            raise ValueError(f"epsilon must be finite and > 0, got {epsilon!r}")
        out.adam = 1
        out.beta_1 = beta_1
        out.beta_2 = beta_2
        out.epsilon = epsilon
    if sparsity_smoothing is not None:
        if not 0 < sparsity_smoothing <= 1:
            raise ValueError(
                f"sparsity_smoothing must lie in (0, 1] (or be None), got {sparsity_smoothing!r}")
        out.sparsity_smoothing = sparsity_smoothing
    return out


cdef int _stop_on_signal(void *context) noexcept nogil:
    """Stop callback: lets Python run its signal handlers between minibatches;
    an exception they raise (KeyboardInterrupt) is kept for re-raising."""
    with gil:
        try:
            PyErr_CheckSignals()
        except BaseException as exc:
            (<list>context).append(exc)
            return 1
    return 0


cdef csae_params_f64 _params_f64(arrays) except *:
    """The engine's view of four C-contiguous float64 arrays (W, b, Wd, bd);
    valid while the arrays live."""
    cdef double[:, ::1] W = arrays[0], Wd = arrays[2]
    cdef double[::1] b = arrays[1], bd = arrays[3]
    return csae_params_f64(&W[0, 0], &b[0], &Wd[0, 0], &bd[0])


cdef csae_params_f32 _params_f32(arrays) except *:
    cdef float[:, ::1] W = arrays[0], Wd = arrays[2]
    cdef float[::1] b = arrays[1], bd = arrays[3]
    return csae_params_f32(&W[0, 0], &b[0], &Wd[0, 0], &bd[0])


def _check_like_params(name, arrays, params, dtype):
    """``arrays`` is a 4-tuple of writable C-contiguous arrays of ``dtype``
    shaped like ``params``; TypeError or ValueError otherwise."""
    if not isinstance(arrays, (tuple, list)) or len(arrays) != 4:
        raise TypeError(f"{name} must be a tuple of 4 arrays shaped like params (W, b, Wd, bd)")
    for a, p in zip(arrays, params):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must hold NumPy arrays, got {type(a).__name__}")
        if a.dtype != dtype:
            raise TypeError(f"{name} must have the dtype of params ({dtype}), got {a.dtype}")
        if a.shape != p.shape:
            raise ValueError(f"{name} must have the shapes of params: "
                             f"{[x.shape for x in params]}, got {[x.shape for x in arrays]}")
        if not (a.flags.c_contiguous and a.flags.writeable):
            raise ValueError(f"{name} arrays must be C-contiguous and writable")


def _count(name, value):
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if count < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return count


def _prepare_training(params, velocity, X, momentum, solver="sgd", adam_m=None,
                      adam_v=None, adam_t=0, sparsity_smoothing=None, rho_running=None,
                      running_batches=0):
    dtype = _dtype_of(*params, X)
    m, n = _check_X(X)
    n, h = _check_params(params, n)
    if m == 0:
        raise ValueError("X has no rows")
    if any(not p.flags.writeable for p in params):
        raise ValueError("params must be writable: training updates them in place")
    have_velocity = momentum != 0 and solver != "adam"
    if have_velocity:
        if velocity is None:
            raise ValueError("momentum > 0 needs velocity arrays")
        _dtype_of(*velocity, X)
        _check_params(velocity, n)
        if tuple(v.shape for v in velocity) != tuple(p.shape for p in params):
            raise ValueError("velocity must have the shapes of params")
    else:
        velocity = None
    if solver == "adam":
        _check_like_params("adam_m", adam_m, params, dtype)
        _check_like_params("adam_v", adam_v, params, dtype)
    adam_t = _count("adam_t", adam_t)
    if sparsity_smoothing is not None:
        if not isinstance(rho_running, np.ndarray):
            raise TypeError("sparsity_smoothing needs rho_running, a NumPy array of shape "
                            f"({h},), got {type(rho_running).__name__}")
        if rho_running.dtype != dtype:
            raise TypeError(f"rho_running must have the dtype of params ({dtype}), "
                            f"got {rho_running.dtype}")
        if rho_running.shape != (h,):
            raise ValueError(f"rho_running must have shape ({h},), got {rho_running.shape}")
        if not (rho_running.flags.c_contiguous and rho_running.flags.writeable):
            raise ValueError("rho_running must be C-contiguous and writable")
    running_batches = _count("running_batches", running_batches)
    return dtype, n, h, have_velocity, velocity, adam_t, running_batches


def sgd_epoch(params, velocity, X, *, rho, beta, lam, decoder="sigmoid",
              learning_rate, momentum=0.0, batch_size, shuffle=False,
              rng_state=0, solver="sgd", beta_1=0.9, beta_2=0.999, epsilon=1e-8,
              adam_m=None, adam_v=None, adam_t=0, sparsity_smoothing=None,
              rho_running=None, running_batches=0, n_threads=1):
    """One epoch of minibatch training over the rows of X, in place; returns
    ``(epoch_loss, rng_state)``.  See ``csae.reference.sgd_epoch`` (solver
    "sgd" or "adam", the running sparsity estimate).

    Every argument is checked before anything changes.  SIGINT (Ctrl-C) in
    the main thread ends the epoch after the current minibatch and raises
    KeyboardInterrupt, the parameters (and state) holding the last whole
    update.  NonFiniteError (with ``batch``, the minibatches applied before)
    leaves them at their last finite values.  ``adam_t`` and
    ``running_batches`` are not changed here: after a completed epoch the
    caller adds the number of minibatches, ceil(m / batch_size).
    """
    (dtype, n, h, have_velocity, velocity, adam_t,
     running_batches) = _prepare_training(params, velocity, X, momentum, solver, adam_m,
                                          adam_v, adam_t, sparsity_smoothing, rho_running,
                                          running_batches)
    cdef csae_model model = _model(n, h, decoder, rho, beta, lam)
    cdef csae_sgd sgd = _sgd(learning_rate, momentum, batch_size, shuffle)
    cdef csae_solver how = _solver(solver, beta_1, beta_2, epsilon, sparsity_smoothing)
    cdef uint64_t state = int(rng_state) & _MASK64
    cdef size_t threads = _threads(n_threads)
    cdef size_t m = X.shape[0]
    cdef list raised = []
    cdef csae_stop_fn stop = NULL
    if threading.current_thread() is threading.main_thread():
        stop = _stop_on_signal
    # Check for signals about every 2e6 multiply-adds of work (a millisecond
    # or so): often enough for a prompt Ctrl-C, rarely enough to cost nothing.
    cdef size_t per_batch = sgd.batch_size * model.n_features * model.n_hidden
    cdef size_t check_every = max(1, <size_t>(2000000 // max(per_batch, 1)))
    cdef _Workspace work = _Workspace(
        csae_epoch_workspace_size(&model, &sgd, m, dtype.itemsize, threads), threads)
    cdef csae_epoch_result result
    cdef csae_status status
    cdef csae_params_f64 p64
    cdef csae_params_f32 p32
    cdef csae_train_state_f64 s64
    cdef csae_train_state_f32 s32
    cdef const double[:, ::1] X64
    cdef const float[:, ::1] X32
    cdef double[::1] q64
    cdef float[::1] q32
    memset(&s64, 0, sizeof(s64))
    memset(&s32, 0, sizeof(s32))
    if dtype == np.float64:
        p64 = _params_f64(params)
        if have_velocity:
            s64.velocity = _params_f64(velocity)
        if how.adam:
            s64.adam_m = _params_f64(adam_m)
            s64.adam_v = _params_f64(adam_v)
        s64.adam_t = adam_t
        if sparsity_smoothing is not None:
            q64 = rho_running
            s64.rho_running = &q64[0]
        s64.running_batches = running_batches
        X64 = X
        with nogil:
            status = csae_train_epoch_f64(&model, &sgd, &how, p64, &s64, &X64[0, 0], m,
                                          &state, stop, <void *>raised, check_every,
                                          &result, &work.ws)
    else:
        p32 = _params_f32(params)
        if have_velocity:
            s32.velocity = _params_f32(velocity)
        if how.adam:
            s32.adam_m = _params_f32(adam_m)
            s32.adam_v = _params_f32(adam_v)
        s32.adam_t = adam_t
        if sparsity_smoothing is not None:
            q32 = rho_running
            s32.rho_running = &q32[0]
        s32.running_batches = running_batches
        X32 = X
        with nogil:
            status = csae_train_epoch_f32(&model, &sgd, &how, p32, &s32, &X32[0, 0], m,
                                          &state, stop, <void *>raised, check_every,
                                          &result, &work.ws)
    if status == CSAE_ERR_STOPPED and raised:
        raise raised[0]
    if status == CSAE_ERR_NONFINITE:
        raise NonFiniteError(
            f"the objective, its gradient or the updated parameters are not finite "
            f"at minibatch {result.batches_done}", batch=result.batches_done)
    _raise_for(status)
    return float(result.loss), int(state)


def sgd_step(params, velocity, X, *, rho, beta, lam, decoder="sigmoid",
             learning_rate, momentum=0.0, solver="sgd", beta_1=0.9, beta_2=0.999,
             epsilon=1e-8, adam_m=None, adam_v=None, adam_t=0,
             sparsity_smoothing=None, rho_running=None, running_batches=0, n_threads=1):
    """One update on the minibatch X, in place; returns the objective on X
    before the update.  See ``csae.reference.sgd_step``: ``adam_t`` and
    ``running_batches`` count the steps (minibatches) before this one."""
    # One unshuffled epoch with a single minibatch is exactly one step.
    loss, _ = sgd_epoch(params, velocity, X, rho=rho, beta=beta, lam=lam,
                        decoder=decoder, learning_rate=learning_rate,
                        momentum=momentum, batch_size=max(1, len(X)),
                        shuffle=False, solver=solver, beta_1=beta_1, beta_2=beta_2,
                        epsilon=epsilon, adam_m=adam_m, adam_v=adam_v, adam_t=adam_t,
                        sparsity_smoothing=sparsity_smoothing, rho_running=rho_running,
                        running_batches=running_batches, n_threads=n_threads)
    return loss


cdef class _FlatEvaluator:
    """What an evaluator for the optimizer shares: ``evaluate_flat`` on the
    optimizer's float64 vectors, through float32 buffers kept here for a
    float32 model.  A subclass sets ``n_params`` and ``buffers`` (None for
    float64, else two float32 arrays of n_params) and defines ``_run``."""
    cdef object buffers
    cdef readonly size_t n_params

    cdef double _run(self, char *theta, char *grad) except? -1.0:
        raise NotImplementedError

    cdef _flat_buffers(self, size_t n_params, dtype):
        self.n_params = n_params
        # float32 models: the parameters and gradient in float32, flat.
        self.buffers = (None if dtype == np.float64 else
                        (np.empty(n_params, np.float32), np.empty(n_params, np.float32)))

    def evaluate_flat(self, theta, grad):
        """The objective at the float64 vector ``theta``; its gradient into
        the float64 vector ``grad`` (both of length n_params, in the layout
        the class documents).  Returns the objective (a float)."""
        cdef const double[::1] t = theta
        cdef double[::1] g = grad
        cdef size_t k, P = self.n_params
        if <size_t>t.shape[0] != P or <size_t>g.shape[0] != P:
            raise ValueError(f"theta and grad must have {P} entries, got "
                             f"{t.shape[0]} and {g.shape[0]}")
        cdef float[::1] t32, g32
        cdef double loss
        if self.buffers is None:
            return self._run(<char *>&t[0], <char *>&g[0])
        t32, g32 = self.buffers
        for k in range(P):
            t32[k] = <float>t[k]
        loss = self._run(<char *>&t32[0], <char *>&g32[0])
        for k in range(P):
            g[k] = g32[k]
        return loss


cdef class ObjectiveEvaluator(_FlatEvaluator):
    """``objective_and_gradients`` on one data set, evaluated many times
    (L-BFGS): the engine's workspace is allocated once, here, instead of on
    every call.

    Parameters
    ----------
    X : ndarray of shape (m, n), float32 or float64, C-contiguous
        The data (kept by reference: do not change it while the evaluator
        is in use).  Its dtype is the model's.
    n_hidden : int
        Hidden units h.
    rho, beta, lam : float
        The objective's hyperparameters.
    decoder : {"sigmoid", "linear"}, default="sigmoid"
    n_threads : int, default=1

    Notes
    -----
    ``evaluator(params)`` returns ``(L, (dW, db, dWd, dbd))`` like
    ``objective_and_gradients(params, X, ...)``.  ``evaluate_flat(theta,
    grad)`` does the same on the optimizer's float64 vector ``theta`` (W, b,
    Wd, bd flattened in that order, C order) and writes the gradient into the
    float64 vector ``grad`` of the same layout: a float64 model is read from
    and written to those vectors in place, a float32 model goes through
    float32 buffers the evaluator keeps.  ``csae.solvers.lbfgs.lbfgs`` uses
    ``evaluate_flat`` when its objective has it.
    """
    cdef _Workspace work
    cdef csae_model model
    cdef object X, dtype
    cdef readonly size_t n_features, n_hidden
    cdef size_t m

    def __init__(self, X, n_hidden, *, rho, beta, lam, decoder="sigmoid", n_threads=1):
        dtype = _dtype_of(X)
        m, n = _check_X(X)
        if m == 0:
            raise ValueError("X has no rows")
        if not (isinstance(X, np.ndarray) and X.flags.c_contiguous):
            raise ValueError("X must be a C-contiguous ndarray")
        try:
            h = operator.index(n_hidden)
        except TypeError:
            raise TypeError(f"n_hidden must be an integer, got {n_hidden!r}") from None
        if h < 1:
            raise ValueError(f"n_hidden must be >= 1, got {n_hidden!r}")
        self.model = _model(n, h, decoder, rho, beta, lam)
        cdef size_t threads = _threads(n_threads)
        self.work = _Workspace(
            csae_train_workspace_size(&self.model, m, dtype.itemsize, threads), threads)
        self.X, self.dtype, self.m = X, dtype, m
        self.n_features, self.n_hidden = n, h
        self._flat_buffers(2 * n * h + n + h, dtype)

    cdef double _run(self, char *theta, char *grad) except? -1.0:
        """The objective at the flat parameters theta (model dtype), gradient
        into grad (model dtype)."""
        cdef size_t n = self.n_features, h = self.n_hidden
        cdef double loss = 0.0
        cdef csae_status status
        cdef csae_params_f64 p64, g64
        cdef csae_params_f32 p32, g32
        cdef const double[:, ::1] X64
        cdef const float[:, ::1] X32
        if self.dtype == np.float64:
            X64 = self.X
            p64 = csae_params_f64(<double *>theta, <double *>theta + h * n,
                                  <double *>theta + h * n + h, <double *>theta + 2 * h * n + h)
            g64 = csae_params_f64(<double *>grad, <double *>grad + h * n,
                                  <double *>grad + h * n + h, <double *>grad + 2 * h * n + h)
            with nogil:
                status = csae_objective_f64(&self.model, p64, &X64[0, 0], self.m, &loss, g64,
                                            NULL, &self.work.ws)
        else:
            X32 = self.X
            p32 = csae_params_f32(<float *>theta, <float *>theta + h * n,
                                  <float *>theta + h * n + h, <float *>theta + 2 * h * n + h)
            g32 = csae_params_f32(<float *>grad, <float *>grad + h * n,
                                  <float *>grad + h * n + h, <float *>grad + 2 * h * n + h)
            with nogil:
                status = csae_objective_f32(&self.model, p32, &X32[0, 0], self.m, &loss, g32,
                                            NULL, &self.work.ws)
        _raise_for(status)
        return loss


    def __call__(self, params):
        """``(L, (dW, db, dWd, dbd))`` at ``params``, as
        ``objective_and_gradients`` returns them (new gradient arrays)."""
        if _dtype_of(*params) != self.dtype:
            raise TypeError(f"params must be {self.dtype}, like X")
        n, h = _check_params(params, self.n_features)
        if h != self.n_hidden:
            raise ValueError(f"params have {h} hidden units, the evaluator {self.n_hidden}")
        theta = np.concatenate([np.ravel(p) for p in params])
        grad = np.empty_like(theta)
        loss = self._run(cnp.PyArray_BYTES(theta), cnp.PyArray_BYTES(grad))
        ends = np.cumsum([p.size for p in params])
        grads = tuple(grad[end - p.size:end].reshape(p.shape) for end, p in zip(ends, params))
        return float(loss), grads


# ---------------------------------------------------------------------------
# L-BFGS
# ---------------------------------------------------------------------------

# csae_lbfgs_task, by name (csae.solvers.lbfgs.lbfgs drives the loop).
LBFGS_EVALUATE = CSAE_LBFGS_EVALUATE
LBFGS_ITERATE = CSAE_LBFGS_ITERATE
LBFGS_CONVERGED = CSAE_LBFGS_CONVERGED
LBFGS_MAX_ITER = CSAE_LBFGS_MAX_ITER
LBFGS_MAX_EVAL = CSAE_LBFGS_MAX_EVAL
LBFGS_LINE_SEARCH_FAILED = CSAE_LBFGS_LINE_SEARCH_FAILED
LBFGS_NONFINITE = CSAE_LBFGS_NONFINITE


cdef class Lbfgs:
    """One L-BFGS run over ``n`` float64 parameters (the engine's
    ``csae_lbfgs``): ``step(x, f, g)`` returns ``(task, f)``, asking for an
    evaluation at ``x`` (LBFGS_EVALUATE), reporting a new iterate in ``x,
    f, g`` (LBFGS_ITERATE) or ending with one of the final tasks.  ``x`` and
    ``g`` are float64 vectors of length n, the same two arrays on every call
    of a run; the optimizer keeps its history in a workspace of about
    ``(2 * history + 3) * n`` doubles, allocated once here, or ``(history +
    2.5) * n`` with ``float32_storage`` (the pairs and the search direction
    stored in float32: for objectives computed in float32).  ``n_threads``
    share its vector work; the results do not depend on it."""
    cdef csae_lbfgs state
    cdef object work
    cdef readonly size_t n

    def __init__(self, n, *, max_iter, max_eval, ftol, gtol=0.0, history=10, n_threads=1,
                 float32_storage=False):
        cdef csae_lbfgs_options options = csae_lbfgs_default_options()
        counts = {"n": n, "history": history, "max_iter": max_iter, "max_eval": max_eval}
        for name, value in counts.items():
            if _count(name, value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        for name, value in (("ftol", ftol), ("gtol", gtol)):
            if not float(value) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        options.history, options.max_iter, options.max_eval = history, max_iter, max_eval
        options.ftol, options.gtol = ftol, gtol
        options.n_threads = _threads(n_threads)
        options.float32_storage = bool(float32_storage)
        self.n = n
        cdef size_t size = csae_lbfgs_workspace_size(self.n, &options)
        if size == 0:
            raise ValueError(f"L-BFGS over {n} parameters with history {history} does not fit "
                             "in memory")
        self.work = np.empty(size, dtype=np.float64)
        cdef double[::1] w = self.work
        _raise_for(csae_lbfgs_init(&self.state, self.n, &options, &w[0], size))

    def step(self, double[::1] x, double f, double[::1] g):
        if <size_t>x.shape[0] != self.n or <size_t>g.shape[0] != self.n:
            raise ValueError(f"x and g must have {self.n} entries, got {x.shape[0]} and "
                             f"{g.shape[0]}")
        cdef csae_lbfgs_task task
        with nogil:
            task = csae_lbfgs_step(&self.state, &x[0], &f, &g[0])
        return int(task), f

    @property
    def iterations(self):
        return self.state.iterations

    @property
    def evaluations(self):
        return self.state.evaluations

    @property
    def restarts(self):
        return self.state.restarts


# ---------------------------------------------------------------------------
# Block-wise full-batch objective
# ---------------------------------------------------------------------------

def activation_sums(W, b, X, *, n_threads=1):
    """Column sums over the rows of A = sigmoid(X W^T + b): A in the model
    dtype, the sums in float64 in row order; shape (h,).  X may have no
    rows (the sums are then 0)."""
    dtype = _dtype_of(W, b, X)
    m, n = _check_X(X)
    h = _check_layer(W, b, n, "activation_sums")
    cdef csae_model model = _forward_model(n, h)
    cdef size_t threads = _threads(n_threads)
    cdef size_t rows = m
    cdef _Workspace work = _Workspace(
        csae_forward_workspace_size(&model, rows, dtype.itemsize, threads), threads)
    sums = np.zeros(h, np.float64)
    cdef double[::1] out = sums
    cdef const double[:, ::1] W64, X64
    cdef const double[::1] b64
    cdef const float[:, ::1] W32, X32
    cdef const float[::1] b32
    cdef csae_status status
    if dtype == np.float64:
        W64, b64, X64 = W, b, X
        with nogil:
            status = csae_activation_sums_f64(&model, &W64[0, 0], &b64[0],
                                              &X64[0, 0] if rows else NULL, rows, &out[0],
                                              &work.ws)
    else:
        W32, b32, X32 = W, b, X
        with nogil:
            status = csae_activation_sums_f32(&model, &W32[0, 0], &b32[0],
                                              &X32[0, 0] if rows else NULL, rows, &out[0],
                                              &work.ws)
    _raise_for(status)
    return sums


def objective_part(params, X, rho_hat, n_total, *, rho, beta, decoder="sigmoid",
                   n_threads=1):
    """The contribution of the rows X, a block of a data set of ``n_total``
    rows whose mean activation is ``rho_hat`` (float64, shape (h,)), to the
    full-batch objective and gradient, without the weight-decay and KL
    terms; returns ``(part, (dW, db, dWd, dbd))``.  See csae.h and
    docs/math.md ("Block-wise evaluation").  X may have no rows."""
    dtype = _dtype_of(*params, X)
    m, n = _check_X(X)
    n, h = _check_params(params, n)
    try:
        total = operator.index(n_total)
    except TypeError:
        raise TypeError(f"n_total must be an integer, got {n_total!r}") from None
    if total < 1 or total < m:
        raise ValueError(f"n_total must be >= 1 and >= the rows of X ({m}), got {n_total!r}")
    rho_hat = np.asarray(rho_hat)
    if rho_hat.dtype.kind != "f":
        raise TypeError(f"rho_hat must be a float array, got {rho_hat.dtype}")
    if rho_hat.shape != (h,):
        raise ValueError(f"rho_hat must have shape ({h},), got {rho_hat.shape}")
    rho_hat = np.ascontiguousarray(rho_hat, dtype=np.float64)
    if not np.all(np.isfinite(rho_hat)):
        raise ValueError("rho_hat must be finite")
    cdef csae_model model = _model(n, h, decoder, rho, beta, 0.0)
    cdef size_t threads = _threads(n_threads)
    cdef size_t rows = m
    cdef _Workspace work = _Workspace(
        csae_train_workspace_size(&model, rows, dtype.itemsize, threads), threads)
    params = _const_params(params)
    grads = tuple(np.empty_like(p) for p in params)
    cdef const double[::1] q = rho_hat
    cdef double part = 0.0
    cdef size_t size_total = total
    cdef csae_params_f64 p64, g64
    cdef csae_params_f32 p32, g32
    cdef const double[:, ::1] X64
    cdef const float[:, ::1] X32
    cdef csae_status status
    if dtype == np.float64:
        p64, g64, X64 = _params_f64(params), _params_f64(grads), X
        with nogil:
            status = csae_objective_part_f64(&model, p64, &X64[0, 0] if rows else NULL, rows,
                                             &q[0], size_total, &part, g64, &work.ws)
    else:
        p32, g32, X32 = _params_f32(params), _params_f32(grads), X
        with nogil:
            status = csae_objective_part_f32(&model, p32, &X32[0, 0] if rows else NULL, rows,
                                             &q[0], size_total, &part, g32, &work.ws)
    _raise_for(status)
    return float(part), grads


# ---------------------------------------------------------------------------
# Randomness
# ---------------------------------------------------------------------------

def permutation(m, rng_state):
    """The engine's shuffled row order for one epoch; returns (order, state)."""
    cdef uint64_t state = int(rng_state) & _MASK64
    order = np.empty(int(m), dtype=np.uintp)
    cdef size_t[::1] view = order
    if m > 0:
        with nogil:
            csae_rng_permutation(&state, &view[0], view.shape[0])
    return order.astype(np.intp), int(state)


def init_params(n_features, n_hidden, rng_state, dtype=np.float64):
    """Default initialisation (see ``csae.reference.init_params``), drawn by
    the engine; returns ``((W, b, Wd, bd), new_state)``."""
    dtype = np.dtype(dtype)
    n, h = int(n_features), int(n_hidden)
    if n < 1 or h < 1:
        raise ValueError(f"n_features and n_hidden must be >= 1, got {n}, {h}")
    cdef csae_model model = _forward_model(n, h)
    cdef uint64_t state = int(rng_state) & _MASK64
    params = (np.empty((h, n), dtype), np.empty(h, dtype), np.empty((n, h), dtype),
              np.empty(n, dtype))
    cdef double[:, ::1] W64, Wd64
    cdef double[::1] b64, bd64
    cdef float[:, ::1] W32, Wd32
    cdef float[::1] b32, bd32
    if dtype == np.float64:
        W64, b64, Wd64, bd64 = params
        _raise_for(csae_init_params_f64(
            &model, csae_params_f64(&W64[0, 0], &b64[0], &Wd64[0, 0], &bd64[0]), &state))
    elif dtype == np.float32:
        W32, b32, Wd32, bd32 = params
        _raise_for(csae_init_params_f32(
            &model, csae_params_f32(&W32[0, 0], &b32[0], &Wd32[0, 0], &bd32[0]), &state))
    else:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return params, int(state)


# --------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------

cdef void *_data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


def read_model_file(int fd):
    """Read the model file open on ``fd`` with the C reader (model_file.c),
    the one csae_model_file_* use: ``(status, None)`` when it refuses the
    file (status a csae_status code, for the caller to explain), else
    ``(0, fields)`` with every field as NumPy arrays and ints.  Memory is the
    model's size: the arrays are allocated from the sizes the validated file
    gives, which its bytes hold."""
    cdef csae_model_layout layout
    cdef csae_model_arrays dest
    cdef csae_status st
    with nogil:
        st = csae_model_file_layout(fd, &layout)
    if st != CSAE_OK:
        return int(st), None
    dtype = np.float64 if layout.elem_size == 8 else np.float32
    n, h = layout.model.n_features, layout.model.n_hidden
    shapes = ((h, n), (h,), (n, h), (n,))
    memset(&dest, 0, sizeof(dest))
    params = tuple(np.empty(s, dtype=dtype) for s in shapes)
    velocity = (tuple(np.empty(s, dtype=dtype) for s in shapes)
                if layout.has_velocity else None)
    adam_m = tuple(np.empty(s, dtype=dtype) for s in shapes) if layout.has_adam else None
    adam_v = tuple(np.empty(s, dtype=dtype) for s in shapes) if layout.has_adam else None
    rho_running = np.empty(h, dtype=dtype) if layout.has_running else None
    loss_curve = np.empty(layout.n_iter, dtype=np.float64)
    data_min = np.empty(n, dtype=np.float64) if layout.has_range else None
    data_scale = np.empty(n, dtype=np.float64) if layout.has_range else None
    cdef int k
    for k in range(4):
        dest.params[k] = _data(params[k])
        if velocity is not None:
            dest.velocity[k] = _data(velocity[k])
        if adam_m is not None:
            dest.adam_m[k] = _data(adam_m[k])
            dest.adam_v[k] = _data(adam_v[k])
    if rho_running is not None:
        dest.rho_running = _data(rho_running)
    dest.loss_curve = <double *>_data(loss_curve)
    if data_min is not None:
        dest.data_min = <double *>_data(data_min)
        dest.data_scale = <double *>_data(data_scale)
    with nogil:
        st = csae_model_file_read_all(fd, &layout, &dest)
    if st != CSAE_OK:
        return int(st), None
    return 0, {
        "version": int(layout.version),
        "record": layout.record[:layout.record_len].decode("ascii"),
        "params": params, "velocity": velocity, "adam_m": adam_m, "adam_v": adam_v,
        "adam_t": int(layout.adam_t), "rho_running": rho_running,
        "running_batches": int(layout.running_batches),
        "rng_state": int(layout.rng_state) if layout.has_rng else None,
        "data_min": data_min, "data_scale": data_scale, "loss_curve": loss_curve,
        "stop_reason": (layout.stop_reason.decode("ascii") if layout.has_stop_reason
                        else None),
    }


def deep_member_names():
    """The names of every member a deep model's file may hold (model_file.h's
    order), without ".npy"."""
    cdef char name[64]
    cdef size_t i, n
    names = []
    for i in range(CSAE_DEEP_MEMBERS):
        n = csae_deep_member_name(i, name, sizeof(name))
        names.append(name[:n].decode("ascii"))
    return names


def _deep_dtype(char kind, uint64_t itemsize):
    if kind == b"U"[0]:
        return np.dtype(f"U{itemsize // 4}")
    return np.dtype(f"{chr(kind)}{itemsize}")


def read_deep_file(int fd):
    """Read a deep model's file open on ``fd`` with the C reader (model_file.c,
    the one csae_deep_file_* use): ``(status, None)`` when it refuses the
    file, else ``(0, fields)``: ``kind`` ("encoder" or "classifier"),
    ``version``, ``record`` (the JSON text), ``sizes`` and ``arrays`` (every
    other member present, by name).  Memory is the model's size."""
    cdef csae_deep_layout *layout = <csae_deep_layout *>malloc(sizeof(csae_deep_layout))
    cdef void **dest = <void **>malloc(sizeof(void *) * CSAE_DEEP_MEMBERS)
    cdef csae_status st
    cdef size_t i
    if layout == NULL or dest == NULL:
        free(layout)
        free(dest)
        raise MemoryError()
    try:
        with nogil:
            st = csae_deep_file_layout(fd, layout)
        if st != CSAE_OK:
            return int(st), None
        names = deep_member_names()
        skip = {"format", "format_version", "csae_version", "hyperparameters", "sizes"}
        arrays = {}
        for i in range(CSAE_DEEP_MEMBERS):
            dest[i] = NULL
            if not layout.shape.present[i] or names[i] in skip:
                continue
            shape = tuple(int(layout.shape.shape[i][d]) for d in range(layout.shape.ndim[i]))
            array = np.empty(shape, dtype=_deep_dtype(layout.shape.kind[i],
                                                      layout.shape.itemsize[i]))
            arrays[names[i]] = array
            dest[i] = _data(array)
        with nogil:
            st = csae_deep_file_read_all(fd, layout, dest)
        if st != CSAE_OK:
            return int(st), None
        info = layout.shape.info
        L = info.n_hidden_layers
        classifier = info.kind == CSAE_DEEP_FILE_CLASSIFIER
        return 0, {
            "kind": "classifier" if classifier else "encoder",
            "version": int(layout.shape.version),
            "record": layout.record[:layout.shape.record_len].decode("ascii"),
            "sizes": [int(info.sizes[i]) for i in range(L + 2 if classifier else L + 1)],
            "elem_size": int(info.elem_size),
            "arrays": arrays,
        }
    finally:
        free(layout)
        free(dest)


# The status csae.load lets its Python reader handle (compressed or
# Fortran-ordered members).
MODEL_FILE_UNSUPPORTED = CSAE_ERR_UNSUPPORTED
# read_model_file's status when the file changed between its two passes.
MODEL_FILE_CHANGED = CSAE_ERR_MISMATCH


def status_message(int status):
    """csae_status_message: a short English description of a status code."""
    return csae_status_message(<csae_status>status).decode()

# ---------------------------------------------------------------------------
# Deep networks: sigmoid layers under a softmax output (csae_deep_*)
# ---------------------------------------------------------------------------

def _deep_check(params, X):
    """Checks params (a list of (W, b) pairs, the softmax layer last) against
    X; returns (dtype, sizes) with sizes = [n, h_1, ..., h_L, k]."""
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise TypeError("params must be a non-empty list of (W, b) pairs, the softmax "
                        "layer last")
    for l, layer in enumerate(params):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise TypeError(f"params[{l}] must be a pair (W, b)")
        for a in layer:
            if not isinstance(a, np.ndarray):
                raise TypeError(f"params[{l}] must hold NumPy arrays, got {type(a).__name__}")
    if not isinstance(X, np.ndarray):
        raise TypeError(f"X must be a NumPy array, got {type(X).__name__}")
    dtype = _dtype_of(X, *[a for layer in params for a in layer])
    m, n = _check_X(X)
    # (No negative indices in this module: it is compiled without wraparound.)
    sizes, width = [n], n
    for l, (W, b) in enumerate(params):
        width = _check_layer(W, b, width, f"params[{l}]")
        sizes.append(width)
    if min(sizes) < 1:
        raise ValueError(f"every layer size must be >= 1, got {sizes}")
    return dtype, sizes


def _deep_flat(params, dtype):
    """theta: each layer's W (row-major) then b, one layer after another."""
    return np.concatenate([a.ravel() for layer in params for a in layer]).astype(dtype, copy=False)


def _deep_labels(y, m, k):
    """y as contiguous int64 class indices in 0..k-1, checked."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != m:
        raise ValueError(f"y must be 1-D with one label per row of X ({m}), got shape {y.shape}")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y must hold integer class indices, got dtype {y.dtype}")
    if m and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1} (the softmax layer has {k} outputs), "
                         f"got values in [{y.min()}, {y.max()}]")
    return np.ascontiguousarray(y, dtype=np.int64)


# What one _deep_run call computes.
cdef enum _DeepMode:
    _DEEP_FORWARD, _DEEP_OBJECTIVE, _DEEP_ENCODE


cdef _deep_net(sizes, cnp.ndarray sz, csae_deep_net *net):
    """net over sz (sizes as size_t, kept alive by the caller); refuses a
    network whose parameter count overflows."""
    net.n_hidden_layers = len(sizes) - 2
    net.sizes = <const size_t *>cnp.PyArray_DATA(sz)
    if csae_deep_n_params(net) == 0:
        raise ValueError(f"network too large: layer sizes {sizes}")


cdef _deep_run(sizes, theta, X, y, out_array, double lam, size_t n_threads, _DeepMode mode):
    """One csae_deep_forward_* (out_array: P), csae_deep_encode_* (out_array:
    H) or csae_deep_objective_* call (out_array: the gradient, or None);
    returns the objective."""
    cdef cnp.ndarray sz = np.asarray(sizes, dtype=np.uintp)
    cdef csae_deep_net net
    _deep_net(sizes, sz, &net)
    cdef size_t m = X.shape[0]
    cdef bint f64 = X.dtype == np.float64
    cdef size_t elem = 8 if f64 else 4
    cdef size_t size = (csae_deep_objective_workspace_size(&net, m, elem, n_threads)
                        if mode == _DEEP_OBJECTIVE else
                        csae_deep_forward_workspace_size(&net, m, elem, n_threads))
    cdef _Workspace work = _Workspace(size, n_threads)
    cdef void *t = cnp.PyArray_DATA(theta)
    cdef void *x = cnp.PyArray_DATA(X) if m else NULL
    cdef void *out = NULL
    cdef const int64_t *labels = NULL
    if mode == _DEEP_OBJECTIVE:
        labels = <const int64_t *>cnp.PyArray_DATA(y)
        if out_array is not None:
            out = cnp.PyArray_DATA(out_array)
    elif m:
        out = cnp.PyArray_DATA(out_array)
    cdef double loss = 0.0
    cdef csae_status status
    with nogil:
        if mode == _DEEP_OBJECTIVE and f64:
            status = csae_deep_objective_f64(&net, <const double *>t, <const double *>x, labels,
                                             m, lam, &loss, <double *>out, &work.ws)
        elif mode == _DEEP_OBJECTIVE:
            status = csae_deep_objective_f32(&net, <const float *>t, <const float *>x, labels,
                                             m, lam, &loss, <float *>out, &work.ws)
        elif mode == _DEEP_ENCODE and f64:
            status = csae_deep_encode_f64(&net, <const double *>t, <const double *>x, m,
                                          <double *>out, &work.ws)
        elif mode == _DEEP_ENCODE:
            status = csae_deep_encode_f32(&net, <const float *>t, <const float *>x, m,
                                          <float *>out, &work.ws)
        elif f64:
            status = csae_deep_forward_f64(&net, <const double *>t, <const double *>x, m,
                                           <double *>out, &work.ws)
        else:
            status = csae_deep_forward_f32(&net, <const float *>t, <const float *>x, m,
                                           <float *>out, &work.ws)
    _raise_for(status)
    return loss


def deep_forward(params, X, n_threads=1):
    """Class probabilities, shape (m, k), of the network ``params`` (a list
    of (W, b) pairs: sigmoid layers, then the softmax layer) on the rows of
    X; see ``csae.reference.deep_forward``."""
    dtype, sizes = _deep_check(params, X)
    cdef size_t threads = _threads(n_threads)
    theta = _deep_flat(params, dtype)
    X = np.ascontiguousarray(X)
    P = np.empty((X.shape[0], sizes[len(sizes) - 1]), dtype)
    _deep_run(sizes, theta, X, None, P, 0.0, threads, _DEEP_FORWARD)
    return P


def deep_encode(layers, X, n_threads=1):
    """The top layer's activations, shape (m, h_L), of the sigmoid layers
    ``layers`` (a non-empty list of (W, b) pairs, no softmax layer) on the
    rows of X: every layer in one engine call, without the GIL."""
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise TypeError("layers must be a non-empty list of (W, b) pairs")
    dtype, sizes = _deep_check(list(layers), X)
    cdef size_t threads = _threads(n_threads)
    theta = _deep_flat(layers, dtype)
    X = np.ascontiguousarray(X)
    # The engine's net has a softmax layer, whose weights encode never reads.
    sizes.append(1)
    H = np.empty((X.shape[0], sizes[len(sizes) - 2]), dtype)
    _deep_run(sizes, theta, X, None, H, 0.0, threads, _DEEP_ENCODE)
    return H


def deep_objective_and_gradients(params, X, y, *, lam, n_threads=1, need_gradients=True):
    """Mean cross-entropy of the labels y (class indices) plus
    (lam / 2) times every weight matrix's squared norm, and its gradient as
    a list of (dW, db) pairs in the layout of params (None when
    need_gradients is false); see
    ``csae.reference.deep_objective_and_gradients``."""
    dtype, sizes = _deep_check(params, X)
    m = X.shape[0]
    if m == 0:
        raise ValueError("X has no rows")
    y = _deep_labels(y, m, sizes[len(sizes) - 1])
    try:
        lam = float(lam)
    except (TypeError, ValueError):
        raise TypeError(f"lam must be a real number, got {lam!r}") from None
    if not (lam >= 0 and isfinite(lam)):
        raise ValueError(f"lam must be finite and >= 0, got {lam!r}")
    cdef size_t threads = _threads(n_threads)
    theta = _deep_flat(params, dtype)
    X = np.ascontiguousarray(X)
    grad = np.empty_like(theta) if need_gradients else None
    loss = _deep_run(sizes, theta, X, y, grad, lam, threads, _DEEP_OBJECTIVE)
    if not need_gradients:
        return float(loss), None
    grads, at = [], 0
    for l in range(1, len(sizes)):
        h_prev, h = sizes[l - 1], sizes[l]
        grads.append((grad[at:at + h * h_prev].reshape(h, h_prev),
                      grad[at + h * h_prev:at + h * h_prev + h]))
        at += h * h_prev + h
    return float(loss), grads


cdef class DeepEvaluator(_FlatEvaluator):
    """The deep objective and gradient (csae_deep_objective_*) on fixed
    data, for an optimizer that evaluates it many times (L-BFGS): the
    workspace, the labels and (float32 networks) the parameter and gradient
    buffers are allocated once, here, so an evaluation allocates nothing.

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes [n_features, h_1, ..., h_L, n_classes].
    X : ndarray of shape (m, n_features), float32 or float64, C-contiguous
        The data (kept by reference: do not change it while in use).  Its
        dtype is the network's.
    y : ndarray of shape (m,)
        Class indices in 0..n_classes-1.
    lam : float
        Weight decay (every weight matrix, no bias).
    n_threads : int, default=1

    Notes
    -----
    ``evaluate_flat(theta, grad)`` takes the optimizer's float64 vector in
    the engine's layout (csae.h: each layer's W row-major, then its b) and
    writes the gradient into the float64 vector ``grad``: float64 networks
    are read and written in place, float32 ones through float32 buffers.
    It returns NaN when the objective or the gradient is not finite.
    ``csae.solvers.lbfgs.lbfgs`` calls it when its objective has it.
    """
    cdef _Workspace work
    cdef csae_deep_net net
    cdef object sz, X, y, dtype
    cdef size_t m
    cdef double lam

    def __init__(self, sizes, X, y, *, lam, n_threads=1):
        sizes = [operator.index(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must be >= 2 layer sizes, each >= 1, got {sizes}")
        dtype = _dtype_of(X)
        m, n = _check_X(X)
        if m == 0:
            raise ValueError("X has no rows")
        if not (isinstance(X, np.ndarray) and X.flags.c_contiguous):
            raise ValueError("X must be a C-contiguous ndarray")
        if n != sizes[0]:
            raise ValueError(f"X has {n} features, the network's first layer {sizes[0]}")
        self.y = _deep_labels(y, m, sizes[len(sizes) - 1])
        lam = float(lam)
        if not (lam >= 0 and isfinite(lam)):
            raise ValueError(f"lam must be finite and >= 0, got {lam!r}")
        self.sz = np.asarray(sizes, dtype=np.uintp)
        _deep_net(sizes, self.sz, &self.net)
        cdef size_t threads = _threads(n_threads)
        self.work = _Workspace(
            csae_deep_objective_workspace_size(&self.net, m, dtype.itemsize, threads), threads)
        self.X, self.dtype, self.m, self.lam = X, dtype, m, lam
        self._flat_buffers(csae_deep_n_params(&self.net), dtype)

    cdef double _run(self, char *theta, char *grad) except? -1.0:
        return self._rows(theta, grad, 0, self.m)

    cdef double _rows(self, char *theta, char *grad, size_t start, size_t stop) except? -1.0:
        """The objective on rows [start, stop) (model dtype in and out)."""
        cdef double loss = 0.0
        cdef csae_status status
        cdef const int64_t *labels = <const int64_t *>cnp.PyArray_DATA(self.y) + start
        cdef const double[:, ::1] X64
        cdef const float[:, ::1] X32
        cdef size_t rows = stop - start
        if self.dtype == np.float64:
            X64 = self.X
            with nogil:
                status = csae_deep_objective_f64(&self.net, <const double *>theta,
                                                 &X64[start, 0], labels, rows, self.lam,
                                                 &loss, <double *>grad, &self.work.ws)
        else:
            X32 = self.X
            with nogil:
                status = csae_deep_objective_f32(&self.net, <const float *>theta,
                                                 &X32[start, 0], labels, rows, self.lam,
                                                 &loss, <float *>grad, &self.work.ws)
        _raise_for(status)
        return loss

    @property
    def data(self):
        """``(X, y)``: the arrays evaluated, kept by reference (y as int64
        class indices).  A minibatch optimizer writes each epoch's shuffled
        rows into them (both C-contiguous and writable when the evaluator
        was made on such arrays)."""
        return self.X, self.y

    def evaluate_rows(self, theta, grad, start, stop):
        """The objective on rows ``[start, stop)`` of X (their mean
        cross-entropy plus the weight decay) at ``theta``, its gradient into
        ``grad``: both 1-D C-contiguous arrays of n_params in the network's
        dtype (a minibatch step computes in that dtype, as the
        autoencoder's does).  The workspace made for all the rows serves
        any range of them: nothing is allocated."""
        cdef size_t P = self.n_params
        if not (isinstance(theta, np.ndarray) and isinstance(grad, np.ndarray)):
            raise TypeError("theta and grad must be NumPy arrays")
        if theta.dtype != self.dtype or grad.dtype != self.dtype:
            raise TypeError(f"theta and grad must have the network's dtype {self.dtype}")
        if (theta.ndim != 1 or grad.ndim != 1 or <size_t>theta.shape[0] != P or
                <size_t>grad.shape[0] != P):
            raise ValueError(f"theta and grad must be 1-D with {P} entries")
        if not (theta.flags.c_contiguous and grad.flags.c_contiguous and grad.flags.writeable):
            raise ValueError("theta and grad must be C-contiguous, grad writable")
        if np.shares_memory(theta, grad):
            raise ValueError("theta and grad must not overlap")
        start, stop = operator.index(start), operator.index(stop)
        if not 0 <= start < stop <= <Py_ssize_t>self.m:
            raise ValueError(f"rows [{start}, {stop}) are not a non-empty range of the "
                             f"{self.m} rows")
        return self._rows(<char *>cnp.PyArray_DATA(theta), <char *>cnp.PyArray_DATA(grad),
                          start, stop)



_FLAT_SOLVERS = ("sgd", "adam")


cdef class FlatStep:
    """One optimizer's steps on a flat parameter vector (csae_flat_step_*):
    SGD, momentum or Adam, the arithmetic of the autoencoder's minibatch
    step, with its state (velocity, or Adam's moments and step count)
    allocated once, here, in the vector's dtype.

    Parameters
    ----------
    n_params : int
    dtype : float32 or float64
    solver : {"sgd", "adam"}
    learning_rate, momentum, beta_1, beta_2, epsilon : float
        As ``SparseAutoencoder``'s (momentum is used by "sgd" only).
    n_threads : int, default=1
        Results do not depend on it.

    Notes
    -----
    ``step(theta, grad)`` updates ``theta`` in place from its gradient
    ``grad`` (which already holds any penalty), or raises NonFiniteError
    and changes nothing (theta nor state) when a new value would not be
    finite.  ``t`` counts the Adam steps taken.
    """
    cdef csae_sgd sgd
    cdef csae_solver solver
    cdef object velocity, adam_m, adam_v, dtype
    cdef uint64_t adam_t
    cdef readonly size_t n_params
    cdef size_t threads

    def __init__(self, n_params, dtype, *, solver, learning_rate, momentum=0.0, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_threads=1):
        if solver not in _FLAT_SOLVERS:
            raise ValueError(f"solver must be one of {_FLAT_SOLVERS}, got {solver!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
        n = operator.index(n_params)
        if n < 1:
            raise ValueError(f"n_params must be >= 1, got {n_params!r}")
        self.n_params, self.threads = n, _threads(n_threads)
        self.sgd.learning_rate, self.sgd.momentum = learning_rate, momentum
        self.sgd.batch_size, self.sgd.shuffle = 1, 0
        self.solver.adam = solver == "adam"
        self.solver.beta_1, self.solver.beta_2 = beta_1, beta_2
        self.solver.epsilon, self.solver.sparsity_smoothing = epsilon, 0.0
        if not (self.sgd.learning_rate > 0 and isfinite(self.sgd.learning_rate)):
            raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate!r}")
        if not 0.0 <= self.sgd.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        if self.solver.adam and not (0.0 <= beta_1 < 1.0 and 0.0 <= beta_2 < 1.0 and
                                     epsilon > 0 and isfinite(epsilon)):
            raise ValueError("beta_1 and beta_2 must lie in [0, 1) and epsilon be finite and "
                             f"> 0, got {beta_1!r}, {beta_2!r}, {epsilon!r}")
        zeros = lambda: np.zeros(n, self.dtype)
        self.velocity = zeros() if not self.solver.adam and momentum != 0 else None
        self.adam_m = zeros() if self.solver.adam else None
        self.adam_v = zeros() if self.solver.adam else None
        self.adam_t = 0

    @property
    def t(self):
        return int(self.adam_t)

    def step(self, theta, grad):
        """Update theta (1-D, C-contiguous, writable, n_params, the dtype) in place."""
        for name, a in (("theta", theta), ("grad", grad)):
            if not isinstance(a, np.ndarray) or a.dtype != self.dtype:
                raise TypeError(f"{name} must be a NumPy array of dtype {self.dtype}")
            if a.ndim != 1 or <size_t>a.shape[0] != self.n_params or not a.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous and 1-D with {self.n_params} "
                                 "entries")
        if not theta.flags.writeable:
            raise ValueError("theta must be writable: the step updates it in place")
        cdef csae_flat_state_f64 s64
        cdef csae_flat_state_f32 s32
        cdef csae_status status
        cdef char *t = <char *>cnp.PyArray_DATA(theta)
        cdef const char *g = <const char *>cnp.PyArray_DATA(grad)
        cdef size_t n = self.n_params
        if self.dtype == np.float64:
            s64.velocity = <double *>_data_or_null(self.velocity)
            s64.adam_m = <double *>_data_or_null(self.adam_m)
            s64.adam_v = <double *>_data_or_null(self.adam_v)
            s64.adam_t = self.adam_t
            with nogil:
                status = csae_flat_step_f64(&self.sgd, &self.solver, <double *>t,
                                            <const double *>g, n, &s64, self.threads)
            self.adam_t = s64.adam_t
        else:
            s32.velocity = <float *>_data_or_null(self.velocity)
            s32.adam_m = <float *>_data_or_null(self.adam_m)
            s32.adam_v = <float *>_data_or_null(self.adam_v)
            s32.adam_t = self.adam_t
            with nogil:
                status = csae_flat_step_f32(&self.sgd, &self.solver, <float *>t,
                                            <const float *>g, n, &s32, self.threads)
            self.adam_t = s32.adam_t
        _raise_for(status)


cdef void *_data_or_null(a):
    return NULL if a is None else cnp.PyArray_DATA(a)
