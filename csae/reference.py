"""Pure-NumPy reference implementation of the csae model.

This module is the readable twin of the C engine (``csae._engine``).  Both
expose the same functions with the same arguments, and the test suite checks
that they agree: float64 to about 1e-10 relative, float32 to about 1e-4.  Use
it to cross-check results, or to read how the model works.

Notation (see ``docs/math.md``)::

    X   (m, n)  a batch of m samples with n features, one sample per row
    W   (h, n)  encoder weights          b   (h,)  encoder bias
    Wd  (n, h)  decoder weights (W')     bd  (n,)  decoder bias (b')
    A   (m, h)  hidden activations       Y   (m, n) reconstruction

    A = sigmoid(X W^T + b)
    Y = g(A Wd^T + bd)           g = sigmoid or identity

    L = (1/m) sum ||Y - X||^2 + lam (||W||^2 + ||Wd||^2)
        + beta sum_j KL(rho || rho_hat_j),   rho_hat = mean of A over rows

``params`` is always the tuple ``(W, b, Wd, bd)``; gradients and momentum
velocities use the same layout.  Every array of one call has one dtype
(float32 or float64), and the computation happens in that dtype.

Randomness (initialisation and shuffling) comes from SplitMix64, a counter
based generator that the C engine implements identically, so that both
backends produce bit-identical permutations and initial weights from the same
64-bit state.
"""

import numpy as np

from csae._errors import NonFiniteError

__all__ = [
    "DECODERS",
    "rho_hat_clip",
    "sigmoid",
    "encode",
    "decode",
    "reconstruct",
    "objective",
    "objective_and_gradients",
    "activation_sums",
    "objective_part",
    "sgd_step",
    "sgd_epoch",
    "SOLVERS",
    "init_params",
    "permutation",
    "splitmix64",
]

DECODERS = ("sigmoid", "linear")

_MASK64 = (1 << 64) - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def rho_hat_clip(dtype):
    """The eps that keeps rho_hat inside [eps, 1 - eps] in the KL term."""
    return 1e-6 if np.dtype(dtype) == np.float32 else 1e-12


# --------------------------------------------------------------------------
# Forward pass
# --------------------------------------------------------------------------

def sigmoid(z):
    """Logistic function 1 / (1 + exp(-z)), computed without overflow.

    The engine's rule for values that are not finite numbers: NaN gives NaN,
    +inf gives 1 and -inf gives 0.
    """
    z = np.asarray(z)
    # exp of a non-positive number never overflows; pick the form per sign.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def encode(W, b, X):
    """Hidden activations A = sigmoid(X W^T + b), shape (m, h).

    A pre-activation that overflows is +-inf (or NaN for inf - inf) and its
    sigmoid the limit, as in the engine, which does not warn either.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        Z = X @ W.T + b
    return sigmoid(Z)


def decode(Wd, bd, A, decoder="sigmoid"):
    """Decoder output Y = g(A Wd^T + bd), shape (m, n); overflow as in encode."""
    with np.errstate(over="ignore", invalid="ignore"):
        Z2 = A @ Wd.T + bd
    if decoder == "sigmoid":
        return sigmoid(Z2)
    if decoder == "linear":
        return Z2
    raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")


def reconstruct(params, X, decoder="sigmoid"):
    """decode(encode(X)): the model's reconstruction of X, shape (m, n)."""
    W, b, Wd, bd = params
    return decode(Wd, bd, encode(W, b, X), decoder)


# --------------------------------------------------------------------------
# Objective and gradients
# --------------------------------------------------------------------------

def _kl_terms(rho_hat, rho, beta):
    """KL penalty summed over hidden units, and its derivative s_j."""
    eps = rho_hat_clip(rho_hat.dtype)
    q = np.clip(rho_hat, eps, 1 - eps)
    kl = rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))
    s = beta * (-rho / q + (1 - rho) / (1 - q))
    return beta * np.sum(kl), s.astype(rho_hat.dtype, copy=False)


def objective(params, X, *, rho, beta, lam, decoder="sigmoid"):
    """Objective L on the batch X (rho_hat is the mean activation over X)."""
    return objective_and_gradients(params, X, rho=rho, beta=beta, lam=lam,
                                   decoder=decoder, need_gradients=False)[0]


