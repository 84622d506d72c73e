"""Peak memory of SparseAutoencoder.fit on the L configuration: training
allocates nothing per step.

Runs fit in a fresh process and compares the growth of the peak resident
set during fit with what training must hold: a copy of the weights (fit
trains on fresh arrays so that arrays already handed out stay unchanged)
and the engine's workspace, O(batch x (inputs + hidden)) plus the gradient,
the packing buffers and the shuffle order.  Equal growth for 1 and for many
epochs shows that nothing accumulates per step.  Usage: python benchmarks/memory.py [--epochs N]
"""

import argparse
import json
import resource
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np
from csae import SparseAutoencoder
n, h, batch, m, epochs, dtype = 784, 1024, 256, 20_000, int(sys.argv[1]), np.float32
X = np.random.default_rng(0).random((m, n), dtype=dtype)
model = SparseAutoencoder(solver="sgd", n_hidden=h, batch_size=batch, max_epochs=epochs,
                          dtype="float32", n_threads=2, random_state=0)
import csae._engine                    # loaded before the baseline is taken
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
def current():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
before_current, before_peak = current(), peak()
model.fit(X)
print(json.dumps({"before_current": before_current, "before_peak": before_peak,
                  "after_peak": peak(), "after_current": current(),
                  "data_bytes": X.nbytes, "epochs": epochs}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.epochs)],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    n, h, batch, m, f = 784, 1024, 256, 20_000, 4
    # The model's weights, and the copy fit trains on (arrays already handed
    # out by the weight attributes must not change under the user).
    weights = 2 * (2 * n * h + n + h) * f
    workspace = (batch * (h + n + h) + 2 * h + (2 * n * h + n + h)) * f + m * 8 \
        + 2 * (120 * 256 + 256 * 1024) * f
    growth = r["after_peak"] - r["before_current"]
    mib = 2 ** 20
    print(f"L config, float32, batch {batch}, {m} samples, {r['epochs']} epochs, 2 threads")
    print(f"data (held by the caller, not copied): {r['data_bytes'] / mib:.1f} MiB")
    print(f"expected during fit: weights and their training copy {weights / mib:.1f} MiB + workspace "
          f"{workspace / mib:.1f} MiB = {(weights + workspace) / mib:.1f} MiB")
    print(f"measured peak RSS growth during fit: {growth / mib:.1f} MiB "
          f"(peak {r['after_peak'] / mib:.1f} MiB; before fit {r['before_current'] / mib:.1f} MiB, "
          f"peak before fit {r['before_peak'] / mib:.1f} MiB)")


if __name__ == "__main__":
    main()
