"""Helpers shared by the MLflow store (``tracking``) and the Optuna storage (``tuning``).

No framework imports: both layers sit above this module, so neither imports the other.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import tempfile
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, creation is unguarded
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive cross-process ``flock`` on ``path`` (created if missing).

    Used where several processes may create the same database at once: new sqlite files
    and fresh PostgreSQL schemas are corrupted or collide otherwise.
    """
    if fcntl is None:
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def lock_path(db_file: Path | None, url: str, prefix: str, suffix: str = ".lock") -> Path:
    """Beside the database file when there is one, else in the temp dir (this machine only)."""
    if db_file is not None:
        return db_file.with_name(db_file.name + suffix)
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"{prefix}-{digest}{suffix}"


def with_driver(url: str) -> str:
    """``postgresql://`` (or ``postgres://``) with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; xferlab depends on
    psycopg2-binary, so such URLs get ``+psycopg2`` when psycopg 3 is missing. The
    rewritten URL works for MLflow, Optuna, ``optuna-dashboard`` and ``mlflow server``.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres") and _psycopg2_only():
        return f"postgresql+psycopg2://{rest}"
    return url


@functools.cache
def _psycopg2_only() -> bool:
    """Looked up once: ``tracking_uri()`` is called for every run and client."""
    return importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None