def objective_and_gradients(params, X, *, rho, beta, lam, decoder="sigmoid",
                            need_gradients=True, q=None):
    """Objective L on the batch X and its gradients.

    Returns ``(L, (dW, db, dWd, dbd))``; the gradients are ``None`` when
    ``need_gradients`` is false.  ``L`` is a Python float.  ``q`` (shape
    (h,), optional) replaces X's rho_hat in the sparsity derivative of the
    backward pass only (the running sparsity estimate); L is X's own.
    """
    W, b, Wd, bd = params
    m = X.shape[0]

    # Forward pass.
    A = encode(W, b, X)
    Y = decode(Wd, bd, A, decoder)
    rho_hat = A.mean(axis=0)

    # Objective: reconstruction + weight decay + sparsity.
    R = Y - X
    reconstruction = np.sum(R * R) / m
    decay = lam * (np.sum(W * W) + np.sum(Wd * Wd))
    sparsity, s = _kl_terms(rho_hat, rho, beta)
    loss = float(reconstruction + decay + sparsity)
    if not need_gradients:
        return loss, None
    if q is not None:
        _, s = _kl_terms(q, rho, beta)
    dW, db, dWd, dbd = _backward(X, A, Y, Wd, s, m, decoder)
    # Weight decay contributes 2 lam W (not 2 W).
    grads = (dW + (2 * lam) * W, db, dWd + (2 * lam) * Wd, dbd)
    return loss, tuple(g.astype(X.dtype, copy=False) for g in grads)


def _backward(X, A, Y, Wd, s, divisor, decoder):
    """Gradients of sum ||Y - X||^2 / divisor plus the sparsity term whose
    derivative is s, spread over ``divisor`` rows; no weight decay."""
    dtype = X.dtype
    dY = (2.0 / divisor) * (Y - X)
    D3 = dY * (Y * (1 - Y)) if decoder == "sigmoid" else dY
    D3 = D3.astype(dtype, copy=False)
    # The sparsity term s sits inside the parentheses and is multiplied by
    # f'(Z1): it reaches W through rho_hat, which depends on W.
    D2 = (D3 @ Wd + s / divisor) * (A * (1 - A))
    D2 = D2.astype(dtype, copy=False)
    return D2.T @ X, D2.sum(axis=0), D3.T @ A, D3.sum(axis=0)


# Block-wise pieces of the full-batch objective, for data read in row blocks
# (chunks of a memory-mapped file, blocks of a dask array on other machines).
# The sparsity term couples all rows through rho_hat, so one evaluation takes
# two passes over the blocks: activation_sums of every block, added and
# divided by the row count, give the global rho_hat; then objective_part of
# every block given that rho_hat.  Added up, with the weight decay and the
# KL term (which depend on the weights and rho_hat only) added once:
#
#     L    = sum parts + lam (||W||^2 + ||Wd||^2) + beta sum_j KL(rho || rho_hat_j)
#     grad = sum part grads + 2 lam (W, 0, Wd, 0)
#
# which is objective_and_gradients over all the rows up to the order of the sums.

def activation_sums(W, b, X):
    """Column sums over the rows of ``A = sigmoid(X W^T + b)``.

    ``A`` is computed in the model dtype; the sums are accumulated in
    float64 in row order.  Returns a float64 array of shape (h,).
    """
    # Reducing over axis 0 of a C-ordered array adds whole rows one after
    # the other (NumPy's pairwise summation only applies along a contiguous axis).
    return encode(W, b, X).sum(axis=0, dtype=np.float64)


def objective_part(params, X, rho_hat, n_total, *, rho, beta, decoder="sigmoid"):
    """The contribution of the rows X to the full-batch objective and
    gradients of a data set of ``n_total`` rows with mean activation
    ``rho_hat`` (float64, shape (h,)), without the weight-decay and KL terms.

    Returns ``(part, (dW, db, dWd, dbd))`` with ``part`` a Python float::

        part = sum over the rows of ||y - x||^2 / n_total
        D3   = (2 / n_total) (Y - X) g'(Z2)
        s_j  = beta (-rho / q_j + (1 - rho) / (1 - q_j)),  q = clipped rho_hat
        D2   = (D3 Wd + s / n_total) A (1 - A)
        dWd  = D3^T A,  dbd = colsum D3,  dW = D2^T X,  db = colsum D2

    in the model dtype (s is computed in float64, then converted).
    """
    W, b, Wd, bd = params
    dtype = X.dtype
    rho_hat = np.asarray(rho_hat, dtype=np.float64)
    if rho_hat.shape != (W.shape[0],):
        raise ValueError(f"rho_hat must have shape ({W.shape[0]},), got {rho_hat.shape}")
    n_total = int(n_total)
    if n_total < X.shape[0] or n_total < 1:
        raise ValueError(f"n_total must be at least the block's {X.shape[0]} rows "
                         f"and positive, got {n_total}")
    eps = rho_hat_clip(dtype)
    q = np.clip(rho_hat, eps, 1 - eps)
    s = (beta * (-rho / q + (1 - rho) / (1 - q))).astype(dtype)

    A = encode(W, b, X)
    Y = decode(Wd, bd, A, decoder)
    R = Y - X
    part = float(np.sum(R * R, dtype=np.float64) / n_total)
    grads = _backward(X, A, Y, Wd, s, n_total, decoder)
    return part, tuple(g.astype(dtype, copy=False) for g in grads)


