"""Questions asked of the store: has this instance finished already? which runs are orphans?

MLflow filters are AND-only, so "across experiments" means passing every experiment id,
and anything more complex is filtered in Python after a narrow query.
"""
from __future__ import annotations

import time
from typing import Iterable, Iterator

from mlflow import MlflowClient
from mlflow.entities import Run, RunTag, ViewType

from xferlab.tracking import context, store

PAGE = 1000


def quote(value: str) -> str:
    """A string literal for an MLflow filter."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def experiment_ids(client: MlflowClient, experiment: str | None = None) -> list[str]:
    """The id of ``experiment`` ([] if it does not exist), or of every active experiment."""
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        return [exp.experiment_id] if exp is not None and exp.lifecycle_stage == "active" else []
    ids: list[str] = []
    token = None
    while True:
        page = client.search_experiments(ViewType.ACTIVE_ONLY, max_results=PAGE, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids


def iter_runs(filter_string: str, experiment: str | None = None,
              order_by: list[str] | None = None) -> Iterator[Run]:
    """All active runs matching ``filter_string``, page by page."""
    client = store.get_client()
    ids = experiment_ids(client, experiment)
    if not ids:
        return
    token = None
    while True:
        page = client.search_runs(ids, filter_string, ViewType.ACTIVE_ONLY, PAGE, order_by, token)
        yield from page
        token = page.token
        if not token:
            return


def find_finished(spec_hash: str, experiment: str | None = None, role: str | None = None) -> str | None:
    """The newest FINISHED run of this spec hash (optionally of one role), else None."""
    run = _newest_finished(spec_hash, experiment, role)
    return run.info.run_id if run else None


def _newest_finished(spec_hash: str, experiment: str | None, role: str | None) -> Run | None:
    query = f"tags.`xferlab.spec_hash` = {quote(spec_hash)} and attributes.status = 'FINISHED'"
    if role is not None:
        query += f" and tags.`xferlab.role` = {quote(role)}"
    client = store.get_client()
    ids = experiment_ids(client, experiment)
    if not ids:
        return None
    runs = client.search_runs(ids, query, ViewType.ACTIVE_ONLY, 1, ["attributes.start_time DESC"])
    return runs[0] if runs else None


def finished_runs(spec_hashes: Iterable[str], experiment: str | None = None,
                  role: str | None = None) -> dict[str, Run]:
    """{spec_hash: newest FINISHED run} for many hashes at once (the runner's plan step).

    A handful of hashes are looked up one by one (~0.02 s each); more are answered by one
    scan of all FINISHED xferlab runs (3000 runs load in ~4 s), since filters cannot OR.
    """
    wanted = set(spec_hashes)
    if len(wanted) <= 20:
        found = {h: _newest_finished(h, experiment, role) for h in wanted}
        return {h: run for h, run in found.items() if run}
    query = "attributes.status = 'FINISHED' and tags.`xferlab.spec_hash` LIKE '%'"
    if role is not None:
        query += f" and tags.`xferlab.role` = {quote(role)}"
    out: dict[str, Run] = {}
    for run in iter_runs(query, experiment, ["attributes.start_time DESC"]):
        spec_hash = run.data.tags.get("xferlab.spec_hash")
        if spec_hash in wanted and spec_hash not in out:
            out[spec_hash] = run
    return out


def _last_sign_of_life(run: Run) -> float:
    """Seconds since epoch of the start or the latest epoch heartbeat, whichever is later."""
    beat = run.data.tags.get("xferlab.heartbeat", "")
    last = max(run.info.start_time or 0, int(beat) if beat.isdigit() else 0)
    return last / 1000.0


def orphan_reason(run: Run, grace_seconds: float, now: float | None = None) -> str | None:
    """Why a RUNNING xferlab run has no live owner, or None if it may still be alive.

    On this host the owner's pid decides (and its start time, against pid reuse); for runs
    from other hosts only time can tell: no heartbeat for ``grace_seconds``.
    """
    tags = run.data.tags
    now = time.time() if now is None else now
    pid = tags.get("xferlab.pid", "")
    if tags.get("xferlab.host") == context.hostname() and pid.isdigit():
        if not context.pid_alive(int(pid), tags.get("xferlab.proc_start")):
            return f"process {pid} on {tags['xferlab.host']} is gone"
        return None
    idle = now - _last_sign_of_life(run)
    if idle > grace_seconds:
        return f"no sign of life for {idle:.0f} s (grace {grace_seconds:.0f} s)"
    return None


def reap(grace_seconds: float = 3600) -> list[str]:
    """Mark orphaned RUNNING xferlab runs FAILED (tag ``xferlab.reaped=true``); return their ids.

    Only runs that carry ``xferlab.host`` are considered: the store may hold other tools' runs.
    """
    client = store.get_client()
    reaped: list[str] = []
    for run in list(iter_runs("attributes.status = 'RUNNING'")):
        if "xferlab.host" not in run.data.tags:
            continue
        reason = orphan_reason(run, grace_seconds)
        if reason is None:
            continue
        client.log_batch(run.info.run_id, tags=[RunTag("xferlab.reaped", "true"),
                                                RunTag("xferlab.error", f"reaped: {reason}")])
        client.set_terminated(run.info.run_id, "FAILED")
        reaped.append(run.info.run_id)
    return reaped


def download_artifact(run_id: str, path: str, dst: str | None = None) -> str:
    """A local copy of one artifact of a run (e.g. the source sample of a pretraining run)."""
    import tempfile

    from mlflow.artifacts import download_artifacts

    from xferlab.errors import UserError

    try:
        return download_artifacts(run_id=run_id, artifact_path=path,
                                  dst_path=dst or tempfile.mkdtemp(prefix="xferlab-art-"))
    except Exception as exc:  # noqa: BLE001 - mlflow raises several types for a missing file
        raise UserError(f"run {run_id} has no artifact {path!r} ({type(exc).__name__}): "
                        "re-run the run that should have logged it") from None


def get_run(run_id: str) -> Run:
    """The run ``run_id`` of the current store, or a one-line error naming the store."""
    from xferlab.errors import UserError
    from xferlab.tracking.store import get_client, tracking_uri

    try:
        return get_client().get_run(run_id)
    except Exception:  # noqa: BLE001 - mlflow raises several types for an unknown id
        raise UserError(f"no run {run_id!r} in {tracking_uri()}: check the id (the MLflow UI lists them) "
                        "and MLFLOW_TRACKING_URI") from None


def log_artifacts(run_id: str, local_dir: str, artifact_path: str) -> None:
    """Add the files of ``local_dir`` to a (finished) run's artifacts under ``artifact_path``."""
    from xferlab.tracking.store import get_client

    get_client().log_artifacts(run_id, local_dir, artifact_path)
