"""Deep networks built from sparse autoencoders.

``stack(ae1, ae2, ...)`` joins fitted autoencoders into one deep encoder
(``StackedEncoder``) whose ``transform`` runs every layer in a single engine
call.  ``SparseAutoencoderClassifier`` is UFLDL's "Building Deep Networks
for Classification" (MATLAB's ``trainAutoencoder`` per layer,
``trainSoftmaxLayer``, ``stack`` and ``train``): greedy layer-wise
pretraining, a softmax layer on the top features, then fine-tuning of the
whole network on the labels with the engine's L-BFGS.  docs/deep.md has the
mathematics and the digits experiment.

(The module is ``csae.deep``, not ``csae.stack``: the function
``csae.stack`` would hide a module of that name, and ``deep`` is the name
the engine (src_c/deep.c), the reference (csae/_deep_reference.py) and
docs/deep.md already use.)

A network is a list of ``(W, b)`` pairs, ``W`` of shape ``(h_l, h_{l-1})``:
the sigmoid layers first, the softmax layer last (the layout of
``csae.reference.deep_forward`` and of the engine's flat ``theta``).
"""

import copy
import numbers
import sys
import warnings

import numpy as np

from csae import _engine
from csae._base import ParamsMixin
from csae._finetune import SOLVERS, FineTuned, fine_tune, fit_lbfgs
from csae._state import frozen
from csae.solvers.flat import FlatSettings
from csae._validation import (
    NotFittedError,
    check_data,
    check_frame_columns,
    check_random_state,
    derive_seed,
    feature_names_of,
    input_scale,
    resolve_dtype,
    resolve_n_threads,
)

__all__ = ["stack", "StackedEncoder", "SparseAutoencoderClassifier"]


# ----------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------

def _check_feature_names(fitted, X, name):
    """X's column names against fit's, as scikit-learn does: different names
    raise ValueError, names on one side only warn."""
    given = feature_names_of(X)
    if given is None and fitted is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {name} was fitted without feature names",
                      UserWarning, stacklevel=4)
    elif given is None:
        warnings.warn(f"X does not have valid feature names, but {name} was fitted with "
                      "feature names", UserWarning, stacklevel=4)
    elif len(given) != len(fitted) or (given != fitted).any():
        raise ValueError("The feature names should match those that were passed during fit.")


