"""Build the compiled engine: one Cython extension over the C sources, and
the same C sources again as a shared library for C, C++ and Cython users.

The library, its header and a pkg-config file go inside the package:

    csae/include/csae.h
    csae/lib/libcsae.so               (libcsae.dylib on macOS)
    csae/lib/pkgconfig/csae.pc        relocatable: paths relative to ${pcfiledir}

(`csae.get_include()`, `csae.get_library()` and the `csae-config` command
find them wherever the package was installed.)  The library is compiled
with -fvisibility=hidden: csae.h marks the public API as default
visibility, so only the csae_* functions are exported.

CSAE_DEBUG=1 turns Cython's bounds checks back on and builds without
optimisation; CSAE_SANITIZE=1 adds AddressSanitizer and UBSan (to both).
"""
import glob
import os
import shutil
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

debug = os.environ.get("CSAE_DEBUG") == "1"
sanitize = os.environ.get("CSAE_SANITIZE") == "1"

# -fopenmp-simd honours the "omp simd" loop pragmas only: no OpenMP runtime.
# -fno-math-errno: the engine never reads errno after a math call, and
# without it GCC keeps every sqrt scalar (to set errno on a negative
# argument), so Adam's update could not vectorise; sqrt is correctly
# rounded either way, so no result changes.
compile_args = ["-std=c11", "-O0" if debug else "-O3", "-fopenmp-simd", "-fno-strict-aliasing",
                "-fno-math-errno"]
link_args = ["-lpthread"]
if sanitize:
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
             "-fno-omit-frame-pointer", "-g"]
    compile_args += flags
    link_args += flags

# Every file: a kernel path of another architecture (path_neon.c on x86-64,
# path_avx2.c and path_avx512.c on aarch64) compiles to an empty object, so
# the target compiler, not this script, decides which paths a build has.
C_SOURCES = sorted(glob.glob("src_c/*.c"))

engine = Extension(
    "csae._engine",
    sources=["csae/_engine.pyx"] + C_SOURCES,
    # The templates and headers: a change to one rebuilds the extension.
    depends=sorted(glob.glob("src_c/*.h")) + ["csae/engine.pxd"],
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

LIBRARY_NAME = "libcsae.dylib" if sys.platform == "darwin" else "libcsae.so"

# ${pcfiledir} is the folder holding the .pc file (pkg-config and pkgconf
# both define it), so the file is right wherever the wheel is unpacked.
PC_TEMPLATE = """\
prefix=${{pcfiledir}}/../..
includedir=${{prefix}}/include
libdir=${{prefix}}/lib

Name: csae
Description: Sparse autoencoder engine (C API of the csae Python package)
Version: {version}
Cflags: -I${{includedir}}
Libs: -L${{libdir}} -Wl,-rpath,${{libdir}} -lcsae
Libs.private: -lm -lpthread
"""


def _version():
    scope = {}
    with open(os.path.join("csae", "_version.py")) as f:
        exec(f.read(), scope)
    return scope["__version__"]


class build_ext_and_library(build_ext):
    """build_ext, then libcsae from the same C sources into the package."""

    def run(self):
        super().run()
        self.build_library()

    def build_library(self):
        package = os.path.join(self.build_lib, "csae") if not self.inplace else "csae"
        lib_dir = os.path.join(package, "lib")
        include_dir = os.path.join(package, "include")
        for folder in (lib_dir, include_dir, os.path.join(lib_dir, "pkgconfig")):
            os.makedirs(folder, exist_ok=True)
        objects = self.compiler.compile(
            C_SOURCES, output_dir=os.path.join(self.build_temp, "libcsae"),
            include_dirs=["src_c"], debug=self.debug,
            extra_postargs=compile_args + ["-fPIC", "-fvisibility=hidden"])
        soname = ("-Wl,-install_name,@rpath/" if sys.platform == "darwin"
                  else "-Wl,-soname,") + LIBRARY_NAME
        linker = list(self.compiler.linker_so)
        if sys.platform == "darwin":
            # Python's LDSHARED links a -bundle (loadable, not linkable) with
            # undefined symbols left to the interpreter: a library that
            # programs link with -lcsae must be a -dynamiclib, fully linked.
            # (Not exercised on this project's Linux machine.)
            flags, i = [], 0
            while i < len(linker):
                if linker[i] == "-undefined" and i + 1 < len(linker):
                    i += 2
                    continue
                if linker[i] != "-bundle":
                    flags.append(linker[i])
                i += 1
            self.compiler.set_executable("linker_so", flags + ["-dynamiclib"])
        try:
            self.compiler.link_shared_object(
                objects, os.path.join(lib_dir, LIBRARY_NAME), libraries=["m"],
                extra_postargs=link_args + [soname], debug=self.debug)
        finally:
            self.compiler.set_executable("linker_so", linker)
        shutil.copyfile(os.path.join("src_c", "csae.h"), os.path.join(include_dir, "csae.h"))
        with open(os.path.join(lib_dir, "pkgconfig", "csae.pc"), "w") as f:
            f.write(PC_TEMPLATE.format(version=_version()))


setup(ext_modules=cythonize([engine], compiler_directives=directives),
      cmdclass={"build_ext": build_ext_and_library})
