"""Tracking on a real MLflow sqlite store: run lifecycle, statuses, dedup, reaper, store creation.

One store per module (creating an MLflow schema takes seconds); tests stay independent by
using their own spec hashes and experiments.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from xferlab.errors import TrialPruned, UserError
from xferlab.spec import Instance
from xferlab.tracking import (Terminated, ensure_store, find_finished, finished_runs, get_experiment_id,
                              handle_sigterm, reap, signals, start_instance_run, start_run, tracking_uri)
from xferlab.tracking.runs import MAX_PARAM_VAL_LENGTH, run_name

SRC = str(Path(__file__).resolve().parents[2] / "src")


def make_instance(spec_hash: str = "", experiment: str = "unit", cell: str = "default", seed: int = 0,
                  **config: object) -> Instance:
    tree = {"kind": "v2s", "paper": "v2s", "table": "v2s_table2", "experiment": experiment, "seed": seed,
            "data": {"dataset": "ucr/Coffee"}, "model": {"mapping": 3, "seg": [1, 2]}, **config}
    return Instance(spec_name="smoke/v2s", spec_path="experiments/smoke/v2s.yaml", kind="v2s", paper="v2s",
                    table="v2s_table2", experiment=experiment, cell=cell, seed=seed, config=tree,
                    hash=spec_hash or uuid.uuid4().hex[:16])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        mp.chdir(root)
        yield ensure_store()


@pytest.fixture()
def client(store: str) -> MlflowClient:
    return MlflowClient(store, store)


def artifact_text(client: MlflowClient, run_id: str, path: str) -> str:
    return Path(client.download_artifacts(run_id, path)).read_text()


def test_tracking_uri_default_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///rel/x.db")
    assert tracking_uri() == f"sqlite:///{tmp_path}/rel/x.db"  # made absolute for every worker
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "mlruns"))
    with pytest.raises(UserError, match="file store"):
        ensure_store()


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is not None, reason="psycopg 3 serves bare URLs itself")
def test_postgres_tracking_uri_gets_the_installed_driver(monkeypatch: pytest.MonkeyPatch):
    """SQLAlchemy maps bare postgresql:// to psycopg 3, which is not installed: the URI names psycopg2."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://postgres@127.0.0.1:5432/xferlab")
    assert tracking_uri() == "postgresql+psycopg2://postgres@127.0.0.1:5432/xferlab"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking_uri() == "http://tracking:5000"


