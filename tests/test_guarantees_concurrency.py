"""The GIL is really released by the heavy calls, threads really overlap,
and long training keeps memory flat."""

import concurrent.futures
import threading
import time

import numpy as np
import pytest

from csae import SparseAutoencoder


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
