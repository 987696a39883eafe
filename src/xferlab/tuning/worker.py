"""Workers: processes that take trials of one study until its budget is spent.

A worker needs nothing but the study spec, the storage URL and the parent run id, so the
same loop runs in-process (``--workers 1``), in K local processes (``--workers K``) or in
independent ``xferlab tune`` processes on other machines.

The budget is study-wide: ``n_trials`` COMPLETE + PRUNED trials across every worker
(failed trials do not count, but at most ``max(3, n_trials)`` failures are tolerated; a
trial whose worker died is re-queued and does not count as a failure). Before each
trial a worker fails the trials of dead workers (:mod:`xferlab.tuning.liveness`), then
starts a trial only if a re-queued trial waits or finished + running trials leave room;
otherwise it waits for the running ones, so a trial whose worker dies is re-run. Two
workers may still start trials at the same instant: the later-numbered one sees that the
earlier trials fill the budget and stands down before it runs (a FAIL marked surplus,
counted neither as done nor as a failure), so the budget is reached exactly.

Every worker says why it stopped (budget reached, timeout, every trial failed, an error,
interrupted, ...): a spawned worker sends its reason back on a queue, and one that died
without a word is described by its exit status, so the closing line of ``xferlab tune``
names each worker's reason instead of guessing.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

POLL_S = 2.0
BUDGET_REACHED, TIMEOUT, GRID_EXHAUSTED, INTERRUPTED = "budget reached", "timeout", "grid exhausted", "interrupted"


@dataclass(frozen=True)
class Plan:
    """Everything a worker process needs (picklable)."""

    spec_path: str
    overrides: tuple[str, ...]
    n_trials: int | None
    timeout_s: float | None
    storage_url: str | None
    parent_run_id: str
    index: int | None
    seed: int | None
    deadline: float | None  # time.time() after which no trial starts


def work(plan: Plan) -> str:
    """Run trials until the budget, the deadline or too many failures; say which."""
    import optuna

    from xferlab.tuning import study as st
    from xferlab.tuning.liveness import StaleTrialHandler
    from xferlab.tuning.objective import Objective
    from xferlab.tuning.storage import open_storage, resolve
    from xferlab.tuning.studyspec import load_study_spec, with_budget

    quiet_optuna()
    spec = with_budget(load_study_spec(plan.spec_path, plan.overrides), plan.n_trials, plan.timeout_s)
    ref = resolve(plan.storage_url)
    handler = StaleTrialHandler(spec.max_retry)
    storage = open_storage(ref, spec.heartbeat_s, spec.grace_s, handler)
    study = optuna.load_study(study_name=spec.study, storage=storage, sampler=st.build_sampler(spec, plan.seed),
                              pruner=st.build_pruner(spec))
    objective = Objective(spec, plan.parent_run_id, study.user_attrs[st.UID],
                          beat_s=spec.heartbeat_s if ref.kind == "journal" else None, worker=plan.index)
    return loop(study, objective, spec, plan.deadline, handler)


def loop(study: Any, objective: Any, spec: Any, deadline: float | None, handler: Any) -> str:
    """The budget loop (see the module docstring)."""
    try:
        return _budget_loop(study, objective, spec, deadline, handler)
    finally:
        gc.unfreeze()  # a worker inside a longer-lived process (one worker, tests) hands its objects back


def _budget_loop(study: Any, objective: Any, spec: Any, deadline: float | None, handler: Any) -> str:
    from xferlab.tuning.liveness import reap
    from xferlab.tuning.objective import TrialFailed
    from xferlab.tuning.study import counts

    settled = False
    while True:
        reap(study, spec.grace_s, handler)
        n = counts(study)
        done = n["COMPLETE"] + n["PRUNED"]
        if done >= spec.n_trials:
            return BUDGET_REACHED
        failed = n["FAIL"] - n["RETRIED"] - n["SURPLUS"]
        if failed >= max(3, spec.n_trials):
            return failures_reason(failed, done)
        if deadline is not None and time.time() >= deadline:
            return TIMEOUT
        if n["WAITING"] == 0 and done + n["RUNNING"] >= spec.n_trials:
            time.sleep(POLL_S)  # the last trials run elsewhere; one may die and be re-queued
            continue
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        settled = collect_garbage(settled)
        if getattr(study, "_stop_flag", False):  # the grid sampler ran out of points
            return GRID_EXHAUSTED


def collect_garbage(settled: bool) -> bool:
    """Free what a finished trial left in reference cycles. After the first trial, what the
    worker keeps for good (imported frameworks, cached models) is frozen out of the
    collector's view: a full collection over it cost about 0.25 s per trial (Optuna's
    ``gc_after_trial``), one over a trial's own leftovers a few milliseconds."""
    gc.collect()
    if not settled:
        gc.freeze()
    return True


