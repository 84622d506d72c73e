"""The estimator contract: training, the forward pass,
the objective, reproducibility, both backends, scaling, assigned weights,
divergence, interrupts and threads.

Expected values come from formulas written out here, from finite
differences, or from a plain SGD loop over ``csae.reference``; never from
the estimator itself.
"""

import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from conftest import assert_close, failing_epoch

import csae
from csae import (
    NotFittedError,
    SparseAutoencoder,
    TrainingDivergedWarning,
    TrainingInterruptedWarning,
)
from csae import reference as ref

NAMES = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")


# --------------------------------------------------------------------------
# Helpers: data, known weights and the model written out by hand
# --------------------------------------------------------------------------

def unit_data(m, n, seed=0):
    return np.random.default_rng(seed).random((m, n))


def random_params(n, h, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((h, n)), 0.1 * rng.standard_normal(h),
            scale * rng.standard_normal((n, h)), 0.1 * rng.standard_normal(n))


def model_with(params, **kwargs):
    """A model built from known weights, without fitting (minibatch SGD
    unless told otherwise)."""
    kwargs = {"solver": "sgd", **kwargs}
    model = SparseAutoencoder(n_hidden=params[0].shape[0], **kwargs)
    for name, value in zip(NAMES, params):
        setattr(model, name + "_", value)
    return model


def weights(model):
    return tuple(np.array(getattr(model, name + "_")) for name in NAMES)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def hand_forward(params, X, decoder):
    """Hidden activations and output in float64, straight from MATH.md."""
    W, b, Wd, bd = (np.asarray(p, dtype=np.float64) for p in params)
    A = sigmoid(X @ W.T + b)
    Z = A @ Wd.T + bd
    return A, (sigmoid(Z) if decoder == "sigmoid" else Z)


def hand_loss(params, X, rho, beta, lam, decoder):
    """The objective of MATH.md in float64 (no saturated units here)."""
    W, _, Wd, _ = (np.asarray(p, dtype=np.float64) for p in params)
    A, Y = hand_forward(params, X, decoder)
    q = A.mean(axis=0)
    kl = rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))
    return (np.sum((Y - X) ** 2) / X.shape[0] + lam * (np.sum(W ** 2) + np.sum(Wd ** 2))
            + beta * np.sum(kl))


# --------------------------------------------------------------------------
# Fitting: shapes, initialisation, the SGD it runs
# --------------------------------------------------------------------------

def test_fit_returns_self_with_fitted_attributes(backend, dtype):
    X = unit_data(50, 6)
    model = SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=3, batch_size=16,
                              backend=backend, dtype=dtype, random_state=0)
    assert model.fit(X) is model
    shapes = [(4, 6), (4,), (6, 4), (6,)]
    for name, shape in zip(NAMES, shapes):
        array = getattr(model, name + "_")
        assert array.shape == shape and array.dtype == dtype
    assert model.n_features_in_ == 6
    assert model.n_iter_ == 3 and len(model.loss_curve_) == 3
    assert all(np.isfinite(model.loss_curve_))
    assert model.transform(X).dtype == dtype


def test_initial_weights_follow_the_default_rule(backend):
    # With a learning rate of 1e-300 the one epoch cannot move the weights,
    # so what fit leaves is the initialisation: W and W' uniform in [-r, r]
    # with r = sqrt(6 / (n + h + 1)), biases zero.
    n, h = 30, 20
    model = SparseAutoencoder(solver="sgd", n_hidden=h, max_epochs=1, learning_rate=1e-300,
                              backend=backend, random_state=5).fit(unit_data(10, n))
    r = np.sqrt(6.0 / (n + h + 1))
    for W in (model.encoder_weights_, model.decoder_weights_):
        assert np.abs(W).max() <= r
        assert np.abs(W).max() > 0.95 * r  # the whole range is used ...
        assert abs(W.mean()) < 0.1 * r     # ... symmetrically
    for b in (model.encoder_bias_, model.decoder_bias_):
        assert np.abs(b).max() < 1e-290


