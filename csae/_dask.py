"""Dask arrays in and out, and full-batch L-BFGS as a map-reduce on a cluster.

``pip install "csae[dask]"``.  Dask is imported here, and only when a dask
array reaches the estimator: ``import csae`` never imports it.

How a model works on a 2-D dask array chunked by rows (an array chunked
along its columns is rechunked to whole rows first; unknown row-chunk sizes
are fine, and are computed by ``fit``'s validation pass):

* ``transform``, ``inverse_transform``, ``reconstruct`` return lazy dask
  arrays built with ``map_blocks``; ``loss`` and ``score`` a lazy 0-d dask
  array.  The weights travel as one task of the graph (a ``dask.delayed``
  object every block depends on), so they reach each worker once per graph,
  not once per block, and the client never holds the data.
* ``fit`` validates the data in one pass on the workers (per-block row
  counts, the first non-finite row, per-feature minimum and maximum: the
  input range with ``scale_inputs``), then trains on the prepared blocks
  (kept in the workers' memory with ``persist`` when a distributed client
  is running).
* solver="lbfgs": every objective and gradient is a map-reduce over the
  blocks, with the engine on each block, in two passes (the sparsity term
  needs the global mean activation): per-block activation sums, reduced to
  rho_hat; then per-block objective parts and gradients given rho_hat,
  reduced.  The result equals in-memory L-BFGS up to the order of the sums.
  A lost worker loses nothing: Dask recomputes its tasks from the graph.
* solver="sgd"/"adam": the blocks are streamed through the model on the
  client, one block at a time, in a block order drawn from the model's
  random state (what dask-ml's ``Incremental`` does), each block an epoch
  of the engine over its rows (shuffled within the block with ``shuffle``).
"""

import sys

import numpy as np

from csae._blockwise import block_functions, epoch_over_blocks, full_batch
from csae._range import apply_range, unscale

__all__ = ["is_dask_array", "is_dask_collection", "by_rows", "prepare", "inverse_transform",
           "DaskData"]


def is_dask_array(X):
    """True when X is a dask array (without importing dask)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(X, module.Array)


def is_dask_collection(value):
    module = sys.modules.get("dask")
    return module is not None and module.is_dask_collection(value)


def _import():
    try:
        import dask
        import dask.array as da
    except ImportError:  # pragma: no cover - is_dask_array needs dask already
        raise ImportError('dask arrays need dask: pip install "csae[dask]"') from None
    return dask, da


def _distributed_client():
    """The running distributed client, or None (local schedulers)."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import default_client
        return default_client()
    except (ValueError, ImportError):
        return None


def by_rows(X, name="X"):
    """X as a 2-D dask array of real numbers with all columns in each block."""
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D dask array (n_samples, n_features), got "
                         f"{X.ndim}-D with shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {X.dtype}")
    if any(np.isnan(c) for c in X.chunks[1]):
        raise ValueError(f"{name} has unknown column-chunk sizes; call "
                         f"{name}.compute_chunk_sizes() or give the column count")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has no columns")
    if len(X.chunks[1]) > 1:
        # The model reads whole rows: blocks that split the columns would
        # each be read as a narrower data set.
        X = X.rechunk({1: -1})
    return X


# --------------------------------------------------------------------------
# Work sent to the workers.  Each is one object per graph (dask.delayed),
# so its arrays are serialised once, not once per block.
# --------------------------------------------------------------------------

def _backend(name, n_threads):
    from csae._backends import Backend
    from csae._validation import resolve_n_threads
    return Backend(name, resolve_n_threads(n_threads))


def _location(block_info):
    if block_info and 0 in block_info:
        return block_info[0]["chunk-location"][0]
    return None