def _scale(X64, data_min, data_scale, dtype):
    """(X - min) / scale in float64, then in ``dtype``: the formula of
    ``SparseAutoencoder(scale_inputs=True)``, so a stack sees the first
    layer's input exactly as that autoencoder does."""
    out = np.ascontiguousarray((X64 - data_min) / data_scale, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError(f"X scaled by the learned input range overflows {dtype.name}; its "
                         "values are far outside the range seen in fit")
    return out


def _prepare(X, n_features, dtype, data_min, data_scale, name):
    """X validated for the network (and scaled when it has an input range)."""
    if n_features is not None and hasattr(X, "columns"):
        check_frame_columns(X, "X")
    if data_min is None:
        return check_data(X, dtype, n_features=n_features, estimator=name)
    X64 = check_data(X, np.dtype(np.float64), n_features=n_features, estimator=name)
    return _scale(X64, data_min, data_scale, dtype)


_NOT_FITTED: dict = {}


def _not_fitted(message):
    """csae's NotFittedError, under scikit-learn's class too when
    scikit-learn is loaded (its checks look for that class; csae does not
    import scikit-learn itself)."""
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return NotFittedError(message)
    if "class" not in _NOT_FITTED:
        _NOT_FITTED["class"] = type("NotFittedError", (NotFittedError, sk.NotFittedError),
                                    {"__module__": NotFittedError.__module__,
                                     "__doc__": NotFittedError.__doc__})
    return _NOT_FITTED["class"](message)


def _frozen(a, dtype):
    """A read-only copy of ``a`` in ``dtype``, aligned as a single model's
    weights are (csae._state.frozen)."""
    return frozen(np.asarray(a, dtype=dtype), copy=True)


# ----------------------------------------------------------------------
# Stacking
# ----------------------------------------------------------------------

def _layers_from(autoencoders):
    """The encoder layers of fitted autoencoders, checked: (dtype, layers,
    data_min, data_scale).  The first autoencoder's input scaling stays a
    separate step (done as that autoencoder does it); a later one's is
    folded into its layer's weights, sigmoid(W ((a - min) / s) + b) =
    sigmoid((W / s) a + (b - (W / s) min)), the same map up to rounding."""
    from csae._estimator import SparseAutoencoder
    if len(autoencoders) == 0:
        raise ValueError("stack needs at least one autoencoder")
    dtypes, layers, first_range = set(), [], (None, None)
    width = None
    for i, ae in enumerate(autoencoders):
        if not isinstance(ae, SparseAutoencoder):
            raise TypeError(f"stack takes SparseAutoencoder models; argument {i} is a "
                            f"{type(ae).__name__}")
        state = ae._state  # one immutable snapshot: weights and input range together
        if state.params is None:
            raise NotFittedError(f"autoencoder {i} of the stack is not fitted yet; fit it "
                                 "(on the previous layer's features) first")
        W, b = state.params[0], state.params[1]
        h, n = W.shape
        if width is not None and n != width:
            raise ValueError(f"the autoencoders' sizes do not chain: autoencoder {i - 1} has "
                             f"{width} hidden units but autoencoder {i} takes {n} features")
        dtypes.add(W.dtype)
        scaled = bool(ae.get_params()["scale_inputs"])
        if scaled and state.data_min is None:
            raise NotFittedError(f"autoencoder {i} has scale_inputs=True but no learned "
                                 "input range")
        if scaled and i > 0:
            W64 = W.astype(np.float64) / state.data_scale
            b = b.astype(np.float64) - W64 @ state.data_min
            W = W64
        elif scaled:
            first_range = (np.array(state.data_min, np.float64),
                           np.array(state.data_scale, np.float64))
        layers.append((W, b))
        width = h
    if len(dtypes) > 1:
        raise ValueError("the autoencoders of a stack must share one dtype, got "
                         f"{sorted(d.name for d in dtypes)}")
    dtype = dtypes.pop()
    layers = [(_frozen(W, dtype), _frozen(b, dtype)) for W, b in layers]
    return dtype, layers, first_range[0], first_range[1]


class StackedEncoder(ParamsMixin):
    """Sparse autoencoders' encoders stacked into one deep encoder.

    ``x -> sigmoid(W_1 x + b_1) -> ... -> sigmoid(W_L a_{L-1} + b_L)``, with
    the first autoencoder's input scaling (``scale_inputs=True``) applied
    first.  Made fitted by ``csae.stack``; ``fit`` instead trains copies of
    ``autoencoders`` greedily, each on the previous one's features.

    Parameters
    ----------
    autoencoders : sequence of SparseAutoencoder
        One per layer, bottom first.  ``fit`` leaves them untouched (it
        trains copies, kept in ``autoencoders_``).
    n_threads : int or None, default=None
        Threads of the engine for ``transform`` (None: as
        ``SparseAutoencoder``'s default).  Results do not depend on it.

    Attributes
    ----------
    autoencoders_ : list of SparseAutoencoder
        The fitted autoencoders (copies, taken when stacked or fitted).
    layers_ : list of (W, b)
        The encoder layers, read-only arrays in the stack's dtype.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        The first autoencoder's, when it has them.

    Notes
    -----
    ``transform`` equals the chain of the autoencoders' own ``transform``
    calls bit for bit (the same engine products in the same order), except
    when an autoencoder above the first was trained with
    ``scale_inputs=True``: its scaling is folded into its weights, which
    changes the rounding (not the map).
    """

    def __init__(self, autoencoders=(), n_threads=None):
        self.autoencoders = autoencoders
        self.n_threads = n_threads

    # scikit-learn plumbing: get/set_params and the repr come from ParamsMixin.
    def __sklearn_is_fitted__(self):
        return "layers_" in self.__dict__

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags
        return Tags(estimator_type="transformer", target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(),
                    input_tags=InputTags(two_d_array=True, allow_nan=False))

    def _set_from(self, autoencoders):
        dtype, layers, data_min, data_scale = _layers_from(autoencoders)
        names = getattr(autoencoders[0], "feature_names_in_", None)
        self.__dict__.update(
            autoencoders_=list(autoencoders), layers_=layers, dtype_=dtype,
            n_features_in_=layers[0][0].shape[1], _data_min=data_min,
            _data_scale=data_scale)
        if names is not None:
            self.feature_names_in_ = names
        else:
            self.__dict__.pop("feature_names_in_", None)
        return self

    def fit(self, X, y=None):
        """Train copies of ``autoencoders`` greedily: the first on X, each
        next one on the previous one's ``transform``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : StackedEncoder
        """
        from csae._estimator import SparseAutoencoder
        aes = list(self.autoencoders)
        if not aes or not all(isinstance(ae, SparseAutoencoder) for ae in aes):
            raise TypeError("autoencoders must be a non-empty sequence of SparseAutoencoder")
        trained, features = [], X
        for ae in aes:
            ae = copy.deepcopy(ae)
            features = ae.fit(features).transform(features)
            trained.append(ae)
        return self._set_from(trained)

    def fit_transform(self, X, y=None):
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    def _check_fitted(self):
        if "layers_" not in self.__dict__:
            raise _not_fitted("This StackedEncoder instance is not fitted yet. Call "
                                 "'fit', or make it with csae.stack(fitted autoencoders).")

    def transform(self, X):
        """The top layer's activations, every layer in one engine call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        H : ndarray of shape (n_samples, h_L), in the stack's dtype
        """
        self._check_fitted()
        _check_feature_names(getattr(self, "feature_names_in_", None), X, "StackedEncoder")
        Xc = _prepare(X, self.n_features_in_, self.dtype_, self._data_min, self._data_scale,
                      "StackedEncoder")
        return _engine.deep_encode(self.layers_, Xc, resolve_n_threads(self.n_threads))

    def inverse_transform(self, H):
        """Back through the decoders, top first: each autoencoder's
        ``inverse_transform`` in reverse order (the first one's maps back to
        the input scale).

        Parameters
        ----------
        H : array-like of shape (n_samples, h_L)

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
        """
        self._check_fitted()
        for ae in reversed(self.autoencoders_):
            H = ae.inverse_transform(H)
        return H

    def reconstruct(self, X):
        """``inverse_transform(transform(X))``."""
        return self.inverse_transform(self.transform(X))

    def to_onnx(self, path=None, what="encoder"):
        """The stack as an ONNX graph (needs ``pip install "csae[onnx]"``).

        Parameters
        ----------
        path : str, bytes, os.PathLike or None, default=None
            Where to write it, by the rules of ``SparseAutoencoder.save``
            (None: write nothing).
        what : {"encoder", "decoder", "reconstruct"}, default="encoder"
            The graph of ``transform`` (X -> H), ``inverse_transform``
            (H -> Y) or ``reconstruct`` (X -> Y), as ``csae.to_onnx`` gives
            for one autoencoder; the first autoencoder's input scaling is in
            the graph.

        Returns
        -------
        onnx.ModelProto
        """
        self._check_fitted()
        from csae.onnx import export_stacked
        return export_stacked(self.layers_, self.autoencoders_,
                              None if self._data_min is None
                              else (self._data_min, self._data_scale), path=path, what=what)

    def save(self, path):
        """Save the fitted stack to ``path`` (a ``.npz`` model file, no pickle
        inside; ``csae.load`` reads it, C programs ``csae_deep_file_*``).

        Parameters
        ----------
        path : str or os.PathLike
            Written atomically, exactly as given.
        """
        from csae import _deep_persist
        self._check_fitted()
        _deep_persist.save(path, "encoder", params=self.get_params(), layers=self.layers_,
                           data_min=self._data_min, data_scale=self._data_scale,
                           autoencoders=self.autoencoders_)

    @classmethod
    def _from_saved(cls, saved):
        """The stack a model file describes (csae._deep_persist.load)."""
        stack = cls(tuple(saved["autoencoders"]), **saved["params"])
        stack._set_from(saved["autoencoders"])
        # The stored network, bit for bit (not refolded from the autoencoders).
        stack.layers_ = _freeze(saved["layers"], saved["dtype"])
        stack._data_min, stack._data_scale = saved["data_min"], saved["data_scale"]
        return stack

    def get_feature_names_out(self, input_features=None):
        """``stackedencoder0`` ... for the top layer's units."""
        self._check_fitted()
        h = self.layers_[-1][0].shape[0]
        return np.asarray([f"stackedencoder{j}" for j in range(h)], dtype=object)


def stack(*autoencoders, n_threads=None):
    """Stack fitted sparse autoencoders into one deep encoder.

    MATLAB's ``stack(autoenc1, autoenc2)``: each autoencoder must have been
    trained on the previous one's features, so its number of input features
    equals the previous one's hidden units.

    Parameters
    ----------
    *autoencoders : SparseAutoencoder
        Fitted models, bottom layer first (a single list works too).
    n_threads : int or None, default=None
        Threads of ``transform``.

    Returns
    -------
    StackedEncoder
        Fitted, holding copies of the autoencoders (refitting one later
        does not change the stack).

    Raises
    ------
    ValueError
        The sizes do not chain, the dtypes differ, or none is given.
    NotFittedError
        An autoencoder is not fitted.
    TypeError
        An argument is not a SparseAutoencoder.

    Examples
    --------
    >>> import numpy as np, csae
    >>> X = np.random.default_rng(0).random((200, 16))
    >>> ae1 = csae.SparseAutoencoder(n_hidden=8, max_epochs=20, random_state=0).fit(X)
    >>> ae2 = csae.SparseAutoencoder(n_hidden=4, max_epochs=20, random_state=0)
    >>> ae2 = ae2.fit(ae1.transform(X))
    >>> csae.stack(ae1, ae2).transform(X).shape
    (200, 4)
    """
    if len(autoencoders) == 1 and isinstance(autoencoders[0], (list, tuple)):
        autoencoders = tuple(autoencoders[0])
    _layers_from(autoencoders)  # every check before anything is copied
    copies = [copy.deepcopy(ae) for ae in autoencoders]
    return StackedEncoder(tuple(autoencoders), n_threads=n_threads)._set_from(copies)


# ----------------------------------------------------------------------
# The classifier
# ----------------------------------------------------------------------

# Hyperparameters of every pretrained layer's SparseAutoencoder: UFLDL's
# stacked-autoencoder exercise (sparsityParam 0.1, beta 3 in UFLDL's scale,
# exactly 400 L-BFGS iterations: tol 0) except the weight decay, csae's
# default 1e-4 rather than UFLDL's 3e-3: on the scikit-learn digits, 3e-3
# makes the second layer's optimum the constant code (every unit at rho,
# std 5e-6; docs/deep.md).
PRETRAIN_DEFAULTS = {"sparsity_target": 0.1, "sparsity_weight": 6.0, "weight_decay": 1e-4,
                     "max_epochs": 400, "tol": 0.0}

# Set by the classifier itself, for every layer.
_OWNED = ("n_hidden", "dtype", "random_state", "n_threads", "scale_inputs", "warm_start")


def _check_sizes(sizes):
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = (sizes,)
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError("hidden_layer_sizes must be a sequence of positive integers, got "
                        f"{sizes!r}") from None
    if len(sizes) == 0:
        raise ValueError("hidden_layer_sizes must name at least one hidden layer, got ()")
    for s in sizes:
        if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 1:
            raise ValueError("hidden_layer_sizes must hold integers >= 1, got "
                             f"{sizes!r}")
    return tuple(int(s) for s in sizes)


def _layer_settings(autoencoder_params, n_layers):
    """One dict of SparseAutoencoder hyperparameters per layer: the
    defaults, overridden by a dict for all layers or a list with one dict
    per layer."""
    from csae._estimator import SparseAutoencoder
    if autoencoder_params is None:
        per_layer = [{}] * n_layers
    elif isinstance(autoencoder_params, dict):
        per_layer = [autoencoder_params] * n_layers
    elif isinstance(autoencoder_params, (list, tuple)):
        if len(autoencoder_params) != n_layers or not all(
                isinstance(p, dict) or p is None for p in autoencoder_params):
            raise ValueError(f"autoencoder_params must be a dict or a list of {n_layers} dicts "
                             f"(one per hidden layer), got {autoencoder_params!r}")
        per_layer = [p or {} for p in autoencoder_params]
    else:
        raise TypeError("autoencoder_params must be None, a dict, or a list of dicts, got "
                        f"{type(autoencoder_params).__name__}")
    valid = set(SparseAutoencoder._get_param_names())
    out = []
    for settings in per_layer:
        for name in settings:
            if name in _OWNED:
                raise ValueError(f"autoencoder_params may not set {name!r}: the classifier "
                                 "sets it (hidden_layer_sizes, dtype, random_state, "
                                 "n_threads, scale_inputs)")
            if name not in valid:
                raise ValueError(f"autoencoder_params: {name!r} is not a SparseAutoencoder "
                                 "hyperparameter")
        out.append({**PRETRAIN_DEFAULTS, **settings})
    return out


def _labels(y, m):
    """(classes, indices) of the labels y, checked."""
    if y is None:
        raise ValueError("SparseAutoencoderClassifier requires y to be passed, but the "
                         "target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        try:
            from sklearn.exceptions import DataConversionWarning as category
        except ImportError:  # pragma: no cover
            category = UserWarning
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                      "change the shape of y to (n_samples, ), for example using ravel().",
                      category, stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y should be a 1d array with one label per row, got shape {y.shape}")
    if y.shape[0] != m:
        raise ValueError(f"y has {y.shape[0]} labels but X has {m} rows")
    if y.dtype.kind == "f":
        if np.isnan(y).any():
            raise ValueError("y contains NaN; every row needs a label")
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ValueError("Unknown label type: continuous. y holds non-integer numbers; "
                             "a classifier needs class labels")
    elif y.dtype.kind == "O":
        if any(isinstance(v, float) and v != v for v in y):
            raise ValueError("y contains NaN; every row needs a label")
    elif y.dtype.kind not in "biuUS":
        raise ValueError(f"Unknown label type: y has dtype {y.dtype}")
    classes, indices = np.unique(y, return_inverse=True)
    if classes.shape[0] < 2:
        raise ValueError(f"y has one class ({classes[0]!r}); a classifier needs at least 2 "
                         "classes")
    return classes, indices.astype(np.int64)


class SparseAutoencoderClassifier(ParamsMixin):
    """A deep network of sparse autoencoders under a softmax layer.

    UFLDL's stacked-autoencoder classifier: each hidden layer is pretrained
    as a ``SparseAutoencoder`` on the previous layer's features (greedy,
    unsupervised), a softmax layer is trained on the top features, then the
    whole network is fine-tuned on the labels: L-BFGS (or minibatch Adam or
    SGD, ``solver``) on the mean cross-entropy plus ``(alpha / 2)`` times
    every weight matrix's squared norm (docs/deep.md), every evaluation one
    engine call.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(200, 200)
        Units of each hidden layer, bottom first.  Not used when
        ``autoencoders`` is given (the sizes are theirs).
    autoencoder_params : dict or list of dict, default=None
        ``SparseAutoencoder`` hyperparameters for pretraining: one dict for
        every layer, or a list with one dict per layer.  Unset ones take
        ``PRETRAIN_DEFAULTS`` (sparsity_target 0.1, sparsity_weight 6,
        weight_decay 1e-4, exactly 400 L-BFGS iterations), then
        SparseAutoencoder's defaults.  ``n_hidden``, ``dtype``,
        ``random_state``, ``n_threads`` and ``scale_inputs`` are the
        classifier's.
    pretrain : bool, default=True
        Pretrain the hidden layers (and the softmax layer on their
        features).  False starts fine-tuning from random weights (Glorot
        uniform, UFLDL's initialisation, zero biases), to show what
        pretraining buys.
    autoencoders : StackedEncoder or sequence of SparseAutoencoder, default=None
        Already trained autoencoders (MATLAB's ``stack`` then ``train``):
        they give the hidden layers (and the input scaling of the first one);
        pretraining is skipped, the softmax layer trained on their features,
        then the network fine-tuned.
    alpha : float, default=1e-4
        Weight decay of fine-tuning and of the softmax layer (UFLDL's
        lambda 1e-4), >= 0.
    max_iter : int, default=400
        L-BFGS iterations of fine-tuning, or epochs with "adam" and "sgd"
        (0: no fine-tuning, the stacked features under the softmax layer as
        they are).
    softmax_max_iter : int, default=400
        L-BFGS iterations of the softmax layer on the top features.
    tol : float, default=1e-5
        "lbfgs": fine-tuning stops when every gradient component is at most
        ``tol`` (minFunc's optTol), or when the objective stops decreasing.
        "adam" and "sgd": SparseAutoencoder's relative rule, stop when the
        epoch objective (the validation cross-entropy with
        ``early_stopping``) has not improved on its best by more than
        ``tol`` times that best for ``n_iter_no_change`` epochs; without
        early stopping ``tol=0`` switches it (and the ``ConvergenceWarning``
        at ``max_iter``) off.
    scale_inputs : bool, default=True
        Map each feature to [0, 1] with the range seen in ``fit`` before
        the network (MATLAB's ScaleData; the sigmoid decoders of
        pretraining need inputs in [0, 1]).  With ``autoencoders`` the
        first one's setting is used instead.
    dtype : {"float64", "float32"}, default="float64"
    random_state : None, int or numpy.random.Generator, default=None
    n_threads : int or None, default=None
        Engine threads; results do not depend on it.
    verbose : bool, default=False
        Print a line per stage and per fine-tuning iteration.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (drawn once from
        ``random_state``; every stage trains on the rest), compute the
        validation cross-entropy after each fine-tuning iteration, stop when
        it has not improved for ``n_iter_no_change`` iterations, and keep
        the weights of the best iteration.
    validation_fraction : float, default=0.1
        In (0, 1); ``ceil(validation_fraction * n_samples)`` rows, at least
        one row left for training.
    n_iter_no_change : int, default=10
        Iterations (epochs) without a lower validation loss after which
        fine-tuning stops, >= 1.
    solver : {"lbfgs", "adam", "sgd"}, default="lbfgs"
        Fine-tuning's optimizer.  "lbfgs": full-batch L-BFGS, UFLDL's and
        the best on data that fits in one evaluation.  "adam" (Kingma and
        Ba, scikit-learn's convention) and "sgd" (with ``momentum``):
        minibatch epochs, each minibatch's objective and gradient one engine
        call and the update the engine's, as ``SparseAutoencoder``'s
        solvers of the same names (docs/deep.md says when to use which).
        The softmax layer's training stays L-BFGS.
    learning_rate : float, default=0.001
        "adam" and "sgd": step size, > 0 (scikit-learn MLP's default).
    momentum : float, default=0.9
        "sgd": ``v <- mu v - lr g; theta <- theta + v``, in [0, 1).
    batch_size : int, default=100
        "adam" and "sgd": rows per minibatch (the last may be shorter; more
        than the rows gives full-batch steps).
    beta_1, beta_2 : float, default=0.9, 0.999
        "adam": the moment estimates' decays, in [0, 1).
    epsilon : float, default=1e-8
        "adam": added to ``sqrt(v)`` in the step's denominator, > 0.
    shuffle : bool, default=True
        "adam" and "sgd": visit the rows in a fresh order each epoch (the
        engine's permutation, seeded by ``random_state``).

    Attributes
    ----------
    classes_ : ndarray
        The class labels (sorted).
    layers_ : list of (W, b)
        The fine-tuned network: the hidden layers, then the softmax layer.
    pretrained_layers_ : list of (W, b)
        The network before fine-tuning (after pretraining and the softmax
        layer's training; the random start with ``pretrain=False``).
    autoencoders_ : list of SparseAutoencoder or None
        The pretrained autoencoders (None with ``pretrain=False``).
    loss_curve_ : list of float
        Fine-tuning's objective after each L-BFGS iteration run, or with
        "adam" and "sgd" each epoch's mean minibatch objective (before each
        step), as SparseAutoencoder's; with ``early_stopping``, also those
        after ``best_iteration_``.
    n_iter_ : int
        Fine-tuning iterations (epochs) run.
    validation_loss_curve_ : list of float or None
        With ``early_stopping``: the validation cross-entropy after each
        fine-tuning iteration.
    best_iteration_ : int or None
        With ``early_stopping``: the iteration (1-based) whose weights are
        kept (0: the network before fine-tuning).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When fitted on a DataFrame with string column names.

    Notes
    -----
    ``fit`` checks X, y and every hyperparameter before training, and sets
    the fitted attributes only when it completes: an error leaves a fitted
    model as it was.  Ctrl-C stops the running stage with a
    ``TrainingInterruptedWarning`` and training goes on from where that
    stage was (an autoencoder keeps its last completed iteration, as
    ``SparseAutoencoder.fit`` does; L-BFGS its last iterate; "adam" and
    "sgd" their last completed epoch, or with early stopping the best
    validation epoch so far).  Fine-tuning by "adam" or "sgd" that diverges
    (a NaN or inf objective or weight, or an objective 1e4 times the
    start's) gives a ``TrainingDivergedWarning`` saying why and leaves the
    model as it was before ``fit``.
    """

    def __init__(self, hidden_layer_sizes=(200, 200), autoencoder_params=None, pretrain=True,
                 autoencoders=None, alpha=1e-4, max_iter=400, softmax_max_iter=400, tol=1e-5,
                 scale_inputs=True, dtype="float64", random_state=None, n_threads=None,
                 verbose=False, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, solver="lbfgs", learning_rate=0.001, momentum=0.9,
                 batch_size=100, beta_1=0.9, beta_2=0.999, epsilon=1e-8, shuffle=True):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.autoencoder_params = autoencoder_params
        self.pretrain = pretrain
        self.autoencoders = autoencoders
        self.alpha = alpha
        self.max_iter = max_iter
        self.softmax_max_iter = softmax_max_iter
        self.tol = tol
        self.scale_inputs = scale_inputs
        self.dtype = dtype
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.solver = solver
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.shuffle = shuffle

    # -- scikit-learn plumbing (get/set_params and the repr: ParamsMixin) --

    def __sklearn_is_fitted__(self):
        return "layers_" in self.__dict__

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(),
                    input_tags=InputTags(two_d_array=True, allow_nan=False))

    def _more_tags(self):
        return {"requires_y": True, "X_types": ["2darray"]}

    _estimator_type = "classifier"

    # -- fitting -----------------------------------------------------------

    def _settings(self):
        """Every hyperparameter checked, before anything is trained."""
        from csae._validation import _bool_param, _real_param, int_param
        s = {}
        s["dtype"] = resolve_dtype(self.dtype)
        s["n_threads"] = resolve_n_threads(self.n_threads)
        s["alpha"] = _real_param("alpha", self.alpha, 0.0, np.inf, False, True, ">= 0")
        s["tol"] = _real_param("tol", self.tol, 0.0, np.inf, False, True, ">= 0")
        s["max_iter"] = int_param("max_iter", self.max_iter, 0)
        s["softmax_max_iter"] = int_param("softmax_max_iter", self.softmax_max_iter, 0)
        for name in ("pretrain", "scale_inputs"):
            _bool_param(name, getattr(self, name))
        if not isinstance(self.verbose, (bool, np.bool_, numbers.Integral)):
            raise ValueError(f"verbose must be a bool or an int, got {self.verbose!r}")
        s["verbose"] = bool(self.verbose)
        check_random_state(self.random_state)
        _bool_param("early_stopping", self.early_stopping)
        s["early_stopping"] = bool(self.early_stopping)
        s["validation_fraction"] = _real_param("validation_fraction", self.validation_fraction,
                                               0.0, 1.0, True, True, "in (0, 1)")
        s["n_iter_no_change"] = int_param("n_iter_no_change", self.n_iter_no_change, 1)
        s.update(self._solver_settings(s))
        if self.autoencoders is not None:
            aes = (self.autoencoders.autoencoders_ if isinstance(self.autoencoders,
                                                                 StackedEncoder)
                   else list(self.autoencoders))
            if isinstance(self.autoencoders, StackedEncoder):
                self.autoencoders._check_fitted()
            dtype, layers, data_min, data_scale = _layers_from(aes)
            s["start"] = (layers, data_min, data_scale, aes)
            s["sizes"] = tuple(W.shape[0] for W, _ in layers)
        else:
            s["start"] = None
            s["sizes"] = _check_sizes(self.hidden_layer_sizes)
            if self.pretrain:
                s["layer_settings"] = _layer_settings(self.autoencoder_params, len(s["sizes"]))
        return s

    def _solver_settings(self, s):
        """The fine-tuning solver and its minibatch settings, checked by
        SparseAutoencoder's table (csae._params): the same names, ranges
        and messages."""
        from csae._validation import validate_shared
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        shared = {"solver": self.solver, "learning_rate": self.learning_rate,
                  "momentum": self.momentum, "batch_size": self.batch_size,
                  "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                  "shuffle": self.shuffle}
        v = validate_shared(shared, s["dtype"])
        if self.solver == "lbfgs":
            return {"solver": "lbfgs"}
        flat = FlatSettings(max_epochs=s["max_iter"], tol=s["tol"],
                            n_iter_no_change=s["n_iter_no_change"], verbose=int(s["verbose"]),
                            budget_name="max_iter", **v)
        return {"solver": self.solver, "flat": flat}

    def fit(self, X, y):
        """Pretrain, train the softmax layer, fine-tune.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (numbers or strings; at least two classes).

        Returns
        -------
        self : SparseAutoencoderClassifier
        """
        s = self._settings()
        dtype, name = s["dtype"], type(self).__name__
        if hasattr(X, "columns"):
            check_frame_columns(X, "X")
        names = feature_names_of(X)
        X64 = check_data(X, np.dtype(np.float64), estimator=name)
        m, n = X64.shape
        classes, y_idx = _labels(y, m)
        start = s["start"]
        if start is not None and start[0][0][0].shape[1] != n:
            raise ValueError(f"X has {n} features but the first autoencoder takes "
                             f"{start[0][0][0].shape[1]}")
        rng = np.random.default_rng(derive_seed(self.random_state))
        k = classes.shape[0]
        validation = None
        if s["early_stopping"]:
            X64, y_idx, validation = self._hold_out(X64, y_idx, s, rng)
        say = print if s["verbose"] else (lambda *a, **kw: None)
        hidden, autoencoders, data_min, data_scale = self._hidden_start(X64, s, rng, say)
        Xs = (check_data(X64, dtype) if data_min is None
              else _scale(X64, data_min, data_scale, dtype))
        # The softmax layer: UFLDL's start (small Gaussian), then trained on
        # the top features unless the whole network starts at random.
        top = hidden[-1][0].shape[0]
        softmax = ((0.005 * rng.standard_normal((k, top))).astype(dtype), np.zeros(k, dtype))
        if (self.pretrain or start is not None) and s["softmax_max_iter"] > 0:
            say(f"[{name}] softmax layer on {top} features")
            H = _engine.deep_encode(hidden, Xs, s["n_threads"])
            softmax = tuple(fit_lbfgs([softmax], H, y_idx, s, s["softmax_max_iter"])[0][0])
        pretrained = hidden + [softmax]
        tuned = FineTuned(pretrained, [])
        if s["max_iter"] > 0:
            if validation is not None:
                validation = ((check_data(validation[0], dtype) if data_min is None
                               else _scale(validation[0], data_min, data_scale, dtype)),
                              validation[1])
            say(f"[{name}] fine-tuning {[n, *s['sizes'], k]} with {s['solver']}")
            s["rng_state"] = int(rng.integers(2**63))
            tuned = fine_tune(pretrained, Xs, y_idx, s, validation, say, stacklevel=3)
            if tuned.layers is None:   # diverged (warned): keep the model as it was
                return self
        # Everything trained: publish together.
        self.__dict__.pop("feature_names_in_", None)
        self.__dict__.update(
            classes_=classes, n_features_in_=n, layers_=_freeze(tuned.layers, dtype),
            pretrained_layers_=_freeze(pretrained, dtype), autoencoders_=autoencoders,
            loss_curve_=list(tuned.loss_curve), n_iter_=len(tuned.loss_curve),
            validation_loss_curve_=(None if tuned.validation_curve is None
                                    else list(tuned.validation_curve)),
            best_iteration_=tuned.best_iteration, _data_min=data_min,
            _data_scale=data_scale, _dtype=dtype)
        if names is not None:
            self.feature_names_in_ = names
        return self

    def _hold_out(self, X64, y_idx, s, rng):
        """Early stopping's validation rows, drawn once: ``(X, y, (X_val,
        y_val))``."""
        m = X64.shape[0]
        n_val = int(np.ceil(s["validation_fraction"] * m))
        if n_val >= m:
            raise ValueError(f"validation_fraction={self.validation_fraction} of {m} rows "
                             "leaves no row for training")
        order = rng.permutation(m)
        return (X64[order[n_val:]], y_idx[order[n_val:]],
                (X64[order[:n_val]], y_idx[order[:n_val]]))

    def _hidden_start(self, X64, s, rng, say):
        """The hidden layers fine-tuning starts from, the autoencoders they
        came from (None from random weights) and the input range:
        ``(hidden, autoencoders, data_min, data_scale)``."""
        dtype, start = s["dtype"], s["start"]
        if start is not None:  # stacked autoencoders given
            hidden, data_min, data_scale, autoencoders = start
            return ([(np.array(W, dtype), np.array(b, dtype)) for W, b in hidden],
                    autoencoders, data_min, data_scale)
        if self.pretrain:
            # The first autoencoder learns the input range itself, so that
            # csae.stack(autoencoders_) is this network's start.
            hidden, autoencoders, data_min, data_scale = self._pretrain(X64, s, rng, say)
            return hidden, autoencoders, data_min, data_scale
        data_min = data_scale = None
        hidden = self._random_hidden(X64.shape[1], s["sizes"], dtype, rng)
        if self.scale_inputs:  # SparseAutoencoder's rule, constant features map to 0
            data_min = X64.min(axis=0)
            data_scale = input_scale(data_min, X64.max(axis=0))
        return hidden, None, data_min, data_scale

    def _pretrain(self, X64, s, rng, say):
        """Greedy layer-wise pretraining: one SparseAutoencoder per layer on
        the previous layer's features.  Returns (hidden layers, the
        autoencoders, the input range of the first one or None)."""
        from csae._estimator import SparseAutoencoder
        aes, features = [], X64
        for l, (h, settings) in enumerate(zip(s["sizes"], s["layer_settings"])):
            say(f"[{type(self).__name__}] pretraining layer {l + 1}: {features.shape[1]} -> {h}")
            ae = SparseAutoencoder(n_hidden=h, dtype=s["dtype"], n_threads=self.n_threads,
                                   random_state=int(rng.integers(2**31)),
                                   scale_inputs=bool(self.scale_inputs) and l == 0, **settings)
            features = ae.fit(features).transform(features)
            aes.append(ae)
        _, layers, data_min, data_scale = _layers_from(aes)
        return [(np.array(W), np.array(b)) for W, b in layers], aes, data_min, data_scale

    @staticmethod
    def _random_hidden(n, sizes, dtype, rng):
        layers, prev = [], n
        for h in sizes:
            r = np.sqrt(6.0 / (h + prev + 1))
            layers.append((rng.uniform(-r, r, (h, prev)).astype(dtype), np.zeros(h, dtype)))
            prev = h
        return layers

    # -- prediction --------------------------------------------------------

    def _check_fitted(self):
        if "layers_" not in self.__dict__:
            raise _not_fitted(f"This {type(self).__name__} instance is not fitted yet. "
                                 "Call 'fit' with appropriate arguments before using this "
                                 "estimator.")

    def _input(self, X):
        self._check_fitted()
        _check_feature_names(getattr(self, "feature_names_in_", None), X, type(self).__name__)
        return _prepare(X, self.n_features_in_, self._dtype, self._data_min, self._data_scale,
                        type(self).__name__)

    def predict_proba(self, X):
        """Class probabilities, one row per sample, columns in ``classes_`` order.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        P : ndarray of shape (n_samples, n_classes)
        """
        Xc = self._input(X)
        return _engine.deep_forward(self.layers_, Xc, resolve_n_threads(self.n_threads))

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        y : ndarray of shape (n_samples,), labels from ``classes_``
        """
        P = self.predict_proba(X)
        return self.classes_[np.argmax(P, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        right = (self.predict(X) == np.asarray(y)).astype(np.float64)
        return float(np.average(right, weights=sample_weight))

    def encode(self, X):
        """The top hidden layer's activations (the learned features), every
        layer in one engine call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_layer_sizes[-1])
        """
        Xc = self._input(X)
        return _engine.deep_encode(self.layers_[:-1], Xc, resolve_n_threads(self.n_threads))

    def to_onnx(self, path=None):
        """The network as an ONNX graph (needs ``pip install "csae[onnx]"``).

        Input "X" (N, n_features_in_) in the model dtype; outputs "label"
        (N,), the ``classes_`` value ``predict`` gives (int64, or strings),
        and "probabilities" (N, n_classes), ``predict_proba``: the outputs
        skl2onnx gives a scikit-learn classifier with ``zipmap=False``.
        The input scaling is in the graph.

        Parameters
        ----------
        path : str, bytes, os.PathLike or None, default=None
            Where to write it, by the rules of ``SparseAutoencoder.save``
            (None: write nothing).

        Returns
        -------
        onnx.ModelProto
        """
        self._check_fitted()
        from csae.onnx import export_classifier
        return export_classifier(self.layers_, self.classes_,
                                 None if self._data_min is None
                                 else (self._data_min, self._data_scale), path=path)

    def save(self, path):
        """Save the fitted classifier to ``path`` (a ``.npz`` model file, no
        pickle inside; ``csae.load`` reads it, C programs
        ``csae_deep_file_*``).

        Parameters
        ----------
        path : str or os.PathLike
            Written atomically, exactly as given.
        """
        from csae import _deep_persist
        self._check_fitted()
        _deep_persist.save(
            path, "classifier", params=self.get_params(), layers=self.layers_,
            data_min=self._data_min, data_scale=self._data_scale,
            autoencoders=self.autoencoders_,
            classifier={"classes": self.classes_, "pretrained": self.pretrained_layers_,
                        "loss_curve": self.loss_curve_, "best_iteration": self.best_iteration_,
                        "validation_loss_curve": self.validation_loss_curve_,
                        "autoencoders_given": self.autoencoders is not None})

    @classmethod
    def _from_saved(cls, saved):
        """The classifier a model file describes (csae._deep_persist.load)."""
        aes = saved["autoencoders"]
        clf = cls(**saved["params"])
        if saved["autoencoders_given"]:
            clf.autoencoders = None if aes is None else list(aes)
        clf._settings()  # the constructor's checks
        dtype = saved["dtype"]
        clf.__dict__.update(
            classes_=saved["classes"], n_features_in_=saved["layers"][0][0].shape[1],
            layers_=_freeze(saved["layers"], dtype),
            pretrained_layers_=_freeze(saved["pretrained"], dtype), autoencoders_=aes,
            loss_curve_=saved["loss_curve"], n_iter_=len(saved["loss_curve"]),
            validation_loss_curve_=saved["validation_loss_curve"],
            best_iteration_=saved["best_iteration"], _data_min=saved["data_min"],
            _data_scale=saved["data_scale"], _dtype=dtype)
        return clf


def load(path):
    """Any csae model file: a SparseAutoencoder's, a StackedEncoder's or a
    SparseAutoencoderClassifier's (``csae.load``)."""
    from csae import _deep_persist
    from csae._estimator import SparseAutoencoder
    kinds = {"encoder": StackedEncoder, "classifier": SparseAutoencoderClassifier}
    kind, saved = _deep_persist.load(
        path, {k: c._get_param_names() for k, c in kinds.items()})
    if kind == "single":
        return SparseAutoencoder.load(path)
    try:
        return kinds[kind]._from_saved(saved)
    except (TypeError, ValueError) as err:
        from csae._files import display_name
        raise ValueError(f"{display_name(path)} is not a valid csae model file: invalid "
                         f"hyperparameter: {str(err)[:200]}") from None


def _freeze(layers, dtype):
    return [(_frozen(W, dtype), _frozen(b, dtype)) for W, b in layers]