# --------------------------------------------------------------------------
# Stochastic gradient descent, Adam and the running sparsity estimate
# --------------------------------------------------------------------------

SOLVERS = ("sgd", "adam")


def _check_training_options(params, *, solver, beta_1, beta_2, epsilon, adam_m,
                            adam_v, adam_t, sparsity_smoothing, rho_running,
                            running_batches):
    """ValueError/TypeError for bad Adam or running-estimate arguments,
    before anything changes."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    dtype = params[0].dtype
    if solver == "adam":
        if not 0.0 <= beta_1 < 1.0:
            raise ValueError(f"beta_1 must be in [0, 1), got {beta_1!r}")
        if not 0.0 <= beta_2 < 1.0:
            raise ValueError(f"beta_2 must be in [0, 1), got {beta_2!r}")
        if not epsilon > 0.0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        if int(adam_t) < 0:
            raise ValueError(f"adam_t must be >= 0, got {adam_t!r}")
        for name, moments in (("adam_m", adam_m), ("adam_v", adam_v)):
            if moments is None or len(moments) != 4:
                raise TypeError(f"solver='adam' needs {name}, a tuple of 4 arrays "
                                "shaped like params")
            for theta, a in zip(params, moments):
                if not isinstance(a, np.ndarray) or a.dtype != dtype:
                    raise TypeError(f"{name} must hold {dtype} arrays")
                if a.shape != theta.shape:
                    raise ValueError(f"{name} must have the shapes of params")
    if sparsity_smoothing is not None:
        if not 0.0 < sparsity_smoothing <= 1.0:
            raise ValueError("sparsity_smoothing must be in (0, 1], got "
                             f"{sparsity_smoothing!r}")
        if not isinstance(rho_running, np.ndarray) or rho_running.dtype != dtype:
            raise TypeError(f"rho_running must be a {dtype} array")
        if rho_running.shape != params[1].shape:
            raise ValueError(f"rho_running must have shape {params[1].shape}, "
                             f"got {rho_running.shape}")
        if int(running_batches) < 0:
            raise ValueError(f"running_batches must be >= 0, got {running_batches!r}")


def _running_q(params, X, rho_running, tau, first):
    """The running estimate after the minibatch X:
    rho_hat(X) on q's first minibatch, else (1 - tau) q + tau rho_hat(X)."""
    W, b, _, _ = params
    rho_hat = encode(W, b, X).mean(axis=0)
    if first:
        return rho_hat
    t = rho_hat.dtype.type(tau)
    return (rho_hat.dtype.type(1) - t) * rho_running + t * rho_hat


def sgd_step(params, velocity, X, *, rho, beta, lam, decoder="sigmoid",
             learning_rate, momentum=0.0, solver="sgd", beta_1=0.9, beta_2=0.999,
             epsilon=1e-8, adam_m=None, adam_v=None, adam_t=0,
             sparsity_smoothing=None, rho_running=None, running_batches=0):
    """One update on the minibatch X, in place.  Returns the objective on X
    at the weights before the update.

    ``solver="sgd"``: without momentum theta <- theta - lr * g; with momentum
    mu, v <- mu * v - lr * g; theta <- theta + v.  ``velocity`` may be
    ``None`` when ``momentum`` is 0.

    ``solver="adam"`` (scikit-learn's convention; momentum and velocity are
    ignored): ``adam_m``, ``adam_v`` are tuples of arrays shaped like params,
    updated in place, and ``adam_t`` is the number of Adam steps taken
    before this one, so this is step t = adam_t + 1::

        m <- beta_1 m + (1 - beta_1) g;   v <- beta_2 v + (1 - beta_2) g^2
        lr_t = learning_rate sqrt(1 - beta_2^t) / (1 - beta_1^t)
        theta <- theta - lr_t m / (sqrt(v) + epsilon)

    ``sparsity_smoothing=tau`` in (0, 1]: ``rho_running`` (shape (h,), the
    model dtype) is the running estimate q of the mean activation, updated in
    place, and ``running_batches`` is how many minibatches it has seen
    before this one.  q <- rho_hat(X) on its first minibatch, else
    q <- (1 - tau) q + tau rho_hat(X); the sparsity derivative of the
    backward pass then uses q instead of rho_hat(X).  The returned objective
    is X's own, with its own rho_hat.

    Raises NonFiniteError, leaving parameters, velocities, Adam moments and
    q untouched, when the objective, a gradient entry or a new value is not
    finite.
    """
    _check_training_options(params, solver=solver, beta_1=beta_1, beta_2=beta_2,
                            epsilon=epsilon, adam_m=adam_m, adam_v=adam_v,
                            adam_t=adam_t, sparsity_smoothing=sparsity_smoothing,
                            rho_running=rho_running, running_batches=running_batches)
    return _step(params, velocity, X, rho=rho, beta=beta, lam=lam, decoder=decoder,
                 learning_rate=learning_rate, momentum=momentum, solver=solver,
                 beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, adam_m=adam_m,
                 adam_v=adam_v, t=int(adam_t) + 1, tau=sparsity_smoothing,
                 rho_running=rho_running, first=int(running_batches) == 0)


