"""How many threads the C engine may use, and csae's place in threadpoolctl.

``n_threads=None`` follows the convention of every native thread pool in the
scientific Python stack (OpenMP runtimes, OpenBLAS, MKL), so that joblib,
loky, Dask and threadpoolctl keep csae from oversubscribing the machine:

1. the first value of ``OMP_NUM_THREADS`` when it holds a valid one (joblib's
   loky workers and Dask workers set it to cores / workers);
2. else the CPUs this process may run on (its affinity mask, which
   ``taskset``, ``numactl`` and container CPU sets restrict);
3. never more than those CPUs, and never more than a limit set through
   threadpoolctl (``threadpool_limits(limits=k)``), which this module's
   controller applies.

An explicit ``n_threads=k`` wins over all of these but is still capped at the
CPUs this process may run on: more threads than cores only wait for each
other.  Everything is read at each call, not at import, since the
environment, the affinity and threadpoolctl's limit are run-time facts.

threadpoolctl is optional: without it everything here works and only the
controller is missing.
"""

import os
import re

__all__ = ["available_cpus", "omp_num_threads", "default_n_threads",
           "effective_n_threads", "set_thread_limit", "get_thread_limit"]

# The limit set through threadpoolctl (None: none).  Process-wide, like
# OpenBLAS's: threadpool_limits is usually entered by the code that starts
# the parallel work, not by each thread that runs csae.
_limit = None

# One entry of OMP_NUM_THREADS as GNU libgomp reads it (strtoul after
# C-locale white space): an optional '+', decimal digits, white space around.
_SPACE = "[ \t\n\v\f\r]*"
_OMP_ENTRY = re.compile(_SPACE + r"\+?([0-9]+)" + _SPACE)
# libgomp refuses values that do not fit a C long.
_OMP_MAX = 2**63 - 1


def available_cpus():
    """The number of CPUs this process may run on (its affinity mask; all
    CPUs where the platform has no affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on macOS and Windows
        return max(1, os.cpu_count() or 1)


def omp_num_threads(value=None):
    """The thread count ``OMP_NUM_THREADS`` asks for, or None.

    Read as GNU libgomp reads it: a comma-separated list of positive
    decimal integers, one per nesting level, of which csae (one level)
    takes the first; white space around each entry and a leading ``+`` are
    allowed.  Anything else (unset, empty, ``0``, negative, ``abc``,
    ``4.5``, ``4,``, ``4,abc``) is invalid and ignored, as if unset
    (libgomp also ignores it, with a warning; csae stays silent).

    Parameters
    ----------
    value : str or None
        The text to read; None reads the environment variable now.
    """
    if value is None:
        value = os.environ.get("OMP_NUM_THREADS")
        if value is None:
            return None
    counts = []
    for entry in value.split(","):
        match = _OMP_ENTRY.fullmatch(entry)
        if match is None:
            return None
        count = int(match.group(1))
        if not 1 <= count <= _OMP_MAX:
            return None
        counts.append(count)
    return counts[0]


def _unlimited_default():
    cpus = available_cpus()
    requested = omp_num_threads()
    return cpus if requested is None else min(requested, cpus)


def default_n_threads():
    """The threads an ``n_threads=None`` model uses now: ``OMP_NUM_THREADS``
    if valid, else the CPUs this process may run on; at most those CPUs and
    at most threadpoolctl's limit."""
    count = _unlimited_default()
    limit = _limit
    return count if limit is None else min(count, limit)


def effective_n_threads(n_threads):
    """The threads a call with ``n_threads`` (None or an int >= 1, already
    validated) uses: the default for None, else ``n_threads`` capped at the
    CPUs this process may run on."""
    if n_threads is None:
        return default_n_threads()
    return min(int(n_threads), available_cpus())


def get_thread_limit():
    """The limit set through threadpoolctl, or None."""
    return _limit


def set_thread_limit(limit):
    """Limit ``n_threads=None`` models to ``limit`` threads (None: no limit).

    A limit at or above what they would use without one removes the limit,
    so that leaving ``threadpool_limits`` (which restores the count it
    found) gives back an unlimited default, still following later changes
    of ``OMP_NUM_THREADS`` or the affinity.
    """
    global _limit
    if limit is not None:
        limit = max(1, int(limit))
        if limit >= _unlimited_default():
            limit = None
    _limit = limit


def _register_with_threadpoolctl():
    """Make threadpoolctl see csae's pool: ``threadpool_info()`` lists it and
    ``threadpool_limits`` limits it.  Without threadpoolctl (or with one older
    than 3.2, which has no controller API) nothing happens."""
    try:
        from threadpoolctl import LibController, register
    except ImportError:
        return None

    class CsaeController(LibController):
        """csae's worker pool, found by threadpoolctl as the compiled engine
        (``csae/_engine*.so``) once it is loaded.  ``num_threads`` is what an
        ``n_threads=None`` model uses now; setting it sets csae's limit
        (explicit ``n_threads`` values are not limited)."""

        user_api = "csae"
        internal_api = "csae"
        filename_prefixes = ("_engine",)
        # Another library's "_engine*" module lacks these, so it is skipped.
        check_symbols = ("csae_parallel_run", "csae_sgd_epoch_f64")

        def get_num_threads(self):
            return default_n_threads()

        def set_num_threads(self, num_threads):
            set_thread_limit(num_threads)

        def get_version(self):
            from csae._version import __version__
            return __version__

    register(CsaeController)
    return CsaeController


_CONTROLLER = _register_with_threadpoolctl()
