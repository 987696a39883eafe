"""MLflow side of Optuna studies: a long-lived parent run per study and its trial children.

A study's parent run outlives any one process: it is created by the process that creates
the study, found again by tag (``xferlab.study_uid``) when the study is resumed or joined by
workers on other machines, and its status follows the study (RUNNING while trials run,
FINISHED when the budget is spent). It is therefore not a context manager like
:class:`~xferlab.tracking.runs.TrackedRun` but a run id that these functions act on.
Trials are ordinary instance runs (``role=trial``) that name it as their parent.

The tuner (:mod:`xferlab.tuning`) calls only these functions: it never imports mlflow.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from xferlab.tracking import context, queries, store
from xferlab.tracking.runs import _clip, _process_tags, param_value

STUDY_UID = "xferlab.study_uid"
TRIAL_NUMBER = "xferlab.trial_number"
TRIAL_STATE = "xferlab.trial_state"


@dataclass(frozen=True)
class RunRef:
    """What the tuner needs to know about a run, without MLflow types."""

    run_id: str
    status: str
    parent_run_id: str | None
    tags: Mapping[str, str]


def _ref(run: Any) -> RunRef:
    tags = dict(run.data.tags)
    return RunRef(run.info.run_id, run.info.status, tags.get(MLFLOW_PARENT_RUN_ID), tags)


def create_run(experiment: str, run_name: str, tags: Mapping[str, Any], params: Mapping[str, Any],
               parent_run_id: str | None = None) -> str:
    """A RUNNING run that stays open after this call (closed later with :func:`set_status`)."""
    client = store.get_client()
    all_tags = {**_process_tags(), **{k: str(v) for k, v in tags.items()}}
    if parent_run_id:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    all_tags = {k: _clip(v, MAX_TAG_VAL_LENGTH) for k, v in all_tags.items()}
    run = client.create_run(store.get_experiment_id(experiment), tags=all_tags, run_name=run_name)
    run_id = run.info.run_id
    if params:
        client.log_batch(run_id, params=[Param(k, param_value(v)) for k, v in params.items()])
    log_text(run_id, "environment.json", json.dumps(context.environment(), indent=2))
    return run_id


def find_by_tag(key: str, value: str, experiment: str | None = None) -> list[RunRef]:
    """Active runs carrying ``key=value``, oldest first."""
    query = f"tags.`{key}` = {queries.quote(value)}"
    runs = queries.iter_runs(query, experiment, ["attributes.start_time ASC"])
    return [_ref(r) for r in runs]


def get_run(run_id: str) -> RunRef | None:
    """The run, or None when it does not exist or was deleted."""
    try:
        run = store.get_client().get_run(run_id)
    except Exception:  # noqa: BLE001 - mlflow raises RESOURCE_DOES_NOT_EXIST as MlflowException
        return None
    return None if run.info.lifecycle_stage != "active" else _ref(run)


def set_status(run_id: str, status: str) -> None:
    """RUNNING re-opens a run (a resumed study); FINISHED/FAILED/KILLED close it."""
    client = store.get_client()
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.from_string(status)))


def set_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    if tags:
        store.get_client().log_batch(run_id, tags=[RunTag(k, _clip(str(v), MAX_TAG_VAL_LENGTH))
                                                   for k, v in tags.items()])


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
    if batch:
        store.get_client().log_batch(run_id, metrics=batch)


def log_files(run_id: str, directory: str | Path) -> None:
    """Upload every file of ``directory`` (same names overwrite earlier uploads)."""
    store.get_client().log_artifacts(run_id, str(directory))


def log_text(run_id: str, name: str, text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="xferlab-study-") as tmp:
        Path(tmp, name).write_text(text)
        log_files(run_id, tmp)


def trial_runs(study_uid: str, experiment: str | None = None) -> list[RunRef]:
    """Every trial run of a study (any status), oldest first."""
    return [r for r in find_by_tag(STUDY_UID, study_uid, experiment) if r.tags.get("xferlab.role") == "trial"]


def fail_trial_run(study_uid: str, number: int, reason: str, experiment: str | None = None,
                   only_running: bool = True) -> list[str]:
    """Mark the run(s) of a failed trial FAILED with state FAIL and the reason: the RUNNING
    ones of a worker that died, or (``only_running=False``) one that was just terminated."""
    closed = []
    for ref in trial_runs(study_uid, experiment):
        if ref.tags.get(TRIAL_NUMBER) == str(number) and (ref.status == "RUNNING" or not only_running):
            set_tags(ref.run_id, {TRIAL_STATE: "FAIL", "xferlab.error": reason, "xferlab.reaped": "true"})
            set_status(ref.run_id, "FAILED")
            closed.append(ref.run_id)
    return closed
