"""SparseAutoencoderClassifier's minibatch fine-tuning (solver="adam" and
"sgd"): the engine's flat update against a NumPy reference, the minibatch
gradient against the reference network, the rules of training (stopping,
early stopping, warnings, Ctrl-C, divergence, bad input), the same bits on
every thread count and vector path, and what it reaches on the digits
compared with L-BFGS.
"""

import warnings

import numpy as np
import pytest

from conftest import DTYPES, engine, kernel_paths

import csae
from csae import reference as ref

eng = engine()
VECTOR_PATHS = [p for p in ("avx2", "avx512") if p in kernel_paths()]
QUIET = [pytest.mark.filterwarnings("ignore::csae.DeadUnitsWarning"),
         pytest.mark.filterwarnings("ignore::csae.LearnedNothingWarning")]


def blobs(m=150, n=10, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, n))
    y = rng.integers(0, k, m)
    return centers[y] + rng.normal(0, 1, (m, n)), y


def small(**kw):
    settings = dict(hidden_layer_sizes=(12, 8), random_state=0, max_iter=30,
                    softmax_max_iter=60, autoencoder_params=dict(max_epochs=40),
                    solver="adam", learning_rate=0.01, batch_size=32)
    settings.update(kw)
    return csae.SparseAutoencoderClassifier(**settings)