def test_partial_fit_is_one_epoch_of_minibatch_sgd(backend, dtype):
    # shuffle=False: minibatches of 7 rows in row order (the last one has 6),
    # momentum 0.5, checked against a plain loop over the reference's
    # gradients in float64.
    n, h, m = 5, 3, 20
    X = unit_data(m, n, seed=1)
    start = random_params(n, h, seed=2)
    hyper = dict(rho=0.1, beta=0.7, lam=1e-3, decoder="sigmoid")
    lr, mu = 0.5, 0.5
    model = model_with(start, sparsity_target=0.1, sparsity_weight=0.7,
                       weight_decay=1e-3, learning_rate=lr, momentum=mu, batch_size=7,
                       shuffle=False, backend=backend, dtype=dtype)
    for _ in range(2):
        model.partial_fit(X)

    params = [p.copy() for p in start]
    velocity = [np.zeros_like(p) for p in start]
    curve = []
    for _ in range(2):
        total = 0.0
        for lo in range(0, m, 7):
            batch = X[lo:lo + 7]
            loss, grads = ref.objective_and_gradients(tuple(params), batch, **hyper)
            total += loss * len(batch)
            for p, v, g in zip(params, velocity, grads):
                v *= mu
                v -= lr * g
                p += v
        curve.append(total / m)
    # float32 drifts from the float64 loop by rounding only.
    for got, want in zip(weights(model), params):
        assert_close(got, want, dtype)
    assert_close(model.loss_curve_, curve, dtype)
    assert model.n_iter_ == 2


def test_k_partial_fits_equal_fit_with_k_epochs(backend):
    # The random-number state and the momentum velocities carry over from
    # one partial_fit to the next exactly as between the epochs of fit.
    X = unit_data(37, 6, seed=3)
    kwargs = dict(solver="sgd", n_hidden=4, batch_size=8, momentum=0.9, shuffle=True,
                  sparsity_target=0.05, sparsity_weight=3.0, backend=backend,
                  random_state=11)
    fitted = SparseAutoencoder(max_epochs=3, **kwargs).fit(X)
    stepped = SparseAutoencoder(**kwargs)
    for _ in range(3):
        stepped.partial_fit(X)
    for a, b in zip(weights(fitted), weights(stepped)):
        np.testing.assert_array_equal(a, b)
    assert fitted.loss_curve_ == stepped.loss_curve_


def test_each_epoch_continues_the_random_stream(backend, monkeypatch, tmp_path):
    # Spy on the backend: the state init_params returns seeds the first
    # epoch, and each epoch gets the state the previous one returned, across
    # fit, partial_fit and a save/load round trip.
    module = csae.reference if backend == "python" else pytest.importorskip("csae._engine")
    true_init, true_epoch = module.init_params, module.sgd_epoch
    handed_out, received = [], []

    def init_params(*args, **kwargs):
        params, state = true_init(*args, **kwargs)
        handed_out.append(state)
        return params, state

    def sgd_epoch(*args, **kwargs):
        received.append(kwargs["rng_state"])
        loss, state = true_epoch(*args, **kwargs)
        handed_out.append(state)
        return loss, state

    monkeypatch.setattr(module, "init_params", init_params)
    monkeypatch.setattr(module, "sgd_epoch", sgd_epoch)
    X = unit_data(25, 4)
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=2, batch_size=5,
                              backend=backend, random_state=0).fit(X)
    model.partial_fit(X)
    model.save(tmp_path / "model.npz")
    SparseAutoencoder.load(tmp_path / "model.npz").partial_fit(X)
    assert received == handed_out[:4]
    assert len(set(received)) == 4  # shuffling advanced the stream every epoch


