"""Every run of an SQL tracking store as one frame, read with four SELECTs, and a cheap
listing that says which runs changed since a frame was read.

``MlflowClient.search_runs`` builds about 70 SQLAlchemy objects per run (its params, tags
and latest metrics) and then MLflow entities from them: reading 50 000 runs that way takes
minutes. The report reads every run of its experiments, so for SQL stores (sqlite,
PostgreSQL, MySQL) it reads the tables MLflow's search reads (``runs``,
``latest_metrics``, ``params``, ``tags``) straight into pandas and pivots them into the
frame ``mlflow.search_runs`` would give. ``tests/unit/test_run_snapshot.py`` holds the two
equal on a store with NaN and infinite metrics, deleted runs and several experiments.

:func:`listing` is what the report's cache of finished runs asks on every report: per
active run its status and a *version*, a hash of everything the frame holds about it that
can change (status, end time, every tag, the count and newest timestamp of its metrics,
its parameter names). A finished run whose version is unchanged is not read again.

Other stores (an ``http://`` tracking server) give ``None`` here; callers fall back to the
MLflow client.
"""
from __future__ import annotations

import re
import zlib
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from xferlab.tracking import store

CHUNK = 2000  # run ids per IN (...) list
RUN_COLUMNS = ("run_uuid", "experiment_id", "status", "start_time", "end_time", "artifact_uri", "name")
RUN_ID = re.compile(r"^[0-9a-zA-Z_-]{1,64}$")
# Per tag row, a 32-bit checksum of key and value computed inside the database, so that the
# listing transfers one row per run instead of every tag (sqlite gets it as a function).
TAG_SUM = {
    "sqlite": "SUM(xferlab_crc32(t.key, t.value))",
    "postgresql": "SUM(('x' || substr(md5(t.key || chr(0) || coalesce(t.value, '')), 1, 8))::bit(32)::int)",
    "mysql": "SUM(CRC32(CONCAT(t.key, CHAR(0), COALESCE(t.value, ''))))",
}


def sql_engine(uri: str | None = None):  # -> sqlalchemy.engine.Engine | None
    """MLflow's own engine for an SQL tracking store it can list (shared with its client),
    else None."""
    uri = store.ensure_store(uri)
    if _dialect(uri) not in TAG_SUM:
        return None
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore._get_or_create_engine(uri)


def _dialect(uri: str) -> str:
    return uri.split(":", 1)[0].split("+", 1)[0]


def _crc32(key: str | None, value: str | None) -> int:
    return zlib.crc32(f"{key}\0{value or ''}".encode())


def _rows(engine, sql: str) -> list[tuple]:
    """All rows of ``sql`` through the driver's own cursor: plain tuples, none of
    SQLAlchemy's per-row objects (half the time of a 1M-row read)."""
    conn = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            conn.driver_connection.create_function("xferlab_crc32", 2, _crc32, deterministic=True)
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
            return cursor.fetchall()
        finally:
            cursor.close()
    finally:
        conn.close()


