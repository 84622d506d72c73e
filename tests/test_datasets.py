"""csae.datasets: the bars problem, random patches, best-match correlation."""

import numpy as np
import pytest

from csae.datasets import (
    bar_components,
    best_match_correlation,
    extract_patches,
    make_bars,
)

# --------------------------------------------------------------------------
# make_bars
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 8, 13])
def test_make_bars_shape_range_and_binary(size):
    X = make_bars(50, size=size, random_state=0)
    assert X.shape == (50, size * size)
    assert X.dtype == np.float64
    assert set(np.unique(X)) <= {0.0, 1.0}


def test_components_layout():
    comps = bar_components(4)
    assert comps.shape == (8, 16)
    images = comps.reshape(8, 4, 4)
    for i in range(4):
        expected_h = np.zeros((4, 4))
        expected_h[i, :] = 1
        expected_v = np.zeros((4, 4))
        expected_v[:, i] = 1
        np.testing.assert_array_equal(images[i], expected_h)
        np.testing.assert_array_equal(images[4 + i], expected_v)


def test_return_components_matches_bar_components():
    X, comps = make_bars(10, size=6, random_state=1, return_components=True)
    assert X.shape == (10, 36)
    np.testing.assert_array_equal(comps, bar_components(6))


def test_images_are_unions_of_the_components():
    # A noise-free image is the pixel-wise max of the bars it contains, and
    # the bars it contains (all their pixels on) rebuild it exactly.  Also
    # overlapping bars stay at 1, never 2.
    X, comps = make_bars(300, size=8, p_bar=0.25, random_state=2, return_components=True)
    for x in X:
        contained = comps[(comps <= x).all(axis=1)]
        rebuilt = contained.max(axis=0) if len(contained) else np.zeros_like(x)
        np.testing.assert_array_equal(rebuilt, x)


def test_default_p_bar_is_one_over_size():
    # With p_bar = 1/size each image holds 2 bars on average.
    X, comps = make_bars(4000, size=8, random_state=3, return_components=True)
    n_bars = np.array([((comps <= x).all(axis=1)).sum() for x in X[:2000]])
    # Contained bars can exceed present ones only when a full row/column is
    # covered by crossing bars, which is rare at p = 1/8.
    assert 1.8 < n_bars.mean() < 2.3
    np.testing.assert_allclose(X.mean(), 1 - (1 - 1 / 8) ** 2, atol=0.01)


def test_p_bar_extremes():
    np.testing.assert_array_equal(make_bars(5, size=3, p_bar=0.0, random_state=0), 0.0)
    np.testing.assert_array_equal(make_bars(5, size=3, p_bar=1.0, random_state=0), 1.0)


def test_seeds():
    a = make_bars(20, random_state=7)
    np.testing.assert_array_equal(a, make_bars(20, random_state=7))
    assert not np.array_equal(a, make_bars(20, random_state=8))
    # A Generator is accepted and advanced.
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(make_bars(20, random_state=rng), a)
    assert not np.array_equal(make_bars(20, random_state=rng), a)


def test_noise_is_clipped_and_reproducible():
    clean = make_bars(200, random_state=4)
    noisy = make_bars(200, noise=0.3, random_state=4)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    assert not np.array_equal(noisy, clean)
    assert len(np.unique(noisy)) > 2
    # Same bars underneath: the noise is drawn after the bars.
    assert np.mean(np.abs(noisy - clean) < 0.5) > 0.85
    np.testing.assert_array_equal(noisy, make_bars(200, noise=0.3, random_state=4))


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_samples=0), "n_samples must be >= 1"),
    (dict(n_samples=-3), "n_samples"),
    (dict(n_samples=2.5), "n_samples must be an integer"),
    (dict(n_samples=True), "n_samples must be an integer"),
    (dict(n_samples=5, size=0), "size must be >= 1"),
    (dict(n_samples=5, size="8"), "size must be an integer"),
    (dict(n_samples=5, p_bar=-0.1), r"p_bar must be in \[0, 1\]"),
    (dict(n_samples=5, p_bar=1.5), r"p_bar must be in \[0, 1\]"),
    (dict(n_samples=5, p_bar=float("nan")), "p_bar must be finite"),
    (dict(n_samples=5, p_bar="x"), "p_bar must be a real number"),
    (dict(n_samples=5, noise=-1.0), "noise must be >= 0"),
    (dict(n_samples=5, noise=float("inf")), "noise must be finite"),
])
def test_make_bars_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_bars(**kwargs)


