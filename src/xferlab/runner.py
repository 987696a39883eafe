"""Run instances as MLflow runs: dedup, failure isolation, parallel workers, a summary.

The runner sits at the tracking layer: it asks :mod:`xferlab.tracking` whether an
instance already finished, plans the registered models the instances need (their kind's
prerequisites) and runs only the missing ones first, opens one run per instance and
hands it to the kind's job (:mod:`xferlab.kinds`), which trains through callbacks. One
failing instance is recorded FAILED (with its traceback) and the others go on, unless
``fail_fast``.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from xferlab.errors import UserError
from xferlab.kinds import get_kind
from xferlab.spec import Instance, load_spec

SUMMARY_METRICS = ("test_accuracy", "val_accuracy", "best_epoch")
PROGRESS_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "at_loss", "swd")
ALIASES = {"val_accuracy": "best_val_accuracy"}  # V2S logs the restored epoch's value


@dataclass
class Outcome:
    """What happened to one instance."""

    instance: Instance
    status: str  # FINISHED | FAILED | KILLED | SKIPPED | PRUNED (| CONTENDED inside run_claimed)
    run_id: str = ""
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    user_error: bool = False


def run_one(instance: Instance, parent_run_id: str | None = None, role: str = "final",
            on_epoch: Callable[[int, dict[str, float]], None] | None = None,
            extra_tags: dict[str, str] | None = None, run_name: str | None = None,
            claim: bool = False, force: bool = False) -> Outcome:
    """Run one instance inside its own MLflow run; never raises for a training failure.

    ``on_epoch`` runs after each epoch's metrics are logged (the tuner reports to Optuna
    there and may raise ``TrialPruned``: the run ends KILLED, the outcome says PRUNED).
    Runs started by ``mlflow run`` become children of its run. ``claim``: first claim the
    instance against processes sharing the store (:mod:`xferlab.tracking.claims`); a lost
    claim deletes the run and says SKIPPED, a tie says CONTENDED (try again later).
    """
    from xferlab.errors import TrialPruned
    from xferlab.tracking import start_instance_run
    from xferlab.tracking.claims import PENDING, ClaimLost, discard, hold

    start, run_id = time.monotonic(), ""
    parent_run_id = parent_run_id or os.environ.get("MLFLOW_RUN_ID") or None
    tags = {**(extra_tags or {}), **({"xferlab.claim": PENDING} if claim else {})}
    try:
        with start_instance_run(instance, role, parent_run_id, extra_tags=tags, name=run_name) as run:
            run_id = run.run_id
            if claim:
                hold(run, role, count_finished=not force)
            run.epoch_hooks.append(epoch_printer(instance))
            if on_epoch is not None:
                run.epoch_hooks.append(on_epoch)
            metrics = get_kind(instance.kind).run_job(instance, run)
        return Outcome(instance, "FINISHED", run_id, time.monotonic() - start, dict(metrics))
    except ClaimLost as exc:
        discard(run_id)
        return Outcome(instance, "CONTENDED" if exc.retry else "SKIPPED", exc.holder,
                       time.monotonic() - start, error=str(exc))
    except TrialPruned as exc:
        return Outcome(instance, "PRUNED", run_id, time.monotonic() - start, error=str(exc))
    except UserError as exc:
        return Outcome(instance, "FAILED", run_id, time.monotonic() - start, error=str(exc), user_error=True)
    except Exception as exc:  # noqa: BLE001 - recorded on the run, reported in the summary
        return Outcome(instance, "FAILED", run_id, time.monotonic() - start, error=f"{type(exc).__name__}: {exc}")


def epoch_printer(instance: Instance) -> Callable[[int, dict[str, float]], None]:
    """A one-line progress report per epoch (training is otherwise silent)."""
    total = instance.get("train.epochs")
    start = time.monotonic()

    def show(epoch: int, metrics: dict[str, float]) -> None:
        shown = " ".join(f"{k}={metrics[k]:.4f}" for k in PROGRESS_METRICS if k in metrics)
        print(f"    epoch {epoch}/{total} {shown} ({time.monotonic() - start:.0f} s)", flush=True)

    return show


def run_claimed(instance: Instance, force: bool = False, attempts: int = 6, role: str = "final",
                parent_run_id: str | None = None) -> Outcome:
    """:func:`run_one` with a claim, retried after a random back-off while claims tie, so
    that processes sharing a store run every instance exactly once between them."""
    def attempt_once() -> Outcome:
        return run_one(instance, parent_run_id=parent_run_id, role=role, claim=True, force=force)

    outcome = attempt_once()
    for attempt in range(1, attempts):
        if outcome.status != "CONTENDED":
            return outcome
        time.sleep(random.uniform(0.2, 1.0) * attempt)
        outcome = attempt_once()
    if outcome.status == "CONTENDED":
        outcome.status = "SKIPPED"  # still contended: another process is about to run it
    return outcome


def _worker_init(threads: int) -> None:
    """In each spawned grid worker, before any framework is imported: its share of the cores
    as intra-op threads, and SIGTERM closing its run KILLED."""
    from xferlab.cores import limit_threads
    from xferlab.tracking import handle_sigterm

    limit_threads(threads)
    handle_sigterm()


def drop_unfit(instances: list[Instance]) -> list[Instance]:
    """The instances whose data can take their setting; the others (a grid cell such as
    seg 10 on a series too long for 10 copies: the kind's ``unfit``) are left out with one
    printed line per cell. Nothing left is a UserError naming the first reason."""
    fit, reasons = [], {}
    for inst in instances:
        reason = get_kind(inst.kind).unfit(inst)
        if reason:
            reasons.setdefault(inst.cell, reason)
        else:
            fit.append(inst)
    if not fit and reasons:
        raise UserError(f"nothing to run: {next(iter(reasons.values()))}")
    for cell, reason in reasons.items():
        print(f"skipped cell {cell}: {reason}")
    return fit


def plan(instances: Iterable[Instance], force: bool, role: str = "final") -> tuple[list[Instance], list[Outcome]]:
    """Split instances into those to run and those with a FINISHED run of the same role
    (skipped). A run recorded before the hash scheme changed is found by its old hash. A run
    made with another version of a registered model than the one a new run would load (the
    champion moved) does not count: the instance runs again, and one line says why."""
    from xferlab.tracking import finished_runs
    from xferlab.tracking.lineage import stale

    instances = list(instances)
    done = {} if force else finished_runs([h for i in instances for h in i.hashes], role=role)
    found, reasons, memo = {}, [], {}
    for inst in instances:
        run = next((done[h] for h in inst.hashes if h in done), None)
        reason = run and stale(run, inst, memo)
        if reason:
            reasons.append(reason)
        found[inst.hash] = None if reason else run
    if reasons:
        print(f"{len(reasons)} finished run(s) made with another model version run again ({reasons[0]})")
    todo = [i for i in instances if not found[i.hash]]
    return todo, [Outcome(i, "SKIPPED", found[i.hash].info.run_id) for i in instances if found[i.hash]]


# ---------------------------------------------------------------------------------------
# Prerequisites: registered models that instances load, made before their runs open
# ---------------------------------------------------------------------------------------
def missing_prerequisites(instances: Iterable[Instance]) -> dict[str, tuple[Any, Instance]]:
    """{model name: (Prerequisite, first instance needing it)} for the models the
    instances' kinds need that are not registered yet."""
    from xferlab.tracking import model_exists

    missing: dict[str, tuple[Any, Instance]] = {}
    present: set[str] = set()
    for inst in instances:
        for need in get_kind(inst.kind).needs(inst.cfg):
            if need.model in missing or need.model in present:
                continue
            if model_exists(need.model):
                present.add(need.model)
            else:
                missing[need.model] = (need, inst)
    return missing


def _spec_beside(spec: str, instance: Instance) -> Path:
    """A pretraining spec path: relative to the instance's spec file, else to the cwd."""
    beside = Path(instance.spec_path).parent / spec
    return beside if beside.is_file() else Path(spec)


def makers_of(need: Any, instance: Instance) -> list[Instance]:
    """The instance of ``need``'s pretraining spec that registers its model (the first, when
    several seeds would); a one-line error when the spec registers no such model. Reads
    files only, so ``--dry-run`` checks it too."""
    path = _spec_beside(need.spec, instance)
    makers = [i for i in load_spec(path).instances if get_kind(i.kind).registers(i) == need.model][:1]
    if not makers:
        raise UserError(f"{need.key}={need.model} names a model that {path} (its pretraining spec) does not "
                        f"register: name a model that spec registers, or register {need.model} first")
    return makers


def pretraining_plan(instances: Iterable[Instance], _chain: tuple[str, ...] = ()) -> list[Instance]:
    """The pretraining instances to run first, dependencies first: for every missing model,
    only the instances of its pretraining spec that register that model (one missing
    orthogonal model of four trains one)."""
    planned: dict[str, Instance] = {}
    for model, (need, inst) in missing_prerequisites(instances).items():
        if model in _chain:
            raise UserError(f"pretraining {model} needs itself ({' -> '.join((*_chain, model))}): fix {need.key}")
        makers = makers_of(need, inst)
        for maker in [*pretraining_plan(makers, (*_chain, model)), *makers]:
            planned.setdefault(maker.hash, maker)
    return list(planned.values())


def run_prerequisites(instances: Iterable[Instance], parent_run_id: str | None = None,
                      poll_s: float = 2.0) -> dict[str, str]:
    """Make the missing models the instances need, each once (dedup and claims, role
    ``pretrain``); {model: one-line reason} for those that could not be made."""
    from xferlab.tracking import model_exists

    todo = pretraining_plan(instances)
    failed: dict[str, str] = {}
    for n, inst in enumerate(todo, 1):
        model = get_kind(inst.kind).registers(inst)
        if model_exists(model):  # made meanwhile (by another process): nothing to train
            continue
        print(f"[pretrain {n}/{len(todo)}] {model} is not registered yet: {inst.spec_name} {inst.cell} "
              f"seed={inst.seed}", flush=True)
        # force: a FINISHED run of it does not count (the model it made is gone); a live one still does
        outcome = _report(run_claimed(inst, force=True, role="pretrain", parent_run_id=parent_run_id))
        if outcome.status == "SKIPPED" and outcome.run_id:
            _wait_for(model, outcome.run_id, poll_s)  # another process holds the claim
        if not model_exists(model):
            failed[model] = (outcome.error if outcome.status == "FAILED" else
                             f"its pretraining run {outcome.run_id} ended {outcome.status} without registering it")
    return failed


def _wait_for(model: str, holder: str, poll_s: float) -> None:
    """Wait while another process's run ``holder`` is still making ``model``."""
    from xferlab.tracking import model_exists
    from xferlab.tracking.studies import get_run

    while not model_exists(model):
        run = get_run(holder)
        if run is None or run.status != "RUNNING":
            return
        print(f"  waiting for run {holder} (another process) to register {model}", flush=True)
        time.sleep(poll_s)


def blocked_by(instance: Instance, failed: dict[str, str]) -> Outcome | None:
    """A FAILED outcome (no run opened) when a model the instance needs could not be made."""
    for need in get_kind(instance.kind).needs(instance.cfg):
        if need.model in failed:
            return Outcome(instance, "FAILED", error=f"{need.key}={need.model} could not be pretrained: "
                                                       f"{failed[need.model]}")
    return None


def run_instances(instances: list[Instance], force: bool = False, workers: int = 1,
                  fail_fast: bool = False) -> int:
    """Run what is not done yet; print a summary; exit status 0 only if all succeeded."""
    from xferlab.tracking import ensure_store, handle_sigterm

    instances = drop_unfit(instances)
    uri = ensure_store()  # create the schema once, before any worker starts
    handle_sigterm()
    todo, outcomes = plan(instances, force, role=instances[0].role)
    print(f"{len(instances)} instance(s): {len(outcomes)} already finished, {len(todo)} to run  [{uri}]")
    failed = run_prerequisites(todo) if todo else {}
    blocked = [o for o in (blocked_by(i, failed) for i in todo) if o is not None]
    outcomes += [_report(o) for o in blocked]
    todo = [i for i in todo if i.hash not in {o.instance.hash for o in blocked}]
    if workers > 1 and len(todo) > 1:
        outcomes += _run_parallel(todo, workers, fail_fast, force)
    else:
        for n, inst in enumerate(todo, 1):
            print(f"[{n}/{len(todo)}] {inst.spec_name} {inst.cell} seed={inst.seed}", flush=True)
            outcomes.append(_report(run_claimed(inst, force, role=inst.role)))
            if fail_fast and outcomes[-1].status != "FINISHED":
                break
    print_summary(outcomes)
    summarise(instances, outcomes)
    return exit_status(outcomes)


def summarise(instances: list[Instance], outcomes: list[Outcome]) -> None:
    """Run the kind's ``after_grid`` step (AT: the per-experiment spreadsheet as a summary
    run) when this call finished something new (a fully skipped rerun adds nothing)."""
    after = get_kind(instances[0].kind).after_grid
    if not after or not any(o.status == "FINISHED" for o in outcomes):
        return
    from xferlab.registry import resolve

    try:
        message = resolve(after)(instances[0])
    except Exception as exc:  # noqa: BLE001 - the instances are done; the report rebuilds the summary
        print(f"could not run {after} after the grid ({type(exc).__name__}: {exc}); "
              f"the report rebuilds what it makes from the runs", file=sys.stderr)
        return
    if message:
        print(message, flush=True)


def _run_parallel(todo: list[Instance], workers: int, fail_fast: bool, force: bool = False) -> list[Outcome]:
    """Instances in ``workers`` spawned processes; an interrupt stops the workers, whose
    SIGTERM handlers mark their runs KILLED."""
    ctx = multiprocessing.get_context("spawn")  # no TF/torch state is inherited by forking
    results: list[Outcome] = []
    from xferlab.cores import usable_cores

    threads = max(1, len(usable_cores()) // workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,))
    try:
        futures = [pool.submit(run_claimed, inst, force, role=inst.role) for inst in todo]
        for future in as_completed(futures):
            results.append(_report(future.result()))
            if fail_fast and results[-1].status != "FINISHED":
                break
    except BaseException:
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()  # SIGTERM: the worker's run ends KILLED
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _report(outcome: Outcome) -> Outcome:
    inst = outcome.instance
    line = f"  -> {outcome.status} {inst.cell} seed={inst.seed} in {outcome.seconds:.1f}s"
    if outcome.error:
        line += f": {outcome.error}"
    print(line, flush=True)
    return outcome


def print_summary(outcomes: list[Outcome]) -> None:
    """One line per instance: status, the headline metrics and the run id."""
    if not outcomes:
        return
    width = max(len(o.instance.cell) for o in outcomes)
    print(f"\n{'status':9s} {'cell':{width}s} {'seed':>4s} " + " ".join(f"{m:>13s}" for m in SUMMARY_METRICS)
          + "  run_id")
    for o in outcomes:
        values = " ".join(f"{_fmt(o.metrics.get(m, o.metrics.get(ALIASES.get(m, '')))):>13s}"
                          for m in SUMMARY_METRICS)
        print(f"{o.status:9s} {o.instance.cell:{width}s} {o.instance.seed:>4d} {values}  {o.run_id}")
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    print(", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def exit_status(outcomes: list[Outcome]) -> int:
    """0 all good; 2 when every failure was a user error (fix the input); 1 otherwise."""
    failed = [o for o in outcomes if o.status in ("FAILED", "KILLED")]
    if not failed:
        return 0
    if all(o.user_error for o in failed):
        for message in dict.fromkeys(o.error for o in failed):
            print(f"xferlab: error: {message}", file=sys.stderr, flush=True)
        return 2
    return 1
