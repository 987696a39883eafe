"""Create or resume an Optuna study, and refuse one that does not match its spec.

``load_if_exists=True`` silently returns a stored study even when its direction differs,
so xferlab never uses it: the process whose ``create_study`` succeeds is the study's
creator (the storage's unique study name makes that atomic across machines) and writes the
study's identity as user attributes (space, metric, base config, a uid that tags its MLflow
runs); every other process loads the study and checks that identity against its spec.
"""
from __future__ import annotations

import inspect
import time
import uuid
from typing import Any, Mapping

from xferlab.errors import UserError
from xferlab.tuning.space import fingerprint, first_difference, grid_space
from xferlab.tuning.storage import StorageRef
from xferlab.tuning.studyspec import StudySpec

UID, SPACE, METRIC, BASE = "xferlab.uid", "xferlab.space", "xferlab.metric", "xferlab.base_hash"
PARENT, EXPERIMENT, READY, CREATOR = ("xferlab.mlflow_parent_run_id", "xferlab.mlflow_experiment",
                                      "xferlab.ready", "xferlab.creator")
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler"}
PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner", "threshold": "ThresholdPruner",
           "successive_halving": "SuccessiveHalvingPruner", "hyperband": "HyperbandPruner", "none": "NopPruner"}
IDENTITY_WAIT_S = 30.0


def build_sampler(spec: StudySpec, seed: int | None) -> Any:
    """The spec's sampler with ``seed`` (each worker gets its own, see the CLI)."""
    import optuna

    cls = getattr(optuna.samplers, SAMPLERS[spec.sampler["name"]])
    options = dict(spec.sampler["options"])
    if spec.sampler["name"] == "grid":
        options["search_space"] = grid_space(spec.space)
    return _construct(cls, {**options, "seed": seed}, "sampler", spec)


def build_pruner(spec: StudySpec) -> Any:
    import optuna

    cls = getattr(optuna.pruners, PRUNERS[spec.pruner["name"]])
    return _construct(cls, dict(spec.pruner["options"]), "pruner", spec)


def _construct(cls: type, options: Mapping[str, Any], what: str, spec: StudySpec) -> Any:
    """``cls(**options)`` with unknown or invalid options reported on one line."""
    from xferlab.schema import unknown_key_error

    accepted = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "args", "kwargs")]
    for name in options:
        if not accepted:
            raise UserError(f"{spec.path}: {what} {cls.__name__} takes no options, got {what}.options.{name}: "
                            f"drop them (on the command line: --set '{what}={{name: ...}}' replaces the whole {what})")
        if name not in accepted:
            raise unknown_key_error(f"{what}.options.{name}", [f"{what}.options.{a}" for a in accepted], str(spec.path))
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{spec.path}: {what} {cls.__name__} rejects its options: {exc}") from None


def open_study(spec: StudySpec, storage: Any, ref: StorageRef, sampler: Any, pruner: Any) -> tuple[Any, bool]:
    """(study, created): create it, or load it and check that it is the same study."""
    import optuna
    from optuna.exceptions import DuplicatedStudyError

    try:
        study = optuna.create_study(storage=storage, study_name=spec.study, direction=spec.direction,
                                    sampler=sampler, pruner=pruner)
    except DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.study, storage=storage, sampler=sampler, pruner=pruner)
        check_identity(study, spec, ref)
        return study, False
    write_identity(study, spec)
    return study, True


def write_identity(study: Any, spec: StudySpec) -> None:
    import os

    from xferlab.tracking import context

    study.set_user_attr(UID, uuid.uuid4().hex)
    study.set_user_attr(METRIC, spec.metric)
    study.set_user_attr(BASE, spec.base_hash())
    study.set_user_attr(CREATOR, {"host": context.hostname(), "pid": os.getpid(),
                                  "start": context.process_start(os.getpid())})
    study.set_user_attr(SPACE, fingerprint(spec.space))  # last: the others wait for it


def check_identity(study: Any, spec: StudySpec, ref: StorageRef) -> None:
    """Refuse a stored study whose direction, metric, space or fixed settings differ."""
    attrs = _wait_for(study, SPACE)
    fix = (f"use another study name (--set study={spec.study}-2) or delete it: "
           f"optuna delete-study --study-name {spec.study} --storage {ref.shown}")
    stored_dir = study.direction.name.lower()
    if stored_dir != spec.direction:
        raise UserError(f"study {spec.study!r} in {ref.shown} was created to {stored_dir} {attrs.get(METRIC)}, "
                        f"the spec says {spec.direction}: {fix}")
    if attrs.get(METRIC) != spec.metric:
        raise UserError(f"study {spec.study!r} optimises {attrs.get(METRIC)!r}, the spec says {spec.metric!r}: {fix}")
    current = fingerprint(spec.space)
    if attrs[SPACE] != current:
        raise UserError(f"study {spec.study!r} has another search space ({first_difference(attrs[SPACE], current)}): "
                        f"{fix}")
    if attrs.get(BASE) != spec.base_hash():
        raise UserError(f"study {spec.study!r} was run with other fixed settings (experiment spec, `set:` or "
                        f"--set values changed), so its trials are not comparable: {fix}")


def _wait_for(study: Any, key: str) -> dict[str, Any]:
    """The study's user attrs once ``key`` is there (its creator writes them just after creating it)."""
    deadline = time.monotonic() + IDENTITY_WAIT_S
    while True:
        attrs = study.user_attrs
        if key in attrs:
            return attrs
        if study.trials or time.monotonic() > deadline:
            raise UserError(f"study {study.study_name!r} exists but was not created by `xferlab tune` (it has no "
                            f"{key} attribute): use another study name (--set study=...)")
        time.sleep(0.5)


def wait_ready(study: Any, timeout_s: float = 3600.0) -> dict[str, Any]:
    """Wait while the creator prepares the study (pretrains the models the trials need)."""
    from xferlab.tracking import context

    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        attrs = study.user_attrs
        creator = attrs.get(CREATOR) or {}
        if attrs.get(READY) or time.monotonic() > deadline:
            return attrs
        if creator.get("host") == context.hostname() and not context.pid_alive(creator.get("pid", -1),
                                                                               creator.get("start")):
            return attrs  # the creator died while preparing: go on without it
        if not told:
            print(f"waiting for the process that created study {study.study_name!r} to prepare it", flush=True)
            told = True
        time.sleep(2.0)


SURPLUS = "xferlab_surplus"  # system attr: a trial started when earlier ones already filled the budget


def counts(study: Any) -> dict[str, int]:
    """Trials by state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING); RETRIED: the failed
    trials whose parameters were re-queued (their worker died, not the trial); SURPLUS: the
    failed trials that never ran because the budget was already taken (:func:`over_budget`)."""
    out = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0}
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    for trial in trials:
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    out["RETRIED"] = sum(t.state.name == "FAIL" and t.number in retried for t in trials)
    out["SURPLUS"] = sum(t.state.name == "FAIL" and bool(t.system_attrs.get(SURPLUS)) for t in trials)
    return out


def over_budget(study: Any, number: int, n_trials: int | None) -> bool:
    """Whether trial ``number`` would exceed the budget: the trials numbered before it that
    finished, run or wait already make ``n_trials``. The storage gives out trial numbers
    atomically, so when several workers start trials at the same instant they all agree
    which came first, and only the later ones stand down: the budget is exact."""
    if n_trials is None:
        return False
    earlier = [t for t in study.get_trials(deepcopy=False) if t.number < number]
    return sum(t.state.name in ("COMPLETE", "PRUNED", "RUNNING", "WAITING") for t in earlier) >= n_trials