# --------------------------------------------------------------------------
# extract_patches
# --------------------------------------------------------------------------

def _position_images(n_images, height, width):
    """Images whose pixel values encode (image, row, column) uniquely."""
    return np.arange(n_images * height * width, dtype=np.float64).reshape(
        n_images, height, width)


def test_extract_patches_are_real_patches():
    images = _position_images(3, 10, 12)
    patches = extract_patches(images, 4, 200, random_state=0)
    assert patches.shape == (200, 16)
    assert patches.dtype == np.float64
    seen_images = set()
    for patch in patches:
        k, rest = divmod(int(patch[0]), 10 * 12)
        top, left = divmod(rest, 12)
        seen_images.add(k)
        assert top + 4 <= 10 and left + 4 <= 12
        np.testing.assert_array_equal(patch.reshape(4, 4),
                                      images[k, top:top + 4, left:left + 4])
    assert seen_images == {0, 1, 2}


def test_extract_patches_covers_the_edges():
    # Every position, including the last row and column, can be drawn.
    images = _position_images(1, 5, 5)
    patches = extract_patches(images, 2, 2000, random_state=1)
    tops_lefts = {divmod(int(p[0]), 5) for p in patches}
    assert tops_lefts == {(r, c) for r in range(4) for c in range(4)}


def test_extract_patches_single_image_and_full_size():
    image = _position_images(1, 6, 6)[0]
    patches = extract_patches(image, 6, 3, random_state=0)
    np.testing.assert_array_equal(patches, np.tile(image.ravel(), (3, 1)))


def test_extract_patches_dtypes_and_seeds():
    images = np.random.default_rng(0).random((2, 9, 9))
    a = extract_patches(images.astype(np.float32), 3, 10, random_state=5)
    assert a.dtype == np.float32
    b = extract_patches((images * 255).astype(np.uint8), 3, 10, random_state=5)
    assert b.dtype == np.float64
    np.testing.assert_array_equal(a, extract_patches(images.astype(np.float32), 3, 10,
                                                     random_state=5))
    assert not np.array_equal(a, extract_patches(images.astype(np.float32), 3, 10,
                                                 random_state=6))


@pytest.mark.parametrize("images, patch_size, n_patches, match", [
    (np.zeros(10), 2, 5, "images must have shape"),
    (np.zeros((1, 2, 8, 8)), 2, 5, "images must have shape"),
    (np.zeros((0, 8, 8)), 2, 5, "must not be empty"),
    (np.array([["a", "b"], ["c", "d"]]), 1, 5, "numeric"),
    (np.zeros((8, 8)), 9, 5, "patch_size=9 is larger than the images"),
    (np.zeros((4, 8, 6)), 7, 5, r"larger than the images \(8x6\)"),
    (np.zeros((8, 8)), 0, 5, "patch_size must be >= 1"),
    (np.zeros((8, 8)), 2.0, 5, "patch_size must be an integer"),
    (np.zeros((8, 8)), 2, 0, "n_patches must be >= 1"),
    (np.full((8, 8), np.nan), 2, 5, "NaN or infinity"),
])
def test_extract_patches_rejects_bad_arguments(images, patch_size, n_patches, match):
    with pytest.raises(ValueError, match=match):
        extract_patches(images, patch_size, n_patches, random_state=0)


# --------------------------------------------------------------------------
# best_match_correlation
# --------------------------------------------------------------------------

def test_best_match_correlation_ignores_scale_and_offset():
    comps = bar_components(4)
    filters = 3.0 * comps[::-1] - 0.7
    np.testing.assert_allclose(best_match_correlation(filters, comps), 1.0)