class _Prepare:
    """Validate a block and convert it for the model (scaling with the
    learned range): what ``csae._data.InMemory`` does to an in-memory array.
    ``within_range``: the block is training data that must lie in the
    learned range (``check_within_learned_range``)."""

    def __init__(self, dtype, n_features, data_min, data_scale, unit_interval,
                 within_range=False, name="X"):
        self.dtype, self.n = np.dtype(dtype), n_features
        self.data_min, self.data_scale = data_min, data_scale
        self.unit_interval, self.within_range = unit_interval, within_range
        self.name = name

    def __call__(self, block, block_info=None):
        from csae._validation import (check_data, check_unit_interval,
                                      check_within_learned_range)
        try:
            if self.data_min is None:
                out = check_data(block, self.dtype, name=self.name, n_features=self.n)
                if self.unit_interval:
                    check_unit_interval(out)
                return out
            X64 = check_data(block, np.dtype(np.float64), name=self.name,
                             n_features=self.n)
            if self.within_range:
                check_within_learned_range(X64.min(axis=0), X64.max(axis=0),
                                           self.data_min, self.data_scale)
            return apply_range(X64, self.data_min, self.data_scale, self.dtype)
        except (ValueError, TypeError) as err:
            where = _location(block_info)
            if where is None:
                raise
            raise type(err)(f"block {where} of {self.name}: {err}") from None


def _check_block(block, n_features, declared, where, name="X"):
    """A block as its dask array declares it: real numbers, 2-D, all the
    columns.  A block is made by the user's code (a parser behind
    ``from_delayed``, a ``map_blocks`` function), which dask does not
    check against the declared dtype and shape."""
    at = f"block {where} of {name}" if where is not None else f"a block of {name}"
    dtype = getattr(block, "dtype", None)
    if dtype is None or dtype.kind not in "biuf":
        got = f"dtype {dtype}" if dtype is not None else type(block).__name__
        raise TypeError(f"{at} holds {got}, but the dask array declares dtype {declared}: "
                        "its blocks must hold real numbers (check the function that "
                        "makes the blocks, e.g. the parser behind dask.array.from_delayed)")
    if block.ndim != 2 or block.shape[1] != n_features:
        raise ValueError(f"{at} has shape {block.shape}, but the dask array declares "
                         f"{n_features} columns: every block must have all of them (check "
                         "the shape given to dask.array.from_delayed, or the function "
                         "that makes the blocks)")


class _Stats:
    """The validation pass on a block: [rows, first non-finite row or -1,
    per-feature min..., max...], after checking the block against the
    dtype and width its dask array declares."""

    def __init__(self, n_features, declared):
        self.n, self.declared = n_features, declared

    def __call__(self, block, block_info=None):
        _check_block(block, self.n, self.declared, _location(block_info))
        return _stats(block)


def _stats(block):
    """[rows, first non-finite row or -1, per-feature min..., max...]."""
    m, n = block.shape
    out = np.empty((1, 2 + 2 * n))
    out[0, 0] = m
    out[0, 1] = -1
    if block.dtype.kind == "f":
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            out[0, 1] = int(np.argmin(finite))
    if m:
        with np.errstate(invalid="ignore"):
            out[0, 2:2 + n] = block.min(axis=0)
            out[0, 2 + n:] = block.max(axis=0)
    else:
        out[0, 2:2 + n], out[0, 2 + n:] = np.inf, -np.inf
    return out


class _Job:
    """A backend call on each block, with the weights travelling once."""

    def __init__(self, backend, n_threads, method, args):
        self.backend, self.n_threads, self.method, self.args = backend, n_threads, method, args

    def __call__(self, block):
        backend = _backend(self.backend, self.n_threads)
        if self.method == "reconstruct":
            params, decoder = self.args
            return backend.reconstruct(params, block, decoder)
        if self.method == "decode":
            Wd, bd, decoder = self.args
            return backend.decode(Wd, bd, block, decoder)
        return getattr(backend, self.method)(*self.args, block)


def _run(block, job):
    return job(block)


