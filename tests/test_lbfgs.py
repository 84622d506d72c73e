"""solver="lbfgs" in the estimator and the command line: full-batch L-BFGS
reaches a stationary point of the objective (checked with the reference's
gradients), agrees between backends, keeps its hyperparameters through
save/load, follows the transaction rule, and refuses what it cannot do."""

import json
import warnings

import numpy as np
import pytest


import csae
from csae import SparseAutoencoder, TrainingInterruptedWarning
from csae import reference as ref
from csae.datasets import make_bars

X = make_bars(400, size=6, random_state=0)


def model(**kw):
    settings = dict(n_hidden=12, solver="lbfgs", max_epochs=400, sparsity_target=0.1,
                    sparsity_weight=2.0, weight_decay=1e-3, random_state=0)
    settings.update(kw)
    return SparseAutoencoder(**settings)


def test_fit_reaches_a_stationary_point():
    # tol=0: no stopping rule, so L-BFGS-B runs until its own convergence
    # test (relative reduction of the objective) ends it, well before the
    # budget.
    m = model(tol=0, max_epochs=2000).fit(X)
    settings = dict(rho=0.1, beta=2.0, lam=1e-3, decoder="sigmoid")
    params = (m.encoder_weights_, m.encoder_bias_, m.decoder_weights_, m.decoder_bias_)
    loss, grads = ref.objective_and_gradients(params, X, **settings)
    # The relative-reduction test (1e7 machine epsilons) ends the run with
    # the largest gradient component about 1e-5: four and a half orders of
    # magnitude below the 0.70 after the first iteration.
    assert max(float(np.max(np.abs(g))) for g in grads) <= 5e-5
    # loss_curve_ is the objective on all the data after each iteration.
    assert m.n_iter_ == len(m.loss_curve_) < 2000
    np.testing.assert_allclose(m.loss_curve_[-1], loss, rtol=1e-10)
    np.testing.assert_allclose(m.loss(X), loss, rtol=1e-10)
    # Far lower than SGD's default run on the same data.
    sgd = SparseAutoencoder(solver="sgd", n_hidden=12, sparsity_target=0.1,
                            sparsity_weight=2.0, weight_decay=1e-3, random_state=0).fit(X)
    assert loss < 0.7 * sgd.loss(X)


def test_tol_stops_when_the_objective_stalls():
    # The stopping rule of every solver, per iteration: stop at the first
    # iteration that ends n_iter_no_change iterations in a row without an
    # improvement on the best objective by more than tol times that best.
    # SciPy's gradient tolerance plays no part.
    tol, patience = 1e-4, 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = model(tol=tol, n_iter_no_change=patience, max_epochs=2000).fit(X)
    curve = m.loss_curve_
    best, count, stop = np.inf, 0, None
    for k, value in enumerate(curve, 1):
        count = 0 if value < best - (tol * best if k > 1 else 0.0) else count + 1
        best = min(best, value)
        if count == patience:
            stop = k
            break
    assert stop == m.n_iter_ == len(curve) > 50
    # A budget below that iteration ends first, with a ConvergenceWarning.
    with pytest.warns(csae.ConvergenceWarning, match="max_epochs=50"):
        model(tol=tol, max_epochs=50).fit(X)


def test_backends_and_dtypes_agree():
    a = model(max_epochs=25, tol=0).fit(X)
    b = model(max_epochs=25, tol=0, backend="python").fit(X)
    assert a.n_iter_ == b.n_iter_ == 25
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-8)
    f32 = model(max_epochs=25, tol=0, dtype="float32").fit(X)
    assert f32.encoder_weights_.dtype == np.float32
    np.testing.assert_allclose(f32.loss_curve_[-1], a.loss_curve_[-1], rtol=1e-3)


def test_same_seed_same_weights():
    np.testing.assert_array_equal(model(max_epochs=30).fit(X).encoder_weights_,
                                  model(max_epochs=30).fit(X).encoder_weights_)


def test_max_fun_bounds_the_evaluations():
    m = model(max_fun=5, tol=0).fit(X)
    assert m.n_iter_ <= 5


def test_save_load_keeps_the_solver(tmp_path):
    m = model(max_epochs=10, max_fun=77, tol=1e-6).fit(X)
    m.save(tmp_path / "m.npz")
    back = csae.load(tmp_path / "m.npz")
    assert (back.solver, back.max_fun, back.tol) == ("lbfgs", 77, 1e-6)
    np.testing.assert_array_equal(back.transform(X), m.transform(X))