def _step(params, velocity, X, *, rho, beta, lam, decoder, learning_rate, momentum,
          solver, beta_1, beta_2, epsilon, adam_m, adam_v, t, tau, rho_running, first):
    # Overflow while training is what the finiteness check of the update is
    # for: it raises NonFiniteError, so NumPy need not warn as well.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        q = None if tau is None else _running_q(params, X, rho_running, tau, first)
        loss, grads = objective_and_gradients(params, X, rho=rho, beta=beta, lam=lam,
                                              decoder=decoder, q=q)
        if solver == "adam":
            new = _adam_values(params, adam_m, adam_v, grads, learning_rate,
                               beta_1, beta_2, epsilon, t)
        else:
            new = _sgd_values(params, velocity, grads, learning_rate, momentum)
        extra = [] if q is None else [q]
        if not (np.isfinite(loss) and all(np.isfinite(g).all() for g in grads)
                and all(np.isfinite(a).all() for a, _ in new)
                and all(np.isfinite(a).all() for a in extra)):
            raise NonFiniteError("the objective, its gradient or the updated "
                                 "parameters are not finite")
        for value, target in new:
            target[...] = value
        if q is not None:
            rho_running[...] = q
        return loss


def _sgd_values(params, velocity, grads, learning_rate, momentum):
    """(new value, target) pairs of a plain or momentum SGD step."""
    if momentum == 0.0:
        return [(theta - theta.dtype.type(learning_rate) * g, theta)
                for theta, g in zip(params, grads)]
    new_velocity = [theta.dtype.type(momentum) * v - theta.dtype.type(learning_rate) * g
                    for theta, v, g in zip(params, velocity, grads)]
    return ([(theta + step, theta) for theta, step in zip(params, new_velocity)]
            + list(zip(new_velocity, velocity)))


def _adam_values(params, adam_m, adam_v, grads, learning_rate, beta_1, beta_2,
                 epsilon, t):
    """(new value, target) pairs of Adam step t (1-based)."""
    dtype = params[0].dtype.type
    # The bias-corrected rate in float64, then converted, as the engine does.
    lr_t = dtype(learning_rate * np.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t))
    b1, b2, eps = dtype(beta_1), dtype(beta_2), dtype(epsilon)
    one = dtype(1)
    out = []
    for theta, m, v, g in zip(params, adam_m, adam_v, grads):
        new_m = b1 * m + (one - b1) * g
        new_v = b2 * v + (one - b2) * (g * g)
        out += [(theta - lr_t * new_m / (np.sqrt(new_v) + eps), theta),
                (new_m, m), (new_v, v)]
    return out


