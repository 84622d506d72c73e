"""Build the compiled engine: one Cython extension over the C sources.

CSAE_DEBUG=1 turns Cython's bounds checks back on and builds without
optimisation; CSAE_SANITIZE=1 adds AddressSanitizer and UBSan.
"""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("CSAE_DEBUG") == "1"
sanitize = os.environ.get("CSAE_SANITIZE") == "1"

# -fopenmp-simd honours the "omp simd" loop pragmas only: no OpenMP runtime.
compile_args = ["-std=c11", "-O0" if debug else "-O3", "-fopenmp-simd", "-fno-strict-aliasing"]
link_args = ["-lpthread"]
if sanitize:
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
             "-fno-omit-frame-pointer", "-g"]
    compile_args += flags
    link_args += flags

engine = Extension(
    "csae._engine",
    sources=["csae/_engine.pyx"] + sorted(glob.glob("src_c/*.c")),
    include_dirs=["src_c", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    libraries=["m"],
)

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
}

setup(ext_modules=cythonize([engine], compiler_directives=directives))
