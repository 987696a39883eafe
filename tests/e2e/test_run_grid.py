"""``xferlab run`` on a grid: shared by independent processes (and with a study started at
the same moment on the same fresh store), skip and force, one failing instance among
passing ones. Cheap AT baselines (1 epoch on a few clips) stand in for work.
"""
from __future__ import annotations

import sqlite3
import subprocess
import uuid
from pathlib import Path

import optuna
import pytest

from mlflow import MlflowClient

from tests.conftest import ROOT, fresh_env, run_cli_together
from tests.e2e.test_tune import CHEAP, STUDY, check_trials_are_children, finish, start_cli

pytestmark = pytest.mark.slow  # default-run time: on 2026-12-07's slower host the default run took 657 s with these; run with -m slow


GRID = f"""\
base: {ROOT / 'experiments/smoke/at.yaml'}
train: {{epochs: 1}}
data: {{max_items: 24}}
grid: {{at.enabled: [false]}}
seeds: [0, 1, 2]
"""
FAILING = GRID.replace("grid: {at.enabled: [false]}", "grid:\n  - {at.enabled: [true], at.orthogonal: [no-such-model]}"
                       "\n  - {at.enabled: [false]}").replace("seeds: [0, 1, 2]", "seeds: [3]\nat: {pretrain: null}")


def runs_by_hash(uri: str, experiment: str = "antitransfer") -> dict[str, list]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    out: dict[str, list] = {}
    for run in client.search_runs([exp.experiment_id]):  # active runs only: lost claims are deleted
        if run.data.tags.get("xferlab.role") in ("summary", "study", "trial"):
            continue  # the spreadsheet run each `xferlab run` of an AT spec adds, a study's runs
        out.setdefault(run.data.tags["xferlab.spec_hash"], []).append(run)
    return out


def check_each_instance_once(uri: str, outs: list[str], n: int, experiment: str = "antitransfer") -> None:
    runs = runs_by_hash(uri, experiment)
    assert len(runs) == n
    assert all([r.info.status for r in rs] == ["FINISHED"] for rs in runs.values()), runs
    finished = sum(line.startswith("FINISHED ") for out in outs for line in out.splitlines())
    assert finished == n  # summary lines: each instance trained by exactly one process


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    workdir = tmp_path_factory.mktemp("grid")
    (workdir / "grid.yaml").write_text(GRID)
    return workdir, fresh_env(cache_dir), f"sqlite:///{workdir}/mlflow.db"


def start_together(workdir: Path, env: dict[str, str], processes: int, optuna_url: str | None = None) -> list[str]:
    """Half the processes run the grid, half join one study (budget 2 trials, whose first
    trial needs the orthogonal model: a prerequisite they race to pretrain), all started
    at once on the same fresh stores; each must exit 0. Their outputs."""
    storage = ["--storage", optuna_url] if optuna_url else []
    commands = [["run", str(workdir / "grid.yaml")] if n % 2 == 0 else
                ["tune", STUDY, "--n-trials", "2", *storage, *CHEAP] for n in range(processes)]
    procs = [start_cli(args, workdir, env) for args in commands]
    outs = []
    for args, proc in zip(commands, procs):
        code, out = finish(proc)
        assert code == 0, f"xferlab {' '.join(args)}:\n{out}"
        outs.append(out)
    return outs


def check_nothing_lost_or_doubled(uri: str, outs: list[str], optuna_url: str) -> None:
    """No lock error, each grid instance run once, the study exactly at its budget with no
    trial left RUNNING, the orthogonal model pretrained once, no MLflow run left RUNNING."""
    text = "\n".join(outs)
    assert "database is locked" not in text and "OperationalError" not in text and "Traceback" not in text, text
    check_each_instance_once(uri, outs[::2], 3)  # start_together: the grid processes are the even ones
    study = optuna.load_study(study_name="at-style-smoke", storage=optuna_url)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 2 and "RUNNING" not in states, states
    client = MlflowClient(uri)
    runs = check_trials_are_children(study, client)
    assert len(runs["study"]) == 1  # every tune process joined the same parent run
    sources = client.search_runs([client.get_experiment_by_name("sources").experiment_id])
    assert [r.info.status for r in sources] == ["FINISHED"]  # the prerequisite, pretrained once
    every = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert not [r.info.run_id for r in every if r.info.status == "RUNNING"]


