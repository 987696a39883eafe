"""``xferlab tune STUDY_SPEC``: the command line of the tuner (wired into ``xferlab.cli``).

Importing this module is cheap (no optuna, mlflow or frameworks), so ``xferlab --help``
stays instant; the handler imports what it needs.
"""
from __future__ import annotations

import argparse
import os
import secrets
import time
from typing import Any


def add_tune_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``tune`` on the CLI's subparsers."""
    p = sub.add_parser("tune", help="run (or resume) an Optuna study over an experiment spec",
                       description="Run an Optuna study described by a study spec (tuning/*.yaml): every "
                       "trial is an MLflow child run of the study's parent run. Resumes the study when it "
                       "exists in the storage; several processes (here or on other machines) may work on "
                       "the same study.")
    p.add_argument("study_spec", help="path of a study spec, e.g. tuning/at-style-smoke.yaml")
    p.add_argument("--n-trials", type=int, default=None, metavar="N",
                   help="study budget: COMPLETE+PRUNED trials across all workers (default: the spec's; 0 = the spec's)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="start no trial after this many seconds (default: the spec's timeout_s)")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes on this machine (default 1)")
    p.add_argument("--pin", action="store_true", help="bind each worker process to its own share of the cores "
                   "(with as many intra-op threads), e.g. --workers 2 --pin on 2 cores: one core each")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage: sqlite:///optuna.db (default, in the cwd), postgresql://user@host/db, "
                        "or a journal file path ending in .log")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study key (n_trials=4, pruner.name=none) or an experiment spec key "
                        "(train.epochs=2); repeatable")
    p.set_defaults(handler=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    """Open the study and its parent run, run the workers, summarise.

    Exit 0 only when the study has a COMPLETE trial: a study whose every trial failed
    (or was pruned) produced no result, so it exits 1 (2 when the workers stopped on a
    user error) and its parent run ends FAILED with the reason.
    """
    from xferlab.errors import UserError
    from xferlab.tracking import ensure_store
    from xferlab.tuning import parent, study as st, summary
    from xferlab.tuning.storage import open_storage, resolve
    from xferlab.tuning.studyspec import load_study_spec, with_budget
    from xferlab.tuning.worker import quiet_optuna

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a line per run with a server
    if args.workers < 1:
        raise UserError(f"--workers {args.workers} must be at least 1")
    quiet_optuna()
    spec = with_budget(load_study_spec(args.study_spec, args.overrides), args.n_trials, args.timeout)
    ref = resolve(args.storage)
    uri = ensure_store()
    seed = spec.sampler.get("seed")
    storage = open_storage(ref, spec.heartbeat_s, spec.grace_s)
    study, created = st.open_study(spec, storage, ref, st.build_sampler(spec, seed), st.build_pruner(spec))
    print(f"study {spec.study!r} ({'created' if created else 'resumed'}) in {ref.shown}"
          + (f"  [{ref.path}]" if ref.path else ""), flush=True)
    print(f"  {spec.direction} {spec.metric} of {spec.experiment.name} over {', '.join(spec.space)}; "
          f"budget {spec.n_trials} trials" + (f", timeout {spec.timeout_s:.0f} s" if spec.timeout_s else "")
          + f"; MLflow {uri}", flush=True)
    parent_run_id = parent.ensure_parent(study, spec, ref, created)
    plans = _plans(args, spec, ref, parent_run_id, created)
    try:
        reasons, status = _run(plans, args.pin)
    except BaseException as exc:  # interrupted (Ctrl-C, SIGTERM) or a user error in a trial: record it
        summary.summarize_quietly(study, spec, parent_run_id, exc)
        raise
    result = summary.summarize(study, spec, parent_run_id, reasons=reasons)
    for line in summary.closing_lines(spec, ref, result, parent_run_id, uri, reasons):
        print(line, flush=True)
    return final_status(status, result)


def final_status(workers_status: int, result: dict[str, Any]) -> int:
    """The workers' status, or 1 when it is 0 but the study has no COMPLETE trial (no result)."""
    if workers_status == 0 and result["best"] is None:
        return 1
    return workers_status


def _plans(args: argparse.Namespace, spec: Any, ref: Any, parent_run_id: str, created: bool) -> list[Any]:
    """One plan per worker, each with its own sampler seed (identical seeds would make
    workers that start together propose identical trials)."""
    from xferlab.tuning.worker import Plan

    base = spec.sampler.get("seed")
    deadline = time.time() + spec.timeout_s if spec.timeout_s else None
    plans = []
    for index in range(args.workers):
        if base is not None and created:
            seed = base + index
        else:  # joining or resuming: the history differs from any earlier run anyway
            seed = secrets.randbelow(2**31)
        plans.append(Plan(str(spec.path), tuple(args.overrides), spec.n_trials, spec.timeout_s, ref.url,
                          parent_run_id, index if args.workers > 1 else None, seed, deadline))
    return plans


def _run(plans: list[Any], pin: bool = False) -> tuple[list[str], int]:
    """Workers in-process (one) or as processes; (why each stopped, exit status)."""
    from xferlab.tuning.worker import run_processes, work

    if len(plans) == 1 and not pin:
        return [work(plans[0])], 0
    ends = run_processes(plans, pin)
    return worker_reasons(ends), workers_status([end.code for end in ends])


def worker_reasons(ends: list[Any]) -> list[str]:
    """One entry per distinct reason, naming its workers: ``workers 0, 2: budget reached``."""
    by_reason: dict[str, list[str]] = {}
    for end in ends:
        by_reason.setdefault(end.reason, []).append(str(end.index))
    return [f"worker{'s' if len(who) > 1 else ''} {', '.join(who)}: {reason}" for reason, who in by_reason.items()]


def workers_status(codes: list[int]) -> int:
    """0 when every worker exited cleanly; 2 when the failures were all user errors; else 1."""
    bad = [c for c in codes if c != 0]
    if not bad:
        return 0
    return 2 if all(c == 2 for c in bad) else 1
