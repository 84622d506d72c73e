"""The learned input range of ``scale_inputs``: learning it, applying it,
mapping outputs back, and asking a state for it.

Below every module that prepares data (``csae._data``, ``csae._dask``,
``csae._blockwise``), so that each of them applies the range one way.
"""

import numpy as np

from csae._state import ORIGIN_ASSIGNED
from csae._validation import NotFittedError, input_scale

__all__ = ["learn_range", "apply_range", "unscale", "learned_range"]


def learn_range(X):
    """Per-feature minimum and scale (max - min) of X (float64)."""
    data_min = X.min(axis=0)
    return data_min, input_scale(data_min, X.max(axis=0))


def apply_range(X, data_min, scale, dtype):
    """(X - min) / scale in float64, returned C-contiguous in ``dtype``."""
    out = np.ascontiguousarray((X - data_min) / scale, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError("X scaled by the learned input range overflows "
                         f"{dtype.name}; its values are far outside the range seen in fit")
    return out


def unscale(Y, hp, data_min, data_scale):
    """Outputs ``Y`` mapped back to the input scale (``Y`` itself without
    ``scale_inputs``)."""
    if not hp.scale_inputs:
        return Y
    return Y * data_scale.astype(hp.dtype) + data_min.astype(hp.dtype)


def learned_range(state):
    """``(data_min, data_scale)`` of ``state``; ``NotFittedError`` saying
    why when it has none (``scale_inputs=True`` needs one)."""
    if state.data_min is not None:
        return state.data_min, state.data_scale
    if state.origin == ORIGIN_ASSIGNED:
        raise NotFittedError(
            "scale_inputs=True but this model has not learned an input range "
            "(its weights were assigned by hand); call partial_fit once, or set "
            "scale_inputs=False and scale X yourself")
    raise NotFittedError(
        "scale_inputs=True but this model was trained with scale_inputs=False, so "
        "it has no learned input range; fit it again with scale_inputs=True, or "
        "set scale_inputs=False back")
