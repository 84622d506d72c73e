"""What ``fit`` and ``partial_fit`` decide before and around the solvers,
on values: the starting state (fresh weights, or a warm start), the
held-out rows of early stopping, the solver, and the transaction that
decides what the model keeps.

The estimator takes its lock and one snapshot (validated hyperparameters,
their raw values, the old state), calls ``fit_state`` or
``partial_fit_state`` with the data source ``csae._data.source(X)`` made
once, and publishes the state that comes back (None: the old one stays).
Nothing here reads or changes the estimator.

``stacklevel`` counts as in ``csae._training``: from the function that
warns to the user's line.
"""

import numpy as np

from csae._backends import Backend
from csae._state import ORIGIN_TRAINED, ModelState, frozen
from csae._training import Transaction, train, validation_split
from csae._validation import derive_seed

__all__ = ["fit_state", "partial_fit_state", "initial_params"]


def initial_params(backend, n_features, hp, seed):
    """``(params, rng_state)``: fresh frozen weights of ``n_features``
    inputs and ``hp.n_hidden`` units drawn from ``seed``, and the
    SplitMix64 state after them; ValueError when they cannot exist."""
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


def _continued(source, hp, raw, old, *, estimator, train, stacklevel):
    """(the state to continue from, prepared X) on a model that has
    weights (a warm start, or partial_fit after the first call): X checked
    against them, the input range learned only if the model has none."""
    learn = hp.scale_inputs and old.data_min is None
    Xc, (data_min, scale) = source.prepare(hp, old, objective=True, learn=learn, train=train,
                                           estimator=estimator, n_threads=raw["n_threads"],
                                           stacklevel=stacklevel + 1)
    start = old
    if old.rng_state is None:  # weights assigned by hand, or loaded without one
        start = start._replace(rng_state=derive_seed(raw["random_state"]))
    if learn:
        start = start._replace(data_min=frozen(data_min), data_scale=frozen(scale))
    return start, Xc


def _run(backend, X, hp, start, old, *, n_epochs, fit, X_val, hook, stacklevel):
    """The transaction around one solver run: the Outcome whose state (None:
    keep the old one) the estimator publishes."""
    stacklevel += 1  # counted from the functions called below
    transaction = Transaction(backend, X, hp, old, start)
    outcome = transaction.begin(stacklevel=stacklevel)
    if outcome is None:
        # fit: the stopping rule and the end-of-fit checks; partial_fit: neither.
        outcome = train(backend, X, hp, start, n_epochs, stacklevel=stacklevel,
                        reference=transaction.reference, X_val=X_val, stopping=fit,
                        hook=hook)
        outcome = transaction.settle(outcome, stacklevel=stacklevel)
    return outcome


def fit_state(source, hp, raw, old, *, estimator, hook=None, on_rows=None, stacklevel):
    """``fit`` on values: returns ``(prepared X, backend, Outcome)``.

    ``source`` is ``csae._data.source(X)``; ``raw`` the hyperparameters as
    given (``random_state``, ``n_threads``); ``old`` the model's state.
    ``hook(epoch, objective, validation, seconds)`` is called after each
    epoch, and ``on_rows(done)`` with the rows of the epoch done so far
    after each chunk of a memory-mapped file's SGD/Adam epoch (the command
    line's progress display)."""
    backend = Backend(hp.backend, hp.n_threads)
    warm = hp.warm_start and old.params is not None
    if warm:
        h = old.params[0].shape[0]
        if h != hp.n_hidden:
            raise ValueError(f"warm_start=True continues from weights with {h} hidden "
                             f"units, but n_hidden={hp.n_hidden}; set n_hidden={h} or "
                             "warm_start=False")
        start, Xc = _continued(source, hp, raw, old, estimator=estimator, train=True,
                               stacklevel=stacklevel + 1)
        start = start._replace(origin=ORIGIN_TRAINED)
    else:
        Xc, (data_min, scale) = source.prepare(hp, old, objective=True, learn=True,
                                               check_n=False, estimator=estimator,
                                               n_threads=raw["n_threads"])
    X_train, X_val = Xc, None
    if on_rows is not None and source.blocks and hasattr(Xc, "on_rows"):
        Xc.on_rows = on_rows
    seed = derive_seed(raw["random_state"])
    if hp.early_stopping and source.blocks:
        # The held-out rows are drawn at random, which block data (read
        # chunk by chunk, or on a cluster) cannot hand out.
        raise ValueError(
            "early_stopping=True needs X in memory; with a memory-mapped "
            "file or a dask array, hold out validation rows yourself and "
            "set early_stopping=False")
    if hp.early_stopping:
        # Checked before any weight is made: too few rows is an error.
        train_rows, val_rows = validation_split(Xc.shape[0], hp.validation_fraction, seed)
        X_train, X_val = Xc[train_rows], Xc[val_rows]
    if not warm:
        params, rng_state = initial_params(backend, Xc.shape[1], hp, seed)
        # Everything checked; train a new state aside from the old one.
        start = ModelState(params=params, rng_state=rng_state,
                           data_min=None if data_min is None else frozen(data_min),
                           data_scale=None if scale is None else frozen(scale),
                           origin=ORIGIN_TRAINED, feature_names=source.feature_names())
    outcome = _run(backend, X_train, hp, start, old, n_epochs=hp.max_epochs, fit=True,
                   X_val=X_val, hook=hook, stacklevel=stacklevel + 1)
    return Xc, backend, outcome


def partial_fit_state(source, hp, raw, old, *, estimator, stacklevel):
    """``partial_fit`` on values: one epoch of SGD or Adam from ``old`` (or
    from fresh weights); returns the Outcome."""
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
    if old.params is not None:
        start, Xc = _continued(source, hp, raw, old, estimator=estimator, train=True,
                               stacklevel=stacklevel + 1)
    else:  # the first call: fresh weights, and the input range learned from X
        learn = hp.scale_inputs and old.data_min is None
        Xc, (data_min, scale) = source.prepare(hp, old, objective=True, learn=learn,
                                               train=True, estimator=estimator,
                                               n_threads=raw["n_threads"])
        params, rng_state = initial_params(backend, Xc.shape[1], hp,
                                           derive_seed(raw["random_state"]))
        start = ModelState(params=params, rng_state=rng_state, origin=ORIGIN_TRAINED,
                           feature_names=source.feature_names())
        if learn:
            start = start._replace(data_min=frozen(data_min), data_scale=frozen(scale))
    return _run(backend, Xc, hp, start, old, n_epochs=1, fit=False, X_val=None, hook=None,
                stacklevel=stacklevel + 1)
