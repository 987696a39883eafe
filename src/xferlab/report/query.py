"""Everything the report asks of the tracking store, through :mod:`xferlab.tracking` only.

Speed rule: runs are fetched ONCE per experiment (every status and role, one paged
search) into one DataFrame shaped like ``mlflow.search_runs`` output (``run_id``,
``status``, ``metrics.*``, ``params.*``, ``tags.*`` ...); every table is then a pandas
selection of that frame (:class:`Query`). Metric histories and artifacts are fetched only
for the few runs a figure needs.
"""
from __future__ import annotations

import contextlib
import fnmatch
import gc
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from xferlab.errors import UserError

_log = logging.getLogger("xferlab.report")
INFO_COLUMNS = ("run_id", "experiment_id", "experiment", "status", "start_time", "end_time", "artifact_uri",
                "run_name")


@dataclass(frozen=True)
class Query:
    """An AND-only selection: tag equalities, roles and a status, as one MLflow filter.

    ``apply`` is what the report does on the fetched frame; ``filter_string`` is the same
    selection written for ``mlflow.search_runs`` / the MLflow UI, shown beside each table.
    """

    tags: tuple[tuple[str, str], ...]
    roles: tuple[str, ...] = ("final",)
    status: str | None = "FINISHED"
    experiment: str | None = None  # the family's experiment, for display only
    spec: str | None = None  # a glob over tags.xferlab.spec (``xferlab report --spec``)

    def filter_string(self) -> str:
        parts = [f"tags.`{k}` = '{v}'" for k, v in self.tags]
        if len(self.roles) == 1:
            parts.append(f"tags.`xferlab.role` = '{self.roles[0]}'")
        if self.status:
            parts.append(f"attributes.status = '{self.status}'")
        if self.spec:  # LIKE's `_` matches any one character: the UI may show a few more runs
            parts.append(f"tags.`xferlab.spec` LIKE '{self.spec.replace('*', '%').replace('?', '_')}'")
        text = " AND ".join(parts)
        if len(self.roles) > 1:  # OR is not expressible: one query per role
            text += f"   (one query per role: {', '.join(self.roles)})"
        return text

    def describe(self) -> str:
        where = f"experiment '{self.experiment}': " if self.experiment else ""
        return where + self.filter_string()

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        mask = pd.Series(True, index=frame.index)
        for key, value in (*self.tags, ):
            mask &= column(frame, f"tags.{key}") == value
        if self.roles:
            mask &= column(frame, "tags.xferlab.role").isin(self.roles)
        if self.status:
            mask &= column(frame, "status") == self.status
        if self.spec:
            specs = column(frame, "tags.xferlab.spec").fillna("").astype(str)
            mask &= specs.map(lambda name: fnmatch.fnmatchcase(name, self.spec))
        return frame[mask]


def column(frame: pd.DataFrame, name: str, default: object = None) -> pd.Series:
    """``frame[name]`` or a column of ``default`` when no fetched run has that key."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(default, index=frame.index, dtype=object)


def metric(frame: pd.DataFrame, name: str) -> pd.Series:
    """A metric column as floats (NaN where a run lacks it)."""
    return pd.to_numeric(column(frame, f"metrics.{name}", np.nan), errors="coerce").astype(float)


def seed(frame: pd.DataFrame) -> pd.Series:
    """A run's seed as a number: the ``seed`` param, else the ``xferlab.seed`` tag."""
    return pd.to_numeric(column(frame, "params.seed").fillna(column(frame, "tags.xferlab.seed")), errors="coerce")


@dataclass
class Fetched:
    """All runs of the experiments the report read, and how long reading took."""

    frame: pd.DataFrame
    experiments: list[str]
    uri: str
    seconds: float
    per_experiment: dict[str, int] = field(default_factory=dict)
    from_cache: int = 0  # runs taken from the cache of finished runs, not read from the store

    def describe(self) -> str:
        cached = f", {self.from_cache} of them from the cache of finished runs" if self.from_cache else ""
        return f"{len(self.frame)} runs fetched in {self.seconds:.1f} s{cached}"


