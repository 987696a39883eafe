"""The report's local cache of finished runs: a finished run is read from the store once.

A run that ended (FINISHED, FAILED, KILLED) changes only if someone edits its tags, logs
to it again or deletes it. The cache keeps, per store, the frame rows of the ended runs
the report has read, each with the *version* the store listed for it
(:func:`xferlab.tracking.snapshot.listing`: status, end time, every tag, the metrics'
count and newest timestamp, the param names). On the next report a cached row is used
only if its run is still active in the store with the same version; everything else (new
runs, running ones, edited or restored ones) is read again, and deleted runs drop out.

For a sqlite store there is a shortcut: the cache also keeps the frame of its last
report (running runs included) with a stamp of the database files
(:func:`xferlab.tracking.snapshot.store_stamp`, taken before that report read anything).
When the stamp is unchanged nothing was written to the store since, and that frame is
the answer without a query.

Layout: ``$XFERLAB_CACHE/runs/<sha256 of the tracking URI>.parquet`` and ``.json`` beside
it (the stamp and the experiments it covers); default cache root ``.xferlab-cache`` in
the working directory, as for the corpus and the features. Both are written atomically
(temp file + rename), the stamp last, so concurrent reports never read half a file; a
file that cannot be read is ignored and rewritten. Deleting them is always safe.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

ENDED = ("FINISHED", "FAILED", "KILLED")
VERSION = "_version"  # column of the cached frame: the store's version of the run
_log = logging.getLogger("xferlab.report")


def cache_file(uri: str) -> Path:
    """Where the finished runs of the store at ``uri`` are kept."""
    root = Path(os.environ.get("XFERLAB_CACHE", ".xferlab-cache"))
    return root / "runs" / f"{hashlib.sha256(uri.encode()).hexdigest()[:24]}.parquet"


def stamp_file(uri: str) -> Path:
    return cache_file(uri).with_suffix(".json")


def unchanged(uri: str, stamp: str | None, experiment_ids: set[str]) -> pd.DataFrame | None:
    """The last report's frame of these experiments when the store's stamp is unchanged
    and the last report read them all; else None."""
    if stamp is None:
        return None
    try:
        saved = json.loads(stamp_file(uri).read_text())
    except (OSError, ValueError):
        return None
    if saved.get("stamp") != stamp or not experiment_ids <= set(saved.get("experiments", ())):
        return None
    frame = load(uri)
    if frame.empty and not saved.get("runs", 0):
        return frame
    if not len(frame) or int(saved.get("runs", -1)) != len(frame):
        return None  # the frame belongs to another save: read again
    return frame[frame["experiment_id"].astype(str).isin(experiment_ids)]


def load(uri: str) -> pd.DataFrame:
    """The cached rows (empty when there is no usable cache)."""
    path = cache_file(uri)
    if not path.exists():
        return pd.DataFrame(columns=["run_id", "experiment_id", VERSION])
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
        _log.warning("ignoring the unreadable run cache %s (%s: %s); it is rebuilt", path, type(exc).__name__, exc)
        return pd.DataFrame(columns=["run_id", "experiment_id", VERSION])


def save(uri: str, frame: pd.DataFrame, stamp: str | None = None, experiment_ids: set[str] = frozenset()) -> None:
    """Replace the cache with ``frame`` (rows with their ``_version``; only ended ones are
    reused run by run) and, for the shortcut, the stamp the store had before ``frame``
    was read and the experiments it holds completely."""
    stamp_file(uri).unlink(missing_ok=True)  # never a new stamp beside an old frame, or the reverse
    _atomic(cache_file(uri), lambda tmp: frame.reset_index(drop=True).to_parquet(tmp, index=False))
    if stamp is not None:
        text = json.dumps({"stamp": stamp, "experiments": sorted(experiment_ids), "runs": len(frame)})
        _atomic(stamp_file(uri), lambda tmp: Path(tmp).write_text(text))


def _atomic(path: Path, write) -> None:  # noqa: ANN001 - a callable taking the temp path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def split(cached: pd.DataFrame, listed: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(cached rows still valid, ids of listed runs to read from the store).

    Valid: the run is listed (active, in an experiment being read), has ended, and its
    listed version equals the cached one."""
    if cached.empty:
        return cached, listed["run_id"].tolist()
    ended = listed[listed["status"].isin(ENDED)]
    current = dict(zip(ended["run_id"], ended["version"]))
    valid = cached["run_id"].map(current) == cached[VERSION]
    kept = cached[valid.fillna(False).astype(bool)]
    have = set(kept["run_id"])
    return kept, [r for r in listed["run_id"] if r not in have]