def test_fit_starts_again_from_the_same_initialisation(backend):
    X = unit_data(40, 5)
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=2, backend=backend,
                              random_state=4)
    first = weights(model.fit(X))
    model.partial_fit(X)
    assert model.n_iter_ == 3
    second = weights(model.fit(X))
    assert model.n_iter_ == 2
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_random_state_controls_everything_random(backend):
    X = unit_data(40, 5)

    def fitted(random_state):
        return weights(SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=2, batch_size=8,
                                         backend=backend,
                                         random_state=random_state).fit(X))[0]

    np.testing.assert_array_equal(fitted(7), fitted(7))
    assert not np.array_equal(fitted(7), fitted(8))
    assert not np.array_equal(fitted(None), fitted(None))
    np.testing.assert_array_equal(fitted(np.random.default_rng(3)),
                                  fitted(np.random.default_rng(3)))
    np.testing.assert_array_equal(fitted(np.random.RandomState(3)),
                                  fitted(np.random.RandomState(3)))


def test_shuffling_changes_the_visiting_order(backend):
    X = unit_data(40, 5)
    kwargs = dict(solver="sgd", n_hidden=3, max_epochs=1, batch_size=4, backend=backend,
                  random_state=1)
    a = SparseAutoencoder(shuffle=True, **kwargs).fit(X).encoder_weights_
    b = SparseAutoencoder(shuffle=False, **kwargs).fit(X).encoder_weights_
    assert not np.allclose(a, b)


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_c_and_python_backends_agree(dtype, decoder):
    X = unit_data(45, 7, seed=5)
    kwargs = dict(solver="sgd", n_hidden=5, max_epochs=2, batch_size=10, momentum=0.5,
                  shuffle=True, decoder=decoder, dtype=dtype, random_state=123)
    c = SparseAutoencoder(backend="c", **kwargs).fit(X)
    py = SparseAutoencoder(backend="python", **kwargs).fit(X)
    for a, b in zip(weights(c), weights(py)):
        assert_close(a, b, dtype)
    assert_close(c.loss_curve_, py.loss_curve_, dtype)
    assert_close(c.transform(X), py.transform(X), dtype)
    c.partial_fit(X)
    py.partial_fit(X)
    assert_close(c.encoder_weights_, py.encoder_weights_, dtype)


def test_c_backend_gives_identical_bits_for_any_n_threads():
    X = unit_data(300, 24, seed=6)
    results = [SparseAutoencoder(solver="sgd", n_hidden=20, max_epochs=2, batch_size=50,
                                 momentum=0.5, random_state=0, n_threads=t).fit(X).encoder_weights_
               for t in (1, 2, 3)]
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_mean_activation_moves_towards_the_sparsity_target(backend):
    # The point of the KL term: with a heavy sparsity weight the mean
    # hidden activation ends near rho.
    X = unit_data(200, 16, seed=7)
    model = SparseAutoencoder(solver="sgd", n_hidden=10, sparsity_target=0.1, sparsity_weight=5.0,
                              max_epochs=60, batch_size=200, learning_rate=0.5,
                              backend=backend, random_state=0).fit(X)
    assert abs(model.transform(X).mean() - 0.1) < 0.03
    assert model.loss_curve_[-1] < model.loss_curve_[0]


# --------------------------------------------------------------------------
# Using a model: forward pass, objective, gradients
# --------------------------------------------------------------------------

@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_forward_pass_matches_the_formulas(backend, dtype, decoder):
    n, h = 6, 4
    params = random_params(n, h, seed=8)
    X = unit_data(9, n, seed=9)
    model = model_with(params, decoder=decoder, backend=backend, dtype=dtype)
    A, Y = hand_forward([p.astype(dtype) for p in params], X.astype(dtype), decoder)
    assert_close(model.transform(X), A, dtype)
    assert_close(model.reconstruct(X), Y, dtype)
    assert_close(model.inverse_transform(model.transform(X)), Y, dtype)
    H = np.random.default_rng(1).random((3, h))
    W, b, Wd, bd = (p.astype(np.float64) for p in params)
    Z = H @ Wd.T + bd
    assert_close(model.inverse_transform(H), sigmoid(Z) if decoder == "sigmoid" else Z,
                 dtype)


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_loss_is_the_objective_on_one_batch(backend, dtype, decoder):
    n, h = 5, 4
    params = random_params(n, h, seed=10)
    X = unit_data(12, n, seed=11)
    model = model_with(params, decoder=decoder, sparsity_target=0.2, sparsity_weight=1.5,
                       weight_decay=0.01, backend=backend, dtype=dtype)
    cast = [p.astype(dtype) for p in params]
    want = hand_loss(cast, X.astype(dtype).astype(np.float64), 0.2, 1.5, 0.01, decoder)
    assert_close(model.loss(X), want, dtype)
    assert model.score(X) == -model.loss(X)


