"""One model object shared by threads, threads that really overlap, and memory
that stays flat.

The GIL is really released by the heavy calls and long training keeps memory
flat.  Each race on a shared model runs hundreds of times in a child process,
so that a hang or a crash fails one test instead of taking pytest down; the
child prints ``OK`` when every round kept the guarantee, or the first broken
round.
"""

import concurrent.futures
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from csae import SparseAutoencoder
import csae


def unit_data(m, n, seed=0):
    return np.random.default_rng(seed).random((m, n))


# One epoch at the default settings on many features kills most units (the
# KL gradient through W outweighs the rest at the start): DeadUnitsWarning
# says so rightly, and this test is about threads, not the model.
@pytest.mark.filterwarnings("ignore::csae.DeadUnitsWarning")
def test_python_runs_while_the_engine_encodes():
    """While one thread is inside a long engine call, another thread keeps
    executing Python bytecode; with the GIL held it could not run at all."""
    X = unit_data(60_000, 256)
    model = SparseAutoencoder(solver="sgd", n_hidden=512, max_epochs=1, n_threads=1,
                              random_state=0).fit(X[:200])
    done = threading.Event()
    spins_during_call = []

    def spin():
        count = 0
        while not done.is_set():
            count += 1
        spins_during_call.append(count)

    spinner = threading.Thread(target=spin)
    start = time.perf_counter()
    spinner.start()
    time.sleep(0.01)  # let the spinner start before the call
    calls = 0
    while time.perf_counter() - start < 0.5 or calls < 2:
        model.transform(X)
        calls += 1
    done.set()
    spinner.join()
    # A held GIL would allow only a few switch intervals (5 ms) of spinning.
    assert spins_during_call[0] > 100_000, spins_during_call


def test_eight_threads_overlap_and_agree():
    """Eight threads transform at once: every result equals the serial one,
    and the calls really run at the same time.  Overlap is shown by the
    calls' own time intervals (with the GIL held they could only run one
    after another), not by a wall-clock ratio, which on a shared 2-vCPU
    machine measures the neighbours as much as csae."""
    X = unit_data(20_000, 128, seed=1)
    model = SparseAutoencoder(solver="sgd", n_hidden=256, max_epochs=1, n_threads=1,
                              sparsity_target=0.05, sparsity_weight=3.0,
                              random_state=0).fit(X[:500])
    serial_result = model.transform(X)
    intervals = []
    lock = threading.Lock()

    def timed_transform(_):
        start = time.perf_counter()
        result = model.transform(X)
        end = time.perf_counter()
        with lock:
            intervals.append((start, end))
        return result

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(timed_transform, range(8)))
    for result in results:
        np.testing.assert_array_equal(result, serial_result)
    # Time during which at least two calls were in progress together.
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running, overlapped, last = 0, 0.0, events[0][0]
    for moment, change in events:
        if running >= 2:
            overlapped += moment - last
        running += change
        last = moment
    busy = max(e for _, e in intervals) - min(s for s, _ in intervals)
    assert overlapped > 0.5 * busy, (overlapped, busy)


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_long_partial_fit_loop_keeps_memory_flat():
    """Two million samples in 200 chunks: resident memory after the first
    chunks (allocator warm-up) and at the end agree within a few MB."""
    rng = np.random.default_rng(2)
    chunk = rng.random((10_000, 64))
    model = SparseAutoencoder(solver="sgd", n_hidden=25, batch_size=100, momentum=0.5,
                              random_state=0)
    for _ in range(10):
        model.partial_fit(chunk)
    before = resident_bytes()
    for _ in range(190):
        model.partial_fit(chunk)
    growth = resident_bytes() - before
    assert model.n_iter_ == 200
    assert growth < 4 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MB"


def _train_in_child(queue):
    X = unit_data(600, 300, seed=3)
    model = SparseAutoencoder(solver="sgd", n_hidden=300, batch_size=300, max_epochs=1,
                              n_threads=2, random_state=0).fit(X)
    queue.put(model.encoder_weights_.sum())


