"""The scikit-learn plumbing of csae's estimator, in one base class.

What ``sklearn/base.py``'s ``BaseEstimator`` and ``TransformerMixin`` give a
scikit-learn estimator (``get_params``/``set_params``, the repr, the tags,
``set_output``, feature names in and out), written out here so that numpy
stays csae's only runtime dependency: scikit-learn is imported lazily by
``__sklearn_tags__`` (which only scikit-learn itself calls) and its
``set_output`` machinery is used only when scikit-learn is already loaded.

A subclass provides what this plumbing reads:

``_locks``
    a ``csae._state.ModelLocks``: ``set_params`` takes ``write`` (it waits
    for a running fit), every read of the hyperparameters ``snapshot``;
``_state``
    the model's immutable ``csae._state.ModelState`` (weights, feature
    names);
``_fast``, ``_hp_generation``
    reset on every hyperparameter change (the estimator's fast transform
    path revalidates before it runs again).
"""

import inspect
import sys
import warnings

import numpy as np

from csae._state import require_fitted
from csae._validation import resolve_dtype

__all__ = ["EstimatorBase", "available_if", "check_feature_names", "OUTPUT_CONTAINERS"]

# scikit-learn's set_output machinery, used when scikit-learn is already
# imported (it then also honours sklearn.set_config(transform_output=...));
# csae never imports scikit-learn itself.
SET_OUTPUT_MODULE = "sklearn.utils._set_output"
MODULES = sys.modules
OUTPUT_CONTAINERS = ("default", "pandas", "polars")


class available_if:
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


def same_value(value, default):
    """True if ``value`` should be hidden in the repr as the default.
    Never raises (parameters may hold anything until validated)."""
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:
        return False


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


def check_feature_names(given, fitted, estimator, stacklevel):
    """Column names ``given`` (None: X has none) against ``fitted`` (those
    seen in fit), as scikit-learn's ``_check_feature_names`` does: different
    names raise ValueError, names on one side only warn (``stacklevel``
    counted from the caller of this function)."""
    if given is None and fitted is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {estimator} was fitted without feature "
                      "names", UserWarning, stacklevel=stacklevel + 1)
    elif given is None:
        warnings.warn(f"X does not have valid feature names, but {estimator} was fitted "
                      "with feature names", UserWarning, stacklevel=stacklevel + 1)
    elif len(given) != len(fitted) or (given != fitted).any():
        raise ValueError(_feature_names_message(list(fitted), list(given)))


# The constructor's parameter names of each class, read once.
_PARAM_NAMES: "dict[type, frozenset]" = {}


class EstimatorBase:
    """get/set_params, repr, tags, set_output and feature names for a
    transformer whose hyperparameters are its constructor's arguments."""

    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    @classmethod
    def _hyperparameter_names(cls):
        names = _PARAM_NAMES.get(cls)
        if names is None:
            names = _PARAM_NAMES[cls] = frozenset(cls._get_param_names())
        return names

    def __setattr__(self, name, value):
        if name in self._hyperparameter_names():
            with self._locks.snapshot:
                object.__setattr__(self, name, value)
                # The fast transform path must see the new value validated
                # before it may use it again.
                self._invalidate_fast()
            return
        object.__setattr__(self, name, value)

    def _invalidate_fast(self):
        object.__setattr__(self, "_fast", None)
        object.__setattr__(self, "_hp_generation", self._hp_generation + 1)

    def _snapshot(self):
        """(hyperparameter values, state, hyperparameter generation) read
        together: the consistent view that readers work from."""
        with self._locks.snapshot:
            return ({name: getattr(self, name) for name in self._get_param_names()},
                    self._state, self._hp_generation)

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
            if not same_value(value, p.default):
                shown.append(f"{p.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # ------------------------------------------------------------------
    # Tags
    # ------------------------------------------------------------------

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

    # ------------------------------------------------------------------
    # Output containers (set_output)
    # ------------------------------------------------------------------

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
            self._invalidate_fast()
        return self

    def _output_kind(self):
        """The container set by set_output (None: never set)."""
        return self.__dict__.get("_sklearn_output_config", {}).get("transform")

    def _wrap_output(self, H, X, state):
        """H in the container chosen by set_output (or by scikit-learn's
        global ``transform_output`` setting when scikit-learn is loaded)."""
        wrap = getattr(MODULES.get(SET_OUTPUT_MODULE), "_wrap_data_with_container", None)
        if wrap is not None:
            return wrap("transform", H, X, self)
        kind = self._output_kind() or "default"
        if kind == "default":
            return H
        return _container(kind, H, X, self._output_names(state))

    # ------------------------------------------------------------------
    # Feature names
    # ------------------------------------------------------------------

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
        require_fitted(state, type(self).__name__)
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