def test_gradients_match_finite_differences(backend):
    n, h = 4, 3
    params = random_params(n, h, seed=12)
    X = unit_data(10, n, seed=13)
    hyper = dict(rho=0.2, beta=2.0, lam=0.01, decoder="sigmoid")
    model = model_with(params, sparsity_target=0.2, sparsity_weight=2.0, weight_decay=0.01,
                       backend=backend)
    loss, grads = model.loss_and_gradients(X)
    assert set(grads) == set(NAMES)
    assert loss == pytest.approx(hand_loss(params, X, **hyper), rel=1e-12)
    eps = 1e-6
    for index, name in enumerate(NAMES):
        numeric = np.zeros_like(params[index])
        for k in np.ndindex(params[index].shape):
            plus = [p.copy() for p in params]
            minus = [p.copy() for p in params]
            plus[index][k] += eps
            minus[index][k] -= eps
            numeric[k] = (hand_loss(plus, X, **hyper) - hand_loss(minus, X, **hyper)) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8)


def test_check_gradients_is_small_for_the_true_gradient(backend, dtype):
    # Computed on a float64 copy: even a float32 model checks to ~1e-9
    # (in float32 the differences alone would err by ~1e-3).
    X = unit_data(15, 5, seed=14)
    model = SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=2, batch_size=5,
                              backend=backend, dtype=dtype, random_state=0).fit(X)
    before = weights(model)
    error, details = csae.check_gradients(model, X, return_details=True)
    assert error < 1e-6 and set(details) == set(NAMES)
    for a, b in zip(before, weights(model)):
        np.testing.assert_array_equal(a, b)  # the model itself is untouched
    assert csae.check_gradients(model, X, max_entries=3) < 1e-6


def test_check_gradients_detects_a_wrong_gradient(monkeypatch):
    # Plant the slip MATH.md warns about (weight decay gradient 2 W instead
    # of 2 lambda W) in the reference and make sure the check notices.
    true = ref.objective_and_gradients

    def slipped(params, X, **kwargs):
        if not kwargs.get("need_gradients", True):  # reference.objective calls us
            return true(params, X, **kwargs)
        loss, (dW, db, dWd, dbd) = true(params, X, **kwargs)
        lam = kwargs["lam"]
        return loss, (dW - 2 * lam * params[0] + 2 * params[0], db, dWd, dbd)

    monkeypatch.setattr(ref, "objective_and_gradients", slipped)
    X = unit_data(15, 5, seed=15)
    model = model_with(random_params(5, 3), backend="python", weight_decay=0.01)
    error, details = csae.check_gradients(model, X, return_details=True)
    assert error > 1e-2
    assert details["encoder_weights"] == error and details["decoder_bias"] < 1e-6


def test_fit_transform_equals_fit_then_transform(backend):
    X = unit_data(30, 5)
    kwargs = dict(n_hidden=3, max_epochs=2, backend=backend, random_state=0)
    np.testing.assert_array_equal(SparseAutoencoder(**kwargs).fit_transform(X),
                                  SparseAutoencoder(**kwargs).fit(X).transform(X))


# --------------------------------------------------------------------------
# scale_inputs
# --------------------------------------------------------------------------

