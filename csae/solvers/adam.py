"""Minibatch Adam (Kingma and Ba, scikit-learn's convention), in the
engine (``csae_sgd_epoch`` with ``csae_solver.adam`` set)."""

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from csae.solvers._minibatch import MinibatchSolver, copies, snapshot, zeros
from csae.solvers.sgd import WEIGHT_NAMES

__all__ = ["Adam", "AdamState"]


@dataclass(frozen=True, eq=False)
class AdamState:
    """Adam's state between calls: the first and second moment estimates
    (one frozen array per weight, (W, b, Wd, bd) order and shapes) and the
    number of steps taken (the bias corrections' exponent)."""

    m: Tuple[np.ndarray, ...]
    v: Tuple[np.ndarray, ...]
    t: int

    # Model-file members (format version 3 on): m per weight, v per weight, t.
    M_NAMES = tuple("adam_m_" + name for name in WEIGHT_NAMES)
    V_NAMES = tuple("adam_v_" + name for name in WEIGHT_NAMES)
    FILE_NAMES = M_NAMES + V_NAMES + ("adam_t",)

    def arrays(self):
        return self.m + self.v

    @classmethod
    def read(cls, source, shapes):
        """The value a model file holds (None: none), through ``source``, the
        file reader's checked access (``csae._persist.StateSource``)."""
        if not source.all_or_none(cls.FILE_NAMES, "adam_m_*, adam_v_* and adam_t must be "
                                                  "all present or all absent"):
            return None
        m = tuple(source.array(name, s) for name, s in zip(cls.M_NAMES, shapes))
        v = tuple(source.array(name, s) for name, s in zip(cls.V_NAMES, shapes))
        if any((a < 0).any() for a in v):
            source.refuse("adam_v (second moments) must not be negative")
        return cls(m, v, source.count("adam_t"))


class Adam(MinibatchSolver):
    """Minibatch Adam; its moments start at zero on a model without them,
    and survive a switch to "sgd" and back (SGD leaves them alone)."""

    name = "adam"
    title = "Adam"
    State = AdamState

    @classmethod
    def state_in(cls, model_state):
        if model_state.adam_m is None or model_state.adam_v is None:
            return None
        return AdamState(model_state.adam_m, model_state.adam_v, int(model_state.adam_t))

    @classmethod
    def store(cls, model_state, state):
        if state is None:
            return model_state._replace(adam_m=None, adam_v=None, adam_t=0)
        return model_state._replace(adam_m=state.m, adam_v=state.v, adam_t=state.t)

    @classmethod
    def file_arrays(cls, model_state, dtype):
        state = cls.state_in(model_state)
        if state is None:
            return {}
        arrays = {name: np.ascontiguousarray(a, dtype=dtype)
                  for name, a in zip(AdamState.M_NAMES + AdamState.V_NAMES,
                                     state.m + state.v)}
        arrays["adam_t"] = np.array(state.t, dtype=np.int64)
        return arrays

    def __init__(self, hp, start):
        super().__init__(hp, start)
        saved = self.state_in(start)
        if saved is None:
            self.m = zeros(start.params, hp.dtype)
            self.v = zeros(start.params, hp.dtype)
            self.t = 0
        else:
            self.m, self.v = copies(saved.m, hp.dtype), copies(saved.v, hp.dtype)
            self.t = saved.t

    def engine_keywords(self):
        hp = self.hp
        return dict(solver="adam", beta_1=hp.beta_1, beta_2=hp.beta_2, epsilon=hp.epsilon,
                    adam_m=self.m, adam_v=self.v, adam_t=self.t)

    def advance(self, n_batches):
        self.t += n_batches

    def state(self):
        return AdamState(snapshot(self.m), snapshot(self.v), self.t)