def _run_record(run: object, experiment: str) -> dict[str, object]:
    info, data = run.info, run.data
    record: dict[str, object] = {
        "run_id": info.run_id, "experiment_id": info.experiment_id, "experiment": experiment,
        "status": info.status, "start_time": info.start_time, "end_time": info.end_time,
        "artifact_uri": info.artifact_uri, "run_name": info.run_name}
    record.update({f"metrics.{k}": v for k, v in data.metrics.items()})
    record.update({f"params.{k}": v for k, v in data.params.items()})
    record.update({f"tags.{k}": v for k, v in data.tags.items()})
    return record


def experiment_names(requested: Sequence[str] | None) -> list[str]:
    """The experiments to read: those asked for (must exist), else every active one."""
    from xferlab import tracking

    client = tracking.get_client()
    if requested:
        missing = [n for n in requested if client.get_experiment_by_name(n) is None]
        if missing:
            known = ", ".join(sorted(e.name for e in client.search_experiments()))
            raise UserError(f"no MLflow experiment named {', '.join(map(repr, missing))} in "
                            f"{client.tracking_uri} (known: {known or 'none'})")
        return list(requested)
    return sorted(e.name for e in client.search_experiments())


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk load.

    Loading runs creates ~70 SQLAlchemy objects per run (params, tags, metrics); with the
    collector on, its full passes over that growing heap double the fetch time (measured:
    5000 runs, 16.6 s -> 7.4 s). Nothing cyclic is left behind that needs it meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def fetch_runs(experiments: Sequence[str] | None = None, cache: bool = True) -> Fetched:
    """Every run (all statuses) of the experiments, as one frame.

    SQL stores are read with four SELECTs (:mod:`xferlab.tracking.snapshot`), and with
    ``cache`` the ended runs come from the local cache (:mod:`xferlab.report.runcache`)
    unless the store lists them as changed; other stores are read page by page through
    the MLflow client."""
    from xferlab import tracking
    from xferlab.report import runcache
    from xferlab.tracking import snapshot

    start = time.perf_counter()
    uri = tracking.ensure_store()
    names = experiment_names(experiments)
    ids = {experiment_id(name): name for name in names}
    stamp = snapshot.store_stamp() if cache else None  # before anything is read
    unchanged = runcache.unchanged(uri, stamp, set(ids)) if cache else None
    listed = snapshot.listing(list(ids)) if cache and unchanged is None else None
    if unchanged is not None:
        frame, from_cache = unchanged.drop(columns=[runcache.VERSION]), len(unchanged)
    elif listed is not None:
        frame, from_cache = _fetch_cached(uri, ids, listed, stamp)
    else:
        frame, from_cache = snapshot.read_runs(list(ids)), 0
        if frame is None:
            frame = _fetch_with_client(names)
    if frame.empty and "experiment_id" not in frame.columns:
        frame = pd.DataFrame(columns=list(INFO_COLUMNS))
    frame["experiment"] = frame["experiment_id"].astype(str).map(ids)
    counts = {name: int((frame["experiment"] == name).sum()) for name in names}
    return Fetched(frame, names, uri, time.perf_counter() - start, counts, from_cache)


def experiment_id(name: str) -> str:
    from xferlab import tracking

    return tracking.get_client().get_experiment_by_name(name).experiment_id