def test_scale_inputs_maps_features_to_the_unit_interval(backend):
    rng = np.random.default_rng(16)
    X = rng.uniform(-5.0, 20.0, size=(30, 4))
    X[:, 2] = 3.0  # a constant feature must not divide by zero
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = (X - lo) / span
    assert scaled.min() >= 0 and scaled.max() <= 1

    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=3, scale_inputs=True,
                              backend=backend, random_state=0).fit(X)
    params = weights(model)
    A, Y = hand_forward(params, scaled, "sigmoid")
    np.testing.assert_allclose(model.transform(X), A, rtol=1e-10)
    np.testing.assert_allclose(model.reconstruct(X), Y * span + lo, rtol=1e-10)
    np.testing.assert_allclose(model.inverse_transform(A), Y * span + lo, rtol=1e-10)
    # loss is the objective of the scaled problem
    plain = model_with(params, backend=backend)
    assert model.loss(X) == pytest.approx(plain.loss(scaled), rel=1e-12)
    # the range learned on the first fit stays fixed for later data
    Z = X[:5] * 2.0
    np.testing.assert_allclose(model.transform(Z),
                               hand_forward(params, (Z - lo) / span, "sigmoid")[0],
                               rtol=1e-10)


def test_scale_inputs_range_is_learned_by_the_first_partial_fit_only(backend):
    X = unit_data(20, 3) * 10
    # The linear decoder reconstructs any value; the sigmoid decoder refuses
    # data outside the learned range (test_guarantees_transaction.py).
    model = SparseAutoencoder(solver="sgd", n_hidden=2, scale_inputs=True, backend=backend,
                              decoder="linear", random_state=0)
    model.partial_fit(X)
    before = model.transform(X)
    model.partial_fit(X * 3)  # outside the learned range: allowed, not re-learned
    lo, hi = X.min(axis=0), X.max(axis=0)
    np.testing.assert_allclose(
        model.transform(X),
        hand_forward(weights(model), (X - lo) / (hi - lo), "sigmoid")[0], rtol=1e-10)
    assert before.shape == (20, 2)


# --------------------------------------------------------------------------
# Weights as attributes
# --------------------------------------------------------------------------

def test_assigning_all_four_weights_makes_a_usable_model(backend, dtype):
    params = random_params(5, 3, seed=17)
    model = SparseAutoencoder(solver="sgd", n_hidden=3, backend=backend, dtype=dtype)
    assert not hasattr(model, "encoder_weights_")
    model.decoder_bias_ = params[3]
    model.encoder_weights_ = params[0]
    with pytest.raises(NotFittedError, match="encoder_bias_"):
        model.transform(unit_data(2, 5))
    model.encoder_bias_ = params[1]
    model.decoder_weights_ = params[2]
    assert model.n_features_in_ == 5 and model.n_iter_ == 0
    for got, want in zip(weights(model), params):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want.astype(dtype))
    model.partial_fit(unit_data(10, 5))  # trainable too
    assert model.n_iter_ == 1


def test_assigned_weights_are_copied_checked_and_used(backend):
    params = random_params(4, 3, seed=18)
    model = model_with(params, backend=backend)
    X = unit_data(6, 4)
    new_W = params[0] * 2
    model.encoder_weights_ = new_W
    new_W[:] = 0  # the model keeps its own copy
    np.testing.assert_allclose(model.transform(X),
                               hand_forward((params[0] * 2,) + params[1:], X, "sigmoid")[0],
                               rtol=1e-12)
    before = weights(model)
    with pytest.raises(ValueError, match=r"encoder_weights_ must have shape \(3, 4\)"):
        model.encoder_weights_ = np.zeros((3, 5))
    with pytest.raises(ValueError, match="decoder_bias_ contains NaN"):
        model.decoder_bias_ = np.full(4, np.nan)
    with pytest.raises(TypeError, match="encoder_bias_"):
        model.encoder_bias_ = np.array(["a", "b", "c"])
    for a, b in zip(before, weights(model)):
        np.testing.assert_array_equal(a, b)


def test_assigned_hidden_size_must_match_n_hidden():
    with pytest.raises(ValueError, match=r"must have shape \(4, 3\)"):
        SparseAutoencoder(solver="sgd", n_hidden=4).encoder_weights_ = np.zeros((2, 3))


def test_weight_attributes_are_read_only_snapshots(backend):
    X = unit_data(20, 4)
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=1, backend=backend,
                              random_state=0).fit(X)
    W = model.encoder_weights_
    saved = W.copy()
    with pytest.raises(ValueError, match="read-only"):
        W[0, 0] = 1.0
    model.partial_fit(X)
    np.testing.assert_array_equal(W, saved)  # training did not write into it
    assert not np.array_equal(model.encoder_weights_, saved)


