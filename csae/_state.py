"""The trained state of one model, as one immutable value, and its locks.

Everything training produces belongs together: the weights, the momentum
velocities, the Adam moments, the running sparsity estimate, the SplitMix64
state for the next epoch, the learned input range and the loss curves.  A ``ModelState`` holds them all and is never changed
after it is built (its arrays are read-only), so a reader that took
``model._state`` once sees weights, counters and curve that belong together,
whatever other threads do next, without taking any lock.

Writers (``fit``, ``partial_fit``, ``set_params``, weight assignment) build
a new ``ModelState`` aside and publish it with one attribute assignment under
``ModelLocks.snapshot``; ``ModelLocks.write`` makes them take turns, so two
``partial_fit`` calls run one after the other instead of both starting from
the same weights.
"""

import os
import threading
import weakref
from typing import NamedTuple, Optional, Tuple

import numpy as np

from csae._validation import (
    NotFittedError,
    as_numeric_array,
    check_weight_array,
    int_param,
    resolve_dtype,
)

__all__ = ["ModelState", "EMPTY_STATE", "ModelLocks", "frozen", "state_from_legacy",
           "WEIGHT_NAMES", "require_fitted", "assign_weight"]

# Names of the four parameter arrays, in the backends' (W, b, Wd, bd) order.
WEIGHT_NAMES = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")

# How the weights of a state came about; decides what an error message says.
ORIGIN_TRAINED = "trained"     # fit / partial_fit
ORIGIN_ASSIGNED = "assigned"   # the four weight attributes set by hand
ORIGIN_UNKNOWN = None          # built field by field (e.g. by csae.load)


class ModelState(NamedTuple):
    """One consistent snapshot of a model's trained state."""

    params: Optional[Tuple[np.ndarray, ...]] = None    # (W, b, Wd, bd), or None: unfitted
    velocity: Optional[Tuple[np.ndarray, ...]] = None  # momentum velocities, same layout
    rng_state: Optional[int] = None                    # SplitMix64 state for the next epoch
    data_min: Optional[np.ndarray] = None              # scale_inputs: per-feature minimum
    data_scale: Optional[np.ndarray] = None            # scale_inputs: max - min (0 -> 1)
    loss_curve: Tuple[float, ...] = ()                 # objective of each completed epoch
    pending: Tuple[Optional[np.ndarray], ...] = (None, None, None, None)
    # ^ weights assigned to an unfitted model so far, in (W, b, Wd, bd) order
    reference_objective: Optional[float] = None
    # ^ unused: kept so that states pickled when the blow-up check was judged
    #   against the first call's objective still unpickle (now every call
    #   measures its own start)
    origin: Optional[str] = ORIGIN_UNKNOWN
    feature_names: Optional[np.ndarray] = None
    # ^ string column names of the DataFrame fitted on (feature_names_in_)
    # Fields added with solver="adam", the running sparsity estimate and early
    # stopping; at the end so that a state pickled before them unpickles with
    # their defaults.  A solver reads and writes its fields as one value
    # (csae.solvers: ``state_in``/``store``, e.g. AdamState); they stay
    # separate fields here because pickles hold a ModelState positionally,
    # and one more or one fewer would break older csae's unpickling.
    adam_m: Optional[Tuple[np.ndarray, ...]] = None    # Adam first moments, params layout
    adam_v: Optional[Tuple[np.ndarray, ...]] = None    # Adam second moments
    adam_t: int = 0                                    # Adam steps taken
    rho_running: Optional[np.ndarray] = None           # running mean activation q, (h,)
    running_batches: int = 0                           # minibatches q has seen
    validation_loss_curve: Optional[Tuple[float, ...]] = None
    # ^ early stopping: validation objective of each epoch of the last fit
    best_validation_loss: Optional[float] = None
    best_epoch: Optional[int] = None                   # 1-based, in loss_curve terms


EMPTY_STATE = ModelState()


def not_fitted(estimator, extra=""):
    """The error of a method that needs weights the model does not have."""
    return NotFittedError(
        f"This {estimator} instance is not fitted yet. Call 'fit' or "
        "'partial_fit' first, or assign all four of encoder_weights_, "
        f"encoder_bias_, decoder_weights_ and decoder_bias_.{extra}")


