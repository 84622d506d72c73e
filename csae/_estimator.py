"""``SparseAutoencoder``: the scikit-learn style estimator around a backend.

The estimator owns the model state (weights, momentum velocities, the
SplitMix64 state, the learned input range and the training history) and the
conventions around it; the arithmetic happens in a backend (the C engine or
the NumPy reference, see ``csae._backends``).

scikit-learn is not imported here: ``get_params``/``set_params``, the repr
and the tags are written out so that numpy stays the only runtime
dependency (scikit-learn is imported lazily by ``__sklearn_tags__``, which
only scikit-learn itself calls).
"""

import inspect
import sys
import warnings

import numpy as np

from csae import _blockwise, _dask
from csae._backends import Backend
from csae._training import Transaction, objective_settings, train, validation_split
from csae._warnings import TrainingDivergedWarning, TrainingInterruptedWarning
from csae._state import (
    EMPTY_STATE,
    ORIGIN_ASSIGNED,
    ORIGIN_TRAINED,
    ModelLocks,
    ModelState,
    freeze_state,
    frozen,
    frozen_tuple,
    state_from_legacy,
)
from csae._validation import (
    NotFittedError,
    as_numeric_array,
    int_param,
    check_data,
    check_unit_interval,
    check_within_learned_range,
    input_scale,
    check_weight_array,
    _is_dataframe,
    check_frame_columns,
    derive_seed,
    feature_names_of,
    resolve_dtype,
    validate_hyperparameters,
)

try:
    from csae import _engine
except ImportError:  # reported when backend="c" is used; "python" still works
    _engine = None  # type: ignore[assignment]

__all__ = ["SparseAutoencoder", "TrainingInterruptedWarning", "TrainingDivergedWarning"]

# Names of the four parameter arrays, in the backends' (W, b, Wd, bd) order.
WEIGHT_NAMES = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")

# scikit-learn's set_output machinery, used when scikit-learn is already
# imported (it then also honours sklearn.set_config(transform_output=...));
# csae never imports scikit-learn itself.
_SET_OUTPUT_MODULE = "sklearn.utils._set_output"
_MODULES = sys.modules
OUTPUT_CONTAINERS = ("default", "pandas", "polars")

class _available_if:
    """A method that exists only while ``check(model)`` holds, as
    scikit-learn's ``available_if`` (written out so that scikit-learn stays
    optional): ``hasattr(model, "partial_fit")`` is False for
    solver="lbfgs", as for scikit-learn's MLP, so tools that feed data in
    chunks when they can see the method do not try."""

    def __init__(self, check, reason):
        self.check, self.reason = check, reason

    def __call__(self, method):
        self.method = method
        self.__doc__ = method.__doc__
        return self

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, model, owner=None):
        if model is not None and not self.check(model):
            raise AttributeError(f"{self.name} is not available: {self.reason}")
        return self.method.__get__(model, owner) if model is not None else self.method


def _learn_range(X):
    """Per-feature minimum and scale (max - min) of X (float64)."""
    data_min = X.min(axis=0)
    return data_min, input_scale(data_min, X.max(axis=0))


