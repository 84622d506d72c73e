"""``SparseAutoencoder``: the scikit-learn style estimator around a backend.

The estimator owns the model state (``csae._state.ModelState``: weights,
optimizer state, the SplitMix64 state, the learned input range and the
training history), its locks and the conventions around them; every method
takes one snapshot (validated hyperparameters and the immutable state) and
hands values to the layers below, which never see the estimator:

* ``csae._base``: the scikit-learn plumbing (parameters, repr, tags,
  ``set_output``, feature names);
* ``csae._data``: X wrapped once into an in-memory, memory-mapped or dask
  source that validates, scales and hands out rows;
* ``csae._fitting``: the starting state, early stopping's split, the solver
  and the transaction of ``fit`` and ``partial_fit``;
* ``csae._backends``: the arithmetic (the C engine or the NumPy reference);
* ``csae._persist``, ``csae._dask``, ``csae._gradcheck``: model files, dask
  outputs, the gradient check.

scikit-learn is not imported here (see ``csae._base``).
"""

import inspect
import sys

import numpy as np

from csae import _dask, _data, _gradcheck, _persist
from csae._backends import Backend
from csae._params import HYPERPARAMETERS, document
from csae._base import SET_OUTPUT_MODULE, EstimatorBase, available_if
from csae._fitting import fit_state, partial_fit_state
from csae._range import learned_range, unscale
from csae._state import (
    EMPTY_STATE,
    WEIGHT_NAMES,
    ModelLocks,
    assign_weight,
    freeze_state,
    not_fitted,
    require_fitted,
    state_from_legacy,
)
from csae._training import objective_settings
from csae._validation import check_data, validate_hyperparameters
from csae._warnings import TrainingDivergedWarning, TrainingInterruptedWarning

try:
    from csae import _engine
except ImportError:  # reported when backend="c" is used; "python" still works
    _engine = None  # type: ignore[assignment]

__all__ = ["SparseAutoencoder", "TrainingInterruptedWarning", "TrainingDivergedWarning",
           "check_gradients", "train", "snapshot", "save_model"]

_MODULES = sys.modules


def _fitted_attribute(read, doc):
    """A read-only fitted attribute: ``read(state)`` of the model's state
    (NotFittedError on a model without weights)."""
    def get(self):
        state = self._state
        require_fitted(state, type(self).__name__)
        return read(state)
    return property(get, doc=doc)


def _weight_attribute(index, doc):
    """One of the four weight attributes: reading gives a read-only view,
    assigning replaces the weight (see the class Notes)."""
    return property(lambda self: self._get_weight(index),
                    lambda self, value: self._set_weight(index, value), doc=doc)


