"""``xferlab tune`` end to end on the AT smoke study (PyTorch: cheaper than TensorFlow).

One working directory for the module: the first test runs two workers on a fresh sqlite
store (which also pretrains the tiny orthogonal model, once, as a child of the study's
parent run); the others reuse its MLflow store with studies of their own.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import ROOT, fresh_env, run_cli

STUDY = str(ROOT / "tuning/at-style-smoke.yaml")
CHEAP = ["--set", "train.epochs=2", "--set", "data.max_items=32"]  # a trial in seconds


def start_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """``python -m xferlab ARGS`` in the background, output captured."""
    return subprocess.Popen([sys.executable, "-m", "xferlab", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def study_runs(client: MlflowClient, uid: str) -> dict[str, list]:
    """{role: runs} of one study (any experiment), by its uid tag."""
    ids = [e.experiment_id for e in client.search_experiments()]
    out: dict[str, list] = {}
    for run in client.search_runs(ids, f"tags.`xferlab.study_uid` = '{uid}'"):
        out.setdefault(run.data.tags["xferlab.role"], []).append(run)
    return out


def check_trials_are_children(study: optuna.Study, client: MlflowClient) -> dict[str, list]:
    """One parent run; every trial run its child, with the state tag and the matching status."""
    runs = study_runs(client, study.user_attrs["xferlab.uid"])
    [parent] = runs["study"]
    status_of = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
    numbers = [int(r.data.tags["xferlab.trial_number"]) for r in runs["trial"]]
    assert len(numbers) == len(set(numbers)) == len(study.trials)
    states = {t.number: t.state.name for t in study.trials}
    for run in runs["trial"]:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        state = run.data.tags["xferlab.trial_state"]
        assert state == states[int(run.data.tags["xferlab.trial_number"])]
        assert run.info.status == status_of[state]
    return runs


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """Two workers, fresh sqlite stores (Optuna and MLflow), 3 trials."""
    workdir, env = tmp_path_factory.mktemp("tune"), fresh_env(cache_dir)
    out = run_cli(["tune", STUDY, "--workers", "2", "--n-trials", "3", *CHEAP], workdir, env)
    assert out.returncode == 0, out.stdout + out.stderr
    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    return workdir, env, out.stdout, client


def load(workdir: Path, name: str = "at-style-smoke", storage: str = "optuna.db") -> optuna.Study:
    url = str(workdir / storage) if storage.endswith(".log") else f"sqlite:///{workdir / storage}"
    if storage.endswith(".log"):
        from optuna.storages.journal import JournalFileBackend

        url = optuna.storages.JournalStorage(JournalFileBackend(url))
    return optuna.load_study(study_name=name, storage=url)


@pytest.mark.slow  # default-run time: on 2026-12-07's slower host the default run took 657 s with these; run with -m slow
def test_two_workers_on_a_fresh_sqlite_store(tuned):
    workdir, _, stdout, client = tuned
    study = load(workdir)
    states = [t.state.name for t in study.trials]
    # the budget is 3, exactly: a trial started at the same instant as the last ones stands
    # down (a FAIL marked surplus, tuning/worker.py)
    assert states.count("COMPLETE") + states.count("PRUNED") == 3 and "RUNNING" not in states
    assert "[worker 0]" in stdout and "[worker 1]" in stdout
    runs = check_trials_are_children(study, client)
    [parent] = runs["study"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["metric"] == "best_val_ce_loss" and "space.at.beta" in parent.data.params
    assert parent.data.metrics["trials_complete"] == states.count("COMPLETE")
    if "COMPLETE" in states:
        assert parent.data.tags["xferlab.best_trial"] == str(study.best_trial.number)
        assert parent.data.tags["xferlab.best.at.layer"] == str(study.best_trial.params["at.layer"])
        files = {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert {"optimization_history.png", "trials.csv", "best_trial.json", "study.yaml"} <= files
    pretrain = [r for r in client.search_runs([client.get_experiment_by_name("sources").experiment_id])]
    assert [r.data.tags["mlflow.parentRunId"] for r in pretrain] == [parent.info.run_id]  # pretrained once
    assert f"optuna-dashboard sqlite:///{workdir}/optuna.db" in stdout
    assert f"mlflow ui --backend-store-uri sqlite:///{workdir}/mlflow.db" in stdout


@pytest.mark.slow  # default-run time: on 2026-12-07's slower host the default run took 657 s with these; run with -m slow
@pytest.mark.parametrize("override, message", [
    ("direction=maximize", "was created to minimize best_val_ce_loss, the spec says maximize"),
    ("space={at.layer: {type: int, low: 1, high: 6}}", "another search space (at.beta was searched"),
])
def test_a_changed_study_is_refused(tuned, override: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys):
    from xferlab.cli import main  # in-process: the refusal comes before any trial or worker

    workdir, env, _, _ = tuned
    spec = workdir / "changed.yaml"
    spec.write_text(Path(STUDY).read_text().replace("../experiments", str(ROOT / "experiments")))
    if override.startswith("space="):
        spec.write_text(spec.read_text().split("space:")[0] + "space:\n  at.layer: {type: int, low: 1, high: 6}\n")
        override = "n_trials=3"
    before = len(load(workdir).trials)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("XFERLAB_CACHE", env["XFERLAB_CACHE"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    assert main(["tune", str(spec), "--set", override, "--storage", f"sqlite:///{workdir / 'optuna.db'}",
                 *CHEAP]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert len(load(workdir).trials) == before  # nothing ran


@pytest.mark.slow  # default-run time; the logic is also held by unit tests
def test_pruned_trials_are_tagged_and_killed_on_journal_storage(tuned):
    workdir, env, _, client = tuned
    out = run_cli(["tune", STUDY, "--storage", "studies/prune.log", "--n-trials", "2", "--set", "study=prune",
                   "--set", "pruner={name: threshold, options: {upper: 0.0}}", *CHEAP], workdir, env)
    assert out.returncode == 1, out.stdout + out.stderr  # every trial pruned: the study has no result
    study = load(workdir, "prune", "studies/prune.log")
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    runs = check_trials_are_children(study, client)
    [parent] = runs["study"]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["xferlab.error"] == "no trial completed (0 failed, 2 pruned): budget reached"
    for run in runs["trial"]:
        assert run.data.tags["xferlab.pruned"] == "true"
        assert len(client.get_metric_history(run.info.run_id, "val_ce_loss")) == 1  # stopped after epoch 1
    assert f"optuna-dashboard {workdir}/studies/prune.log" in out.stdout


# Trials without the orthogonal model (no pretraining) and with a rate that makes the
# validation loss NaN after one epoch: each trial fails in seconds, and not on a user error.
DIVERGING = ["--set", "at.enabled=false", "--set", "train.lr=1e30", "--set", "train.epochs=1",
             "--set", "data.max_items=16"]


@pytest.fixture(scope="module")
def failing(tuned) -> dict[str, subprocess.CompletedProcess]:
    """Two studies that produce no result, run at once: every trial diverges (2 workers), and
    a user error in the spec (the intermediate metric is never logged)."""
    from tests.conftest import run_cli_together

    workdir, env, _, _ = tuned
    commands = {"diverged": ["tune", STUDY, "--workers", "2", "--n-trials", "1", "--set", "study=diverged", *DIVERGING],
                "user-error": ["tune", STUDY, "--n-trials", "2", "--set", "study=user-error", "--set",
                               "intermediate=val_nope", "--set", "at.enabled=false", *CHEAP]}
    return dict(zip(commands, run_cli_together(list(commands.values()), workdir, env)))


@pytest.mark.slow  # default-run time; the logic is also held by unit tests
def test_a_study_whose_every_trial_fails_exits_non_zero_with_a_failed_parent(tuned, failing):
    workdir, env, _, client = tuned
    out = failing["diverged"]
    assert out.returncode == 1, out.stdout + out.stderr
    study = load(workdir, "diverged")
    states = [t.state.name for t in study.trials]
    assert set(states) == {"FAIL"} and len(states) >= 3  # 3 failures tolerated, 2 workers may overshoot
    closing = f"study 'diverged': 0 complete, 0 pruned, {len(states)} failed (workers 0, 1: every trial failed)"
    assert closing in out.stdout.splitlines()
    assert "no trial completed: the study has no result" in out.stdout
    runs = check_trials_are_children(study, client)
    [parent] = runs["study"]
    assert parent.info.status == "FAILED"
    reason = parent.data.tags["xferlab.error"]
    assert reason.startswith(f"no trial completed ({len(states)} failed, 0 pruned): workers 0, 1: every trial "
                             "failed; last trial error: ") and "\n" not in reason
    assert Path(client.download_artifacts(parent.info.run_id, "error.txt")).read_text() == reason + "\n"
    assert f"MLflow parent run {parent.info.run_id} (FAILED)" in out.stdout


@pytest.mark.slow  # default-run time; the logic is also held by unit tests
def test_a_user_error_in_a_trial_stops_the_study_with_a_failed_parent(tuned, failing):
    workdir, env, _, client = tuned
    out = failing["user-error"]
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("xferlab: error: intermediate metric 'val_nope' is not")
    study = load(workdir, "user-error")
    assert [t.state.name for t in study.trials] == ["FAIL"]  # the same mistake would fail every trial
    [parent] = check_trials_are_children(study, client)["study"]
    assert parent.info.status == "FAILED"
    reason = parent.data.tags["xferlab.error"]
    assert reason.startswith("UserError: intermediate metric 'val_nope' is not logged per epoch")
    assert Path(client.download_artifacts(parent.info.run_id, "error.txt")).read_text() == reason + "\n"


@pytest.mark.slow  # default-run time; the logic is also held by unit tests
def test_study_resumed_after_its_worker_was_killed(tuned):
    workdir, env, _, client = tuned
    slower = ["--set", "train.epochs=4", "--set", "data.max_items=32"]  # a trial outlives the wait below (polled)
    args = ["tune", STUDY, "--n-trials", "1", "--set", "study=killed", *slower]
    proc = start_cli(args, workdir, env)
    victim = wait_for_running_trial(workdir, "killed", proc, client)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    code, out = finish(start_cli(args, workdir, env))
    assert code == 0, out
    study = load(workdir, "killed")
    states = {t.number: t.state.name for t in study.trials}
    assert states[victim] == "FAIL" and "RUNNING" not in states.values()
    assert list(states.values()).count("COMPLETE") + list(states.values()).count("PRUNED") == 1
    assert any(t.system_attrs.get("failed_trial") == victim for t in study.trials)  # its parameters re-ran
    runs = check_trials_are_children(study, client)  # one parent run, resumed
    assert runs["study"][0].info.status == "FINISHED"
    [dead] = [r for r in runs["trial"] if r.data.tags["xferlab.trial_number"] == str(victim)]
    assert "worker died" in dead.data.tags["xferlab.error"]


def wait_for_running_trial(workdir: Path, name: str, proc: subprocess.Popen, client: MlflowClient,
                           timeout: float = 300) -> int:
    """The number of the first trial that is RUNNING with its MLflow run open (and still
    RUNNING: polled, not waited for by a fixed sleep that a fast trial may outlast)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            trials = load(workdir, name).trials
        except (KeyError, Exception):  # noqa: BLE001 - the study is not created yet
            trials = []
        running = [t for t in trials if t.state.name == "RUNNING" and "xferlab.pid" in t.user_attrs]
        for trial in running:
            ids = [e.experiment_id for e in client.search_experiments()]
            query = (f"tags.`xferlab.trial_number` = '{trial.number}' and attributes.status = 'RUNNING' "
                     f"and tags.`xferlab.study` = '{name}'")
            if client.search_runs(ids, query):
                return trial.number
        time.sleep(0.2)
    raise AssertionError("no trial started")
