"""Pictures of a model: its learned filters and its training curve.

matplotlib is an optional dependency (``pip install "csae[plot]"``), imported
only when a function here is called.  The figures are built on
``matplotlib.figure.Figure`` directly, without pyplot, so these functions
neither need a display nor change the user's backend: a file is rendered
with the Agg canvas, and a returned Figure can be shown in a notebook, saved
with ``fig.savefig`` or added to a GUI.
"""

import math
import numbers
import os

import numpy as np

__all__ = ["plot_filters", "plot_loss", "tile_filters"]

_INSTALL_HINT = 'pip install "csae[plot]"'


def _figure_class():
    """matplotlib's Figure, or an ImportError that says what to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("csae's plotting functions need matplotlib, which is not "
                          f"installed; install it with: {_INSTALL_HINT}") from err
    return Figure


def _finish(fig, path, dpi):
    """Save ``fig`` to ``path`` with the Agg renderer and return the path,
    or return the figure itself when no path is given."""
    if path is None:
        return fig
    path = os.fspath(path)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas; no global state
    fig.savefig(path, dpi=dpi)
    return path


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _filter_weights(model):
    """The (n_filters, n_features) array to draw: a model's encoder weights
    or an array given directly."""
    if hasattr(model, "encoder_weights_") or hasattr(model, "get_params"):
        W = model.encoder_weights_  # raises NotFittedError on an unfitted model
    else:
        W = model
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] == 0 or W.shape[1] == 0:
        raise ValueError("filters must be a 2-D array (n_filters, n_features) with at "
                         f"least one entry, got shape {W.shape}")
    if W.dtype.kind not in "biuf":
        raise ValueError(f"filters must be numeric, got dtype {W.dtype}")
    W = W.astype(np.float64)
    if not np.isfinite(W).all():
        raise ValueError("filters contain NaN or inf")
    return W


def _tile_shape(n_features, shape):
    if shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(f"cannot infer a square tile from {n_features} features "
                             "(not a perfect square); pass shape=(height, width)")
        return side, side
    try:
        height, width = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a pair (height, width), got {shape!r}") from None
    if height < 1 or width < 1 or height * width != n_features:
        raise ValueError(f"shape {tuple(shape)} does not match {n_features} features "
                         "(height * width must equal the number of features)")
    return height, width


def tile_filters(filters, shape=None, ncols=None, padding=1):
    """Arrange filters as image tiles in one array (UFLDL's display_network).

    Each filter is centred on its mean and divided by its largest absolute
    value, so every tile uses the full range [-1, 1] on its own: a filter's
    pattern shows whatever its overall scale.  Tiles are separated by
    ``padding`` pixels of -1 (black in a grey colour map).

    Parameters
    ----------
    filters : ndarray of shape (n_filters, n_features) or a fitted model
        One filter per row (a model gives its ``encoder_weights_``).
    shape : (int, int), default=None
        (height, width) of a tile, rows in C order.  None: a square tile,
        which needs ``n_features`` to be a perfect square.
    ncols : int, default=None
        Tiles per row of the grid; None makes the grid about square.
    padding : int, default=1
        Pixels between tiles and around the grid.

    Returns
    -------
    mosaic : ndarray of shape (rows * (height + padding) + padding,
        ncols * (width + padding) + padding), values in [-1, 1]
    """
    W = _filter_weights(filters)
    n_filters, n_features = W.shape
    height, width = _tile_shape(n_features, shape)
    if ncols is None:
        ncols = math.ceil(math.sqrt(n_filters))
    ncols = min(_check_positive_int(ncols, "ncols"), n_filters)
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    nrows = math.ceil(n_filters / ncols)

    W = W - W.mean(axis=1, keepdims=True)
    peak = np.abs(W).max(axis=1, keepdims=True)
    W = np.divide(W, peak, out=np.zeros_like(W), where=peak > 0)  # flat filter -> grey

    mosaic = np.full((nrows * (height + padding) + padding,
                      ncols * (width + padding) + padding), -1.0)
    for k in range(n_filters):
        row, col = divmod(k, ncols)
        top = padding + row * (height + padding)
        left = padding + col * (width + padding)
        mosaic[top:top + height, left:left + width] = W[k].reshape(height, width)
    return mosaic


def plot_filters(model, path=None, shape=None, ncols=None, *, cmap="gray",
                 title=None, tile_inches=0.8, dpi=100):
    """Draw every hidden unit's encoder weights as an image tile in one grid.

    This is UFLDL's ``display_network`` (MATLAB's ``plotWeights``): tile k
    shows row k of ``model.encoder_weights_`` reshaped to an image, each
    tile scaled on its own to [-1, 1] (see ``tile_filters``), so a unit that
    detects a bar appears as a bright bar on a dark background.

    Parameters
    ----------
    model : SparseAutoencoder or ndarray of shape (n_filters, n_features)
        A fitted model, or filters given directly (for example the true
        components of ``csae.datasets.make_bars``).
    path : str or os.PathLike, default=None
        Where to save the picture (PNG unless the extension names another
        format matplotlib knows).  None returns the Figure instead.
    shape : (int, int), default=None
        (height, width) of one tile; None infers a square tile, which needs
        the number of features to be a perfect square.
    ncols : int, default=None
        Tiles per row; None makes the grid about square.
    cmap : str, default="gray"
        matplotlib colour map.
    title : str, default=None
        Figure title; None writes "<n> hidden units".
    tile_inches : float, default=0.8
        Size of one tile in the figure, in inches (sets the figure size).
    dpi : int, default=100
        Resolution of the saved file.

    Returns
    -------
    path or matplotlib.figure.Figure
        ``path`` when one was given (the file is written), else the Figure.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install "csae[plot]"``).
    ValueError
        If the tile shape cannot be inferred or does not match the weights.
    """
    Figure = _figure_class()
    if not (isinstance(tile_inches, numbers.Real) and tile_inches > 0):
        raise ValueError(f"tile_inches must be a positive number, got {tile_inches!r}")
    dpi = _check_positive_int(dpi, "dpi")
    W = _filter_weights(model)
    height, width = _tile_shape(W.shape[1], shape)
    mosaic = tile_filters(W, shape=(height, width), ncols=ncols)
    grid_cols = (mosaic.shape[1] - 1) // (width + 1)
    grid_rows = (mosaic.shape[0] - 1) // (height + 1)
    aspect = height / width
    fig_w = max(4.0, grid_cols * tile_inches)
    fig_h = max(2.0, grid_rows * tile_inches * aspect) + 0.4  # room for the title
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96 - 0.4 / fig_h))
    ax.imshow(mosaic, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{W.shape[0]} hidden units" if title is None else title, fontsize=10)
    return _finish(fig, path, dpi)


def plot_loss(model, path=None, *, title=None, logy=False, figsize=(5.0, 3.5), dpi=100):
    """Draw the training objective per epoch (``model.loss_curve_``).

    Parameters
    ----------
    model : SparseAutoencoder or sequence of float
        A fitted model, or the objective values themselves.
    path : str or os.PathLike, default=None
        Where to save the picture (PNG unless the extension says otherwise).
        None returns the Figure instead.
    title : str, default=None
        Figure title; None writes "Training objective".
    logy : bool, default=False
        Logarithmic y axis.
    figsize : (float, float), default=(5.0, 3.5)
        Figure size in inches.
    dpi : int, default=100
        Resolution of the saved file.

    Returns
    -------
    path or matplotlib.figure.Figure
        ``path`` when one was given (the file is written), else the Figure.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install "csae[plot]"``).
    ValueError
        If there is no epoch to draw.
    """
    Figure = _figure_class()
    curve = model.loss_curve_ if hasattr(model, "get_params") else model
    curve = np.asarray(curve, dtype=np.float64).ravel()
    if curve.size == 0:
        raise ValueError("the model has no training history to draw (loss_curve_ is empty)")
    dpi = _check_positive_int(dpi, "dpi")

    epochs = np.arange(1, curve.size + 1)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(epochs, curve, marker="o" if curve.size <= 30 else None, markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("objective")
    if logy:
        ax.set_yscale("log")
    ax.set_title("Training objective" if title is None else title)
    ax.grid(True, alpha=0.3)
    if curve.size == 1:
        ax.set_xticks([1])
    return _finish(fig, path, dpi)
