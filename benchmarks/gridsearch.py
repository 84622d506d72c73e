#!/usr/bin/env python
"""csae under scikit-learn's process parallelism: GridSearchCV(n_jobs=2).

The workload: ``GridSearchCV(SparseAutoencoder(n_hidden=128,
batch_size=128, max_epochs=3, momentum=0.9, solver="sgd"), 4 candidates, cv=3,
n_jobs=2)``
on 6000 x 196 data in [0, 1), timed with each ``n_threads`` setting:

    default     n_threads=None: in joblib's loky workers it follows the
                OMP_NUM_THREADS that joblib sets there (cores // n_jobs)
    1           n_threads=1
    all-cores   n_threads=<every core>: what None used to mean,
                n_jobs x cores threads on cores cores

Every setting runs in its own fresh interpreter (``--worker SETTING``), which
first fits once untimed (loky starts its workers, which import csae and
scikit-learn), then times ``--repeats`` fits of the reused workers and prints
them as one JSON line.  Settings alternate over ``--rounds`` rounds so that
a neighbour's burst of load hits them alike.  The table gives the median
seconds of each setting and its ratio to n_threads=1, and names the CPU.

Besides wall-clock time it reports the CPU time the search consumed (this
process and its loky workers, from /proc on Linux): on a machine shared with
other busy processes, wall-clock time measures the neighbours as much as
csae (an oversubscribed setting even wins a larger share of the cores from
them), while CPU time shows what each setting costs.

    python benchmarks/gridsearch.py                 # 3 rounds x 3 fits, ~2 min on 2 cores
    python benchmarks/gridsearch.py --rounds 1 --repeats 1 --samples 1500   # smoke run
    python benchmarks/gridsearch.py --json grid.json

Needs scikit-learn (``pip install scikit-learn``).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from _machine import cpu_name

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SETTINGS = ("default", "1", "all-cores")
GRID = {"learning_rate": [0.05, 0.1], "sparsity_weight": [1.0, 3.0]}


def cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_seconds():
    """User + system CPU seconds of this process and all its descendants
    alive now (loky's workers), read from /proc; None off Linux."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # fields[1] is the parent pid; [11], [12] utime, stime.
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except (OSError, ValueError, AttributeError):
        return None
    mine, total, grew = {os.getpid()}, 0, True
    while grew:
        grew = False
        for pid, (parent, _) in stats.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                grew = True
    for pid in mine:
        total += stats.get(pid, (0, 0))[1]
    return total / tick


def n_threads_of(setting):
    return {"default": None, "1": 1, "all-cores": cpus()}[setting]


def worker(setting, samples, repeats, n_jobs):
    """Time GridSearchCV fits with one n_threads setting; print JSON."""
    import numpy as np
    from sklearn.model_selection import GridSearchCV

    sys.path.insert(0, REPO)
    from csae import SparseAutoencoder

    X = np.random.default_rng(0).random((samples, 196))
    search = GridSearchCV(
        SparseAutoencoder(solver="sgd", n_hidden=128, batch_size=128, max_epochs=3,
                          momentum=0.9, random_state=0, n_threads=n_threads_of(setting)),
        GRID, cv=3, n_jobs=n_jobs)
    search.fit(X)  # warm-up: loky starts its workers, which import csae
    times, cpu = [], []
    for _ in range(repeats):
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        search.fit(X)
        times.append(time.perf_counter() - start)
        cpu_end = cpu_seconds()
        if cpu_start is not None and cpu_end is not None:
            cpu.append(cpu_end - cpu_start)
    print(json.dumps({"setting": setting, "times": times, "cpu": cpu}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per round")
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--json", help="also write the measurements here")
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.samples, args.repeats, args.n_jobs)
        return 0

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    times = {setting: [] for setting in SETTINGS}
    cpu = {setting: [] for setting in SETTINGS}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for setting in SETTINGS:
            cmd = [sys.executable, __file__, "--worker", setting, "--samples",
                   str(args.samples), "--repeats", str(args.repeats), "--n-jobs",
                   str(args.n_jobs)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
            if out.returncode != 0:
                sys.stderr.write(out.stdout + out.stderr)
                return 1
            found = json.loads(out.stdout.strip().splitlines()[-1])
            times[setting] += found["times"]
            cpu[setting] += found["cpu"]
    load_after = os.getloadavg()

    medians = {s: statistics.median(t) for s, t in times.items()}
    cpu_medians = {s: statistics.median(c) if c else None for s, c in cpu.items()}
    print(f"GridSearchCV(SparseAutoencoder(n_hidden=128, batch_size=128, max_epochs=3, "
          f"momentum=0.9, solver='sgd'), 4 candidates, cv=3, n_jobs={args.n_jobs}) on "
          f"{args.samples} x 196")
    print(f"CPU: {cpu_name()}, {cpus()} usable cores; Python {platform.python_version()}")
    print(f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    print()
    print("| n_threads | wall s, median | wall s, min-max | wall / n_threads=1 "
          "| CPU s, median | CPU / n_threads=1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for setting in SETTINGS:
        label = {"default": "None (default)", "1": "1",
                 "all-cores": f"{cpus()} (every core: the old default)"}[setting]
        t, c, c1 = times[setting], cpu_medians[setting], cpu_medians["1"]
        cpu_cells = (f"{c:.2f} | {c / c1:.2f}x" if c is not None and c1
                     else "n/a | n/a")
        print(f"| {label} | {medians[setting]:.2f} | {min(t):.2f}-{max(t):.2f} | "
              f"{medians[setting] / medians['1']:.2f}x | {cpu_cells} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_name(), "cores": cpus(), "samples": args.samples,
                       "n_jobs": args.n_jobs, "times": times, "medians": medians,
                       "cpu_seconds": cpu, "cpu_medians": cpu_medians,
                       "load_before": load_before, "load_after": load_after}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
