"""The study's MLflow parent run: created once, found again by tag, reopened on resume.

Every trial, from any process or machine, is a child of this run (``parent_run_id``). The
creator of the Optuna study creates it, pretrains what the trials need (as its children)
and then marks the study ready; processes that join or resume the study look it up by the
study's uid tag (``xferlab.study_uid``), so a resumed study keeps ONE parent run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from xferlab.spec import Instance
from xferlab.tuning import study as studies_
from xferlab.tuning.storage import StorageRef
from xferlab.tuning.studyspec import StudySpec

def ensure_parent(study: Any, spec: StudySpec, ref: StorageRef, created: bool) -> str:
    """The parent run id of ``study`` (created, or found and reopened)."""
    from xferlab.tracking import studies

    uid = study.user_attrs[studies_.UID]
    if created:
        run_id = _create(study, spec, ref, uid)
        try:
            prepare(spec.instance(_base_params(spec)), run_id)
        except BaseException:
            studies.set_status(run_id, "FAILED")  # a resume finds it again and reopens it
            raise
        study.set_user_attr(studies_.READY, True)
        return run_id
    studies_.wait_ready(study)
    found = [r for r in studies.find_by_tag(studies.STUDY_UID, uid) if r.tags.get("xferlab.role") == "study"]
    if not found:  # e.g. the study was resumed against another MLflow store
        run_id = _create(study, spec, ref, uid)
        prepare(spec.instance(_base_params(spec)), run_id)
        return run_id
    parent = found[0]  # the oldest, should a race ever have made two
    if parent.status != "RUNNING":
        studies.set_status(parent.run_id, "RUNNING")
    return parent.run_id


def _base_params(spec: StudySpec) -> dict[str, Any]:
    return {k: p.corners()[0] for k, p in spec.space.items()}


def _create(study: Any, spec: StudySpec, ref: StorageRef, uid: str) -> str:
    from xferlab.tracking import studies, tracking_uri

    inst = spec.instance(_base_params(spec))
    tags = {"xferlab.role": "study", "xferlab.study": spec.study, studies.STUDY_UID: uid,
            "xferlab.paper": inst.paper, "xferlab.spec": inst.spec_name, "xferlab.spec_path": inst.spec_path,
            "xferlab.kind": inst.kind, "xferlab.dataset": inst.dataset, "xferlab.study_spec": str(spec.path),
            "xferlab.optuna_storage": ref.shown, "xferlab.metric": spec.metric, "xferlab.direction": spec.direction}
    if inst.table:
        tags["xferlab.table"] = inst.table
    run_id = studies.create_run(inst.experiment, f"study {spec.study}", tags, study_params(spec),
                                parent_run_id=os.environ.get("MLFLOW_RUN_ID") or None)
    studies.log_text(run_id, "study.yaml", Path(spec.path).read_text())
    study.set_user_attr(studies_.PARENT, run_id)
    study.set_user_attr(studies_.EXPERIMENT, inst.experiment)
    study.set_user_attr("xferlab.tracking_uri", tracking_uri())
    return run_id


def study_params(spec: StudySpec) -> dict[str, Any]:
    """What defines the study, as MLflow params (logged once: params cannot change)."""
    params: dict[str, Any] = {"study": spec.study, "metric": spec.metric, "direction": spec.direction,
                              "intermediate": spec.intermediate, "sampler": spec.sampler["name"],
                              "sampler_seed": spec.sampler.get("seed"), "pruner": spec.pruner["name"],
                              "experiment_spec": str(spec.experiment)}
    params.update({f"pruner.{k}": v for k, v in spec.pruner["options"].items()})
    params.update({f"space.{k}": json.dumps({f: v for f, v in vars(p).items() if f != "key" and v not in (None, False)},
                                            default=list) for k, p in spec.space.items()})
    params.update({f"set.{text.split('=', 1)[0]}": text.split("=", 1)[1] for text in spec.sets})
    return params


def prepare(instance: Instance, parent_run_id: str) -> None:
    """Pretrain (once, before any worker starts) the registered models the trials load:
    the runner's prerequisite plan, as for ``xferlab run`` (children of the study's run)."""
    from xferlab.runner import run_prerequisites

    failed = run_prerequisites([instance], parent_run_id)
    if failed:
        model, reason = next(iter(failed.items()))
        raise RuntimeError(f"the trials need {model}, which could not be pretrained: {reason}")