class _Sums:
    """Pass 1 on a block: [rows, column sums of the activations]."""

    def __init__(self, backend, n_threads, W, b):
        self.backend, self.n_threads, self.W, self.b = backend, n_threads, W, b

    def __call__(self, block):
        sums_fn, _ = block_functions(_backend(self.backend, self.n_threads))
        out = np.empty((1, 1 + self.W.shape[0]))
        out[0, 0] = block.shape[0]
        out[0, 1:] = sums_fn(self.W, self.b, block) if block.shape[0] else 0.0
        return out


class _Parts:
    """Pass 2 on a block given the reduced pass 1 (row count and sums):
    [part, dW, db, dWd, dbd] flattened (or [part] without gradients)."""

    def __init__(self, backend, n_threads, params, settings, need_gradients, sums):
        self.backend, self.n_threads = backend, n_threads
        self.params, self.settings, self.need_gradients = params, settings, need_gradients
        self.sums = sums

    def __call__(self, block):
        params = self.params
        n_total = int(round(self.sums[0]))
        rho_hat = self.sums[1:] / n_total
        backend = _backend(self.backend, self.n_threads)
        size = 1 + (sum(p.size for p in params) if self.need_gradients else 0)
        out = np.zeros((1, size))
        if block.shape[0] == 0:
            return out
        s = self.settings
        if not self.need_gradients:
            R = backend.reconstruct(params, block, s["decoder"]) - block
            out[0, 0] = float(np.sum(R * R, dtype=np.float64)) / n_total
            return out
        _, part_fn = block_functions(backend)
        with np.errstate(all="ignore"):
            part, grads = part_fn(params, block, rho_hat, n_total, rho=s["rho"],
                                  beta=s["beta"], decoder=s["decoder"])
        out[0, 0] = part
        out[0, 1:] = np.concatenate([g.ravel() for g in grads])
        return out


def _make_parts(backend, n_threads, params, settings, need_gradients, sums):
    return _Parts(backend, n_threads, params, settings, need_gradients, sums)


def _finish(parts, sums, params, settings):
    """The lazy loss: decay and KL added once to the reduced parts."""
    n_total = int(round(sums[0]))
    return np.float64(full_batch(params, n_total, lambda p: sums[1:],
                                 lambda p, q: (parts[0], None), rho=settings["rho"],
                                 beta=settings["beta"], lam=settings["lam"],
                                 need_gradients=False)[0])


def _one_row_per_block(X, width):
    return ((1,) * X.numblocks[0], (width,))


# --------------------------------------------------------------------------
# The prepared data
# --------------------------------------------------------------------------

