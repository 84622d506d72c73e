"""Training and using a model on data read in row blocks.

A memory-mapped array (``np.memmap``, ``np.load(path, mmap_mode="r")``) larger
than ``CHUNK_BYTES`` is never read whole: every pass over it (validation,
learning the input range, an SGD/Adam epoch, each L-BFGS evaluation,
transform) reads one chunk of rows at a time, and the pages of the mapping
are handed back to the kernel after each chunk, so the process's resident
set stays near weights + engine workspace + one chunk whatever the file
size (mapped pages of a file count in the resident set until released).

``ChunkedData`` is the prepared data (``csae._data.MemoryMapped`` returns it
instead of an array).  ``csae._backends.Backend`` hands it the calls it gets
with it as X (``map_rows``, ``evaluate``, ``sgd_epoch``), so the training
loops and the transforms call the backend exactly as on an in-memory array:

* ``sgd_epoch`` draws the epoch's row order from the engine (as the
  in-memory epoch does), gathers the rows of a whole number of minibatches
  at a time in that order and runs the engine's epoch on them without
  shuffling: the same minibatches, in the same order, with the same
  arithmetic, so the weights equal those of the in-memory epoch;
* ``objective_and_gradients`` is the full-batch objective in two passes
  (``full_batch``): the per-block activation sums, added up to the global
  mean activation rho_hat, then the per-block objective parts and gradients
  given that rho_hat, added up, plus the weight decay and the KL term once.
  It equals the in-memory objective up to the order of the sums.

``full_batch`` takes the two passes as functions, so the dask module runs
the same arithmetic as a map-reduce over the blocks of a dask array.
"""

import math
import mmap
import os
import weakref

import numpy as np

from csae._errors import NonFiniteError
from csae._validation import (
    check_values_in_unit_interval,
    check_within_learned_range,
    input_scale,
)
from csae.reference import rho_hat_clip

__all__ = ["CHUNK_BYTES", "is_out_of_core", "ChunkedData", "full_batch",
           "block_functions", "prepare"]

# Rows are read this many bytes at a time (of the file's dtype).  Chosen so
# that a chunk is large against the per-call overhead of the engine (a few
# microseconds; a chunk of 1 KiB rows is 16384 of them) and small against
# any machine's memory: the engine's workspace for a chunk is of the same size.
CHUNK_BYTES = 16 * 2**20
# On a fault in a file mapping the kernel also maps the cached pages around
# it, up to 64 KiB ("fault-around"): a row read at random may map that much.
_FAULT_AROUND = 65536


def is_out_of_core(X):
    """True for a memory-mapped 2-D array larger than one chunk: the data
    that is read in chunks instead of as one array."""
    return (isinstance(X, np.memmap) and X.ndim == 2 and X.dtype.kind in "biuf"
            and X.nbytes > CHUNK_BYTES)


def _release(X):
    """Hand the mapped pages of ``X``'s file back to the kernel (they stay in
    the page cache, so a later read costs no disk access).  Only for shared
    mappings: the private pages of a copy-on-write mapping (mode "c") would
    lose what was written to them."""
    mm = getattr(X, "_mmap", None)
    if (mm is None or getattr(X, "mode", None) not in ("r", "r+", "readonly", "readwrite")
            or not hasattr(mmap, "MADV_DONTNEED")):
        return
    try:
        mm.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # closed or not supported: only memory is at stake
        pass


# The full-batch passes read quarter chunks: the engine's workspace for a
# block of the objective is two to three times the block (activations,
# reconstructions, their derivatives), and a quarter keeps the whole of it
# near one chunk.  A quarter chunk is still thousands of rows.
_EVALUATION_FRACTION = 4


