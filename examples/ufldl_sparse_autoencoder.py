"""UFLDL's sparse autoencoder exercise on natural images that scikit-learn ships.

Stanford's UFLDL tutorial trains a sparse autoencoder on 10 000 random 8x8
patches of whitened natural images (64 -> 25 -> 64, sparsity target 0.01,
lambda 1e-4, beta 3, 400 iterations of L-BFGS) and gets localised, oriented
edge detectors.  This script does the same with the two photographs of
``sklearn.datasets.load_sample_images()``:

1. grey levels (ITU-R BT.601 luma);
2. each image reduced ``--downsample`` times by averaging pixel blocks
   (default 3: see below);
3. Olshausen and Field's whitening filter (``csae.datasets.whiten_images``);
4. 10 000 random 8x8 patches (``extract_patches``), normalised the UFLDL
   way (``normalize_patches``: each patch's mean removed, truncated to +-3
   standard deviations, rescaled to [0.1, 0.9]);
5. ``SparseAutoencoder(n_hidden=25, sparsity_target=0.01,
   weight_decay=1e-4, sparsity_weight=6.0, solver="lbfgs")``: UFLDL's
   lambda is csae's ``weight_decay`` and UFLDL's beta is half of csae's
   ``sparsity_weight`` (csae's objective is exactly twice UFLDL's J; see
   the hyperparameter table of docs/training.md); these are also csae's defaults.
   ``tol=0`` makes L-BFGS run every iteration it is given, as in the
   exercise (the default ``tol=1e-5`` stops it when the objective stalls,
   after 537 iterations here).

It prints the final objective (csae's and UFLDL's J, half of it), the mean
hidden activation against the target rho, and how localised and oriented
the filters are (``csae.filters``), and saves the filter picture.

Why downsample: the two photographs are 427x640 JPEGs of a pagoda (with
regular railings and roof tiles) and a dahlia; at full resolution an 8x8
patch sees mostly these periodic textures, and the learned filters are
gratings spanning the patch even after whitening.  Averaging 3x3 blocks
makes an 8x8 patch cover a larger part of the scene (closer to
Olshausen's 512x512 images of forests and rocks) and removes the JPEG
compression's 8-pixel block grid, which whitening would otherwise
amplify.  ``--downsample 1`` shows the difference.

Run ``python examples/ufldl_sparse_autoencoder.py`` (6 to 7 seconds of
CPU time on an AMD EPYC, 4 to 5 of them the 400 iterations);
``--iterations 20`` is a quick check.  Needs scikit-learn, SciPy and
matplotlib: ``pip install "csae[examples]"``.
"""

import argparse
import time

import numpy as np

from csae import SparseAutoencoder, plot_filters
from csae.datasets import extract_patches, normalize_patches, whiten_images
from csae.filters import localisation, localised_oriented_share, orientation_concentration

# UFLDL's settings, mapped to csae's objective (twice UFLDL's J).
RHO, UFLDL_LAMBDA, UFLDL_BETA = 0.01, 1e-4, 3.0
LUMA = np.array([0.299, 0.587, 0.114])


def grey_sample_images(downsample=3):
    """scikit-learn's two sample photographs, grey, each ``downsample`` x
    ``downsample`` block of pixels averaged into one."""
    from sklearn.datasets import load_sample_images

    images = np.asarray(load_sample_images().images, dtype=np.float64) @ LUMA
    n, height, width = images.shape
    h, w = height // downsample, width // downsample
    blocks = images[:, :h * downsample, :w * downsample]
    return blocks.reshape(n, h, downsample, w, downsample).mean(axis=(2, 4))


def ufldl_patches(n_patches=10_000, downsample=3, random_state=0):
    """Whitened, UFLDL-normalised 8x8 patches, shape (n_patches, 64), in [0.1, 0.9]."""
    white = whiten_images(grey_sample_images(downsample))
    patches = extract_patches(white, patch_size=8, n_patches=n_patches,
                              random_state=random_state)
    return normalize_patches(patches)


def run(iterations=400, n_patches=10_000, downsample=3, seed=0, output=None, verbose=True):
    """Train the exercise's model and report on it.

    Returns
    -------
    results : dict
        ``model``; ``objective`` (csae's final objective; UFLDL's J is half
        of it); ``mean_activation`` (hidden units' mean activation over the
        patches, per unit, shape (25,)); ``localisation`` and
        ``orientation`` (per filter, see ``csae.filters``); ``share`` (share
        of filters localised and oriented); ``seconds`` and ``cpu_seconds``
        (training time, wall clock and CPU).
    """
    X = ufldl_patches(n_patches, downsample, seed)
    model = SparseAutoencoder(n_hidden=25, sparsity_target=RHO, weight_decay=UFLDL_LAMBDA,
                              sparsity_weight=2 * UFLDL_BETA, solver="lbfgs",
                              max_epochs=iterations, tol=0.0, random_state=seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(X)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    rho_hat = model.transform(X).mean(axis=0)
    results = dict(model=model, objective=float(model.loss_curve_[-1]),
                   mean_activation=rho_hat, localisation=localisation(model),
                   orientation=orientation_concentration(model),
                   share=localised_oriented_share(model), seconds=seconds,
                   cpu_seconds=cpu_seconds)
    if verbose:
        loc, ori = results["localisation"], results["orientation"]
        # CPU time too: on a busy machine the wall clock measures the neighbours.
        print(f"{X.shape[0]} patches of 8x8, {model.n_iter_} L-BFGS iterations in "
              f"{seconds:.1f} s ({cpu_seconds:.1f} s of CPU time)")
        print(f"final objective {results['objective']:.4f} "
              f"(UFLDL's J: {results['objective'] / 2:.4f})")
        print(f"mean activation {rho_hat.mean():.4f} against rho = {RHO} "
              f"(per unit {rho_hat.min():.4f} to {rho_hat.max():.4f})")
        print(f"localised (half the energy in a quarter of the patch): "
              f"{np.mean(loc > 0.5):.0%}, median share {np.median(loc):.2f}")
        print(f"oriented (spectrum concentration > 0.5): {np.mean(ori > 0.5):.0%}, "
              f"median {np.median(ori):.2f}")
        print(f"localised and oriented: {results['share']:.0%} of the filters")
    if output is not None:
        plot_filters(model, output, tile_inches=1.0,
                     title=f"{model.n_iter_} L-BFGS iterations: "
                           f"{results['share']:.0%} localised and oriented")
        if verbose:
            print(f"filters saved to {output}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=400,
                        help="L-BFGS iterations (default 400, as UFLDL)")
    parser.add_argument("--patches", type=int, default=10_000,
                        help="number of random 8x8 patches (default 10000)")
    parser.add_argument("--downsample", type=int, default=3,
                        help="average each NxN pixel block first (default 3; 1: none)")
    parser.add_argument("--seed", type=int, default=0, help="patches and initial weights")
    parser.add_argument("--output", default="ufldl_filters.png",
                        help="where to save the filter picture (default ufldl_filters.png)")
    args = parser.parse_args(argv)
    return run(args.iterations, args.patches, args.downsample, args.seed, args.output)


if __name__ == "__main__":
    main()