class DaskData:
    """A dask array as the model sees it: rows validated and converted (and
    scaled) lazily, block by block.  Behaves like the prepared array where
    the training loops use one (``shape``, ``X[:k]``) and does the block
    work behind ``csae._backends.Backend``."""

    _csae_blocks = True

    def __init__(self, prepared, n_rows, n_threads):
        self.prepared = prepared
        self._rows = n_rows
        self.dtype = prepared.dtype
        self.n_threads = n_threads

    @property
    def shape(self):
        """(rows, features); unknown row-chunk sizes are computed (one pass
        over the blocks) the first time the row count is needed."""
        if self._rows is None:
            counts = self.prepared.map_blocks(
                lambda b: np.full((1, 1), b.shape[0], dtype=np.int64), dtype=np.int64,
                meta=np.empty((0, 0), np.int64),
                chunks=_one_row_per_block(self.prepared, 1)).compute()
            self._rows = int(np.asarray(counts).sum())
        return (self._rows, self.prepared.shape[1])

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError("dask data can only be sliced by rows")
        if not any(np.isnan(c) for c in self.prepared.chunks[0]):
            return np.asarray(self.prepared[key].compute())
        # Unknown block sizes: the first blocks, until the slice is covered
        # (the training loops ask for the first rows only).
        if key.stop is None or key.stop < 0 or (key.start or 0) < 0:
            return np.asarray(self.prepared.compute())[key]
        parts, rows = [], 0
        for i in range(self.prepared.numblocks[0]):
            parts.append(np.asarray(self.prepared.blocks[i].compute()))
            rows += parts[-1].shape[0]
            if rows >= key.stop:
                break
        return np.concatenate(parts)[key]

    def _delayed(self, obj):
        dask, _ = _import()
        return dask.delayed(obj, pure=False, traverse=False)

    def map_rows(self, inner, method, args, width, dtype):
        job = self._delayed(_Job(inner.name, self.n_threads, method, args))
        return self.prepared.map_blocks(_run, job, dtype=dtype,
                                        meta=np.empty((0, 0), dtype), chunks=(self.prepared.chunks[0], (width,)))

    def _sums(self, inner, params):
        job = self._delayed(_Sums(inner.name, self.n_threads, params[0], params[1]))
        S = self.prepared.map_blocks(_run, job, dtype=np.float64, meta=np.empty((0, 0)),
                                     chunks=_one_row_per_block(self.prepared,
                                                               1 + params[0].shape[0]))
        return S.sum(axis=0)

    def _parts(self, inner, params, settings, need_gradients, sums):
        dask, _ = _import()
        job = dask.delayed(_make_parts, pure=False)(inner.name, self.n_threads, params,
                                                     settings, need_gradients, sums)
        width = 1 + (sum(p.size for p in params) if need_gradients else 0)
        P = self.prepared.map_blocks(_run, job, dtype=np.float64, meta=np.empty((0, 0)),
                                     chunks=_one_row_per_block(self.prepared, width))
        return P.sum(axis=0)

    def evaluate(self, inner, params, *, rho, beta, lam, decoder="sigmoid",
                 need_gradients=True):
        """With gradients (L-BFGS): both passes computed now, on the
        cluster; the client receives 1 + h, then 1 + 2nh + n + h numbers.
        Without (``loss``): a lazy 0-d dask array."""
        dask, da = _import()
        settings = dict(rho=rho, beta=beta, lam=lam, decoder=decoder)
        if not need_gradients:
            sums = self._sums(inner, params).to_delayed().ravel()[0]
            parts = self._parts(inner, params, settings, False, sums)
            value = dask.delayed(_finish, pure=True)(parts.to_delayed().ravel()[0], sums,
                                                     params, settings)
            return da.from_delayed(value, shape=(), dtype=np.float64)
        sums = np.asarray(self._sums(inner, params).compute())
        total = self._parts(inner, params, settings, True, sums).compute()
        shapes = [p.shape for p in params]
        grads, offset = [], 1
        for shape in shapes:
            size = int(np.prod(shape))
            grads.append(total[offset:offset + size].reshape(shape))
            offset += size
        n_total = int(round(sums[0]))
        return full_batch(params, n_total, lambda p: sums[1:],
                          lambda p, q: (float(total[0]), grads),
                          rho=rho, beta=beta, lam=lam, need_gradients=True)

    def sgd_epoch(self, inner, params, velocity, **hyper):
        """One epoch: the blocks, pulled to the client one at a time in an
        order drawn from ``rng_state`` (file order without shuffle), each
        an engine epoch over its rows."""
        nb = self.prepared.numblocks[0]
        rng_state = hyper.get("rng_state", 0)
        if hyper.get("shuffle") and nb > 1:
            order, rng_state = inner.module.permutation(nb, rng_state)
        else:
            order = range(nb)
        hyper = dict(hyper, rng_state=rng_state)

        def blocks():
            done = 0
            for i in order:
                block = np.ascontiguousarray(self.prepared.blocks[int(i)].compute())
                if block.shape[0]:
                    yield done, done + block.shape[0], block
                    done += block.shape[0]

        # batch_size was capped at the row count by the caller.
        return epoch_over_blocks(inner, params, velocity, blocks(), self.shape[0], hyper)


# --------------------------------------------------------------------------
# Entry points from csae._data and the estimator: values in, values out
# --------------------------------------------------------------------------

