"""Optuna studies over experiment specs: the only package of xferlab that imports optuna.

- :mod:`studyspec`: study specs (``tuning/*.yaml``), validated; ``--set`` routing.
- :mod:`space`: search spaces over spec keys, their fingerprint (a resumed study keeps it).
- :mod:`storage`: sqlite (default) / PostgreSQL / journal storages, created once.
- :mod:`study`: create-or-resume with identity checks (direction, space, metric, base).
- :mod:`parent`: the study's MLflow parent run, found again by tag; pretraining first.
- :mod:`objective`: a trial = a runner instance run (role ``trial``), pruning per epoch.
- :mod:`liveness`: dead workers' trials failed, their runs closed, their parameters retried.
- :mod:`worker`: the budget loop, in-process or as K spawned processes.
- :mod:`summary`: best trial, counts and plots on the parent run; the closing lines.
- :mod:`cli`: ``xferlab tune`` (:func:`add_tune_parser`), importable without optuna.

Training code never imports optuna: it sees an epoch callback that may raise
:class:`xferlab.errors.TrialPruned`. MLflow is reached only through :mod:`xferlab.tracking`.
"""
from __future__ import annotations
