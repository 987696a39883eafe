"""Where studies live: sqlite (default), any SQLAlchemy URL (PostgreSQL), or a journal file.

- ``None`` -> ``sqlite:///<cwd>/optuna.db`` (absolute, so workers elsewhere agree);
- ``something.log`` / ``something.journal`` -> :class:`JournalStorage` on a file (no
  database; the fastest choice for many local workers, and fine on NFS);
- any ``scheme://`` URL -> :class:`RDBStorage` with heartbeats, so a trial whose worker
  vanished is failed (and retried) after ``grace_s``.

Several processes creating the tables of a NEW sqlite database at once corrupt it, and
two creating a PostgreSQL schema at once collide: creation is serialised with a file lock
(this machine) and retried (other machines).
"""
from __future__ import annotations

import contextlib
import random
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from xferlab.errors import UserError
from xferlab.stores import file_lock, lock_path, with_driver

DEFAULT_DB = "optuna.db"
JOURNAL_SUFFIXES = (".log", ".journal")


@dataclass(frozen=True)
class StorageRef:
    """A resolved storage location: ``url`` is what workers pass around."""

    url: str
    kind: str  # rdb | journal
    path: Path | None = None  # the sqlite or journal file

    @property
    def shown(self) -> str:
        """The URL with any password masked (it is printed and logged)."""
        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", self.url)

    def dashboard_command(self) -> str:
        return f"optuna-dashboard {self.path if self.kind == 'journal' else self.shown}"


def resolve(text: str | None) -> StorageRef:
    """The storage named on the command line (or the default sqlite file in the cwd)."""
    if not text:
        path = Path.cwd() / DEFAULT_DB
        return StorageRef(f"sqlite:///{path}", "rdb", path)
    text = text.strip()
    if "://" not in text:
        if text.endswith(JOURNAL_SUFFIXES):
            path = Path(text).expanduser().resolve()
            return StorageRef(str(path), "journal", path)
        raise UserError(f"--storage {text!r} is not a storage: give sqlite:///optuna.db, postgresql://user@host/db, "
                        f"or a journal file path ending in {' or '.join(JOURNAL_SUFFIXES)}")
    text = with_driver(text)
    if text.startswith("sqlite:///"):
        raw = text[len("sqlite:///"):].split("?", 1)[0]
        if raw in ("", ":memory:"):
            raise UserError("an in-memory sqlite storage cannot be shared by workers: give a file, sqlite:///optuna.db")
        path = Path(raw).expanduser().resolve()
        return StorageRef(f"sqlite:///{path}", "rdb", path)
    return StorageRef(text, "rdb", None)


def open_storage(ref: StorageRef, heartbeat_s: int, grace_s: int,
                 on_stale: Callable[[Any, Any], None] | None = None) -> Any:
    """An optuna storage for ``ref``; tables are created once, under a lock."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if ref.kind == "journal":
        ref.path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(ref.path)))
    if ref.path is not None:
        ref.path.parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 120}}  # many workers + heartbeat threads on one file
    else:
        engine = {"pool_pre_ping": True}
    for attempt in range(4):
        try:
            with creation_lock(ref), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat arguments
                return optuna.storages.RDBStorage(ref.url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
                                                  grace_period=grace_s, heartbeat_stale_trial_callback=on_stale)
        except ImportError as exc:
            raise UserError(f"storage {ref.shown} needs a database driver that is missing ({exc}): "
                            "pip install psycopg2-binary for PostgreSQL") from None
        except Exception as exc:  # noqa: BLE001 - sqlalchemy errors: a race with another machine, or a bad URL
            if attempt == 3 or _is_permanent(exc):
                raise UserError(f"cannot open the Optuna storage {ref.shown}: {_one_line(exc)}") from None
            time.sleep(random.uniform(0.5, 2.0))
    raise AssertionError("unreachable")


def _is_permanent(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("does not exist", "authentication", "could not translate", "connection refused",
                                   "no such module", "can't load plugin"))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


@contextlib.contextmanager
def creation_lock(ref: StorageRef) -> Iterator[None]:
    """An exclusive lock beside the sqlite file, or in the temp dir for a server URL."""
    with file_lock(lock_path(ref.path, ref.url, "xferlab-optuna")):
        yield
