"""Built-in data: the bars problem, and patches cut from your own images.

Nothing here downloads anything.  ``make_bars`` generates Foldiak's classic
test for sparse feature learners: each image is the union of a few random
horizontal and vertical bars, so a good sparse autoencoder learns one hidden
unit per bar.  ``extract_patches`` samples small square patches from larger
images, the way UFLDL's sparse autoencoder exercise samples 8x8 patches from
natural images; ``whiten_images`` and ``normalize_patches`` are that
exercise's preprocessing (Olshausen and Field's whitening filter, and
UFLDL's patch normalisation).
"""

import numbers

import numpy as np

__all__ = ["make_bars", "bar_components", "extract_patches", "whiten_images",
           "normalize_patches", "best_match_correlation"]


def _check_int(value, name, minimum):
    # bool is an int subclass; make_bars(True) is almost surely a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def bar_components(size=8):
    """The ``2 * size`` single-bar images of the bars problem.

    Parameters
    ----------
    size : int, default=8
        Side length of the square images.

    Returns
    -------
    components : ndarray of shape (2 * size, size * size), float64
        Rows ``0 .. size-1`` are the horizontal bars (row ``i`` of the image
        set to 1), rows ``size .. 2*size-1`` the vertical bars (column ``i``
        set to 1).  Each row is an image flattened in C order.
    """
    size = _check_int(size, "size", 1)
    comps = np.zeros((2 * size, size, size))
    for i in range(size):
        comps[i, i, :] = 1.0
        comps[size + i, :, i] = 1.0
    return comps.reshape(2 * size, size * size)


