"""Trials whose worker died: noticed, failed, retried, and their MLflow runs closed.

A worker killed with SIGKILL leaves its Optuna trial RUNNING (and its MLflow run RUNNING).
Two mechanisms notice it:

- Optuna's heartbeats (RDB storages): a trial without a heartbeat for ``grace_s`` is
  failed by the next worker that starts a trial, which calls our ``on_stale``;
- ownership attributes written by the objective (``xferlab.host``/``pid``/``proc_start``
  and, for journal storage, which has no heartbeats, a ``xferlab.beat`` timestamp):
  :func:`reap` fails a trial at once when its process is gone from this host, or after
  ``grace_s`` without a beat from another host.

``on_stale`` closes the trial's MLflow run FAILED (tag ``xferlab.trial_state=FAIL``) and
re-queues the trial's parameters with Optuna's ``RetryHeartbeatStaleTrialCallback``, so the
study still reaches its budget.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
import warnings
from datetime import datetime
from typing import Any, Iterator

from xferlab.tracking import context

HOST, PID, START = "xferlab.host", "xferlab.pid", "xferlab.proc_start"
OWNER, BEAT = "xferlab.owner_trial", "xferlab.beat"
OWNER_KEYS = (HOST, PID, START, OWNER, BEAT)
_log = logging.getLogger("xferlab.tuning")


@contextlib.contextmanager
def owned(trial: Any, beat_s: float | None) -> Iterator[None]:
    """Mark ``trial`` as run by this process; with ``beat_s``, refresh a beat attribute."""
    import os

    attrs = {HOST: context.hostname(), PID: os.getpid(), START: context.process_start(os.getpid()),
             OWNER: trial.number}
    if beat_s:  # journal storage: our own beat (RDB storages have Optuna's heartbeat instead)
        attrs[BEAT] = time.time()
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    stop = threading.Event()
    thread = None
    if beat_s:
        thread = threading.Thread(target=_beat, args=(trial, beat_s, stop), daemon=True, name="xferlab-beat")
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)


def _beat(trial: Any, beat_s: float, stop: threading.Event) -> None:
    while not stop.wait(beat_s):
        try:
            trial.storage.set_trial_user_attr(trial._trial_id, BEAT, time.time())
        except Exception as err:  # noqa: BLE001 - the trial may have just finished
            _log.debug("beat of trial %s: %s", trial.number, err)


def stale_reason(trial: Any, grace_s: float, now: float | None = None) -> str | None:
    """Why a RUNNING trial has no live worker, or None while it may be alive."""
    now = time.time() if now is None else now
    attrs = trial.user_attrs
    if attrs.get(OWNER) != trial.number:  # copied from a retried trial, or not written yet
        started = trial.datetime_start.timestamp() if isinstance(trial.datetime_start, datetime) else now
        return f"no worker took it for {now - started:.0f} s" if now - started > grace_s else None
    pid = attrs.get(PID)
    if attrs.get(HOST) == context.hostname() and isinstance(pid, int):
        if not context.pid_alive(pid, attrs.get(START)):
            return f"worker process {pid} on {attrs[HOST]} is gone"
        return None
    beat = attrs.get(BEAT)
    if isinstance(beat, (int, float)) and now - beat > grace_s:
        return f"no beat from {attrs.get(HOST)} for {now - beat:.0f} s"
    return None


def reap(study: Any, grace_s: float, on_stale: Any) -> list[int]:
    """Fail (and hand to ``on_stale``) every RUNNING trial without a live worker."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, grace_s)
        if reason is None:
            continue
        try:
            if not study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker got there first
        trial = copy.deepcopy(study._storage.get_trial(trial._trial_id))
        trial.user_attrs["xferlab.stale_reason"] = reason
        on_stale(study, trial)
        reaped.append(trial.number)
    return reaped


class StaleTrialHandler:
    """``heartbeat_stale_trial_callback``: close the MLflow run, re-queue the parameters."""

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        reason = trial.user_attrs.get("xferlab.stale_reason", "no heartbeat within the grace period")
        print(f"trial {trial.number}: its worker died ({reason}); marked FAIL"
              + (", parameters re-queued" if self.max_retry else ""), flush=True)
        try:
            from xferlab.tracking.studies import fail_trial_run

            uid = study.user_attrs.get("xferlab.uid")
            if uid:
                fail_trial_run(uid, trial.number, f"worker died: {reason}")
        except Exception as err:  # noqa: BLE001 - never break the worker that noticed it
            _log.warning("could not close the MLflow run of trial %s: %s", trial.number, err)
        retry = copy.deepcopy(trial)
        retry.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in OWNER_KEYS
                            and k not in ("xferlab.stale_reason", "mlflow_run_id")}
        if self.max_retry:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-class warning
                RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry)(study, retry)
