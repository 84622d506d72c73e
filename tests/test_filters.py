"""csae.filters: the 'localised and oriented' numbers.

Expected values come from the filters' construction (where the energy of a
filter built inside a window lies, the orientation a Gabor function was
drawn with, its spectrum integrated numerically) and from the classes the
numbers must separate: Gabor functions pass, noise and whole-patch gratings
fail.
"""

import numpy as np
import pytest

from csae.filters import localisation, localised_oriented_share, orientation_concentration

Y8, X8 = np.mgrid[0:8, 0:8]


def gabor(cy, cx, theta, wavelength, sigma, phase, y=Y8, x=X8):
    u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
    v = -(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)
    return (np.exp(-(u ** 2 + v ** 2) / (2 * sigma ** 2))
            * np.cos(2 * np.pi * u / wavelength + phase)).ravel()


def grating(theta, wavelength, phase):
    u = X8 * np.cos(theta) + Y8 * np.sin(theta)
    return np.cos(2 * np.pi * u / wavelength + phase).ravel()


def axial_distance(a, b):
    """Distance between orientations (angles modulo pi)."""
    d = np.mod(np.asarray(a) - b, np.pi)
    return np.minimum(d, np.pi - d)


def random_gabors(n, rng):
    # V1-like: envelope 1.2 to 1.6 pixels, wavelength 2.5 to 4 envelopes
    # (about 1 to 1.5 octaves of bandwidth), centred well inside the patch.
    sigma = rng.uniform(1.2, 1.6, n)
    return np.array([gabor(rng.uniform(2.5, 4.5), rng.uniform(2.5, 4.5), rng.uniform(0, np.pi),
                           s * rng.uniform(2.5, 4.0), s, rng.uniform(0, 2 * np.pi))
                     for s in sigma])


def test_gabors_pass_noise_and_gratings_fail():
    rng = np.random.default_rng(0)
    gabors = random_gabors(300, rng)
    noise = rng.standard_normal((300, 64))
    gratings = np.array([grating(rng.uniform(0, np.pi), rng.uniform(2, 8), rng.uniform(0, 6.3))
                         for _ in range(300)])

    assert localisation(gabors).min() > 0.5
    assert orientation_concentration(gabors).min() > 0.5
    assert localised_oriented_share(gabors) == 1.0

    # Noise spreads its energy and its power: the best quarter of the patch
    # holds a little more than a quarter of the energy, far below 0.5 in
    # nearly every case, and no noise filter passes both tests.
    assert np.mean(localisation(noise) > 0.5) < 0.05
    assert np.mean(orientation_concentration(noise) > 0.5) < 0.01
    assert localised_oriented_share(noise) == 0.0

    # A grating across the patch is oriented but its energy is everywhere.
    assert localisation(gratings).max() < 0.5
    assert np.median(orientation_concentration(gratings)) > 0.6
    assert localised_oriented_share(gratings) == 0.0


def test_localisation_of_filters_built_inside_a_window():
    # Each filter sums to zero, so removing its mean changes nothing and the
    # shares follow from where its energy was put.
    rng = np.random.default_rng(1)
    F = np.zeros((5, 8, 8))
    F[0, :4, :4] = rng.standard_normal((4, 4))       # inside the top-left quarter
    F[1, 3:7, 2:6] = rng.standard_normal((4, 4))     # inside another 4x4 window
    F[0] -= F[0].sum() / 16 * (F[0] != 0)
    F[1] -= F[1].sum() / 16 * (F[1] != 0)
    F[2, 0, 0], F[2, 7, 7] = 1.0, -1.0               # opposite corners: half in one window
    F[3] = 1.0                                       # constant: no energy once centred
    F[4] = (np.arange(8) % 2 * 2 - 1)[None, :]       # +-1 columns: every window holds 1/4
    assert np.allclose(F.sum(axis=(1, 2))[[0, 1, 2, 4]], 0)
    share = localisation(F.reshape(5, 64))
    np.testing.assert_allclose(share, [1.0, 1.0, 0.5, 0.0, 0.25], rtol=1e-12)


