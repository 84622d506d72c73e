"""Type stub for the compiled engine ``csae._engine`` (csae/_engine.pyx).

The functions mirror ``csae.reference``.  Arrays must already be
C-contiguous and all of one dtype, float32 or float64 (the estimator
converts user input before it gets here); parameters are the tuple
``(W, b, Wd, bd)`` with shapes ``(h, n)``, ``(h,)``, ``(n, h)``, ``(n,)``.
"""

from typing import Any, Literal, Sequence

import numpy as np
from numpy.typing import DTypeLike, NDArray
from typing_extensions import disjoint_base

_FloatArray = NDArray[np.floating[Any]]
# (W, b, Wd, bd); a list of the four arrays is accepted as well.
_Params = tuple[_FloatArray, _FloatArray, _FloatArray, _FloatArray] | list[_FloatArray]
_Decoder = Literal["sigmoid", "linear"]
_KernelPath = Literal["portable", "avx2", "avx512", "neon"]

# Kernel paths

def kernel_paths() -> list[_KernelPath]:
    """Names of the kernel paths this CPU can run, portable first."""

def get_kernel_path() -> _KernelPath:
    """Name of the kernel path in use."""

def set_kernel_path(name: Literal["portable", "avx2", "avx512", "neon", "auto"]) -> None:
    """Use the kernel path ``name`` from now on, for the whole process."""

# Forward pass

def encode(W: _FloatArray, b: _FloatArray, X: _FloatArray, *, n_threads: int = 1) -> _FloatArray:
    """Hidden activations A = sigmoid(X W^T + b), shape (m, h)."""

def encode_fast(
    W: object, b: object, X: object, n_threads: int | None = 1, cast: bool = False
) -> _FloatArray | None:
    """``encode`` for plain arrays of one dtype (with cast, X of the other
    float width too) with finite X; None for anything else."""

def decode(
    Wd: _FloatArray, bd: _FloatArray, A: _FloatArray, decoder: _Decoder = "sigmoid", *, n_threads: int = 1
) -> _FloatArray:
    """Decoder output Y = g(A Wd^T + bd), shape (m, n)."""

def reconstruct(params: _Params, X: _FloatArray, decoder: _Decoder = "sigmoid", *, n_threads: int = 1) -> _FloatArray:
    """decode(encode(X)): the model's reconstruction of X, shape (m, n)."""

# Objective, gradients and SGD

def objective_and_gradients(
    params: _Params,
    X: _FloatArray,
    *,
    rho: float,
    beta: float,
    lam: float,
    decoder: _Decoder = "sigmoid",
    need_gradients: bool = True,
    n_threads: int = 1,
) -> tuple[float, tuple[_FloatArray, _FloatArray, _FloatArray, _FloatArray] | None]:
    """Objective on the batch X and its gradients ``(dW, db, dWd, dbd)``
    (None when ``need_gradients`` is false)."""

def objective(
    params: _Params,
    X: _FloatArray,
    *,
    rho: float,
    beta: float,
    lam: float,
    decoder: _Decoder = "sigmoid",
    n_threads: int = 1,
) -> float:
    """Objective on the batch X."""

def sgd_epoch(
    params: _Params,
    velocity: _Params | None,
    X: _FloatArray,
    *,
    rho: float,
    beta: float,
    lam: float,
    decoder: _Decoder = "sigmoid",
    learning_rate: float,
    momentum: float = 0.0,
    batch_size: int,
    shuffle: bool = False,
    rng_state: int = 0,
    solver: Literal["sgd", "adam"] = "sgd",
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-8,
    adam_m: _Params | None = None,
    adam_v: _Params | None = None,
    adam_t: int = 0,
    sparsity_smoothing: float | None = None,
    rho_running: _FloatArray | None = None,
    running_batches: int = 0,
    n_threads: int = 1,
) -> tuple[float, int]:
    """One epoch of minibatch training (SGD, momentum or Adam; optionally the
    running sparsity estimate) over the rows of X, in place; returns
    ``(epoch_loss, rng_state)``."""

def sgd_step(
    params: _Params,
    velocity: _Params | None,
    X: _FloatArray,
    *,
    rho: float,
    beta: float,
    lam: float,
    decoder: _Decoder = "sigmoid",
    learning_rate: float,
    momentum: float = 0.0,
    solver: Literal["sgd", "adam"] = "sgd",
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-8,
    adam_m: _Params | None = None,
    adam_v: _Params | None = None,
    adam_t: int = 0,
    sparsity_smoothing: float | None = None,
    rho_running: _FloatArray | None = None,
    running_batches: int = 0,
    n_threads: int = 1,
) -> float:
    """One update on the minibatch X, in place; returns the objective on X
    before the update."""

@disjoint_base
class ObjectiveEvaluator:
    """objective_and_gradients on one X, many times, with one workspace."""

    n_features: int
    n_hidden: int
    n_params: int
    def __init__(
        self,
        X: _FloatArray,
        n_hidden: int,
        *,
        rho: float,
        beta: float,
        lam: float,
        decoder: _Decoder = "sigmoid",
        n_threads: int = 1,
    ) -> None: ...
    def evaluate_flat(self, theta: NDArray[np.float64], grad: NDArray[np.float64]) -> float:
        """The objective at the flat float64 theta; its gradient into grad."""
    def __call__(
        self, params: _Params
    ) -> tuple[float, tuple[_FloatArray, _FloatArray, _FloatArray, _FloatArray]]:
        """(objective, gradients) at params."""

