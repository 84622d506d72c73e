"""A worker pool sized to each call (issue 13, part 3): a call with
``n_threads=k`` involves at most ``k - 1`` workers, also after a call that
started many more (counted through the ``csae._engine._pool_stats()`` test
hook, and timed in a subprocess with a generous margin), and the pool on its
own in C, plainly and under ThreadSanitizer.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from test_c_api import ROOT


def run_python(*parts, env=None, timeout=300):
    """Run the code `parts` (each dedented) in a fresh interpreter from the
    repository root (so the in-place build is imported), without the
    caller's OMP_NUM_THREADS unless `env` sets it, and return what its
    last line printed, read as JSON."""
    code = "\n".join(textwrap.dedent(part) for part in parts)
    full_env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    full_env.update(env or {})
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                            env=full_env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


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