def test_localisation_window_and_shape():
    F = np.zeros((4, 6))                 # one 4x6 filter, energy in a 2x3 block
    F[1:3, 3:6] = [[1, -1, 1], [-1, 1, -1]]
    np.testing.assert_allclose(localisation(F.reshape(1, 24), shape=(4, 6)), 1.0)
    np.testing.assert_allclose(localisation(F.reshape(1, 24), shape=(4, 6), window=(1, 3)), 0.5)
    with pytest.raises(ValueError, match="fit"):
        localisation(F.reshape(1, 24), shape=(4, 6), window=(5, 1))
    with pytest.raises(ValueError, match="pair"):
        localisation(F.reshape(1, 24), shape=(4, 6), window=3)
    with pytest.raises(ValueError, match="perfect square"):
        localisation(F.reshape(1, 24))


def _continuous_concentration(wavelength, sigma):
    """The statistic for an odd Gabor function on the continuous plane: the
    power-weighted mean of cos(2 theta) over its spectrum
    (G(f - f0) - G(f + f0))^2, G(f) = exp(-2 pi^2 sigma^2 |f|^2),
    integrated on a fine grid."""
    f0 = 1 / wavelength
    grid = np.linspace(-1.5 / sigma, 1.5 / sigma, 400)  # the power is ~0 beyond
    fx, fy = np.meshgrid(grid, grid)

    def lobe(cx):
        return np.exp(-2 * np.pi ** 2 * sigma ** 2 * ((fx - cx) ** 2 + fy ** 2))

    power = (lobe(f0) - lobe(-f0)) ** 2
    return (power * np.cos(2 * np.arctan2(fy, fx))).sum() / power.sum()


@pytest.mark.parametrize("ratio", [2.0, 3.0, 4.0])
@pytest.mark.parametrize("theta", [0.0, 0.7, 2.0])
def test_orientation_of_a_large_gabor_matches_its_spectrum(ratio, theta):
    # On a 64x64 grid the sampled Gabor is close to the continuous one.
    y, x = np.mgrid[0:64, 0:64]
    sigma = 4.0
    g = gabor(32, 32, theta, ratio * sigma, sigma, np.pi / 2, y=y, x=x)
    concentration, angle = orientation_concentration(g[None], return_angle=True)
    np.testing.assert_allclose(concentration[0], _continuous_concentration(ratio * sigma, sigma),
                               rtol=1e-2)
    assert axial_distance(angle[0], theta) < 1e-5


def test_orientation_turns_with_the_filter():
    rng = np.random.default_rng(2)
    F = random_gabors(20, rng).reshape(20, 8, 8)
    c, a = orientation_concentration(F.reshape(20, 64), return_angle=True)
    # A quarter turn (rot90) keeps the concentration and turns the angle by
    # 90 degrees; a transpose mirrors it about the diagonal.
    c90, a90 = orientation_concentration(np.rot90(F, axes=(1, 2)).reshape(20, 64),
                                         return_angle=True)
    cT, aT = orientation_concentration(F.transpose(0, 2, 1).reshape(20, 64), return_angle=True)
    # (Not to rounding: the FFT grid's Nyquist row has no mirror image.)
    np.testing.assert_allclose(c90, c, rtol=1e-5)
    np.testing.assert_allclose(cT, c, rtol=1e-12)
    assert axial_distance(a90, a + np.pi / 2).max() < 1e-5
    # Swapping x and y turns theta into pi/2 - theta.
    assert axial_distance(aT, np.pi / 2 - a).max() < 1e-8


def test_isotropic_and_constant_filters():
    y, x = np.mgrid[0:9, 0:9]
    ring = np.exp(-((x - 4) ** 2 + (y - 4) ** 2) / 2.0)        # no orientation
    c = orientation_concentration(np.stack([ring.ravel(), np.ones(81)]))
    assert c[0] < 0.05 and c[1] == 0.0


def test_accepts_a_model_and_checks_thresholds():
    from csae import SparseAutoencoder

    rng = np.random.default_rng(3)
    model = SparseAutoencoder(n_hidden=4, max_epochs=1, random_state=0).fit(rng.random((30, 16)))
    share = localised_oriented_share(model)
    np.testing.assert_allclose(
        share, localised_oriented_share(model.encoder_weights_), rtol=0)
    assert localisation(model).shape == (4,)
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="threshold"):
            localised_oriented_share(model, localisation_threshold=bad)
        with pytest.raises(ValueError, match="threshold"):
            localised_oriented_share(model, orientation_threshold=bad)
