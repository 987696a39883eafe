"""The objective: one trial = one experiment instance run by the runner, as a child run.

The trial's parameters are spec overrides, so a trial runs exactly the code path of
``xferlab run`` (:func:`xferlab.runner.run_one`, role ``trial``). Per-epoch values of the
``intermediate`` metric are reported to Optuna from the run's epoch hook, which raises
xferlab's own :class:`~xferlab.errors.TrialPruned` (training code knows no optuna); it is
turned into ``optuna.TrialPruned`` here, at the objective's boundary.

Each trial's MLflow run carries the study uid, the trial number and, once Optuna's verdict
is known, ``xferlab.trial_state`` = COMPLETE | PRUNED | FAIL with the matching run status
FINISHED | KILLED | FAILED.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from xferlab.errors import TrialPruned, UserError
from xferlab.tuning.studyspec import StudySpec


class TrialFailed(Exception):
    """A trial that failed on its own (caught by the worker, which goes on)."""


class Objective:
    """Callable ``objective(trial) -> float`` for ``study.optimize``."""

    def __init__(self, spec: StudySpec, parent_run_id: str, uid: str, beat_s: float | None = None,
                 worker: int | None = None) -> None:
        self.spec, self.parent_run_id, self.uid = spec, parent_run_id, uid
        self.beat_s, self.worker = beat_s, worker

    def __call__(self, trial: Any) -> float:
        from xferlab.tuning.liveness import owned
        from xferlab.tuning.study import SURPLUS, over_budget

        if over_budget(trial.study, trial.number, self.spec.n_trials):
            trial.storage.set_trial_system_attr(trial._trial_id, SURPLUS, True)
            self._say(trial, "SURPLUS", {}, time.monotonic(), f"earlier trials already fill the budget of "
                      f"{self.spec.n_trials}; not run")
            raise TrialFailed("surplus: the budget was taken by earlier trials")
        params = {key: p.suggest(trial) for key, p in self.spec.space.items()}
        instance = self.spec.instance(params)
        start = time.monotonic()
        with owned(trial, self.beat_s):
            outcome = self._run(trial, instance)
        trial.set_user_attr("mlflow_run_id", outcome.run_id)
        try:
            value = self._conclude(trial, outcome)
        except BaseException as exc:
            self._say(trial, "PRUNED" if isinstance(exc, _pruned()) else "FAIL", params, start, str(exc))
            raise
        self._say(trial, "COMPLETE", params, start, f"{self.spec.metric}={value:.4f}")
        return value

    def _run(self, trial: Any, instance: Any) -> Any:
        from xferlab.runner import run_one
        from xferlab.tracking import Terminated
        from xferlab.tracking.studies import STUDY_UID, TRIAL_NUMBER, TRIAL_STATE, fail_trial_run

        tags = {STUDY_UID: self.uid, TRIAL_NUMBER: str(trial.number), TRIAL_STATE: "RUNNING",
                "xferlab.study": self.spec.study}
        retry_of = trial.storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
        if retry_of is not None:  # re-queued parameters of a trial whose worker died
            tags["xferlab.retry_of"] = str(retry_of)
        try:
            return run_one(instance, parent_run_id=self.parent_run_id, role="trial",
                           on_epoch=self.reporter(trial), extra_tags=tags,
                           run_name=f"{self.spec.study} trial {trial.number}")
        except Terminated as exc:  # SIGTERM: Optuna marks only Exception/KeyboardInterrupt FAIL
            fail_trial_run(self.uid, trial.number, "terminated (SIGTERM)", only_running=False)
            raise KeyboardInterrupt(str(exc)) from exc

    def reporter(self, trial: Any) -> Callable[[int, dict[str, float]], None]:
        """The epoch hook: report the intermediate value, prune when Optuna says so."""
        key = self.spec.intermediate

        def hook(epoch: int, metrics: dict[str, float]) -> None:
            if key is None:
                return
            if key not in metrics:
                raise UserError(f"intermediate metric {key!r} is not logged per epoch (logged: "
                                f"{', '.join(sorted(metrics))}): set `intermediate:` to one of them")
            value = float(metrics[key])
            if not math.isfinite(value):
                return
            trial.report(value, int(epoch))
            if trial.should_prune():
                raise TrialPruned(f"pruned at epoch {epoch} ({key}={value:.4f})")

        return hook

    def _conclude(self, trial: Any, outcome: Any) -> float:
        """Optuna's verdict from the runner's outcome, recorded on the MLflow run."""
        import optuna

        if outcome.status == "PRUNED":
            self._tag(outcome.run_id, "PRUNED")
            raise optuna.TrialPruned(outcome.error)
        if outcome.status != "FINISHED":
            self._tag(outcome.run_id, "FAIL")
            if outcome.user_error:  # the same mistake would fail every trial: stop the study
                raise UserError(outcome.error)
            raise TrialFailed(outcome.error or outcome.status)
        value = outcome.metrics.get(self.spec.metric)
        if value is None or not math.isfinite(float(value)):
            self._tag(outcome.run_id, "FAIL", failed=True, error=f"metric {self.spec.metric} = {value}")
            if value is None:
                raise UserError(f"metric {self.spec.metric!r} is not a final metric of the run (it has: "
                                f"{', '.join(sorted(outcome.metrics))}): set `metric:` to one of them")
            raise TrialFailed(f"{self.spec.metric} is {value}")
        self._tag(outcome.run_id, "COMPLETE", value=float(value))
        return float(value)

    def _tag(self, run_id: str, state: str, value: float | None = None, failed: bool = False,
             error: str = "") -> None:
        from xferlab.tracking.studies import TRIAL_STATE, set_status, set_tags

        if not run_id:
            return
        tags = {TRIAL_STATE: state, **({"xferlab.trial_value": value} if value is not None else {}),
                **({"xferlab.error": error} if error else {})}
        set_tags(run_id, tags)
        if failed:
            set_status(run_id, "FAILED")

    def _say(self, trial: Any, state: str, params: dict[str, Any], start: float, note: str) -> None:
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        who = f" [worker {self.worker}]" if self.worker is not None else ""
        print(f"trial {trial.number} {state} {note} | {shown} ({time.monotonic() - start:.0f} s){who}", flush=True)


def _pruned() -> type:
    import optuna

    return optuna.TrialPruned


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