def failures_reason(failed: int, done: int) -> str:
    """Why the failure cap stopped a worker; "every trial failed" when nothing else ended,
    the case that must not read like a finished study."""
    if done == 0:
        return "every trial failed"  # the count is on the closing line; workers agree on this one
    return f"stopped after {failed} failed trials"


def quiet_optuna() -> None:
    """Our own one-line-per-trial output replaces Optuna's INFO logs; no experimental warnings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class WorkerEnd:
    """How one spawned worker ended: its exit status and why it stopped."""

    index: int | None
    code: int
    reason: str


def _process_main(plan: Plan, env: dict[str, str], ends: Any, cores: list[int] | None = None) -> None:
    """Entry point of a spawned worker: exit status 0 ok, 2 user error, 1 crash, 143 SIGTERM.

    Whatever happens, the worker's reason is put on ``ends`` (a ``SimpleQueue``) before
    it exits, so the parent can say why each worker stopped. ``cores``: pin the process
    to them (before any framework starts its thread pools).
    """
    for key, value in env.items():
        os.environ.setdefault(key, value)
    if cores:
        os.sched_setaffinity(0, cores)
    from xferlab.errors import UserError
    from xferlab.tracking import Terminated, ensure_store, handle_sigterm

    handle_sigterm()
    try:
        ensure_store()
        reason = work(plan)
    except UserError as exc:
        ends.put((plan.index, f"error: {one_line(exc)}"))
        print(f"xferlab: error: [worker {plan.index}] {exc}", flush=True)
        raise SystemExit(2) from None
    except (KeyboardInterrupt, Terminated):
        ends.put((plan.index, INTERRUPTED))
        raise SystemExit(143) from None
    except BaseException as exc:
        ends.put((plan.index, f"crashed: {type(exc).__name__}: {one_line(exc)}"))
        raise
    ends.put((plan.index, reason))
    print(f"[worker {plan.index}] {reason}", flush=True)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (reasons are shown on one line and in tags)."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


def silent_exit_reason(code: int | None) -> str:
    """Why a worker stopped when it could not say it (killed by a signal, out of memory)."""
    if code is None:
        return "did not exit"
    if code < 0:
        return f"killed by signal {-code}"
    if code == 143:
        return INTERRUPTED
    return f"exited with status {code}"


def run_processes(plans: list[Plan], pin: bool = False) -> list[WorkerEnd]:
    """Start one spawned process per plan, wait for all; an interrupt terminates them.

    Each worker gets as many intra-op threads as its share of the usable cores; with
    ``pin`` it is also bound to that share, so the workers never compete for a core (the
    operating system otherwise moves them and their thread pools around)."""
    from xferlab.cores import core_shares, thread_env

    ctx = multiprocessing.get_context("spawn")  # no TF/torch/sqlite state inherited
    shares = core_shares(len(plans))
    ends = ctx.SimpleQueue()  # put() writes at once: nothing is lost when the process exits
    procs = [ctx.Process(target=_process_main, args=(plan, thread_env(len(share)), ends, share if pin else None),
                         name=f"xferlab-tune-{plan.index}") for plan, share in zip(plans, shares)]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    except BaseException:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: each closes its trial (FAIL) and MLflow run
        for proc in procs:
            proc.join(timeout=60)
        raise
    said = _drain(ends)
    return [WorkerEnd(plan.index, _code(proc), said.get(plan.index) or silent_exit_reason(proc.exitcode))
            for plan, proc in zip(plans, procs)]


def _drain(ends: Any) -> dict[int | None, str]:
    """{worker index: reason} for the workers that said why they stopped."""
    said: dict[int | None, str] = {}
    while not ends.empty():
        index, reason = ends.get()
        said[index] = reason
    return said


def _code(proc: Any) -> int:
    return proc.exitcode if proc.exitcode is not None else 1
