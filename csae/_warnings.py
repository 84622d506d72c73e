"""The warnings training can raise, each naming the problem and the fix.

All are ``UserWarning`` subclasses (``ConvergenceWarning`` also subclasses
scikit-learn's ``ConvergenceWarning`` whenever scikit-learn is loaded, so a
filter on either silences it), raised with ``stacklevel`` pointing at the
user's ``fit``/``partial_fit`` line.  The thresholds they use are module
constants, documented on each class.
"""

import sys

__all__ = [
    "TrainingInterruptedWarning",
    "TrainingDivergedWarning",
    "DeadUnitsWarning",
    "LearnedNothingWarning",
    "ConvergenceWarning",
    "DEAD_FRACTION",
    "UNIT_MARGIN",
]

# A unit is dead when its mean activation over the training data is below
# sparsity_target / UNIT_MARGIN, saturated when above
# 1 - (1 - sparsity_target) / UNIT_MARGIN; DeadUnitsWarning is raised when
# more than DEAD_FRACTION of the units are one or the other.
UNIT_MARGIN = 20.0
DEAD_FRACTION = 0.5


class TrainingInterruptedWarning(UserWarning):
    """Training was stopped by Ctrl-C (KeyboardInterrupt).

    The model keeps the state after the last epoch this call completed (the
    interrupted epoch is not counted in ``n_iter_``), or, if none completed,
    stays exactly as it was before the call.
    """


class TrainingDivergedWarning(UserWarning):
    """Training stopped because the objective or a gradient became NaN/inf,
    or an epoch's objective grew to more than 1e4 times the objective the
    call started from (on the call's own data), or the objective at the
    starting weights is not finite (then no step was taken).

    The model stays exactly as it was before the call (a fresh model stays
    unfitted), unless the call completed an epoch whose state beats both the
    call's start and the model before the call (a lower objective on the
    call's data): then it keeps the state after the completed epoch of this
    call with the lowest objective (the lowest validation objective with
    ``early_stopping=True``), with ``n_iter_`` and ``loss_curve_`` ending at
    that epoch.  The message says which.  Either way the model stays usable
    and savable.  A smaller ``learning_rate`` (or ``weight_decay``) usually
    helps.
    """


class DeadUnitsWarning(UserWarning):
    """Most hidden units ended up dead or saturated.

    Raised at the end of ``fit`` when more than half of the hidden units
    have a mean activation over the training data (at most its first 4096
    rows) below ``sparsity_target / 20`` (dead: the unit never fires) or
    above ``1 - (1 - sparsity_target) / 20`` (saturated: it always fires).
    Such units carry no information.  The usual causes are a
    ``sparsity_weight`` too large for the ``learning_rate`` (the KL term's
    gradient pushes every bias far negative) or a ``learning_rate`` too high;
    lower one of them.
    """


class LearnedNothingWarning(UserWarning):
    """The model reconstructs the training data no better than predicting
    the mean sample.

    Raised at the end of ``fit`` when the mean squared reconstruction error
    on the training data (at most its first 4096 rows) is at least that of
    predicting every row by the per-feature mean of those rows, unless the
    fit ended at ``max_epochs`` with a ``ConvergenceWarning`` (whose advice,
    train longer, comes first).  Train for
    more epochs, raise the ``learning_rate`` (or use ``solver="adam"`` or
    ``"lbfgs"``), or lower ``sparsity_weight`` / ``weight_decay``.
    """


class _ConvergenceBase(UserWarning):
    """ConvergenceWarning's base until scikit-learn is loaded (a Python-level
    class, so that its layout matches scikit-learn's class and the base can
    be swapped; see ``convergence_warning``)."""


class ConvergenceWarning(_ConvergenceBase):
    """``fit`` ran ``max_epochs`` epochs (iterations for ``solver="lbfgs"``)
    before its stopping rule was met, in scikit-learn's sense.

    The stopping rule is the one of ``tol`` and ``n_iter_no_change`` (see
    ``SparseAutoencoder``); without early stopping ``tol=0`` switches it
    off, and with it this warning.  Raise ``max_epochs``, or accept the
    model as it is.  Whenever scikit-learn is loaded this class is a
    subclass of ``sklearn.exceptions.ConvergenceWarning`` (so a filter on
    either silences it); csae never imports scikit-learn itself, so before
    that it subclasses ``UserWarning`` only.
    """


ConvergenceWarning.__module__ = "csae"


def convergence_warning():
    """The ``ConvergenceWarning`` class, first put under scikit-learn's
    class if scikit-learn is loaded by now (importing it here would cost
    about a second, more than csae itself, and is never done)."""
    module = sys.modules.get("sklearn.exceptions")
    base = getattr(module, "ConvergenceWarning", None)
    if base is not None and ConvergenceWarning.__bases__ != (base,):
        ConvergenceWarning.__bases__ = (base,)
    return ConvergenceWarning
