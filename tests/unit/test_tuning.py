"""The tuner without training: study specs, spaces, storages, study identity, dead workers,
the budget loop and the objective's verdicts (fake trials and outcomes; seconds in all)."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from xferlab.errors import TrialPruned, UserError
from xferlab.tuning import liveness, space as sp
from xferlab.tuning.objective import Objective, TrialFailed
from xferlab.tuning.storage import open_storage, resolve
from xferlab.tuning.study import check_identity, open_study
from xferlab.tuning.studyspec import load_study_spec, with_budget
from xferlab.tuning.cli import final_status, worker_reasons, workers_status
from xferlab.tuning.worker import WorkerEnd, collect_garbage, loop, quiet_optuna, silent_exit_reason

ROOT = Path(__file__).resolve().parents[2]
SMOKE_AT = ROOT / "experiments/smoke/at.yaml"
BASE = {"experiment": str(SMOKE_AT), "study": "unit", "metric": "best_val_ce_loss", "direction": "minimize",
        "intermediate": "val_ce_loss", "n_trials": 3, "set": {"at.enabled": True},
        "space": {"at.layer": {"type": "int", "low": 1, "high": 4},
                  "at.beta": {"type": "float", "low": 0.1, "high": 10.0, "log": True}}}
quiet_optuna()
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")


def write_spec(tmp_path: Path, **changes: object) -> Path:
    tree = {**BASE, **changes}
    tree = {k: v for k, v in tree.items() if v is not None}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- study specs ------------------------------------------------------------------------
def test_shipped_study_specs_validate():
    specs = sorted((ROOT / "tuning").glob("*.yaml"))
    names = {p.stem for p in specs}
    assert {"v2s-coffee", "v2s-coffee-smoke", "at-style", "at-style-smoke"} <= names
    for path in specs:
        spec = load_study_spec(path)
        assert spec.instance({k: p.corners()[0] for k, p in spec.space.items()}).kind == spec.kind
    assert set(load_study_spec(ROOT / "tuning/v2s-coffee.yaml").space) == {"model.mapping", "model.dropout",
                                                                           "model.seg"}
    assert {"at.layer", "at.beta"} <= set(load_study_spec(ROOT / "tuning/at-style.yaml").space)


def test_set_routes_study_keys_and_experiment_keys(tmp_path: Path):
    spec = load_study_spec(write_spec(tmp_path), ["n_trials=7", "pruner.name=none", "train.epochs=2"])
    assert spec.n_trials == 7 and spec.pruner["name"] == "none"
    assert spec.sets[-1] == "train.epochs=2"
    assert spec.instance({"at.layer": 2, "at.beta": 1.0}).get("train.epochs") == 2
    assert with_budget(spec, 9, 30).n_trials == 9 and with_budget(spec, None, None).n_trials == 7


@pytest.mark.parametrize("change, message", [
    ({"space": {"at.lyaer": {"type": "int", "low": 1, "high": 3}}}, "did you mean 'at.layer'"),
    ({"space": {"at.layer": {"type": "float", "low": 1.5, "high": 3}}}, "at.layer = 1.5 is not a valid value"),
    ({"space": {"at.layer": {"type": "int", "low": 1, "high": 20}}}, "at.layer=20 is out of range"),
    ({"space": {"at.beta": {"type": "float", "low": 0.0, "high": 1, "log": True}}}, "log: true needs low > 0"),
    ({"space": {"at.beta": {"low": 2.0, "high": 1.0}}}, "low (2.0) is above high (1.0)"),
    ({"space": {"at.aggregation": {"type": "categorical", "choices": []}}}, "non-empty list"),
    ({"space": {"at.beta": {"type": "float", "low": 0.1, "hihg": 1}}}, "did you mean 'at.beta.high'"),
    ({"direction": "up"}, "direction: 'up' is not valid"),
    ({"sampler": {"name": "cmaes"}}, "use one of tpe, random, grid"),
    ({"experiment": "nowhere.yaml"}, "not found"),
    ({"n_trials": None}, "give a budget"),
    ({"set": None}, "expands into 2 instances"),
    ({"spaec": {}}, "did you mean 'space'"),
])
def test_bad_study_specs_are_one_line_user_errors(tmp_path: Path, change: dict, message: str):
    with pytest.raises(UserError) as err:
        load_study_spec(write_spec(tmp_path, **change))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_grid_sampler_caps_the_budget(tmp_path: Path):
    spec = load_study_spec(write_spec(tmp_path, sampler={"name": "grid"}, n_trials=50, space={
        "at.layer": {"type": "int", "low": 1, "high": 3},
        "at.beta": {"type": "float", "low": 0.5, "high": 1.5, "step": 0.5}}))
    assert spec.n_trials == 9
    assert sp.grid_space(spec.space)["at.beta"] == [0.5, 1.0, 1.5]


def test_fingerprint_names_the_difference():
    a = sp.parse_space({"at.beta": {"low": 0.1, "high": 1.0}}, "at", "x")
    b = sp.parse_space({"at.beta": {"low": 0.1, "high": 2.0}}, "at", "x")
    assert sp.fingerprint(a) == sp.fingerprint(sp.parse_space({"at.beta": {"type": "float", "low": 0.1,
                                                                           "high": 1.0}}, "at", "x"))
    assert "at.beta was" in sp.first_difference(sp.fingerprint(a), sp.fingerprint(b))


# --- storages ---------------------------------------------------------------------------
def test_storage_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert resolve(None).url == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert resolve("sqlite:///rel.db").path == tmp_path / "rel.db"
    journal = resolve("studies/x.log")
    assert journal.kind == "journal" and journal.dashboard_command() == f"optuna-dashboard {tmp_path}/studies/x.log"
    pg = resolve("postgresql://bob:secret@db:5432/optuna")
    assert pg.kind == "rdb" and "secret" not in pg.shown and "bob:***@db" in pg.shown
    with pytest.raises(UserError, match="is not a storage"):
        resolve("optuna.txt")


# --- study identity ---------------------------------------------------------------------
@pytest.fixture()
def sqlite_ref(tmp_path: Path):
    return resolve(f"sqlite:///{tmp_path / 'o.db'}")


def open_(spec, ref):
    from xferlab.tuning.study import build_pruner, build_sampler

    storage = open_storage(ref, spec.heartbeat_s, spec.grace_s)
    return open_study(spec, storage, ref, build_sampler(spec, 0), build_pruner(spec))


def test_resume_checks_direction_space_and_fixed_settings(tmp_path: Path, sqlite_ref):
    path = write_spec(tmp_path)
    study, created = open_(load_study_spec(path), sqlite_ref)
    assert created and study.user_attrs["xferlab.uid"]
    again, created = open_(load_study_spec(path), sqlite_ref)
    assert not created and again.user_attrs["xferlab.uid"] == study.user_attrs["xferlab.uid"]
    for overrides, message in [(["direction=maximize"], "created to minimize"),
                               (["metric=best_val_loss"], "optimises 'best_val_ce_loss'"),
                               (["train.epochs=5"], "other fixed settings")]:
        with pytest.raises(UserError, match=message):
            open_(load_study_spec(path, overrides), sqlite_ref)
    changed = write_spec(tmp_path, space={**BASE["space"], "at.layer": {"type": "int", "low": 1, "high": 5}})
    with pytest.raises(UserError, match=r"another search space \(at.layer was"):
        check_identity(study, load_study_spec(changed), sqlite_ref)


# --- dead workers and the budget --------------------------------------------------------
def running_trial_of(study, pid: int, x: float = 0.5) -> int:
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.suggest_float("x", 0, 1)
    for key, value in {liveness.HOST: liveness.context.hostname(), liveness.PID: pid,
                       liveness.OWNER: trial.number}.items():
        trial.set_user_attr(key, value)
    return trial.number


def test_a_dead_workers_trial_is_failed_and_requeued(sqlite_ref, monkeypatch: pytest.MonkeyPatch):
    closed = []
    monkeypatch.setattr("xferlab.tracking.studies.fail_trial_run", lambda uid, n, why: closed.append((n, why)))
    study = optuna.create_study(storage=open_storage(sqlite_ref, 60, 120))
    study.set_user_attr("xferlab.uid", "u1")
    number = running_trial_of(study, dead_pid())
    alive = running_trial_of(study, os.getpid())
    assert liveness.reap(study, 120, liveness.StaleTrialHandler(max_retry=1)) == [number]
    states = {t.number: t.state for t in study.trials}
    assert states[number] == TrialState.FAIL and states[alive] == TrialState.RUNNING
    [waiting] = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.system_attrs["failed_trial"] == number and liveness.OWNER not in waiting.user_attrs
    assert closed and closed[0][0] == number and "is gone" in closed[0][1]


def test_budget_loop_reaches_the_budget_despite_a_dead_worker(sqlite_ref, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("xferlab.tracking.studies.fail_trial_run", lambda *a: None)
    study = optuna.create_study(storage=open_storage(sqlite_ref, 60, 120))
    running_trial_of(study, dead_pid())

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if x > 0.8:
            raise optuna.TrialPruned()
        return x

    spec = SimpleNamespace(n_trials=1, grace_s=120)  # the re-queued trial is not a failure
    assert loop(study, objective, spec, None, liveness.StaleTrialHandler(max_retry=2)) == "budget reached"
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == 1
    assert states.count(TrialState.FAIL) == 1
    assert loop(study, objective, SimpleNamespace(n_trials=5, grace_s=120), None, None) == "budget reached"
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) == 5


def test_budget_loop_stops_after_as_many_failures_as_trials(sqlite_ref):
    study = optuna.create_study(storage=open_storage(sqlite_ref, 60, 120))

    def objective(trial):
        raise TrialFailed("broken")

    assert loop(study, objective, SimpleNamespace(n_trials=2, grace_s=120), None, None) == "every trial failed"
    assert len(study.trials) == 3  # at least 3 failures are tolerated


def test_budget_loop_says_when_failures_stop_a_study_with_results(sqlite_ref):
    study = optuna.create_study(storage=open_storage(sqlite_ref, 60, 120))
    study.enqueue_trial({"x": 0.5})

    def objective(trial):
        if trial.number == 0:
            return trial.suggest_float("x", 0, 1)
        raise TrialFailed("broken")

    assert loop(study, objective, SimpleNamespace(n_trials=3, grace_s=120), None, None) == \
        "stopped after 3 failed trials"


# --- why each worker stopped, and the exit status ----------------------------------------
def test_each_workers_reason_is_named():
    ends = [WorkerEnd(0, 0, "budget reached"), WorkerEnd(1, 1, "crashed: ValueError: x"),
            WorkerEnd(2, 0, "budget reached"), WorkerEnd(3, -9, silent_exit_reason(-9))]
    assert worker_reasons(ends) == ["workers 0, 2: budget reached", "worker 1: crashed: ValueError: x",
                                    "worker 3: killed by signal 9"]
    assert silent_exit_reason(143) == "interrupted" and silent_exit_reason(1) == "exited with status 1"
    assert workers_status([0, 0]) == 0 and workers_status([0, 2]) == 2 and workers_status([2, 143]) == 1


def test_a_study_without_a_complete_trial_exits_non_zero():
    assert final_status(0, {"best": None}) == 1
    assert final_status(2, {"best": None}) == 2  # the workers' user error says more
    assert final_status(0, {"best": object()}) == 0


# --- the objective's verdicts -----------------------------------------------------------
class FakeTrial:
    number = 3

    def __init__(self, prune: bool = False) -> None:
        self.reports, self.prune = [], prune

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune


@pytest.fixture()
def objective(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    tags = []
    monkeypatch.setattr("xferlab.tracking.studies.set_tags", lambda run_id, t: tags.append(dict(t)))
    monkeypatch.setattr("xferlab.tracking.studies.set_status", lambda run_id, s: tags.append({"status": s}))
    obj = Objective(load_study_spec(write_spec(tmp_path)), "parent", "uid")
    obj.tags = tags
    return obj


def outcome(status: str, metrics: dict | None = None, user_error: bool = False):
    return SimpleNamespace(status=status, metrics=metrics or {}, run_id="r1", error="boom", user_error=user_error)


def test_verdicts_map_outcomes_to_states(objective):
    assert objective._conclude(FakeTrial(), outcome("FINISHED", {"best_val_ce_loss": 0.7})) == 0.7
    assert objective.tags[-1]["xferlab.trial_state"] == "COMPLETE"
    with pytest.raises(optuna.TrialPruned):
        objective._conclude(FakeTrial(), outcome("PRUNED"))
    assert objective.tags[-1]["xferlab.trial_state"] == "PRUNED"
    with pytest.raises(TrialFailed):
        objective._conclude(FakeTrial(), outcome("FAILED"))
    with pytest.raises(UserError, match="boom"):
        objective._conclude(FakeTrial(), outcome("FAILED", user_error=True))
    with pytest.raises(UserError, match="not a final metric"):
        objective._conclude(FakeTrial(), outcome("FINISHED", {"test_loss": 1.0}))
    assert objective.tags[-1] == {"status": "FAILED"}
    with pytest.raises(TrialFailed):
        objective._conclude(FakeTrial(), outcome("FINISHED", {"best_val_ce_loss": float("nan")}))


def test_epoch_hook_reports_and_prunes(objective):
    trial = FakeTrial()
    hook = objective.reporter(trial)
    hook(1, {"val_ce_loss": 1.5, "val_accuracy": 0.2})
    assert trial.reports == [(1, 1.5)]
    with pytest.raises(TrialPruned, match="epoch 2"):
        objective.reporter(FakeTrial(prune=True))(2, {"val_ce_loss": 1.4})
    with pytest.raises(UserError, match="not logged per epoch"):
        hook(2, {"val_loss": 1.0})


def test_staleness_of_trials_on_other_hosts():
    import time as _time

    def trial(**attrs):
        return SimpleNamespace(number=4, user_attrs={liveness.HOST: "elsewhere", liveness.PID: 1,
                                                     liveness.OWNER: 4, **attrs}, datetime_start=None)

    now = _time.time()
    assert "no beat from elsewhere" in liveness.stale_reason(trial(**{liveness.BEAT: now - 500}), 120, now)
    assert liveness.stale_reason(trial(**{liveness.BEAT: now - 10}), 120, now) is None
    assert liveness.stale_reason(trial(), 120, now) is None  # RDB: Optuna's heartbeat decides


# --- the parent run of a study without a result (real Optuna and MLflow sqlite stores) ----
@pytest.fixture()
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from mlflow import MlflowClient

    from xferlab.tracking import ensure_store

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    uri = ensure_store()
    return MlflowClient(uri, uri)


def failing_trial_run(error: str) -> str:
    """A FAILED trial run carrying ``xferlab.error``, as the runner leaves one."""
    from xferlab.tracking import studies

    run_id = studies.create_run("tune-unit", "trial", {"xferlab.role": "trial", "xferlab.error": error}, {})
    studies.set_status(run_id, "FAILED")
    return run_id


def artifact_text(client, run_id: str, path: str) -> str:
    return Path(client.download_artifacts(run_id, path)).read_text()


def test_parent_of_a_study_whose_trials_all_failed_ends_failed(tmp_path: Path, sqlite_ref, mlflow_store):
    from xferlab.tracking import studies
    from xferlab.tuning import summary

    client, spec = mlflow_store, load_study_spec(write_spec(tmp_path))
    study = optuna.create_study(storage=open_storage(sqlite_ref, 60, 120))
    parent = studies.create_run("tune-unit", "study", {"xferlab.role": "study"}, {})

    def objective(trial):
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr("mlflow_run_id", failing_trial_run(f"ValueError: boom {trial.number}"))
        raise TrialFailed("boom")

    study.optimize(objective, n_trials=2, catch=(TrialFailed,))
    reasons = ["workers 0, 1: every trial failed"]
    result = summary.summarize(study, spec, parent, reasons=reasons)
    run = client.get_run(parent)
    assert result["status"] == run.info.status == "FAILED" and result["best"] is None
    reason = run.data.tags["xferlab.error"]
    assert reason == ("no trial completed (2 failed, 0 pruned): workers 0, 1: every trial failed; "
                      "last trial error: ValueError: boom 1")
    assert artifact_text(client, parent, "error.txt") == reason + "\n"
    lines = summary.closing_lines(spec, resolve(None), result, parent, "sqlite:///m.db", reasons)
    assert lines[0].endswith("0 complete, 0 pruned, 2 failed (workers 0, 1: every trial failed)")
    assert "no trial completed: the study has no result" in lines
    assert "  last trial error: ValueError: boom 1" in lines and f"MLflow parent run {parent} (FAILED)" in lines
    assert final_status(0, result) == 1

    studies.set_status(parent, "RUNNING")  # resumed (parent.ensure_parent reopens it): one trial completes
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    result = summary.summarize(study, spec, parent, reasons=["budget reached"])
    run = client.get_run(parent)
    assert result["status"] == run.info.status == "FINISHED" and run.data.tags["xferlab.error"] == ""
    assert final_status(0, result) == 0


def test_parent_of_an_all_pruned_study_ends_failed(tmp_path: Path, sqlite_ref, mlflow_store):
    from xferlab.tracking import studies
    from xferlab.tuning import summary

    study = optuna.create_study(storage=open_storage(sqlite_ref, 60, 120))
    parent = studies.create_run("tune-unit", "study", {"xferlab.role": "study"}, {})

    def objective(trial):
        trial.suggest_float("x", 0, 1)
        raise optuna.TrialPruned()

    study.optimize(objective, n_trials=2)
    summary.summarize(study, load_study_spec(write_spec(tmp_path)), parent, reasons=["budget reached"])
    run = mlflow_store.get_run(parent)
    assert run.info.status == "FAILED"
    assert run.data.tags["xferlab.error"] == "no trial completed (0 failed, 2 pruned): budget reached"


@pytest.mark.parametrize("exc, status, reason", [
    (UserError("no dataset under /nowhere"), "FAILED", "UserError: no dataset under /nowhere"),
    (KeyboardInterrupt(), "KILLED", "interrupted"),
])
def test_parent_stopped_by_an_exception_carries_its_reason(tmp_path: Path, sqlite_ref, mlflow_store,
                                                           exc: BaseException, status: str, reason: str):
    from xferlab.tracking import studies
    from xferlab.tuning import summary

    study = optuna.create_study(storage=open_storage(sqlite_ref, 60, 120))
    parent = studies.create_run("tune-unit", "study", {"xferlab.role": "study"}, {})
    summary.summarize_quietly(study, load_study_spec(write_spec(tmp_path)), parent, exc)
    run = mlflow_store.get_run(parent)
    assert run.info.status == status and run.data.tags["xferlab.error"] == reason
    files = {a.path for a in mlflow_store.list_artifacts(parent)}
    assert ("error.txt" in files) == (status == "FAILED")


def test_trials_started_at_the_same_instant_never_exceed_the_budget(sqlite_ref):
    """Three workers ask for a trial at once with room for two: trial numbers are given out
    atomically, so the third stands down before it runs (FAIL marked surplus), counted
    neither as done nor as a failure; once an earlier trial fails, a new one fits again."""
    from xferlab.tuning.study import SURPLUS, counts, over_budget

    study = optuna.create_study(storage=open_storage(sqlite_ref, 60, 120))
    first, second, third = (study.ask() for _ in range(3))
    assert [over_budget(study, t.number, 2) for t in (first, second, third)] == [False, False, True]
    assert not over_budget(study, third.number, None)  # a time budget only: no trial count
    objective = Objective(SimpleNamespace(n_trials=2, study="s", metric="m"), "parent", "uid")
    with pytest.raises(TrialFailed, match="surplus"):
        objective(third)
    study.tell(third, state=TrialState.FAIL)
    assert study.trials[third.number].system_attrs[SURPLUS] is True
    n = counts(study)
    assert (n["FAIL"], n["SURPLUS"], n["RUNNING"]) == (1, 1, 2)
    study.tell(first, state=TrialState.FAIL)  # a real failure frees its place in the budget
    assert not over_budget(study, study.ask().number, 2)


def test_a_worker_freezes_what_it_keeps_after_its_first_trial():
    """After the first trial the worker's long-lived objects leave the collector's view (a
    full collection over them cost 0.27 s per trial); a trial's own cycles are still freed."""
    gc.unfreeze()
    try:
        assert collect_garbage(False) is True
        frozen = gc.get_freeze_count()
        assert frozen > 0

        class Cycle:
            pass

        a, b = Cycle(), Cycle()
        a.other, b.other = b, a
        del a, b  # a reference cycle, as a finished trial leaves them
        kept = [[] for _ in range(1000)]  # alive and tracked: a later call must not freeze them
        assert collect_garbage(True) is True and len(kept) == 1000
        assert gc.get_freeze_count() <= frozen  # nothing new frozen (frozen objects may still die)
        assert not any(type(o).__name__ == "Cycle" for o in gc.get_objects())
    finally:
        gc.unfreeze()