def sgd_epoch(params, velocity, X, *, rho, beta, lam, decoder="sigmoid",
              learning_rate, momentum=0.0, batch_size, shuffle=False,
              rng_state=0, solver="sgd", beta_1=0.9, beta_2=0.999, epsilon=1e-8,
              adam_m=None, adam_v=None, adam_t=0, sparsity_smoothing=None,
              rho_running=None, running_batches=0):
    """One epoch of minibatch training over the rows of X, updating
    ``params`` (and ``velocity``, or ``adam_m``/``adam_v``, and
    ``rho_running``) in place.

    Minibatches have ``batch_size`` rows (the last one may be shorter) and
    are taken in row order, or in the order of ``permutation(m, rng_state)``
    when ``shuffle`` is true.  Each is one ``sgd_step`` (see there for
    ``solver``, the Adam arguments and the running sparsity estimate): the
    k-th minibatch (k = 1, 2, ...) is Adam step t = adam_t + k, and the
    running estimate's first minibatch is the one with
    running_batches + k == 1.  After a completed epoch the caller advances
    ``adam_t`` and ``running_batches`` by the number of minibatches,
    ceil(m / batch_size).

    Returns ``(epoch_loss, rng_state)``: the mean over the epoch's minibatches
    of the objective before each update, weighted by the minibatch's rows, and
    the generator state after the epoch (unchanged without shuffling).

    Raises NonFiniteError (with ``batch`` set) at the first minibatch whose
    objective or gradient is not finite; earlier minibatches stay applied.
    """
    _check_training_options(params, solver=solver, beta_1=beta_1, beta_2=beta_2,
                            epsilon=epsilon, adam_m=adam_m, adam_v=adam_v,
                            adam_t=adam_t, sparsity_smoothing=sparsity_smoothing,
                            rho_running=rho_running, running_batches=running_batches)
    m = X.shape[0]
    if shuffle:
        order, rng_state = permutation(m, rng_state)
    else:
        order = None
    total = 0.0
    for k, start in enumerate(range(0, m, batch_size), start=1):
        stop = min(start + batch_size, m)
        batch = X[start:stop] if order is None else X[order[start:stop]]
        try:
            loss = _step(params, velocity, batch, rho=rho, beta=beta, lam=lam,
                         decoder=decoder, learning_rate=learning_rate,
                         momentum=momentum, solver=solver, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, adam_m=adam_m,
                         adam_v=adam_v, t=int(adam_t) + k, tau=sparsity_smoothing,
                         rho_running=rho_running,
                         first=int(running_batches) + k == 1)
        except NonFiniteError as err:
            err.batch = start // batch_size
            raise
        total += loss * (stop - start)
    return total / m, rng_state


# --------------------------------------------------------------------------
# Randomness shared with the C engine: SplitMix64
# --------------------------------------------------------------------------

def splitmix64(state, count):
    """The next ``count`` outputs of SplitMix64 from ``state``.

    Returns ``(outputs, new_state)`` with outputs a uint64 array.  Output k
    (1-based) is mix(state + k * gamma), so the whole stream is vectorised.
    """
    k = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(state) + k * np.uint64(_GOLDEN_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    new_state = (int(state) + count * _GOLDEN_GAMMA) & _MASK64
    return z, new_state


def _next_below(state, bound):
    """An unbiased integer in [0, bound) by rejection; returns (value, state)."""
    threshold = ((1 << 64) - bound) % bound
    while True:
        out, state = splitmix64(state, 1)
        r = int(out[0])
        if r >= threshold:
            return r % bound, state


def permutation(m, rng_state):
    """The shuffled row order for one epoch: Fisher-Yates on 0..m-1, drawing
    j uniform in [0, i] for i = m-1 down to 1.  Returns (order, new_state)."""
    order = np.arange(m, dtype=np.intp)
    state = int(rng_state) & _MASK64
    for i in range(m - 1, 0, -1):
        j, state = _next_below(state, i + 1)
        order[i], order[j] = order[j], order[i]
    return order, state


def init_params(n_features, n_hidden, rng_state, dtype=np.float64):
    """Default initialisation: W and Wd uniform in [-r, r] with
    r = sqrt(6 / (n + h + 1)), biases zero.

    Draws W (row-major) then Wd from SplitMix64 as u = (x >> 11) * 2**-53,
    w = r (2u - 1) in float64, then converts to ``dtype``.  Returns
    ``((W, b, Wd, bd), new_state)``.
    """
    n, h = int(n_features), int(n_hidden)
    r = np.sqrt(6.0 / (n + h + 1))
    raw, state = splitmix64(int(rng_state) & _MASK64, 2 * n * h)
    u = (raw >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    w = r * (2.0 * u - 1.0)
    W = w[: n * h].reshape(h, n).astype(dtype)
    Wd = w[n * h:].reshape(n, h).astype(dtype)
    return (W, np.zeros(h, dtype), Wd, np.zeros(n, dtype)), state


# A deep network (sigmoid layers and a softmax output): its own module, the
# same functions as the engine's deep_* entry points.
from csae._deep_reference import (  # noqa: E402
    deep_forward,
    deep_objective,
    deep_objective_and_gradients,
)

__all__ += ["deep_forward", "deep_objective", "deep_objective_and_gradients"]
