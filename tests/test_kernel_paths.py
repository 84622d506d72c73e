"""Kernel-path selection: the best path by default, CSAE_KERNEL_PATH forcing
any path the CPU has at start-up (and warning, then using the best, for one
it does not), unknown or unsupported names refused by set_kernel_path."""

import os
import subprocess
import sys

import pytest

from conftest import engine, kernel_paths

eng = engine()
PROBE = "import csae._engine as e; print(e.get_kernel_path())"


# Every path of every architecture, in registration order (each build has
# portable and its own architecture's).
ALL_PATHS = ("portable", "avx2", "avx512", "neon")


def run_probe(**env):
    # -W error: a warning at import fails the probe unless a test expects it
    result = subprocess.run([sys.executable, "-W", "error", "-c", PROBE], capture_output=True,
                            text=True, env={**os.environ, **env})
    return result


def path_in_fresh_process(**env):
    result = run_probe(**env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("name", kernel_paths())
def test_environment_variable_forces_each_supported_path(name):
    assert path_in_fresh_process(CSAE_KERNEL_PATH=name) == name


def test_the_paths_are_listed_portable_first_best_last():
    paths = eng.kernel_paths()
    assert paths[0] == "portable"
    assert paths == [p for p in ALL_PATHS if p in paths]


@pytest.mark.parametrize("name", ["avx512-turbo", "AVX2", ""] +
                         [p for p in ALL_PATHS if p not in kernel_paths()])
def test_environment_variable_naming_no_runnable_path_warns_and_uses_the_best(name):
    result = run_probe(CSAE_KERNEL_PATH=name)
    if name == "":
        # an empty variable is the same as none
        assert result.returncode == 0 and result.stdout.strip() == eng.kernel_paths()[-1]
        return
    assert result.returncode != 0 and "RuntimeWarning" in result.stderr
    assert f"CSAE_KERNEL_PATH={name!r}" in result.stderr
    relaxed = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                             env={**os.environ, "CSAE_KERNEL_PATH": name}, check=True)
    assert relaxed.stdout.strip() == eng.kernel_paths()[-1]


@pytest.mark.parametrize("name", [p for p in ALL_PATHS if p not in kernel_paths()])
def test_setting_a_path_the_cpu_lacks_is_refused(name):
    """A path this build has but the CPU lacks, or one of another
    architecture (not in this build at all)."""
    before = eng.get_kernel_path()
    built = name in eng._path_ids()
    with pytest.raises(ValueError, match="not supported on this CPU" if built
                       else "unknown kernel path"):
        eng.set_kernel_path(name)
    assert eng.get_kernel_path() == before


def test_default_is_the_best_supported_path():
    env = {k: v for k, v in os.environ.items() if k != "CSAE_KERNEL_PATH"}
    result = subprocess.run([sys.executable, "-W", "error", "-c", PROBE], capture_output=True,
                            text=True, env=env, check=True)
    assert result.stdout.strip() == eng.kernel_paths()[-1]


def test_paths_can_be_switched_and_bad_names_are_refused():
    before = eng.get_kernel_path()
    try:
        for name in eng.kernel_paths():
            eng.set_kernel_path(name)
            assert eng.get_kernel_path() == name
        with pytest.raises(ValueError, match="unknown kernel path"):
            eng.set_kernel_path("avx512-turbo")
    finally:
        eng.set_kernel_path(before)


def _library_paths():
    """The C library's list of kernel paths: (id, name) per entry."""
    import ctypes

    from libcsae_ctypes import library
    lib = library()
    lib.csae_kernel_path_count.restype = ctypes.c_size_t
    lib.csae_kernel_path_at.restype = ctypes.c_int
    lib.csae_kernel_path_at.argtypes = [ctypes.c_size_t]
    lib.csae_kernel_path_name.restype = ctypes.c_char_p
    lib.csae_kernel_path_name.argtypes = [ctypes.c_int]
    lib.csae_kernel_path_supported.argtypes = [ctypes.c_int]
    count = lib.csae_kernel_path_count()
    entries = [lib.csae_kernel_path_at(i) for i in range(count)]
    return lib, count, [(i, lib.csae_kernel_path_name(i).decode()) for i in entries]


def test_the_c_library_lists_the_paths_the_binding_offers():
    """The binding has no list of its own: what C registers (with the ids
    csae.h has always given portable, avx2 and avx512) is what Python
    offers, supported ones in the same order."""
    lib, count, entries = _library_paths()
    ids = dict((name, i) for i, name in entries)
    # csae.h's enumerators, fixed for C callers
    assert ids["portable"] == 1
    assert ids.get("avx2", 2) == 2 and ids.get("avx512", 3) == 3
    assert len(set(ids.values())) == len(entries) and 0 not in ids.values()
    assert eng.kernel_paths() == [n for i, n in entries if lib.csae_kernel_path_supported(i)]
    assert lib.csae_kernel_path_at(count) == 0  # past the end: AUTO
    assert lib.csae_kernel_path_name(0) == b"auto"
    assert lib.csae_kernel_path_name(max(ids.values()) + 1) is None
    import platform
    expected = {"x86_64": ["portable", "avx2", "avx512"],
                "aarch64": ["portable", "neon"]}.get(platform.machine())
    if expected is not None:
        assert [n for _, n in entries] == expected