def _apply_range(X, data_min, scale, dtype):
    """(X - min) / scale in float64, returned C-contiguous in ``dtype``."""
    out = np.ascontiguousarray((X - data_min) / scale, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError("X scaled by the learned input range overflows "
                         f"{dtype.name}; its values are far outside the range seen in fit")
    return out




def _container(kind, H, X, names):
    """H as a pandas or polars DataFrame with columns ``names`` (pandas keeps
    the index of a pandas X, as scikit-learn does)."""
    if kind == "pandas":
        import pandas as pd  # type: ignore[import-untyped,import-not-found,unused-ignore]
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(H, index=index, columns=list(names), copy=False)
    import polars as pl  # type: ignore[import-not-found,unused-ignore]
    return pl.DataFrame(H, schema=list(names), orient="row")


def _feature_names_message(fitted, given):
    """scikit-learn's message for DataFrame columns that differ from fit's."""
    def listed(names):
        shown = [f"- {name}\n" for name in names[:5]]
        return "".join(shown) + ("- ...\n" if len(names) > 5 else "")
    unseen = sorted(set(given) - set(fitted))
    missing = sorted(set(fitted) - set(given))
    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + listed(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listed(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    return message


def _state_field(field, convert):
    """A property reading one field of the model's state; setting it
    publishes a new state with that field replaced."""
    def get(self):
        return getattr(self._state, field)

    def set_(self, value):
        with self._locks.write:
            self._publish(self._state._replace(**{field: convert(value)}))
    return property(get, set_)


class SparseAutoencoder:
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
    n_hidden : int, default=25
        Number of hidden units ``h``.
    sparsity_target : float, default=0.01
        Target mean activation ``rho`` of each hidden unit, in (0, 1)
        (MATLAB's SparsityProportion).  The default is the UFLDL exercise's.
    sparsity_weight : float, default=6.0
        Weight ``beta >= 0`` of the KL sparsity penalty (MATLAB's
        SparsityRegularization).  The default is the UFLDL exercise's beta
        3 in this objective's scale (see the README's table).
    weight_decay : float, default=1e-4
        Weight ``lambda >= 0`` of the L2 penalty on ``W`` and ``W'`` (biases
        excluded).  UFLDL's lambda is this value, and its beta half of
        ``sparsity_weight`` (see the README's table).
    decoder : {"sigmoid", "linear"}, default="sigmoid"
        Output function ``g``.  "sigmoid" needs inputs in [0, 1] (or
        ``scale_inputs=True``); "linear" takes inputs on any scale.
    learning_rate : float, default=0.1
        Step size of "sgd" and "adam", > 0.
    momentum : float, default=0.0
        Momentum ``mu`` in [0, 1): ``v <- mu v - lr g; theta <- theta + v``.
    batch_size : int, default=100
        Rows per minibatch (the last minibatch of an epoch may be shorter;
        a value above the number of rows gives full-batch gradient descent).
    max_epochs : int, default=1000
        The most epochs ``fit`` runs (iterations for "lbfgs"); it may stop
        earlier by the rule of ``tol`` and ``n_iter_no_change``.  The
        default is MATLAB ``trainAutoencoder``'s; "lbfgs" with the other
        defaults stopped by the rule after 355-561 iterations on image
        patches, digits and the bars data.
    shuffle : bool, default=True
        Visit the rows in a fresh random order each epoch (otherwise in row
        order).
    scale_inputs : bool, default=False
        Learn each feature's minimum and maximum on the data given to
        ``fit`` (or the first ``partial_fit``), map inputs to [0, 1] with
        them before the network, and map outputs of ``inverse_transform``
        and ``reconstruct`` back.  Constant features map to 0.  ``loss``,
        ``score`` and the gradients are those of the scaled problem.
    dtype : {"float64", "float32"}, default="float64"
        Floating-point type of the weights and of every computation (NumPy
        dtypes such as ``np.float32`` are accepted too).
    backend : {"c", "python"}, default="c"
        "c" runs the compiled engine; "python" the NumPy reference
        ``csae.reference``.  Both give the same results (float64: within
        1e-10 relative after an epoch; float32: within 1e-4).
    random_state : None, int, numpy.random.Generator or RandomState, default=None
        Source of the initial weights and of the shuffling order.  An int
        gives identical results on every run and on both backends; None
        draws fresh entropy at each ``fit``.
    verbose : bool or int, default=False
        Print progress on stdout: with 1 (or True) a line for the first and
        the last epoch and about 10 evenly spaced in between, with 2 a line
        for every epoch; each gives the objective (and the validation
        objective under early stopping), the mean hidden activation and the
        time elapsed since the call began.  ``fit`` ends with a line saying
        why it stopped.  When tqdm is installed a progress bar runs on
        stderr as well.
    n_threads : int or None, default=None
        Threads used by the C engine, capped at the CPUs this process may
        run on.  None uses ``OMP_NUM_THREADS`` when it is set to a valid
        value (as joblib and Dask workers do), else every CPU this process
        may run on, and at most the limit set by threadpoolctl's
        ``threadpool_limits``; read at each call.  Ignored by the "python"
        backend.  Results do not depend on it.
    solver : {"lbfgs", "sgd", "adam"}, default="lbfgs"
        "sgd": minibatch stochastic gradient descent with momentum
        (``learning_rate``, ``momentum``, ``batch_size``, ``shuffle``).
        "adam": minibatch Adam (Kingma and Ba; scikit-learn's convention,
        with ``beta_1``, ``beta_2``, ``epsilon``; ``momentum`` is not used);
        its moments ``m``, ``v`` and step count ``t`` are model state, kept
        by ``partial_fit``, ``warm_start``, pickling and ``save``.
        "lbfgs": full-batch L-BFGS on the whole objective, as the UFLDL
        exercise (minFunc), mlpack and scikit-learn's MLP do it: the
        engine's L-BFGS (SciPy's L-BFGS-B algorithm, docs/training.md)
        asks for one engine call per evaluation over all the data;
        ``max_epochs`` then counts iterations.  The
        optimizer keeps its vectors in float64; a float32 model computes
        every objective and gradient in float32.  ``partial_fit`` needs
        "sgd" or "adam" (with "lbfgs" the model has no ``partial_fit``
        attribute, as scikit-learn's MLP).  The default, as in every
        reference system: with the other defaults it learns useful features
        without tuning (see the README's "Defaults").
    max_fun : int, default=15000
        "lbfgs" only: the most objective evaluations one ``fit`` may make.
    tol : float, default=1e-4
        Stopping tolerance, >= 0, for every solver (``fit`` only): stop when
        the training objective (the validation objective with
        ``early_stopping``) has not improved on its best by more than
        ``tol`` for ``n_iter_no_change`` epochs ("lbfgs": iterations) in a
        row; without early stopping ``tol=0`` switches this rule (and the
        ``ConvergenceWarning`` of a run that ends at ``max_epochs``) off.
        "lbfgs" also ends when the optimizer finds no more progress (its
        relative-reduction test, as SciPy's L-BFGS-B).  Unlike
        scikit-learn's MLP, "lbfgs" does not compare gradient components
        with ``tol``: that test depends on the scale of the data.
    beta_1 : float, default=0.9
        "adam": decay of the first-moment estimate, in [0, 1).
    beta_2 : float, default=0.999
        "adam": decay of the second-moment estimate, in [0, 1).
    epsilon : float, default=1e-8
        "adam": added to ``sqrt(v)`` in the step's denominator, > 0.
    warm_start : bool, default=False
        When True and the model has weights (from training or assigned by
        hand), ``fit`` continues from them (with their momentum velocities,
        Adam moments, running sparsity estimate, random-number state, input
        range and loss curve) instead of initialising new ones
        (scikit-learn's meaning).  ``n_hidden`` must then match the weights.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows given to ``fit`` (drawn
        once, seeded by ``random_state``), compute the objective on them
        after every epoch (iteration for "lbfgs") into
        ``validation_loss_curve_``, stop when it has not improved by more
        than ``tol`` for ``n_iter_no_change`` epochs, and keep the weights of
        the epoch with the lowest one (``best_epoch_``,
        ``best_validation_loss_``); ``loss_curve_`` and ``n_iter_`` still
        count every epoch run (scikit-learn's MLP convention).  The input
        range of ``scale_inputs`` is learned on all the rows.  Not used by
        ``partial_fit``.  Needs X in memory (a memory-mapped file larger
        than one chunk or a dask array gives ``ValueError``).
    validation_fraction : float, default=0.1
        Fraction of the rows held out for early stopping, in (0, 1); the
        validation set has ``ceil(validation_fraction * n_samples)`` rows and
        at least one row must remain for training (``ValueError``
        otherwise).
    n_iter_no_change : int, default=10
        Epochs (iterations) without an improvement by more than ``tol``
        after which training stops, >= 1.
    sparsity_estimate : {"batch", "running"}, default="batch"
        The mean activation ``rho_hat`` in the KL term's gradient of "sgd"
        and "adam".  "batch": each minibatch's own mean activation (exact
        for full batches, but with small minibatches a noisy estimate that
        biases the sparsity the model reaches).  "running": an exponential
        moving average ``q`` across minibatches, ``q <- (1 - tau) q + tau
        rho_hat(batch)`` with ``tau = sparsity_smoothing`` (``q`` starts at
        the first minibatch's value); ``q`` is model state, kept by
        ``partial_fit``, ``warm_start``, pickling and ``save``.  The
        reported objective always uses the minibatch's own ``rho_hat``;
        "lbfgs" always uses the exact full-batch ``rho_hat``.  See
        ``docs/math.md``.
    sparsity_smoothing : float, default=0.1
        ``tau`` of the running estimate, in (0, 1]: the weight of the newest
        minibatch, so ``q`` averages over about ``1 / tau`` minibatches
        (0.1: ten; 1 is the batch estimate).  Smaller values average more
        samples but lag further behind the changing weights.

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
        pickles, not by model files (None after ``csae.load``).
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
                 n_threads=None, solver="lbfgs", max_fun=15000, tol=1e-4, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, warm_start=False, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, sparsity_estimate="batch",
                 sparsity_smoothing=0.1):
        # The locks and the state exist before the first hyperparameter is
        # set (their setter takes the snapshot lock).
        object.__setattr__(self, "_locks", ModelLocks())
        object.__setattr__(self, "_state", EMPTY_STATE)
        object.__setattr__(self, "_fast", None)
        object.__setattr__(self, "_hp_generation", 0)
        self.n_hidden = n_hidden
        self.sparsity_target = sparsity_target
        self.sparsity_weight = sparsity_weight
        self.weight_decay = weight_decay
        self.decoder = decoder
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.shuffle = shuffle
        self.scale_inputs = scale_inputs
        self.dtype = dtype
        self.backend = backend
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.solver = solver
        self.max_fun = max_fun
        self.tol = tol
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.sparsity_estimate = sparsity_estimate
        self.sparsity_smoothing = sparsity_smoothing

    def __setattr__(self, name, value):
        if name in _HYPERPARAMETER_NAMES:
            with self._locks.snapshot:
                object.__setattr__(self, name, value)
                # The fast transform path must see the new value validated
                # before it may use it again.
                object.__setattr__(self, "_fast", None)
                object.__setattr__(self, "_hp_generation", self._hp_generation + 1)
            return
        object.__setattr__(self, name, value)

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

    def _snapshot(self):
        """(hyperparameter values, state, hyperparameter generation) read
        together: the consistent view that readers work from."""
        with self._locks.snapshot:
            return ({name: getattr(self, name) for name in self._get_param_names()},
                    self._state, self._hp_generation)

    # Field-by-field access to the state for csae's own modules that predate
    # ModelState (_persist builds a loaded model this way, _gradcheck reads
    # the weights).  Each assignment publishes a whole new state.
    _params = _state_field("params", frozen_tuple)
    _velocity = _state_field("velocity", frozen_tuple)
    _rng_state = _state_field("rng_state", lambda v: None if v is None else int(v))
    _data_min = _state_field("data_min", lambda v: None if v is None else frozen(v))
    _data_scale = _state_field("data_scale", lambda v: None if v is None else frozen(v))
    _loss_curve = _state_field("loss_curve", lambda v: tuple(float(x) for x in v))
    _adam_m = _state_field("adam_m", frozen_tuple)
    _adam_v = _state_field("adam_v", frozen_tuple)
    _adam_t = _state_field("adam_t", int)
    _rho_running = _state_field("rho_running", lambda v: None if v is None else frozen(v))
    _running_batches = _state_field("running_batches", int)

    # ------------------------------------------------------------------
    # scikit-learn plumbing
    # ------------------------------------------------------------------

    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep=True):
        """Hyperparameters of this estimator, as a dict.

        Parameters
        ----------
        deep : bool, default=True
            Accepted for scikit-learn compatibility (there are no nested
            estimators).

        Returns
        -------
        params : dict
            Parameter names mapped to their values (read together: a
            concurrent ``set_params`` call is seen whole or not at all).
        """
        return self._snapshot()[0]

    def set_params(self, **params):
        """Set hyperparameters (checked later, when a method uses them).

        Waits for a ``fit`` or ``partial_fit`` running in another thread to
        finish; the values are set together (see the class Notes).

        Parameters
        ----------
        **params : dict
            Parameter names and new values.

        Returns
        -------
        self : SparseAutoencoder
        """
        valid = self._get_param_names()
        for name in params:
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator "
                                 f"{type(self).__name__}. Valid parameters are: {valid!r}.")
        with self._locks.write, self._locks.snapshot:
            for name, value in params.items():
                setattr(self, name, value)
        return self

    def __repr__(self):
        # Non-default parameters only, in signature order (as scikit-learn).
        shown = []
        for p in inspect.signature(type(self).__init__).parameters.values():
            if p.name == "self" or p.kind == p.VAR_KEYWORD:
                continue
            value = getattr(self, p.name, None)
            if not _same_value(value, p.default):
                shown.append(f"{p.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_is_fitted__(self):
        """True once the model has weights (used by scikit-learn's
        ``check_is_fitted``)."""
        return self._state.params is not None

    def __sklearn_tags__(self):
        """Estimator tags for scikit-learn >= 1.6 (imports scikit-learn,
        which only scikit-learn itself calls this for)."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags
        return Tags(estimator_type="transformer",
                    target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=[self._dtype_name()]),
                    input_tags=InputTags(two_d_array=True, sparse=False, allow_nan=False))

    def _more_tags(self):
        # The same tags for scikit-learn < 1.6.
        return {"X_types": ["2darray"], "requires_y": False, "allow_nan": False,
                "preserves_dtype": [self._dtype_name()]}

    def _dtype_name(self):
        try:
            return resolve_dtype(self.dtype).name
        except ValueError:  # tags must not fail on a bad dtype: fit will say why
            return "float64"

    # scikit-learn's set_output convention: transform (and fit_transform)
    # outputs are wrapped in the configured container.
    _sklearn_auto_wrap_output_keys = {"transform"}

    def set_output(self, *, transform=None):
        """Choose the container ``transform`` and ``fit_transform`` return
        (scikit-learn's ``set_output`` API, so that a ``Pipeline`` or
        ``ColumnTransformer`` can configure it).

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None, default=None
            "default": NumPy arrays; "pandas"/"polars": a DataFrame with
            columns ``get_feature_names_out()`` (pandas keeps the index of a
            pandas input), which needs that library installed; None: leave
            the setting unchanged.

        Returns
        -------
        self : SparseAutoencoder
        """
        if transform is None:
            return self
        if not isinstance(transform, str) or transform not in OUTPUT_CONTAINERS:
            raise ValueError(f"set_output: transform must be one of {OUTPUT_CONTAINERS} "
                             f"or None, got {transform!r}")
        with self._locks.snapshot:
            object.__setattr__(self, "_sklearn_output_config", {"transform": transform})
            # The fast transform path returns plain arrays: revalidate first.
            object.__setattr__(self, "_fast", None)
            object.__setattr__(self, "_hp_generation", self._hp_generation + 1)
        return self

    def _wrap_output(self, H, X, state):
        """H in the container chosen by set_output (or by scikit-learn's
        global ``transform_output`` setting when scikit-learn is loaded)."""
        wrap = getattr(_MODULES.get(_SET_OUTPUT_MODULE), "_wrap_data_with_container", None)
        if wrap is not None:
            return wrap("transform", H, X, self)
        kind = self.__dict__.get("_sklearn_output_config", {}).get("transform", "default")
        if kind == "default":
            return H
        return _container(kind, H, X, self._output_names(state))

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

    # ------------------------------------------------------------------
    # Fitted attributes
    # ------------------------------------------------------------------

    def _not_fitted(self, extra=""):
        return NotFittedError(
            f"This {type(self).__name__} instance is not fitted yet. Call 'fit' or "
            "'partial_fit' first, or assign all four of encoder_weights_, "
            f"encoder_bias_, decoder_weights_ and decoder_bias_.{extra}")

    def _check_fitted(self, state=None):
        state = self._state if state is None else state
        if state.params is None:
            assigned = [n for n, a in zip(WEIGHT_NAMES, state.pending) if a is not None]
            missing = [n + "_" for n in WEIGHT_NAMES if n not in assigned]
            extra = (f" Still missing: {', '.join(missing)}." if assigned else "")
            raise self._not_fitted(extra)

    def _get_weight(self, index):
        state = self._state
        if state.params is not None:
            array = state.params[index]
        elif state.pending[index] is not None:
            array = state.pending[index]
        else:
            raise self._not_fitted()
        # The state's arrays are read-only, and so is this view of one:
        # writes must go through the setter.
        return array.view()

    def _set_weight(self, index, value):
        name = WEIGHT_NAMES[index]
        with self._locks.write:
            state = self._state
            dtype = resolve_dtype(self.dtype)
            value = as_numeric_array(value, name + "_")
            if state.params is not None:
                shape = state.params[index].shape
            else:
                h = int_param("n_hidden", self.n_hidden, 1)
                shape = self._pending_shape(state, index, h, value)
            array = frozen(check_weight_array(name + "_", value, shape, dtype))
            if state.params is not None:
                params = [p if p.dtype == dtype else frozen(p.astype(dtype))
                          for p in state.params]
                params[index] = array
                self._publish(state._replace(params=tuple(params)))
                return
            pending = list(state.pending)
            pending[index] = array
            if any(a is None for a in pending):
                self._publish(state._replace(pending=tuple(pending)))
                return
            params = tuple(a if a.dtype == dtype else frozen(a.astype(dtype)) for a in pending)
            self._publish(ModelState(params=params, origin=ORIGIN_ASSIGNED))

    def _pending_shape(self, state, index, h, value):
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

    encoder_weights_ = property(
        lambda self: self._get_weight(0), lambda self, v: self._set_weight(0, v),
        doc="Encoder weights W, shape (n_hidden, n_features_in_).")
    encoder_bias_ = property(
        lambda self: self._get_weight(1), lambda self, v: self._set_weight(1, v),
        doc="Encoder bias b, shape (n_hidden,).")
    decoder_weights_ = property(
        lambda self: self._get_weight(2), lambda self, v: self._set_weight(2, v),
        doc="Decoder weights W', shape (n_features_in_, n_hidden).")
    decoder_bias_ = property(
        lambda self: self._get_weight(3), lambda self, v: self._set_weight(3, v),
        doc="Decoder bias b', shape (n_features_in_,).")

    @property
    def n_features_in_(self):
        """Number of input features the model was fitted on."""
        state = self._state
        self._check_fitted(state)
        return int(state.params[0].shape[1])

    @property
    def loss_curve_(self):
        """Objective of each completed epoch (a new list)."""
        state = self._state
        self._check_fitted(state)
        return list(state.loss_curve)

    @property
    def n_iter_(self):
        """Number of completed epochs (iterations for "lbfgs")."""
        state = self._state
        self._check_fitted(state)
        return len(state.loss_curve)

    @property
    def validation_loss_curve_(self):
        """Validation objective after each epoch of the last ``fit`` with
        ``early_stopping=True`` (a new list), else None."""
        state = self._state
        self._check_fitted(state)
        curve = state.validation_loss_curve
        return None if curve is None else list(curve)

    @property
    def best_validation_loss_(self):
        """Lowest validation objective of the last ``fit`` with
        ``early_stopping=True``, else None."""
        state = self._state
        self._check_fitted(state)
        return state.best_validation_loss

    @property
    def best_epoch_(self):
        """Epoch (1-based, counted as ``n_iter_`` counts) whose weights early
        stopping restored, else None."""
        state = self._state
        self._check_fitted(state)
        return state.best_epoch

    @property
    def stop_reason_(self):
        """Why the last ``fit`` or ``partial_fit`` stopped: one of
        ``csae.solvers.STOP_REASONS`` (see the class's Attributes); None for
        a model that has not trained in this process or pickle (loaded from
        a model file, or given its weights by hand)."""
        reason = self.__dict__.get("_stop_reason")
        if reason is None:
            self._check_fitted(self._state)
        return reason

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------

    def _hyper_and_state(self, check_fitted=False):
        """(validated hyperparameters, their raw values, the state), all of
        one snapshot; also records what the fast transform path needs."""
        raw, state, generation = self._snapshot()
        if check_fitted:
            self._check_fitted(state)
        hp = validate_hyperparameters(raw)
        fast = (_engine is not None and hp.backend == "c" and not hp.scale_inputs
                and (hp.dtype.type, raw["n_threads"]))
        with self._locks.snapshot:
            if self._hp_generation == generation:  # no set_params since the snapshot
                output = self.__dict__.get("_sklearn_output_config", {}).get("transform")
                object.__setattr__(self, "_fast", fast if output in (None, "default")
                                   else False)
        return hp, raw, state

    def _prepare(self, X, hp, state, *, objective, learn=False, dtype=None, check_n=True,
                 train=False):
        """X validated (and, with scale_inputs, scaled) for the backend, in
        ``dtype`` (default: the model dtype); X itself is never modified.

        ``objective``: X is a reconstruction target (training, loss), so the
        sigmoid decoder needs it in [0, 1].  ``learn``: learn the input range
        from X; returns ``(X, (data_min, data_scale))``.  ``check_n``: X
        must have the model's number of features (off for ``fit``).
        ``train``: X is training data; with scale_inputs, the sigmoid decoder
        and a range learned before, X must lie in that range (``loss`` and
        ``score`` accept held-out data a little outside it).
        """
        dtype = hp.dtype if dtype is None else dtype
        n = state.params[0].shape[1] if check_n and state.params is not None else None
        within = (train and not learn and hp.scale_inputs and hp.decoder == "sigmoid")
        if _blockwise.is_out_of_core(X):  # a memory-mapped file: read in chunks
            return self._prepare_chunked(X, hp, state, objective, learn, dtype, n, within)
        if _dask.is_dask_array(X):  # blocks on a cluster (csae._dask)
            return _dask.prepare(self, X, hp, state, objective=objective, learn=learn,
                                 dtype=dtype, n=n, within_range=within)
        if n is not None:
            if _is_dataframe(X):  # a non-numeric column is named before names are compared
                check_frame_columns(X, "X")
            self._check_feature_names(X, state)
        if not hp.scale_inputs:
            Xc = check_data(X, dtype, n_features=n)
            if objective and hp.decoder == "sigmoid":
                check_unit_interval(Xc)
            return (Xc, (None, None)) if learn else Xc
        # Scale in float64 whatever the model dtype, then convert.
        X64 = check_data(X, np.dtype(np.float64), n_features=n)
        if learn:
            data_min, scale = _learn_range(X64)
            return _apply_range(X64, data_min, scale, dtype), (data_min, scale)
        self._check_range(state)
        if within:
            check_within_learned_range(X64.min(axis=0), X64.max(axis=0), state.data_min,
                                       state.data_scale)
        return _apply_range(X64, state.data_min, state.data_scale, dtype)

    def _prepare_chunked(self, X, hp, state, objective, learn, dtype, n, within=False):
        """_prepare for a memory-mapped X larger than one chunk: one streamed
        validation pass, and a ``ChunkedData`` that reads it chunk by chunk
        (see csae._blockwise)."""
        if n is not None and X.shape[1] != n:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} "
                             f"is expecting {n} features as input")
        if dtype != hp.dtype:  # (csae._gradcheck asks for float64 data)
            import dataclasses
            hp = dataclasses.replace(hp, dtype=dtype)
        if learn:
            return _blockwise.prepare(X, hp, objective=objective, learn=True)
        if hp.scale_inputs:
            self._check_range(state)
        return _blockwise.prepare(X, hp, objective=objective, data_min=state.data_min,
                                  data_scale=state.data_scale, within_range=within)

    def _check_feature_names(self, X, state):
        """X's column names against those seen in fit, as scikit-learn does:
        different names raise ValueError, names on one side only warn."""
        given = feature_names_of(X)
        fitted = state.feature_names
        name = type(self).__name__
        if given is None and fitted is None:
            return
        if fitted is None:
            warnings.warn(f"X has feature names, but {name} was fitted without feature "
                          "names", UserWarning, stacklevel=4)
        elif given is None:
            warnings.warn(f"X does not have valid feature names, but {name} was fitted "
                          "with feature names", UserWarning, stacklevel=4)
        elif len(given) != len(fitted) or (given != fitted).any():
            raise ValueError(_feature_names_message(list(fitted), list(given)))

    def _check_range(self, state):
        if state.data_min is not None:
            return
        if state.origin == ORIGIN_ASSIGNED:
            raise NotFittedError(
                "scale_inputs=True but this model has not learned an input range "
                "(its weights were assigned by hand); call partial_fit once, or set "
                "scale_inputs=False and scale X yourself")
        raise NotFittedError(
            "scale_inputs=True but this model was trained with scale_inputs=False, so "
            "it has no learned input range; fit it again with scale_inputs=True, or "
            "set scale_inputs=False back")

    def _initial_params(self, backend, n_features, hp, seed):
        elements = 2 * n_features * hp.n_hidden + n_features + hp.n_hidden
        if elements * hp.dtype.itemsize >= np.iinfo(np.intp).max:
            raise ValueError(f"n_hidden={hp.n_hidden} with {n_features} features gives "
                             "more weights than this machine can address; choose a "
                             "smaller n_hidden")
        try:
            params, rng_state = backend.init_params(n_features, hp.n_hidden, seed, hp.dtype)
        except (MemoryError, OverflowError) as err:
            size = elements * hp.dtype.itemsize
            raise ValueError(f"n_hidden={hp.n_hidden} with {n_features} features needs "
                             f"{size / 2**30:.3g} GiB of weights, more than this machine "
                             "can allocate; choose a smaller n_hidden") from err
        return (tuple(frozen(np.ascontiguousarray(p, dtype=hp.dtype)) for p in params),
                int(rng_state))

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
        self._fit(X)
        return self

    def _fit(self, X, hook=None, on_rows=None):
        """fit; returns (prepared X, hyperparameters, backend, the state now
        published or None if the old one was kept, the training Outcome).  ``hook(epoch,
        objective, validation, seconds)`` is called after each epoch, and
        ``on_rows(done)`` with the rows of the epoch done so far after each
        chunk of a memory-mapped file's SGD/Adam epoch (the command line's
        progress display)."""
        with self._locks.write:
            hp, raw, old = self._hyper_and_state()
            backend = Backend(hp.backend, hp.n_threads)
            warm = hp.warm_start and old.params is not None
            if warm:
                start, Xc = self._warm_start_state(X, hp, raw, old)
            else:
                Xc, (data_min, scale) = self._prepare(X, hp, old, objective=True,
                                                      learn=True, check_n=False)
            X_train, X_val = Xc, None
            if on_rows is not None and isinstance(Xc, _blockwise.ChunkedData):
                Xc.on_rows = on_rows
            seed = derive_seed(raw["random_state"])
            if hp.early_stopping and getattr(Xc, "_csae_blocks", False):
                # The held-out rows are drawn at random, which block data
                # (read chunk by chunk, or on a cluster) cannot hand out.
                raise ValueError(
                    "early_stopping=True needs X in memory; with a memory-mapped "
                    "file or a dask array, hold out validation rows yourself and "
                    "set early_stopping=False")
            if hp.early_stopping:
                # Checked before any weight is made: too few rows is an error.
                train_rows, val_rows = validation_split(Xc.shape[0],
                                                        hp.validation_fraction, seed)
                X_train, X_val = Xc[train_rows], Xc[val_rows]
            if not warm:
                params, rng_state = self._initial_params(backend, Xc.shape[1], hp, seed)
                # Everything checked; train a new state aside from the old one.
                start = ModelState(params=params, rng_state=rng_state,
                                   data_min=None if data_min is None else frozen(data_min),
                                   data_scale=None if scale is None else frozen(scale),
                                   origin=ORIGIN_TRAINED, feature_names=feature_names_of(X))
            transaction = Transaction(backend, X_train, hp, old, start)
            outcome = transaction.begin(stacklevel=4)
            if outcome is None:
                outcome = train(backend, X_train, hp, start, hp.max_epochs, stacklevel=4,
                                reference=transaction.reference, X_val=X_val, hook=hook)
                outcome = transaction.settle(outcome, stacklevel=4)
            self._publish(outcome.state, outcome.reason)
            return Xc, hp, backend, outcome.state, outcome

    def _warm_start_state(self, X, hp, raw, old):
        """(the state to continue from, prepared X) for ``warm_start=True``
        on a model that has weights: X checked against them, the input
        range learned only if the model has none."""
        h = old.params[0].shape[0]
        if h != hp.n_hidden:
            raise ValueError(f"warm_start=True continues from weights with {h} hidden "
                             f"units, but n_hidden={hp.n_hidden}; set n_hidden={h} or "
                             "warm_start=False")
        learn = hp.scale_inputs and old.data_min is None
        prepared = self._prepare(X, hp, old, objective=True, learn=learn, train=True)
        Xc, (data_min, scale) = prepared if learn else (prepared, (None, None))
        start = old._replace(origin=ORIGIN_TRAINED)
        if old.rng_state is None:  # weights assigned by hand, or loaded without one
            start = start._replace(rng_state=derive_seed(raw["random_state"]))
        if learn:
            start = start._replace(data_min=frozen(data_min), data_scale=frozen(scale))
        return start, Xc

    @_available_if(lambda self: self.solver != "lbfgs",
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
            if hp.solver == "lbfgs":
                raise ValueError(f"partial_fit needs solver='sgd' or 'adam' (solver="
                                 f"{hp.solver!r} trains on all the data at once); use fit")
            if old.params is not None and old.params[0].shape[0] != hp.n_hidden:
                h = old.params[0].shape[0]
                raise ValueError(
                    f"partial_fit continues the model's weights, which have {h} hidden "
                    f"units, but n_hidden={hp.n_hidden}: it cannot change the number of "
                    f"units. Call fit to train a new model with n_hidden={hp.n_hidden}, "
                    f"or set n_hidden={h} back")
            backend = Backend(hp.backend, hp.n_threads)
            learn = hp.scale_inputs and old.data_min is None
            prepared = self._prepare(X, hp, old, objective=True, learn=learn, train=True)
            Xc, (data_min, scale) = prepared if learn else (prepared, (None, None))
            if old.params is None:
                params, rng_state = self._initial_params(
                    backend, Xc.shape[1], hp, derive_seed(raw["random_state"]))
                start = ModelState(params=params, rng_state=rng_state, origin=ORIGIN_TRAINED,
                                   feature_names=feature_names_of(X))
            elif old.rng_state is None:  # weights assigned by hand, or loaded without one
                start = old._replace(rng_state=derive_seed(raw["random_state"]))
            else:
                start = old
            if learn:
                start = start._replace(data_min=frozen(data_min), data_scale=frozen(scale))
            transaction = Transaction(backend, Xc, hp, old, start)
            outcome = transaction.begin(stacklevel=3)
            if outcome is None:
                outcome = train(backend, Xc, hp, start, 1, stacklevel=3,
                                reference=transaction.reference, stopping=False)
                outcome = transaction.settle(outcome, stacklevel=3)
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
        Xc, hp, backend, state, _ = self._fit(X)
        state = self._state if state is None else state  # None: the old model stayed
        self._check_fitted(state)
        W, b = (p if p.dtype == hp.dtype else p.astype(hp.dtype) for p in state.params[:2])
        return self._wrap_output(backend.encode(W, b, Xc), X, state)

    # ------------------------------------------------------------------
    # Using a model
    # ------------------------------------------------------------------

    def _ready(self):
        """(hyperparameters, backend, params in the model dtype, state) of
        one snapshot, for a method that uses the weights; does not change
        the model."""
        hp, _, state = self._hyper_and_state(check_fitted=True)
        params = tuple(p if p.dtype == hp.dtype else p.astype(hp.dtype)
                       for p in state.params)
        return hp, Backend(hp.backend, hp.n_threads), params, state

    def _unscale(self, Y, hp, state):
        if not hp.scale_inputs:
            return Y
        return (Y * state.data_scale.astype(hp.dtype) + state.data_min.astype(hp.dtype))

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
                    if _SET_OUTPUT_MODULE in _MODULES:  # scikit-learn's global setting
                        return self._wrap_output(H, X, state)
                    return H
        hp, backend, params, state = self._ready()
        Xc = self._prepare(X, hp, state, objective=False)
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
        if _dask.is_dask_array(H):
            return _dask.inverse_transform(self, H)
        hp, backend, params, state = self._ready()
        h = params[0].shape[0]
        Hc = check_data(H, hp.dtype, name="H", n_features=h, expected_name="hidden units")
        if hp.scale_inputs:
            self._check_range(state)
        return self._unscale(backend.decode(params[2], params[3], Hc, hp.decoder), hp, state)

    def reconstruct(self, X):
        """The model's reconstruction of X, ``inverse_transform(transform(X))``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        Y : ndarray of shape (n_samples, n_features_in_), in the model dtype
        """
        hp, backend, params, state = self._ready()
        Xc = self._prepare(X, hp, state, objective=False)
        return self._unscale(backend.reconstruct(params, Xc, hp.decoder), hp, state)

    def _objective_settings(self, hp):
        return objective_settings(hp)

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
        hp, backend, params, state = self._ready()
        Xc = self._prepare(X, hp, state, objective=True)
        value = backend.objective(params, Xc, **self._objective_settings(hp))
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
        hp, backend, params, state = self._ready()
        Xc = self._prepare(X, hp, state, objective=True)
        loss, grads = backend.objective_and_gradients(params, Xc,
                                                      **self._objective_settings(hp))
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

    def get_feature_names_out(self, input_features=None):
        """Names of the hidden features: "sparseautoencoder0", ....

        Parameters
        ----------
        input_features : array-like of str or None
            Only checked: it must equal ``feature_names_in_`` when the model
            has one, and have length ``n_features_in_`` otherwise (the
            output names do not depend on it: scikit-learn's prefix rule for
            transformers that make new features).

        Returns
        -------
        names : ndarray of str objects, shape (n_hidden,)
        """
        state = self._state
        self._check_fitted(state)
        n = state.params[0].shape[1]
        if input_features is not None:
            if state.feature_names is not None and (
                    len(input_features) != n
                    or not np.array_equal(np.asarray(input_features, dtype=object),
                                          state.feature_names)):
                raise ValueError("input_features is not equal to feature_names_in_")
            if len(input_features) != n:
                raise ValueError("input_features should have length equal to number of "
                                 f"features ({n}), got {len(input_features)}")
        return self._output_names(state)

    def _output_names(self, state):
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(state.params[0].shape[0])],
                          dtype=object)

    @property
    def feature_names_in_(self):
        """Column names of the DataFrame fitted on (when all are strings)."""
        names = self._state.feature_names
        if names is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute "
                                 "'feature_names_in_' (it was not fitted on a DataFrame "
                                 "with string column names)")
        return names.copy()

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
        from csae._persist import save
        # One snapshot (hyperparameters and state together), taken without
        # waiting for a running fit; the file is written from it.
        snapshot = type(self).__new__(type(self))
        snapshot.__setstate__(self.__getstate__())
        save(snapshot, path)

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
        from csae._persist import load
        return load(path, cls)


# What __setattr__ watches: the constructor's parameters.
_HYPERPARAMETER_NAMES = frozenset(SparseAutoencoder._get_param_names())

# What a model saved or pickled before a hyperparameter existed means by it,
# where that is not today's default: without "solver" it was trained by
# minibatch SGD, the only solver then (the default became "lbfgs" later).
# Every other missing hyperparameter takes the constructor's default.
HYPERPARAMETERS_BEFORE_ADDED = {"solver": "sgd"}


def defaults_for_older_models(names):
    """The values of the hyperparameters ``names`` for a model saved before
    they existed."""
    signature = inspect.signature(SparseAutoencoder.__init__).parameters
    return {name: HYPERPARAMETERS_BEFORE_ADDED.get(name, signature[name].default)
            for name in names}


def _same_value(value, default):
    """True if ``value`` should be hidden in the repr as the default.
    Never raises (parameters may hold anything until validated)."""
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:
        return False

