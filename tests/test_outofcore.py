"""Training on, and using a model on, a memory-mapped file read in chunks.

A memory-mapped array larger than ``csae._blockwise.CHUNK_BYTES`` is read one
chunk of rows at a time.  Most tests make the chunk tiny (4 KiB) so that a
small file is read in many chunks and compare with the same data in memory:
SGD (shuffled or not, with momentum, with ``scale_inputs``) must give
bit-identical weights (the same minibatches, in the same order, with the same
arithmetic); L-BFGS, whose objective is assembled from blocks, agrees to
1e-12 relative in float64 (the order of the sums).  One test measures the
peak resident memory of a fresh process training on a file of a few hundred
MB with the real chunk size.
"""

import importlib.util
import pathlib

import numpy as np
import pytest

import csae._blockwise as blockwise
from csae import SparseAutoencoder
from csae.cli import main

BACKENDS = ("c", "python")
ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((700, 12))
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "x32.npy", X.astype(np.float32))
    return X, tmp_path


def weights(model):
    return (model.encoder_weights_, model.encoder_bias_, model.decoder_weights_,
            model.decoder_bias_)


def mapped(path, mode="r"):
    X = np.load(path, mmap_mode=mode)
    assert blockwise.is_out_of_core(X)
    return X


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("settings", [
    dict(shuffle=True, batch_size=7),
    dict(shuffle=False, batch_size=50),
    dict(shuffle=True, momentum=0.5, scale_inputs=True),
    dict(shuffle=True, dtype="float32", batch_size=33),
])
def test_sgd_on_a_mapped_file_equals_sgd_in_memory(small_chunks, files, backend, settings):
    X, folder = files
    kw = dict(solver="sgd", n_hidden=5, max_epochs=3, random_state=1, backend=backend,
              **settings)
    a = SparseAutoencoder(**kw).fit(X)
    b = SparseAutoencoder(**kw).fit(mapped(folder / "x.npy"))
    for p, q in zip(weights(a), weights(b)):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_fit_on_a_mapped_file(small_chunks, files, backend):
    X, folder = files
    kw = dict(solver="sgd", n_hidden=4, random_state=3, backend=backend, scale_inputs=True)
    a, b = SparseAutoencoder(**kw), SparseAutoencoder(**kw)
    Xm = mapped(folder / "x.npy")
    for _ in range(2):
        a.partial_fit(X)
        b.partial_fit(Xm)
    for p, q in zip(weights(a), weights(b)):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_lbfgs_on_a_mapped_file_equals_lbfgs_in_memory(small_chunks, files, backend, decoder):
    X, folder = files
    kw = dict(n_hidden=5, max_epochs=20, random_state=2, backend=backend, solver="lbfgs",
              decoder=decoder, weight_decay=1e-3)
    a = SparseAutoencoder(**kw).fit(X)
    b = SparseAutoencoder(**kw).fit(mapped(folder / "x.npy"))
    assert a.n_iter_ == b.n_iter_ == 20
    np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-9)
    for p, q in zip(weights(a), weights(b)):
        np.testing.assert_allclose(q, p, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_objective_from_blocks_equals_the_whole(small_chunks, files, backend):
    X, folder = files
    model = SparseAutoencoder(n_hidden=6, max_epochs=2, random_state=0,
                              backend=backend).fit(X)
    Xm = mapped(folder / "x.npy")
    loss, grads = model.loss_and_gradients(X)
    loss_m, grads_m = model.loss_and_gradients(Xm)
    assert loss_m == pytest.approx(loss, rel=1e-12)
    assert model.loss(Xm) == pytest.approx(loss, rel=1e-12)
    for key in grads:
        scale = np.max(np.abs(grads[key]))
        assert np.max(np.abs(grads_m[key] - grads[key])) <= 1e-12 * scale


@pytest.mark.parametrize("backend", BACKENDS)
def test_transforms_of_a_mapped_file(small_chunks, files, backend):
    X, folder = files
    model = SparseAutoencoder(solver="sgd", n_hidden=6, max_epochs=2, random_state=0,
                              backend=backend, scale_inputs=True).fit(X)
    Xm = mapped(folder / "x.npy")
    np.testing.assert_array_equal(model.transform(Xm), model.transform(X))
    np.testing.assert_array_equal(model.reconstruct(Xm), model.reconstruct(X))
    np.testing.assert_array_equal(model.fit_transform(Xm), model.fit_transform(X))


def test_float32_file_and_copy_on_write_mapping(small_chunks, files):
    # A float32 file for a float64 model is converted chunk by chunk; a
    # copy-on-write mapping ("c") is read through the mapping, not the file.
    X, folder = files
    X32 = X.astype(np.float32)
    kw = dict(solver="sgd", n_hidden=4, max_epochs=2, random_state=0, batch_size=9)
    a = SparseAutoencoder(**kw).fit(X32)
    b = SparseAutoencoder(**kw).fit(mapped(folder / "x32.npy"))
    Xc = mapped(folder / "x32.npy", mode="c")
    Xc[0, 0] = 0.25  # only in this process's pages
    X32[0, 0] = 0.25
    c = SparseAutoencoder(**kw).fit(X32)
    d = SparseAutoencoder(**kw).fit(Xc)
    for p, q in zip(weights(a), weights(b)):
        np.testing.assert_array_equal(p, q)
    for p, q in zip(weights(c), weights(d)):
        np.testing.assert_array_equal(p, q)


def test_bad_mapped_data_is_refused_before_training(small_chunks, files):
    X, folder = files
    model = SparseAutoencoder(n_hidden=4, max_epochs=1, random_state=0).fit(X)
    before = [w.copy() for w in weights(model)]
    bad = X.copy()
    bad[613, 3] = np.nan
    np.save(folder / "nan.npy", bad)
    with pytest.raises(ValueError, match="NaN or inf.*row 613"):
        model.fit(mapped(folder / "nan.npy"))
    big = X * 3
    np.save(folder / "big.npy", big)
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        model.fit(mapped(folder / "big.npy"))
    with pytest.raises(ValueError, match="early_stopping=True needs X in memory"):
        model.set_params(early_stopping=True).fit(mapped(folder / "x.npy"))
    model.set_params(early_stopping=False)
    np.save(folder / "wide.npy", np.hstack([X, X]))
    with pytest.raises(ValueError, match="24 features.*expecting 12"):
        model.transform(mapped(folder / "wide.npy"))
    for p, q in zip(before, weights(model)):
        np.testing.assert_array_equal(p, q)


def test_cli_train_progress_counts_rows_chunk_by_chunk(small_chunks, files, monkeypatch,
                                                       capsys):
    # The progress display hears of every chunk of a mapped file's epoch,
    # with the rows of the epoch done so far.
    from csae import cli
    X, folder = files
    seen = []

    class Recorder:
        def update(self, epoch, objective, seconds, validation=None):
            seen.append(("epoch", epoch))

        def rows(self, done):
            seen.append(("rows", done))

        def close(self):
            pass

    monkeypatch.setattr(cli, "_progress", lambda *args, **kwargs: Recorder())
    assert main(["train", str(folder / "x.npy"), "--hidden", "5", "--epochs", "2",
                 "--solver", "sgd", "--out", str(folder / "m.npz")]) == 0
    first = seen[:seen.index(("epoch", 1))]
    done = [n for _, n in first]
    assert len(done) > 1 and done == sorted(done) and done[-1] == X.shape[0]
    assert seen[-1] == ("epoch", 2) and seen.count(("rows", X.shape[0])) == 2


def test_cli_train_progress_bar_counts_rows(small_chunks, files, capsys):
    pytest.importorskip("tqdm")
    X, folder = files
    assert main(["train", str(folder / "x.npy"), "--hidden", "5", "--epochs", "2",
                 "--solver", "sgd", "--out", str(folder / "m.npz")]) == 0
    err = capsys.readouterr().err
    assert "1.40k/1.40k" in err and "row" in err and "epoch=2/2" in err


def test_cli_encode_writes_a_mapped_file_chunk_by_chunk(small_chunks, files, capsys):
    X, folder = files
    model_path, out = folder / "model.npz", folder / "h.npy"
    assert main(["train", str(folder / "x.npy"), "--hidden", "5", "--epochs", "2",
                 "--solver", "sgd", "--seed", "0", "--out", str(model_path), "--quiet"]) == 0
    assert main(["encode", str(model_path), str(folder / "x.npy"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "(700, 5)" in captured.out
    assert "700" in captured.err  # the progress display counts rows
    model = SparseAutoencoder.load(model_path)
    np.testing.assert_array_equal(np.load(out), model.transform(X))
    # The model trained on the mapped file equals one trained in memory.
    ref = SparseAutoencoder(solver="sgd", n_hidden=5, max_epochs=2, random_state=0).fit(X)
    for p, q in zip(weights(ref), weights(model)):
        np.testing.assert_array_equal(p, q)


def test_cli_reconstruct_writes_a_mapped_file_chunk_by_chunk(small_chunks, files, capsys,
                                                             monkeypatch):
    from csae import cli
    X, folder = files
    model_path, out = folder / "model.npz", folder / "r.npy"
    assert main(["train", str(folder / "x.npy"), "--hidden", "5", "--epochs", "2",
                 "--solver", "sgd", "--seed", "0", "--out", str(model_path), "--quiet"]) == 0
    capsys.readouterr()

    def whole_array(*args, **kwargs):
        raise AssertionError("the reconstruction was built in memory")

    monkeypatch.setattr(cli, "save_array", whole_array)
    assert main(["reconstruct", str(model_path), str(folder / "x.npy"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    model = SparseAutoencoder.load(model_path)
    Y = model.reconstruct(X)
    np.testing.assert_array_equal(np.load(out), Y)
    mse = float(np.mean((Y - X) ** 2))
    assert f"shape (700, 12), float64; mean squared error {mse:.6g}" in captured.out
    assert "700" in captured.err  # the progress display counts rows


def test_peak_memory_stays_flat_on_a_large_mapped_file(tmp_path):
    # benchmarks/outofcore.py's measurement on a 320 MB file of float64
    # (78125 x 512): SGD, SGD with scale_inputs into float32, L-BFGS and
    # transform in a fresh process; the workspace of one 16 MiB chunk and the
    # weights (4 hidden units) are a small fraction of the file.
    spec = importlib.util.spec_from_file_location(
        "outofcore_benchmark", ROOT / "benchmarks" / "outofcore.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "large.npy"
    bench.write(path, 78_125)
    figures = bench.peak_memory(path, timeout=300)
    print(figures)
    for key in ("sgd", "sgd_scaled_f32", "lbfgs", "transform"):
        # Far below the file size: a few 16 MiB chunks' worth (the growths
        # are cumulative: each includes those before it).
        assert figures[key] < 6 * blockwise.CHUNK_BYTES < figures["file"] / 3, (key, figures)


@pytest.mark.parametrize("extra", [
    dict(solver="adam", learning_rate=0.01),
    dict(sparsity_smoothing=0.3),
    dict(solver="adam", learning_rate=0.01, sparsity_smoothing=0.5),
])
def test_chunked_epoch_continues_adam_and_running_sparsity(small_chunks, files, extra):
    # The chunked epoch (CONTRACT 1 keywords) against the reference's epoch
    # over all rows: the Adam step count and the running rho_hat continue
    # from chunk to chunk.
    from csae import reference as ref
    from csae._backends import Backend
    X, folder = files
    Xm = mapped(folder / "x.npy")
    data = blockwise.ChunkedData(Xm, np.float64)
    states = []
    for source in (X, data):
        params, _ = ref.init_params(12, 5, 11)
        params = [np.array(p) for p in params]
        kw = dict(dict(rho=0.1, beta=3.0, lam=1e-3, batch_size=9, shuffle=True,
                       rng_state=5, learning_rate=0.1, momentum=0.0), **extra)
        if kw.get("solver") == "adam":
            kw.update(adam_m=tuple(np.zeros_like(p) for p in params),
                      adam_v=tuple(np.zeros_like(p) for p in params), adam_t=3)
        if "sparsity_smoothing" in kw:
            kw.update(rho_running=np.full(5, 0.2), running_batches=2)
        backend = Backend("python")
        for _ in range(2):
            loss, kw["rng_state"] = backend.sgd_epoch(params, None, source, **kw)
            batches = -(-700 // 9)
            for key in ("adam_t", "running_batches"):
                if key in kw:
                    kw[key] += batches
        states.append((params, loss, kw.get("rho_running")))
    (p1, l1, q1), (p2, l2, q2) = states
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    assert l2 == pytest.approx(l1, rel=1e-12)
    if q1 is not None:
        np.testing.assert_array_equal(q1, q2)


def test_partial_fit_refuses_a_mapped_file_outside_the_learned_range(small_chunks, files):
    # The first partial_fit learned the range with scale_inputs=True; a file
    # reaching 3 times further is refused in the validation pass, before
    # anything changes (the sigmoid decoder cannot reconstruct it).
    X, folder = files
    np.save(folder / "x3.npy", X * 3)
    model = SparseAutoencoder(solver="sgd", n_hidden=4, random_state=3, scale_inputs=True)
    model.partial_fit(mapped(folder / "x.npy"))
    before = [w.copy() for w in weights(model)]
    with pytest.raises(ValueError, match=r"outside the input range learned.*feature 0 was "
                                         rf"learned on \[{X[:, 0].min():.6g}, "):
        model.partial_fit(mapped(folder / "x3.npy"))
    for p, q in zip(before, weights(model)):
        np.testing.assert_array_equal(p, q)
    assert model.n_iter_ == 1
