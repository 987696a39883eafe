"""Where runs live: the tracking URI, a schema created exactly once, race-safe experiments.

Default store: ``sqlite:///<cwd>/mlflow.db`` with artifacts in ``<db dir>/mlartifacts``
(absolute paths, so that workers in other directories and ``mlflow ui`` agree). MLflow's
own default artifact root for a sqlite store is ``./mlruns`` *relative to whichever process
first creates an experiment*, which scatters artifacts; xferlab therefore gives every
experiment it creates an explicit artifact location.

Schema creation is serialised with an ``fcntl`` lock beside the database
(``mlflow.db.lock``): several processes creating a new sqlite database at once corrupt it.
Later calls skip the lock after a cheap read-only look at ``alembic_version``.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sqlite3
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from xferlab.errors import UserError
from xferlab.stores import file_lock, lock_path, with_driver

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_log = logging.getLogger("xferlab.tracking")
_ensured: set[str] = set()
_clients: dict[str, MlflowClient] = {}
_experiments: dict[tuple[str, str], str] = {}
_warned: set[Path] = set()


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set (``postgresql://`` given its driver), else ``sqlite:///<abs cwd>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return _absolute(with_driver(env)) if env else f"sqlite:///{Path.cwd() / DB_NAME}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and in-memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = unquote(uri[len("sqlite:///"):].split("?", 1)[0])
    return None if raw in ("", ":memory:") else Path(raw)


def _absolute(uri: str) -> str:
    """Relative sqlite paths are made absolute so every process resolves the same file."""
    path = sqlite_path(uri)
    if path is None or path.is_absolute():
        return uri
    query = uri.split("?", 1)[1] if "?" in uri else ""
    return f"sqlite:///{path.resolve()}" + (f"?{query}" if query else "")


def artifact_root(uri: str) -> str | None:
    """``<db dir>/mlartifacts`` for a sqlite store; None lets a server choose."""
    path = sqlite_path(uri)
    return str(path.resolve().parent / ARTIFACTS_DIR) if path is not None else None


def ensure_store(uri: str | None = None) -> str:
    """Point mlflow at ``uri`` (default :func:`tracking_uri`) and create/upgrade its schema once.

    Safe to call from many processes at the same time on a new sqlite file. Returns the
    (absolute) URI. Call it in the parent before starting parallel workers.
    """
    uri = _absolute(with_driver(uri)) if uri else tracking_uri()
    _reject_file_store(uri)
    _warn_leftover_mlruns()
    if uri not in _ensured:
        _ensure_schema(uri)
        _ensured.add(uri)
    # global URIs too: some MLflow code paths (model version creation, artifact download)
    # build their own MlflowClient() from them
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _ensure_schema(uri: str) -> None:
    """Create/upgrade under a cross-process lock; the lock is skipped once the schema is current."""
    path = sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not _schema_is_current(path):
            with store_lock(uri):
                if not _schema_is_current(path):
                    _create_or_upgrade(uri, path)
    elif uri.split(":", 1)[0].split("+", 1)[0] in _DB_SCHEMES:
        with store_lock(uri):  # guards this machine only; a server guards itself
            _create_or_upgrade(uri, None)


def _reject_file_store(uri: str) -> None:
    scheme = uri.split(":", 1)[0] if re.match(r"^[a-zA-Z][\w+.-]*:", uri) else ""
    if scheme in ("", "file"):
        raise UserError(
            f"tracking URI {uri!r} is an MLflow file store, which MLflow 3 deprecates and xferlab "
            "does not support: set MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db (or an http:// server)")


def _warn_leftover_mlruns() -> None:
    """A ``./mlruns`` file store makes plain ``mlflow ui`` / ``mlflow run`` ignore mlflow.db."""
    mlruns = Path.cwd() / "mlruns"
    if mlruns in _warned:
        return
    try:
        leftover = any(d.is_dir() and d.name.isdigit() and (d / "meta.yaml").exists()
                       for d in mlruns.iterdir())
    except OSError:
        return
    if leftover:
        _warned.add(mlruns)
        _log.warning("%s holds an old MLflow file store: MLflow tools started here without a "
                     "tracking URI read it instead of mlflow.db; move it away (or pass "
                     "--backend-store-uri sqlite:///mlflow.db to `mlflow ui`)", mlruns)


@functools.lru_cache(maxsize=1)
def _head_revision() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def _schema_is_current(path: Path) -> bool:
    """Read-only check (no lock, no file creation) that the schema is at MLflow's head."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as con:
            rows = con.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return False
    return [r[0] for r in rows] == [_head_revision()]


def _create_or_upgrade(uri: str, path: Path | None) -> None:
    """Create the schema on an empty database, or migrate an old one (after a backup)."""
    from mlflow.store.db import utils as db_utils
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = SqlAlchemyStore._get_or_create_engine(uri)
    if db_utils._is_empty_database(engine):
        db_utils._initialize_tables(engine)
    elif (found := db_utils._get_schema_version(engine)) != _head_revision():
        backup = None
        if path is not None:
            backup = path.with_name(f"{path.name}.bak-{found}")
            with contextlib.closing(sqlite3.connect(path)) as src, \
                    contextlib.closing(sqlite3.connect(backup)) as dst:
                src.backup(dst)
            _log.warning("upgrading the MLflow schema of %s from %s (backup: %s)", path, found, backup)
        try:
            db_utils._upgrade_db(engine)
        except Exception as exc:  # e.g. a schema written by a newer MLflow than this one
            raise UserError(f"cannot upgrade the MLflow schema of {uri} (revision {found}) to "
                            f"{_head_revision()}: {' '.join(str(exc).split())[:300]}; use the MLflow "
                            f"version that wrote it{f' or restore {backup}' if backup else ''}") from exc


@contextlib.contextmanager
def store_lock(uri: str, purpose: str = "") -> Iterator[None]:
    """An exclusive cross-process lock tied to a store: ``mlflow.db[.purpose].lock``.

    Beside the database for sqlite; in the temp dir (this machine only) for other stores.
    """
    suffix = f".{purpose}.lock" if purpose else ".lock"
    with file_lock(lock_path(sqlite_path(uri), uri, "xferlab-store", suffix)):
        yield


def get_client(uri: str | None = None) -> MlflowClient:
    """An :class:`MlflowClient` bound to the ensured store (tracking and registry)."""
    uri = ensure_store(uri)
    if uri not in _clients:
        _clients[uri] = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return _clients[uri]


def get_experiment_id(name: str) -> str:
    """The id of experiment ``name``, created if missing (safe when processes race)."""
    client = get_client()
    key = (client.tracking_uri, name)
    if key in _experiments:
        return _experiments[key]
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            exp_id = client.create_experiment(name, artifact_location=_artifact_location(client, name))
            _experiments[key] = exp_id
            return exp_id
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)  # another process won the race
    if exp is None or exp.lifecycle_stage == "deleted":
        raise UserError(f"MLflow experiment {name!r} is deleted: restore it with `mlflow experiments "
                        f"restore --experiment-id {exp.experiment_id if exp else '?'}` or purge it "
                        "with `mlflow gc`")
    _experiments[key] = exp.experiment_id
    return exp.experiment_id


def _artifact_location(client: MlflowClient, name: str) -> str | None:
    root = artifact_root(client.tracking_uri)
    if root is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"
    return str(Path(root) / safe)