def test_successful_run_records_everything(client: MlflowClient, store: str):
    inst = make_instance(cell="data.dataset=ucr/Coffee,model.seg=1", long="x" * 7000)
    with start_instance_run(inst, extra_tags={"note": "unit"}) as run:
        assert client.get_run(run.run_id).info.status == "RUNNING"
        for epoch in range(3):
            run.log_epoch(epoch, {"train_loss": 1.0 / (epoch + 1), "val_accuracy": 0.5 + epoch / 10})
        run.log_metrics({"test_accuracy": 0.875, "best_epoch": 2})
        (run.artifact_dir / "curves.txt").write_text("curve")
    got = client.get_run(run.run_id)
    tags, params = got.data.tags, got.data.params
    assert got.info.status == "FINISHED"
    assert got.info.run_name == run_name(inst) == "smoke/v2s[ucr/Coffee,1] s0"
    assert {k: tags[f"xferlab.{k}"] for k in ("paper", "spec", "spec_hash", "table", "cell", "seed",
                                                "role", "dataset", "kind")} == {
        "paper": "v2s", "spec": "smoke/v2s", "spec_hash": inst.hash, "table": "v2s_table2",
        "cell": inst.cell, "seed": "0", "role": "final", "dataset": "ucr/Coffee", "kind": "v2s"}
    assert tags["xferlab.pid"] == str(os.getpid()) and tags["xferlab.host"] and tags["note"] == "unit"
    assert tags.get("mlflow.source.git.commit") == tags.get("xferlab.git_commit")
    assert params["model.mapping"] == "3" and json.loads(params["model.seg"]) == [1, 2]
    assert len(params["long"]) == MAX_PARAM_VAL_LENGTH and set(params) == set(inst.flat())
    history = client.get_metric_history(run.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    assert got.data.metrics["test_accuracy"] == 0.875
    names = {a.path for a in client.list_artifacts(run.run_id)}
    assert names == {"spec.yaml", "environment.json", "history.csv", "curves.txt"}
    assert yaml.safe_load(artifact_text(client, run.run_id, "spec.yaml"))["model"]["mapping"] == 3
    env = json.loads(artifact_text(client, run.run_id, "environment.json"))
    assert env["packages"]["mlflow"] == mlflow.__version__ and "python" in env
    rows = list(csv.DictReader(artifact_text(client, run.run_id, "history.csv").splitlines()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"] and float(rows[1]["val_accuracy"]) == 0.6
    assert got.info.artifact_uri.startswith(str(Path(store[len("sqlite:///"):]).parent / "mlartifacts"))


def test_exception_marks_failed_with_traceback(client: MlflowClient):
    with pytest.raises(ValueError, match="exploded"):
        with start_instance_run(make_instance()) as run:
            run.log_epoch(0, {"train_loss": 1.0})
            (run.artifact_dir / "partial.txt").write_text("kept")
            raise ValueError("loss\nexploded")
    got = client.get_run(run.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["xferlab.error"] == "ValueError: loss exploded"
    assert artifact_text(client, run.run_id, "error.txt") == "ValueError: loss exploded\n"
    assert "raise ValueError" in artifact_text(client, run.run_id, "traceback.txt")
    assert {"partial.txt", "history.csv"} <= {a.path for a in client.list_artifacts(run.run_id)}


@pytest.mark.parametrize("exc, pruned", [(KeyboardInterrupt(), False), (TrialPruned("epoch 3"), True)])
def test_interrupt_and_prune_mark_killed(client: MlflowClient, exc: BaseException, pruned: bool):
    with pytest.raises(type(exc)):
        with start_instance_run(make_instance(), role="trial") as run:
            raise exc
    got = client.get_run(run.run_id)
    assert got.info.status == "KILLED"
    assert (got.data.tags.get("xferlab.pruned") == "true") is pruned
    assert "error.txt" not in {a.path for a in client.list_artifacts(run.run_id)}


def test_unknown_role_is_rejected(store: str):
    with pytest.raises(ValueError, match="role"):
        start_instance_run(make_instance(), role="finale")


SCRIPT = """
import sys, time
from xferlab.spec import Instance
from xferlab.tracking import handle_sigterm, start_instance_run
handle_sigterm()
inst = Instance(spec_name="smoke/sig", spec_path="x.yaml", kind="v2s", paper="v2s", table=None,
                experiment="unit", cell="default", seed=0, config={"seed": 0}, hash=sys.argv[1])
with start_instance_run(inst) as run:
    run.log_epoch(0, {"train_loss": 1.0})
    print(run.run_id, flush=True)
    while True:
        time.sleep(0.05)
"""


def test_sigterm_kills_and_sigkill_is_reaped(client: MlflowClient, store: str):
    env = {**os.environ, "PYTHONPATH": SRC, "MLFLOW_TRACKING_URI": store}
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, uuid.uuid4().hex[:16]], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    run_ids = [p.stdout.readline().strip() for p in procs]  # printed while the run is RUNNING
    assert all(client.get_run(r).info.status == "RUNNING" for r in run_ids), [p.stderr.read() for p in procs]
    procs[0].send_signal(signal.SIGTERM)
    procs[1].send_signal(signal.SIGKILL)
    assert procs[0].wait(timeout=60) != 0 and procs[1].wait(timeout=60) == -signal.SIGKILL
    assert client.get_run(run_ids[0]).info.status == "KILLED"
    assert "Terminated" in client.get_run(run_ids[0]).data.tags["xferlab.error"]
    assert client.get_run(run_ids[1]).info.status == "RUNNING"
    reaped = reap()
    assert run_ids[1] in reaped and run_ids[0] not in reaped
    got = client.get_run(run_ids[1])
    assert got.info.status == "FAILED" and got.data.tags["xferlab.reaped"] == "true"


def test_reap_spares_live_runs_and_reaps_stale_foreign_ones(client: MlflowClient):
    exp_id = get_experiment_id("unit")
    old_ms = int((time.time() - 7200) * 1000)
    stale = client.create_run(exp_id, start_time=old_ms, tags={"xferlab.host": "elsewhere", "xferlab.pid": "1"})
    fresh = client.create_run(exp_id, tags={"xferlab.host": "elsewhere", "xferlab.pid": "1"})
    foreign = client.create_run(exp_id, start_time=old_ms)  # not an xferlab run: never touched
    with start_instance_run(make_instance()) as live:
        reaped = reap(grace_seconds=3600)
    assert stale.info.run_id in reaped
    assert not {fresh.info.run_id, foreign.info.run_id, live.run_id} & set(reaped)
    assert client.get_run(live.run_id).info.status == "FINISHED"
    assert client.get_run(fresh.info.run_id).info.status == "RUNNING"
    for run in (fresh, foreign):
        client.set_terminated(run.info.run_id, "FAILED")


def test_find_finished_only_matches_finished_runs_of_the_hash(store: str):
    spec_hash = uuid.uuid4().hex[:16]
    assert find_finished(spec_hash) is None
    with pytest.raises(RuntimeError):
        with start_instance_run(make_instance(spec_hash)):
            raise RuntimeError("crash")
    assert find_finished(spec_hash) is None  # FAILED does not count
    with start_instance_run(make_instance(spec_hash, experiment="unit_other")) as run:
        pass
    assert find_finished(spec_hash) == run.run_id  # across experiments
    assert find_finished(spec_hash, experiment="unit_other") == run.run_id
    assert find_finished(spec_hash, experiment="unit") is None
    assert find_finished(spec_hash, experiment="no_such_experiment") is None
    assert find_finished(spec_hash, role="trial") is None
    assert find_finished(uuid.uuid4().hex[:16]) is None


def test_parent_and_child_runs(client: MlflowClient):
    with start_run("unit", "study s", tags={"xferlab.role": "study"}, params={"n_trials": 2}) as parent:
        children = []
        for seed in (0, 1):
            with start_instance_run(make_instance(seed=seed), role="trial", parent_run_id=parent.run_id) as child:
                children.append(child.run_id)
    found = client.search_runs([get_experiment_id("unit")],
                               f"tags.`mlflow.parentRunId` = '{parent.run_id}'")
    assert sorted(r.info.run_id for r in found) == sorted(children)
    assert client.get_run(parent.run_id).data.params == {"n_trials": "2"}


def _ensure_in_worker(uri: str, barrier: multiprocessing.synchronize.Barrier, queue: multiprocessing.Queue) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        barrier.wait(timeout=60)
        ensure_store()
        queue.put(get_experiment_id("race"))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        queue.put(f"error: {exc!r}")


def test_concurrent_ensure_store_on_a_new_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    uri = f"sqlite:///{tmp_path}/new/mlflow.db"
    ctx = multiprocessing.get_context("fork")  # mlflow already imported: all four start together
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_worker, args=(uri, barrier, queue)) for _ in range(4)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(set(results)) == 1 and not results[0].startswith("error"), results
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with start_instance_run(make_instance(experiment="race")) as run:
        run.log_epoch(0, {"val_accuracy": 1.0})
    assert MlflowClient(uri).get_run(run.run_id).info.status == "FINISHED"
    assert (tmp_path / "new" / "mlflow.db.lock").exists()


def test_finished_runs_batch_lookup(client: MlflowClient):
    exp_id = get_experiment_id("unit_batch")
    hashes = [uuid.uuid4().hex[:16] for _ in range(22)]
    for n, spec_hash in enumerate(hashes):
        run = client.create_run(exp_id, tags={"xferlab.spec_hash": spec_hash, "xferlab.role": "final"})
        client.set_terminated(run.info.run_id, "FINISHED" if n % 2 == 0 else "FAILED")
    found = finished_runs(hashes + ["missing"])  # > 20 hashes: one scan
    assert set(found) == set(hashes[::2])
    assert all(run.data.tags["xferlab.spec_hash"] == h for h, run in found.items())  # the runs, tags included
    assert set(finished_runs(hashes[:3], experiment="unit_batch")) == {hashes[0], hashes[2]}
    assert finished_runs(hashes, role="trial") == {}


def test_sigterm_is_deferred_while_a_run_closes():
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert handle_sigterm()
        with pytest.raises(Terminated):
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                reached = True  # the signal did not cut the block short
        assert reached
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.postgres
def test_store_on_postgres(monkeypatch: pytest.MonkeyPatch):
    uri = os.environ.get("XFERLAB_TEST_POSTGRES_URI")  # e.g. postgresql://user:pw@127.0.0.1:5432/mlflow_test
    if not uri:
        pytest.skip("set XFERLAB_TEST_POSTGRES_URI to a scratch PostgreSQL database")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert ensure_store() == uri
    with start_instance_run(make_instance(experiment="unit_pg")) as run:
        run.log_epoch(0, {"val_accuracy": 0.5})
    assert find_finished(run.instance.hash) == run.run_id


def test_leftover_mlruns_file_store_is_reported(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture):
    (tmp_path / "mlruns" / "1").mkdir(parents=True)
    (tmp_path / "mlruns" / "1" / "meta.yaml").write_text("name: old\n")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("WARNING", logger="xferlab.tracking"):
        assert ensure_store(store) == store  # the explicit sqlite URI still wins
    assert "old MLflow file store" in caplog.text


def test_unknown_schema_revision_is_a_user_error(store: str, tmp_path: Path):
    import sqlite3

    copy = tmp_path / "copy.db"
    with sqlite3.connect(store[len("sqlite:///"):]) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute("UPDATE alembic_version SET version_num = 'fffffffffff0'")
    with pytest.raises(UserError, match="cannot upgrade the MLflow schema.*fffffffffff0"):
        ensure_store(f"sqlite:///{copy}")
    assert (tmp_path / "copy.db.bak-fffffffffff0").exists()