def require_fitted(state, estimator):
    """Raise ``NotFittedError`` (naming the weights still missing when some
    were assigned by hand) unless ``state`` has weights."""
    if state.params is None:
        assigned = [n for n, a in zip(WEIGHT_NAMES, state.pending) if a is not None]
        missing = [n + "_" for n in WEIGHT_NAMES if n not in assigned]
        extra = (f" Still missing: {', '.join(missing)}." if assigned else "")
        raise not_fitted(estimator, extra)


def assign_weight(state, index, value, dtype, n_hidden):
    """The state after assigning ``value`` to the weight ``index`` (in
    ``WEIGHT_NAMES`` order) of a model whose ``dtype`` and ``n_hidden``
    hyperparameters are given as set: on a fitted state the array replaces
    that weight (same shape); on an unfitted one it is kept pending until
    all four are there, which then make the weights (origin "assigned")."""
    name = WEIGHT_NAMES[index]
    dtype = resolve_dtype(dtype)
    value = as_numeric_array(value, name + "_")
    if state.params is not None:
        shape = state.params[index].shape
    else:
        h = int_param("n_hidden", n_hidden, 1)
        shape = _pending_shape(state, index, h, value)
    array = frozen(check_weight_array(name + "_", value, shape, dtype))
    if state.params is not None:
        params = [p if p.dtype == dtype else frozen(p.astype(dtype)) for p in state.params]
        params[index] = array
        return state._replace(params=tuple(params))
    pending = list(state.pending)
    pending[index] = array
    if any(a is None for a in pending):
        return state._replace(pending=tuple(pending))
    params = tuple(a if a.dtype == dtype else frozen(a.astype(dtype)) for a in pending)
    return ModelState(params=params, origin=ORIGIN_ASSIGNED)


def _pending_shape(state, index, h, value):
    """The shape the weight ``index`` must have on an unfitted model:
    n_hidden from the hyperparameter, n_features from the arrays
    assigned so far, or from ``value`` itself for the first one."""
    n = None
    # The axis of n_features in each array (encoder_bias_ has none).
    n_axis = {"encoder_weights": 1, "decoder_weights": 0, "decoder_bias": 0}
    for other, array in zip(WEIGHT_NAMES, state.pending):
        if array is not None and other != WEIGHT_NAMES[index] and other in n_axis:
            n = array.shape[n_axis[other]]
    patterns = ("(n_hidden, n_features)", "(n_hidden,)", "(n_features, n_hidden)",
                "(n_features,)")
    if n is None and index != 1:  # the first array that fixes n_features
        shape = value.shape
        if len(shape) != (1 if index == 3 else 2):
            raise ValueError(f"{WEIGHT_NAMES[index]}_ must have shape "
                             f"{patterns[index]} with n_hidden={h}, got shape {shape}")
        n = shape[1] if index == 0 else shape[0]
    if n is None:  # encoder_bias_ says nothing about n_features
        return (h,)
    return ((h, n), (h,), (n, h), (n,))[index]


# Published arrays start on a 64-byte boundary (a cache line, an AVX-512
# vector): a one-row transform reads the encoder's weights in place, and
# rows that straddle cache lines made it slower (784 -> 196, float32, Zen 4:
# 7.6 against 7.0 us through encode_fast, 8.8 against 7.3-7.8 us in C).
ALIGNMENT = 64


class _Store(np.ndarray):
    """The bytes behind an aligned frozen array (``_aligned``): its type
    marks the array as csae's own read-only copy."""


def _aligned(array):
    """A C-contiguous copy of ``array`` starting on an ALIGNMENT boundary: a
    view into a private ``_Store`` that owns the memory."""
    store = _Store(shape=(array.nbytes + ALIGNMENT,), dtype=np.uint8)
    start = -store.ctypes.data % ALIGNMENT
    out = store[start:start + array.nbytes].view(dtype=array.dtype, type=np.ndarray)
    out = out.reshape(array.shape)
    np.copyto(out, array)
    store.flags.writeable = False
    return out


