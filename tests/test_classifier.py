"""SparseAutoencoderClassifier: greedy pretraining, a softmax layer, and
fine-tuning of the whole network with the engine's L-BFGS.

The network it fits is checked against csae.reference (the NumPy twin of
the engine's deep functions), its fine-tuning gradient against finite
differences, and the estimator against scikit-learn's checks and the rules
of the house (bad input refused before anything changes, pickling, the same
bits for any thread count).
"""

import pickle
import tracemalloc
import warnings

import numpy as np
import pytest

from conftest import DTYPES, RTOL, engine

import csae
from csae import reference as ref

eng = engine()

# Tiny networks train in milliseconds; the warnings of a few iterations on
# purpose are not what these tests look at.
QUIET = [pytest.mark.filterwarnings("ignore::csae.DeadUnitsWarning"),
         pytest.mark.filterwarnings("ignore::csae.LearnedNothingWarning")]


def small(**kw):
    settings = dict(hidden_layer_sizes=(12, 8), random_state=0, max_iter=60,
                    softmax_max_iter=60, autoencoder_params=dict(max_epochs=40))
    settings.update(kw)
    return csae.SparseAutoencoderClassifier(**settings)


def blobs(m=150, n=10, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, n))
    y = rng.integers(0, k, m)
    return centers[y] + rng.normal(0, 1, (m, n)), y


