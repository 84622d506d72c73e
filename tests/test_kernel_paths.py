"""Kernel-path selection: the best path by default, CSAE_KERNEL_PATH=portable
forcing plain C at start-up, and unknown or unsupported names refused."""

import os
import subprocess
import sys

import pytest

from conftest import engine

eng = engine()
PROBE = "import csae._engine as e; print(e.get_kernel_path())"


def path_in_fresh_process(**env):
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            env={**os.environ, **env}, check=True)
    return result.stdout.strip()


def test_environment_variable_forces_the_portable_path():
    assert path_in_fresh_process(CSAE_KERNEL_PATH="portable") == "portable"


def test_default_is_the_best_supported_path():
    env = {k: v for k, v in os.environ.items() if k != "CSAE_KERNEL_PATH"}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            env=env, check=True)
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
