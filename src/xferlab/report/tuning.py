"""Optuna studies as seen in MLflow: one parent run per study (``xferlab.role=study``),
one child run per trial (``xferlab.role=trial``, ``mlflow.parentRunId`` or the same
``xferlab.study_uid``).

The table is built from the run frame alone, so the report needs neither optuna nor the
study storage: trial states come from the trial tag when the tuner wrote one, else from
the run status (FINISHED = COMPLETE, KILLED with ``xferlab.pruned`` = PRUNED, FAILED or
KILLED = FAIL). The best trial is the parent's record when present, else the COMPLETE
trial with the best value of the study's metric; its searched parameters are the params
that vary across the study's trials. The tuner's record on the parent (metric
``best_value``, tags ``xferlab.best_trial`` and ``xferlab.best.<key>``, metrics
``trials_<state>`` counted in the Optuna storage) wins when present: the report never
opens the Optuna storage itself.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from xferlab.report.query import column, metric

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def first_of(frame: pd.DataFrame, names: tuple[str, ...], default: object = None) -> pd.Series:
    """The first non-missing of several possible columns (tag or param spellings)."""
    out = pd.Series(default, index=frame.index, dtype=object)
    for name in reversed(names):
        values = column(frame, name)
        out = values.where(values.notna(), out)
    return out


def trial_state(trials: pd.DataFrame) -> pd.Series:
    pruned = column(trials, "tags.xferlab.pruned").astype(str).str.lower() == "true"
    status = column(trials, "status").astype(str)
    derived = np.select([status == "FINISHED", pruned, status.isin(["FAILED", "KILLED"]), status == "RUNNING"],
                        ["COMPLETE", "PRUNED", "FAIL", "RUNNING"], "FAIL")
    tagged = first_of(trials, ("tags.xferlab.trial_state", "tags.xferlab.state"))
    return tagged.where(tagged.notna(), pd.Series(derived, index=trials.index)).astype(str).str.upper()


def first_value(row: pd.Series, names: tuple[str, ...], default: object = None) -> object:
    """:func:`first_of` for one run (a row of the frame)."""
    for name in names:
        value = row.get(name)
        if value is not None and not (isinstance(value, float) and np.isnan(value)) and value is not pd.NA:
            return value
    return default


def _searched(trials: pd.DataFrame) -> list[str]:
    cols = [c for c in trials.columns if c.startswith("params.") and c != "params.seed"]
    counts = trials[cols].nunique(dropna=True)  # params are text: one vectorised count per column
    return [c for c in cols if counts[c] > 1]


def _best(parent: pd.Series, trials: pd.DataFrame, metric_name: str, direction: str) -> dict[str, object]:
    done = trials[trials["state"] == "COMPLETE"]
    values = metric(done, metric_name) if metric_name else pd.Series(dtype=float)
    best: dict[str, object] = {"best_value": np.nan, "best_trial": "", "best_params": ""}
    if values.notna().any():
        idx = values.idxmax() if direction == "maximize" else values.idxmin()
        row = done.loc[idx]
        params = {c[len("params."):]: row[c] for c in _searched(trials)}
        best.update(best_value=float(values[idx]), best_params=json.dumps(params, default=str),
                    best_trial=str(first_value(row, ("tags.xferlab.trial", "tags.xferlab.trial_number"),
                                               row.get("run_name", ""))))
    recorded = parent.get("metrics.best_value")
    if recorded is not None and pd.notna(recorded):  # the tuner's own record (xferlab.tuning.summary)
        best["best_value"] = float(recorded)
        stored = {str(k)[len("tags.xferlab.best."):]: v for k, v in parent.items()
                  if str(k).startswith("tags.xferlab.best.") and pd.notna(v)}
        if stored:
            best["best_params"] = json.dumps(stored, default=str)
        trial = parent.get("tags.xferlab.best_trial")
        if trial is not None and pd.notna(trial):
            best["best_trial"] = str(trial)
    return best


def optuna_counts(parent: pd.Series) -> str:
    """The counts the tuner logged from the Optuna storage (metrics ``trials_<state>``)."""
    found = {k[len("metrics.trials_"):]: v for k, v in parent.items()
             if str(k).startswith("metrics.trials_") and pd.notna(v) and v}
    return ", ".join(f"{k} {int(v)}" for k, v in found.items())


def study_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per study: metric, direction, trials by state, best value, best trial and params."""
    parents = frame[column(frame, "tags.xferlab.role") == "study"]
    children = frame[column(frame, "tags.xferlab.role") == "trial"]
    used = [c for c in children.columns if c.startswith(("params.", "metrics.", "tags.xferlab.trial"))
            or c in ("run_id", "run_name", "tags.mlflow.parentRunId", "tags.xferlab.study_uid")]
    children = children[used].assign(state=trial_state(children))  # narrow: each study below copies its rows
    parent_col = column(children, "tags.mlflow.parentRunId")
    uid_col = column(children, "tags.xferlab.study_uid")
    rows = []
    for _, parent in parents.sort_values("start_time").iterrows() if len(parents) else ():
        uid = parent.get("tags.xferlab.study_uid")
        trials = children[(parent_col == parent["run_id"]) | (uid_col == uid if pd.notna(uid) else False)]
        name = first_value(parent, ("tags.xferlab.study", "params.study", "run_name"))
        metric_name = first_value(parent, ("tags.xferlab.metric", "params.metric"), "")
        direction = str(first_value(parent, ("tags.xferlab.direction", "params.direction"), "minimize")).lower()
        row = {"study": name, "experiment": parent.get("experiment"), "parent_run": parent["run_id"],
               "metric": metric_name, "direction": direction, "trials": int(len(trials))}
        row.update({s: int((trials["state"] == s).sum()) for s in STATES})
        row.update(_best(parent, trials, str(metric_name or ""), direction))
        row["optuna_counts"] = optuna_counts(parent)
        rows.append(row)
    return pd.DataFrame(rows, columns=["study", "experiment", "parent_run", "metric", "direction", "trials",
                                       *STATES, "best_value", "best_trial", "best_params", "optuna_counts"])