def quiet_fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def objective(layers, X, y, lam=1e-4):
    """The full training objective of ``layers`` on X (scaled as fit scales
    it, worked out here), by the NumPy reference."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    Xs = (X - lo) / np.where(hi > lo, hi - lo, 1.0)
    return ref.deep_objective([tuple(np.asarray(a, np.float64) for a in layer)
                               for layer in layers], Xs, y, lam=lam)


# ---------------------------------------------------------------------------
# The engine's flat step against NumPy
# ---------------------------------------------------------------------------

def numpy_steps(theta, grads, dtype, solver, lr, mu=0.0, b1=0.9, b2=0.999, eps=1e-8):
    """The update of docs/math.md, written out in NumPy in the model dtype
    (each operation rounded as the engine rounds it)."""
    d = dtype.type
    theta, vel = theta.copy(), np.zeros_like(theta)
    m1, m2 = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        if solver == "adam":
            lr_t = d(lr * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t))
            m1 = d(b1) * m1 + (d(1) - d(b1)) * g
            m2 = d(b2) * m2 + (d(1) - d(b2)) * (g * g)
            theta = theta - lr_t * m1 / (np.sqrt(m2) + d(eps))
        elif mu:
            vel = d(mu) * vel - d(lr) * g
            theta = theta + vel
        else:
            theta = theta - d(lr) * g
    return theta


@pytest.mark.parametrize("dtype", [np.dtype(d) for d in DTYPES], ids=lambda d: d.name)
@pytest.mark.parametrize("solver, mu", [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.0)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_flat_step_is_the_numpy_update(dtype, solver, mu, n_threads, kernel_path):
    # Above the engine's 2^16 elements, so that 2 threads split the vector.
    rng = np.random.default_rng(4)
    n = 70001
    theta0 = rng.normal(size=n).astype(dtype)
    grads = [rng.normal(size=n).astype(dtype) for _ in range(3)]
    step = eng.FlatStep(n, dtype, solver=solver, learning_rate=0.01, momentum=mu,
                        n_threads=n_threads)
    theta = theta0.copy()
    for g in grads:
        step.step(theta, g)
    expected = numpy_steps(theta0, grads, dtype, solver, 0.01, mu)
    assert theta.tobytes() == expected.tobytes()
    assert step.t == (3 if solver == "adam" else 0)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_flat_step_that_overflows_changes_nothing(solver):
    step = eng.FlatStep(5, np.float64, solver=solver, learning_rate=0.1, momentum=0.5)
    theta = np.arange(5.0)
    step.step(theta, np.ones(5))
    before, t = theta.copy(), step.t
    bad = np.ones(5)
    bad[3] = np.inf
    with pytest.raises(csae.NonFiniteError):
        step.step(theta, bad)
    np.testing.assert_array_equal(theta, before)
    assert step.t == t
    step.step(theta, np.ones(5))   # the state was not poisoned either
    assert np.isfinite(theta).all()


@pytest.mark.parametrize("kw, match", [
    (dict(solver="lbfgs"), "solver"), (dict(learning_rate=0.0), "learning_rate"),
    (dict(learning_rate=np.nan), "learning_rate"), (dict(momentum=1.0), "momentum"),
    (dict(solver="adam", beta_1=1.0), "beta_1"), (dict(solver="adam", epsilon=0.0), "epsilon"),
])
def test_flat_step_bad_settings(kw, match):
    settings = dict(solver="sgd", learning_rate=0.1)
    settings.update(kw)
    with pytest.raises(ValueError, match=match):
        eng.FlatStep(4, np.float64, **settings)
    step = eng.FlatStep(4, np.float64, solver="sgd", learning_rate=0.1)
    with pytest.raises(TypeError, match="dtype"):
        step.step(np.zeros(4, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="4 entries"):
        step.step(np.zeros(5), np.zeros(5))


# ---------------------------------------------------------------------------
# The minibatch gradient
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.dtype(d) for d in DTYPES], ids=lambda d: d.name)
def test_evaluate_rows_is_the_reference_on_those_rows(dtype):
    from test_deep import make_net
    params, X, y = make_net([9, 7, 5, 3], 40, dtype, seed=2)
    ev = eng.DeepEvaluator([9, 7, 5, 3], X, y, lam=1e-3)
    theta = np.concatenate([a.ravel() for layer in params for a in layer]).astype(dtype)
    grad = np.empty_like(theta)
    loss = ev.evaluate_rows(theta, grad, 10, 27)
    params64 = [tuple(a.astype(np.float64) for a in layer) for layer in params]
    J, grads = ref.deep_objective_and_gradients(params64, X[10:27].astype(np.float64),
                                                y[10:27], lam=1e-3)
    flat = np.concatenate([g.ravel() for pair in grads for g in pair])
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    assert loss == pytest.approx(J, rel=rtol)
    np.testing.assert_allclose(grad, flat, rtol=rtol, atol=rtol * np.abs(flat).max())
    with pytest.raises(ValueError, match="rows"):
        ev.evaluate_rows(theta, grad, 30, 41)


@pytest.mark.parametrize("dtype", [np.dtype(d) for d in DTYPES], ids=lambda d: d.name)
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_minibatch_allocates_nothing(dtype, solver):
    import tracemalloc
    rng = np.random.default_rng(0)
    sizes = [64, 200, 100, 10]
    X = rng.uniform(0, 1, (300, 64)).astype(dtype)
    ev = eng.DeepEvaluator(sizes, X, rng.integers(0, 10, 300), lam=1e-4)
    theta = rng.normal(0, 0.1, ev.n_params).astype(dtype)
    grad = np.empty_like(theta)
    step = eng.FlatStep(ev.n_params, dtype, solver=solver, learning_rate=1e-3, momentum=0.9)
    ev.evaluate_rows(theta, grad, 0, 100)
    step.step(theta, grad)
    tracemalloc.start()
    try:
        for lo in range(0, 300, 100):
            ev.evaluate_rows(theta, grad, lo, lo + 100)
            step.step(theta, grad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A gradient or state array per minibatch would be n_params * 4 >= 140 kB.
    assert peak < 4096


# ---------------------------------------------------------------------------
# On the digits, against L-BFGS
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_fits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    train, test = slice(0, 1200), slice(1200, None)
    common = dict(hidden_layer_sizes=(32,), random_state=0,
                  autoencoder_params=dict(max_epochs=100))
    fits = {}
    for solver, kw in (("lbfgs", {}), ("adam", dict(max_iter=100, learning_rate=0.001)),
                       ("sgd", dict(max_iter=100, learning_rate=0.01, momentum=0.9))):
        clf = csae.SparseAutoencoderClassifier(solver=solver, **common, **kw)
        fits[solver] = quiet_fit(clf, X[train], y[train])
    return fits, X[train], y[train], X[test], y[test]


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_minibatch_fine_tuning_on_the_digits(digits_fits, solver):
    fits, X, y, Xt, yt = digits_fits
    clf, lbfgs = fits[solver], fits["lbfgs"]
    # The solver changes fine-tuning only: the same pretrained start.
    for a, b in zip(clf.pretrained_layers_, lbfgs.pretrained_layers_):
        np.testing.assert_array_equal(a[0], b[0])
    start = objective(clf.pretrained_layers_, X, y)
    end = objective(clf.layers_, X, y)
    assert end < 0.8 * start
    assert clf.n_iter_ == len(clf.loss_curve_) == 100
    # Test accuracy within 2 points of L-BFGS's (about 93% here), and above
    # the pretrained network's under the softmax layer alone.
    frozen = csae.SparseAutoencoderClassifier(hidden_layer_sizes=(32,), random_state=0,
                                              autoencoder_params=dict(max_epochs=100),
                                              max_iter=0)
    frozen = quiet_fit(frozen, X, y)
    accuracy = clf.score(Xt, yt)
    assert accuracy >= lbfgs.score(Xt, yt) - 0.02
    assert accuracy > frozen.score(Xt, yt)


# ---------------------------------------------------------------------------
# The same bits
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_bits_for_any_thread_count(solver, dtype):
    X, y = blobs()
    one = quiet_fit(small(solver=solver, dtype=dtype, n_threads=1), X, y)
    two = quiet_fit(small(solver=solver, dtype=dtype, n_threads=2), X, y)
    for (W1, b1), (W2, b2) in zip(one.layers_, two.layers_):
        assert W1.tobytes() == W2.tobytes() and b1.tobytes() == b2.tobytes()
    assert one.loss_curve_ == two.loss_curve_


@pytest.mark.skipif(len(VECTOR_PATHS) < 2, reason="needs both the avx2 and avx512 paths")
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_same_bits_across_vector_paths(solver):
    X, y = blobs()
    before = eng.get_kernel_path()
    fits = []
    try:
        for path in VECTOR_PATHS:
            eng.set_kernel_path(path)
            fits.append(quiet_fit(small(solver=solver, n_threads=2), X, y))
    finally:
        eng.set_kernel_path(before)
    for (W1, b1), (W2, b2) in zip(fits[0].layers_, fits[1].layers_):
        assert W1.tobytes() == W2.tobytes() and b1.tobytes() == b2.tobytes()


# ---------------------------------------------------------------------------
# The rules of training
# ---------------------------------------------------------------------------

def test_early_stopping_keeps_the_best_validation_epoch():
    X, y = blobs(m=300, n=10, k=4, seed=3)
    X = X + np.random.default_rng(9).normal(0, 3, X.shape)   # overlapping classes: overfits
    clf = quiet_fit(small(hidden_layer_sizes=(40, 30), max_iter=300, alpha=0.0,
                          learning_rate=0.003, early_stopping=True, validation_fraction=0.3,
                          n_iter_no_change=5), X, y)
    curve = clf.validation_loss_curve_
    assert len(clf.loss_curve_) == clf.n_iter_ == len(curve) < 300   # stopped early
    assert 0 < clf.best_iteration_ < clf.n_iter_
    assert curve[clf.best_iteration_ - 1] == min(curve)
    rng = np.random.default_rng(csae._validation.derive_seed(0))
    order = rng.permutation(300)
    val = order[:90]
    lo, hi = X[order[90:]].min(axis=0), X[order[90:]].max(axis=0)
    loss = ref.deep_objective(list(clf.layers_), (X[val] - lo) / (hi - lo), y[val], lam=0.0)
    assert loss == pytest.approx(curve[clf.best_iteration_ - 1], rel=1e-9)


def test_max_iter_reached_warns():
    X, y = blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", csae.ConvergenceWarning)
        with pytest.warns(csae.ConvergenceWarning, match="max_iter=3"):
            small(max_iter=3, pretrain=False).fit(X, y)
    with warnings.catch_warnings():   # tol=0 switches the rule and its warning off
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", csae.ConvergenceWarning)
        small(max_iter=3, pretrain=False, tol=0.0).fit(X, y)


def test_tol_stops_when_the_objective_stops_improving():
    X, y = blobs()
    clf = quiet_fit(small(max_iter=500, tol=0.5, n_iter_no_change=2), X, y)
    assert clf.n_iter_ < 500


def test_divergence_keeps_the_previous_model_and_says_why():
    X, y = blobs()
    clf = quiet_fit(small(), X, y)
    layers, P = clf.layers_, clf.predict_proba(X)
    clf.set_params(solver="sgd", learning_rate=1e30, momentum=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", csae.TrainingDivergedWarning)
        with pytest.warns(csae.TrainingDivergedWarning, match="left as it was"):
            clf.fit(X, y)
    assert clf.layers_ is layers
    np.testing.assert_array_equal(clf.predict_proba(X), P)
    fresh = small(solver="sgd", learning_rate=1e30, momentum=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", csae.TrainingDivergedWarning)
        with pytest.warns(csae.TrainingDivergedWarning, match="stays unfitted"):
            fresh.fit(X, y)
    with pytest.raises(csae.NotFittedError):
        fresh.predict(X)


def test_ctrl_c_keeps_the_last_completed_epoch(monkeypatch):
    import csae.solvers.flat as flat
    X, y = blobs()
    real, calls = flat._epoch, []

    def epoch(*args):
        calls.append(1)
        if len(calls) == 4:   # Ctrl-C in the fourth epoch
            raise KeyboardInterrupt
        return real(*args)
    monkeypatch.setattr(flat, "_epoch", epoch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", csae.TrainingInterruptedWarning)
        with pytest.warns(csae.TrainingInterruptedWarning, match="after epoch 3"):
            clf = small(pretrain=False).fit(X, y)
    monkeypatch.setattr(flat, "_epoch", real)
    three = quiet_fit(small(pretrain=False, max_iter=3), X, y)
    assert clf.n_iter_ == 3
    for (W1, b1), (W2, b2) in zip(clf.layers_, three.layers_):
        assert W1.tobytes() == W2.tobytes() and b1.tobytes() == b2.tobytes()


def test_ctrl_c_with_early_stopping_keeps_the_best_epoch_so_far(monkeypatch):
    import csae.solvers.flat as flat
    X, y = blobs(m=300, n=10, k=4, seed=3)
    X = X + np.random.default_rng(9).normal(0, 3, X.shape)
    real, calls = flat._epoch, []

    def epoch(*args):
        calls.append(1)
        if len(calls) == 7:   # after the best epoch (3) and before the rule stops (8)
            raise KeyboardInterrupt
        return real(*args)
    monkeypatch.setattr(flat, "_epoch", epoch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", csae.TrainingInterruptedWarning)
        with pytest.warns(csae.TrainingInterruptedWarning, match="lowest validation"):
            clf = small(hidden_layer_sizes=(40, 30), max_iter=300, alpha=0.0,
                        learning_rate=0.003, early_stopping=True, validation_fraction=0.3,
                        n_iter_no_change=5).fit(X, y)
    curve = clf.validation_loss_curve_
    assert clf.n_iter_ == len(curve) == 6
    assert clf.best_iteration_ == int(np.argmin(curve)) + 1 < 6
    rng = np.random.default_rng(csae._validation.derive_seed(0))
    order = rng.permutation(300)
    lo, hi = X[order[90:]].min(axis=0), X[order[90:]].max(axis=0)
    loss = ref.deep_objective(list(clf.layers_), (X[order[:90]] - lo) / (hi - lo),
                              y[order[:90]], lam=0.0)
    assert loss == pytest.approx(min(curve), rel=1e-9)


@pytest.mark.parametrize("change, match", [
    ({"solver": "lbfgsb"}, "solver must be one of"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"learning_rate": 1e-50, "dtype": "float32"}, "learning_rate rounds to 0 in float32"),
    ({"momentum": 1.0}, "momentum"),
    ({"batch_size": 0}, "batch_size"),
    ({"beta_1": 1.0}, "beta_1"),
    ({"beta_2": -0.1}, "beta_2"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"shuffle": "yes"}, "shuffle"),
])
def test_bad_settings_are_refused_and_the_model_kept(change, match):
    X, y = blobs()
    clf = quiet_fit(small(), X, y)
    layers = clf.layers_
    clf.set_params(**change)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert clf.layers_ is layers


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_shuffle_and_full_batch(dtype):
    X, y = blobs()
    clf = quiet_fit(small(dtype=dtype, shuffle=False, batch_size=10**9, max_iter=5,
                          pretrain=False, tol=0.0), X, y)
    # Five full-batch Adam steps: loss_curve_ is the objective before each.
    assert clf.n_iter_ == 5
    assert clf.loss_curve_[0] == pytest.approx(objective(clf.pretrained_layers_, X, y),
                                               rel=1e-10 if dtype == np.float64 else 1e-5)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