def sqlite_intact(path: Path) -> bool:
    with sqlite3.connect(path) as con:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_four_processes_start_a_grid_and_a_study_at_once_on_a_fresh_sqlite_store(grid):
    """Two grid processes and two study workers, started together on fresh sqlite stores
    (test_skip_and_force goes on from the grid they ran)."""
    workdir, env, uri = grid
    outs = start_together(workdir, env, 4)
    check_nothing_lost_or_doubled(uri, outs, f"sqlite:///{workdir / 'optuna.db'}")
    assert sqlite_intact(workdir / "mlflow.db") and sqlite_intact(workdir / "optuna.db")


@pytest.mark.slow  # 8 processes starting PyTorch and MLflow on 2 cores: about 3 minutes
def test_eight_processes_start_a_grid_and_a_study_at_once_on_a_fresh_sqlite_store(tmp_path: Path, cache_dir: Path):
    (tmp_path / "grid.yaml").write_text(GRID)
    outs = start_together(tmp_path, fresh_env(cache_dir), 8)
    check_nothing_lost_or_doubled(f"sqlite:///{tmp_path}/mlflow.db", outs, f"sqlite:///{tmp_path / 'optuna.db'}")
    assert sqlite_intact(tmp_path / "mlflow.db") and sqlite_intact(tmp_path / "optuna.db")


@pytest.mark.slow
@pytest.mark.postgres
def test_eight_processes_start_a_grid_and_a_study_at_once_on_postgresql(tmp_path: Path, cache_dir: Path):
    from tests.e2e.test_postgres import admin, pg_url

    try:
        admin("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - no server here: say so instead of failing
        pytest.skip(f"no PostgreSQL server: {exc}")
    names = [f"xferlab_test_{role}_{uuid.uuid4().hex[:8]}" for role in ("mlflow", "optuna")]
    for name in names:
        admin(f'CREATE DATABASE "{name}"')
    try:
        (tmp_path / "grid.yaml").write_text(GRID)
        mlflow_url, optuna_url = pg_url(names[0]), pg_url(names[1])
        outs = start_together(tmp_path, {**fresh_env(cache_dir), "MLFLOW_TRACKING_URI": mlflow_url}, 8, optuna_url)
        check_nothing_lost_or_doubled(mlflow_url, outs, optuna_url)
    finally:
        for name in names:
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def rerun(grid) -> dict[str, subprocess.CompletedProcess]:
    """On the grid that test_four_processes... ran, three processes at once (neither waits
    for another): the grid again, one seed of it forced, and a grid with a failing cell
    (seed 3: an instance of its own)."""
    workdir, env, _ = grid
    (workdir / "failing.yaml").write_text(FAILING)
    commands = {"again": ["run", str(workdir / "grid.yaml")],
                "forced": ["run", str(workdir / "grid.yaml"), "--force", "--set", "seeds=[0]"],
                "failing": ["run", str(workdir / "failing.yaml")]}
    return dict(zip(commands, run_cli_together(list(commands.values()), workdir, env)))


def test_skip_and_force(grid, rerun):
    _, _, uri = grid
    again, forced = rerun["again"], rerun["forced"]
    assert again.returncode == 0 and "3 already finished, 0 to run" in again.stdout
    assert forced.returncode == 0 and "0 already finished, 1 to run" in forced.stdout, forced.stdout
    counts = sorted(len(rs) for rs in runs_by_hash(uri).values() if rs[0].data.tags["xferlab.seed"] != "3")
    assert counts == [1, 1, 2]


def test_a_failing_instance_does_not_stop_the_others(grid, rerun):
    _, _, uri = grid
    out = rerun["failing"]
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no-such-model" in out.stderr.strip().splitlines()[-1]
    statuses = {r.data.tags["xferlab.cell"]: r for rs in runs_by_hash(uri).values() for r in rs
                if r.data.tags["xferlab.seed"] == "3"}
    failed, passed = statuses["at.enabled=True,at.orthogonal=no-such-model"], statuses["at.enabled=False"]
    assert failed.info.status == "FAILED" and "no-such-model" in failed.data.tags["xferlab.error"]
    assert passed.info.status == "FINISHED"
    client = MlflowClient(uri)
    assert "traceback.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}
