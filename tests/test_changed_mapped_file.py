"""A memory-mapped file that turns non-finite after csae validated it.

``transform`` (and ``reconstruct``) of a memory-mapped file first scans it
(finite values), then reads it chunk by chunk.  Bytes written into the file
between the two, here deterministically right after the scan, must give a
clear ValueError (docs/guarantees.md), never numbers: before, a NaN became
rows of 1.0 on the vector kernel paths.
"""

import numpy as np
import pytest

import csae._blockwise as blockwise
from csae import SparseAutoencoder


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(blockwise, "CHUNK_BYTES", 4096)


def poison_after_scan(monkeypatch, path, row, value):
    """Let the validation pass run, then write ``value`` into X[row, 2] of
    the file at ``path`` (through another mapping of the same pages)."""
    scan = blockwise._scan

    def scan_then_change(X, **kw):
        out = scan(X, **kw)
        writer = np.load(path, mmap_mode="r+")
        writer[row, 2] = value
        writer.flush()
        del writer
        return out

    monkeypatch.setattr(blockwise, "_scan", scan_then_change)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("settings", [dict(), dict(dtype="float32"), dict(scale_inputs=True)],
                         ids=["float64", "float32", "scaled"])
@pytest.mark.parametrize("backend", ["c", "python"])
@pytest.mark.parametrize("method", ["transform", "reconstruct"])
def test_values_turned_non_finite_after_validation_are_refused(
        small_chunks, tmp_path, monkeypatch, value, settings, backend, method):
    X = np.random.default_rng(1).random((500, 12))
    path = tmp_path / "x.npy"
    np.save(path, X)
    model = SparseAutoencoder(n_hidden=5, solver="sgd", max_epochs=1, random_state=0,
                              backend=backend, **settings).fit(X)
    Xm = np.load(path, mmap_mode="r")
    assert blockwise.is_out_of_core(Xm)
    poison_after_scan(monkeypatch, path, 417, value)
    with pytest.raises(ValueError, match=r"NaN or inf \(first in row 417\).*changed"):
        getattr(model, method)(Xm)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_a_small_mapping_changed_after_validation_gives_nan_rows(tmp_path, monkeypatch,
                                                                 kernel_path, backend):
    """A mapping within one chunk is validated as a whole and then encoded
    from the mapping itself: a NaN written in between reaches the engine,
    whose rule makes its row NaN on every kernel path (it was 1.0 on the
    vector paths) and leaves the other rows as they were."""
    import csae._data as data_source
    X = np.random.default_rng(2).random((50, 12))
    path = tmp_path / "x.npy"
    np.save(path, X)
    model = SparseAutoencoder(n_hidden=5, solver="lbfgs", max_epochs=30, tol=0, random_state=0,
                              backend=backend).fit(X)
    expected = model.transform(X)
    Xm = np.load(path, mmap_mode="r")
    assert not blockwise.is_out_of_core(Xm)
    check_data = data_source.check_data

    def check_then_change(*args, **kwargs):
        out = check_data(*args, **kwargs)
        writer = np.load(path, mmap_mode="r+")
        writer[7, 2] = np.nan
        writer.flush()
        del writer
        return out

    monkeypatch.setattr(data_source, "check_data", check_then_change)
    H = model.transform(Xm)
    assert np.isnan(H[7]).all()
    rest = np.arange(50) != 7
    np.testing.assert_array_equal(H[rest], expected[rest])
