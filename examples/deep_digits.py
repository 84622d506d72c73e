"""UFLDL's "Building Deep Networks for Classification" on the scikit-learn digits.

UFLDL trains two sparse autoencoders greedily on MNIST (784-200-200), a
softmax classifier on the second layer's features, then fine-tunes the whole
network with L-BFGS on the labels, and reports that fine-tuning lifts test
accuracy from about 88% to about 98%.  This script runs the same recipe with
``csae.SparseAutoencoderClassifier`` on the 1,797 8x8 images of
``sklearn.datasets.load_digits`` (or on any array of images you pass to
``run``), and compares, on held-out images:

1. raw pixels, logistic regression;
2. the stacked autoencoders' features, frozen, logistic regression
   (``csae.stack`` of the pretrained autoencoders);
3. the network before fine-tuning (the softmax layer on the frozen
   features, ``pretrained_layers_``);
4. the network after fine-tuning;
5. the same network fine-tuned from random weights (``pretrain=False``);
6. scikit-learn's ``MLPClassifier`` of the same shape (logistic units,
   L-BFGS, the same weight decay and iteration budget) from random weights.

Each row is the mean (and the spread) over ``--splits`` random
train/test splits.  ``--filters PATH`` saves the first layer's filters
before and after fine-tuning as pictures (needs matplotlib).

The default network is 64-30-20-10: UFLDL compresses MNIST's 784 pixels
about 4:1 in its first layer, and the digits' 64 pixels need few units for
the same.  With wider layers (``--hidden 100 50``, ``--hidden 200 200``)
the frozen features are already nearly as good as the fine-tuned network on
this small, easy data set (docs/deep.md has the numbers).

Run ``python examples/deep_digits.py`` (10 to 20 seconds per split on a
shared core); ``--splits 1 --iterations 50`` is a quick check.  Needs
scikit-learn.
"""

import argparse
import time
import warnings

import numpy as np

import csae
from csae import reference

ROWS = [
    ("raw", "raw pixels, logistic regression"),
    ("frozen", "stacked features (frozen), logistic regression"),
    ("before", "network before fine-tuning (softmax on frozen features)"),
    ("after", "network after fine-tuning"),
    ("random", "same network from random weights, fine-tuned"),
    ("mlp", "scikit-learn MLPClassifier, same shape, random weights"),
]


def as_rows(images):
    """Images (n, height, width) or rows (n, pixels) as rows in [0, 1]
    (one global scale, so every pixel keeps its relative brightness)."""
    X = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    span = X.max() - X.min()
    return (X - X.min()) / (span if span > 0 else 1.0)


def run(images, labels, *, hidden=(30, 20), train_size=1000, seed=0, max_iter=400,
        alpha=1e-4, filters=None):
    """The six accuracies (a dict keyed by ``ROWS``' names) on one split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X = as_rows(images)
    Xtr, Xte, ytr, yte = train_test_split(X, labels, train_size=train_size, stratify=labels,
                                          random_state=seed)
    out = {}
    out["raw"] = LogisticRegression(max_iter=5000).fit(Xtr, ytr).score(Xte, yte)
    settings = dict(hidden_layer_sizes=hidden, alpha=alpha, max_iter=max_iter,
                    scale_inputs=False, random_state=seed)
    clf = csae.SparseAutoencoderClassifier(**settings).fit(Xtr, ytr)
    encoder = csae.stack(clf.autoencoders_)
    out["frozen"] = (LogisticRegression(max_iter=5000)
                     .fit(encoder.transform(Xtr), ytr).score(encoder.transform(Xte), yte))
    before = reference.deep_forward(list(clf.pretrained_layers_), Xte)
    out["before"] = float(np.mean(clf.classes_[before.argmax(axis=1)] == yte))
    out["after"] = clf.score(Xte, yte)
    out["random"] = csae.SparseAutoencoderClassifier(pretrain=False, **settings) \
        .fit(Xtr, ytr).score(Xte, yte)
    # MLPClassifier's alpha multiplies ||W||^2 / (2 m) of a summed loss: the
    # same penalty as alpha / 2 ||W||^2 on the mean loss, as csae's.
    out["mlp"] = MLPClassifier(hidden, activation="logistic", solver="lbfgs", alpha=alpha,
                               max_iter=max_iter, random_state=seed).fit(Xtr, ytr) \
        .score(Xte, yte)
    if filters:
        side = int(round(np.sqrt(X.shape[1])))
        shape = (side, side) if side * side == X.shape[1] else None
        stem = str(filters).rsplit(".", 1)[0]
        csae.plot_filters(clf.pretrained_layers_[0][0], f"{stem}_pretrained.png", shape=shape,
                          title="first layer, pretrained")
        csae.plot_filters(clf.layers_[0][0], f"{stem}_finetuned.png", shape=shape,
                          title="first layer, fine-tuned")
    return out


def table(results):
    """A markdown table of the mean (and min-max) accuracy of each row."""
    lines = ["| features and classifier | test accuracy (mean) | min - max |",
             "|---|---|---|"]
    for key, label in ROWS:
        values = np.array([r[key] for r in results])
        lines.append(f"| {label} | {100 * values.mean():.1f}% | "
                     f"{100 * values.min():.1f} - {100 * values.max():.1f} |")
    gain = np.array([r["after"] - r["frozen"] for r in results])
    gain_softmax = np.array([r["after"] - r["before"] for r in results])
    lines.append("")
    lines.append(f"Fine-tuning against the frozen features with logistic regression: "
                 f"{100 * gain.mean():+.1f} points (per split: "
                 f"{', '.join(f'{100 * g:+.1f}' for g in gain)}); against the softmax "
                 f"layer on the frozen features: {100 * gain_softmax.mean():+.1f} points "
                 f"({', '.join(f'{100 * g:+.1f}' for g in gain_softmax)}).")
    return "\n".join(lines)


def main(argv=None):
    from sklearn.datasets import load_digits
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[30, 20])
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--filters", default=None, help="save filter pictures as PATH_*.png")
    args = parser.parse_args(argv)
    digits = load_digits()
    results = []
    for seed in range(args.splits):
        start = time.perf_counter()
        with warnings.catch_warnings():
            # Iteration budgets are fixed on purpose (UFLDL's 400).
            warnings.simplefilter("ignore", category=csae.ConvergenceWarning)
            from sklearn.exceptions import ConvergenceWarning
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            results.append(run(digits.images, digits.target, hidden=tuple(args.hidden),
                               train_size=args.train_size, seed=seed,
                               max_iter=args.iterations, alpha=args.alpha,
                               filters=args.filters if seed == 0 else None))
        print(f"split {seed}: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in results[-1].items())
              + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print(table(results))
    return results


if __name__ == "__main__":
    main()