def prepare(X, hp, input_range, *, objective, learn, dtype, within_range=False,
            n_threads=None):
    """The dask array X (chunked by rows: ``by_rows``, its width checked)
    prepared for the model; returns ``(DaskData, (data_min, data_scale))``.

    ``learn`` (fit, first partial_fit): one validation pass now, which
    learns the input range with ``hp.scale_inputs``; otherwise a lazy
    ``DaskData`` whose blocks are checked when computed, scaled with
    ``input_range`` (``(data_min, data_scale)``, or None without
    ``scale_inputs``) and, with ``within_range``, checked against it.
    ``n_threads`` is the hyperparameter as given: each worker resolves it.
    """
    unit = objective and hp.decoder == "sigmoid" and not hp.scale_inputs
    if not learn:
        lo, scale = input_range if input_range is not None else (None, None)
        step = _Prepare(dtype, X.shape[1], lo, scale, unit, within_range)
        rows = X.shape[0] if not np.isnan(X.shape[0]) else None
        return (DaskData(X.map_blocks(step, dtype=dtype, meta=np.empty((0, 0), dtype)),
                         rows, n_threads), (None, None))

    _, da = _import()
    nf = X.shape[1]
    stats = np.asarray(X.map_blocks(_Stats(nf, X.dtype), dtype=np.float64,
                                    meta=np.empty((0, 0)),
                                    chunks=_one_row_per_block(X, 2 + 2 * nf)).compute())
    rows = stats[:, 0].astype(np.int64)
    if rows.sum() == 0:
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required: "
                         "X has no rows")
    bad = np.flatnonzero(stats[:, 1] >= 0)
    if bad.size:
        i = int(bad[0])
        row = int(rows[:i].sum() + stats[i, 1])
        raise ValueError(f"Input X contains NaN or inf in block {i} (row {row}); "
                         "remove or impute them first")
    lo = stats[:, 2:2 + nf].min(axis=0)
    hi = stats[:, 2 + nf:].max(axis=0)
    from csae._validation import check_values_in_unit_interval, input_scale
    if unit:
        check_values_in_unit_interval(float(lo.min()), float(hi.max()))
    data_min = data_scale = None
    if hp.scale_inputs:
        data_min, data_scale = lo, input_scale(lo, hi)
    # The row counts are known now: give the array its chunk sizes.
    X = da.Array(X.dask, X.name, (tuple(int(r) for r in rows), X.chunks[1]), meta=X._meta)
    prepared = X.map_blocks(_Prepare(dtype, nf, data_min, data_scale, False), dtype=dtype,
                              meta=np.empty((0, 0), dtype))
    if _distributed_client() is not None:
        # Iterative training reads the blocks many times: keep them prepared
        # in the workers' memory (a lost worker's blocks are recomputed).
        prepared = prepared.persist()
    return DaskData(prepared, int(rows.sum()), n_threads), (data_min, data_scale)


def inverse_transform(H, hp, backend, params, input_range, *, n_threads=None,
                      estimator="SparseAutoencoder"):
    """Lazy decoder output for a dask array of hidden activations, mapped
    back to the input scale.  ``input_range()`` gives ``(data_min,
    data_scale)`` (called, after H is checked, only with
    ``hp.scale_inputs``: it raises when the model has none)."""
    H = by_rows(H, "H")
    h = params[0].shape[0]
    if H.shape[1] != h:
        raise ValueError(f"H has {H.shape[1]} hidden units, but {estimator} is "
                         f"expecting {h} hidden units as input")
    data_min = data_scale = None
    if hp.scale_inputs:
        data_min, data_scale = input_range()
    data = DaskData(H.map_blocks(_Prepare(hp.dtype, h, None, None, False, name="H"),
                                 dtype=hp.dtype,
                                   meta=np.empty((0, 0), hp.dtype)),
                    None, n_threads)
    Y = data.map_rows(backend, "decode", (params[2], params[3], hp.decoder),
                      params[0].shape[1], hp.dtype)
    return unscale(Y, hp, data_min, data_scale)
