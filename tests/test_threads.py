"""How many threads csae uses and a worker pool sized to each call.

- ``n_threads=None`` follows ``OMP_NUM_THREADS`` (read as GNU libgomp reads
  it: checked against libgomp itself), the CPU affinity and threadpoolctl's
  limit; explicit counts are capped at the CPUs.
- threadpoolctl lists and limits csae's pool; csae works without it.
- Under ``GridSearchCV(n_jobs=2)`` the workers start no more threads than
  their share of the cores (counted, not timed).
- A call with ``n_threads=k`` involves at most ``k - 1`` workers, also after
  a call that started many more (counted through a test hook, and timed in a
  subprocess with a generous margin).

Threads are counted with ``csae._engine._pool_stats()``: the workers the
pool started, the workers its last job waited on and the jobs they ran.
Most checks run in a fresh interpreter so that the pool starts empty.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from csae import SparseAutoencoder, _threads
from csae._backends import Backend
from test_c_api import ROOT

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(_threads.__file__)))

CPUS = _threads.available_cpus()
needs_two_cpus = pytest.mark.skipif(CPUS < 2, reason="needs 2 CPUs to start a worker")


def run_python(*parts, env=None, timeout=300):
    """Run the code `parts` (each dedented) in a fresh interpreter from the
    folder holding the csae under test (so that one is imported), without the
    caller's OMP_NUM_THREADS unless `env` sets it, and return what its
    last line printed, read as JSON."""
    code = "\n".join(textwrap.dedent(part) for part in parts)
    full_env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    full_env.update(env or {})
    # From the folder holding the csae under test: the checkout (in-place
    # build) or site-packages (an installed wheel).
    result = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE_PARENT,
                            env=full_env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# A model whose minibatch products (128 x 128 x 196 multiply-adds) are big
# enough for the engine to split over threads.
FIT_BIG_ENOUGH = """
    import json
    import numpy as np
    from csae import SparseAutoencoder, _engine, _threads
    X = np.random.default_rng(0).random((256, 196))
    def fit(**kw):
        SparseAutoencoder(n_hidden=128, batch_size=128, max_epochs=1, random_state=0,
                          **kw).fit(X)
        return _engine._pool_stats()[0]