# --------------------------------------------------------------------------
# Divergence, interrupts, verbose, threads
# --------------------------------------------------------------------------

def test_divergence_warns_and_keeps_the_model_usable(backend, tmp_path):
    # A diverging fit leaves the model as it was (test_guarantees_transaction.py checks
    # bit for bit); here: a fitted model stays usable and savable.
    X = np.random.default_rng(19).normal(0, 100, size=(40, 6))
    model = SparseAutoencoder(solver="sgd", n_hidden=4, decoder="linear", learning_rate=1e-6,
                              max_epochs=2, batch_size=10, backend=backend,
                              random_state=0).fit(X)
    with pytest.warns(TrainingDivergedWarning,
                      match=r"epoch \d+.*smaller learning_rate"):
        assert model.set_params(learning_rate=1e3, max_epochs=50).fit(X) is model
    assert model.n_iter_ == 2
    assert all(np.isfinite(w).all() for w in weights(model))
    assert np.isfinite(model.transform(X)).all()
    model.save(tmp_path / "diverged.npz")
    for a, b in zip(weights(csae.load(tmp_path / "diverged.npz")), weights(model)):
        np.testing.assert_array_equal(a, b)


def test_keyboard_interrupt_keeps_the_model_and_warns(backend, monkeypatch):
    # Simulated Ctrl-C in the third epoch; the subprocess test below sends a
    # real SIGINT.
    failing_epoch(monkeypatch, backend, KeyboardInterrupt, on_call=3)
    X = unit_data(30, 5)
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=10, backend=backend,
                              random_state=0)
    with pytest.warns(TrainingInterruptedWarning, match="interrupted during epoch 3"):
        assert model.fit(X) is model
    assert model.n_iter_ == 2
    assert np.isfinite(model.transform(X)).all()


_SIGINT_SCRIPT = textwrap.dedent("""
    import signal, sys, time, warnings
    # A background job of a non-interactive shell starts with SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler: install it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import numpy as np
    from csae import SparseAutoencoder, load
    backend, solver, path = sys.argv[1], sys.argv[2], sys.argv[3]
    # One L-BFGS evaluation is one uninterruptible engine call over all the
    # data: on the large set it alone can take longer than the bound.
    shape = (20000, 256) if backend == "c" and solver != "lbfgs" else (4000, 64)
    X = np.random.default_rng(0).random(shape)
    kw = dict(solver=solver, n_hidden=64, tol=0, backend=backend, random_state=0)
    if solver != "lbfgs":
        kw.update(batch_size=50)
    if solver == "adam":
        kw.update(learning_rate=0.001, sparsity_estimate="running")
    # Ctrl-C before the first epoch of the long fit completes keeps this
    # one-epoch model; later, the long fit's completed epochs.
    model = SparseAutoencoder(max_epochs=1, **kw).fit(X[:500])
    model.set_params(max_epochs=10**6, max_fun=10**9)
    print("STARTED", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X)
    returned = time.monotonic()
    finite = all(np.isfinite(a).all() for a in (model.encoder_weights_,
                 model.encoder_bias_, model.decoder_weights_, model.decoder_bias_))
    model.save(path)
    load(path)
    print("RESULT", returned, finite, [w.category.__name__ for w in caught], flush=True)
""")


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sigint_during_fit_stops_within_half_a_second(backend, solver, tmp_path):
    path = tmp_path / "interrupted.npz"
    # The child must import the very csae under test (in place or installed).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(csae.__file__))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.Popen([sys.executable, "-c", _SIGINT_SCRIPT, backend, solver, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=env)
    try:
        assert proc.stdout.readline().strip() == "STARTED"
        time.sleep(0.5)  # well inside training
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    result = [line for line in out.splitlines() if line.startswith("RESULT")][0].split(" ", 3)
    # CLOCK_MONOTONIC is shared by the two processes on Linux.
    assert float(result[1]) - sent < 0.5
    assert result[2] == "True"
    assert "TrainingInterruptedWarning" in result[3]
    assert path.exists()


