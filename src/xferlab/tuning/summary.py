"""What a study leaves on its parent run, and the lines that close ``xferlab tune``.

On the parent run: trial counts by state (metrics ``trials_complete`` ... at step = number
of trials, so a resumed study shows its progress), the best value (metric ``best_value``),
the best trial's parameters and number (tags ``xferlab.best.<key>``, ``xferlab.best_trial``:
tags, because a resumed study may find a better trial and params cannot change), and the
artifacts ``best_trial.json``, ``trials.csv``, ``optimization_history.png``,
``param_importances.png`` and ``intermediate_values.png`` (Optuna's matplotlib plots: the
plotly ones need a browser to export). Whoever finishes last leaves the final picture.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

from xferlab.tuning.storage import StorageRef
from xferlab.tuning.study import counts
from xferlab.tuning.studyspec import StudySpec

PLOTS = {"optimization_history.png": "plot_optimization_history",
         "param_importances.png": "plot_param_importances",
         "intermediate_values.png": "plot_intermediate_values"}


def best_trial(study: Any) -> Any | None:
    """The best COMPLETE trial, or None."""
    from optuna.trial import TrialState

    return study.best_trial if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) else None


def summarize_quietly(study: Any, spec: StudySpec, parent_run_id: str, exc: BaseException) -> None:
    """:func:`summarize` after ``exc`` stopped the workers: the parent ends KILLED on an
    interrupt, FAILED on an error (a resume reopens it); never masks ``exc``."""
    from xferlab.tracking import Terminated

    status = "KILLED" if isinstance(exc, (KeyboardInterrupt, Terminated)) else "FAILED"
    try:
        summarize(study, spec, parent_run_id, end_status=status)
    except Exception as err:  # noqa: BLE001 - the original exception matters more
        print(f"(could not summarise the study on its parent run: {err})", flush=True)


def summarize(study: Any, spec: StudySpec, parent_run_id: str, end_status: str | None = None) -> dict[str, Any]:
    """Log counts, best trial and plots on the parent; close it FINISHED when no trial is in
    flight (or with ``end_status``)."""
    from xferlab.tracking import studies

    n = counts(study)
    total = sum(v for k, v in n.items() if k != "RETRIED")
    studies.log_metrics(parent_run_id, {f"trials_{k.lower()}": v for k, v in n.items()}, step=total)
    n.pop("RETRIED")
    best = best_trial(study)
    with tempfile.TemporaryDirectory(prefix="xferlab-study-") as tmp:
        skipped = write_plots(study, Path(tmp))
        _write_tables(study, best, Path(tmp))
        studies.log_files(parent_run_id, tmp)
    if best is not None:
        studies.log_metrics(parent_run_id, {"best_value": best.value}, step=total)
        studies.set_tags(parent_run_id, {"xferlab.best_trial": best.number, "xferlab.best_value": best.value,
                                         **{f"xferlab.best.{k}": v for k, v in best.params.items()},
                                         "xferlab.best_run_id": best.user_attrs.get("mlflow_run_id", "")})
    in_flight = n["RUNNING"] + n["WAITING"]
    if end_status:
        studies.set_status(parent_run_id, end_status)
    elif in_flight == 0:
        studies.set_status(parent_run_id, "FINISHED")
    return {"counts": n, "best": best, "plots_skipped": skipped, "closed": in_flight == 0}


def write_plots(study: Any, out: Path) -> dict[str, str]:
    """The matplotlib PNGs; {file: why} for the ones that cannot be drawn yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return {name: "no complete trial yet" for name in PLOTS}
    skipped: dict[str, str] = {}
    for name, function in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = getattr(ovm, function)(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            fig.savefig(out / name, dpi=100)
            plt.close(fig)
        except Exception as exc:  # noqa: BLE001 - e.g. importances need 2+ complete trials
            skipped[name] = " ".join(str(exc).split())[:200] or type(exc).__name__
            plt.close("all")
    return skipped


def _write_tables(study: Any, best: Any | None, out: Path) -> None:
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration", "user_attrs"))
    frame.to_csv(out / "trials.csv", index=False)
    if best is not None:
        record = {"number": best.number, "value": best.value, "params": best.params,
                  "mlflow_run_id": best.user_attrs.get("mlflow_run_id")}
        (out / "best_trial.json").write_text(json.dumps(record, indent=2, default=str))


def closing_lines(spec: StudySpec, ref: StorageRef, result: dict[str, Any], parent_run_id: str,
                  tracking_uri: str, reasons: list[str]) -> list[str]:
    """The end of ``xferlab tune``: counts, best trial, and how to look at it."""
    n, best = result["counts"], result["best"]
    lines = [f"\nstudy {spec.study!r}: {n['COMPLETE']} complete, {n['PRUNED']} pruned, {n['FAIL']} failed"
             + (f", {n['RUNNING']} running" if n["RUNNING"] else "") + f" ({'; '.join(dict.fromkeys(reasons))})"]
    if best is not None:
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        lines.append(f"best trial {best.number}: {spec.metric}={best.value:.4f}  {shown}")
    for name, why in result["plots_skipped"].items():
        lines.append(f"  ({name} not drawn: {why})")
    lines += [f"MLflow parent run {parent_run_id}" + ("" if result["closed"] else " (still RUNNING: trials in flight)"),
              "look at it:", f"  {ref.dashboard_command()}", f"  {mlflow_ui_command(tracking_uri)}"]
    return lines


def mlflow_ui_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri} (an MLflow tracking server)"
    shown = StorageRef(uri, "rdb").shown
    return f"mlflow ui --backend-store-uri {shown}"