"""


# ---------------------------------------------------------------------------
# OMP_NUM_THREADS, read as OpenMP reads it
# ---------------------------------------------------------------------------

OMP_VALUES = {
    "5": 5, " 5 ": 5, "+5": 5, "00005": 5, "\t5\n": 5, "5,2": 5, "5 , 2": 5, "5,+3": 5,
    "1": 1, "1000": 1000,
    "": None, "   ": None, "0": None, "-1": None, "abc": None, "4.5": None, "5,": None,
    "5,abc": None, ",5": None, "5,0": None, "5,-3": None, "1e3": None, "1_0": None,
    "0x5": None, "5 2": None, "\u0663": None, "9223372036854775808": None,
    "18446744073709551621": None,
}


@pytest.mark.parametrize("value,expected", OMP_VALUES.items(), ids=repr)
def test_omp_num_threads_is_parsed_or_ignored(value, expected):
    assert _threads.omp_num_threads(value) == expected


def test_omp_num_threads_agrees_with_libgomp(tmp_path):
    """GNU libgomp's omp_get_max_threads() under each value: the value we
    read when it is valid, its default (the CPUs) when it ignores it."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc with libgomp")
    source = tmp_path / "omp.c"
    source.write_text('#include <omp.h>\n#include <stdio.h>\n'
                      'int main(void) { printf("%d\\n", omp_get_max_threads()); return 0; }\n')
    exe = tmp_path / "omp"
    built = subprocess.run([gcc, "-fopenmp", str(source), "-o", str(exe)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"gcc cannot build OpenMP programs: {built.stderr[-500:]}")
    for value, expected in OMP_VALUES.items():
        env = dict(os.environ, OMP_NUM_THREADS=value)
        out = subprocess.run([str(exe)], env=env, capture_output=True, text=True,
                             check=True).stdout
        assert int(out) == (CPUS if expected is None else expected), repr(value)


def test_default_follows_omp_num_threads_at_each_call(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert _threads.default_n_threads() == CPUS
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _threads.default_n_threads() == 1
    # Never more than the CPUs, whatever it asks for.
    monkeypatch.setenv("OMP_NUM_THREADS", "1000")
    assert _threads.default_n_threads() == CPUS
    # Invalid: ignored, as if unset.
    for bad in ("", "0", "abc", "-2", "2,x"):
        monkeypatch.setenv("OMP_NUM_THREADS", bad)
        assert _threads.default_n_threads() == CPUS
    monkeypatch.setenv("OMP_NUM_THREADS", "1,4")
    assert _threads.default_n_threads() == 1


def test_the_estimator_reads_the_default_at_each_call(monkeypatch):
    """Validation resolves n_threads=None now, not at import."""
    from csae._validation import resolve_n_threads
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert resolve_n_threads(None) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert resolve_n_threads(None) == CPUS
    assert resolve_n_threads(1) == 1


def test_explicit_n_threads_is_capped_at_the_cpus():
    assert Backend("c", 1000).n_threads == CPUS
    assert Backend("c", 1).n_threads == 1
    assert _threads.effective_n_threads(10**6) == CPUS
    # The hyperparameter itself is kept as given (get_params, save).
    model = SparseAutoencoder(solver="sgd", n_threads=1000)
    assert model.get_params()["n_threads"] == 1000


@needs_two_cpus
def test_omp_num_threads_1_gives_one_thread():
    """A model with n_threads=None under OMP_NUM_THREADS=1 starts no worker;
    without it, it uses every CPU (one worker per CPU but the caller's)."""
    code = "print(json.dumps([_threads.default_n_threads(), fit()]))"
    assert run_python(FIT_BIG_ENOUGH, code, env={"OMP_NUM_THREADS": "1"}) == [1, 0]
    assert run_python(FIT_BIG_ENOUGH, code, env={"OMP_NUM_THREADS": "abc"}) == [CPUS, CPUS - 1]
    assert run_python(FIT_BIG_ENOUGH, code) == [CPUS, CPUS - 1]


@needs_two_cpus
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity here")
def test_default_follows_the_affinity():
    code = """
    import os
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(json.dumps([_threads.default_n_threads(), fit(), fit(n_threads=8)]))
    """
    assert run_python(FIT_BIG_ENOUGH, code) == [1, 0, 0]


@needs_two_cpus
def test_a_big_explicit_n_threads_starts_only_the_cpus_workers():
    assert run_python(FIT_BIG_ENOUGH, "print(json.dumps(fit(n_threads=1000)))") == CPUS - 1


# ---------------------------------------------------------------------------
# threadpoolctl
# ---------------------------------------------------------------------------

def csae_entries(info):
    return [entry for entry in info if entry["internal_api"] == "csae"]


def test_threadpoolctl_lists_csae():
    threadpoolctl = pytest.importorskip("threadpoolctl", minversion="3.2")
    from csae import _engine
    [entry] = csae_entries(threadpoolctl.threadpool_info())
    assert entry["user_api"] == "csae"
    assert entry["num_threads"] == _threads.default_n_threads()
    assert os.path.realpath(entry["filepath"]) == os.path.realpath(_engine.__file__)
    import csae
    assert entry["version"] == csae.__version__


def test_threadpool_limits_limits_csae(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl", minversion="3.2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with threadpoolctl.threadpool_limits(limits=1):
        [entry] = csae_entries(threadpoolctl.threadpool_info())
        assert entry["num_threads"] == 1
        assert _threads.default_n_threads() == 1
        # An explicit n_threads still wins (capped at the CPUs only).
        assert _threads.effective_n_threads(2) == min(2, CPUS)
    # Leaving the block restores the unlimited default.
    assert _threads.get_thread_limit() is None
    assert _threads.default_n_threads() == CPUS
    with threadpoolctl.threadpool_limits(limits=1, user_api="csae"):
        assert _threads.default_n_threads() == 1
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert _threads.default_n_threads() == CPUS
    assert _threads.get_thread_limit() is None


def test_thread_limit_bounds_but_never_raises_the_default(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        _threads.set_thread_limit(64)
        assert _threads.default_n_threads() == 1
        assert _threads.get_thread_limit() is None  # at or above: no limit
        monkeypatch.delenv("OMP_NUM_THREADS")
        _threads.set_thread_limit(0)  # threadpoolctl never passes it; read as 1
        assert _threads.default_n_threads() == 1
        assert _threads.get_thread_limit() == (1 if CPUS > 1 else None)
    finally:
        _threads.set_thread_limit(None)


@needs_two_cpus
def test_threadpool_limits_makes_a_default_model_use_one_thread():
    pytest.importorskip("threadpoolctl", minversion="3.2")
    code = """
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        limited = fit()
    print(json.dumps([limited, fit()]))
    """
    assert run_python(FIT_BIG_ENOUGH, code) == [0, CPUS - 1]


def test_csae_works_without_threadpoolctl():
    code = """
    import json, sys
    sys.modules["threadpoolctl"] = None  # import threadpoolctl raises ImportError
    import numpy as np
    from csae import SparseAutoencoder, _threads
    X = np.random.default_rng(0).random((100, 16))
    model = SparseAutoencoder(solver="sgd", n_hidden=8, max_epochs=2, random_state=0).fit(X)
    print(json.dumps([_threads._CONTROLLER is None, model.transform(X[:1]).shape[1],
                      _threads.default_n_threads()]))
    """
    assert run_python(code, env={"OMP_NUM_THREADS": "1"}) == [True, 8, 1]


# ---------------------------------------------------------------------------
# Under GridSearchCV(n_jobs=2)
# ---------------------------------------------------------------------------

GRID_SEARCH = """
    import json
    import numpy as np
    from sklearn.model_selection import GridSearchCV
    from csae import SparseAutoencoder

    def pool_workers(estimator, X, y=None):
        # Runs in the joblib worker after its fit: the pool threads it started.
        from csae import _engine
        return float(_engine._pool_stats()[0])

    X = np.random.default_rng(0).random((1200, 196))
    found = {}
    for n_threads in (None, 2):
        search = GridSearchCV(
            SparseAutoencoder(solver="sgd", n_hidden=128, batch_size=128, max_epochs=1,
                              n_threads=n_threads, random_state=0),
            {"learning_rate": [0.05, 0.1]}, cv=2, n_jobs=2, scoring=pool_workers)
        search.fit(X)
        found[str(n_threads)] = max(search.cv_results_["mean_test_score"])
    print(json.dumps(found))
"""


def test_grid_search_workers_start_only_their_share_of_threads():
    """joblib's loky workers get OMP_NUM_THREADS = cores // n_jobs, so the
    default model starts at most that many threads in each: k workers never
    run more threads than the cores.  The explicit n_threads=2 run shows
    that the count sees threads when there are some."""
    pytest.importorskip("sklearn")
    import joblib
    found = run_python(GRID_SEARCH, timeout=600)
    # What joblib gives each of 2 workers (its cpu_count also reads cgroup
    # quotas), within the CPUs the worker may run on.
    share = min(max(1, joblib.cpu_count() // 2), CPUS)
    assert found["None"] == share - 1
    assert found["2"] == min(2, CPUS) - 1


# ---------------------------------------------------------------------------
# A pool that fits the request
# ---------------------------------------------------------------------------

POOL_AFTER_A_BIG_CALL = """
    import json, time
    import numpy as np
    from csae import _engine
    rng = np.random.default_rng(0)
    W, b = rng.random((256, 256)), np.zeros(256)
    X = rng.random((64, 256))  # 4M multiply-adds: split over the threads

    def encode_2():
        _engine.encode(W, b, X, n_threads=2)

    def median_time(calls=300):
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            encode_2()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    encode_2()
    before = median_time()
    _engine.encode(W, b, rng.random((2048, 256)), n_threads=1000)
    workers_after_big, waited_big, runs_0 = _engine._pool_stats()
    for _ in range(100):
        encode_2()
    workers, waited, runs_1 = _engine._pool_stats()
    after = median_time()
    print(json.dumps(dict(before=before, after=after, workers_big=workers_after_big,
                          waited_big=waited_big, workers=workers, waited=waited,
                          runs=runs_1 - runs_0)))
"""


def test_pool_involves_only_the_workers_a_call_asks_for():
    """After one call with n_threads=1000 (the engine caps it at 64 threads,
    so 63 workers), 2-thread calls wait on one worker, wake no other, and
    are as fast as before it (a generous margin: the unfixed pool made them
    over 20 times slower)."""
    found = run_python(POOL_AFTER_A_BIG_CALL)
    assert found["workers_big"] == 63 and found["waited_big"] == 63
    assert found["workers"] == 63
    assert found["waited"] == 1
    assert found["runs"] == 100, found  # one worker task per 2-thread call
    assert found["after"] < 3 * found["before"] + 200e-6, found


def c_compiler():
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler found (cc or gcc): the pool test needs one")
    return cc


def build_pool_test(tmp_path, flags=()):
    exe = tmp_path / "pool_test"
    cmd = [c_compiler(), "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", *flags,
           f"-I{ROOT / 'src_c'}", str(ROOT / "tests" / "pool_test.c"),
           str(ROOT / "src_c" / "threads.c"), "-lpthread", "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return exe


def test_pool_in_c(tmp_path):
    result = subprocess.run([str(build_pool_test(tmp_path))], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(" 0 failed"), result.stdout


def test_pool_in_c_under_thread_sanitizer(tmp_path):
    exe = build_pool_test(tmp_path, ["-fsanitize=thread", "-g", "-O1"])
    result = subprocess.run([str(exe), "--no-fork"], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, TSAN_OPTIONS="halt_on_error=1"))
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-5000:]
    assert "ThreadSanitizer" not in report, report[-5000:]
    assert result.stdout.strip().splitlines()[-1].endswith(" 0 failed"), result.stdout


def test_results_do_not_depend_on_the_default():
    """What n_threads=None resolves to changes the speed, never the bits."""
    X = np.random.default_rng(1).random((300, 196))
    kw = dict(solver="sgd", n_hidden=128, batch_size=128, max_epochs=2, sparsity_target=0.05,
              sparsity_weight=3.0, random_state=0)
    one = SparseAutoencoder(n_threads=1, **kw).fit(X)
    default = SparseAutoencoder(**kw).fit(X)
    np.testing.assert_array_equal(one.encoder_weights_, default.encoder_weights_)
    np.testing.assert_array_equal(one.transform(X), default.transform(X))


def test_grid_search_benchmark_runs(tmp_path):
    """A smoke run of benchmarks/gridsearch.py: every setting runs and the
    table and JSON come out (speed is judged from BENCHMARKS.md, not here)."""
    pytest.importorskip("sklearn")
    out = tmp_path / "grid.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gridsearch.py"), "--rounds", "1",
         "--repeats", "1", "--samples", "300", "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| None (default) |" in result.stdout
    report = json.loads(out.read_text())
    assert set(report["times"]) == {"default", "1", "all-cores"}
    assert all(len(t) == 1 and t[0] > 0 for t in report["times"].values())