# One epoch at the default settings on many features kills most units (the
# KL gradient through W outweighs the rest at the start): DeadUnitsWarning
# says so rightly, and this test is about threads, not the model.
@pytest.mark.filterwarnings("ignore::csae.DeadUnitsWarning")
def test_fork_after_the_thread_pool_ran():
    """A child forked after the engine's worker threads started (as
    multiprocessing and joblib do) has none of them: it must start its own
    rather than wait forever on the parent's."""
    import multiprocessing

    X = unit_data(600, 300, seed=3)
    expected = SparseAutoencoder(solver="sgd", n_hidden=300, batch_size=300, max_epochs=1,
                                 n_threads=2, random_state=0).fit(X).encoder_weights_.sum()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_train_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        raise AssertionError("the forked child hung in the engine's thread pool")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == expected


# --------------------------------------------------------------------------
# One model object shared by threads
# --------------------------------------------------------------------------

_PRELUDE = textwrap.dedent("""
    import os, sys, threading, warnings
    import numpy as np
    import csae
    from csae import SparseAutoencoder
    BACKEND = sys.argv[1]
    ROUNDS = int(sys.argv[2])
    X = np.random.default_rng(0).random((60, 8))

    def weights(model):
        return [np.array(getattr(model, n + "_")) for n in
                ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")]

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(weights(a), weights(b)))

    def run_together(*functions):
        # Start every function at once (a barrier), collect what they raise.
        barrier = threading.Barrier(len(functions))
        errors = []
        def wrap(f):
            barrier.wait()
            try:
                f()
            except BaseException as err:  # reported by the parent
                errors.append(repr(err))
        threads = [threading.Thread(target=wrap, args=(f,)) for f in functions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors

    def race_refits(model, *uses, at_least):
        # model.fit(X) ROUNDS times in one thread while each use runs in its
        # own thread again and again, until the refits end and it has run at
        # least at_least times; returns what they raised.
        done = threading.Event()
        def refit():
            try:
                for _ in range(ROUNDS):
                    model.fit(X)
            finally:
                done.set()
        def repeat(use):
            count = 0
            while not done.is_set() or count < at_least:
                use()
                count += 1
        return run_together(refit, *(lambda use=use: repeat(use) for use in uses))

    def fail(*message):
        print("FAIL", *message, flush=True)
        sys.exit(1)
""")


def _run(body, backend, rounds, tmp_path, timeout=240):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(csae.__file__))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    # A short switch interval makes threads interleave far more often, so a
    # race shows within a few hundred rounds.
    script = _PRELUDE + "sys.setswitchinterval(1e-5)\n" + textwrap.dedent(body) \
        + "\nprint('OK', flush=True)\n"
    proc = subprocess.run([sys.executable, "-c", script, backend, str(rounds)],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
                          env=env)
    assert proc.returncode == 0 and "OK" in proc.stdout, (proc.stdout[-2000:],
                                                          proc.stderr[-3000:])


def test_two_partial_fits_at_once_train_two_epochs(backend, tmp_path):
    """Two threads call partial_fit on one fresh model: the result is two
    epochs of training, bit-identical to two calls in a row."""
    _run("""
        serial = SparseAutoencoder(solver="sgd", n_hidden=5, backend=BACKEND, random_state=0)
        serial.partial_fit(X).partial_fit(X)
        for round in range(ROUNDS):
            model = SparseAutoencoder(solver="sgd", n_hidden=5, backend=BACKEND, random_state=0)
            errors = run_together(lambda: model.partial_fit(X), lambda: model.partial_fit(X))
            if errors:
                fail(round, errors)
            if model.n_iter_ != 2 or not same(model, serial):
                fail(round, "n_iter_", model.n_iter_, "weights equal two epochs:",
                     same(model, serial))
    """, backend, 300, tmp_path)


