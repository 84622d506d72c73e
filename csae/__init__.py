"""csae: sparse autoencoders with a KL-divergence sparsity penalty.

A fast C engine (``backend="c"``) under a scikit-learn style estimator, with
a pure-NumPy reference of the same mathematics (``csae.reference``,
``backend="python"``) to cross-check it.

Main entry points
-----------------
SparseAutoencoder
    The estimator: ``fit``, ``partial_fit``, ``transform``, ``save``, ...
load
    Read a model file written by ``SparseAutoencoder.save``.
check_gradients
    UFLDL's gradient check of a model against finite differences.
NotFittedError, TrainingInterruptedWarning, TrainingDivergedWarning, NonFiniteError
    Errors and warnings raised by the above.
"""

from csae._errors import NonFiniteError
from csae._estimator import (
    SparseAutoencoder,
    TrainingDivergedWarning,
    TrainingInterruptedWarning,
)
from csae._gradcheck import check_gradients
from csae._validation import NotFittedError
from csae._version import __version__

__all__ = [
    "SparseAutoencoder",
    "load",
    "check_gradients",
    "NotFittedError",
    "NonFiniteError",
    "TrainingDivergedWarning",
    "TrainingInterruptedWarning",
    "__version__",
]


def load(path):
    """Load a model saved by ``SparseAutoencoder.save``.

    Parameters
    ----------
    path : str or os.PathLike
        The model file (``.npz``).

    Returns
    -------
    model : SparseAutoencoder

    Raises
    ------
    ValueError
        If the file is not a valid csae model file (truncated, corrupted,
        hand-crafted, holding pickled objects, or written by a newer csae).
    OSError
        If the file cannot be opened.
    """
    from csae._persist import load as _load
    return _load(path)
