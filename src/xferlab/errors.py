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
