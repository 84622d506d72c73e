"""Training of a deep network of sigmoid layers under a softmax layer
(``SparseAutoencoderClassifier``'s softmax layer and fine-tuning), from
values: the layers, the prepared rows, the class indices and the checked
settings (``SparseAutoencoderClassifier._settings``).  The estimator
(csae/deep.py) publishes what these functions return.

Two ways, by ``solver``:

- "lbfgs" (the default, UFLDL's): the engine's L-BFGS over the whole
  objective (``csae.solvers.lbfgs.lbfgs``), with ``ValidationMonitor`` for
  early stopping;
- "adam" and "sgd": minibatch epochs on the network's flat parameter vector
  (``csae.solvers.flat``): each minibatch's objective and gradient from the
  engine's ``DeepEvaluator``, the update from the engine's
  ``csae_flat_step_*``, and the single autoencoder's rules around them.
"""

import warnings
from typing import Any, NamedTuple, Optional

import numpy as np

from csae import _engine
from csae._warnings import TrainingDivergedWarning, TrainingInterruptedWarning, \
    convergence_warning
from csae.solvers import flat
from csae.solvers.lbfgs import lbfgs

__all__ = ["FineTuned", "ValidationMonitor", "fine_tune", "fit_lbfgs", "flat_layers",
           "unflatten", "sizes_of"]

# The solvers of fine-tuning (the values of the classifier's ``solver``).
SOLVERS = ("lbfgs", "adam", "sgd")


def flat_layers(layers):
    return [a for layer in layers for a in layer]


def unflatten(arrays):
    return [(arrays[i], arrays[i + 1]) for i in range(0, len(arrays), 2)]


def sizes_of(layers, n_features):
    return [n_features] + [W.shape[0] for W, _ in layers]


def _theta(layers, dtype):
    """The engine's flat vector: each layer's W (row-major), then its b."""
    return np.concatenate([a.ravel() for a in flat_layers(layers)]).astype(dtype)


def _layers_of(theta, like):
    """``theta`` cut into arrays shaped like the layers ``like`` (copies)."""
    out, at = [], 0
    for W, b in like:
        w = theta[at:at + W.size].reshape(W.shape).copy()
        at += W.size
        out.append((w, theta[at:at + b.size].copy()))
        at += b.size
    return out


class FineTuned(NamedTuple):
    """What fine-tuning leaves (``layers`` None: it diverged, nothing to keep)."""

    layers: Optional[list]
    loss_curve: list
    validation_curve: Any = None     # with early stopping, one value per iteration (epoch)
    best_iteration: Optional[int] = None


def fine_tune(pretrained, X, y, s, validation, say, stacklevel):
    """Fine-tune ``pretrained`` on the prepared rows X (labels y) by
    ``s["solver"]``; ``validation``: the held-out (X, y) of early stopping,
    or None."""
    if s["solver"] == "lbfgs":
        monitor = None if validation is None else ValidationMonitor(*validation, pretrained, s)
        layers, curve = fit_lbfgs(pretrained, X, y, s, s["max_iter"], say=say, monitor=monitor,
                                  stacklevel=stacklevel + 1)
        if monitor is None:
            return FineTuned(layers, curve)
        # The best validation iteration's weights; loss_curve_ and n_iter_
        # still count every iteration run (scikit-learn's MLP convention, as
        # SparseAutoencoder's).
        return FineTuned(monitor.best_layers, curve, monitor.curve, monitor.best_iteration)
    return _fit_minibatch(pretrained, X, y, s, validation, stacklevel + 1)


