"""Numbers that say whether learned filters are localised and oriented.

A sparse autoencoder trained on whitened natural image patches should learn
what the primary visual cortex's simple cells compute: edge detectors that
occupy a small part of the patch (localised) and respond to one orientation
(oriented), like Gabor functions.  Looking at ``plot_filters``' picture is
how one usually judges this; the functions here put a number on it, so a
test or a benchmark can tell edge detectors from noise (neither localised
nor oriented) and from gratings that span the whole patch (oriented, not
localised).

Each filter (a row of ``encoder_weights_``, reshaped to the patch) has its
mean removed first: the per-patch normalisation of UFLDL's exercise makes
every input patch's mean the same, so a filter's mean changes no response
and says nothing about its shape.

- ``localisation``: the share of the filter's energy (its squared weights)
  inside the best-placed window covering a quarter of the patch (a
  ``ceil(height/2) x ceil(width/2)`` window).  Energy spread evenly over the
  patch gives about 0.25 (a grating across the patch, or noise, a little
  more for the best window); a Gabor function whose envelope fits in the
  window gives close to 1.
- ``orientation_concentration``: how much of the filter's 2-D power
  spectrum lies along one orientation, as the mean resultant length of the
  spectrum's doubled orientation angles weighted by power (the usual
  statistic for axial data): 1 when all the power lies on one line through
  the origin of the frequency plane (one orientation), 0 when it is spread
  evenly over orientations.  Noise gives about 0.1 to 0.25 for 8x8
  filters; a Gabor function whose wavelength is at most four times its
  envelope's standard deviation (V1-like bandwidths, about one octave, have
  two to three) gives 0.58 or more, and a grating across the whole patch
  gives about 0.6 to 0.9 (oriented, but not localised).
- ``localised_oriented_share``: the share of filters above both thresholds
  (0.5 by default: half of the energy in a quarter of the patch, twice
  what an even spread gives; and a resultant length of 0.5, twice what
  noise gives).
"""

import math
import numbers

import numpy as np

from csae.plotting import _filter_weights, _tile_shape

__all__ = ["localisation", "orientation_concentration", "localised_oriented_share"]


def _centred_filters(filters, shape):
    """(n_filters, height, width) float64 filters with each one's mean removed."""
    W = _filter_weights(filters)
    height, width = _tile_shape(W.shape[1], shape)
    F = W.reshape(-1, height, width)
    return F - F.mean(axis=(1, 2), keepdims=True)


def _check_threshold(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def localisation(filters, shape=None, window=None):
    """Share of each filter's energy inside the best-placed small window.

    Parameters
    ----------
    filters : ndarray of shape (n_filters, n_features) or a fitted model
        One filter per row (a model gives its ``encoder_weights_``).
    shape : (int, int), default=None
        (height, width) of a filter, rows in C order; None: square.
    window : (int, int), default=None
        (height, width) of the window; None: half the filter's height and
        width, rounded up (a quarter of its area).

    Returns
    -------
    share : ndarray of shape (n_filters,), values in [0, 1]
        For each filter, after its mean is removed: the largest sum of
        squared weights over the placements of the window inside the
        filter, divided by the sum over the whole filter.  A filter that is
        constant (no energy left) gets 0.
    """
    F = _centred_filters(filters, shape)
    n, height, width = F.shape
    if window is None:
        wh, ww = math.ceil(height / 2), math.ceil(width / 2)
    else:
        try:
            wh, ww = (int(s) for s in window)
        except (TypeError, ValueError):
            raise ValueError(f"window must be a pair (height, width), got {window!r}") from None
        if not (1 <= wh <= height and 1 <= ww <= width):
            raise ValueError(f"window {tuple(window)} must fit in the {height}x{width} filter")
    energy = F * F
    # Summed-area table: every window's energy in four lookups.
    table = np.zeros((n, height + 1, width + 1))
    table[:, 1:, 1:] = energy.cumsum(axis=1).cumsum(axis=2)
    windows = (table[:, wh:, ww:] - table[:, :-wh, ww:]
               - table[:, wh:, :-ww] + table[:, :-wh, :-ww])
    total = table[:, -1, -1]
    best = windows.reshape(n, -1).max(axis=1)
    return np.divide(best, total, out=np.zeros(n), where=total > 0).clip(0.0, 1.0)


def orientation_concentration(filters, shape=None, return_angle=False):
    """How strongly each filter's power spectrum lies along one orientation.

    Parameters
    ----------
    filters : ndarray of shape (n_filters, n_features) or a fitted model
        One filter per row (a model gives its ``encoder_weights_``).
    shape : (int, int), default=None
        (height, width) of a filter, rows in C order; None: square.
    return_angle : bool, default=False
        Also return each filter's preferred orientation.

    Returns
    -------
    concentration : ndarray of shape (n_filters,), values in [0, 1]
        The mean resultant length of the doubled orientation angles
        ``2 * atan2(fy, fx)`` of the frequencies of the filter's power
        spectrum (mean removed, zero-padded to four times its larger side
        so orientations are sampled finely), weighted by power.  A
        constant filter gets 0.
    angle : ndarray of shape (n_filters,), radians in [0, pi)
        Only with ``return_angle``: the direction of the dominant wave
        vector, measured from the x (column) axis towards y (rows
        increasing); the filter's stripes or edge run perpendicular to it.
    """
    F = _centred_filters(filters, shape)
    n, height, width = F.shape
    size = 4 * max(height, width)
    power = np.abs(np.fft.fft2(F, s=(size, size))) ** 2
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    doubled = np.exp(2j * np.arctan2(fy, fx))  # theta and theta + pi are one orientation
    total = power.sum(axis=(1, 2))
    resultant = (power * doubled).sum(axis=(1, 2))
    flat = total <= 1e-300
    concentration = np.divide(np.abs(resultant), total, out=np.zeros(n), where=~flat)
    concentration = concentration.clip(0.0, 1.0)
    if not return_angle:
        return concentration
    angle = np.mod(np.angle(resultant) / 2, np.pi)
    angle[flat] = 0.0
    return concentration, angle


def localised_oriented_share(filters, shape=None, *, localisation_threshold=0.5,
                             orientation_threshold=0.5):
    """Share of filters that are both localised and oriented.

    Parameters
    ----------
    filters : ndarray of shape (n_filters, n_features) or a fitted model
        One filter per row (a model gives its ``encoder_weights_``).
    shape : (int, int), default=None
        (height, width) of a filter; None: square.
    localisation_threshold : float, default=0.5
        A filter is localised when ``localisation`` exceeds this: by
        default half of its energy lies in a quarter of the patch.
    orientation_threshold : float, default=0.5
        A filter is oriented when ``orientation_concentration`` exceeds
        this.

    Returns
    -------
    share : float in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> from csae.filters import localised_oriented_share
    >>> y, x = np.mgrid[0:8, 0:8]
    >>> gabor = np.exp(-((x - 3) ** 2 + (y - 4) ** 2) / 2.0) * np.sin(2 * np.pi * x / 4)
    >>> grating = np.sin(2 * np.pi * (x + y) / 4)
    >>> localised_oriented_share(np.stack([gabor.ravel(), grating.ravel()]))
    0.5
    """
    loc_t = _check_threshold(localisation_threshold, "localisation_threshold")
    ori_t = _check_threshold(orientation_threshold, "orientation_threshold")
    W = _filter_weights(filters)
    passed = ((localisation(W, shape) > loc_t)
              & (orientation_concentration(W, shape) > ori_t))
    return float(passed.mean())