def make_bars(n_samples, size=8, p_bar=None, noise=0.0, random_state=None,
              return_components=False):
    """Generate the bars problem (Foldiak, 1990).

    Each sample is a ``size x size`` image made of horizontal and vertical
    bars: each of the ``2 * size`` bars is present independently with
    probability ``p_bar``, and a pixel is the maximum over the bars present,
    so crossing bars stay at 1 (the images are a union, not a sum).  A good
    sparse feature learner finds one hidden unit per bar.

    Parameters
    ----------
    n_samples : int
        Number of images (rows), at least 1.
    size : int, default=8
        Side length of the square images; each row has ``size * size``
        features.
    p_bar : float, default=None
        Probability that a given bar is present, in [0, 1].  ``None`` means
        ``1 / size``, so an image holds two bars on average (one per
        orientation), which keeps the problem sparse.
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to every pixel; the
        result is clipped back to [0, 1].  Must be >= 0.
    random_state : None, int or numpy.random.Generator, default=None
        Seed or generator; the same integer always gives the same images.
    return_components : bool, default=False
        Also return the true bars (see ``bar_components``).

    Returns
    -------
    X : ndarray of shape (n_samples, size * size), float64
        The images, one flattened (C order) image per row, values in [0, 1].
    components : ndarray of shape (2 * size, size * size), float64
        Only when ``return_components`` is true: the single-bar images,
        horizontal bars first.  Without noise, each image equals the
        element-wise maximum of the components present in it.

    Examples
    --------
    >>> from csae.datasets import make_bars
    >>> X, bars = make_bars(1000, random_state=0, return_components=True)
    >>> X.shape, bars.shape
    ((1000, 64), (16, 64))
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    size = _check_int(size, "size", 1)
    if p_bar is None:
        p_bar = 1.0 / size
    p_bar = _check_real(p_bar, "p_bar")
    if not 0.0 <= p_bar <= 1.0:
        raise ValueError(f"p_bar must be in [0, 1], got {p_bar}")
    noise = _check_real(noise, "noise")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(random_state)

    present = rng.random((n_samples, 2 * size)) < p_bar
    rows = present[:, :size]            # horizontal bar i fills image row i
    cols = present[:, size:]            # vertical bar j fills image column j
    images = rows[:, :, None] | cols[:, None, :]
    X = images.reshape(n_samples, size * size).astype(np.float64)
    if noise > 0:
        X += noise * rng.standard_normal(X.shape)
        np.clip(X, 0.0, 1.0, out=X)
    if return_components:
        return X, bar_components(size)
    return X


# ITU-R BT.601 luma weights, as Pillow's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114])


def _to_grey(image, channel_axis, index):
    """One colour image -> 2-D grey (float64), channels on ``channel_axis``."""
    try:
        image = np.moveaxis(image, channel_axis, -1)
    except IndexError:  # numpy's AxisError
        raise ValueError(f"channel_axis={channel_axis} is not an axis of image {index} "
                         f"(shape {image.shape})") from None
    channels = image.shape[-1]
    if channels == 1:
        return image[..., 0]
    if channels in (3, 4):  # RGB, or RGBA whose alpha is ignored
        return image[..., :3].astype(np.float64) @ _LUMA
    raise ValueError(f"image {index} has {channels} channels on channel_axis="
                     f"{channel_axis}; expected 1 (grey), 3 (RGB) or 4 (RGBA)")


def _check_channel_axis(channel_axis):
    if channel_axis is not None and (isinstance(channel_axis, bool)
                                     or not isinstance(channel_axis, numbers.Integral)):
        raise ValueError(f"channel_axis must be an integer or None, got {channel_axis!r}")


def _single_image(images, channel_axis):
    """Whether ``images`` is one image rather than a stack or a list of them
    (the caller returns one result then, not a stack of one)."""
    if isinstance(images, (list, tuple)):
        try:
            images = np.asarray(images)
        except ValueError:  # a ragged list: several images
            return False
    return np.ndim(images) == 2 + (channel_axis is not None)


def _grey_images(images, channel_axis):
    """The images as 2-D numeric arrays: a (n_images, height, width) array
    when they came as one grey stack, else a list of one array per image.

    The one image-input convention of ``extract_patches`` and
    ``whiten_images``: a stack, one image, or a list of images of any
    sizes; colour converted to grey when ``channel_axis`` names the axis of
    the channels."""
    colour = channel_axis is not None
    if isinstance(images, np.ndarray):
        stacked = images
    else:
        try:
            stacked = np.asarray(images)
        except ValueError:  # a ragged list: images of different sizes
            stacked = None
    if isinstance(images, (list, tuple)) and len(images) == 0:
        raise ValueError("images must not be empty, got no images")
    if stacked is not None and stacked.dtype != object:
        if stacked.dtype.kind not in "biuf":
            raise ValueError(f"images must be numeric, got dtype {stacked.dtype}")
        if stacked.ndim == 2 + colour:
            stacked = stacked[None]
        if stacked.ndim != 3 + colour:
            want = ("(n_images, height, width, channels) or (height, width, channels)"
                    if colour else "(n_images, height, width) or (height, width)")
            raise ValueError(f"images must have shape {want}, or be a list of "
                             f"images, got shape {stacked.shape}")
        if 0 in stacked.shape:
            raise ValueError(f"images must not be empty, got shape {stacked.shape}")
        if not colour:
            return stacked  # already checked whole: sampled in place, not copied
        images = list(stacked)
    elif not isinstance(images, (list, tuple)):
        raise ValueError("images must be an array or a list of arrays, "
                         f"got {type(images).__name__}")
    grey = []
    for index, image in enumerate(images):
        image = np.asarray(image)
        if image.dtype.kind not in "biuf":
            raise ValueError(f"images must be numeric, got dtype {image.dtype} "
                             f"(image {index})")
        if image.ndim != 2 + colour:
            raise ValueError(f"image {index} has shape {image.shape}; expected a 2-D "
                             "grey image" + (" with a channel axis" if colour else ""))
        if 0 in image.shape:
            raise ValueError(f"images must not be empty, got shape {image.shape} "
                             f"(image {index})")
        grey.append(_to_grey(image, channel_axis, index) if colour else image)
    return grey


def _colour_hint(images, narrowest=None):
    """A trailing axis of 3 or 4 narrower than the caller can use, or (when
    ``narrowest`` is None) shorter than both other axes: surely colour, not
    a stack of grey images 3 or 4 pixels wide."""
    if narrowest is None:
        narrowest = min(images.shape[:2]) if getattr(images, "ndim", 0) == 3 else 0
    if isinstance(images, np.ndarray) and images.ndim == 3 and images.shape[2] in (3, 4) \
            and narrowest > images.shape[2]:
        raise ValueError(
            f"images of shape {images.shape} look like one colour image (height, width, "
            f"{images.shape[2]} channels), not {images.shape[0]} grey images "
            f"{images.shape[1]} x {images.shape[2]} pixels wide: pass channel_axis=-1 to "
            "convert it to grey (ITU-R BT.601 luma), or convert it yourself, "
            "e.g. image.mean(axis=-1)")


def extract_patches(images, patch_size, n_patches, random_state=None, *, channel_axis=None):
    """Cut random square patches out of a set of images.

    Each patch comes from an image chosen at random with probability
    proportional to its area (height x width), at a position chosen
    uniformly among those where the patch fits (UFLDL's ``sampleIMAGES``,
    extended to images of different sizes).  The pixel values are returned
    unchanged: rescale them to [0, 1] yourself, or train with
    ``scale_inputs=True`` or ``decoder="linear"``.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width) or (height, width), or a list of 2-D arrays
        Grey-level images.  A single 2-d image is allowed, and a list of
        images of different sizes.  With ``channel_axis`` set, colour
        images: (n_images, height, width, channels), (height, width,
        channels), or a list of 3-D arrays.
    patch_size : int
        Side length of the square patches; at most the smaller side of
        every image.
    n_patches : int
        Number of patches, at least 1.
    random_state : None, int or numpy.random.Generator, default=None
        Seed or generator.
    channel_axis : int or None, default=None
        The axis of each image that holds its colour channels (-1 for the
        usual (height, width, 3)).  Colour images are converted to grey
        first with the ITU-R BT.601 luma weights (0.299 R + 0.587 G +
        0.114 B, as Pillow's ``convert("L")``); an alpha channel is
        ignored, a single channel taken as it is.  None: the images are
        grey, and an array whose last axis of 3 or 4 is too narrow for the
        patch is refused as a probable colour image.

    Returns
    -------
    patches : ndarray of shape (n_patches, patch_size * patch_size)
        One patch per row, flattened in C order; floating point (float64
        unless every image is float32 and grey).
    """
    patch_size = _check_int(patch_size, "patch_size", 1)
    _check_channel_axis(channel_axis)
    if channel_axis is None:
        _colour_hint(images, patch_size)
    images = _grey_images(images, channel_axis)
    same_size = len({image.shape for image in images}) == 1
    for index, image in enumerate(images):
        if patch_size > min(image.shape):
            which = "the images" if same_size else f"image {index}"
            raise ValueError(f"patch_size={patch_size} is larger than {which} "
                             f"({image.shape[0]}x{image.shape[1]})")
    n_patches = _check_int(n_patches, "n_patches", 1)
    out_dtype = np.float32 if all(i.dtype == np.float32 for i in images) else np.float64
    if not all(np.all(np.isfinite(image)) for image in images):
        raise ValueError("images contain NaN or infinity")
    rng = np.random.default_rng(random_state)

    if same_size:
        stack = images if isinstance(images, np.ndarray) else np.stack(images)
        return _patches_of_stack(stack, patch_size, n_patches, rng, out_dtype)
    areas = np.array([image.size for image in images], dtype=np.float64)
    which = rng.choice(len(images), size=n_patches, p=areas / areas.sum())
    patches = np.empty((n_patches, patch_size * patch_size), dtype=out_dtype)
    for index in np.unique(which):
        rows = np.flatnonzero(which == index)
        patches[rows] = _patches_of_stack(images[index][None], patch_size, rows.size,
                                          rng, out_dtype)
    return patches


def _patches_of_stack(images, patch_size, n_patches, rng, out_dtype):
    """Patches of a stack of same-sized images, each image equally likely."""
    n_images, height, width = images.shape
    which = rng.integers(0, n_images, n_patches)
    top = rng.integers(0, height - patch_size + 1, n_patches)
    left = rng.integers(0, width - patch_size + 1, n_patches)
    # Fancy-index all patches at once: (n_patches, p, p) index grids.
    offs = np.arange(patch_size)
    r = top[:, None, None] + offs[None, :, None]
    c = left[:, None, None] + offs[None, None, :]
    patches = images[which[:, None, None], r, c]
    return patches.reshape(n_patches, patch_size * patch_size).astype(out_dtype)


def whitening_filter(height, width, cutoff=0.4):
    """Olshausen and Field's whitening filter on the FFT grid of an image.

    ``f * exp(-(f / cutoff)^4)``, with ``f`` the radial frequency in cycles
    per pixel (numpy.fft.fftfreq's units): the factor ``f`` flattens the
    1/f amplitude spectrum of natural images, and the exponential rolls off
    the highest frequencies, where noise and the pixel grid live.
    """
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    return f * np.exp(-(f / cutoff) ** 4)


def whiten_images(images, cutoff=0.4, variance=0.1, *, channel_axis=None):
    """Whiten grey images the way the UFLDL exercise's IMAGES.mat was made.

    Each image is filtered in the frequency domain by
    ``f * exp(-(f / cutoff)^4)`` (f: radial frequency in cycles per pixel;
    Olshausen and Field (1997) use cutoff 0.4 of the sampling rate, which
    this is), which flattens natural images' 1/f amplitude spectrum, then
    all images are scaled together so that their mean per-image variance is
    ``variance`` (0.1 in Olshausen's code).  Without this step a sparse
    autoencoder trained on natural image patches learns the data's strong
    low-frequency correlations (gratings spanning the patch) rather than
    localised, oriented edges.  The FFT treats each image as periodic.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width) or (height, width), or a list of 2-D arrays
        Grey-level images, as ``extract_patches`` takes them: a stack, a
        single 2-D image, or a list of images of different sizes (each
        filtered on its own frequency grid).  With ``channel_axis`` set,
        colour images: (n_images, height, width, channels), (height, width,
        channels), or a list of 3-D arrays.
    cutoff : float, default=0.4
        Roll-off frequency in cycles per pixel, in (0, 0.5].
    variance : float, default=0.1
        Mean variance of the whitened images, > 0.
    channel_axis : int or None, default=None
        The axis of each image that holds its colour channels (-1 for the
        usual (height, width, 3)); colour is converted to grey first, as
        ``extract_patches`` does (ITU-R BT.601 luma).  None: the images are
        grey, and a 3-D array whose last axis has 3 or 4 entries is refused
        as a probable colour image.

    Returns
    -------
    whitened : ndarray of shape (n_images, height, width) or (height, width), or a list of 2-D arrays
        float64; a list, one array per image, when the images differ in
        size, else an array of the (grey) input's shape.
    """
    _check_channel_axis(channel_axis)
    if channel_axis is None:
        _colour_hint(images)
    single = _single_image(images, channel_axis)
    grey = _grey_images(images, channel_axis)
    cutoff, variance = _check_real(cutoff, "cutoff"), _check_real(variance, "variance")
    if not 0 < cutoff <= 0.5:
        raise ValueError(f"cutoff must lie in (0, 0.5] cycles per pixel, got {cutoff}")
    if variance <= 0:
        raise ValueError(f"variance must be > 0, got {variance}")
    if isinstance(grey, np.ndarray) or len({image.shape for image in grey}) == 1:
        # One size: one FFT over the whole stack.
        stacks = [np.asarray(grey if isinstance(grey, np.ndarray) else np.stack(grey),
                             dtype=np.float64)]
    else:
        stacks = [np.asarray(image, dtype=np.float64)[None] for image in grey]
    if not all(np.all(np.isfinite(stack)) for stack in stacks):
        raise ValueError("images contain NaN or infinity")
    white = [np.fft.ifft2(np.fft.fft2(stack) * whitening_filter(*stack.shape[1:],
                                                                cutoff=cutoff)).real
             for stack in stacks]
    spread = np.concatenate([w.var(axis=(1, 2)) for w in white]).mean()
    if spread == 0:
        raise ValueError("the images are constant: there is nothing to whiten")
    scale = np.sqrt(variance / spread)
    if len(white) > 1:
        return [w[0] * scale for w in white]
    white = white[0]
    white *= scale
    return white[0] if single else white


def normalize_patches(patches):
    """UFLDL's normalisation of image patches into [0.1, 0.9].

    Subtract each patch's own mean, truncate to +-3 standard deviations of
    all the values together, and map [-3 sd, 3 sd] linearly onto
    [0.1, 0.9] (the sigmoid decoder's comfortable range), as the exercise's
    ``normalizeData``.

    Parameters
    ----------
    patches : array-like of shape (n_patches, n_pixels)

    Returns
    -------
    normalized : ndarray of shape (n_patches, n_pixels), float64
    """
    P = np.asarray(patches)
    if P.dtype.kind not in "biuf" or P.ndim != 2 or 0 in P.shape:
        raise ValueError("patches must be a non-empty 2-D numeric array, got "
                         f"shape {P.shape} and dtype {P.dtype}")
    P = P.astype(np.float64)
    if not np.all(np.isfinite(P)):
        raise ValueError("patches contain NaN or infinity")
    P = P - P.mean(axis=1, keepdims=True)
    limit = 3 * P.std(ddof=1) if P.size > 1 else 0.0  # MATLAB's std
    if limit == 0:
        return np.full(P.shape, 0.5)  # every patch flat: the middle of the range
    return (np.clip(P, -limit, limit) / limit + 1) * 0.4 + 0.1


def best_match_correlation(filters, components):
    """For each true component, its highest correlation with any filter.

    This is how ``csae demo`` counts recovered bars: component k is
    recovered when some hidden unit's encoder weights correlate with it at
    0.9 or more.  The correlation is Pearson's (both vectors centred), so a
    filter's scale and offset do not matter, only its pattern.

    Parameters
    ----------
    filters : array-like of shape (n_filters, n_features)
        For example ``model.encoder_weights_``.
    components : array-like of shape (n_components, n_features)
        For example the bars returned by ``make_bars(...,
        return_components=True)``.

    Returns
    -------
    best : ndarray of shape (n_components,), float64
        ``best[k]`` is the maximum over filters of the correlation with
        component k, in [-1, 1].  A constant filter or component
        correlates 0 with everything.
    """
    F = np.asarray(filters, dtype=np.float64)
    C = np.asarray(components, dtype=np.float64)
    if F.ndim != 2 or C.ndim != 2 or F.shape[1] != C.shape[1] or 0 in F.shape + C.shape:
        raise ValueError("filters and components must be non-empty 2-D arrays with the "
                         f"same number of columns, got shapes {F.shape} and {C.shape}")

    def unit_rows(A):
        A = A - A.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(A, axis=1, keepdims=True)
        return np.divide(A, norm, out=np.zeros_like(A), where=norm > 0)

    return (unit_rows(C) @ unit_rows(F).T).max(axis=1)
