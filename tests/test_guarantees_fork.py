"""A child of ``os.fork()`` can use a model whose lock a parent thread held.

A ``fit`` running in one thread holds the model's write lock; a fork from
another thread copies the lock held, and no thread of the child would ever
release it, so ``set_params``, ``fit`` and ``partial_fit`` there used to wait
forever.  The child now gets new locks (``os.register_at_fork``).  The child
runs with a deadline, so a regression fails the test instead of hanging the
suite.
"""

import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder
from csae._estimator import train

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

DEADLINE = 30.0


def unit_data(m=40, n=6, seed=0):
    return np.random.default_rng(seed).random((m, n))


def wait_for_child(pid, deadline):
    """The child's exit status, or None after killing it at the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def fork_and_use(model, X, in_child):
    """Fork; in the child call ``in_child()``, then set_params, partial_fit
    and fit the model (exit status 0 when all return, 1 on an exception).
    Returns the child's exit status (None: it hung)."""
    with warnings.catch_warnings():
        # Python >= 3.12 warns about forking a process with threads.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            signal.alarm(int(DEADLINE))  # the parent kills it anyway
            in_child()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.set_params(max_epochs=2)
                model.partial_fit(X)
                model.fit(X)
            code = 0
        finally:
            os._exit(code)
    return wait_for_child(pid, DEADLINE)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_fork_while_another_thread_fits(backend, monkeypatch):
    module = csae.reference if backend == "python" else pytest.importorskip("csae._engine")
    true_epoch = module.sgd_epoch
    inside, release = threading.Event(), threading.Event()

    def epoch(*args, **kwargs):  # a fit that stays inside its first epoch
        inside.set()
        release.wait(DEADLINE)
        return true_epoch(*args, **kwargs)

    X = unit_data()
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=1, tol=0, backend=backend,
                              random_state=0)
    monkeypatch.setattr(module, "sgd_epoch", epoch)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one epoch learns little
            model.fit(X)

    thread = threading.Thread(target=fit)
    thread.start()
    try:
        assert inside.wait(DEADLINE)
        # The child trains with the real epoch (its copy of ``release`` is
        # never set).
        status = fork_and_use(model, X,
                              lambda: setattr(module, "sgd_epoch", true_epoch))
    finally:
        release.set()
        thread.join(DEADLINE)
    assert status is not None, "the child hung on the lock held by the parent's thread"
    assert status == 0
    assert model.n_iter_ == 1  # the parent's fit finished as usual


def test_fork_from_the_thread_that_holds_the_lock_keeps_it_held():
    """A fork from inside a fit (its hook runs holding the write lock): the
    child's thread goes on holding it and must be able to release it, so
    that lock is not replaced."""
    X = unit_data()
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=2, tol=0, random_state=0)
    statuses = []

    def hook(epoch, objective, validation, seconds):
        if epoch == 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    signal.alarm(int(DEADLINE))
                    assert model._locks.write._is_owned()
                    code = 0
                finally:
                    os._exit(code)
            statuses.append(wait_for_child(pid, DEADLINE))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(model, X, hook=hook)
    assert statuses == [0]
