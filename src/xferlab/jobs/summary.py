"""The summary run of an anti-transfer experiment: the original's spreadsheet, in MLflow.

The original code wrote one spreadsheet per experiment (a row per instance: parameters,
mean and std of loss, accuracy, F1, precision and recall on train/val/test, best values
highlighted). Here it is an artifact of a run of its own (``xferlab.role = summary``),
logged after ``xferlab run`` of an AT spec from every FINISHED final run of that spec, so
the MLflow UI shows it beside the instances. ``xferlab report at_spreadsheets`` rebuilds
the same file from the runs at any time.
"""
from __future__ import annotations

import os

from xferlab.spec import Instance

SUMMARY_ROLE = "summary"
SPREADSHEET = "experiment.xlsx"


def log_experiment_summary(instance: Instance) -> str | None:
    """Log the spreadsheet of ``instance``'s spec as a new summary run; its run id, or
    None when the spec has no FINISHED final run yet."""
    from xferlab.report.at_xlsx import instance_rows, write_experiment_xlsx
    from xferlab.report.frames import superseded
    from xferlab.report.query import Query, search_frame
    from xferlab.tracking import start_run

    spec_runs = Query((("xferlab.spec", instance.spec_name),), roles=(instance.role,))  # FINISHED, the spec's role
    runs = search_frame(spec_runs.filter_string(), instance.experiment)
    runs = runs[~superseded(runs)]  # an instance run again (a new champion, --force) counts once
    if runs.empty:
        return None
    tags = {"xferlab.role": SUMMARY_ROLE, "xferlab.kind": f"{instance.kind}_summary", "xferlab.paper": instance.paper,
            "xferlab.spec": instance.spec_name, "xferlab.spec_path": instance.spec_path}
    params = {"spec": instance.spec_name, "runs": len(runs),
              "instances": runs["tags.xferlab.cell"].nunique() if "tags.xferlab.cell" in runs else len(runs)}
    parent = os.environ.get("MLFLOW_RUN_ID") or None  # under `mlflow run`: beside the instances
    with start_run(instance.experiment, f"{instance.spec_name} summary", tags=tags, params=params,
                   parent_run_id=parent) as run:
        write_experiment_xlsx(runs, run.artifact_dir / SPREADSHEET, f"experiment {instance.spec_name}")
        instance_rows(runs).to_csv(run.artifact_dir / "experiment.csv", index=False)
        return run.run_id


def after_grid(instance: Instance) -> str | None:
    """The ``at`` kind's after-grid step: the summary run, and a line saying where it is."""
    run_id = log_experiment_summary(instance)
    return f"summary run {run_id}: the experiment's spreadsheet ({SPREADSHEET})" if run_id else None
