"""A memory-mapped array is the data: its file is never read by name again.

SGD with ``shuffle=True`` reads the scattered rows of each chunk with one
``pread`` per row (faster than a page fault per row through the mapping).
It used to open the file by its name at every chunk, so after
``os.replace`` put another file at the path ``fit`` trained on that file
(never validated), and after an unlink it failed.  Now the descriptor is
opened once, when the data is prepared, and kept only if it is the very file
the mapping holds.  Data that changes under a running fit (NaN written into
the file) gets an error that says so, not a learning-rate hint.
"""

import os
import warnings

import numpy as np
import pytest

import csae._blockwise as blockwise
from csae import SparseAutoencoder, TrainingDivergedWarning
from csae._estimator import train


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((700, 12))
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "other.npy", rng.random((700, 12)))
    np.save(tmp_path / "short.npy", rng.random((70, 12)))
    return X, tmp_path


def mapped(path, mode="r"):
    X = np.load(path, mmap_mode=mode)
    assert blockwise.is_out_of_core(X)
    return X


def weights(model):
    return (model.encoder_weights_, model.encoder_bias_, model.decoder_weights_,
            model.decoder_bias_)


def settings(**extra):
    kw = dict(solver="sgd", n_hidden=4, shuffle=True, batch_size=7, max_epochs=4, tol=0,
              random_state=0)
    kw.update(extra)
    return kw


def fit_quietly(model, X, hook=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # four epochs learn little
        train(model, X, hook=hook)
    return model


def after_epoch(k, action):
    def hook(epoch, objective, validation, seconds):
        if epoch == k:
            action()
    return hook


@pytest.mark.parametrize("backend", ["c", "python"])
@pytest.mark.parametrize("change", ["replace", "replace_shorter", "unlink",
                                    "replaced_before_fit"])
def test_sgd_reads_the_mapped_file_whatever_happens_to_its_name(small_chunks, files,
                                                                backend, change):
    X, folder = files
    path = folder / "x.npy"
    expected = fit_quietly(SparseAutoencoder(**settings(backend=backend)), X)
    Xm = mapped(path)
    actions = {
        "replace": lambda: os.replace(folder / "other.npy", path),
        "replace_shorter": lambda: os.replace(folder / "short.npy", path),
        "unlink": lambda: os.unlink(path),
    }
    model = SparseAutoencoder(**settings(backend=backend))
    if change == "replaced_before_fit":
        # The name points elsewhere before fit opens anything: the rows are
        # read through the mapping, which keeps the file it mapped.
        os.replace(folder / "other.npy", path)
        fit_quietly(model, Xm)
    else:
        fit_quietly(model, Xm, hook=after_epoch(1, actions[change]))
    assert model.n_iter_ == 4
    for p, q in zip(weights(expected), weights(model)):
        np.testing.assert_array_equal(p, q)


def test_the_mapped_file_is_read_with_pread_when_it_can_be(files):
    # The fast path is taken for a plain mapping (on Linux, where
    # /proc/self/maps names the mapped file), never for copy-on-write.
    X, folder = files
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc/self/maps")
    data = blockwise.ChunkedData(np.load(folder / "x.npy", mmap_mode="r"), np.float64)
    assert data._file is not None
    index = np.array([5, 0, 699, 3])
    np.testing.assert_array_equal(data._gather(index), X[index])
    cow = blockwise.ChunkedData(np.load(folder / "x.npy", mmap_mode="c"), np.float64)
    assert cow._file is None
    view = np.load(folder / "x.npy", mmap_mode="r")[100:]  # a mapping at an offset
    data = blockwise.ChunkedData(view, np.float64)
    assert data._file is not None
    index = np.array([5, 0, 599, 3])
    np.testing.assert_array_equal(data._gather(index), X[100:][index])


def write_nan(path, row=5):
    W = np.load(path, mmap_mode="r+")
    W[row, 3] = np.nan
    W.flush()
    del W


@pytest.mark.parametrize("backend", ["c", "python"])
@pytest.mark.parametrize("extra", [dict(shuffle=True), dict(shuffle=False),
                                   dict(solver="adam", learning_rate=0.01),
                                   dict(solver="lbfgs", max_epochs=20)])
def test_nan_written_into_the_file_during_fit_says_the_data_changed(small_chunks, files,
                                                                     backend, extra):
    X, folder = files
    path = folder / "x.npy"
    model = SparseAutoencoder(**settings(backend=backend, max_epochs=2))
    fit_quietly(model, X)
    before = [w.copy() for w in weights(model)]
    model.set_params(**settings(backend=backend, **extra))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingDivergedWarning)
        with pytest.raises(ValueError, match=r"NaN or inf \(first in row 5\) that were not "
                                             r"there when it was validated: the memory-"
                                             r"mapped file changed"):
            fit_quietly(model, mapped(path), hook=after_epoch(1, lambda: write_nan(path)))
    for p, q in zip(before, weights(model)):
        np.testing.assert_array_equal(p, q)
    assert model.n_iter_ == 2


def test_a_file_truncated_in_place_during_fit_says_the_data_changed(small_chunks, files):
    # The same file (not a new one at the name) made shorter: the rows read
    # by pread are missing.
    X, folder = files
    path = folder / "x.npy"
    model = SparseAutoencoder(**settings())
    Xm = mapped(path)
    data = blockwise.ChunkedData(Xm, np.float64)
    if data._file is None:
        pytest.skip("rows are read through the mapping here")
    del data
    with pytest.raises(ValueError, match="no row .* any more: the memory-mapped file "
                                         "changed.*shorter"):
        fit_quietly(model, Xm, hook=after_epoch(1, lambda: os.truncate(path, 4096)))
    assert not model.__sklearn_is_fitted__()


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_nan_written_into_a_small_mapped_file_during_fit_says_the_data_changed(files,
                                                                               solver):
    # A file below one chunk is trained on as one array, the mapping itself.
    X, folder = files
    path = folder / "x.npy"
    model = SparseAutoencoder(**settings(solver=solver, max_epochs=20, learning_rate=0.01))
    Xm = np.load(path, mmap_mode="r")
    assert not blockwise.is_out_of_core(Xm)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingDivergedWarning)
        with pytest.raises(ValueError, match=r"NaN or inf \(first in row 5\) that were not "
                                             r"there when it was validated: X changed"):
            fit_quietly(model, Xm, hook=after_epoch(1, lambda: write_nan(path)))
    assert not model.__sklearn_is_fitted__()
