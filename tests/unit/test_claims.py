"""Grid sharing: processes that share a tracking store run every instance exactly once.

The kind's job is replaced by a short sleep, so the claims themselves are what is tested:
two spawned processes race through the same instances in different orders, on a fresh
sqlite store and on a scratch PostgreSQL database. (tests/e2e/test_run_grid.py does the same
with real training through the CLI.)
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from mlflow import MlflowClient

from xferlab.spec import Instance


def make_instance(spec_hash: str, seed: int = 0) -> Instance:
    config = {"kind": "v2s", "paper": "v2s", "table": None, "experiment": "claims", "seed": seed,
              "data": {"dataset": "ucr/Coffee"}, "model": {"mapping": 3}}
    return Instance(spec_name="unit/claims", spec_path="claims.yaml", kind="v2s", paper="v2s", table=None,
                    experiment="claims", cell="default", seed=seed, config=config, hash=spec_hash)


def fake_job(instance: Instance, run: object) -> dict[str, float]:
    time.sleep(random.uniform(0.05, 0.3))
    return {"test_accuracy": 1.0}


def contend(uri: str, hashes: list[str], seed: int, queue: multiprocessing.Queue) -> None:
    """One 'machine': run every instance with claims, in its own order."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from xferlab.kinds import Kind
    from xferlab.runner import run_claimed

    Kind.run_job = lambda self, instance, run: fake_job(instance, run)  # the job is not what is tested here
    order = list(hashes)
    random.Random(seed).shuffle(order)
    queue.put([(h, run_claimed(make_instance(h)).status) for h in order])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh store: a new sqlite file, or a scratch PostgreSQL database (dropped after)."""
    from xferlab.tracking import ensure_store

    if request.param == "sqlite":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
        yield ensure_store()
        return
    from tests.e2e.test_postgres import admin, pg_url

    try:
        admin("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - no server here
        pytest.skip(f"no PostgreSQL server: {exc}")
    name = f"xferlab_test_claims_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_url(name))
    monkeypatch.chdir(tmp_path)  # a database store puts artifacts in ./mlruns (MLflow's default)
    try:
        yield ensure_store()
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # also ends this process's connections


def active_runs(uri: str, spec_hash: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("claims")
    return client.search_runs([exp.experiment_id], f"tags.`xferlab.spec_hash` = '{spec_hash}'")


def test_two_processes_run_each_instance_once(store: str):
    hashes = [uuid.uuid4().hex[:16] for _ in range(5)]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=contend, args=(store, hashes, seed, queue)) for seed in range(2)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    statuses = {h: sorted(s for r in results for hh, s in r if hh == h) for h in hashes}
    assert all(s == ["FINISHED", "SKIPPED"] for s in statuses.values()), statuses
    for h in hashes:
        runs = active_runs(store, h)
        assert [r.info.status for r in runs] == ["FINISHED"], h  # the losers' runs are deleted
        assert runs[0].data.tags["xferlab.claim"] == "won"


def test_finished_force_and_dead_claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from xferlab.kinds import Kind
    from xferlab.runner import run_claimed
    from xferlab.tracking import ensure_store, start_instance_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    ensure_store()
    monkeypatch.setattr(Kind, "run_job", lambda self, instance, run: fake_job(instance, run))
    inst = make_instance(uuid.uuid4().hex[:16])
    assert run_claimed(inst).status == "FINISHED"
    assert run_claimed(inst).status == "SKIPPED"  # finished elsewhere after this process planned
    assert run_claimed(inst, force=True).status == "FINISHED"
    # a claim won by a process that then died (SIGKILL) does not block the instance forever
    other = make_instance(uuid.uuid4().hex[:16])
    run = start_instance_run(other, extra_tags={"xferlab.claim": "won"}).__enter__()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.set_tags({"xferlab.pid": proc.pid})
    assert run_claimed(other).status == "FINISHED"


def test_a_run_of_another_role_never_stands_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A FINISHED trial or pretraining run of the same spec hash does not make the final
    instance skip, in the plan or in the claim (issue 13)."""
    from xferlab.kinds import Kind
    from xferlab.runner import plan, run_claimed, run_one
    from xferlab.tracking import ensure_store

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    ensure_store()
    monkeypatch.setattr(Kind, "run_job", lambda self, instance, run: fake_job(instance, run))
    inst = make_instance(uuid.uuid4().hex[:16])
    assert run_one(inst, role="trial").status == "FINISHED"
    assert run_claimed(inst, role="pretrain").status == "FINISHED"
    todo, skipped = plan([inst], force=False)
    assert todo == [inst] and not skipped
    assert run_claimed(inst).status == "FINISHED"
    todo, skipped = plan([inst], force=False)
    assert not todo and skipped[0].status == "SKIPPED"
    assert run_claimed(inst, role="pretrain").status == "SKIPPED"  # its own role: taken


def test_a_model_is_never_pretrained_twice_at_once_whatever_the_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A planned prerequisite (role pretrain) and a direct run (role final) of the same
    pretraining instance would both register a version: a live one blocks the other. For an
    instance that registers nothing, roles stay independent."""
    from xferlab.kinds import Kind
    from xferlab.runner import run_claimed
    from xferlab.tracking import ensure_store, start_instance_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    ensure_store()
    monkeypatch.setattr(Kind, "run_job", lambda self, instance, run: fake_job(instance, run))
    pretraining = dataclasses.replace(make_instance(uuid.uuid4().hex[:16]), kind="pretrain_at",
                                      config={"kind": "pretrain_at", "data": {"dataset": "synth/speaker"}})
    with start_instance_run(pretraining, role="final", extra_tags={"xferlab.claim": "won"}):
        assert run_claimed(pretraining, force=True, role="pretrain").status == "SKIPPED"
    plain = make_instance(uuid.uuid4().hex[:16])
    with start_instance_run(plain, role="final", extra_tags={"xferlab.claim": "won"}):
        assert run_claimed(plain, role="trial").status == "FINISHED"
