"""Exceptions shared by both backends and the estimator."""


class NonFiniteError(FloatingPointError):
    """Training met a non-finite objective or gradient.

    The update that would have made the parameters non-finite was not
    applied: the parameters keep their last finite values.  ``batch`` is the
    0-based index, within the epoch, of the minibatch that failed (None when
    unknown).
    """

    def __init__(self, message, batch=None):
        super().__init__(message)
        self.batch = batch
