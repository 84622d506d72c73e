"""Plain-NumPy reference of a deep network: sigmoid layers and a softmax output.

The readable twin of the engine's ``csae_deep_*`` functions (``src_c/deep.c``)
and of ``csae._engine.deep_objective_and_gradients`` / ``deep_forward``;
``csae.reference`` re-exports it.  docs/deep.md has the derivation.

Notation::

    X        (m, n)          a batch of m rows with n features
    y        (m,)            class indices in 0..k-1
    W_l, b_l (h_l, h_{l-1}), (h_l,)   hidden layer l = 1..L (h_0 = n)
    W_o, b_o (k, h_L), (k,)           the softmax layer

    A_0 = X,  A_l = sigmoid(A_{l-1} W_l^T + b_l)
    Z = A_L W_o^T + b_o,  P = softmax(Z) row by row

    J = -(1/m) sum_i log P[i, y_i] + (lam/2) (sum_l ||W_l||^2 + ||W_o||^2)

Every weight matrix is decayed, the softmax layer's included, with the one
``lam``; no bias is.  ``params`` is a list of ``(W, b)`` pairs, the hidden
layers first and the softmax layer last; gradients come back in the same
layout.  The computation runs in the parameters' dtype; the objective is
returned as a Python float.
"""

import numpy as np

__all__ = ["deep_forward", "deep_objective", "deep_objective_and_gradients"]


def _sigmoid(z):
    # The form that never overflows, as csae.reference.sigmoid.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def _layers(params, X):
    """Activations A_0..A_L and the logits Z."""
    acts = [X]
    for W, b in params[:-1]:
        acts.append(_sigmoid(acts[-1] @ W.T + b))
    W_o, b_o = params[-1]
    return acts, acts[-1] @ W_o.T + b_o


def _softmax(Z):
    """Row-wise softmax and the shifted logits' log-sum-exp: subtracting the
    row maximum first keeps every exp at most 1, so no logit overflows."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(shifted)
    s = E.sum(axis=1, keepdims=True)
    return E / s, shifted, s


def deep_forward(params, X):
    """Class probabilities, shape (m, k), rows summing to 1."""
    return _softmax(_layers(params, X)[1])[0]


def deep_objective(params, X, y, *, lam):
    """The objective J alone."""
    return deep_objective_and_gradients(params, X, y, lam=lam)[0]


def deep_objective_and_gradients(params, X, y, *, lam):
    """J and its gradient with respect to every layer's (W, b).

    Returns ``(J, [(dW_1, db_1), ..., (dW_o, db_o)])``.  Backward pass::

        D_o = (P - T) / m                   T the one-hot rows of y
        dW_o = D_o^T A_L + lam W_o,         db_o = column sums of D_o
        D_l = (D_{l+1} W_{l+1}) * A_l (1 - A_l)       (W_{L+1} = W_o)
        dW_l = D_l^T A_{l-1} + lam W_l,     db_l = column sums of D_l
    """
    y = np.asarray(y)
    m = X.shape[0]
    acts, Z = _layers(params, X)
    P, shifted, s = _softmax(Z)
    rows = np.arange(m)
    # -log P[i, y_i] = log(sum_j exp(z_ij - max_i)) - (z_iy - max_i), in double.
    ce = np.log(s[:, 0].astype(np.float64)) - shifted[rows, y].astype(np.float64)
    decay = sum(float(np.sum(W.astype(np.float64) ** 2)) for W, _ in params)
    J = float(ce.mean()) + 0.5 * lam * decay

    dtype = P.dtype
    D = P.copy()
    D[rows, y] -= 1
    D /= dtype.type(m)
    grads = [None] * len(params)
    for l in range(len(params) - 1, -1, -1):
        W, _ = params[l]
        A_prev = acts[l]
        grads[l] = (D.T @ A_prev + dtype.type(lam) * W, D.sum(axis=0))
        if l > 0:
            D = (D @ W) * (A_prev * (1 - A_prev))
    return J, grads