class SparseAutoencoder(EstimatorBase):
    """Sparse autoencoder with a KL-divergence sparsity penalty.

    A three-layer network ``x -> a = sigmoid(W x + b) -> y = g(W' a + b')``
    trained by minibatch SGD or Adam, or by full-batch L-BFGS, to reconstruct
    its input, with the objective

        (1/m) sum ||y - x||^2 + weight_decay (||W||^2 + ||W'||^2)
        + sparsity_weight * sum_j KL(sparsity_target || mean activation of j)

    (no 1/2 factors; see ``docs/math.md``).  Hyperparameters are checked when
    a method uses them, not in ``__init__`` (scikit-learn's convention).

    Parameters
    ----------
    (built from csae._params.HYPERPARAMETERS at import)

    Attributes
    ----------
    encoder_weights_ : ndarray of shape (n_hidden, n_features_in_)
        ``W``.  Reading gives a read-only view; assigning an array of the
        right shape replaces the weights (see Notes).
    encoder_bias_ : ndarray of shape (n_hidden,)
        ``b``.
    decoder_weights_ : ndarray of shape (n_features_in_, n_hidden)
        ``W'``.
    decoder_bias_ : ndarray of shape (n_features_in_,)
        ``b'``.
    n_features_in_ : int
        Number of input features.
    loss_curve_ : list of float
        Objective of each epoch: the mean over its minibatches of the
        objective before each update, weighted by minibatch rows ("sgd");
        the objective on all the data after each iteration ("lbfgs").
    n_iter_ : int
        Number of completed epochs or iterations (``len(loss_curve_)``).
    validation_loss_curve_ : list of float or None
        With ``early_stopping=True``: the objective on the validation rows
        after each epoch (iteration) of the last ``fit``; None otherwise.
        (Not stored in model files.)
    best_validation_loss_ : float or None
        With ``early_stopping=True``: the lowest value of
        ``validation_loss_curve_``, whose weights the model keeps; None
        otherwise.
    best_epoch_ : int or None
        With ``early_stopping=True``: the epoch (1-based, numbered as
        ``n_iter_`` counts) of ``best_validation_loss_``; None otherwise.
    stop_reason_ : str or None
        Why the last ``fit`` or ``partial_fit`` stopped: "converged" (L-BFGS:
        the relative reduction of the objective fell below SciPy's ftol),
        "max_epochs" (the epochs or iterations it was given ran out;
        ``partial_fit`` runs one), "max_fun" (L-BFGS: evaluations ran out),
        "line_search" (L-BFGS: no step lowered the objective),
        "no_improvement" (``tol`` and ``n_iter_no_change``), "interrupted"
        (Ctrl-C) or "diverged" (a ``TrainingDivergedWarning`` says what the
        model kept).  Set even when the call left the old model; carried by
        pickles and by model files (format version 4; None after loading an
        older file).
    feature_names_in_ : ndarray of str objects, shape (n_features_in_,)
        Column names of the DataFrame given to ``fit`` (or the first
        ``partial_fit``), when they are all strings; absent otherwise.  Later
        DataFrames must have the same columns in the same order
        (``ValueError`` otherwise); a plain array, or a DataFrame given to a
        model fitted without names, gets a ``UserWarning``, as in
        scikit-learn.

    Notes
    -----
    *Building a model from known weights.*  Assigning all four weight
    attributes on an unfitted model makes it usable (``n_features_in_`` is
    taken from the arrays, whose hidden size must equal ``n_hidden``).  On
    a fitted model an assigned array must keep its shape.  Arrays are
    copied, checked to be finite and converted to ``dtype``.

    *Fit is a transaction.*  ``fit`` and ``partial_fit`` validate data and
    hyperparameters first (``ValueError``/``TypeError``), then train on a
    new state built aside, and replace the model's state (weights, momentum
    velocities, Adam moments, running sparsity estimate, random-number
    state, loss curves, input range) only when training produced a usable
    one.  Any exception raised while training (``MemoryError``, a value the
    backend refuses) leaves the model bit-identical to what it was before
    the call.  If training diverges (a non-finite objective or gradient, or
    an epoch objective grown to more than 1e4 times the objective the call
    started from, on its own data), training stops with a
    ``TrainingDivergedWarning`` naming the epoch; a call whose starting
    objective is not finite diverges before its first step.  The model then
    stays bit-identical to what it was before the call (a fresh model stays
    unfitted), unless the call completed an epoch whose state (the whole
    state after the completed epoch of this call with the lowest objective,
    the lowest validation objective under early stopping) has a lower
    objective on the call's data than both the call's start and the model
    before the call: then it keeps that state, ``n_iter_`` and
    ``loss_curve_`` ending at that epoch.  This holds for every solver and
    for ``partial_fit`` (which runs one epoch, so it never keeps one).  A
    fitted model is always finite, so it saves to a file that loads.
    Ctrl-C stops training with a
    ``TrainingInterruptedWarning``: the model keeps the state after the last
    epoch completed (interrupted epochs are not counted in ``n_iter_``), or,
    if no epoch of this call completed (always the case for
    ``partial_fit``, which runs one), stays as it was before the call.  Both
    methods return ``self`` in these cases.

    *Warnings at the end of fit.*  ``ConvergenceWarning`` when
    ``max_epochs`` ends before the stopping rule is met;
    ``DeadUnitsWarning`` when most hidden units are dead or saturated;
    ``LearnedNothingWarning`` when the reconstruction is no better than
    predicting the mean sample.  Each names the problem and the fix and
    points at the line that called ``fit`` (see ``csae._warnings`` for the
    thresholds).  ``partial_fit`` raises none of them.

    *Sharing one model between threads.*  ``transform``, ``reconstruct``,
    ``loss``, ``save``, ``get_params``, pickling and the fitted attributes
    read one consistent snapshot of the model (never weights of one fit with
    the loss curve of another) and never wait for training.  ``fit``,
    ``partial_fit``, ``set_params`` and weight assignment take turns: each
    waits for the one running to finish (two threads calling
    ``partial_fit`` train two epochs, one after the other).

    Examples
    --------
    >>> from csae import SparseAutoencoder
    >>> from csae.datasets import make_bars
    >>> X = make_bars(500, size=6, random_state=0)      # 500 images of 6x6 bars
    >>> model = SparseAutoencoder(n_hidden=12, random_state=0).fit(X)
    >>> model.transform(X).shape
    (500, 12)
    """

    def __init__(self, n_hidden=25, sparsity_target=0.01, sparsity_weight=6.0,
                 weight_decay=1e-4, decoder="sigmoid", learning_rate=0.1, momentum=0.0,
                 batch_size=100, max_epochs=1000, shuffle=True, scale_inputs=False,
                 dtype="float64", backend="c", random_state=None, verbose=False,
                 n_threads=None, solver="lbfgs", max_fun=15000, tol=1e-5, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, warm_start=False, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, sparsity_estimate="batch",
                 sparsity_smoothing=0.1):
        arguments = locals()
        # The locks and the state exist before the first hyperparameter is
        # set (their setter takes the snapshot lock).
        object.__setattr__(self, "_locks", ModelLocks())
        object.__setattr__(self, "_state", EMPTY_STATE)
        object.__setattr__(self, "_fast", None)
        object.__setattr__(self, "_hp_generation", 0)
        # Every parameter is stored as given (scikit-learn's convention),
        # under its own name: the signature and csae._params.HYPERPARAMETERS
        # name the same parameters (tests/test_params.py).
        for name in _HYPERPARAMETER_ORDER:
            setattr(self, name, arguments[name])

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------

    def fit(self, X, y=None):
        """Train for up to ``max_epochs`` epochs (iterations for "lbfgs").

        Initialises the weights from ``random_state`` first, unless
        ``warm_start=True`` and the model has weights (trained or assigned):
        then training continues from them, with their optimizer state.
        Stops early by the rule of ``tol`` and ``n_iter_no_change`` (on a
        held-out validation set with ``early_stopping=True``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (in [0, 1] for the sigmoid decoder unless
            ``scale_inputs=True``).  Never modified.
        y : None
            Ignored; accepted for scikit-learn compatibility.

        Returns
        -------
        self : SparseAutoencoder
            Also when training diverged or was interrupted (a warning says
            so; see the class Notes).

        Warns
        -----
        ConvergenceWarning
            ``max_epochs`` ended before the stopping rule was met.
        DeadUnitsWarning, LearnedNothingWarning
            The trained model is degenerate (see their documentation).
        TrainingDivergedWarning, TrainingInterruptedWarning
            Training stopped early (see the class Notes).
        """
        train(self, X)
        return self

    @available_if(lambda self: self.solver != "lbfgs",
                  "solver='lbfgs' trains on all the data at once: use fit, or "
                  "solver='sgd' or 'adam'")
    def partial_fit(self, X, y=None):
        """Run one epoch of SGD or Adam over X, continuing from the current
        state.

        The first call (on a model without weights) initialises them from
        ``random_state`` (and learns the input range when
        ``scale_inputs=True``); later calls continue from the current
        weights, momentum velocities, Adam moments, running sparsity
        estimate and random-number state, so ``k`` calls equal ``fit`` with
        ``max_epochs=k`` (and ``tol=0``, so that fit does not stop earlier)
        on the same data.  No stopping rule, early stopping or end-of-fit
        check applies.  Later calls cannot change what the weights fix:
        ``n_hidden`` must equal the weights' number of units, and with
        ``scale_inputs=True`` and the sigmoid decoder X must lie in the input
        range the first call learned (``ValueError`` otherwise, naming the
        range; ``fit`` learns both anew).

        If the epoch does not complete (an exception, Ctrl-C, divergence),
        the model stays exactly as it was before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data for this epoch.  Never modified.
        y : None
            Ignored.

        Returns
        -------
        self : SparseAutoencoder
        """
        with self._locks.write:
            hp, raw, old = self._hyper_and_state()
            # stacklevel 3: partial_fit_state, this method, its caller.
            outcome = partial_fit_state(_data.source(X), hp, raw, old,
                                        estimator=type(self).__name__, stacklevel=3)
            self._publish(outcome.state, outcome.reason)
        return self

    def fit_transform(self, X, y=None):
        """Fit the model on X and return its hidden activations.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        H : ndarray of shape (n_samples, n_hidden)
        """
        Xc, hp, backend, outcome = train(self, X)
        state = self._state if outcome.state is None else outcome.state
        require_fitted(state, type(self).__name__)  # None: the old model stayed
        W, b = (p if p.dtype == hp.dtype else p.astype(hp.dtype) for p in state.params[:2])
        return self._wrap_output(backend.encode(W, b, Xc), X, state)

    # ------------------------------------------------------------------
    # Using a model
    # ------------------------------------------------------------------

    def transform(self, X):
        """Hidden activations ``sigmoid(X W^T + b)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Any real values (the [0, 1] requirement of the sigmoid decoder
            applies to training data only).  Never modified.

        Returns
        -------
        H : ndarray of shape (n_samples, n_hidden), in the model dtype
        """
        # The fast path, inline (a method call would cost a tenth of it).
        # Encoding one row takes well under a microsecond in C, so the full
        # validation (hyperparameters, conversions, NumPy finiteness checks)
        # would be nearly all of a call's cost.  This path applies only when
        # nothing needs converting: C backend, no input scaling, default
        # output, no column names to check, and X an aligned C-contiguous
        # array of the model dtype with the right width.  The engine checks X
        # for NaN/inf itself and returns None for anything unusual, so every
        # error still comes from the validating path, with its message.
        #
        # Two attribute reads, no lock: ``_fast`` is (dtype, n_threads) of
        # hyperparameters validated since they last changed (False when they
        # rule this path out, None when not validated yet), and the state is
        # immutable.  A concurrent set_params or fit makes this call see the
        # model just before or just after it, never a mix.
        fast = self._fast
        if fast:
            state = self._state
            params = state.params
            if (params is not None and fast[0] is params[0].dtype.type
                    and state.feature_names is None):
                # cast: float data of the other width (NumPy's float64 into
                # a float32 model, the usual case) is cast once in C, as the
                # validating path would cast it.
                H = _engine.encode_fast(params[0], params[1], X, fast[1], True)
                if H is not None:
                    if SET_OUTPUT_MODULE in _MODULES:  # scikit-learn's global setting
                        return self._wrap_output(H, X, state)
                    return H
        hp, raw, backend, params, state = self._ready()
        Xc = self._data(X, hp, raw, state, objective=False)
        return self._wrap_output(backend.encode(params[0], params[1], Xc), X, state)

    def inverse_transform(self, H):
        """Decoder output for hidden activations H (mapped back to the input
        scale when ``scale_inputs=True``).

        Parameters
        ----------
        H : array-like of shape (n_samples, n_hidden)

        Returns
        -------
        Y : ndarray of shape (n_samples, n_features_in_), in the model dtype
        """
        hp, raw, backend, params, state = self._ready()
        if _dask.is_dask_array(H):
            return _dask.inverse_transform(H, hp, backend, params,
                                           lambda: learned_range(state),
                                           n_threads=raw["n_threads"],
                                           estimator=type(self).__name__)
        h = params[0].shape[0]
        Hc = check_data(H, hp.dtype, name="H", n_features=h, expected_name="hidden units")
        data_min, scale = learned_range(state) if hp.scale_inputs else (None, None)
        return unscale(backend.decode(params[2], params[3], Hc, hp.decoder), hp, data_min,
                       scale)

    def reconstruct(self, X):
        """The model's reconstruction of X, ``inverse_transform(transform(X))``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        Y : ndarray of shape (n_samples, n_features_in_), in the model dtype
        """
        hp, raw, backend, params, state = self._ready()
        Xc = self._data(X, hp, raw, state, objective=False)
        return unscale(backend.reconstruct(params, Xc, hp.decoder), hp, state.data_min,
                       state.data_scale)

    def loss(self, X):
        """The objective on X taken as one batch (``rho_hat`` is the mean
        activation over all of X).

        With ``scale_inputs=True`` this is the objective of the scaled data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        loss : float
        """
        hp, raw, backend, params, state = self._ready()
        Xc = self._data(X, hp, raw, state, objective=True)
        value = backend.objective(params, Xc, **objective_settings(hp))
        # A dask array in gives a lazy 0-d dask array out.
        return value if _dask.is_dask_collection(value) else float(value)

    def loss_and_gradients(self, X):
        """The objective on X as one batch and its gradients.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        loss : float
        gradients : dict
            Keys "encoder_weights", "encoder_bias", "decoder_weights" and
            "decoder_bias", each an array shaped like that parameter.
        """
        hp, raw, backend, params, state = self._ready()
        Xc = self._data(X, hp, raw, state, objective=True)
        loss, grads = backend.objective_and_gradients(params, Xc, **objective_settings(hp))
        return float(loss), dict(zip(WEIGHT_NAMES, grads))

    def score(self, X, y=None):
        """Minus the objective on X (higher is better), for model selection.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        return -self.loss(X)

    # ------------------------------------------------------------------
    # Persistence
    # ------------------------------------------------------------------

    def save(self, path):
        """Save the model to ``path`` (a ``.npz`` file; no pickle inside).

        The file is written to a temporary file in the same folder and then
        renamed over ``path``, so a crash never leaves a half-written model.

        Parameters
        ----------
        path : str or os.PathLike
            Written exactly as given (no suffix is added).
        """
        save_model(self, path)

    @classmethod
    def load(cls, path):
        """Load a model saved by ``save``.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        model : SparseAutoencoder

        Raises
        ------
        ValueError
            If the file is not a valid csae model file (truncated, corrupted,
            hand-crafted, or from a newer csae).
        """
        hyperparameters, stop_reason, state = _persist.load(
            path, defaults_for_older_models(cls._get_param_names(), cls))
        model = cls(**hyperparameters)
        model._publish(state, stop_reason)
        return model

    # ------------------------------------------------------------------
    # Fitted attributes
    # ------------------------------------------------------------------

    encoder_weights_ = _weight_attribute(
        0, "Encoder weights W, shape (n_hidden, n_features_in_).")
    encoder_bias_ = _weight_attribute(1, "Encoder bias b, shape (n_hidden,).")
    decoder_weights_ = _weight_attribute(
        2, "Decoder weights W', shape (n_features_in_, n_hidden).")
    decoder_bias_ = _weight_attribute(3, "Decoder bias b', shape (n_features_in_,).")
    n_features_in_ = _fitted_attribute(
        lambda state: int(state.params[0].shape[1]),
        "Number of input features the model was fitted on.")
    loss_curve_ = _fitted_attribute(
        lambda state: list(state.loss_curve),
        "Objective of each completed epoch (a new list).")
    n_iter_ = _fitted_attribute(
        lambda state: len(state.loss_curve),
        'Number of completed epochs (iterations for "lbfgs").')
    validation_loss_curve_ = _fitted_attribute(
        lambda state: (None if state.validation_loss_curve is None
                       else list(state.validation_loss_curve)),
        "Validation objective after each epoch of the last ``fit`` with\n"
        "``early_stopping=True`` (a new list), else None.")
    best_validation_loss_ = _fitted_attribute(
        lambda state: state.best_validation_loss,
        "Lowest validation objective of the last ``fit`` with\n"
        "``early_stopping=True``, else None.")
    best_epoch_ = _fitted_attribute(
        lambda state: state.best_epoch,
        "Epoch (1-based, counted as ``n_iter_`` counts) whose weights early\n"
        "stopping restored, else None.")

    @property
    def stop_reason_(self):
        """Why the last ``fit`` or ``partial_fit`` stopped: one of
        ``csae.solvers.STOP_REASONS`` (see the class's Attributes); None for
        a model that has not trained (given its weights by hand, or loaded
        from a model file older than format version 4)."""
        reason = self.__dict__.get("_stop_reason")
        if reason is None:
            require_fitted(self._state, type(self).__name__)
        return reason

    # ------------------------------------------------------------------
    # The state, its snapshot and pickling (private to this module)
    # ------------------------------------------------------------------

    def _publish(self, state, stop_reason=None):
        """Make ``state`` the model's state (one reference assignment, so a
        reader sees the old state or the new one, never a mix).  A training
        call passes why it stopped (``stop_reason_``) and None for ``state``
        when the old model stays."""
        with self._locks.snapshot:
            if state is not None:
                object.__setattr__(self, "_state", state)
            if stop_reason is not None:
                object.__setattr__(self, "_stop_reason", stop_reason)

    def _hyper_and_state(self, check_fitted=False):
        """(validated hyperparameters, their raw values, the state), all of
        one snapshot; also records what the fast transform path needs."""
        raw, state, generation = self._snapshot()
        if check_fitted:
            require_fitted(state, type(self).__name__)
        hp = validate_hyperparameters(raw)
        fast = (_engine is not None and hp.backend == "c" and not hp.scale_inputs
                and (hp.dtype.type, raw["n_threads"]))
        with self._locks.snapshot:
            if self._hp_generation == generation:  # no set_params since the snapshot
                output = self._output_kind()
                object.__setattr__(self, "_fast", fast if output in (None, "default")
                                   else False)
        return hp, raw, state

    def _ready(self):
        """(hyperparameters, their raw values, backend, params in the model
        dtype, state) of one snapshot, for a method that uses the weights;
        does not change the model."""
        hp, raw, state = self._hyper_and_state(check_fitted=True)
        params = tuple(p if p.dtype == hp.dtype else p.astype(hp.dtype)
                       for p in state.params)
        return hp, raw, Backend(hp.backend, hp.n_threads), params, state

    def _data(self, X, hp, raw, state, **how):
        """X prepared by its data source (csae._data) for a method that uses
        the weights."""
        # stacklevel 4: prepare, this method, the public method, its caller.
        return _data.source(X).prepare(hp, state, estimator=type(self).__name__,
                                       n_threads=raw["n_threads"], stacklevel=4, **how)[0]

    def _get_weight(self, index):
        state = self._state
        if state.params is not None:
            array = state.params[index]
        elif state.pending[index] is not None:
            array = state.pending[index]
        else:
            raise not_fitted(type(self).__name__)
        # The state's arrays are read-only, and so is this view of one:
        # writes must go through the setter.
        return array.view()

    def _set_weight(self, index, value):
        with self._locks.write:
            self._publish(assign_weight(self._state, index, value, self.dtype,
                                        self.n_hidden))

    # Attributes that belong to this object in this process, not to the model.
    _TRANSIENT = ("_locks", "_fast", "_hp_generation")

    def __getstate__(self):
        # Hyperparameters and state read together (pickling, copy.deepcopy).
        with self._locks.snapshot:
            state = dict(self.__dict__)
        for key in self._TRANSIENT:
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        state = dict(state)
        if "_state" in state:
            # Unpickled arrays are writable (joblib may even hand back
            # read-only memmaps): make them owned and frozen again.
            state["_state"] = freeze_state(state["_state"])
        else:  # pickled by an earlier csae, one attribute per field
            legacy = {key: state.pop(key, None) for key in
                      ("_params", "_velocity", "_rng_state", "_data_min", "_data_scale",
                       "_loss_curve", "_pending", "_validated")}
            state["_state"] = state_from_legacy(legacy, WEIGHT_NAMES)
        # Hyperparameters added since the pickle was made.
        state = {**defaults_for_older_models(_HYPERPARAMETER_NAMES - set(state)), **state}
        object.__setattr__(self, "_locks", ModelLocks())
        object.__setattr__(self, "_fast", None)
        object.__setattr__(self, "_hp_generation", 0)
        self.__dict__.update(state)


# What a pickle from before a hyperparameter existed is completed with.
_HYPERPARAMETER_NAMES = frozenset(SparseAutoencoder._get_param_names())
# The order __init__ sets them in: the signature's.
_HYPERPARAMETER_ORDER = tuple(p for p in inspect.signature(SparseAutoencoder.__init__).parameters
                              if p != "self")
document(SparseAutoencoder)

# What a model saved or pickled before a hyperparameter existed means by it,
# where that is not today's default (csae._params' older_default): without
# "solver" it was trained by minibatch SGD, the only solver then (the default
# became "lbfgs" later).  Every other missing hyperparameter takes the
# constructor's default.
HYPERPARAMETERS_BEFORE_ADDED = {p.name: p.older_default for p in HYPERPARAMETERS
                                if p.has_older_default}


def defaults_for_older_models(names, cls=SparseAutoencoder):
    """The values of the hyperparameters ``names`` for a model saved before
    they existed."""
    signature = inspect.signature(cls.__init__).parameters
    return {name: HYPERPARAMETERS_BEFORE_ADDED.get(name, signature[name].default)
            for name in names}


# --------------------------------------------------------------------------
# Entry points for csae's own modules (the command line, csae.onnx): they
# drive a model through these functions, never through its private methods.
# --------------------------------------------------------------------------

def from_state(hyperparameters, state, stop_reason=None):
    """A SparseAutoencoder of ``hyperparameters`` holding ``state`` (a
    ``ModelState``), as ``load`` builds one (csae._deep_persist builds a
    deep model's autoencoders so)."""
    model = SparseAutoencoder(**hyperparameters)
    model._publish(state, stop_reason)
    return model


def snapshot(model):
    """``(hyperparameters, state)`` of ``model``, read together: its
    ``get_params()`` and its immutable ``csae._state.ModelState``."""
    raw, state, _ = model._snapshot()
    return raw, state


def train(model, X, *, hook=None, on_rows=None):
    """``model.fit(X)``; returns ``(prepared X, hyperparameters, backend,
    Outcome)`` (``Outcome.state`` is None when the old state stayed).

    ``hook(epoch, objective, validation, seconds)`` is called after each
    epoch, and ``on_rows(done)`` with the rows of the epoch done so far
    after each chunk of a memory-mapped file's SGD/Adam epoch (the command
    line's progress display)."""
    with model._locks.write:
        hp, raw, old = model._hyper_and_state()
        # stacklevel 4: fit_state, this function, fit, fit's caller.
        Xc, backend, outcome = fit_state(_data.source(X), hp, raw, old,
                                         estimator=type(model).__name__, hook=hook,
                                         on_rows=on_rows, stacklevel=4)
        model._publish(outcome.state, outcome.reason)
        return Xc, hp, backend, outcome


def save_model(model, path, *, replace=True):
    """``model.save(path)``; with ``replace=False``, refuse
    (FileExistsError) to replace an existing file."""
    # One snapshot (hyperparameters and state together), taken without
    # waiting for a running fit; the file is written from it.
    raw, state = snapshot(model)
    _persist.save(path, raw, state, replace=replace, estimator=type(model).__name__,
                  stop_reason=model.__dict__.get("_stop_reason"))


def check_gradients(model, X, epsilon=1e-4, *, max_entries=None, random_state=0,
                    return_details=False):
    """Worst relative error between a model's analytic gradients and
    central finite differences of its objective on X.

    For each of the four parameter arrays (encoder weights and bias, decoder
    weights and bias) every entry ``theta_k`` (or a random sample of
    ``max_entries`` of them) gets the numerical derivative

        n_k = (L(theta_k + epsilon) - L(theta_k - epsilon)) / (2 epsilon)

    of the objective L on X taken as one batch (as in ``model.loss``), and
    the array's error is UFLDL's ``norm(n - a) / norm(n + a)`` over those
    entries, with ``a`` the analytic gradient.  The largest of the four
    errors is returned.  A correct gradient gives about 1e-9 or less;
    a wrong one gives 1e-2 or more.

    The check runs in float64 on a float64 copy of the model (so a float32
    model is checked without float32 rounding swamping the differences),
    with the model's backend and hyperparameters; the model is not changed.

    Parameters
    ----------
    model : SparseAutoencoder
        A fitted model (or one whose four weights were assigned).
    X : array-like of shape (n_samples, n_features_in_)
        Data, as for ``model.loss`` (scaled when ``scale_inputs=True``).
    epsilon : float, default=1e-4
        Step of the central differences (> 0).
    max_entries : int or None, default=None
        Check at most this many entries of each array, chosen at random
        (None: every entry; each costs two objective evaluations).
    random_state : int or None, default=0
        Seed for choosing the entries when ``max_entries`` is set.
    return_details : bool, default=False
        Also return a dict with each array's error.

    Returns
    -------
    error : float
        The worst relative error over the four arrays.
    details : dict
        Only with ``return_details=True``: array name -> relative error.
    """
    _gradcheck.check_arguments(epsilon, max_entries)
    # Hyperparameters and weights of one snapshot of the model.
    hp, raw, state = model._hyper_and_state(check_fitted=True)
    backend = Backend(hp.backend, hp.n_threads)
    X64 = model._data(X, hp, raw, state, objective=True, dtype=np.dtype(np.float64))
    details = _gradcheck.check_gradients(
        backend, state.params, X64, objective_settings(hp), epsilon=epsilon,
        max_entries=max_entries, random_state=random_state)
    worst = max(details.values())
    return (worst, details) if return_details else worst
