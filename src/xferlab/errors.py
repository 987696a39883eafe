"""Errors a user can act on.

Every problem caused by input (a spec, a path, a flag, a missing tool) is raised as a
``UserError``; the CLI prints its message on one line and exits with status 2. Anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""

    exit_code = 2


class TrialPruned(Exception):
    """Raised by an epoch callback to stop training early (the tuner turns it into Optuna's).

    Training code never imports optuna; it only lets this exception propagate.
    """


class Diverged(Exception):
    """Training produced no finite validation loss: the run must end FAILED, not FINISHED.

    Raised by the training loops (V2S and AT) when the validation loss is NaN or infinite
    at every epoch; the runner records it with its one-line message.
    """

    def __init__(self, what: str = "the validation loss") -> None:
        super().__init__(f"diverged: {what} was NaN or infinite at every epoch; lower the learning rate")