def test_transform_and_loss_while_fit_runs_in_a_loop(backend, tmp_path):
    """A fitted model keeps answering transform and loss while another
    thread refits it again and again: never NotFittedError, never a
    half-built state."""
    _run("""
        model = SparseAutoencoder(solver="sgd", n_hidden=5, max_epochs=2, backend=BACKEND,
                                  random_state=0).fit(X)
        expected_H = model.transform(X)
        expected_loss = model.loss(X)
        def use():
            H = model.transform(X)
            loss = model.loss(X)
            # Same random_state: every fit reaches the same model.
            if not (np.array_equal(H, expected_H) and loss == expected_loss):
                raise AssertionError("transform/loss of a half-built model")
        errors = race_refits(model, use, use, at_least=10)
        if errors:
            fail(errors)
    """, backend, 300, tmp_path)


def test_save_while_fit_runs_writes_one_consistent_model(backend, tmp_path):
    """save during fit writes either the model before the fit or the one
    after it, never epochs of one with the weights of the other."""
    _run("""
        reference = SparseAutoencoder(solver="sgd", n_hidden=5, max_epochs=6, backend=BACKEND,
                                      random_state=0).fit(X)
        model = SparseAutoencoder(solver="sgd", n_hidden=5, max_epochs=6, backend=BACKEND,
                                  random_state=0).fit(X)
        def save():
            path = f"m{threading.get_ident()}.npz"
            model.save(path)
            saved = csae.load(path)
            if saved.n_iter_ != 6 or not same(saved, reference) \
                    or saved.loss_curve_ != reference.loss_curve_:
                raise AssertionError(f"file holds {saved.n_iter_} epochs and "
                                     f"{'the' if same(saved, reference) else 'other'} weights")
        errors = race_refits(model, save, at_least=5)
        if errors:
            fail(errors)
    """, backend, 200, tmp_path)


def test_fit_partial_fit_set_params_and_save_together_leave_a_usable_model(
        backend, tmp_path):
    """The four-way race of the issue: afterwards the model trains, and
    every file save wrote loads (save and partial_fit may refuse a model
    whose n_hidden was changed after fitting, with a ValueError saying so)."""
    _run("""
        def refused_for_n_hidden(call):
            # Whether call() refused with the ValueError that an n_hidden
            # changed since fitting allows; any other error propagates.
            try:
                call()
            except ValueError as err:
                if "n_hidden" not in str(err):
                    raise
                return True
            return False
        for round in range(ROUNDS):
            model = SparseAutoencoder(solver="sgd", n_hidden=4, momentum=0.5, max_epochs=2,
                                      backend=BACKEND, random_state=round)
            model.fit(X)
            path = f"r{round % 4}.npz"
            def save():
                if not refused_for_n_hidden(lambda: model.save(path)):
                    csae.load(path)
            def partial_fit():
                refused_for_n_hidden(lambda: model.partial_fit(X))
            errors = run_together(lambda: model.fit(X), partial_fit, partial_fit,
                                  lambda: model.set_params(n_hidden=3 + round % 3), save)
            if errors:
                fail(round, errors)
            model.set_params(n_hidden=5).fit(X).partial_fit(X)  # still trainable
            model.save(path)
            csae.load(path)
    """, backend, 200, tmp_path)


def test_get_params_and_pickle_see_one_set_params_call_whole(tmp_path):
    """set_params(a=..., b=...) is seen whole or not at all by get_params
    and by pickling (both read one snapshot)."""
    _run("""
        import pickle
        model = SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=1, random_state=0).fit(X)
        done = threading.Event()
        def flip():
            i = 0
            while not done.is_set():
                k = 1 + i % 2
                model.set_params(sparsity_weight=float(k), weight_decay=float(k))
                i += 1
        def read():
            try:
                for _ in range(ROUNDS * 20):
                    p = model.get_params()
                    q = pickle.loads(pickle.dumps(model)).get_params()
                    for params in (p, q):
                        if params["sparsity_weight"] != params["weight_decay"] \
                                and params["weight_decay"] != 1e-4:
                            raise AssertionError(f"half a set_params call: {params}")
            finally:
                done.set()
        errors = run_together(flip, read)
        if errors:
            fail(errors)
    """, "c", 100, tmp_path)