# L-BFGS

LBFGS_EVALUATE: int
LBFGS_ITERATE: int
LBFGS_CONVERGED: int
LBFGS_MAX_ITER: int
LBFGS_MAX_EVAL: int
LBFGS_LINE_SEARCH_FAILED: int
LBFGS_NONFINITE: int

@disjoint_base
class Lbfgs:
    """One L-BFGS run over n float64 parameters (reverse communication)."""

    n: int
    def __init__(
        self, n: int, *, max_iter: int, max_eval: int, ftol: float, gtol: float = 0.0,
        history: int = 10, n_threads: int = 1, float32_storage: bool = False,
    ) -> None: ...
    def step(
        self, x: NDArray[np.float64], f: float, g: NDArray[np.float64]
    ) -> tuple[int, float]:
        """The next task and the objective (restored after a failed search)."""
    @property
    def iterations(self) -> int: ...
    @property
    def evaluations(self) -> int: ...
    @property
    def restarts(self) -> int: ...

# Block-wise full-batch objective

def activation_sums(W: _FloatArray, b: _FloatArray, X: _FloatArray, *, n_threads: int = 1) -> NDArray[np.float64]:
    """Column sums (float64, shape (h,)) of A = sigmoid(X W^T + b)."""

def objective_part(
    params: _Params,
    X: _FloatArray,
    rho_hat: NDArray[np.floating[Any]],
    n_total: int,
    *,
    rho: float,
    beta: float,
    decoder: _Decoder = "sigmoid",
    n_threads: int = 1,
) -> tuple[float, tuple[_FloatArray, _FloatArray, _FloatArray, _FloatArray]]:
    """The rows X's share of the full-batch objective and gradient of a data
    set of n_total rows with mean activation rho_hat, without the decay and
    KL terms."""

# Randomness

def permutation(m: int, rng_state: int) -> tuple[NDArray[np.intp], int]:
    """The engine's shuffled row order for one epoch; returns (order, state)."""

def init_params(
    n_features: int, n_hidden: int, rng_state: int, dtype: DTypeLike = ...
) -> tuple[tuple[_FloatArray, _FloatArray, _FloatArray, _FloatArray], int]:
    """Default initialisation drawn by the engine; returns ``((W, b, Wd, bd), new_state)``."""

# Model files

def read_model_file(fd: int) -> tuple[int, dict[str, Any] | None]:
    """Read the model file open on ``fd`` with the C reader: ``(status, None)``
    when it refuses the file, else ``(0, fields)``."""
def read_deep_file(fd: int) -> tuple[int, dict[str, Any] | None]:
    """Read a deep model's file open on ``fd`` with the C reader:
    ``(status, None)`` when it refuses the file, else ``(0, fields)``."""
def deep_member_names() -> list[str]:
    """The names of every member a deep model's file may hold."""

MODEL_FILE_UNSUPPORTED: int
MODEL_FILE_CHANGED: int

def status_message(status: int) -> str:
    """A short English description of a csae_status code."""

# Deep networks: sigmoid layers under a softmax output.  params is a list of
# (W, b) pairs, W of shape (h_l, h_{l-1}), the softmax layer last.

def deep_forward(
    params: list[tuple[_FloatArray, _FloatArray]] | tuple[tuple[_FloatArray, _FloatArray], ...],
    X: _FloatArray,
    n_threads: int = 1,
) -> _FloatArray:
    """Class probabilities, shape (m, k)."""

def deep_objective_and_gradients(
    params: list[tuple[_FloatArray, _FloatArray]] | tuple[tuple[_FloatArray, _FloatArray], ...],
    X: _FloatArray,
    y: NDArray[np.integer[Any]],
    *,
    lam: float,
    n_threads: int = 1,
    need_gradients: bool = True,
) -> tuple[float, list[tuple[_FloatArray, _FloatArray]] | None]:
    """Mean cross-entropy plus (lam/2) sum of squared weights, and its
    gradient in the layout of params (None when need_gradients is false)."""

def deep_encode(
    layers: list[tuple[_FloatArray, _FloatArray]] | tuple[tuple[_FloatArray, _FloatArray], ...],
    X: _FloatArray,
    n_threads: int = 1,
) -> _FloatArray:
    """The top sigmoid layer's activations, shape (m, h_L), in one call."""

@disjoint_base
class DeepEvaluator:
    """The deep objective and gradient on fixed data, workspace kept."""
    n_params: int
    def __init__(
        self,
        sizes: Sequence[int],
        X: _FloatArray,
        y: NDArray[np.integer[Any]],
        *,
        lam: float,
        n_threads: int = 1,
    ) -> None: ...
    def evaluate_flat(self, theta: NDArray[np.float64], grad: NDArray[np.float64]) -> float: ...
    @property
    def data(self) -> tuple[_FloatArray, NDArray[np.int64]]: ...
    def evaluate_rows(self, theta: _FloatArray, grad: _FloatArray, start: int,
                      stop: int) -> float: ...

@disjoint_base
class FlatStep:
    """Steps of SGD, momentum or Adam on a flat vector (csae_flat_step_*)."""
    n_params: int
    def __init__(
        self,
        n_params: int,
        dtype: Any,
        *,
        solver: str,
        learning_rate: float,
        momentum: float = 0.0,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_threads: int = 1,
    ) -> None: ...
    @property
    def t(self) -> int: ...
    def step(self, theta: _FloatArray, grad: _FloatArray) -> None: ...
