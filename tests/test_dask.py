"""Dask arrays in and out, and L-BFGS as a map-reduce over dask blocks.

The first part runs on dask's local threaded scheduler; the second on a
real ``distributed.LocalCluster`` (two worker processes, 127.0.0.1 only),
started once for the module, including a worker killed in the middle of a
distributed fit.  Expected values come from the same model on the same data
in memory.
"""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import csae._dask as csae_dask  # noqa: E402
from csae import SparseAutoencoder  # noqa: E402


def weights(model):
    return (model.encoder_weights_, model.encoder_bias_, model.decoder_weights_,
            model.decoder_bias_)


def assert_same_weights(a, b, rtol=0.0, atol=0.0):
    for p, q in zip(weights(a), weights(b)):
        np.testing.assert_allclose(q, p, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).random((1000, 12))


@pytest.fixture(scope="module")
def fitted(data):
    return SparseAutoencoder(n_hidden=5, max_epochs=3, random_state=0,
                             scale_inputs=True).fit(data)


def test_import_csae_does_not_import_dask():
    code = ("import sys, numpy as np, csae; "
            "csae.SparseAutoencoder(n_hidden=2, max_epochs=1).fit(np.random.random((20, 3))); "
            "assert not [m for m in sys.modules if m.startswith(('dask', 'distributed'))]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_transforms_are_lazy_and_equal_in_memory(data, fitted):
    Xd = da.from_array(data, chunks=(130, 12))
    H = fitted.transform(Xd)
    assert isinstance(H, da.Array) and H.chunks[0] == Xd.chunks[0]
    np.testing.assert_array_equal(H.compute(), fitted.transform(data))
    np.testing.assert_array_equal(fitted.reconstruct(Xd).compute(), fitted.reconstruct(data))
    Hm = fitted.transform(data)
    Y = fitted.inverse_transform(da.from_array(Hm, chunks=(300, 5)))
    assert isinstance(Y, da.Array)
    np.testing.assert_array_equal(Y.compute(), fitted.inverse_transform(Hm))
    loss = fitted.loss(Xd)
    assert isinstance(loss, da.Array) and loss.shape == ()
    assert float(loss) == pytest.approx(fitted.loss(data), rel=1e-12)
    assert float(fitted.score(Xd)) == pytest.approx(fitted.score(data), rel=1e-12)


def test_weights_travel_once_per_graph_not_once_per_block():
    import cloudpickle
    # A model built from known weights (no training needed here).
    rng = np.random.default_rng(1)
    model = SparseAutoencoder(n_hidden=64)
    model.encoder_weights_ = rng.normal(0, 0.1, (64, 300))
    model.encoder_bias_ = np.zeros(64)
    model.decoder_weights_ = rng.normal(0, 0.1, (300, 64))
    model.decoder_bias_ = np.zeros(300)
    # transform needs the encoder: 64 x 300 float64, about 150 kB.
    weight_bytes = model.encoder_weights_.nbytes + model.encoder_bias_.nbytes
    # Twenty blocks whose own tasks are tiny (random data made on the worker).
    Xd = da.random.random((2000, 300), chunks=(100, 300))
    graph = dict(model.transform(Xd).__dask_graph__())
    size = len(cloudpickle.dumps(graph))
    assert weight_bytes < size < 2 * weight_bytes


def test_lbfgs_on_dask_equals_lbfgs_in_memory(data):
    kw = dict(n_hidden=5, max_epochs=20, random_state=0, solver="lbfgs")
    a = SparseAutoencoder(**kw).fit(data)
    b = SparseAutoencoder(**kw).fit(da.from_array(data, chunks=(130, 12)))
    assert a.n_iter_ == b.n_iter_ == 20
    assert b.loss_curve_[-1] == pytest.approx(a.loss_curve_[-1], rel=1e-9)
    assert_same_weights(a, b, rtol=1e-6, atol=1e-9)


def test_column_chunks_are_rechunked_by_rows(data):
    kw = dict(n_hidden=4, max_epochs=10, random_state=0, solver="lbfgs")
    a = SparseAutoencoder(**kw).fit(data)
    Xd = da.from_array(data, chunks=(250, 5))  # blocks split the 12 columns
    b = SparseAutoencoder(**kw).fit(Xd)
    assert b.n_features_in_ == 12
    assert b.loss_curve_[-1] == pytest.approx(a.loss_curve_[-1], rel=1e-9)
    np.testing.assert_allclose(b.transform(Xd).compute(), a.transform(data), atol=1e-7)


def test_unknown_chunk_sizes_are_computed(data):
    Xd = da.from_array(data, chunks=(130, 12))
    keep = Xd[Xd[:, 0] >= 0]  # every row, but dask no longer knows how many per block
    assert np.isnan(keep.shape[0])
    kw = dict(n_hidden=4, max_epochs=10, random_state=0, solver="lbfgs")
    a = SparseAutoencoder(**kw).fit(data)
    b = SparseAutoencoder(**kw).fit(keep)
    assert b.loss_curve_[-1] == pytest.approx(a.loss_curve_[-1], rel=1e-9)
    np.testing.assert_allclose(b.transform(keep).compute(), a.transform(data), atol=1e-7)
    # partial_fit on unknown chunks (no validation pass: the blocks are
    # checked as they are computed) streams them as fit does.
    c = SparseAutoencoder(solver="sgd", n_hidden=4, random_state=0, batch_size=10,
                          shuffle=False)
    c.partial_fit(keep)
    d = SparseAutoencoder(solver="sgd", n_hidden=4, random_state=0, batch_size=10,
                          shuffle=False)
    d.partial_fit(data)
    assert_same_weights(d, c)
    unknown_columns = Xd.map_blocks(lambda b: b, chunks=(Xd.chunks[0], (np.nan,)))
    with pytest.raises(ValueError, match="unknown column-chunk sizes"):
        b.transform(unknown_columns)


def test_a_block_with_nan_fails_the_fit_naming_the_block(data, fitted):
    bad = data.copy()
    bad[655, 7] = np.nan
    Xd = da.from_array(bad, chunks=(130, 12))  # row 655 is in block 5
    model = SparseAutoencoder(n_hidden=5, max_epochs=2, random_state=0, solver="lbfgs")
    model.fit(data)
    before = [w.copy() for w in weights(model)]
    with pytest.raises(ValueError, match=r"block 5 \(row 655\)"):
        model.fit(Xd)
    with pytest.raises(ValueError, match="early_stopping=True needs X in memory"):
        model.set_params(early_stopping=True).fit(da.from_array(data, chunks=(130, 12)))
    model.set_params(early_stopping=False)
    for p, q in zip(before, weights(model)):
        np.testing.assert_array_equal(p, q)
    # Lazy results say which block when computed.
    with pytest.raises(ValueError, match="block 5 of X.*NaN"):
        fitted.transform(Xd).compute()


def assert_unshuffled_blocks_train_like_memory(data, max_epochs):
    # Blocks of whole minibatches, in order: the same minibatches as the
    # in-memory epoch, hence the same weights.
    kw = dict(solver="sgd", n_hidden=5, max_epochs=max_epochs, random_state=0, batch_size=50,
              shuffle=False)
    a = SparseAutoencoder(**kw).fit(data)
    b = SparseAutoencoder(**kw).fit(da.from_array(data, chunks=(200, 12)))
    assert_same_weights(a, b)


def test_sgd_streams_blocks_in_order_without_shuffle(data):
    assert_unshuffled_blocks_train_like_memory(data, max_epochs=3)


def test_sgd_block_order_is_seeded(data):
    Xd = da.from_array(data, chunks=(130, 12))
    kw = dict(solver="sgd", n_hidden=5, max_epochs=2, random_state=7, batch_size=20)
    a = SparseAutoencoder(**kw).fit(Xd)
    b = SparseAutoencoder(**kw).fit(Xd)
    c = SparseAutoencoder(**dict(kw, random_state=8)).fit(Xd)
    assert_same_weights(a, b)
    assert not np.array_equal(a.encoder_weights_, c.encoder_weights_)
    # partial_fit streams the blocks as one epoch too.
    d = SparseAutoencoder(**kw)
    d.partial_fit(Xd)
    d.partial_fit(Xd)
    assert_same_weights(a, d)


def test_scale_inputs_range_is_learned_from_all_blocks(data):
    Xd = da.from_array(data * 5 - 2, chunks=(130, 12))
    kw = dict(n_hidden=4, max_epochs=5, random_state=0, solver="lbfgs", scale_inputs=True)
    a = SparseAutoencoder(**kw).fit(data * 5 - 2)
    b = SparseAutoencoder(**kw).fit(Xd)
    np.testing.assert_array_equal(a._state.data_min, b._state.data_min)
    np.testing.assert_array_equal(a._state.data_scale, b._state.data_scale)
    assert b.loss_curve_[-1] == pytest.approx(a.loss_curve_[-1], rel=1e-9)


def test_dask_ml_wrappers_and_pipeline(data):
    dask_ml = pytest.importorskip("dask_ml.wrappers")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    Xd = da.from_array(data, chunks=(250, 12))
    inc = dask_ml.Incremental(SparseAutoencoder(solver="sgd", n_hidden=4, random_state=0),
                              shuffle_blocks=False)
    inc.fit(Xd)
    direct = SparseAutoencoder(solver="sgd", n_hidden=4, random_state=0)
    for start in range(0, 1000, 250):
        direct.partial_fit(data[start:start + 250])
    assert_same_weights(direct, inc.estimator_)
    post = dask_ml.ParallelPostFit(SparseAutoencoder(n_hidden=4, max_epochs=2,
                                                     random_state=0))
    post.fit(data)
    H = post.transform(Xd)
    assert isinstance(H, da.Array)
    np.testing.assert_array_equal(H.compute(), post.estimator.transform(data))
    pipe = make_pipeline(FunctionTransformer(lambda X: X * 0.5),
                         SparseAutoencoder(n_hidden=4, max_epochs=5, random_state=0,
                                           solver="lbfgs"))
    pipe.fit(Xd)
    out = pipe.transform(Xd)
    assert isinstance(out, da.Array)
    ref = make_pipeline(FunctionTransformer(lambda X: X * 0.5),
                        SparseAutoencoder(n_hidden=4, max_epochs=5, random_state=0,
                                          solver="lbfgs")).fit(data)
    np.testing.assert_allclose(out.compute(), ref.transform(data), atol=1e-7)


# --------------------------------------------------------------------------
# On a real cluster: two worker processes on this machine
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_cluster_transforms_and_loss(client, data, fitted):
    Xd = da.from_array(data, chunks=(130, 12))
    np.testing.assert_array_equal(fitted.transform(Xd).compute(), fitted.transform(data))
    np.testing.assert_array_equal(fitted.reconstruct(Xd).compute(), fitted.reconstruct(data))
    assert float(fitted.loss(Xd)) == pytest.approx(fitted.loss(data), rel=1e-12)


CLUSTER_LBFGS = dict(n_hidden=5, max_epochs=10, random_state=0, solver="lbfgs")


@pytest.fixture(scope="module")
def cluster_fit(client, data):
    """L-BFGS on the cluster, undisturbed (fitted once for two tests)."""
    return SparseAutoencoder(**CLUSTER_LBFGS).fit(da.from_array(data, chunks=(130, 12)))


def test_cluster_lbfgs_equals_in_memory(cluster_fit, data):
    a = SparseAutoencoder(**CLUSTER_LBFGS).fit(data)
    b = cluster_fit
    assert a.n_iter_ == b.n_iter_ == 10
    assert b.loss_curve_[-1] == pytest.approx(a.loss_curve_[-1], rel=1e-9)
    assert_same_weights(a, b, rtol=1e-6, atol=1e-9)


def test_cluster_fit_survives_a_killed_worker(client, cluster_fit, data, monkeypatch):
    Xd = da.from_array(data, chunks=(130, 12))
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    calls = []
    evaluate = csae_dask.DaskData.evaluate

    def evaluate_and_kill(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # mid-fit: the prepared blocks are on both workers
            os.kill(victim, signal.SIGKILL)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(csae_dask.DaskData, "evaluate", evaluate_and_kill)
    disturbed = SparseAutoencoder(**CLUSTER_LBFGS).fit(Xd)
    assert len(calls) > 3
    assert victim not in client.run(os.getpid).values()
    # Dask recomputed what the worker held; the sums are reduced in the
    # same tree whichever worker computes a block, so nothing changes.
    assert disturbed.loss_curve_ == cluster_fit.loss_curve_
    assert_same_weights(cluster_fit, disturbed)
    # The nanny brings the worker back for the tests that follow.
    client.wait_for_workers(2, timeout=30)


def test_cluster_nan_block_fails_the_fit(client, data):
    bad = data.copy()
    bad[999, 0] = np.inf
    model = SparseAutoencoder(n_hidden=4, max_epochs=2, solver="lbfgs")
    with pytest.raises(ValueError, match=r"block 7 \(row 999\)"):
        model.fit(da.from_array(bad, chunks=(130, 12)))
    assert not model.__sklearn_is_fitted__()


def test_cluster_sgd_streams_blocks(client, data):
    assert_unshuffled_blocks_train_like_memory(data, max_epochs=2)


def test_partial_fit_refuses_blocks_outside_the_learned_range(data):
    # The range learned by the first partial_fit (scale_inputs=True) holds
    # for the blocks of later calls, checked as they are computed.
    Xd = da.from_array(data, chunks=(250, 12))
    model = SparseAutoencoder(solver="sgd", n_hidden=4, random_state=0, scale_inputs=True)
    model.partial_fit(Xd)
    before = [w.copy() for w in weights(model)]
    with pytest.raises(ValueError, match=r"block \d+ of X: X has values outside the input "
                                         r"range learned.*learned on \["):
        model.partial_fit(Xd * 3)
    for p, q in zip(before, weights(model)):
        np.testing.assert_array_equal(p, q)
    model.partial_fit(Xd)  # the learned range itself trains
    assert model.n_iter_ == 2


def blocks_with_a_bad_one(data, bad):
    """A dask array of two blocks declared (500, 12) float64, the second of
    which is ``bad`` (what a broken parser behind from_delayed returns)."""
    first = da.from_array(data[:500], chunks=(500, 12))
    second = da.from_delayed(dask.delayed(lambda: bad)(), shape=(500, 12),
                             dtype=np.float64)
    return da.concatenate([first, second])


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_a_block_of_text_declared_float_is_named(data, solver):
    Xd = blocks_with_a_bad_one(data, np.full((500, 12), "1.5", dtype="<U3"))
    model = SparseAutoencoder(solver=solver, n_hidden=3, max_epochs=2, random_state=0)
    with pytest.raises(TypeError, match=r"block 1 of X holds dtype <U3, but the dask array "
                                        r"declares dtype float64"):
        model.fit(Xd)
    assert not model.__sklearn_is_fitted__()
    fitted = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=1, tol=0,
                               random_state=0).fit(data)
    with pytest.raises(TypeError, match=r"block 1 of X: X must be an array of real numbers"):
        fitted.transform(Xd).compute()


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_a_block_wider_than_declared_is_named(data, solver):
    wide = np.random.default_rng(1).random((500, 14))
    Xd = blocks_with_a_bad_one(data, wide)
    model = SparseAutoencoder(solver=solver, n_hidden=3, max_epochs=2, random_state=0)
    with pytest.raises(ValueError, match=r"block 1 of X has shape \(500, 14\), but the dask "
                                         r"array declares 12 columns"):
        model.fit(Xd)
