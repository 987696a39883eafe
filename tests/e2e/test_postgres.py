"""Beyond one machine: an MLflow tracking server on PostgreSQL with a shared artifact
directory, an Optuna study on PostgreSQL, and independent worker processes standing in for
machines (grid sharing on PostgreSQL: tests/unit/test_claims.py). Uses the PostgreSQL server on 127.0.0.1:5432 (trust auth, user postgres; override
with XFERLAB_TEST_PG="host=... user=..."); creates scratch databases and drops them.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import fresh_env
from xferlab.stores import with_driver
from tests.e2e.test_tune import CHEAP, STUDY, check_trials_are_children, finish, start_cli

pytestmark = pytest.mark.postgres
PG = dict(item.split("=", 1) for item in os.environ.get("XFERLAB_TEST_PG", "host=127.0.0.1 port=5432 "
                                                        "user=postgres").split())


def pg_url(db: str) -> str:
    return f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{db}"


def admin(sql: str) -> None:
    import psycopg2

    con = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    con.autocommit = True
    try:
        con.cursor().execute(sql)
    finally:
        con.close()


@pytest.fixture()
def databases() -> Iterator[dict[str, str]]:
    """Two scratch databases (MLflow, Optuna), dropped at the end."""
    try:
        admin("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - no server here: say so instead of failing
        pytest.skip(f"no PostgreSQL server at {PG}: {exc}")
    names = {role: f"xferlab_test_{role}_{uuid.uuid4().hex[:8]}" for role in ("mlflow", "optuna")}
    for name in names.values():
        admin(f'CREATE DATABASE "{name}"')
    yield {role: pg_url(name) for role, name in names.items()}
    for name in names.values():
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def server(databases: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on the PostgreSQL store, artifacts in a shared directory."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", databases["mlflow"],
                             "--default-artifact-root", str(root / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc, root / "server.log")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a test server: nothing to flush, the database is dropped
        proc.wait(timeout=30)
        log.close()


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"mlflow server did not start in {timeout} s: {log.read_text()[-3000:]}")


def two_workers_tune(tracking: str, databases: dict[str, str], tmp_path: Path, cache_dir: Path) -> None:
    """Two 'machines' (separate working directories) run ``xferlab tune`` on one study."""
    env = {**fresh_env(cache_dir), "MLFLOW_TRACKING_URI": tracking}
    args = ["tune", STUDY, "--storage", databases["optuna"], "--n-trials", "2", *CHEAP]
    procs = []
    for n in range(2):
        (tmp_path / f"m{n}").mkdir()
        procs.append(start_cli(args, tmp_path / f"m{n}", env))
    for proc in procs:
        code, out = finish(proc)
        assert code == 0, out
    study = optuna.load_study(study_name="at-style-smoke", storage=databases["optuna"])
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") + states.count("PRUNED") >= 2 and "RUNNING" not in states
    assert states.count("COMPLETE") >= 1
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == len(params)  # distinct trials
    runs = check_trials_are_children(study, MlflowClient(with_driver(tracking)))
    assert len(runs["study"]) == 1 and len(runs["trial"]) == len(study.trials)


@pytest.mark.slow  # ~20 s; PostgreSQL stays in the default run through tests/unit/test_claims.py (two processes race)
def test_two_tune_workers_on_postgres(databases: dict[str, str], tmp_path: Path, cache_dir: Path):
    """MLflow and Optuna both on PostgreSQL, reached directly (bare postgresql:// as users write it)."""
    two_workers_tune(databases["mlflow"].replace("+psycopg2", ""), databases, tmp_path, cache_dir)


@pytest.mark.slow  # the server start and HTTP logging add about two minutes on 2 cores
def test_two_tune_workers_through_an_mlflow_server(server: str, databases: dict[str, str], tmp_path: Path,
                                                   cache_dir: Path):
    """The documented scale-out: an ``mlflow server`` on PostgreSQL with a shared artifact root."""
    two_workers_tune(server, databases, tmp_path, cache_dir)
