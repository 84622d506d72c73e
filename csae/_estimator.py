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
import time
import warnings

import numpy as np

from csae._backends import Backend
from csae._errors import NonFiniteError
from csae._validation import (
    NotFittedError,
    as_numeric_array,
    int_param,
    check_data,
    check_unit_interval,
    check_weight_array,
    derive_seed,
    resolve_dtype,
    validate_hyperparameters,
)

try:
    from csae import _engine
except ImportError:  # reported when backend="c" is used; "python" still works
    _engine = None  # type: ignore[assignment]

__all__ = ["SparseAutoencoder", "TrainingInterruptedWarning", "TrainingDivergedWarning"]

# Spellings of the dtype hyperparameter that the fast transform path
# recognises without calling np.dtype (others take the validating path).
_FAST_DTYPES = {"float64": np.float64, "float32": np.float32,
                np.float64: np.float64, np.float32: np.float32}

# Names of the four parameter arrays, in the backends' (W, b, Wd, bd) order.
WEIGHT_NAMES = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")


class TrainingInterruptedWarning(UserWarning):
    """Training was stopped by Ctrl-C (KeyboardInterrupt).

    The model keeps the weights of the last completed minibatch and stays
    usable; the interrupted epoch is not counted in ``n_iter_``.
    """


class TrainingDivergedWarning(UserWarning):
    """Training stopped because the objective or a gradient became NaN/inf.

    The model keeps the last finite weights and stays usable and savable;
    a smaller ``learning_rate`` usually helps.
    """


def _learn_range(X):
    """Per-feature minimum and scale (max - min) of X (float64).  Constant
    features get scale 1, so they map to 0 instead of dividing by zero."""
    data_min = X.min(axis=0)
    scale = X.max(axis=0) - data_min
    if not np.isfinite(scale).all():
        raise ValueError("X has a feature whose range (max - min) overflows float64; "
                         "rescale it before fitting")
    scale[scale == 0] = 1.0
    return data_min, scale


