"""The ways a user starts work, each run end to end on a fresh store: the quickstart (the
README's main job), the MLflow project's entry points (``mlflow run``) and a grid over
several worker processes (``xferlab run --workers 2``). Slow: ``pytest -m slow``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, fresh_env, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def all_runs(workdir: Path) -> list:
    """Every run of every experiment in the store of ``workdir``, newest first."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=1000)


def untracked(root: Path) -> list[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("??")]


def test_the_quickstart_runs_every_stage_on_a_fresh_store(tmp_path: Path, cache_dir: Path):
    """The README's main job from an empty directory: every stage passes, every run it
    made is FINISHED, and the report exists. It leaves nothing untracked in the checkout."""
    before = untracked(ROOT)
    env = {**fresh_env(tmp_path / "cache"), "XFERLAB_CACHE": str(tmp_path / "cache")}
    out = run_cli(["quickstart"], tmp_path, env, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "=== quickstart finished" in out.stdout
    runs = all_runs(tmp_path)
    pruned = [r for r in runs if r.data.tags.get("xferlab.trial_state") == "PRUNED"]
    assert runs and {r.info.status for r in runs if r not in pruned} == {"FINISHED"}
    assert {r.info.status for r in pruned} <= {"KILLED"}  # a trial the pruner stopped ends KILLED, by design
    roles = {r.data.tags.get("xferlab.role") for r in runs}
    assert {"final", "pretrain", "study", "trial"} <= roles
    assert (tmp_path / "reports" / "index.html").is_file()
    assert untracked(ROOT) == before


def test_mlflow_run_entry_points(tmp_path: Path, cache_dir: Path):
    """``mlflow run . -e experiment`` (a spec; its missing source model is pretrained first)
    and ``-e v2s`` (one V2S run from parameters) with the installed package."""
    env = {**fresh_env(cache_dir), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    mlflow_cli = [sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local"]
    first = subprocess.run([*mlflow_cli, "-e", "experiment", "-P", "spec=experiments/smoke/v2s.yaml"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = subprocess.run([*mlflow_cli, "-e", "v2s", "-P", "source=attrnn_tiny", "-P", "epochs=1",
                             "-P", "mapping=2", "-P", "seg=1"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    runs = all_runs(tmp_path)
    v2s = [r for r in runs if r.data.tags.get("xferlab.kind") == "v2s"]
    assert len(v2s) == 2 and {r.info.status for r in v2s} == {"FINISHED"}
    single = [r for r in v2s if r.data.tags.get("xferlab.spec") == "v2s/single"]
    assert len(single) == 1 and single[0].data.tags["xferlab.val_mode"] == "holdout"
    assert all("mlflow.parentRunId" in r.data.tags for r in v2s)  # children of the project runs


def test_a_grid_over_two_worker_processes(tmp_path: Path, cache_dir: Path):
    """``xferlab run --workers 2`` from an empty store: the missing orthogonal model is made
    once, then the two instances run in two processes, each once, both FINISHED."""
    out = run_cli(["run", str(ROOT / "experiments/smoke/at.yaml"), "--workers", "2"], tmp_path, fresh_env(cache_dir))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = all_runs(tmp_path)
    at = [r for r in runs if r.data.tags.get("xferlab.kind") == "at"]
    assert sorted(r.data.tags["xferlab.cell"] for r in at) == ["at.enabled=False", "at.enabled=True"]
    assert {r.info.status for r in at} == {"FINISHED"}
    assert len([r for r in runs if r.data.tags.get("xferlab.kind") == "pretrain_at"]) == 1