def _ours(array):
    """Whether ``array`` is (a view of) an ``_aligned`` copy."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return type(array) is _Store


def frozen(array, copy=False):
    """``array`` as a read-only C-contiguous ndarray that owns its memory or
    is csae's own copy (a copy unless it already is one, or with ``copy``
    always a new one: the caller's array is then left as it is), so no view
    handed out can change it; numbers start on an ALIGNMENT boundary."""
    array = np.asarray(array)
    kept = not copy and type(array) is np.ndarray and array.flags.c_contiguous
    if array.dtype.hasobject:  # Python objects (feature names): no raw copy
        if not (kept and array.flags.owndata):
            array = np.array(array, order="C", copy=True)
    elif not (kept and (array.flags.owndata or _ours(array))
              and (array.size == 0 or array.ctypes.data % ALIGNMENT == 0)):
        array = _aligned(array)
    array.flags.writeable = False
    return array


def frozen_tuple(arrays):
    return None if arrays is None else tuple(frozen(a) for a in arrays)


def freeze_state(state):
    """``state`` with every array frozen (used on unpickling: joblib may hand
    back memmaps, and pickle returns writable arrays)."""
    return state._replace(
        params=frozen_tuple(state.params), velocity=frozen_tuple(state.velocity),
        data_min=None if state.data_min is None else frozen(state.data_min),
        data_scale=None if state.data_scale is None else frozen(state.data_scale),
        loss_curve=tuple(float(v) for v in state.loss_curve),
        feature_names=None if state.feature_names is None else frozen(state.feature_names),
        pending=tuple(None if a is None else frozen(a) for a in state.pending),
        adam_m=frozen_tuple(state.adam_m), adam_v=frozen_tuple(state.adam_v),
        adam_t=int(state.adam_t),
        rho_running=None if state.rho_running is None else frozen(state.rho_running),
        running_batches=int(state.running_batches),
        validation_loss_curve=(None if state.validation_loss_curve is None
                               else tuple(float(v) for v in state.validation_loss_curve)))


def state_from_legacy(attributes, weight_names):
    """The ``ModelState`` of a model pickled by csae <= 0.x, which kept each
    field as its own attribute (``_params``, ``_velocity``, ...)."""
    pending = attributes.get("_pending") or {}
    return freeze_state(ModelState(
        params=attributes.get("_params"), velocity=attributes.get("_velocity"),
        rng_state=attributes.get("_rng_state"), data_min=attributes.get("_data_min"),
        data_scale=attributes.get("_data_scale"),
        loss_curve=tuple(attributes.get("_loss_curve") or ()),
        pending=tuple(pending.get(name) for name in weight_names)))


class ModelLocks:
    """The two locks of one model.

    ``write`` is held by every call that changes the model for its whole
    length (a whole ``fit``), so those calls take turns.  ``snapshot`` is
    held only for the moment a writer publishes (hyperparameter attributes,
    the state reference) and a reader copies them together (``get_params``,
    ``save``, pickling); it never waits for training.  Both are re-entrant:
    ``set_params`` sets attributes whose own setter takes ``snapshot``.

    A child of ``os.fork()`` gets new locks (see ``_renew_after_fork``): the
    thread that held one in the parent (a ``fit`` running while another
    thread forked) does not exist in the child, so the copy would stay held
    and every ``fit``, ``partial_fit`` or ``set_params`` there would wait
    forever.
    """

    __slots__ = ("write", "snapshot", "__weakref__")

    def __init__(self):
        self.write = threading.RLock()
        self.snapshot = threading.RLock()
        _ALL_LOCKS.add(self)

    def _renew(self):
        # A lock the forking thread holds itself is kept: that thread goes on
        # in the child and will release it (a fork from a fit's hook).
        for name in ("write", "snapshot"):
            lock = getattr(self, name)
            if not lock._is_owned():
                setattr(self, name, threading.RLock())


# Every model's locks, for the fork handler (weakly: a model's locks go with it).
_ALL_LOCKS: "weakref.WeakSet[ModelLocks]" = weakref.WeakSet()


def _renew_after_fork():
    """In a fork child: the locks held by other threads of the parent are
    replaced by free ones.  The state they guarded is consistent: a writer
    publishes a new state with one reference assignment."""
    for locks in list(_ALL_LOCKS):
        locks._renew()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_renew_after_fork)