def _fetch_cached(uri: str, ids: dict[str, str], listed: pd.DataFrame,
                  stamp: str | None) -> tuple[pd.DataFrame, int]:
    """The listed runs: valid cached rows plus the rest read from the store; the cache is
    then rewritten with this frame (rows of experiments not read this time kept) and the
    store's stamp from before the listing."""
    from xferlab.report import runcache
    from xferlab.tracking import snapshot

    cached = runcache.load(uri)
    here = cached["experiment_id"].astype(str).isin(ids) if len(cached) else pd.Series(dtype=bool)
    kept, missing = runcache.split(cached[here] if len(cached) else cached, listed)
    if len(missing) > len(listed) // 2:  # most runs are new: one pass over the experiments
        fresh = snapshot.read_runs(list(ids))
        fresh = fresh[~fresh["run_id"].isin(set(kept["run_id"]))]
    else:
        fresh = snapshot.read_runs(list(ids), missing)
    versions = dict(zip(listed["run_id"], listed["version"]))
    fresh = fresh.assign(**{runcache.VERSION: fresh["run_id"].map(versions)})
    frame = pd.concat([kept, fresh], ignore_index=True) if len(kept) else fresh.reset_index(drop=True)
    if len(fresh) or len(kept) < int(here.sum()) or stamp is not None:
        frame = frame[frame[runcache.VERSION].notna()]  # runs created after the listing: next time
        others = cached[~here] if len(cached) else cached
        runcache.save(uri, pd.concat([others, frame], ignore_index=True) if len(others) else frame, stamp, set(ids))
    return frame.drop(columns=[runcache.VERSION]), len(kept)


def _fetch_with_client(names: Sequence[str]) -> pd.DataFrame:
    """One paged search per experiment through the MLflow client (non-SQL stores)."""
    from xferlab import tracking

    records: list[dict[str, object]] = []
    with gc_paused():
        for name in names:
            records += [_run_record(run, name) for run in tracking.iter_runs("", experiment=name)]
    return pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=list(INFO_COLUMNS))


def search_frame(filter_string: str, experiment: str) -> pd.DataFrame:
    """The active runs of one experiment matching an MLflow filter, as a frame like
    :func:`fetch_runs` gives (for callers that need a few runs, not the whole store)."""
    from xferlab import tracking

    with gc_paused():
        records = [_run_record(run, experiment) for run in tracking.iter_runs(filter_string, experiment=experiment)]
    return pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=list(INFO_COLUMNS))


def metric_histories(run_ids: Iterable[str], keys: Sequence[str]) -> pd.DataFrame:
    """Per-step values (run_id, key, step, value) of a few runs, for figures only (one
    SELECT on an SQL store, one request per run and key otherwise)."""
    from xferlab import tracking
    from xferlab.tracking import snapshot

    ids = list(dict.fromkeys(run_ids))
    found = snapshot.metric_histories(ids, keys)
    if found is not None:
        return found
    client = tracking.get_client()
    rows = [(run_id, key, m.step, m.value) for run_id in ids for key in keys
            for m in client.get_metric_history(run_id, key)]
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "value"])


def artifact_names(run_id: str) -> set[str]:
    """Top-level artifact paths of a run (a directory listing for a local store)."""
    from xferlab import tracking

    return {a.path for a in tracking.get_client().list_artifacts(run_id)}


def png_artifacts(run_id: str) -> list[str]:
    """PNG artifacts of a run (top level and one folder deep), e.g. a study's plots."""
    from xferlab import tracking

    client = tracking.get_client()
    found: list[str] = []
    for art in client.list_artifacts(run_id):
        paths = [a.path for a in client.list_artifacts(run_id, art.path)] if art.is_dir else [art.path]
        found += [p for p in paths if p.lower().endswith(".png")]
    return found


def copy_artifact(run_id: str, path: str, dst: Path) -> Path | None:
    """Copy one artifact of a run to ``dst`` (a file path); None when the run lacks it."""
    import tempfile

    from xferlab import tracking

    with tempfile.TemporaryDirectory(prefix="xferlab-report-") as tmp:
        try:
            local = tracking.download_artifact(run_id, path, tmp)
        except UserError as exc:
            _log.info("%s", exc)
            return None
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dst)
    return dst
