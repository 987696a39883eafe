"""One training instance = one MLflow run, closed with the right status whatever happens.

The run is a context manager built on :class:`MlflowClient` (not the fluent
``mlflow.start_run`` stack), so several runs, parent runs and worker processes never
share hidden global state. Training code sees only the run's methods (``log_epoch`` is an
epoch-end callback) and never imports mlflow.

Status on exit: FINISHED on success; FAILED with ``error.txt``/``traceback.txt`` and tag
``xferlab.error`` on an exception; KILLED on ``KeyboardInterrupt`` or SIGTERM
(:class:`~xferlab.tracking.signals.Terminated`); KILLED with ``xferlab.pruned=true`` when a
tuner prunes the trial. A run is never FINISHED when the body raised, and a failed artifact
upload turns success into FAILED.
"""
from __future__ import annotations

import csv
import getpass
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Mapping

import yaml
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import (MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_SOURCE_NAME,
                                      MLFLOW_SOURCE_TYPE, MLFLOW_USER)
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from xferlab.errors import TrialPruned
from xferlab.spec import Instance
from xferlab.tracking import context, signals, store
from xferlab.tracking.claims import ClaimLost

ROLES = ("final", "trial", "pretrain", "smoke")
RUN_NAME_MAX = 100
_log = logging.getLogger("xferlab.tracking")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def param_value(value: Any) -> str:
    """Params are strings: scalars as ``str()`` (like ``mlflow.log_params``), containers as JSON."""
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return _clip(text, MAX_PARAM_VAL_LENGTH)


