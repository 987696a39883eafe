"""``xferlab run`` on a grid: shared by independent processes, skip and force, one failing
instance among passing ones. Cheap AT baselines (1 epoch on a few clips) stand in for work.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import ROOT, fresh_env, run_cli, run_cli_together
from tests.e2e.test_tune import finish, start_cli

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
        if run.data.tags.get("xferlab.role") == "summary":
            continue  # the spreadsheet run each `xferlab run` of an AT spec adds
        out.setdefault(run.data.tags["xferlab.spec_hash"], []).append(run)
    return out


def run_twice_at_once(spec: Path, workdir: Path, env: dict[str, str]) -> list[str]:
    """Two independent ``xferlab run`` processes (two 'machines') on the same store."""
    procs = [start_cli(["run", str(spec)], workdir, env) for _ in range(2)]
    outs = []
    for proc in procs:
        code, out = finish(proc)
        assert code == 0, out
        outs.append(out)
    return outs


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


def test_two_processes_share_a_grid_on_a_fresh_sqlite_store(grid):  # test_skip_and_force reuses its grid
    workdir, env, uri = grid
    outs = run_twice_at_once(workdir / "grid.yaml", workdir, env)
    check_each_instance_once(uri, outs, 3)


def test_skip_and_force(grid):
    workdir, env, uri = grid
    again, forced = run_cli_together([["run", str(workdir / "grid.yaml")],  # at once: neither waits for the other
                                      ["run", str(workdir / "grid.yaml"), "--force", "--set", "seeds=[0]"]], workdir, env)
    assert again.returncode == 0 and "3 already finished, 0 to run" in again.stdout
    assert forced.returncode == 0 and "0 already finished, 1 to run" in forced.stdout, forced.stdout
    counts = sorted(len(rs) for rs in runs_by_hash(uri).values())
    assert counts == [1, 1, 2]


def test_a_failing_instance_does_not_stop_the_others(grid):
    workdir, env, uri = grid
    (workdir / "failing.yaml").write_text(FAILING)
    out = run_cli(["run", str(workdir / "failing.yaml")], workdir, env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no-such-model" in out.stderr.strip().splitlines()[-1]
    statuses = {r.data.tags["xferlab.cell"]: r for rs in runs_by_hash(uri).values() for r in rs
                if r.data.tags["xferlab.seed"] == "3"}
    failed, passed = statuses["at.enabled=True,at.orthogonal=no-such-model"], statuses["at.enabled=False"]
    assert failed.info.status == "FAILED" and "no-such-model" in failed.data.tags["xferlab.error"]
    assert passed.info.status == "FINISHED"
    client = MlflowClient(uri)
    assert "traceback.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}