def _select(engine, sql: str, columns: Sequence[str], run_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of ``sql`` as a frame; ``{ids}`` in it becomes run-id lists, CHUNK at a time
    (ids are checked, then written as literals: no driver-specific parameter style)."""
    if run_ids is None:
        rows = _rows(engine, sql)
    else:
        bad = [r for r in run_ids if not RUN_ID.match(r)]
        if bad:
            raise ValueError(f"not a run id: {bad[0]!r}")
        rows = []
        for start in range(0, len(run_ids), CHUNK):
            ids = ", ".join(f"'{r}'" for r in run_ids[start:start + CHUNK])
            rows += _rows(engine, sql.replace("{ids}", ids))
    return pd.DataFrame.from_records(rows, columns=list(columns))


def _scope(experiment_ids: Sequence[str], run_ids: Sequence[str] | None) -> str:
    where = f"r.experiment_id IN ({', '.join(str(int(e)) for e in experiment_ids)}) AND r.lifecycle_stage = 'active'"
    return where + (" AND r.run_uuid IN ({ids})" if run_ids is not None else "")


def _children(run_ids: Sequence[str] | None) -> str:
    """Which rows of a per-run table to read: those of ``run_ids``, else the whole table
    (rows of runs not listed are dropped in pandas: a join with ``runs`` to filter them
    in SQL costs sqlite twice the plain scan)."""
    return "WHERE t.run_uuid IN ({ids})" if run_ids is not None else ""


def read_runs(experiment_ids: Sequence[str], run_ids: Sequence[str] | None = None) -> pd.DataFrame | None:
    """The active runs of these experiments (only ``run_ids`` when given) shaped like
    ``mlflow.search_runs``: ``run_id``, ``experiment_id``, ``status``, ``start_time``,
    ``end_time``, ``artifact_uri``, ``run_name`` and ``metrics.*``, ``params.*``, ``tags.*``.
    None for a store that is not SQL."""
    engine = sql_engine()
    if engine is None:
        return None
    ids = list(run_ids) if run_ids is not None else None
    if not experiment_ids or (ids is not None and not ids):
        return _frame(pd.DataFrame(columns=list(RUN_COLUMNS)), [])
    where = _scope(experiment_ids, ids)
    runs = _select(engine, f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS)} FROM runs r WHERE {where}",
                   RUN_COLUMNS, ids)
    rows = _children(ids)
    metrics = _select(engine, f"SELECT t.run_uuid, t.key, t.value, t.is_nan FROM latest_metrics t {rows}",
                      ("run_uuid", "key", "value", "is_nan"), ids)
    params = _select(engine, f"SELECT t.run_uuid, t.key, t.value FROM params t {rows}", ("run_uuid", "key", "value"), ids)
    tags = _select(engine, f"SELECT t.run_uuid, t.key, t.value FROM tags t {rows}", ("run_uuid", "key", "value"), ids)
    metrics["value"] = _metric_values(metrics)
    return _frame(runs, [("metrics.", metrics), ("params.", params), ("tags.", tags)])


def _metric_values(metrics: pd.DataFrame) -> np.ndarray:
    """Floats as MLflow's search returns them: NaN where ``is_nan`` (stored as 0); +-inf stay
    the extreme doubles MLflow stores them as."""
    values = pd.to_numeric(metrics["value"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(metrics["is_nan"].astype(bool).to_numpy(), np.nan, values)


def _frame(runs: pd.DataFrame, longs: Iterable[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """The run rows with each long (run_uuid, key, value) table spread beside them: one
    column per key, filled by index arithmetic (a pivot sorts; this does not)."""
    frame = runs.rename(columns={"run_uuid": "run_id", "name": "run_name"}).reset_index(drop=True)
    frame["experiment_id"] = frame["experiment_id"].astype(str)
    index = pd.Index(frame["run_id"])
    wide = [frame]
    for prefix, long in longs:
        rows = index.get_indexer(long["run_uuid"])
        known = rows >= 0  # rows of runs created between the SELECTs
        keys, names = pd.factorize(long["key"].to_numpy()[known])
        numeric = prefix == "metrics."
        grid = np.full((len(index), len(names)), np.nan if numeric else None, dtype=float if numeric else object)
        grid[rows[known], keys] = long["value"].to_numpy()[known]
        wide.append(pd.DataFrame(grid, columns=[prefix + str(n) for n in names]))
    frame = pd.concat(wide, axis=1)
    if "tags.mlflow.runName" in frame.columns:  # MLflow's fallback when the name column is empty
        empty = frame["run_name"].isna() | (frame["run_name"].astype(object) == "")
        frame.loc[empty, "run_name"] = frame.loc[empty, "tags.mlflow.runName"]
    return frame


def listing(experiment_ids: Sequence[str]) -> pd.DataFrame | None:
    """Every active run of these experiments: ``run_id``, ``status`` and ``version`` (a
    checksum that changes when anything the frame holds about the run may have changed);
    None for a store that cannot be listed so.

    Tags are checksummed value by value inside the database (a tag edited in the MLflow UI
    keeps its length, often); metrics by count, newest timestamp and step sum (a finished
    run that gets another metric or a later value changes them); params by count (params
    cannot be edited, only added). Four grouped queries, one row per run each."""
    engine = sql_engine()
    if engine is None:
        return None
    if not experiment_ids:
        return pd.DataFrame({"run_id": [], "status": [], "version": []})
    where = _scope(experiment_ids, None)
    runs = _select(engine, f"SELECT r.run_uuid, r.status, r.end_time FROM runs r WHERE {where}",
                   ("run_uuid", "status", "end_time"))
    joined = f"{_children(None)} GROUP BY t.run_uuid"  # runs not listed drop out in the join below
    parts = [
        _select(engine, f"SELECT t.run_uuid, COUNT(*), {TAG_SUM[engine.dialect.name]} FROM tags t {joined}",
                ("run_uuid", "n", "sum")),
        _select(engine, f"SELECT t.run_uuid, COUNT(*), MAX(t.timestamp), SUM(t.step) FROM latest_metrics t {joined}",
                ("run_uuid", "n", "newest", "steps")),
        _select(engine, f"SELECT t.run_uuid, COUNT(*) FROM params t {joined}", ("run_uuid", "n")),
    ]
    version = runs.set_index("run_uuid")
    for n, part in enumerate(parts):
        version = version.join(part.set_index("run_uuid").add_prefix(f"p{n}_"))
    hashed = pd.util.hash_pandas_object(version.reset_index().astype(str), index=False).to_numpy(dtype=np.uint64)
    return pd.DataFrame({"run_id": runs["run_uuid"].to_numpy(), "status": runs["status"].to_numpy(),
                         "version": hashed.astype(str)})


def metric_histories(run_ids: Sequence[str], keys: Sequence[str]) -> pd.DataFrame | None:
    """Every logged value of ``keys`` for ``run_ids``: (run_id, key, step, value), in MLflow's
    order (timestamp, step, value per run and key), from one SELECT instead of one query
    per run and key; None for a store that is not SQL."""
    engine = sql_engine()
    if engine is None:
        return None
    columns = ["run_id", "key", "step", "value"]
    ids = list(dict.fromkeys(run_ids))
    if not ids or not keys:
        return pd.DataFrame(columns=columns)
    names = ", ".join("'" + str(k).replace("'", "''") + "'" for k in keys)
    rows = _select(engine, "SELECT t.run_uuid, t.key, t.step, t.value, t.is_nan, t.timestamp FROM metrics t "
                   f"WHERE t.run_uuid IN ({{ids}}) AND t.key IN ({names})",
                   ("run_id", "key", "step", "value", "is_nan", "timestamp"), ids)
    rows["value"] = _metric_values(rows)
    order = {run: n for n, run in enumerate(ids)}
    rows = rows.assign(_run=rows["run_id"].map(order), _key=rows["key"].map({k: n for n, k in enumerate(keys)}))
    rows = rows.sort_values(["_run", "_key", "timestamp", "step", "value"], kind="stable")
    return rows[columns].reset_index(drop=True).astype({"step": int, "value": float})


def store_stamp(uri: str | None = None) -> str | None:
    """A fingerprint of a sqlite store's files that changes with every committed write, or
    None (other stores, a missing file).

    SQLite bumps the *file change counter* in the database header (offset 24) on every
    commit in rollback-journal mode and appends to ``-wal`` in WAL mode; together with each
    file's size and modification time this says "nothing was written since" without a
    query: the report then reuses its last frame as it is.
    """
    path = store.sqlite_path(store.ensure_store(uri))
    if path is None:
        return None
    parts = []
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                st = file.stat()
                parts.append(f"{file.name}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
    except OSError:
        return None
    return "|".join([header[24:28].hex(), header[92:96].hex(), *parts])
