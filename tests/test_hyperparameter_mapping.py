"""The hyperparameter table of docs/training.md, checked against the other systems' own
objectives written out here in plain NumPy (not taken from csae).

UFLDL's sparse autoencoder exercise (and mlpack) minimise

    J = 1/(2m) sum_k ||y(k) - x(k)||^2 + lambda/2 (||W||^2 + ||W'||^2)
        + beta sum_j KL(rho || rho_hat_j),

so under the documented mapping (weight_decay = lambda, sparsity_weight =
2 beta) csae's objective is exactly 2 J: the same minimiser, and gradients
twice UFLDL's.  MATLAB's trainAutoencoder documents

    E = 1/N sum_n sum_k (x_kn - y_kn)^2 + L2 * 1/2 (||W||^2 + ||W'||^2)
        + SparsityRegularization * sum_j KL(rho || rho_hat_j),

with no 1/2 on the error, so csae's objective equals E itself under
weight_decay = L2WeightRegularization / 2, sparsity_weight =
SparsityRegularization.
"""

import numpy as np
import pytest

from conftest import engine
from csae import reference as ref


def _problem(seed=0, m=50, n=12, h=7):
    rng = np.random.default_rng(seed)
    X = rng.random((m, n))
    params = (rng.normal(0, 0.3, (h, n)), rng.normal(0, 0.1, h),
              rng.normal(0, 0.3, (n, h)), rng.normal(0, 0.1, n))
    return params, X


def _parts(params, X):
    """Squared error summed over the batch, ||W||^2 + ||W'||^2, sum of KL
    divergences: computed here from scratch."""
    W, b, Wd, bd = params
    A = 1 / (1 + np.exp(-(X @ W.T + b)))
    Y = 1 / (1 + np.exp(-(A @ Wd.T + bd)))
    q = A.mean(axis=0)
    return (np.sum((Y - X) ** 2), np.sum(W ** 2) + np.sum(Wd ** 2),
            lambda rho: np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))))


def ufldl_objective(params, X, rho, lam, beta):
    squared, weights, kl = _parts(params, X)
    return squared / (2 * len(X)) + lam / 2 * weights + beta * kl(rho)


def matlab_objective(params, X, rho, l2, sparsity_regularization):
    squared, weights, kl = _parts(params, X)
    return squared / len(X) + l2 * weights / 2 + sparsity_regularization * kl(rho)


def _csae_objectives(params, X, **hyper):
    yield ref.objective(params, X, **hyper)
    yield engine().objective(params, X, **hyper)


@pytest.mark.parametrize("seed", range(3))
def test_ufldl_mapping_gives_twice_ufldl_objective(seed):
    params, X = _problem(seed)
    rho, lam, beta = 0.01, 1e-4, 3.0          # the exercise's published settings
    J = ufldl_objective(params, X, rho, lam, beta)
    for L in _csae_objectives(params, X, rho=rho, lam=lam, beta=2 * beta):
        np.testing.assert_allclose(L, 2 * J, rtol=1e-12)
    # The mapping the docs used to give (lambda / 2, beta) is not it.
    L_old = ref.objective(params, X, rho=rho, lam=lam / 2, beta=beta)
    assert abs(L_old - 2 * J) > 1e-3 * J


@pytest.mark.parametrize("seed", range(3))
def test_matlab_mapping_gives_matlab_objective(seed):
    params, X = _problem(seed)
    rho, l2, sparsity_regularization = 0.05, 0.004, 4.0   # MATLAB's defaults, rho aside
    E = matlab_objective(params, X, rho, l2, sparsity_regularization)
    for L in _csae_objectives(params, X, rho=rho, lam=l2 / 2, beta=sparsity_regularization):
        np.testing.assert_allclose(L, E, rtol=1e-12)
