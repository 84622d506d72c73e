"""One data source per call: ``X`` in memory, memory-mapped, or a dask array.

``source(X)`` looks at X once and returns the source that knows how to
validate that kind of data, learn its input range and hand the training and
using code what it reads rows from:

``InMemory``
    any array-like or DataFrame; validated and converted into one
    C-contiguous array of the model dtype (checked against the column names
    seen in fit).
``MemoryMapped``
    an ``np.memmap`` (or a view of one) larger than one chunk; one streamed
    validation pass, then ``csae._blockwise.ChunkedData``, which reads it
    chunk by chunk.
``Dask``
    a dask array; ``csae._dask.DaskData``, validated block by block on the
    workers.

Every source's ``prepare`` takes values (the validated hyperparameters, the
model's immutable state) and returns ``(data, (data_min, data_scale))``: the
learned input range when asked to learn it, else ``(None, None)``.  The
estimator calls ``prepare`` once per call; nothing below it decides again
which kind of data it holds (the backends ask the prepared data itself,
``_csae_blocks``, whether to work block by block).
"""

import dataclasses

import numpy as np

from csae import _blockwise, _dask
from csae._base import check_feature_names
from csae._range import apply_range, learn_range, learned_range
from csae._validation import (
    _is_dataframe,
    check_data,
    check_frame_columns,
    check_unit_interval,
    check_within_learned_range,
    feature_names_of,
)

__all__ = ["source", "InMemory", "MemoryMapped", "Dask"]


class _Source:
    """What every source shares: the raw X, and the arguments of a call."""

    # True when the prepared data is read block by block (memory-mapped
    # chunks, dask blocks): such data cannot hand out rows drawn at random,
    # as early stopping's held-out set needs.
    blocks = False

    def __init__(self, X):
        self.X = X

    def feature_names(self):
        """String column names of X (a DataFrame's), else None."""
        return feature_names_of(self.X)

    def prepare(self, hp, state, *, objective, learn=False, dtype=None, check_n=True,
                train=False, estimator="SparseAutoencoder", n_threads=None, stacklevel=2):
        """X validated (and, with scale_inputs, scaled) for the backend, in
        ``dtype`` (default: the model dtype); X itself is never modified.

        ``objective``: X is a reconstruction target (training, loss), so the
        sigmoid decoder needs it in [0, 1].  ``learn``: learn the input range
        from X.  ``check_n``: X must have the number of features of the
        state's weights (off for ``fit``).  ``train``: X is training data;
        with scale_inputs, the sigmoid decoder and a range learned before, X
        must lie in that range (``loss`` and ``score`` accept held-out data
        a little outside it).  ``n_threads``: the hyperparameter as given
        (dask hands it to its workers).  ``stacklevel``: where the user's
        line is, counted from this method (for the feature-name warnings).

        Returns ``(data, (data_min, data_scale))``, the range learned when
        ``learn``, else ``(None, None)``.
        """
        dtype = hp.dtype if dtype is None else dtype
        n = state.params[0].shape[1] if check_n and state.params is not None else None
        within = train and not learn and hp.scale_inputs and hp.decoder == "sigmoid"
        return self._prepare(hp, state, objective, learn, dtype, n, within, estimator,
                             n_threads, stacklevel + 1)

    def _check_width(self, X, n, estimator):
        if n is not None and X.shape[1] != n:
            raise ValueError(f"X has {X.shape[1]} features, but {estimator} "
                             f"is expecting {n} features as input")


class InMemory(_Source):
    """Data NumPy can hold: checked, converted (and scaled) in one pass."""

    def _prepare(self, hp, state, objective, learn, dtype, n, within, estimator, n_threads,
                 stacklevel):
        X = self.X
        if n is not None:
            if _is_dataframe(X):  # a non-numeric column is named before names are compared
                check_frame_columns(X, "X")
            check_feature_names(feature_names_of(X), state.feature_names, estimator,
                                stacklevel)
        if not hp.scale_inputs:
            Xc = check_data(X, dtype, n_features=n)
            if objective and hp.decoder == "sigmoid":
                check_unit_interval(Xc)
            return Xc, (None, None)
        # Scale in float64 whatever the model dtype, then convert.
        X64 = check_data(X, np.dtype(np.float64), n_features=n)
        if learn:
            data_min, scale = learn_range(X64)
            return apply_range(X64, data_min, scale, dtype), (data_min, scale)
        data_min, scale = learned_range(state)
        if within:
            check_within_learned_range(X64.min(axis=0), X64.max(axis=0), data_min, scale)
        return apply_range(X64, data_min, scale, dtype), (None, None)


class MemoryMapped(_Source):
    """A memory-mapped file larger than one chunk: one streamed validation
    pass, and a ``ChunkedData`` that reads it chunk by chunk (see
    csae._blockwise)."""

    blocks = True

    def feature_names(self):
        return None

    def _prepare(self, hp, state, objective, learn, dtype, n, within, estimator, n_threads,
                 stacklevel):
        X = self.X
        self._check_width(X, n, estimator)
        if dtype != hp.dtype:  # (check_gradients asks for float64 data)
            hp = dataclasses.replace(hp, dtype=dtype)
        if learn:
            return _blockwise.prepare(X, hp, objective=objective, learn=True)
        data_min = scale = None
        if hp.scale_inputs:
            data_min, scale = learned_range(state)
        return _blockwise.prepare(X, hp, objective=objective, data_min=data_min,
                                  data_scale=scale, within_range=within), (None, None)


class Dask(_Source):
    """A dask array: blocks validated and converted on the workers
    (csae._dask)."""

    blocks = True

    def feature_names(self):
        return None

    def _prepare(self, hp, state, objective, learn, dtype, n, within, estimator, n_threads,
                 stacklevel):
        X = _dask.by_rows(self.X)
        self._check_width(X, n, estimator)
        input_range = None
        if hp.scale_inputs and not learn:
            input_range = learned_range(state)
        return _dask.prepare(X, hp, input_range, objective=objective, learn=learn,
                             dtype=dtype, within_range=within, n_threads=n_threads)


def source(X):
    """The source for X, chosen once: memory-mapped (larger than one
    chunk), dask, or in memory."""
    if _blockwise.is_out_of_core(X):
        return MemoryMapped(X)
    if _dask.is_dask_array(X):
        return Dask(X)
    return InMemory(X)