def test_partial_fit_is_refused_before_anything_changes():
    m = model(max_epochs=5).fit(X)
    before = m.encoder_weights_.copy()
    # Not even there (scikit-learn's convention for MLPs under lbfgs) ...
    assert not hasattr(m, "partial_fit")
    with pytest.raises(AttributeError, match="solver='lbfgs' trains on all the data"):
        m.partial_fit(X)
    # ... and refused by the method itself when reached through the class.
    with pytest.raises(ValueError, match="partial_fit needs solver='sgd'"):
        SparseAutoencoder.partial_fit(m, X)
    np.testing.assert_array_equal(m.encoder_weights_, before)
    assert hasattr(m.set_params(solver="sgd"), "partial_fit")


@pytest.mark.parametrize("param, value, match", [
    ("solver", "adamw", "solver must be one of"),
    ("max_fun", 0, "max_fun must be an integer"),
    ("tol", -1.0, "tol must be"),
    ("tol", float("nan"), "tol must be"),
])
def test_bad_solver_settings(param, value, match):
    m = model(max_epochs=3).fit(X)
    before = m.encoder_weights_.copy()
    with pytest.raises(ValueError, match=match):
        m.set_params(**{param: value}).fit(X)
    np.testing.assert_array_equal(m.encoder_weights_, before)


def test_ctrl_c_keeps_the_best_point_or_the_old_model(monkeypatch):
    from csae import _backends
    real = _backends.Backend.objective_and_gradients
    calls = []

    def interrupt_after(limit):
        def evaluate(self, params, X, **hyper):
            if len(calls) == limit:
                raise KeyboardInterrupt
            calls.append(1)
            return real(self, params, X, **hyper)
        return evaluate

    old = model(max_epochs=3).fit(X)
    before = old.encoder_weights_.copy()
    # Every evaluation goes through objective_and_gradients (not the
    # engine's evaluator, which would bypass the patched method).
    monkeypatch.setattr(_backends.Backend, "objective_evaluator",
                        lambda self, X, n_hidden, **hyper:
                        _backends._PlainEvaluator(self, X, hyper))
    # Interrupted at the first evaluation: no iteration, the old model stays.
    monkeypatch.setattr(_backends.Backend, "objective_and_gradients", interrupt_after(0))
    with pytest.warns(TrainingInterruptedWarning, match="0 iterations"):
        old.fit(X)
    np.testing.assert_array_equal(old.encoder_weights_, before)
    assert old.n_iter_ == 3
    # Interrupted later: the best point of the completed iterations is kept.
    calls.clear()
    monkeypatch.setattr(_backends.Backend, "objective_and_gradients", interrupt_after(20))
    with pytest.warns(TrainingInterruptedWarning, match="best point"):
        old.set_params(max_epochs=400).fit(X)
    assert 1 <= old.n_iter_ < 20 and np.all(np.isfinite(old.encoder_weights_))
    assert old.loss(X) <= min(old.loss_curve_) + 1e-12


def test_command_line_trains_with_lbfgs(tmp_path):
    from csae.cli import main
    data = tmp_path / "bars.npy"
    np.save(data, X)
    out = tmp_path / "m.npz"
    status = main(["train", str(data), "--hidden", "12", "--solver", "lbfgs",
                   "--epochs", "40", "--max-fun", "500", "--tol", "0", "--seed", "0",
                   "--out", str(out), "--quiet"])
    assert status == 0
    m = csae.load(out)
    assert m.solver == "lbfgs" and m.n_iter_ == 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = SparseAutoencoder(**{**m.get_params()}).fit(X)
    np.testing.assert_array_equal(same.encoder_weights_, m.encoder_weights_)
    record = json.loads(str(np.load(out)["hyperparameters"][0]))
    assert record["solver"] == "lbfgs" and record["max_fun"] == 500


def test_fit_is_the_same_on_every_vector_path_and_thread_count():
    """The optimizer's arithmetic is fixed-order and the engine's objective
    bit-identical across the vector paths and thread counts, so the whole
    default fit is: the same n_iter_, loss curve and weights, bit for bit
    (so the documented console sessions hold on any x86-64 CPU with AVX2)."""
    from conftest import engine, kernel_paths
    eng = engine()
    paths = [p for p in ("avx2", "avx512") if p in kernel_paths()]
    if not paths:
        pytest.skip("no vector kernel path on this CPU")
    data = make_bars(600, random_state=3)
    before = eng.get_kernel_path()
    fits = {}
    try:
        for path in paths:
            eng.set_kernel_path(path)
            for n_threads in (1, 2, 3):
                for dtype in ("float64", "float32"):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        m = SparseAutoencoder(n_hidden=20, max_epochs=60, random_state=0,
                                              n_threads=n_threads, dtype=dtype).fit(data)
                    fits.setdefault(dtype, []).append(
                        (m.n_iter_, m.loss_curve_,
                         tuple(a.tobytes() for a in (m.encoder_weights_, m.encoder_bias_,
                                                     m.decoder_weights_, m.decoder_bias_))))
    finally:
        eng.set_kernel_path(before)
    for runs in fits.values():
        assert len(runs) == 3 * len(paths)
        assert all(run == runs[0] for run in runs[1:])