def test_best_match_correlation_counts_only_the_best_filter():
    comps = bar_components(4)
    filters = np.vstack([comps[:3], np.zeros((1, 16))])  # a constant filter: corr 0
    best = best_match_correlation(filters, comps)
    np.testing.assert_allclose(best[:3], 1.0)
    assert np.all(best[3:] < 0.9)


def test_best_match_correlation_shapes():
    with pytest.raises(ValueError, match="same number of columns"):
        best_match_correlation(np.zeros((3, 4)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="2-D"):
        best_match_correlation(np.zeros(4), np.zeros((2, 4)))


# Images of different sizes, and colour images
# --------------------------------------------------------------------------

def test_extract_patches_from_images_of_different_sizes():
    # Pixel values say which image and position a patch came from.
    sizes = [(10, 12), (30, 40), (8, 8)]
    offsets = np.cumsum([0] + [h * w for h, w in sizes])
    images = [np.arange(h * w, dtype=np.float64).reshape(h, w) + offsets[k]
              for k, (h, w) in enumerate(sizes)]
    patches = extract_patches(images, 4, 20_000, random_state=0)
    assert patches.shape == (20_000, 16) and patches.dtype == np.float64
    source = np.searchsorted(offsets, patches[:, 0], side="right") - 1
    for k in range(3):
        h, w = sizes[k]
        for patch in patches[source == k][:50]:
            top, left = divmod(int(patch[0] - offsets[k]), w)
            np.testing.assert_array_equal(patch.reshape(4, 4),
                                          images[k][top:top + 4, left:left + 4])
    # Each image's share is proportional to its area: 120, 1200 and 64 pixels.
    share = np.bincount(source, minlength=3) / len(source)
    np.testing.assert_allclose(share, np.array([120, 1200, 64]) / 1384, atol=0.01)


def test_extract_patches_same_sized_list_matches_the_array():
    images = np.random.default_rng(3).random((4, 9, 11))
    np.testing.assert_array_equal(extract_patches(list(images), 3, 50, random_state=2),
                                  extract_patches(images, 3, 50, random_state=2))


def test_extract_patches_names_the_image_too_small():
    with pytest.raises(ValueError, match=r"patch_size=8 is larger than image 1 \(5x20\)"):
        extract_patches([np.zeros((9, 9)), np.zeros((5, 20))], 8, 10)


def test_extract_patches_refuses_a_colour_image_with_advice():
    colour = np.random.default_rng(0).random((120, 160, 3))
    with pytest.raises(ValueError, match="colour image.*channel_axis=-1"):
        extract_patches(colour, 8, 10)


@pytest.mark.parametrize("layout", ["single", "stack", "list", "channels_first"])
def test_extract_patches_converts_colour_to_grey(layout):
    rng = np.random.default_rng(1)
    rgb = rng.random((2, 12, 10, 3))
    # BT.601 luma written out per channel (Pillow's convert("L") weights).
    grey = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    if layout == "single":
        got = extract_patches(rgb[0], 4, 30, random_state=5, channel_axis=-1)
        want = extract_patches(grey[0], 4, 30, random_state=5)
    elif layout == "stack":
        got = extract_patches(rgb, 4, 30, random_state=5, channel_axis=-1)
        want = extract_patches(grey, 4, 30, random_state=5)
    elif layout == "list":
        got = extract_patches([rgb[0], rgb[1, :8]], 4, 30, random_state=5, channel_axis=2)
        want = extract_patches([grey[0], grey[1, :8]], 4, 30, random_state=5)
    else:
        got = extract_patches(np.moveaxis(rgb[0], -1, 0), 4, 30, random_state=5,
                              channel_axis=0)
        want = extract_patches(grey[0], 4, 30, random_state=5)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_extract_patches_ignores_alpha():
    rgba = np.random.default_rng(2).random((9, 9, 4))
    np.testing.assert_allclose(extract_patches(rgba, 3, 5, random_state=0, channel_axis=-1),
                               extract_patches(rgba[..., :3], 3, 5, random_state=0,
                                               channel_axis=-1))


@pytest.mark.parametrize("images, kwargs, match", [
    (np.zeros((9, 9, 5)), dict(channel_axis=-1), "5 channels"),
    (np.zeros((9, 9, 3)), dict(channel_axis=3), "not an axis of image 0"),
    (np.zeros((9, 9, 3)), dict(channel_axis=1.0), "channel_axis must be an integer"),
    ([np.zeros((9, 9)), np.zeros((9, 9, 3))], {}, r"image 1 has shape \(9, 9, 3\)"),
    ([np.zeros((9, 9)), "abc"], {}, "numeric"),
    ([], {}, "must not be empty"),
    ("abc", {}, "numeric"),
])
def test_extract_patches_rejects_bad_images(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        extract_patches(images, 2, 5, random_state=0, **kwargs)


# Whitening and UFLDL's patch normalisation
# --------------------------------------------------------------------------

from csae.datasets import normalize_patches, whiten_images  # noqa: E402


def _amplitude(image, ky, kx):
    """Amplitude of the cosine with ky, kx cycles per image (exact for
    periodic images: the discrete Fourier coefficient)."""
    h, w = image.shape
    return 2 * abs(np.fft.fft2(image)[ky, kx]) / (h * w)


def test_whitening_scales_each_frequency_by_the_filter():
    h, w = 64, 96
    y, x = np.mgrid[0:h, 0:w]
    # Two cosines: 3 cycles across (f = 3/96 cycles per pixel) and 20 cycles
    # down (f = 20/64); amplitudes 5 and 1.
    image = 5 * np.cos(2 * np.pi * 3 * x / w) + np.cos(2 * np.pi * 20 * y / h)
    white = whiten_images(image)
    f1, f2 = 3 / 96, 20 / 64
    gain = lambda f: f * np.exp(-(f / 0.4) ** 4)  # Olshausen and Field's filter
    expected_ratio = 5 * gain(f1) / (1 * gain(f2))
    ratio = _amplitude(white, 0, 3) / _amplitude(white, 20, 0)
    np.testing.assert_allclose(ratio, expected_ratio, rtol=1e-9)
    np.testing.assert_allclose(white.var(), 0.1, rtol=1e-12)


def test_whitening_flattens_a_one_over_f_spectrum():
    # Random phases, amplitude 1/f: the spectrum of natural images.
    n = 128
    rng = np.random.default_rng(0)
    f = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2)
    spectrum = np.divide(1.0, f, out=np.zeros_like(f), where=f > 0)
    images = np.fft.ifft2(spectrum * np.exp(2j * np.pi * rng.random((4, n, n)))).real
    white = whiten_images(images, variance=2.0)
    np.testing.assert_allclose(white.var(axis=(1, 2)).mean(), 2.0, rtol=1e-12)

    def band(imgs, lo, hi):
        amp = np.abs(np.fft.fft2(imgs))
        return amp[:, (f >= lo) & (f < hi)].mean()

    # Before: amplitude falls 4x from 0.025 to 0.1 cycles/pixel.  After: flat
    # up to the roll-off (exp(-(0.1/0.4)^4) = 0.996).
    assert band(images, 0.02, 0.03) / band(images, 0.09, 0.11) > 3
    np.testing.assert_allclose(band(white, 0.02, 0.03) / band(white, 0.09, 0.11), 1.0,
                               rtol=0.1)


@pytest.mark.parametrize("images, kwargs, match", [
    (np.zeros((4, 4)), {}, "constant"),
    (np.ones((2, 4, 4)) * np.nan, {}, "NaN"),
    (np.zeros((2, 2, 4, 4)), {}, "shape"),
    (np.random.default_rng(0).random((4, 4)), dict(cutoff=0.6), "cutoff"),
    (np.random.default_rng(0).random((4, 4)), dict(variance=0), "variance"),
])
def test_whitening_rejects_bad_input(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        whiten_images(images, **kwargs)


def test_whitening_images_of_different_sizes():
    # Each image is filtered on its own grid, as if whitened alone; the one
    # scale makes the mean per-image variance the requested one.
    rng = np.random.default_rng(4)
    images = [rng.random((16, 24)), rng.random((30, 20))]
    white = whiten_images(images, variance=0.5)
    assert isinstance(white, list) and [w.shape for w in white] == [(16, 24), (30, 20)]
    np.testing.assert_allclose(np.mean([w.var() for w in white]), 0.5, rtol=1e-12)
    for image, w in zip(images, white):
        alone = whiten_images(image)
        np.testing.assert_allclose(w / w.std(), alone / alone.std(), rtol=1e-9, atol=1e-12)


def test_whitening_a_same_sized_list_matches_the_array():
    images = np.random.default_rng(5).random((3, 12, 10))
    np.testing.assert_array_equal(whiten_images(list(images)), whiten_images(images))


def test_whitening_refuses_a_colour_image_with_advice():
    # Before: (h, w, 3) was whitened as h grey images 3 pixels wide.
    colour = np.random.default_rng(6).random((40, 32, 3))
    with pytest.raises(ValueError, match="colour image.*channel_axis=-1"):
        whiten_images(colour)


@pytest.mark.parametrize("layout", ["single", "stack", "list", "channels_first"])
def test_whitening_converts_colour_to_grey(layout):
    rng = np.random.default_rng(7)
    rgb = rng.random((2, 12, 10, 3))
    # BT.601 luma written out per channel, as for extract_patches.
    grey = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    if layout == "single":
        got, want = whiten_images(rgb[0], channel_axis=-1), whiten_images(grey[0])
        assert got.shape == (12, 10)
    elif layout == "stack":
        got, want = whiten_images(rgb, channel_axis=2), whiten_images(grey)
        assert got.shape == (2, 12, 10)
    elif layout == "list":
        got = whiten_images([rgb[0], rgb[1, :8]], channel_axis=-1)
        want = whiten_images([grey[0], grey[1, :8]])
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
        return
    else:
        got = whiten_images(np.moveaxis(rgb[0], -1, 0), channel_axis=0)
        want = whiten_images(grey[0])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("images, kwargs, match", [
    (np.zeros((9, 9, 5)), dict(channel_axis=-1), "5 channels"),
    (np.zeros((9, 9, 3)), dict(channel_axis=3), "not an axis of image 0"),
    (np.zeros((9, 9, 3)), dict(channel_axis=1.0), "channel_axis must be an integer"),
    ([np.ones((9, 9)), np.zeros((9, 9, 3))], {}, r"image 1 has shape \(9, 9, 3\)"),
    ([np.ones((9, 9)), "abc"], {}, "numeric"),
    ([np.ones((9, 9)), np.full((5, 7), np.inf)], {}, "NaN or infinity"),
    ([], {}, "must not be empty"),
    ("abc", {}, "numeric"),
    ([np.zeros((9, 9)), np.zeros((5, 7))], {}, "constant"),
])
def test_whitening_rejects_bad_images(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        whiten_images(images, **kwargs)


def test_normalize_patches_follows_ufldl():
    # Worked by hand: means 1 and 1 removed -> [[-1, 1], [0, 0]]; the sample
    # standard deviation of (-1, 1, 0, 0) is sqrt(2/3), so the limit is
    # 3 sqrt(2/3) and -1 maps to (1 - 1/limit) * 0.4 + 0.1.
    got = normalize_patches([[0.0, 2.0], [1.0, 1.0]])
    limit = 3 * np.sqrt(2 / 3)
    np.testing.assert_allclose(got, [[(1 - 1 / limit) * 0.4 + 0.1, (1 + 1 / limit) * 0.4 + 0.1],
                                     [0.5, 0.5]], rtol=1e-14)
    # An outlier is truncated to the ends of [0.1, 0.9].
    P = np.zeros((100, 10))
    P[0, 0], P[1, 0] = 1000.0, -1000.0
    out = normalize_patches(P)
    assert out.min() >= 0.1 and out.max() <= 0.9
    assert np.isclose(out[0, 0], 0.9) and np.isclose(out[1, 0], 0.1)
    np.testing.assert_array_equal(normalize_patches(np.ones((3, 4))), 0.5)
    with pytest.raises(ValueError, match="2-D"):
        normalize_patches(np.ones(5))
