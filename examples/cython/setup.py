"""Build the example extension against the installed csae:

    python setup.py build_ext --inplace

csae.get_include() is the folder of csae.h, csae.get_library() the shared
library; the rpath lets the extension find libcsae at run time wherever
pip put it.  (Cython finds csae/engine.pxd on sys.path, next to csae.)
"""
import os

import csae
from Cython.Build import cythonize
from setuptools import Extension, setup

libdir = os.path.dirname(csae.get_library())
serve = Extension(
    "serve",
    ["serve.pyx"],
    include_dirs=[csae.get_include()],
    library_dirs=[libdir],
    runtime_library_dirs=[libdir],
    libraries=["csae"],
)
setup(name="csae-serve-example", ext_modules=cythonize([serve]))
