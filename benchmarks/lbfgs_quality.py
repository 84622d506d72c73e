"""How good csae's L-BFGS is as an optimizer: the objective it reaches after N
iterations from the same start as SciPy's L-BFGS-B, on small autoencoder
problems (bars, sparse blobs, a linear decoder on Gaussian data; one of each
per seed), and the evaluations it needs.

In float64, csae's optimizer is SciPy's algorithm and follows SciPy's run
closely (tests/test_solvers.py).  In float32 every run carries float32
rounding, and after a hundred iterations any change of rounding moves the
objective by a few per cent either way.  So each float32 problem is run three
ways:

- csae: ``csae.solvers.lbfgs.lbfgs`` as a float32 fit runs it (the engine's
  float32 objective, the optimizer's pairs kept in float32);
- scipy: SciPy's L-BFGS-B on the same engine objective (float32 parameters,
  float64 optimizer);
- scipy-ref: SciPy's L-BFGS-B on csae.reference's NumPy float32 objective,
  the same function summed in other orders: how far rounding alone moves a
  run, the yardstick for the first column.

    python benchmarks/lbfgs_quality.py                        # float32, 100 iterations, 10 seeds
    python benchmarks/lbfgs_quality.py --iterations 400 --seeds 10
    python benchmarks/lbfgs_quality.py --dtype float64 --seeds 3

Prints one line per problem (the ratio of each run's final objective to
SciPy's on the engine objective) and a summary: mean, least and largest
ratio, and total evaluations.  Needs SciPy.
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from scipy import optimize  # noqa: E402

from csae import reference  # noqa: E402
from csae._backends import get_backend  # noqa: E402
from csae.datasets import make_bars  # noqa: E402
from csae.solvers.lbfgs import lbfgs  # noqa: E402


def problems(seeds, dtype):
    """(name, X, params, hyper) for each seed: the three problems of
    tests/test_solvers.py's comparison with SciPy."""
    for seed in seeds:
        rng = np.random.default_rng(seed)
        blobs = (rng.random((300, 49)) < 0.2) * rng.random((300, 49))
        for name, X, h, decoder in [("bars", make_bars(600, random_state=seed), 25, "sigmoid"),
                                    ("blobs", blobs, 30, "sigmoid"),
                                    ("gauss", rng.standard_normal((300, 30)), 20, "linear")]:
            X = np.ascontiguousarray(X, dtype=dtype)
            params, _ = reference.init_params(X.shape[1], h, seed, dtype)
            yield (f"{name} seed {seed}", X, params,
                   dict(rho=0.05, beta=3.0, lam=1e-4, decoder=decoder))


def scipy_run(module, X, params, hyper, iterations):
    """SciPy's L-BFGS-B on module's objective; (objective, evaluations)."""
    theta0 = np.concatenate([p.ravel() for p in params]).astype(np.float64)
    ends = np.cumsum([p.size for p in params])[:-1]

    def fun(theta):
        parts = np.split(theta, ends)
        p = tuple(a.reshape(q.shape).astype(q.dtype) for a, q in zip(parts, params))
        loss, grads = module.objective_and_gradients(p, X, **hyper)
        return float(loss), np.concatenate([g.ravel() for g in grads]).astype(np.float64)

    result = optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B",
                               options=dict(maxiter=iterations, gtol=0.0))
    return float(result.fun), int(result.nfev)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args(argv)
    engine = get_backend("c")
    runs = {"csae": [], "scipy": [], "scipy-ref": []}
    for name, X, params, hyper in problems(range(args.seeds), np.dtype(args.dtype)):
        ours = lbfgs(lambda p: engine.objective_and_gradients(p, X, **hyper), params,
                     max_iter=args.iterations, max_fun=100 * args.iterations, tol=0)
        runs["csae"].append((ours.loss_curve[-1], ours.n_fun))
        runs["scipy"].append(scipy_run(engine, X, params, hyper, args.iterations))
        runs["scipy-ref"].append(scipy_run(reference, X, params, hyper, args.iterations))
        base = runs["scipy"][-1][0]
        print(f"{name:15s} csae / scipy {runs['csae'][-1][0] / base:.5f}   "
              f"scipy-ref / scipy {runs['scipy-ref'][-1][0] / base:.5f}", flush=True)
    base = np.array([f for f, _ in runs["scipy"]])
    print(f"\n{args.dtype}, {args.iterations} iterations, {len(base)} problems")
    for key, values in runs.items():
        ratios = np.array([f for f, _ in values]) / base
        print(f"{key:10s} objective / scipy's: mean {ratios.mean():.5f}, "
              f"least {ratios.min():.5f}, largest {ratios.max():.5f}; "
              f"evaluations {sum(n for _, n in values)}")


if __name__ == "__main__":
    main()
