"""Hand-made mutants of the checks and rules the tests must pin: does the
suite notice when a bound moves by one float, a comparison loses its
equals sign, or the C reader's check drifts from Python's?

Each mutant replaces one exact piece of text in one file.  The script
copies the source tree to a temporary folder (the checkout is never
touched), applies one mutant at a time, rebuilds the extension for C
mutants, runs the test files listed for it (``pytest -x``) and reports
which mutants the tests killed and which survived.  A surviving mutant is
either equivalent (say why in its ``note``) or a missing test: write the
test that kills it.

    python tools/mutate.py                  # every mutant (20-60 minutes on 2 cores)
    python tools/mutate.py --python         # Python mutants only (no rebuilds)
    python tools/mutate.py --only V1 C2     # some of them
    python tools/mutate.py --list           # what there is
    python tools/mutate.py --root ../other  # mutate another checkout (same layout)

Run it from the repository root with the test environment's Python, after
``python setup.py build_ext --inplace`` (the copy reuses the build).  It is
too slow for CI; run it after changing validation, the stopping rule or the
model-file reader (docs/contributing.md).  Why not mutmut: it would mutate
every line of every module and run the whole suite (17 minutes) per mutant,
and it cannot rebuild the C engine; this list aims at the edges instead.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))

VALIDATION_TESTS = ("tests/test_guarantees_bad_input.py", "tests/test_params.py",
                    "tests/test_estimator.py", "tests/test_model_file_rules.py")
DATA_TESTS = ("tests/test_guarantees_bad_input.py", "tests/test_estimator.py", "tests/test_params.py")
STOPPING_TESTS = ("tests/test_params.py", "tests/test_early_stopping.py",
                  "tests/test_estimator.py", "tests/test_warnings.py")
READER_TESTS = ("tests/test_model_file_rules.py", "tests/test_params.py",
                "tests/test_model_file.py")


@dataclass
class Mutant:
    id: str
    path: str
    old: str
    new: str
    tests: tuple
    note: str = ""  # why it is equivalent, when it is


MUTANTS = [
    # ---- Python: hyperparameter validation (csae/_validation.py) --------
    Mutant("V1", "csae/_validation.py", "below = v <= low if low_open else v < low",
           "below = v < low", VALIDATION_TESTS),
    Mutant("V2", "csae/_validation.py", "above = v >= high if high_open else v > high",
           "above = v > high", VALIDATION_TESTS),
    Mutant("V3", "csae/_validation.py",
           "if value < minimum or (maximum is not None and value > maximum):",
           "if value < minimum - 1 or (maximum is not None and value > maximum):",
           VALIDATION_TESTS),
    Mutant("V4", "csae/_validation.py",
           "if value < minimum or (maximum is not None and value > maximum):",
           "if value < minimum or (maximum is not None and value > maximum + 1):",
           VALIDATION_TESTS),
    Mutant("V5", "csae/_validation.py", "if positive and rounded < float(info.tiny):",
           "if positive and rounded <= 0:", VALIDATION_TESTS),
    Mutant("V6", "csae/_validation.py", "if below_one and rounded >= 1.0:",
           "if below_one and rounded > 1.0:", VALIDATION_TESTS),
    Mutant("V7", "csae/_validation.py", "0 <= int(random_state) <= _MASK64",
           "0 <= int(random_state) <= _MASK64 + 1", VALIDATION_TESTS),
    Mutant("V8", "csae/_validation.py", "if not math.isfinite(rounded):",
           "if math.isnan(rounded):", VALIDATION_TESTS),
    # ---- Python: data checks --------------------------------------------
    Mutant("D1", "csae/_validation.py", "high > 1.0 + UNIT_INTERVAL_SLACK",
           "high > 1.5", DATA_TESTS),
    Mutant("D2", "csae/_validation.py", "if low < -UNIT_INTERVAL_SLACK",
           "if low < -0.5", DATA_TESTS),
    Mutant("D3", "csae/_validation.py", "UNIT_INTERVAL_SLACK = 1e-6",
           "UNIT_INTERVAL_SLACK = 1e-5", DATA_TESTS),
    Mutant("D4", "csae/_validation.py", "| ~(scaled_high <= 1.0 + UNIT_INTERVAL_SLACK))",
           "| ~(scaled_high <= 1.0 + 10 * UNIT_INTERVAL_SLACK))", DATA_TESTS),
    Mutant("D5", "csae/_validation.py", "~(scaled_low >= -UNIT_INTERVAL_SLACK)",
           "~(scaled_low >= -10 * UNIT_INTERVAL_SLACK)", DATA_TESTS),
    Mutant("D6", "csae/_training.py", "if n_samples - n_val < 1:",
           "if n_samples - n_val < 0:", DATA_TESTS + ("tests/test_early_stopping.py",)),
    # ---- Python: the stopping rule (csae/solvers/_monitor.py) ----------
    Mutant("S1", "csae/solvers/_monitor.py",
           "self.count = 0 if value < self.best - margin else self.count + 1",
           "self.count = 0 if value <= self.best - margin else self.count + 1",
           STOPPING_TESTS),
    Mutant("S2", "csae/solvers/_monitor.py", "return self.count >= self.patience",
           "return self.count > self.patience", STOPPING_TESTS),
    Mutant("S3", "csae/solvers/_monitor.py",
           "self.active = active and (early_stopping or hp.tol > 0)",
           "self.active = active and (early_stopping or hp.tol >= 0)", STOPPING_TESTS),
    Mutant("S4", "csae/solvers/_monitor.py", "if keep is not None and value < self.best_value:",
           "if keep is not None and value <= self.best_value:",
           STOPPING_TESTS),
    # ---- C: the model-file reader's checks (src_c/model_file.c) --------
    Mutant("C1", "src_c/model_file.c", "if (low_open ? x <= low : x < low)",
           "if (x < low)", READER_TESTS),
    Mutant("C2", "src_c/model_file.c",
           "return json_real(v, 0.0, 1.0, 1, 0, &hp->sparsity_smoothing);",
           "return json_real(v, 0.0, 1.0, 1, 1, &hp->sparsity_smoothing);", READER_TESTS),
    Mutant("C3", "src_c/model_file.c",
           "if (positive && rounded < (elem_size == 4 ? (double)FLT_MIN : DBL_MIN))",
           "if (positive && rounded <= 0)", READER_TESTS),
    Mutant("C4", "src_c/model_file.c", "#define MAX_THREADS UINT64_C(0x7FFFFFFF)",
           "#define MAX_THREADS UINT64_C(0x80000000)", READER_TESTS),
    Mutant("C5", "src_c/model_file.c", "if (fabs(x) >= 0x1.ffffffp127)",
           "if (fabs(x) > 0x1.ffffffp127)", READER_TESTS,
           note="equivalent in effect: the halfway value then reaches the (float) "
                "cast, which rounds it to inf and is refused; the check is there "
                "to keep that cast defined, not to change the answer"),
    # ---- C: the engine --------------------------------------------------
    Mutant("E1", "src_c/core_template.h",
           "s[j] = (REAL)(beta * (-rho / q + (1 - rho) / (1 - q)));",
           "s[j] = (REAL)(beta * (-rho / q + (1 - rho) / (1 + q)));",
           ("tests/test_engine.py",)),
]


def _copy_tree(root, dest):
    def ignore(folder, names):
        return [n for n in names if n in (".git", "__pycache__", ".pytest_cache",
                                          ".hypothesis", "dist", "mutants")]
    shutil.copytree(root, dest, ignore=ignore, symlinks=True)


def _build(tree, log):
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                            cwd=tree, stdout=log, stderr=subprocess.STDOUT)
    return result.returncode == 0


def _run_tests(tree, tests, log):
    tests = [t for t in tests if os.path.exists(os.path.join(tree, t))]
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    result = subprocess.run(cmd, cwd=tree, stdout=log, stderr=subprocess.STDOUT)
    return result.returncode, tests


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.dirname(HERE),
                        help="checkout to mutate (default: this one)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these mutants")
    parser.add_argument("--python", action="store_true", help="Python mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if (not args.only or m.id in args.only)
              and not (args.python and m.path.startswith("src_c/"))]
    if args.list:
        for m in chosen:
            print(f"{m.id:3}  {m.path}: {m.old!r} -> {m.new!r}")
        return 0
    root = os.path.abspath(args.root)
    work = tempfile.mkdtemp(prefix="csae-mutate-")
    tree = os.path.join(work, "tree")
    _copy_tree(root, tree)
    print(f"mutating a copy of {root} in {tree}", flush=True)
    # Python mutants first: a C mutant leaves its build in the copy.
    chosen.sort(key=lambda m: m.path.startswith("src_c/"))
    results = []
    try:
        for m in chosen:
            path = os.path.join(tree, m.path)
            if not os.path.exists(path):
                results.append((m, "absent", 0.0, ()))
                print(f"{m.id:3}  absent (no {m.path})", flush=True)
                continue
            with open(path) as fh:
                original = fh.read()
            if original.count(m.old) != 1:
                results.append((m, "absent", 0.0, ()))
                print(f"{m.id:3}  absent (its text is not in {m.path} exactly once)",
                      flush=True)
                continue
            start = time.perf_counter()
            with open(os.path.join(work, f"{m.id}.log"), "w") as log:
                try:
                    with open(path, "w") as fh:
                        fh.write(original.replace(m.old, m.new))
                    if m.path.startswith("src_c/") and not _build(tree, log):
                        outcome, tests = "invalid (does not build)", ()
                    else:
                        code, tests = _run_tests(tree, m.tests, log)
                        outcome = "survived" if code == 0 else "killed"
                finally:
                    with open(path, "w") as fh:
                        fh.write(original)
            seconds = time.perf_counter() - start
            results.append((m, outcome, seconds, tests))
            extra = f"  ({m.note})" if m.note and outcome == "survived" else ""
            print(f"{m.id:3}  {outcome:8}  {seconds:6.0f} s  {m.path}{extra}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    counted = [r for r in results if r[1] in ("killed", "survived")]
    killed = sum(r[1] == "killed" for r in counted)
    survivors = [r[0].id for r in counted if r[1] == "survived"]
    print(f"killed {killed} of {len(counted)}; survived: {', '.join(survivors) or 'none'}")
    return 0 if not survivors else 1


if __name__ == "__main__":
    sys.exit(main())