def chunk_rows(X, batch_size=1, fraction=1):
    """Rows per chunk: about CHUNK_BYTES / fraction of X, a whole number of
    minibatches."""
    row_bytes = max(1, X.shape[1] * X.dtype.itemsize)
    rows = max(1, CHUNK_BYTES // fraction // row_bytes)
    return max(batch_size, rows // batch_size * batch_size)


def _scan(X, *, name, need_range, unit_interval):
    """One streamed pass over the memory-mapped X: finiteness, the [0, 1]
    check of the sigmoid decoder and (``need_range``) the per-feature
    minimum and maximum in float64.  Raises ValueError naming the rows."""
    lo = hi = None
    step = chunk_rows(X)
    floating = X.dtype.kind == "f"
    for start in range(0, X.shape[0], step):
        stop = min(start + step, X.shape[0])
        chunk = X[start:stop]
        try:
            if floating and not np.isfinite(chunk).all():
                bad = start + int(np.argmax(~np.isfinite(chunk).all(axis=1)))
                raise ValueError(f"Input {name} contains NaN or inf (first in row {bad}); "
                                 "remove or impute them first")
            if need_range or unit_interval:
                cmin = chunk.min(axis=0).astype(np.float64)
                cmax = chunk.max(axis=0).astype(np.float64)
                lo = cmin if lo is None else np.minimum(lo, cmin)
                hi = cmax if hi is None else np.maximum(hi, cmax)
        finally:
            _release(X)
    if unit_interval:
        check_values_in_unit_interval(float(lo.min()), float(hi.max()))
    return lo, hi


class ChunkedData:
    """A memory-mapped data set as the model sees it: validated, read in
    chunks of rows, each converted to the model dtype (and mapped by the
    learned input range with ``scale_inputs``) when it is read.

    Behaves like the prepared array where the training loops use one:
    ``shape``, ``dtype``, ``X[:k]`` (the first k prepared rows).
    """

    def __init__(self, X, dtype, data_min=None, data_scale=None):
        self.raw = X
        self.dtype = np.dtype(dtype)
        self.shape = X.shape
        self.data_min, self.data_scale = data_min, data_scale
        # ``on_rows(done)``, called after each chunk of an SGD/Adam epoch with
        # the rows of the epoch done so far (the command line's progress bar).
        self.on_rows = None
        # The mapped file itself, for reading scattered rows with pread (see
        # _gather), or None: read them through the mapping.
        self._file = _MappedFile.of(X)

    def _convert(self, rows):
        if self.data_min is None:
            with np.errstate(over="ignore"):
                out = np.ascontiguousarray(rows, dtype=self.dtype)
            if out.dtype.kind == "f" and rows.dtype != self.dtype and not np.isfinite(out).all():
                raise ValueError(f"Input X has values too large for {self.dtype.name} "
                                 "(they overflow to inf); rescale the data or use "
                                 "dtype='float64'")
            return out
        # (X - min) / scale in float64, as the in-memory path computes it,
        # in place in one float64 copy of the chunk.
        out = np.array(rows, dtype=np.float64)
        out -= self.data_min
        out /= self.data_scale
        out = np.ascontiguousarray(out, dtype=self.dtype)
        if not np.isfinite(out).all():
            raise ValueError("X scaled by the learned input range overflows "
                             f"{self.dtype.name}; its values are far outside the range "
                             "seen in fit")
        return out

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError("out-of-core data can only be sliced by rows")
        rows = self.raw[key]
        try:
            return np.array(self._convert(rows), copy=True)
        finally:
            _release(self.raw)

    _csae_blocks = True

    def map_rows(self, inner, method, args, width, dtype):
        """``inner.<method>(*args, block)`` (or with the block second, for
        reconstruct) of every chunk, gathered into one (m, width) array."""
        out = np.empty((self.shape[0], width), dtype=dtype)
        for start, stop, block in self._checked_blocks():
            if method == "reconstruct":
                out[start:stop] = inner.reconstruct(args[0], block, args[1])
            else:
                out[start:stop] = getattr(inner, method)(*args, block)
        return out

    def _checked_blocks(self):
        """``blocks()`` for map_rows, each read into memory once and checked
        finite there.  The validation pass read the file before; a file
        changed since (NaN or inf written into the mapping) is refused, and
        the engine computes on the checked copy, so no later change can slip
        between the check and the encoding."""
        step = chunk_rows(self.raw)
        for start in range(0, self.shape[0], step):
            stop = min(start + step, self.shape[0])
            try:
                rows = np.array(self.raw[start:stop], copy=True)
            finally:
                _release(self.raw)
            _check_unchanged(rows, start)
            yield start, stop, self._convert(rows)

    def evaluate(self, inner, params, *, rho, beta, lam, decoder="sigmoid",
                 need_gradients=True):
        """The full-batch objective (and gradients) in two passes."""
        sums_fn, part_fn = block_functions(inner)
        m = self.shape[0]

        def blocks():
            return self.blocks(fraction=_EVALUATION_FRACTION, recheck=True)

        def sums_pass(p):
            total = np.zeros(p[0].shape[0])
            for _, _, block in blocks():
                total += sums_fn(p[0], p[1], block)
            return total

        def parts_pass(p, rho_hat):
            if not need_gradients:  # the reconstruction error alone
                total = 0.0
                for _, _, block in blocks():
                    R = inner.reconstruct(p, block, decoder) - block
                    total += float(np.sum(R * R, dtype=np.float64)) / m
                return total, None
            return add_parts(part_fn(p, block, rho_hat, m, rho=rho, beta=beta,
                                     decoder=decoder) for _, _, block in blocks())

        with np.errstate(all="ignore"):
            result = full_batch(params, m, sums_pass, parts_pass, rho=rho, beta=beta,
                                lam=lam, need_gradients=need_gradients)
        return result if need_gradients else result[0]

    def sgd_epoch(self, inner, params, velocity, **hyper):
        """One epoch in the engine's row order (the in-memory epoch's), a
        whole number of minibatches per chunk, without reshuffling."""
        order = None
        rng_state = hyper.get("rng_state", 0)
        if hyper.get("shuffle"):
            order, rng_state = inner.module.permutation(self.shape[0], rng_state)
        batch_size = int(hyper["batch_size"])
        loss, _ = epoch_over_blocks(inner, params, velocity,
                                    self._counted(self.blocks(batch_size, order,
                                                              recheck=True)),
                                    self.shape[0], dict(hyper, shuffle=False))
        return loss, rng_state

    def _counted(self, blocks):
        """``blocks``, reporting the rows done to ``on_rows`` once each block
        has been trained on (when the consumer asks for the next one)."""
        for start, stop, block in blocks:
            yield start, stop, block
            if self.on_rows is not None:
                self.on_rows(stop)

    def blocks(self, batch_size=1, order=None, fraction=1, recheck=False):
        """Yield ``(start, stop, block)``: the prepared rows start:stop of
        the data (or of the row order ``order``), about CHUNK_BYTES /
        fraction at a time, a whole number of ``batch_size`` minibatches.  A
        block is only valid until the next one is read.  ``recheck``: check
        each chunk read for NaN/inf again (training and the objective), on
        a copy (as ``_checked_blocks``), so that the engine computes on what
        was checked."""
        m = self.shape[0]
        step = chunk_rows(self.raw, batch_size, fraction)
        for start in range(0, m, step):
            stop = min(start + step, m)
            try:
                if order is None:
                    rows = self.raw[start:stop]
                    if recheck:
                        rows = np.array(rows, copy=True)
                else:
                    rows = self._gather(order[start:stop])  # a copy already
                if recheck:
                    _check_unchanged(rows, start, order)
                yield start, stop, self._convert(rows)
            finally:
                _release(self.raw)

    def _gather(self, index):
        """The rows ``index`` (scattered over the file) in that order.

        Read with one ``pread`` per row from the mapped file itself when
        ``_MappedFile`` found it: a page fault per row through the mapping
        costs several times more, and each may map 64 KiB of the file
        ("fault-around").  Otherwise through the mapping, releasing its
        pages every CHUNK_BYTES / 64 KiB rows."""
        X = self.raw
        out = np.empty((len(index), X.shape[1]), dtype=X.dtype)
        if self._file is not None:
            self._file.read_rows(index, out)
            return out
        row_bytes = X.shape[1] * X.dtype.itemsize
        piece = max(1, CHUNK_BYTES // max(row_bytes, _FAULT_AROUND))
        for i in range(0, len(index), piece):
            np.take(X, index[i:i + piece], axis=0, out=out[i:i + piece])
            _release(X)
        return out


def changed_message(row, what="the memory-mapped file changed while csae read it"):
    """The one message for data that turned NaN/inf after validation."""
    return (f"Input X contains NaN or inf (first in row {row}) that were not there "
            f"when it was validated: {what}")


def _check_unchanged(rows, start, order=None):
    """Raise ValueError if the rows read (rows ``start:`` of the data, or of
    the row order ``order``) hold NaN or inf: the data was validated at the
    start of the call, so it changed since (and no step size is to blame).
    A training call raising it leaves the model as it was."""
    if rows.dtype.kind != "f" or np.isfinite(rows).all():
        return
    k = int(np.argmax(~np.isfinite(rows).all(axis=1)))
    row = int(order[start + k]) if order is not None else start + k
    raise ValueError(changed_message(row))


class _MappedFile:
    """The file a memory-mapped array maps, open for ``pread``.

    The file is opened by its name once, when the data is prepared, and kept
    only if it is the very file the mapping holds (same device, inode and
    file position of row 0 in ``/proc/self/maps``); the descriptor then
    reads that file whatever happens to the name later (``os.replace``
    putting another file there, an unlink).  Without ``/proc`` (not Linux),
    or when the name already points at another file, rows are read through
    the mapping.  Not for copy-on-write mappings (mode "c"), whose pages may
    differ from the file.
    """

    def __init__(self, fd, first, stride, row_bytes):
        self.fd, self.first, self.stride, self.row_bytes = fd, first, stride, row_bytes
        self._closer = weakref.finalize(self, os.close, fd)

    @classmethod
    def of(cls, X):
        """A ``_MappedFile`` for X's rows, or None (read through the mapping)."""
        located = _file_rows(X)
        if located is None:
            return None
        path, first, stride = located
        mapped = _mapping_of(X.ctypes.data)
        if mapped is None or mapped[3] != first:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:  # gone or unreadable by now: the mapping still reads
            return None
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        if (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) != mapped[:3]:
            os.close(fd)  # the name points at another file than the mapping
            return None
        return cls(fd, first, stride, X.shape[1] * X.dtype.itemsize)

    def read_rows(self, index, out):
        """Rows ``index`` into ``out`` (C-contiguous, the file's dtype)."""
        row_bytes = self.row_bytes
        view = memoryview(out.reshape(-1).view(np.uint8))
        for k, r in enumerate(index.tolist()):
            got = os.preadv(self.fd, [view[k * row_bytes:(k + 1) * row_bytes]],
                            self.first + r * self.stride)
            if got != row_bytes:
                raise ValueError(
                    f"Input X has no row {r} any more: the memory-mapped file changed "
                    "while csae read it (it is shorter than when it was mapped)")


def _mapping_of(address):
    """``(device major, device minor, inode, file position)`` of the byte at
    ``address`` of this process's memory, from ``/proc/self/maps``; None
    where that file does not exist or the address is not in a file mapping."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            for line in maps:
                fields = line.split(None, 5)
                low, high = (int(x, 16) for x in fields[0].split(b"-"))
                if low <= address < high:
                    major, minor = (int(x, 16) for x in fields[3].split(b":"))
                    inode = int(fields[4])
                    return (major, minor, inode, int(fields[2], 16) + address - low) \
                        if inode else None
    except (OSError, ValueError, IndexError):
        return None
    return None


def _file_rows(X):
    """``(path, file position of row 0, row stride)`` when the rows of the
    memory-mapped X can be read from its file directly, else None.  Not for
    copy-on-write mappings (mode "c"), whose pages may differ from the file."""
    mm, path = getattr(X, "_mmap", None), getattr(X, "filename", None)
    if (mm is None or path is None or not hasattr(os, "preadv")
            or getattr(X, "mode", None) not in ("r", "r+", "readonly", "readwrite")
            or X.ndim != 2 or X.strides[1] != X.dtype.itemsize or X.strides[0] < 0
            or not X.dtype.isnative):
        return None
    try:
        base = np.frombuffer(mm, np.uint8).ctypes.data
    except (TypeError, ValueError):  # a closed mapping
        return None
    # np.memmap maps the file from its offset rounded down to the allocation
    # granularity (and views keep the offset of the array they come from).
    start = X.offset - X.offset % mmap.ALLOCATIONGRANULARITY
    return os.fspath(path), start + (X.ctypes.data - base), X.strides[0]


def prepare(X, hp, *, objective, learn=False, data_min=None, data_scale=None,
            within_range=False):
    """``ChunkedData`` for the memory-mapped X after one streamed validation
    pass (which also learns the input range when ``learn``, and with
    ``within_range`` checks X against the range ``data_min``, ``data_scale``
    learned before).  Returns ``(data, (data_min, data_scale))`` when
    ``learn``, else ``data``."""
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X has shape {X.shape}: it needs at least one row and one column")
    unit = objective and hp.decoder == "sigmoid" and not hp.scale_inputs
    lo, hi = _scan(X, name="X", need_range=(learn and hp.scale_inputs) or within_range,
                   unit_interval=unit)
    if within_range:
        check_within_learned_range(lo, hi, data_min, data_scale)
    if learn and hp.scale_inputs:
        data_min, data_scale = lo, input_scale(lo, hi)
    data = ChunkedData(X, hp.dtype, data_min if hp.scale_inputs else None,
                       data_scale if hp.scale_inputs else None)
    if learn:
        return data, ((data_min, data_scale) if hp.scale_inputs else (None, None))
    return data


# --------------------------------------------------------------------------
# The full-batch objective from row blocks
# --------------------------------------------------------------------------

def block_functions(backend):
    """``(activation_sums, objective_part)`` of a backend: its own methods
    when it has them (the C engine's, threaded), else the reference's."""
    from csae import reference
    sums = getattr(backend, "activation_sums", None)
    part = getattr(backend, "objective_part", None)
    module = getattr(backend, "module", None)
    if sums is None:
        sums = getattr(module, "activation_sums", None) or _in_pieces(
            reference.activation_sums, 2, add=lambda a, b: a + b)
    if part is None:
        part = getattr(module, "objective_part", None) or _in_pieces(
            reference.objective_part, 1,
            add=lambda a, b: (a[0] + b[0], tuple(x + y for x, y in zip(a[1], b[1]))))
    return sums, part


# The reference makes about ten temporaries of a block's size; it is given
# blocks in eighths so that its memory stays near one chunk's.
_REFERENCE_PIECES = 8


def _in_pieces(function, index, add):
    """``function`` applied to row slices of its positional argument
    ``index`` (X), results added (the block functions are sums over rows)."""
    def call(*args, **kwargs):
        X = args[index]
        step = max(1, -(-X.shape[0] // _REFERENCE_PIECES))
        total = None
        for start in range(0, X.shape[0], step):
            piece = list(args)
            piece[index] = X[start:start + step]
            result = function(*piece, **kwargs)
            total = result if total is None else add(total, result)
        return total
    return call


def full_batch(params, n_total, sums_pass, parts_pass, *, rho, beta, lam,
               need_gradients=True):
    """The full-batch objective (and gradients) from the two passes.

    ``sums_pass(params)`` returns the float64 column sums of the hidden
    activations over all rows; ``parts_pass(params, rho_hat)`` returns the
    summed ``(part, grads)`` of ``objective_part`` over all blocks (grads
    may be float64).  Adds the weight decay and the KL term once.  Returns
    ``(L, grads in the model dtype)``.
    """
    W, _, Wd, _ = params
    dtype = W.dtype
    rho_hat = np.asarray(sums_pass(params), dtype=np.float64) / n_total
    total, grads = parts_pass(params, rho_hat)
    eps = rho_hat_clip(dtype)
    q = np.clip(rho_hat, eps, 1 - eps)
    kl = float(np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))))
    W64, Wd64 = W.astype(np.float64), Wd.astype(np.float64)
    loss = float(total) + lam * float(np.sum(W64 * W64) + np.sum(Wd64 * Wd64)) + beta * kl
    if not need_gradients:
        return loss, None
    grads = [np.asarray(g, dtype=np.float64) for g in grads]
    grads[0] = grads[0] + (2 * lam) * W64
    grads[2] = grads[2] + (2 * lam) * Wd64
    return loss, tuple(np.ascontiguousarray(g, dtype=dtype) for g in grads)


def add_parts(results):
    """Sum ``(part, grads)`` pairs, the gradients in float64."""
    total, acc = 0.0, None
    for part, grads in results:
        total += float(part)
        if acc is None:
            acc = [np.array(g, dtype=np.float64) for g in grads]
        else:
            for a, g in zip(acc, grads):
                a += g
    return total, acc


def epoch_over_blocks(inner, params, velocity, blocks, m, hyper):
    """One SGD/Adam epoch as consecutive engine epochs over ``blocks``
    (``(start, stop, block)`` triples, each a whole number of minibatches
    except the last), continuing the Adam and running-sparsity counters
    from block to block.  Returns (row-weighted epoch loss, rng_state)."""
    batch_size = int(hyper["batch_size"])
    hyper = dict(hyper)
    total = 0.0
    first_batch = 0
    for start, stop, block in blocks:
        try:
            loss, rng_state = inner.sgd_epoch(params, velocity, block, **hyper)
        except NonFiniteError as err:
            if getattr(err, "batch", None) is not None:
                err.batch += first_batch
            raise
        hyper["rng_state"] = rng_state
        total += float(loss) * (stop - start)
        # The counters the next block continues from (CONTRACT 1: the
        # caller advances them by the minibatches of the call).
        n_batches = math.ceil((stop - start) / batch_size)
        first_batch += n_batches
        for key in ("adam_t", "running_batches"):
            if key in hyper:
                hyper[key] = int(hyper[key]) + n_batches
    return total / m, hyper.get("rng_state", 0)