def _process_tags() -> dict[str, str]:
    """Who/where/what-code: set on every run (the reaper relies on host, pid, proc_start)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    tags = {MLFLOW_USER: user, MLFLOW_SOURCE_NAME: _clip(sys.argv[0] or "python", 500),
            MLFLOW_SOURCE_TYPE: "LOCAL", "xferlab.host": context.hostname(),
            "xferlab.pid": str(os.getpid())}
    start = context.process_start(os.getpid())
    if start:
        tags["xferlab.proc_start"] = start
    commit = context.git_commit()
    if commit:
        tags[MLFLOW_GIT_COMMIT] = tags["xferlab.git_commit"] = commit
    return tags


class TrackedRun:
    """An MLflow run opened on ``__enter__`` and closed with the right status on ``__exit__``."""

    def __init__(self, experiment: str, run_name: str, tags: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
                 files: Mapping[str, str] | None = None) -> None:
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.run_id = ""
        self.experiment_id = ""
        self.history: list[dict[str, float]] = []
        self.epoch_hooks: list[Callable[[int, dict[str, float]], None]] = []  # e.g. the tuner's pruner
        self._tags = {k: str(v) for k, v in (tags or {}).items()}
        self._params = dict(params or {})
        self._files = dict(files or {})
        self._dir: Path | None = None
        self._client = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "TrackedRun":
        self._client = store.get_client()
        self.experiment_id = store.get_experiment_id(self.experiment)
        tags = {**_process_tags(), **self._tags}
        if self.parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = self.parent_run_id
        tags = {k: _clip(v, MAX_TAG_VAL_LENGTH) for k, v in tags.items()}
        try:
            with signals.deferred():  # SIGTERM between create_run and run_id would orphan the run
                run = self._client.create_run(self.experiment_id, tags=tags, run_name=self.run_name)
                self.run_id = run.info.run_id
                self._dir = Path(tempfile.mkdtemp(prefix=f"xferlab-{self.run_id[:8]}-"))
            self.log_params(self._params)
            self._upload_start_files()
        except BaseException as exc:  # `with` calls no __exit__ when __enter__ raises: close here
            if self.run_id:
                self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        with signals.deferred():
            self._close(exc, tb)
        return False  # never swallow: the caller sees the original exception

    def _close(self, exc: BaseException | None, tb: TracebackType | None) -> None:
        status = _status_for(exc)
        if exc is not None:
            try:
                self._record_exception(exc, tb, status)
            except Exception as err:  # noqa: BLE001 - the status below matters more
                _log.error("run %s: could not record the error: %s", self.run_id, err)
        upload_error: Exception | None = None
        try:
            if self.history:
                self._write_history(self.artifact_dir / "history.csv")
            if any(self.artifact_dir.iterdir()):
                self._client.log_artifacts(self.run_id, str(self.artifact_dir))
        except Exception as err:  # noqa: BLE001 - recorded on the run, raised below
            upload_error = err
            _log.error("run %s: uploading artifacts failed: %s", self.run_id, err)
            if status == "FINISHED":
                status = "FAILED"
                self._safe_tags({"xferlab.error": _one_line(err, "artifact upload failed")})
        try:
            self._client.set_terminated(self.run_id, status)
        except Exception as err:  # noqa: BLE001 - `xferlab runs reap` will close it
            _log.error("run %s: could not set status %s (%s); it stays RUNNING until reaped",
                       self.run_id, status, err)
        shutil.rmtree(self.artifact_dir, ignore_errors=True)
        if upload_error is not None and exc is None:
            raise upload_error

    def _record_exception(self, exc: BaseException, tb: TracebackType | None, status: str) -> None:
        if isinstance(exc, TrialPruned):
            self._safe_tags({"xferlab.pruned": "true"})
            return
        if isinstance(exc, ClaimLost):  # another process runs this instance: no error to record
            self._safe_tags({"xferlab.claim": "lost"})
            return
        line = _one_line(exc)
        self._safe_tags({"xferlab.error": line})
        if status == "FAILED":
            (self.artifact_dir / "error.txt").write_text(line + "\n")
            text = "".join(traceback.format_exception(type(exc), exc, tb))
            (self.artifact_dir / "traceback.txt").write_text(text)

    def _upload_start_files(self) -> None:
        """``environment.json`` (+ e.g. ``spec.yaml``) are visible while the run is RUNNING."""
        files = {"environment.json": json.dumps(context.environment(), indent=2), **self._files}
        with tempfile.TemporaryDirectory(prefix="xferlab-start-") as tmp:
            for name, text in files.items():
                Path(tmp, name).write_text(text)
            self._client.log_artifacts(self.run_id, tmp)

    def _write_history(self, path: Path) -> None:
        columns = ["epoch"] + list(dict.fromkeys(k for row in self.history for k in row if k != "epoch"))
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.history)

    # -- logging ---------------------------------------------------------------------------
    @property
    def artifact_dir(self) -> Path:
        """A private temp dir; whatever is written here is uploaded when the run closes."""
        if self._dir is None:
            raise RuntimeError("the run has not started: use it as `with start_instance_run(...) as run`")
        return self._dir

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Epoch-end callback: metrics at step=epoch, one batch, plus a heartbeat for the reaper."""
        now = int(time.time() * 1000)
        values = {k: float(v) for k, v in metrics.items() if v is not None}
        self.history.append({"epoch": int(epoch), **values})
        self._client.log_batch(self.run_id, metrics=[Metric(k, v, now, int(epoch)) for k, v in values.items()],
                               tags=[RunTag("xferlab.heartbeat", str(now))])
        for hook in self.epoch_hooks:  # after logging, so a pruned epoch is still on record
            hook(int(epoch), values)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Final values (test_accuracy, best_epoch, ...), one batch."""
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        if batch:
            self._client.log_batch(self.run_id, metrics=batch)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params (stringified, clipped to MLflow's limit); a key cannot change once logged."""
        if params:
            self._client.log_batch(self.run_id, params=[Param(k, param_value(v)) for k, v in params.items()])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if tags:
            self._client.log_batch(self.run_id, tags=[RunTag(k, _clip(str(v), MAX_TAG_VAL_LENGTH))
                                                      for k, v in tags.items()])

    def _safe_tags(self, tags: Mapping[str, Any]) -> None:
        try:
            self.set_tags(tags)
        except Exception as err:  # noqa: BLE001 - closing must go on
            _log.error("run %s: could not set tags %s: %s", self.run_id, list(tags), err)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file (or directory) now."""
        self._client.log_artifact(self.run_id, str(path), artifact_path)


class InstanceRun(TrackedRun):
    """The run of one spec :class:`~xferlab.spec.Instance` (see :func:`start_instance_run`)."""

    def __init__(self, instance: Instance, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance = instance


def _status_for(exc: BaseException | None) -> str:
    if exc is None:
        return RunStatus.to_string(RunStatus.FINISHED)
    if isinstance(exc, Exception) and not isinstance(exc, (TrialPruned, ClaimLost)):
        return RunStatus.to_string(RunStatus.FAILED)
    return RunStatus.to_string(RunStatus.KILLED)  # interrupt, SIGTERM, pruned, SystemExit


def _one_line(exc: BaseException, default: str = "") -> str:
    text = " ".join(str(exc).split()) or default
    return _clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, 1000)


def run_name(instance: Instance) -> str:
    """``v2s/table2[ucr/Coffee,attrnn] s0``: spec, grid values (keys dropped), seed."""
    values = re.sub(r"(^|,)[\w.]+=", r"\1", instance.cell) if instance.cell != "default" else ""
    name = f"{instance.spec_name}[{values}] s{instance.seed}" if values else f"{instance.spec_name} s{instance.seed}"
    return _clip(name, RUN_NAME_MAX)


def instance_tags(instance: Instance, role: str) -> dict[str, str]:
    tags = {"xferlab.paper": instance.paper, "xferlab.spec": instance.spec_name,
            "xferlab.spec_path": instance.spec_path, "xferlab.spec_hash": instance.hash,
            "xferlab.cell": instance.cell, "xferlab.seed": str(instance.seed), "xferlab.role": role,
            "xferlab.dataset": instance.dataset, "xferlab.kind": instance.kind}
    if instance.table:
        tags["xferlab.table"] = instance.table
    if instance.select:
        tags["xferlab.select"] = ",".join(instance.select)
    return tags


def spec_yaml(instance: Instance) -> str:
    """The resolved config as YAML, headed by where it came from."""
    plain = json.loads(json.dumps(dict(instance.config), default=str))
    head = (f"# resolved spec {instance.spec_name} ({instance.spec_path})\n"
            f"# cell: {instance.cell}\n# seed: {instance.seed}\n# hash: {instance.hash}\n")
    return head + yaml.safe_dump(plain, sort_keys=False)


def start_instance_run(instance: Instance, role: str = "final", parent_run_id: str | None = None,
                       extra_tags: Mapping[str, Any] | None = None, name: str | None = None) -> InstanceRun:
    """The run of ``instance``; use as ``with start_instance_run(inst) as run: ...``."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {ROLES}")
    return InstanceRun(instance, experiment=instance.experiment, run_name=_clip(name, RUN_NAME_MAX) if name
                       else run_name(instance),
                       tags={**instance_tags(instance, role), **(extra_tags or {})},
                       params=instance.flat(), parent_run_id=parent_run_id,
                       files={"spec.yaml": spec_yaml(instance)})


def start_run(experiment: str, run_name: str, tags: Mapping[str, Any] | None = None,
              params: Mapping[str, Any] | None = None, parent_run_id: str | None = None) -> TrackedRun:
    """A run that is not an instance (e.g. an Optuna study's parent run), same lifecycle."""
    return TrackedRun(experiment, run_name, tags=tags, params=params, parent_run_id=parent_run_id)