def test_verbose_prints_one_line_per_epoch(backend, capsys):
    # Four epochs: verbose=1 shows the first, the last and ~10 in between,
    # so all four, then the line saying why fit stopped.
    X = unit_data(30, 5)
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=4, backend=backend,
                              random_state=0, verbose=True).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5
    for k, (line, loss) in enumerate(zip(lines, model.loss_curve_), start=1):
        assert line.startswith(f"epoch {k}:")
        assert f"objective {loss:.6g}" in line
        assert "mean activation" in line and line.endswith(" s")
    assert lines[-1].startswith("reached max_epochs (4 epochs")


def test_transform_from_many_threads_equals_serial(backend):
    X = unit_data(400, 32, seed=20)
    model = SparseAutoencoder(solver="sgd", n_hidden=16, max_epochs=1, backend=backend,
                              random_state=0).fit(X)
    serial = model.transform(X)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: model.transform(X), range(16)))
    for result in results:
        np.testing.assert_array_equal(result, serial)


def test_training_one_model_while_another_transforms(backend):
    X = unit_data(300, 16, seed=21)
    a = SparseAutoencoder(solver="sgd", n_hidden=8, max_epochs=1, backend=backend,
                          random_state=0).fit(X)
    expected = a.transform(X)
    b = SparseAutoencoder(solver="sgd", n_hidden=8, max_epochs=5, backend=backend, random_state=1)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        fitting = pool.submit(b.fit, X)
        outputs = [pool.submit(a.transform, X) for _ in range(10)]
        fitting.result()
        for out in outputs:
            np.testing.assert_array_equal(out.result(), expected)
    reference = SparseAutoencoder(solver="sgd", n_hidden=8, max_epochs=5, backend=backend,
                                  random_state=1).fit(X)
    np.testing.assert_array_equal(b.encoder_weights_, reference.encoder_weights_)


def test_changing_dtype_after_fit_takes_effect(backend):
    X = unit_data(20, 4)
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=1, backend=backend,
                              random_state=0).fit(X)
    model.set_params(dtype=np.float32)
    assert model.transform(X).dtype == np.float32
    model.partial_fit(X)
    assert model.encoder_weights_.dtype == np.float32


def test_python_backend_ignores_n_threads():
    X = unit_data(20, 4)
    a = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=1, backend="python", random_state=0,
                          n_threads=1).fit(X)
    b = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=1, backend="python", random_state=0,
                          n_threads=7).fit(X)
    np.testing.assert_array_equal(a.encoder_weights_, b.encoder_weights_)


def test_no_stray_warnings_from_a_normal_fit(backend):
    # Two epochs end at max_epochs before the stopping rule is met: the
    # ConvergenceWarning that says so is the only warning expected.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=csae.ConvergenceWarning)
        SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=2, backend=backend,
                          random_state=0).fit(unit_data(20, 4))


def test_a_model_pickled_by_an_earlier_csae_still_unpickles():
    """Before ModelState the trained state was one attribute per field;
    such a pickle must load into the same model."""
    X = unit_data(30, 5)
    model = SparseAutoencoder(solver="sgd", n_hidden=3, momentum=0.5, max_epochs=2,
                              scale_inputs=True, random_state=0).fit(X)
    state = model._state
    legacy = {name: getattr(model, name) for name in model._get_param_names()}
    legacy.update(_params=tuple(np.array(p) for p in state.params),
                  _velocity=tuple(np.array(v) for v in state.velocity),
                  _rng_state=state.rng_state, _data_min=np.array(state.data_min),
                  _data_scale=np.array(state.data_scale),
                  _loss_curve=list(state.loss_curve), _pending={}, _validated=True)
    old = SparseAutoencoder.__new__(SparseAutoencoder)
    old.__setstate__(legacy)
    np.testing.assert_array_equal(old.transform(X), model.transform(X))
    assert old.loss_curve_ == model.loss_curve_
    old.partial_fit(X)
    model.partial_fit(X)
    for a, b in zip(weights(old), weights(model)):
        np.testing.assert_array_equal(a, b)
