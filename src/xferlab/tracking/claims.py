"""Grid sharing: independent ``xferlab run`` processes (on one or many machines) pointed at
the same tracking store each take instances that nobody has taken yet.

The claim is the instance's own run, so no extra table or service is needed and it works
on every store (sqlite, PostgreSQL, an ``mlflow server``):

1. the run is created RUNNING with tag ``xferlab.claim=pending``;
2. the active runs of the same spec hash are listed;
3. another FINISHED run of the same role (unless ``--force``, or it loaded another version
   of a registered model than this run will: :mod:`lineage`) or a live RUNNING one that
   won its claim (or predates claims) means the instance is taken: this run is deleted, the instance skipped;
4. another live *pending* claim means a race: both delete their runs, back off for a random
   time and try again;
5. otherwise the claim is won (tag ``won``) and training starts.

Why at most one process wins, without trusting clocks: a process wins only if its listing
(after its own creation) shows no other claim. For two processes A and B to both win,
A's listing would precede B's creation and B's listing A's creation, while each creation
precedes its own listing: a cycle. The store is a single database, so the order is real.
Both may lose a race (each sees the other pending); the random back-off resolves it.

A claim whose owner died is not honoured forever: RUNNING runs pass through
:func:`~xferlab.tracking.queries.orphan_reason` (pid on this host, heartbeat elsewhere) and
a pending claim older than :data:`PENDING_TIMEOUT_S` is ignored.
"""
from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Run

from xferlab.tracking import queries, store
from xferlab.tracking.lineage import stale

CLAIM_TAG = "xferlab.claim"
PENDING, WON = "pending", "won"
PENDING_TIMEOUT_S = 120.0  # a claim is decided in well under a second
ORPHAN_GRACE_S = 3600.0  # as `xferlab runs reap`: a foreign RUNNING run without heartbeat


class ClaimLost(Exception):
    """This process did not get the instance; ``retry`` when it was a tie, not a holder."""

    def __init__(self, holder: str, retry: bool) -> None:
        super().__init__(f"taken by run {holder}" if not retry else f"claim raced with run {holder}")
        self.holder = holder
        self.retry = retry


def hold(run: Any, role: str, count_finished: bool = True) -> None:
    """Decide the claim of ``run`` (a just-started instance run of ``role``); raise :class:`ClaimLost`.

    ``count_finished=False`` (``--force``) ignores FINISHED runs: only live claims block.
    """
    instance = run.instance
    contender = None
    now = time.time()
    others = (other for spec_hash in instance.hashes  # a run from before a hash scheme change counts too
              for other in queries.iter_runs(f"tags.`xferlab.spec_hash` = {queries.quote(spec_hash)}",
                                             instance.experiment))
    registers = _registers_a_model(instance)
    memo: dict[str, str | None] = {}  # registry lookups, made only if a FINISHED run of this role is found
    for other in others:
        if other.info.run_id == run.run_id:
            continue
        verdict = _judge(other, role, count_finished, now, any_role_running=registers)
        if verdict == "taken" and other.info.status == "FINISHED" and stale(other, instance, memo):
            verdict = None  # it loaded another model version than this run will: not this instance's result
        if verdict == "taken":
            raise ClaimLost(other.info.run_id, retry=False)
        if verdict == "pending":
            contender = other.info.run_id
    if contender is not None:
        raise ClaimLost(contender, retry=True)
    run.set_tags({CLAIM_TAG: WON})


def _registers_a_model(instance: Any) -> bool:
    """True for an instance whose run registers a model (a pretraining): two of those must
    never train at once, whatever their roles (a planned prerequisite and a direct run)."""
    from xferlab.kinds import get_kind

    try:
        return get_kind(instance.kind).registers(instance) is not None
    except Exception:  # noqa: BLE001 - an instance of another tool's kind: roles alone decide
        return False


def _judge(other: Run, role: str | None, count_finished: bool, now: float,
           any_role_running: bool = False) -> str | None:
    """taken | pending | None (no obstacle) for another run of the same instance."""
    status, tags = other.info.status, other.data.tags
    other_role = tags.get("xferlab.role", "final")
    if other_role != role and not (any_role_running and status == "RUNNING"):
        return None  # a trial or a pretraining never stands in for a final run
    if status == "FINISHED":
        return "taken" if count_finished else None
    if status != "RUNNING":
        return None
    if tags.get(CLAIM_TAG) == PENDING:
        fresh = now - (other.info.start_time or 0) / 1000.0 < PENDING_TIMEOUT_S
        return "pending" if fresh and _alive(other, now) else None
    return "taken" if _alive(other, now) else None


def _alive(other: Run, now: float) -> bool:
    if "xferlab.host" not in other.data.tags:
        return True  # another tool's run: no way to tell, respect it
    return queries.orphan_reason(other, ORPHAN_GRACE_S, now) is None


def discard(run_id: str) -> None:
    """Delete a losing claim's run (soft delete: `mlflow gc` purges it)."""
    try:
        store.get_client().delete_run(run_id)
    except Exception:  # noqa: BLE001 - a leftover KILLED run is harmless
        pass
