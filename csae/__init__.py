"""csae: sparse autoencoders with a KL-divergence sparsity penalty.

A fast C engine (``backend="c"``) under a scikit-learn style estimator, with
a pure-NumPy reference of the same mathematics (``csae.reference``,
``backend="python"``) to cross-check it.

Main entry points
-----------------
SparseAutoencoder
    The estimator: ``fit``, ``partial_fit``, ``transform``, ``save``, ...
load
    Read a model file written by any csae model's ``save``.
stack, StackedEncoder
    Fitted autoencoders stacked into one deep encoder (one engine call).
SparseAutoencoderClassifier
    Greedy pretraining, a softmax layer, fine-tuning with L-BFGS (UFLDL's
    stacked autoencoders for classification).
check_gradients
    UFLDL's gradient check of a model against finite differences.
datasets
    The bars problem (``make_bars``) and ``extract_patches`` for images.
to_onnx
    A fitted model as an ONNX graph (needs onnx: ``pip install "csae[onnx]"``).
plot_filters, plot_loss
    Pictures of the learned features and of the training curve (need
    matplotlib: ``pip install "csae[plot]"``).
NotFittedError, NonFiniteError
    Errors raised by the above.
TrainingInterruptedWarning, TrainingDivergedWarning, ConvergenceWarning, DeadUnitsWarning, LearnedNothingWarning
    Warnings raised by training; each names the problem and the fix.
get_include, get_library
    The C header's folder and the shared library's path, for C, C++ and
    Cython programs that use the engine directly (also ``csae-config``).
"""

from csae import datasets
from csae._config import get_include, get_library
from csae._errors import NonFiniteError
from csae._estimator import SparseAutoencoder, check_gradients
from csae._validation import NotFittedError
from csae._version import __version__
from csae._warnings import (
    DeadUnitsWarning,
    LearnedNothingWarning,
    TrainingDivergedWarning,
    TrainingInterruptedWarning,
)
from csae.onnx import to_onnx
from csae.plotting import plot_filters, plot_loss
from csae.deep import SparseAutoencoderClassifier, StackedEncoder, stack

__all__ = [
    "SparseAutoencoder",
    "SparseAutoencoderClassifier",
    "StackedEncoder",
    "stack",
    "load",
    "check_gradients",
    "get_include",
    "get_library",
    "datasets",
    "plot_filters",
    "plot_loss",
    "to_onnx",
    "NotFittedError",
    "NonFiniteError",
    "TrainingDivergedWarning",
    "TrainingInterruptedWarning",
    "ConvergenceWarning",
    "DeadUnitsWarning",
    "LearnedNothingWarning",
    "__version__",
]


def __getattr__(name):
    # ConvergenceWarning is looked up through here so that, once scikit-learn
    # is loaded, it is put under scikit-learn's class before anyone sees it
    # (csae never imports scikit-learn: see csae._warnings.convergence_warning).
    if name == "ConvergenceWarning":
        from csae._warnings import convergence_warning
        return convergence_warning()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(path):
    """Load a model saved by ``SparseAutoencoder.save``,
    ``StackedEncoder.save`` or ``SparseAutoencoderClassifier.save``.

    Parameters
    ----------
    path : str or os.PathLike
        The model file (``.npz``).

    Returns
    -------
    model : SparseAutoencoder, StackedEncoder or SparseAutoencoderClassifier
        The kind of model the file holds.

    Raises
    ------
    ValueError
        If the file is not a valid csae model file (truncated, corrupted,
        hand-crafted, holding pickled objects, or written by a newer csae).
    OSError
        If the file cannot be opened.
    """
    from csae.deep import load as load_any
    return load_any(path)