def _apply_range(X, data_min, scale, dtype):
    """(X - min) / scale in float64, returned C-contiguous in ``dtype``."""
    out = np.ascontiguousarray((X - data_min) / scale, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError("X scaled by the learned input range overflows "
                         f"{dtype.name}; its values are far outside the range seen in fit")
    return out


class SparseAutoencoder:
    """Sparse autoencoder with a KL-divergence sparsity penalty.

    A three-layer network ``x -> a = sigmoid(W x + b) -> y = g(W' a + b')``
    trained by minibatch SGD to reconstruct its input, with the objective

        (1/m) sum ||y - x||^2 + weight_decay (||W||^2 + ||W'||^2)
        + sparsity_weight * sum_j KL(sparsity_target || mean activation of j)

    (no 1/2 factors; see ``docs/math.md``).  Hyperparameters are checked when
    a method uses them, not in ``__init__`` (scikit-learn's convention).

    Parameters
    ----------
    n_hidden : int, default=25
        Number of hidden units ``h``.
    sparsity_target : float, default=0.05
        Target mean activation ``rho`` of each hidden unit, in (0, 1)
        (MATLAB's SparsityProportion).
    sparsity_weight : float, default=3.0
        Weight ``beta >= 0`` of the KL sparsity penalty (MATLAB's
        SparsityRegularization).
    weight_decay : float, default=1e-4
        Weight ``lambda >= 0`` of the L2 penalty on ``W`` and ``W'`` (biases
        excluded).  UFLDL's lambda is twice this value.
    decoder : {"sigmoid", "linear"}, default="sigmoid"
        Output function ``g``.  "sigmoid" needs inputs in [0, 1] (or
        ``scale_inputs=True``); "linear" takes inputs on any scale.
    learning_rate : float, default=0.1
        SGD step size, > 0.
    momentum : float, default=0.0
        Momentum ``mu`` in [0, 1): ``v <- mu v - lr g; theta <- theta + v``.
    batch_size : int, default=100
        Rows per minibatch (the last minibatch of an epoch may be shorter;
        a value above the number of rows gives full-batch gradient descent).
    max_epochs : int, default=100
        Epochs run by ``fit``.
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
        Print one line per epoch: epoch, objective, mean hidden activation
        and seconds.
    n_threads : int or None, default=None
        Threads used by the C engine, capped at the CPUs this process may
        run on.  None uses ``OMP_NUM_THREADS`` when it is set to a valid
        value (as joblib and Dask workers do), else every CPU this process
        may run on, and at most the limit set by threadpoolctl's
        ``threadpool_limits``; read at each call.  Ignored by the "python"
        backend.  Results do not depend on it.

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
        objective before each update, weighted by minibatch rows.
    n_iter_ : int
        Number of completed epochs (``len(loss_curve_)``).

    Notes
    -----
    *Building a model from known weights.*  Assigning all four weight
    attributes on an unfitted model makes it usable (``n_features_in_`` is
    taken from the arrays, whose hidden size must equal ``n_hidden``).  On
    a fitted model an assigned array must keep its shape.  Arrays are
    copied, checked to be finite and converted to ``dtype``.

    *Failures never lose the model.*  Invalid data or hyperparameters raise
    ``ValueError``/``TypeError`` before any weight changes.  If training
    diverges (a non-finite objective or gradient), ``fit``/``partial_fit``
    stop at once, keep the last finite weights, emit a
    ``TrainingDivergedWarning`` naming the epoch and return ``self``.
    Ctrl-C during training is caught the same way, with a
    ``TrainingInterruptedWarning``; the weights are those after the last
    completed minibatch.

    Examples
    --------
    >>> import numpy as np
    >>> from csae import SparseAutoencoder
    >>> X = np.random.default_rng(0).random((200, 16))
    >>> model = SparseAutoencoder(n_hidden=8, max_epochs=5, backend="python",
    ...                           random_state=0).fit(X)
    >>> model.transform(X).shape
    (200, 8)
    """

    def __init__(self, n_hidden=25, sparsity_target=0.05, sparsity_weight=3.0,
                 weight_decay=1e-4, decoder="sigmoid", learning_rate=0.1, momentum=0.0,
                 batch_size=100, max_epochs=100, shuffle=True, scale_inputs=False,
                 dtype="float64", backend="c", random_state=None, verbose=False,
                 n_threads=None):
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
        self._reset_state()

    def __setattr__(self, name, value):
        # Setting any hyperparameter (directly or by set_params) means it must
        # be validated again before the fast transform path may trust it.
        if name in _HYPERPARAMETER_NAMES:
            object.__setattr__(self, "_validated", False)
        object.__setattr__(self, name, value)

    def _reset_state(self):
        # The whole trained state; every field is replaced together by fit.
        self._params = None       # (W, b, Wd, bd) or None before fitting
        self._velocity = None     # momentum velocities, same layout, or None
        self._rng_state = None    # SplitMix64 state (int) for the next epoch
        self._data_min = None     # scale_inputs: per-feature min (float64)
        self._data_scale = None   # scale_inputs: per-feature max - min, 0 -> 1
        self._loss_curve = []
        self._pending = {}        # weights assigned to an unfitted model so far

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
            Parameter names mapped to their values.
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set hyperparameters (checked later, when a method uses them).

        Parameters
        ----------
        **params : dict
            Parameter names and new values.

        Returns
        -------
        self : SparseAutoencoder
        """
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator "
                                 f"{type(self).__name__}. Valid parameters are: {valid!r}.")
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
        return self._params is not None

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

    def __setstate__(self, state):
        # Unpickling (joblib may hand back read-only memmaps) must leave
        # arrays the backends can use: C-contiguous, writable, own memory.
        for key in ("_params", "_velocity"):
            if state.get(key) is not None:
                state[key] = tuple(_own_array(a) for a in state[key])
        for key in ("_data_min", "_data_scale"):
            if state.get(key) is not None:
                state[key] = _own_array(state[key])
        if "_pending" in state:
            state["_pending"] = {k: _own_array(v) for k, v in state["_pending"].items()}
        self.__dict__.update(state)

    # ------------------------------------------------------------------
    # Fitted attributes
    # ------------------------------------------------------------------

    def _not_fitted(self, extra=""):
        return NotFittedError(
            f"This {type(self).__name__} instance is not fitted yet. Call 'fit' or "
            "'partial_fit' first, or assign all four of encoder_weights_, "
            f"encoder_bias_, decoder_weights_ and decoder_bias_.{extra}")

    def _check_fitted(self):
        if self._params is None:
            missing = [n + "_" for n in WEIGHT_NAMES if n not in self._pending]
            extra = (f" Still missing: {', '.join(missing)}."
                     if self._pending else "")
            raise self._not_fitted(extra)

    def _get_weight(self, index):
        if self._params is not None:
            array = self._params[index]
        elif WEIGHT_NAMES[index] in self._pending:
            array = self._pending[WEIGHT_NAMES[index]]
        else:
            raise self._not_fitted()
        view = array.view()
        view.flags.writeable = False  # writes must go through the setter
        return view

    def _set_weight(self, index, value):
        name = WEIGHT_NAMES[index]
        dtype = resolve_dtype(self.dtype)
        value = as_numeric_array(value, name + "_")
        if self._params is not None:
            shape = self._params[index].shape
        else:
            h = int_param("n_hidden", self.n_hidden, 1)
            shape = self._pending_shape(index, h, value)
        array = check_weight_array(name + "_", value, shape, dtype)
        if self._params is not None:
            params = [p if p.dtype == dtype else p.astype(dtype) for p in self._params]
            params[index] = array
            self._params = tuple(params)
            return
        self._pending[name] = array
        if len(self._pending) == 4:
            params = tuple(self._pending[n].astype(dtype, copy=False) for n in WEIGHT_NAMES)
            self._reset_state()
            self._params = params

    def _pending_shape(self, index, h, value):
        """The shape the weight ``index`` must have on an unfitted model:
        n_hidden from the hyperparameter, n_features from the arrays
        assigned so far, or from ``value`` itself for the first one."""
        n = None
        # The axis of n_features in each array (encoder_bias_ has none).
        n_axis = {"encoder_weights": 1, "decoder_weights": 0, "decoder_bias": 0}
        for other, array in self._pending.items():
            if other != WEIGHT_NAMES[index] and other in n_axis:
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
        self._check_fitted()
        return int(self._params[0].shape[1])

    @property
    def loss_curve_(self):
        """Objective of each completed epoch (a new list)."""
        self._check_fitted()
        return list(self._loss_curve)

    @property
    def n_iter_(self):
        """Number of completed epochs."""
        self._check_fitted()
        return len(self._loss_curve)

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------

    def _hyper(self):
        hp = validate_hyperparameters(self.get_params())
        self._validated = True
        return hp

    def _prepare(self, X, hp, *, objective, learn=False, dtype=None, check_n=True):
        """X validated (and, with scale_inputs, scaled) for the backend, in
        ``dtype`` (default: the model dtype); X itself is never modified.

        ``objective``: X is a reconstruction target (training, loss), so the
        sigmoid decoder needs it in [0, 1].  ``learn``: learn the input range
        from X; returns ``(X, (data_min, data_scale))``.  ``check_n``: X
        must have the model's number of features (off for ``fit``).
        """
        dtype = hp.dtype if dtype is None else dtype
        n = self._params[0].shape[1] if check_n and self._params is not None else None
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
        self._check_range()
        return _apply_range(X64, self._data_min, self._data_scale, dtype)

    def _check_range(self):
        if self._data_min is None:
            raise NotFittedError(
                "scale_inputs=True but this model has not learned an input range "
                "(its weights were assigned by hand); call partial_fit once, or set "
                "scale_inputs=False and scale X yourself")

    def _initial_params(self, backend, n_features, hp):
        elements = 2 * n_features * hp.n_hidden + n_features + hp.n_hidden
        if elements * hp.dtype.itemsize >= np.iinfo(np.intp).max:
            raise ValueError(f"n_hidden={hp.n_hidden} with {n_features} features gives "
                             "more weights than this machine can address; choose a "
                             "smaller n_hidden")
        seed = derive_seed(self.random_state)
        try:
            params, rng_state = backend.init_params(n_features, hp.n_hidden, seed, hp.dtype)
        except (MemoryError, OverflowError) as err:
            size = elements * hp.dtype.itemsize
            raise ValueError(f"n_hidden={hp.n_hidden} with {n_features} features needs "
                             f"{size / 2**30:.3g} GiB of weights, more than this machine "
                             "can allocate; choose a smaller n_hidden") from err
        return tuple(np.ascontiguousarray(p, dtype=hp.dtype) for p in params), int(rng_state)

    def fit(self, X, y=None):
        """Initialise the weights and train for ``max_epochs`` epochs.

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
        """
        self._fit(X)
        return self

    def _fit(self, X):
        hp = self._hyper()
        backend = Backend(hp.backend, hp.n_threads)
        Xc, (data_min, scale) = self._prepare(X, hp, objective=True, learn=True,
                                              check_n=False)
        params, rng_state = self._initial_params(backend, Xc.shape[1], hp)
        # Everything checked: only now replace the old model.
        self._reset_state()
        self._params, self._rng_state = params, rng_state
        self._data_min, self._data_scale = data_min, scale
        self._train(backend, Xc, hp, hp.max_epochs)
        return Xc, hp, backend

    def partial_fit(self, X, y=None):
        """Run one epoch of SGD over X, continuing from the current state.

        The first call (on a model without weights) initialises them from
        ``random_state`` (and learns the input range when
        ``scale_inputs=True``); later calls continue from the current
        weights, momentum velocities and random-number state, so ``k``
        calls equal ``fit`` with ``max_epochs=k`` on the same data.

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
        hp = self._hyper()
        backend = Backend(hp.backend, hp.n_threads)
        learn = hp.scale_inputs and self._data_min is None
        prepared = self._prepare(X, hp, objective=True, learn=learn)
        Xc, (data_min, scale) = prepared if learn else (prepared, (None, None))
        if self._params is None:
            params, rng_state = self._initial_params(backend, Xc.shape[1], hp)
            self._reset_state()
            self._params, self._rng_state = params, rng_state
        elif self._rng_state is None:  # weights assigned by hand
            self._rng_state = derive_seed(self.random_state)
        if learn:
            self._data_min, self._data_scale = data_min, scale
        self._train(backend, Xc, hp, 1)
        return self

    def _train(self, backend, X, hp, n_epochs):
        """Run ``n_epochs`` epochs of SGD on the prepared X, keeping the
        model consistent whatever happens."""
        # Train on fresh copies: arrays handed out by the weight properties
        # stay as they were, and a dtype change since fit takes effect.
        params = tuple(np.array(p, dtype=hp.dtype, order="C") for p in self._params)
        velocity = None
        if hp.momentum > 0:
            velocity = (tuple(np.array(v, dtype=hp.dtype, order="C") for v in self._velocity)
                        if self._velocity is not None
                        else tuple(np.zeros_like(p) for p in params))
        settings = dict(rho=hp.sparsity_target, beta=hp.sparsity_weight,
                        lam=hp.weight_decay, decoder=hp.decoder,
                        learning_rate=hp.learning_rate, momentum=hp.momentum,
                        batch_size=hp.batch_size, shuffle=hp.shuffle)
        try:
            for _ in range(n_epochs):
                start = time.perf_counter()
                loss, rng_state = backend.sgd_epoch(params, velocity, X,
                                                    rng_state=self._rng_state, **settings)
                seconds = time.perf_counter() - start
                self._rng_state = int(rng_state)
                self._loss_curve.append(float(loss))
                if hp.verbose:
                    self._print_progress(backend, params, X, hp, seconds)
        except NonFiniteError as err:
            batch = "" if err.batch is None else f", minibatch {err.batch}"
            warnings.warn(TrainingDivergedWarning(
                f"training diverged at epoch {len(self._loss_curve) + 1}{batch}: the "
                "objective or its gradient became NaN or inf. Training stopped and the "
                "model keeps the last finite weights; try a smaller learning_rate "
                f"(now {hp.learning_rate:g})."), stacklevel=3)
        except KeyboardInterrupt:
            warnings.warn(TrainingInterruptedWarning(
                f"training interrupted during epoch {len(self._loss_curve) + 1}; the "
                "model keeps the weights of the last completed minibatch (the epoch "
                "is not counted in n_iter_)."), stacklevel=3)
        finally:
            self._params, self._velocity = params, velocity

    def _print_progress(self, backend, params, X, hp, seconds):
        activation = float(np.mean(backend.encode(params[0], params[1], X)))
        print(f"epoch {len(self._loss_curve)}: objective {self._loss_curve[-1]:.6g}, "
              f"mean activation {activation:.4f} (target {hp.sparsity_target:g}), "
              f"{seconds:.3f} s", file=sys.stdout, flush=True)

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
        Xc, hp, backend = self._fit(X)
        W, b = self._params[0], self._params[1]
        return backend.encode(W, b, Xc)

    # ------------------------------------------------------------------
    # Using a model
    # ------------------------------------------------------------------

    def _ready(self):
        """(hyperparameters, backend, params in the model dtype) for a
        method that uses the weights; does not change the model."""
        self._check_fitted()
        hp = self._hyper()
        params = tuple(p if p.dtype == hp.dtype else p.astype(hp.dtype)
                       for p in self._params)
        return hp, Backend(hp.backend, hp.n_threads), params

    def _unscale(self, Y, hp):
        if not hp.scale_inputs:
            return Y
        return (Y * self._data_scale.astype(hp.dtype) + self._data_min.astype(hp.dtype))

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
        H = self._encode_fast(X)
        if H is not None:
            return H
        hp, backend, params = self._ready()
        Xc = self._prepare(X, hp, objective=False)
        return backend.encode(params[0], params[1], Xc)

    def _encode_fast(self, X):
        """transform(X) straight from the C engine, or None.

        Encoding one row takes well under a microsecond in C, so the full
        validation (hyperparameters, conversions, NumPy finiteness checks)
        would be nearly all of a call's cost.  This path applies only when
        nothing needs converting: C backend, no input scaling, a model dtype
        spelled plainly, and X an aligned C-contiguous array of that dtype
        with the right width.  The engine checks X for NaN/inf itself and
        returns None for anything unusual, so every error still comes from
        the validating path, with its message.
        """
        params = self._params
        if (params is None or _engine is None or not self._validated
                or self.backend != "c" or self.scale_inputs
                or _FAST_DTYPES.get(self.dtype) is not params[0].dtype.type):
            return None
        return _engine.encode_fast(params[0], params[1], X, self.n_threads)

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
        hp, backend, params = self._ready()
        h = params[0].shape[0]
        Hc = check_data(H, hp.dtype, name="H", n_features=h, expected_name="hidden units")
        if hp.scale_inputs:
            self._check_range()
        return self._unscale(backend.decode(params[2], params[3], Hc, hp.decoder), hp)

    def reconstruct(self, X):
        """The model's reconstruction of X, ``inverse_transform(transform(X))``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        Y : ndarray of shape (n_samples, n_features_in_), in the model dtype
        """
        hp, backend, params = self._ready()
        Xc = self._prepare(X, hp, objective=False)
        return self._unscale(backend.reconstruct(params, Xc, hp.decoder), hp)

    def _objective_settings(self, hp):
        return dict(rho=hp.sparsity_target, beta=hp.sparsity_weight,
                    lam=hp.weight_decay, decoder=hp.decoder)

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
        hp, backend, params = self._ready()
        Xc = self._prepare(X, hp, objective=True)
        return float(backend.objective(params, Xc, **self._objective_settings(hp)))

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
        hp, backend, params = self._ready()
        Xc = self._prepare(X, hp, objective=True)
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
            Only checked for length (must equal ``n_features_in_``).

        Returns
        -------
        names : ndarray of str objects, shape (n_hidden,)
        """
        self._check_fitted()
        if input_features is not None and len(input_features) != self.n_features_in_:
            raise ValueError("input_features should have length equal to number of "
                             f"features ({self.n_features_in_}), got {len(input_features)}")
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._params[0].shape[0])],
                          dtype=object)

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
        save(self, path)

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


def _same_value(value, default):
    """True if ``value`` should be hidden in the repr as the default.
    Never raises (parameters may hold anything until validated)."""
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:
        return False


def _own_array(array):
    array = np.asarray(array)
    if type(array) is np.ndarray and array.flags.c_contiguous and array.flags.writeable \
            and array.flags.owndata:
        return array
    return np.array(array, order="C", copy=True)
