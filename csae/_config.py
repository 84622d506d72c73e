"""Where the installed C library is, for C, C++ and Cython builds.

``pip install csae`` places the engine's header and a shared library
(built from the same C sources as the extension) inside the package:
``csae/include/csae.h``, ``csae/lib/libcsae.so`` and a relocatable
pkg-config file ``csae/lib/pkgconfig/csae.pc``.  The functions here return
those paths (numpy's ``get_include`` convention), and ``csae-config``
prints them as compiler and linker flags::

    cc app.c $(csae-config --cflags --libs) -o app
    PKG_CONFIG_PATH=$(csae-config --pkgconfigdir) pkg-config --cflags --libs csae
"""

import argparse
import os
import sys

__all__ = ["get_include", "get_library", "get_pkgconfig_dir", "main"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_LIBRARY = "libcsae.dylib" if sys.platform == "darwin" else "libcsae.so"


def _existing(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{what} not found at {path}: this csae was not built with its C library "
            "(install it with pip, or run `python setup.py build_ext --inplace` in a "
            "source tree)")
    return path


def get_include() -> str:
    """The folder holding ``csae.h``, for ``-I`` (or an Extension's
    ``include_dirs``).

    Returns
    -------
    path : str

    Raises
    ------
    FileNotFoundError
        If the package was installed without its C library.
    """
    return os.path.dirname(_existing(os.path.join(_HERE, "include", "csae.h"), "csae.h"))


def get_library() -> str:
    """The path of the shared library ``libcsae.so`` (``.dylib`` on macOS).

    Link with ``-L<its folder> -lcsae`` and an rpath to that folder (what
    ``csae-config --libs`` prints).

    Returns
    -------
    path : str

    Raises
    ------
    FileNotFoundError
        If the package was installed without its C library.
    """
    return _existing(os.path.join(_HERE, "lib", _LIBRARY), _LIBRARY)


def get_pkgconfig_dir() -> str:
    """The folder holding ``csae.pc``, for ``PKG_CONFIG_PATH``."""
    return os.path.dirname(_existing(os.path.join(_HERE, "lib", "pkgconfig", "csae.pc"),
                                     "csae.pc"))


def _flags(args: argparse.Namespace) -> "list[str]":
    from csae._version import __version__
    out = []
    if args.version:
        out.append(__version__)
    if args.cflags:
        out.append(f"-I{get_include()}")
    if args.libs:
        libdir = os.path.dirname(get_library())
        out.append(f"-L{libdir} -Wl,-rpath,{libdir} -lcsae")
    if args.libdir:
        out.append(os.path.dirname(get_library()))
    if args.pkgconfigdir:
        out.append(get_pkgconfig_dir())
    return out


def main(argv: "list[str] | None" = None) -> int:
    """``csae-config``: compiler and linker flags for the installed C library."""
    parser = argparse.ArgumentParser(
        prog="csae-config",
        description="Print compiler and linker flags for building against csae's C library "
                    "(header csae.h, shared library libcsae). Example: "
                    "cc app.c $(csae-config --cflags --libs) -o app")
    parser.add_argument("--cflags", action="store_true", help="-I flag for csae.h")
    parser.add_argument("--libs", action="store_true",
                        help="-L, -rpath and -l flags for libcsae")
    parser.add_argument("--libdir", action="store_true", help="the folder holding libcsae")
    parser.add_argument("--pkgconfigdir", action="store_true",
                        help="the folder holding csae.pc (for PKG_CONFIG_PATH)")
    parser.add_argument("--version", action="store_true", help="the csae version")
    args = parser.parse_args(argv)
    if not any(vars(args).values()):
        parser.print_help()
        return 2
    try:
        lines = _flags(args)
    except FileNotFoundError as err:
        print(f"csae-config: {err}", file=sys.stderr)
        return 1
    print(" ".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
