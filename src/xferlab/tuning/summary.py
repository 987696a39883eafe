"""What a study leaves on its parent run, and the lines that close ``xferlab tune``.

On the parent run: trial counts by state (metrics ``trials_complete`` ... at step = number
of trials, so a resumed study shows its progress), the best value (metric ``best_value``),
the best trial's parameters and number (tags ``xferlab.best.<key>``, ``xferlab.best_trial``:
tags, because a resumed study may find a better trial and params cannot change), and the
artifacts ``best_trial.json``, ``trials.csv``, ``optimization_history.png``,
``param_importances.png`` and ``intermediate_values.png`` (Optuna's matplotlib plots: the
plotly ones need a browser to export). Whoever finishes last leaves the final picture.

The parent run ends FINISHED only when the study has a COMPLETE trial: a study whose
trials all failed (or were pruned) has no result, so its parent ends FAILED with a
one-line reason (tag ``xferlab.error`` and artifact ``error.txt``, as an instance run).
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
    interrupt, FAILED on an error with the error as its reason (a resume reopens it);
    never masks ``exc``."""
    from xferlab.tracking import Terminated

    interrupted = isinstance(exc, (KeyboardInterrupt, Terminated))
    status = "KILLED" if interrupted else "FAILED"
    reason = "interrupted" if interrupted else exception_line(exc)
    try:
        summarize(study, spec, parent_run_id, end_status=status, reason=reason)
    except Exception as err:  # noqa: BLE001 - the original exception matters more
        print(f"(could not summarise the study on its parent run: {err})", flush=True)


def exception_line(exc: BaseException) -> str:
    """``Type: message`` on one line, as the runs' ``error.txt``."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:1000] if text else type(exc).__name__


def summarize(study: Any, spec: StudySpec, parent_run_id: str, end_status: str | None = None,
              reason: str = "", reasons: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Log counts, best trial and plots on the parent; close it when no trial is in flight
    (FINISHED with a COMPLETE trial, else FAILED with why), or with ``end_status``.

    ``reasons``: why each worker stopped, part of a FAILED parent's reason.
    """
    from xferlab.tracking import studies

    n = counts(study)
    total = sum(v for k, v in n.items() if k not in ("RETRIED", "SURPLUS"))
    studies.log_metrics(parent_run_id, {f"trials_{k.lower()}": v for k, v in n.items()}, step=total)
    n.pop("RETRIED")
    n.pop("SURPLUS")
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
    status = end_status or (None if in_flight else "FINISHED" if best is not None else "FAILED")
    error = last_trial_error(study) if best is None else ""
    if status == "FAILED" and not reason:
        reason = no_result_reason(n, reasons, error)
    if status is not None:
        close_parent(parent_run_id, status, reason)
    return {"counts": n, "best": best, "plots_skipped": skipped, "closed": status is not None,
            "status": status, "reason": reason, "last_error": error}


def no_result_reason(n: dict[str, int], reasons: list[str] | tuple[str, ...], error: str) -> str:
    """One line: no trial completed, the counts, why the workers stopped, the last trial error."""
    line = f"no trial completed ({n['FAIL']} failed, {n['PRUNED']} pruned)"
    if reasons:
        line += f": {'; '.join(dict.fromkeys(reasons))}"
    return line + (f"; last trial error: {error}" if error else "")


def last_trial_error(study: Any) -> str:
    """The ``xferlab.error`` of the latest failed trial's MLflow run ("" when unknown)."""
    from optuna.trial import TrialState

    from xferlab.tracking import studies

    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    for trial in sorted(failed, key=lambda t: t.number, reverse=True):
        run_id = trial.user_attrs.get("mlflow_run_id")
        run = studies.get_run(run_id) if run_id else None
        if run is not None and run.tags.get("xferlab.error"):
            return " ".join(run.tags["xferlab.error"].split())[:500]
    return ""


def close_parent(parent_run_id: str, status: str, reason: str = "") -> None:
    """End the parent run; a FAILED/KILLED one carries its reason like an instance run
    (tag ``xferlab.error``; ``error.txt`` when FAILED), and a FINISHED one drops the reason
    an earlier, failed attempt of the resumed study left."""
    from xferlab.tracking import studies

    if status == "FINISHED":
        previous = studies.get_run(parent_run_id)
        if previous is not None and previous.tags.get("xferlab.error"):
            studies.set_tags(parent_run_id, {"xferlab.error": ""})
    elif reason:
        studies.set_tags(parent_run_id, {"xferlab.error": reason})
        if status == "FAILED":
            studies.log_text(parent_run_id, "error.txt", reason + "\n")
    studies.set_status(parent_run_id, status)


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
    """The end of ``xferlab tune``: counts and why each worker stopped, best trial (or why
    there is none), and how to look at it."""
    n, best = result["counts"], result["best"]
    lines = [f"\nstudy {spec.study!r}: {n['COMPLETE']} complete, {n['PRUNED']} pruned, {n['FAIL']} failed"
             + (f", {n['RUNNING']} running" if n["RUNNING"] else "") + f" ({'; '.join(dict.fromkeys(reasons))})"]
    if best is not None:
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        lines.append(f"best trial {best.number}: {spec.metric}={best.value:.4f}  {shown}")
    else:
        lines.append("no trial completed: the study has no result")
        if result.get("last_error"):
            lines.append(f"  last trial error: {result['last_error']}")
    for name, why in result["plots_skipped"].items():
        lines.append(f"  ({name} not drawn: {why})")
    state = (f" ({result['status']})" if result.get("status") in ("FAILED", "KILLED")
             else "" if result["closed"] else " (still RUNNING: trials in flight)")
    lines += [f"MLflow parent run {parent_run_id}{state}",
              "look at it:", f"  {ref.dashboard_command()}", f"  {mlflow_ui_command(tracking_uri)}"]
    return lines


def mlflow_ui_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri} (an MLflow tracking server)"
    shown = StorageRef(uri, "rdb").shown
    return f"mlflow ui --backend-store-uri {shown}"
