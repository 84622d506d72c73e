"""What every solver class has, and the list of them.

A class that extends ``Solver`` and sets ``name`` is registered in
``SOLVER_CLASSES`` as it is defined.  L-BFGS clears the state of every
other solver after its fit by reading that list, rather than the public
``csae.solvers.SOLVERS`` (whose module imports ``lbfgs``), which keeps the
solver modules free of import circles.
"""

from typing import Optional

SOLVER_CLASSES: list = []


class Solver:
    """A solver's class: its ``solver=`` value (``name``), its name in
    messages (``title``), what an epoch is (``unit``), whether it steps on
    the whole data at once (``full_batch``) and the class of the state value
    it keeps between calls (``State``, None when it keeps none).  The
    defaults below are a stateless solver's: a ``ModelState``, a pickle
    and a model file carry nothing for it."""

    name: str
    title: str
    unit = "epoch"
    full_batch = False
    State: Optional[type] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            SOLVER_CLASSES.append(cls)

    def __init__(self, hp, start):
        """A run's working copy of the state value ``start`` carries."""
        self.hp = hp

    @classmethod
    def state_in(cls, model_state):
        """This solver's state value in ``model_state`` (None: none)."""
        return None

    @classmethod
    def store(cls, model_state, state):
        """``model_state`` carrying ``state`` (None: this solver's fields cleared)."""
        return model_state

    @classmethod
    def file_arrays(cls, model_state, dtype):
        """The model-file members for this solver's state in ``model_state``."""
        return {}
