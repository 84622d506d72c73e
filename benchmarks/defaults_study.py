#!/usr/bin/env python
"""Which defaults let SparseAutoencoder(n_hidden=...) learn useful features?

The issue asks that a model with every parameter but ``n_hidden`` at its
default learns useful features on

(a) scikit-learn's digits: ``Pipeline(MinMaxScaler(), SparseAutoencoder(
    n_hidden=h), LogisticRegression())`` at least as accurate as the raw
    pixels with the same scaler and classifier (5-fold stratified
    cross-validation, the same folds for every row);
(b) natural image patches: the UFLDL example's 10 000 whitened 8x8 patches
    (``examples/ufldl_sparse_autoencoder.py``), where the filters should be
    clearly not noise; measured with ``csae.filters`` (noise filters have an
    orientation concentration near 0.15 and about 0.3 localisation).

Each candidate is a set of overrides on today's defaults; the table gives
the digits accuracy for each n_hidden (mean over folds, and its standard
deviation), the mean fit time of the pipeline per fold, and for the patches
(n_hidden=25) the median orientation concentration, the share of oriented
filters (> 0.5) and the share localised and oriented.  Times are wall
clock with ``n_threads=1`` and depend on the machine's load.

    python benchmarks/defaults_study.py                   # every row: tens of minutes of CPU
    python benchmarks/defaults_study.py --candidates default before --hidden 64 100
    python benchmarks/defaults_study.py --list
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

from _machine import cpu_name  # noqa: E402

# Overrides on today's defaults (solver "lbfgs", max_epochs 1000, tol 1e-5 (relative),
# sparsity_target 0.01, sparsity_weight 6, weight_decay 1e-4; for "sgd" and
# "adam" learning_rate 0.1, momentum 0, batch_size 100).  "before" is the
# set that was the default until the change to these.
_BEFORE = dict(solver="sgd", max_epochs=100, sparsity_target=0.05, sparsity_weight=3.0)
CANDIDATES = {
    "default": {},
    "before": _BEFORE,
    "before-m0.9": dict(_BEFORE, momentum=0.9),
    "before-lr0.5-m0.9": dict(_BEFORE, learning_rate=0.5, momentum=0.9),
    "before-adam-1e-2": dict(_BEFORE, solver="adam", learning_rate=1e-2, max_epochs=200),
    "before-sparsity-lbfgs": dict(sparsity_target=0.05, sparsity_weight=3.0),
    "lbfgs-400": dict(max_epochs=400),
    "lbfgs-400-tol0": dict(max_epochs=400, tol=0.0),
    "tol1e-4": dict(tol=1e-4),
    "rho0.02": dict(sparsity_target=0.02),
    "rho0.05-w6": dict(sparsity_target=0.05),
    "w3": dict(sparsity_weight=3.0),
    "wd1e-3": dict(weight_decay=1e-3),
    "sgd-m0.9": dict(solver="sgd", momentum=0.9),
    "adam-1e-3": dict(solver="adam", learning_rate=1e-3),
    "adam-1e-2": dict(solver="adam", learning_rate=1e-2),
}


def _supports(params):
    from csae import SparseAutoencoder
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one epoch is meant to end early
            SparseAutoencoder(n_hidden=2, **{**params, "max_epochs": 1}).fit(
                np.random.default_rng(0).random((10, 4)))
    except ValueError:  # a solver or parameter this version does not know
        return False
    return True


def digits_scores(params, n_hidden, folds, seed):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    from csae import SparseAutoencoder

    X, y = load_digits(return_X_y=True)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    steps = [MinMaxScaler()]
    if n_hidden:
        steps.append(SparseAutoencoder(n_hidden=n_hidden, random_state=seed, n_threads=1,
                                       **params))
    steps.append(LogisticRegression(max_iter=5000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings are part of what we measure
        out = cross_validate(make_pipeline(*steps), X, y, cv=cv)
    return out["test_score"], out["fit_time"]


def patch_scores(params, n_patches, seed):
    from ufldl_sparse_autoencoder import ufldl_patches

    from csae import SparseAutoencoder
    from csae.filters import localisation, orientation_concentration

    X = ufldl_patches(n_patches, random_state=seed)
    model = SparseAutoencoder(n_hidden=25, random_state=seed, n_threads=1, **params)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    seconds = time.perf_counter() - start
    loc, ori = localisation(model), orientation_concentration(model)
    return np.median(ori), np.mean(ori > 0.5), np.mean((ori > 0.5) & (loc > 0.5)), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", nargs="*", default=None,
                        help="names from --list (default: all the installed csae supports)")
    parser.add_argument("--hidden", nargs="*", type=int, default=[25, 64, 100])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--patches", type=int, default=10_000,
                        help="natural patches for (b); 0 skips it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, params in CANDIDATES.items():
            print(f"{name:28s} {params}")
        return
    names = args.candidates or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates {unknown}; see --list")

    print(f"CPU: {cpu_name()}; {args.folds}-fold CV on digits, seed {args.seed}")
    raw, _ = digits_scores({}, 0, args.folds, args.seed)
    print(f"raw pixels (MinMaxScaler + LogisticRegression): "
          f"{raw.mean():.4f} +- {raw.std():.4f}")
    head = "".join(f" | h={h} acc (fit s)" for h in args.hidden)
    if args.patches:
        head += " | patches: median ori | oriented | loc+ori | fit s"
    print(f"{'candidate':28s}{head}")
    for name in names:
        params = CANDIDATES[name]
        if not _supports(params):
            print(f"{name:28s} | not supported by this csae")
            continue
        row = f"{name:28s}"
        for h in args.hidden:
            scores, fit_time = digits_scores(params, h, args.folds, args.seed)
            mark = "*" if scores.mean() >= raw.mean() else " "
            row += f" | {scores.mean():.4f}{mark}+-{scores.std():.3f} ({fit_time.mean():5.1f})"
        if args.patches:
            med, oriented, both, seconds = patch_scores(params, args.patches, args.seed)
            row += f" | {med:.2f} | {oriented:4.0%} | {both:4.0%} | {seconds:5.1f}"
        print(row, flush=True)
    print("* at least as accurate as raw pixels")


def _one_blas_thread():
    """One BLAS thread for scikit-learn's classifier, as csae gets
    n_threads=1: on a shared machine OpenBLAS's threads otherwise spin
    against the neighbours (a logistic regression on 900 digits spent
    80 ms per gradient evaluation that way)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(1)


if __name__ == "__main__":
    with _one_blas_thread():
        main()
