"""csae._data: X is wrapped once per call into the source that knows its
kind (in memory, memory-mapped, dask), and that source alone validates it,
learns its range and makes what the backends read rows from."""

import warnings

import numpy as np
import pytest

import csae._blockwise as blockwise
from csae import SparseAutoencoder, _data
from csae._state import EMPTY_STATE
from csae._validation import validate_hyperparameters


def _hp(**kw):
    return validate_hyperparameters(SparseAutoencoder(**kw).get_params())


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(blockwise, "CHUNK_BYTES", 4096)


def test_the_source_is_chosen_by_the_kind_of_x(tmp_path, small_chunks):
    X = np.random.default_rng(0).random((300, 8))
    np.save(tmp_path / "x.npy", X)
    assert type(_data.source(X)) is _data.InMemory
    assert type(_data.source(X.tolist())) is _data.InMemory
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert type(_data.source(mapped)) is _data.MemoryMapped
    # A mapping within one chunk is read whole, as an array in memory.
    assert type(_data.source(mapped[:20])) is _data.InMemory
    da = pytest.importorskip("dask.array")
    assert type(_data.source(da.from_array(X, chunks=(100, 8)))) is _data.Dask
    assert not _data.InMemory(X).blocks
    assert _data.MemoryMapped(mapped).blocks and _data.Dask(X).blocks


def test_every_source_learns_the_same_range_and_scales_alike(tmp_path, small_chunks):
    rng = np.random.default_rng(1)
    X = rng.normal(3.0, 2.0, size=(400, 6))
    np.save(tmp_path / "x.npy", X)
    hp = _hp(scale_inputs=True, decoder="linear")
    sources = [_data.source(X), _data.source(np.load(tmp_path / "x.npy", mmap_mode="r"))]
    da = pytest.importorskip("dask.array")
    sources.append(_data.source(da.from_array(X, chunks=(150, 6))))
    for source in sources:
        data, (lo, scale) = source.prepare(hp, EMPTY_STATE, objective=True, learn=True,
                                           check_n=False)
        np.testing.assert_array_equal(lo, X.min(axis=0))
        np.testing.assert_array_equal(scale, X.max(axis=0) - X.min(axis=0))
        np.testing.assert_array_equal(np.asarray(data[0:400]), (X - lo) / scale)


def test_a_source_refuses_bad_data_before_anything_is_made():
    hp = _hp()  # sigmoid decoder: training data in [0, 1]
    X = np.full((5, 3), 0.5)
    X[2, 1] = 1.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _data.source(X).prepare(hp, EMPTY_STATE, objective=True, learn=True, check_n=False)
    # Not a reconstruction target (transform): any real values.
    data, _ = _data.source(X).prepare(hp, EMPTY_STATE, objective=False)
    np.testing.assert_array_equal(data, X)


def test_a_model_without_a_range_is_refused_by_every_source(tmp_path, small_chunks):
    X = np.random.default_rng(2).random((300, 8))
    np.save(tmp_path / "x.npy", X)
    model = SparseAutoencoder(n_hidden=3, max_epochs=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    model.set_params(scale_inputs=True)
    kinds = [X, np.load(tmp_path / "x.npy", mmap_mode="r")]
    da = pytest.importorskip("dask.array")
    kinds.append(da.from_array(X, chunks=(100, 8)))
    for data in kinds:
        with pytest.raises(ValueError, match="no learned input range"):
            model.transform(data)


@pytest.mark.parametrize("method", ["fit", "transform", "loss", "reconstruct"])
def test_each_call_wraps_x_once(monkeypatch, method):
    X = np.random.default_rng(3).random((60, 5))
    # backend="python": the C engine's fast transform path reads X itself,
    # before any source, when nothing needs converting.
    model = SparseAutoencoder(n_hidden=3, max_epochs=3, random_state=0, backend="python")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
        seen = []
        real = _data.source
        monkeypatch.setattr(_data, "source", lambda X: seen.append(X) or real(X))
        getattr(model, method)(X)
    assert len(seen) == 1 and seen[0] is X


def test_the_column_name_warning_of_a_warm_start_points_at_the_callers_line():
    # It pointed inside csae (the warm start prepared X one call deeper than
    # fit's other paths); every path now counts to the caller of fit.
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(4).random((50, 4))
    model = SparseAutoencoder(n_hidden=3, max_epochs=3, tol=0, warm_start=True,
                              random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # three iterations learn little
        model.fit(X)
        model.fit(pd.DataFrame(X, columns=list("abcd")))
    [warning] = [w for w in caught if "X has feature names" in str(w.message)]
    assert warning.filename == __file__