def scaled(X):
    """X mapped to [0, 1] per feature, worked out here (not by csae)."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    return (X - lo) / np.where(hi > lo, hi - lo, 1.0)


def quiet_fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


# ---------------------------------------------------------------------------
# The network against the reference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pretrain", [True, False])
def test_probabilities_are_the_reference_network(dtype, pretrain):
    X, y = blobs()
    clf = quiet_fit(small(dtype=np.dtype(dtype).name, pretrain=pretrain), X, y)
    Xs = scaled(X).astype(dtype)
    expected = ref.deep_forward([(W, b) for W, b in clf.layers_], Xs)
    P = clf.predict_proba(X)
    assert P.dtype == dtype and P.shape == (150, 3)
    np.testing.assert_allclose(P, expected, rtol=RTOL[dtype] * 100, atol=RTOL[dtype])
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[P.argmax(axis=1)])
    H = Xs.astype(np.float64)
    for W, b in clf.layers_[:-1]:
        H = 1 / (1 + np.exp(-(H @ W.T + b)))
    np.testing.assert_allclose(clf.encode(X), H, rtol=RTOL[dtype] * 100, atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_fine_tuning_minimises_the_reference_objective(dtype):
    X, y = blobs()
    clf = quiet_fit(small(dtype=np.dtype(dtype).name, alpha=1e-3), X, y)
    Xs = scaled(X).astype(dtype)
    before = ref.deep_objective(list(clf.pretrained_layers_), Xs, y, lam=1e-3)
    after = ref.deep_objective(list(clf.layers_), Xs, y, lam=1e-3)
    assert clf.n_iter_ == len(clf.loss_curve_) >= 1
    # The last value of the curve is the objective of the weights kept.
    assert after == pytest.approx(clf.loss_curve_[-1], rel=RTOL[dtype] * 10)
    assert after < before


def test_fine_tuning_gradient_against_finite_differences():
    # The evaluator fine-tuning runs on, at the classifier's own weights.
    X, y = blobs(m=40, n=5)
    clf = quiet_fit(small(hidden_layer_sizes=(4, 3), max_iter=5), X, y)
    Xs = np.ascontiguousarray(scaled(X))
    layers = [(np.array(W), np.array(b)) for W, b in clf.layers_]
    sizes = [5, 4, 3, 3]
    ev = eng.DeepEvaluator(sizes, Xs, y, lam=0.01)
    theta = np.concatenate([a.ravel() for layer in layers for a in layer])
    grad = np.empty_like(theta)
    ev.evaluate_flat(theta, grad)
    eps, numeric = 1e-5, np.empty_like(theta)
    for i in range(theta.size):
        t = theta.copy()
        t[i] += eps
        up = ev.evaluate_flat(t, np.empty_like(t))
        t[i] -= 2 * eps
        numeric[i] = (up - ev.evaluate_flat(t, np.empty_like(t))) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    _, ref_grads = ref.deep_objective_and_gradients(layers, Xs, y, lam=0.01)
    np.testing.assert_allclose(grad, np.concatenate([a.ravel() for g in ref_grads for a in g]),
                               rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_evaluator_allocates_nothing_per_evaluation(dtype):
    rng = np.random.default_rng(0)
    sizes = [64, 200, 100, 10]
    X = rng.uniform(0, 1, (50, 64)).astype(dtype)
    y = rng.integers(0, 10, 50)
    ev = eng.DeepEvaluator(sizes, X, y, lam=1e-4)
    theta = rng.normal(0, 0.1, ev.n_params)
    grad = np.empty_like(theta)
    ev.evaluate_flat(theta, grad)
    tracemalloc.start()
    try:
        for _ in range(5):
            ev.evaluate_flat(theta, grad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A gradient array per call would be ev.n_params * 8 = 270 kB.
    assert peak < 4096


def test_same_bits_for_any_thread_count():
    X, y = blobs()
    one = quiet_fit(small(n_threads=1), X, y)
    two = quiet_fit(small(n_threads=2), X, y)
    for (W1, b1), (W2, b2) in zip(one.layers_, two.layers_):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)


# ---------------------------------------------------------------------------
# How the network is built
# ---------------------------------------------------------------------------

def test_pretraining_gives_the_autoencoders_layers():
    X, y = blobs()
    clf = quiet_fit(small(max_iter=0), X, y)
    assert len(clf.autoencoders_) == 2
    s = csae.stack(clf.autoencoders_)
    np.testing.assert_array_equal(clf.encode(X), s.transform(X))
    assert clf.n_iter_ == 0
    # Per-layer hyperparameters reach their layer.
    clf = quiet_fit(small(max_iter=0, autoencoder_params=[dict(sparsity_target=0.05),
                                                          dict(weight_decay=0.0)]), X, y)
    p0, p1 = (ae.get_params() for ae in clf.autoencoders_)
    assert (p0["sparsity_target"], p0["weight_decay"]) == (0.05, 1e-4)
    assert (p1["sparsity_target"], p1["weight_decay"]) == (0.1, 0.0)
    assert (p0["n_hidden"], p1["n_hidden"]) == (12, 8)


def test_pretrain_false_starts_from_random_weights():
    X, y = blobs()
    clf = quiet_fit(small(pretrain=False, max_iter=0), X, y)
    assert clf.autoencoders_ is None
    assert [W.shape for W, _ in clf.layers_] == [(12, 10), (8, 12), (3, 8)]
    assert all(not b.any() for _, b in clf.pretrained_layers_)
    # UFLDL's initialisation: uniform in +-sqrt(6 / (h + h_prev + 1)).
    assert np.abs(clf.layers_[0][0]).max() <= np.sqrt(6 / 23)


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_trained_autoencoders(dtype):
    X, y = blobs()
    X = X - X.min()   # the first autoencoder scales it itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae1 = csae.SparseAutoencoder(n_hidden=9, max_epochs=60, random_state=0, dtype=dtype,
                                     sparsity_target=0.1, scale_inputs=True).fit(X)
        ae2 = csae.SparseAutoencoder(n_hidden=5, max_epochs=60, random_state=0, dtype=dtype,
                                     sparsity_target=0.1).fit(ae1.transform(X))
    s = csae.stack(ae1, ae2)
    for given in (s, [ae1, ae2]):
        clf = quiet_fit(csae.SparseAutoencoderClassifier(autoencoders=given, max_iter=0,
                                                         dtype=np.dtype(dtype).name), X, y)
        np.testing.assert_array_equal(clf.encode(X), s.transform(X))
    clf = quiet_fit(csae.SparseAutoencoderClassifier(autoencoders=s, max_iter=30,
                                                     dtype=np.dtype(dtype).name), X, y)
    assert [W.shape for W, _ in clf.layers_] == [(9, 10), (5, 9), (3, 5)]
    assert clf.score(X, y) > 0.9
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_string_labels():
    X, y = blobs()
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = quiet_fit(small(), X, labels)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert set(clf.predict(X)) <= {"cat", "dog", "emu"}
    assert clf.score(X, labels) > 0.9


def test_max_iter_reached_warns():
    X, y = blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", csae.ConvergenceWarning)
        with pytest.warns(csae.ConvergenceWarning, match="max_iter=2"):
            small(max_iter=2, pretrain=False).fit(X, y)


# ---------------------------------------------------------------------------
# Bad input: a clear error, and a fitted model stays as it was
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("change, y_change, error, match", [
    ({}, lambda y: np.zeros_like(y), ValueError, "one class"),
    ({}, lambda y: y[:-1], ValueError, "149 labels but X has 150 rows"),
    ({}, lambda y: np.where(np.arange(y.size) == 3, np.nan, y), ValueError, "NaN"),
    ({}, lambda y: y + 0.5, ValueError, "Unknown label type"),
    ({}, lambda y: None, ValueError, "requires y"),
    ({"hidden_layer_sizes": ()}, None, ValueError, "at least one hidden layer"),
    ({"hidden_layer_sizes": (10, 0)}, None, ValueError, "integers >= 1"),
    ({"hidden_layer_sizes": "10"}, None, ValueError, "integers >= 1"),
    ({"autoencoder_params": {"n_hidden": 3}}, None, ValueError, "may not set 'n_hidden'"),
    ({"autoencoder_params": {"sparsity": 3}}, None, ValueError, "not a SparseAutoencoder"),
    ({"autoencoder_params": [{}]}, None, ValueError, "list of 2 dicts"),
    ({"alpha": -1.0}, None, ValueError, "alpha"),
    ({"max_iter": 1.5}, None, ValueError, "max_iter"),
    ({"dtype": "float16"}, None, ValueError, "dtype"),
])
def test_bad_input_is_refused_and_the_model_kept(change, y_change, error, match):
    X, y = blobs()
    clf = quiet_fit(small(), X, y)
    layers, classes = clf.layers_, clf.classes_
    P = clf.predict_proba(X)
    clf.set_params(**change)
    with pytest.raises(error, match=match):
        clf.fit(X, y_change(y) if y_change else y)
    assert clf.layers_ is layers and clf.classes_ is classes
    np.testing.assert_array_equal(clf.predict_proba(X), P)


def test_autoencoders_that_do_not_chain():
    X, y = blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae1 = csae.SparseAutoencoder(n_hidden=6, max_epochs=5, random_state=0,
                                     scale_inputs=True).fit(X)
        ae2 = csae.SparseAutoencoder(n_hidden=3, max_epochs=5).fit(np.random.default_rng(0)
                                                                   .random((20, 7)))
    with pytest.raises(ValueError, match="do not chain"):
        csae.SparseAutoencoderClassifier(autoencoders=[ae1, ae2]).fit(X, y)
    with pytest.raises(ValueError, match="X has 9 features but the first autoencoder"):
        csae.SparseAutoencoderClassifier(autoencoders=[ae1]).fit(X[:, 1:], y)


def test_unfitted_and_wrong_width():
    X, y = blobs()
    with pytest.raises(csae.NotFittedError):
        small().predict(X)
    clf = quiet_fit(small(), X, y)
    with pytest.raises(ValueError, match="X has 9 features, but SparseAutoencoderClassifier "
                                         "is expecting 10"):
        clf.predict(X[:, 1:])


# ---------------------------------------------------------------------------
# scikit-learn and pickling
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [{}, {"pretrain": False}, {"early_stopping": True},
                                      {"dtype": "float32"}, {"solver": "adam"},
                                      {"solver": "sgd", "early_stopping": True}], ids=str)
def test_check_estimator(settings):
    from sklearn.utils.estimator_checks import check_estimator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(small(hidden_layer_sizes=(6,), **settings))


def test_pickle_round_trip():
    X, y = blobs()
    clf = quiet_fit(small(dtype="float32"), X, np.array(["a", "b", "c"])[y])
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))


def test_grid_search():
    from sklearn.model_selection import GridSearchCV
    X, y = blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(small(), {"alpha": [1e-4, 1e-2]}, cv=2).fit(X, y)
    assert search.best_score_ > 0.8


def test_early_stopping_keeps_the_best_validation_iteration():
    X, y = blobs(m=300, n=10, k=4, seed=3)
    X = X + np.random.default_rng(9).normal(0, 3, X.shape)   # overlapping classes: overfits
    clf = quiet_fit(small(hidden_layer_sizes=(40, 30), max_iter=300, alpha=0.0,
                          early_stopping=True, validation_fraction=0.3, n_iter_no_change=5),
                    X, y)
    curve = clf.validation_loss_curve_
    assert clf.best_iteration_ <= len(curve) <= clf.best_iteration_ + 5
    # Every iteration run is counted, as SparseAutoencoder counts epochs.
    assert len(clf.loss_curve_) == clf.n_iter_ == len(curve) > clf.best_iteration_
    assert curve[clf.best_iteration_ - 1] == min(curve)
    # The kept weights give the best validation loss: recompute it on the
    # held-out rows, drawn as fit draws them.
    rng = np.random.default_rng(csae._validation.derive_seed(0))
    order = rng.permutation(300)
    val = order[:90]
    lo, hi = X[order[90:]].min(axis=0), X[order[90:]].max(axis=0)
    Xv = (X[val] - lo) / (hi - lo)
    loss = ref.deep_objective(list(clf.layers_), Xv, y[val], lam=0.0)
    assert 0 < clf.best_iteration_ < 300   # it stopped early, after improving
    assert loss == pytest.approx(curve[clf.best_iteration_ - 1], rel=1e-9)
    assert quiet_fit(small(), X, y).validation_loss_curve_ is None


def test_early_stopping_bad_fraction():
    X, y = blobs()
    with pytest.raises(ValueError, match="validation_fraction"):
        small(early_stopping=True, validation_fraction=1.0).fit(X, y)
    with pytest.raises(ValueError, match="n_iter_no_change"):
        small(early_stopping=True, n_iter_no_change=0).fit(X, y)


def test_zero_iterations_leave_the_start():
    X, y = blobs()
    clf = quiet_fit(small(softmax_max_iter=0, max_iter=0), X, y)
    W, b = clf.layers_[-1]
    assert not b.any() and np.abs(W).max() < 0.05   # UFLDL's 0.005 * N(0, 1) start
    assert clf.n_iter_ == 0 and clf.loss_curve_ == []


def test_ctrl_c_in_fine_tuning_keeps_the_last_iterate(monkeypatch):
    import csae.deep as deep_module
    X, y = blobs()

    def say(*args, **kwargs):   # the verbose line of iteration 3 meets Ctrl-C
        if args and "iteration 3:" in str(args[0]):
            raise KeyboardInterrupt
    monkeypatch.setattr(deep_module, "print", say, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", csae.TrainingInterruptedWarning)
        with pytest.warns(csae.TrainingInterruptedWarning, match="Ctrl-C"):
            clf = small(verbose=True, pretrain=False).fit(X, y)
    assert clf.n_iter_ == 3
    Xs = scaled(X)
    assert ref.deep_objective(list(clf.layers_), Xs, y, lam=1e-4) == \
        pytest.approx(clf.loss_curve_[-1], rel=1e-10)