def fit_lbfgs(layers, X, y, s, max_iter, say=None, monitor=None, stacklevel=3):
    """L-BFGS on the deep objective from ``layers``; (layers, curve)."""
    sizes = sizes_of(layers, X.shape[1])
    evaluator = _engine.DeepEvaluator(sizes, X, y, lam=s["alpha"], n_threads=s["n_threads"])

    def report(it, loss, params):
        stop = monitor is not None and monitor.update(it, params)
        if s["verbose"] and say is not None:
            extra = "" if monitor is None else f", validation {monitor.curve[-1]:.6g}"
            say(f"  iteration {it}: objective {loss:.6g}{extra}")
        return stop
    result = lbfgs(evaluator, flat_layers(layers), max_iter=max_iter,
                   max_fun=max(15000, 2 * max_iter), tol=s["tol"],
                   on_iteration=report if (s["verbose"] or monitor) else None,
                   n_threads=s["n_threads"])
    if result.interrupted:
        warnings.warn("training interrupted by Ctrl-C: the model keeps the last "
                      "L-BFGS iterate", TrainingInterruptedWarning, stacklevel=stacklevel)
    elif (result.n_iter >= max_iter and not result.converged and not result.stopped
          and say is not None):
        warnings.warn(f"fine-tuning reached max_iter={max_iter} before L-BFGS converged; "
                      "raise max_iter to train further", convergence_warning(),
                      stacklevel=stacklevel)
    return unflatten(list(result.params)), list(result.loss_curve)


class ValidationMonitor:
    """Early stopping of L-BFGS fine-tuning: the validation cross-entropy
    after each iteration, the best weights so far, and when to stop."""

    def __init__(self, X, y, start, s):
        self.X, self.y, self.patience = X, y, s["n_iter_no_change"]
        self.n_threads = s["n_threads"]
        self.best_layers = start
        self.best = self._loss(start)
        self.best_iteration = 0
        self.curve = []

    def _loss(self, layers):
        return _engine.deep_objective_and_gradients(list(layers), self.X, self.y, lam=0.0,
                                                    n_threads=self.n_threads,
                                                    need_gradients=False)[0]

    def update(self, iteration, params):
        """Record iteration ``iteration`` (flat params, valid during the
        call only); True to stop."""
        layers = [(np.array(W), np.array(b)) for W, b in unflatten(list(params))]
        loss = self._loss(layers)
        self.curve.append(loss)
        if loss < self.best:
            self.best, self.best_layers, self.best_iteration = loss, layers, iteration
        return iteration - self.best_iteration >= self.patience


def _validation_objective(validation, sizes, s):
    """The validation cross-entropy (no weight decay) as a function of the
    flat vector, its workspace allocated once; None without early stopping."""
    if validation is None:
        return None
    Xv, yv = validation
    evaluator = _engine.DeepEvaluator(sizes, Xv, yv, lam=0.0, n_threads=s["n_threads"])
    grad = np.empty(evaluator.n_params, Xv.dtype)
    return lambda theta: evaluator.evaluate_rows(theta, grad, 0, Xv.shape[0])


def _fit_minibatch(pretrained, X, y, s, validation, stacklevel):
    """Adam or SGD epochs from ``pretrained``; a ``FineTuned``."""
    dtype, sizes = X.dtype, sizes_of(pretrained, X.shape[1])
    # The evaluator reads copies, which each shuffled epoch overwrites in
    # its order: one contiguous gather per epoch, no copy per minibatch.
    evaluator = _engine.DeepEvaluator(sizes, X.copy(), np.array(y, dtype=np.int64),
                                      lam=s["alpha"], n_threads=s["n_threads"])
    theta0 = _theta(pretrained, dtype)
    grad = np.empty_like(theta0)
    reference = evaluator.evaluate_rows(theta0, grad, 0, X.shape[0])
    hp = s["flat"]
    monitor = flat.FlatMonitor(X, hp, theta0,
                               validation=_validation_objective(validation, sizes, s),
                               reference=reference)
    result = flat.run(evaluator, theta0, X, y, hp, monitor, s["rng_state"], s["n_threads"],
                      stacklevel + 1)
    if result.status == "diverged":
        why, advice = result.message
        warnings.warn(TrainingDivergedWarning(
            f"fine-tuning with solver={hp.solver!r} diverged in epoch "
            f"{len(result.loss_curve) + 1}{why}; the classifier was left as it was before "
            f"this fit (a fresh one stays unfitted). Lower {advice}."),
            stacklevel=stacklevel)
        return FineTuned(None, list(result.loss_curve))
    layers = pretrained if result.theta is None else _layers_of(result.theta, pretrained)
    return FineTuned(layers, list(result.loss_curve), result.validation_curve,
                     result.best_epoch)
