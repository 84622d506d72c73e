"""Each training warning: triggered by the situation it names, naming the
problem and the fix, attributed to the caller's line (stacklevel), and
documented and exported by csae; healthy runs raise none of them."""

import inspect
import warnings

import numpy as np
import pytest

import csae
import csae.reference
from csae import SparseAutoencoder
from csae.datasets import make_bars

X = make_bars(300, size=6, random_state=0)


def caught(call):
    """The warnings ``call()`` raised (all of them, filters aside)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    return record


def only(record, category):
    found = [w for w in record if issubclass(w.category, category)]
    assert found, f"no {category.__name__} among {[w.category.__name__ for w in record]}"
    return found


def test_every_warning_is_exported_and_documented():
    for name in ("TrainingDivergedWarning", "TrainingInterruptedWarning", "DeadUnitsWarning",
                 "LearnedNothingWarning", "ConvergenceWarning"):
        cls = getattr(csae, name)
        assert name in csae.__all__
        assert issubclass(cls, UserWarning)
        assert len(inspect.getdoc(cls)) > 100, name


def test_convergence_warning_is_scikit_learns():
    sklearn_exceptions = pytest.importorskip("sklearn.exceptions")
    assert issubclass(csae.ConvergenceWarning, sklearn_exceptions.ConvergenceWarning)
    # A filter on scikit-learn's class silences csae's.
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", sklearn_exceptions.ConvergenceWarning)
        SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=2, random_state=0).fit(X)
    assert not [w for w in record if issubclass(w.category, csae.ConvergenceWarning)]


def test_convergence_warning_when_max_epochs_ends_first(backend):
    record = caught(lambda: SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=2,
                                              backend=backend, random_state=0).fit(X))
    w, = only(record, csae.ConvergenceWarning)
    assert w.filename == __file__
    message = str(w.message)
    assert "max_epochs=2" in message and "Raise max_epochs" in message and "tol=0" in message


# Data on which the linear decoder's unbounded reconstruction can diverge.
WIDE = np.random.default_rng(19).normal(0, 100, size=(40, 6))


def test_divergence_names_the_fix_and_points_at_the_caller(backend):
    m = SparseAutoencoder(solver="sgd", n_hidden=4, decoder="linear", learning_rate=1e3,
                          batch_size=10, max_epochs=5, backend=backend, random_state=0)
    X = WIDE
    record = caught(lambda: m.fit(X))
    w, = only(record, csae.TrainingDivergedWarning)
    assert w.filename == __file__
    assert "smaller learning_rate" in str(w.message)
    record = caught(lambda: m.partial_fit(X))
    w, = only(record, csae.TrainingDivergedWarning)
    assert w.filename == __file__


def test_divergence_keeps_the_best_finite_epoch(backend):
    """Epochs that improve, then a step size that blows up: the model keeps
    the completed epoch with the lowest objective, usable and savable."""
    module = csae.reference if backend == "python" else pytest.importorskip("csae._engine")
    true_epoch = module.sgd_epoch
    calls = []

    def epoch(params, velocity, X, **kw):
        calls.append(1)
        if len(calls) >= 4:  # from the 4th epoch on, a huge step
            kw["learning_rate"] = 1e6
        return true_epoch(params, velocity, X, **kw)

    settings = dict(solver="sgd", n_hidden=4, decoder="linear", learning_rate=1e-5,
                    batch_size=10, tol=0, backend=backend, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three tiny steps learn nothing yet
        reference = SparseAutoencoder(max_epochs=3, **settings).fit(WIDE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "sgd_epoch", epoch)
        m = SparseAutoencoder(max_epochs=10, **settings)
        record = caught(lambda: m.fit(WIDE))
    w, = only(record, csae.TrainingDivergedWarning)
    assert "lowest objective" in str(w.message) and w.filename == __file__
    # Epochs 1-3 improved, epoch 4 or later diverged: epoch 3 is kept.
    assert reference.loss_curve_[2] == min(reference.loss_curve_)
    assert m.n_iter_ == 3
    np.testing.assert_array_equal(m.encoder_weights_, reference.encoder_weights_)
    assert m.loss_curve_ == reference.loss_curve_


def test_dead_units(backend):
    """A sparsity target of 0.01 with sparsity_weight 30 and a large
    learning rate drives every encoder bias far negative: units die."""
    m = SparseAutoencoder(solver="sgd", n_hidden=10, sparsity_target=0.01, sparsity_weight=30.0,
                          learning_rate=5.0, batch_size=300, max_epochs=20, tol=0,
                          backend=backend, random_state=0)
    record = caught(lambda: m.fit(X))
    w, = only(record, csae.DeadUnitsWarning)
    assert w.filename == __file__
    message = str(w.message)
    assert "dead" in message and "sparsity_weight" in message and "learning_rate" in message
    activation = m.transform(X).mean(axis=0)
    assert np.sum(activation < 0.01 / 20) > 5


def test_learned_nothing(backend):
    """A learning rate so small that the weights barely move: the
    reconstruction is the initial one, worse than the mean sample."""
    m = SparseAutoencoder(solver="sgd", n_hidden=10, learning_rate=1e-6, max_epochs=3, tol=0,
                          backend=backend, random_state=0)
    record = caught(lambda: m.fit(X))
    w, = only(record, csae.LearnedNothingWarning)
    assert w.filename == __file__
    assert "learned nothing" in str(w.message) and "max_epochs" in str(w.message)
    mse = np.mean((m.reconstruct(X) - X) ** 2)
    assert mse >= np.mean((X - X.mean(axis=0)) ** 2)


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_healthy_runs_warn_nothing(backend, solver):
    if solver == "lbfgs":
        pytest.importorskip("scipy")
    settings = dict(n_hidden=12, sparsity_target=0.1, sparsity_weight=1.0,
                    weight_decay=1e-3, learning_rate=0.5, batch_size=20, max_epochs=400,
                    solver=solver, backend=backend, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SparseAutoencoder(**settings).fit(X)


def test_healthy_sparse_run_with_rho_001_is_not_dead():
    """rho = 0.01 with a strong penalty is sparse, not dead: the units sit
    near 0.01, far above the dead threshold rho / 20."""
    m = SparseAutoencoder(solver="sgd", n_hidden=16, sparsity_target=0.01, sparsity_weight=3.0,
                          learning_rate=0.5, batch_size=20, max_epochs=60, tol=0,
                          backend="c", random_state=0)
    record = caught(lambda: m.fit(X))
    assert not [w for w in record if issubclass(w.category, csae.DeadUnitsWarning)]


def test_verbose_1_prints_about_a_dozen_lines(capsys):
    m = SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=100, tol=0, verbose=1,
                          random_state=0).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    epochs = [int(line.split(":")[0].split()[1]) for line in lines if line.startswith("epoch")]
    assert epochs[0] == 1 and epochs[-1] == 100
    assert 10 <= len(epochs) <= 14
    assert all("objective" in line and "elapsed" in line for line in lines[:-1])
    assert lines[-1].startswith("reached max_epochs")
    assert m.n_iter_ == 100


def test_verbose_2_prints_every_epoch(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 15 epochs at these settings learn little
        SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=15, tol=0, verbose=2,
                          random_state=0).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"epoch {k}" for k in range(1, 16)]


def test_verbose_shows_a_tqdm_bar_on_stderr(capsys):
    pytest.importorskip("tqdm")
    SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=5, verbose=1, random_state=0).fit(X)
    err = capsys.readouterr().err
    assert "training" in err and "epoch" in err


def test_verbose_without_tqdm(capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "tqdm", None)
    SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=5, verbose=1, random_state=0).fit(X)
    captured = capsys.readouterr()
    assert captured.err == "" and len(captured.out.strip().splitlines()) == 6
