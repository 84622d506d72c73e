"""Every solver class, registered where it is defined.

L-BFGS clears the state of every other solver after its fit; reading the
list here, rather than the public ``csae.solvers.SOLVERS`` (whose module
imports ``lbfgs``), keeps the solver modules free of import circles.
"""

SOLVER_CLASSES = []


def register(cls):
    """Class decorator: add a solver class to ``SOLVER_CLASSES``."""
    SOLVER_CLASSES.append(cls)
    return cls
