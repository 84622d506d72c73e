"""Minibatch SGD with momentum, in the engine (``csae_sgd_epoch``)."""

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from csae.solvers._minibatch import MinibatchSolver, copies, snapshot, zeros

__all__ = ["SGD", "MomentumState"]

# The model file's names of the four weights, in (W, b, Wd, bd) order.
WEIGHT_NAMES = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")


@dataclass(frozen=True, eq=False)
class MomentumState:
    """SGD's state between calls: the momentum velocities, one frozen array
    per weight, (W, b, Wd, bd) order and shapes."""

    velocity: Tuple[np.ndarray, ...]

    # Model-file members, one per weight (format version 1 on).
    FILE_NAMES = tuple("velocity_" + name for name in WEIGHT_NAMES)

    def arrays(self):
        return self.velocity

    @classmethod
    def read(cls, source, shapes):
        """The value a model file holds (None: none), through ``source``, the
        file reader's checked access (``csae._persist.StateSource``)."""
        if not source.all_or_none(cls.FILE_NAMES, "velocity fields must be all present or "
                                                  "all absent"):
            return None
        return cls(tuple(source.array(name, s) for name, s in zip(cls.FILE_NAMES, shapes)))


class SGD(MinibatchSolver):
    """Minibatch SGD; with ``momentum > 0`` it keeps a velocity per weight
    (a ``MomentumState``), zeros at the start of a model."""

    name = "sgd"
    title = "SGD"
    State = MomentumState

    @classmethod
    def state_in(cls, model_state):
        v = model_state.velocity
        return None if v is None else MomentumState(v)

    @classmethod
    def store(cls, model_state, state):
        return model_state._replace(velocity=None if state is None else state.velocity)

    @classmethod
    def file_arrays(cls, model_state, dtype):
        state = cls.state_in(model_state)
        if state is None:
            return {}
        return {name: np.ascontiguousarray(a, dtype=dtype)
                for name, a in zip(MomentumState.FILE_NAMES, state.velocity)}

    def __init__(self, hp, start):
        super().__init__(hp, start)
        saved = self.state_in(start)
        self._velocity = None
        if hp.momentum > 0:
            self._velocity = (copies(saved.velocity, hp.dtype) if saved is not None
                              else zeros(start.params, hp.dtype))

    def velocity(self):
        return self._velocity

    def state(self):
        # Without momentum there is nothing to keep: a velocity saved by an
        # earlier fit with momentum is dropped.
        return None if self._velocity is None else MomentumState(snapshot(self._velocity))
