"""csae.plotting: filter grids and loss curves, with and without matplotlib."""

import struct
import sys

import numpy as np
import pytest

from csae import SparseAutoencoder
from csae.datasets import bar_components, make_bars
from csae.plotting import plot_filters, plot_loss, tile_filters

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from a PNG file's IHDR chunk, checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE, "not a PNG file"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def model():
    X = make_bars(200, size=4, random_state=0)
    return SparseAutoencoder(n_hidden=6, max_epochs=3, backend="python",
                             random_state=0).fit(X)


def hide_matplotlib(monkeypatch):
    """Make every ``import matplotlib...`` fail, as if it were not installed."""
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


# --------------------------------------------------------------------------
# tile_filters (no matplotlib needed)
# --------------------------------------------------------------------------

def test_tiles_are_scaled_one_by_one():
    # Filters of wildly different scales all fill [-1, 1] in their tile.
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 9)) * np.array([[1e-3], [1], [10], [1e3], [0.5]])
    mosaic = tile_filters(W, ncols=5)
    assert mosaic.shape == (1 * (3 + 1) + 1, 5 * (3 + 1) + 1)
    for k in range(5):
        tile = mosaic[1:4, 1 + 4 * k:4 + 4 * k]
        assert np.abs(tile).max() == pytest.approx(1.0)
        assert tile.mean() == pytest.approx(0.0, abs=1e-12)
        expected = W[k] - W[k].mean()
        np.testing.assert_allclose(tile.ravel(), expected / np.abs(expected).max())
    # The padding is -1 (black) around and between the tiles.
    assert np.all(mosaic[0] == -1) and np.all(mosaic[:, 0] == -1)
    assert np.all(mosaic[:, 4] == -1)


def test_tile_grid_layout_and_constant_filter():
    W = np.vstack([bar_components(3), np.full((1, 9), 2.0)])  # 7 filters
    mosaic = tile_filters(W)  # ncols = ceil(sqrt(7)) = 3 -> 3 rows
    assert mosaic.shape == (3 * 4 + 1, 3 * 4 + 1)
    last = mosaic[9:12, 1:4]
    np.testing.assert_array_equal(last, 0.0)  # a flat filter is uniform grey
    np.testing.assert_array_equal(mosaic[9:12, 5:12], -1.0)  # empty grid cells


def test_tile_shape_given_or_inferred():
    W = np.arange(24.0).reshape(2, 12)
    with pytest.raises(ValueError, match="not a perfect square.*shape="):
        tile_filters(W)
    mosaic = tile_filters(W, shape=(3, 4), ncols=1)
    assert mosaic.shape == (2 * 4 + 1, 1 * 5 + 1)
    with pytest.raises(ValueError, match="does not match 12 features"):
        tile_filters(W, shape=(5, 3))
    with pytest.raises(ValueError, match="pair"):
        tile_filters(W, shape=12)
    with pytest.raises(ValueError, match="ncols"):
        tile_filters(W, shape=(3, 4), ncols=0)


def test_tile_filters_rejects_bad_arrays():
    with pytest.raises(ValueError, match="2-D"):
        tile_filters(np.zeros(4))
    with pytest.raises(ValueError, match="NaN or inf"):
        tile_filters(np.full((2, 4), np.nan))


# --------------------------------------------------------------------------
# With matplotlib
# --------------------------------------------------------------------------

def test_plot_filters_writes_png(tmp_path, model):
    pytest.importorskip("matplotlib")
    fig = plot_filters(model)
    width, height = np.round(fig.get_size_inches() * fig.dpi).astype(int)
    path = tmp_path / "filters.png"
    assert plot_filters(model, path) == str(path)
    assert png_size(path) == (width, height)
    assert (width, height) == (400, 240)  # 3x2 grid of 0.8" tiles, 4" minimum width


def test_plot_filters_accepts_arrays_shape_and_dpi(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bars.png"
    plot_filters(bar_components(8), path, ncols=8, dpi=50, title="true bars")
    width, height = png_size(path)
    assert width == round(8 * 0.8 * 50)
    plot_filters(np.ones((3, 12)) * np.arange(12), tmp_path / "wide.png", shape=(3, 4))
    assert png_size(tmp_path / "wide.png")[0] > 0


def test_plot_filters_returns_a_figure_without_touching_the_backend(model):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    # The raw rcParams entry: reading it through rcParams[...] would itself
    # resolve (and fix) the backend.
    before = dict.__getitem__(matplotlib.rcParams, "backend")
    fig = plot_filters(model)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    assert dict.__getitem__(matplotlib.rcParams, "backend") == before


def test_plot_filters_errors(model):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="perfect square"):
        plot_filters(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="fitted|fit"):
        plot_filters(SparseAutoencoder())


def test_plot_loss_writes_png(tmp_path, model):
    pytest.importorskip("matplotlib")
    path = tmp_path / "loss.png"
    assert plot_loss(model, path) == str(path)
    assert png_size(path) == (500, 350)
    fig = plot_loss(model.loss_curve_, logy=True, figsize=(4, 3))
    assert fig.axes[0].get_yscale() == "log"
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(line.get_ydata(), model.loss_curve_)


def test_plot_loss_errors():
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="no training history"):
        plot_loss([])


def test_plot_functions_without_matplotlib(monkeypatch, tmp_path, model):
    hide_matplotlib(monkeypatch)
    for call in (lambda: plot_filters(model, tmp_path / "f.png"),
                 lambda: plot_loss(model),
                 lambda: plot_filters(bar_components(3))):
        with pytest.raises(ImportError, match=r'pip install "csae\[plot\]"'):
            call()
    assert not (tmp_path / "f.png").exists()
