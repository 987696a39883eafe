"""The report's fast read of an SQL store and its cache of finished runs, against MLflow's
own search on the same real store (sqlite in a temp folder).

The reference is :func:`xferlab.report.query._fetch_with_client`: ``MlflowClient.search_runs``
page by page, one record per :class:`mlflow.entities.Run`. The frame read with SELECTs
(:mod:`xferlab.tracking.snapshot`) and the frame served partly from the cache
(:mod:`xferlab.report.runcache`) must hold exactly the same runs and values.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag

from xferlab import tracking
from xferlab.report import runcache
from xferlab.report.query import _fetch_with_client, fetch_runs
from xferlab.tracking import snapshot


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Two experiments: ended runs with NaN/inf metrics, a RUNNING run, a deleted run, a run
    logged over several steps; {name: run id}."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("XFERLAB_CACHE", str(tmp_path / "cache"))
    client = tracking.get_client()
    ids: dict[str, str] = {}
    for exp in ("alpha", "beta"):
        exp_id = tracking.get_experiment_id(exp)
        for i, (status, value) in enumerate([("FINISHED", 0.5), ("FAILED", math.nan), ("KILLED", math.inf),
                                             ("FINISHED", -math.inf), ("RUNNING", 1.25)]):
            run = client.create_run(exp_id, tags={"xferlab.role": "final", "note": f"{exp}-{i}"},
                                    run_name=f"{exp} run {i}")
            client.log_batch(run.info.run_id, metrics=[Metric("acc", value, 1000 + i, 0),
                                                       Metric("loss", 2.0 - i, 1000, 0),
                                                       Metric("loss", 1.0 - i, 1001, 1)],
                             params=[Param("seed", str(i)), Param(f"only_{exp}", "x")])
            if status != "RUNNING":
                client.set_terminated(run.info.run_id, status)
            ids[f"{exp}{i}"] = run.info.run_id
    client.delete_run(ids["beta3"])
    return ids


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by run id, columns by name, missing values as None, numbers as floats."""
    frame = frame.drop(columns=[c for c in ("experiment",) if c in frame]).sort_values("run_id")
    frame = frame[sorted(frame.columns)].reset_index(drop=True).astype(object)
    return frame.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else
                     float(v) if isinstance(v, (int, float, np.number)) else str(v))


def test_the_sql_read_equals_mlflows_search(store: dict[str, str]):
    ids = [tracking.get_experiment_id(name) for name in ("alpha", "beta")]
    ours = snapshot.read_runs(ids)
    reference = _fetch_with_client(["alpha", "beta"])
    assert len(ours) == 9 and store["beta3"] not in set(ours["run_id"])  # the deleted run is gone
    pd.testing.assert_frame_equal(_canonical(ours), _canonical(reference))
    row = ours.set_index("run_id")
    assert math.isnan(row.loc[store["alpha1"], "metrics.acc"])
    assert row.loc[store["alpha2"], "metrics.acc"] == 1.7976931348623157e308  # MLflow's stored inf, as search gives it
    assert row.loc[store["alpha4"], "metrics.loss"] == -3.0  # the latest step's value


def test_finished_runs_come_from_the_cache_until_the_store_changes_them(store: dict[str, str]):
    client = tracking.get_client()
    first = fetch_runs()
    assert first.from_cache == 0 and len(first.frame) == 9
    second = fetch_runs()
    assert second.from_cache == 9  # nothing was written: the last frame, running runs included
    pd.testing.assert_frame_equal(_canonical(second.frame), _canonical(first.frame))

    client.set_tag(store["alpha0"], "note", "alpha-X")  # an edit of the same length
    client.log_metric(store["alpha3"], "late", 3.0)  # logged to a finished run
    client.set_terminated(store["beta4"], "FINISHED")  # a running run ends
    client.delete_run(store["beta0"])
    client.restore_run(store["beta3"])
    third = fetch_runs()
    rows = third.frame.set_index("run_id")
    assert third.from_cache == 4  # alpha1, alpha2, beta1, beta2
    assert rows.loc[store["alpha0"], "tags.note"] == "alpha-X" and rows.loc[store["alpha3"], "metrics.late"] == 3.0
    assert rows.loc[store["beta4"], "status"] == "FINISHED" and store["beta0"] not in rows.index
    assert store["beta3"] in rows.index
    pd.testing.assert_frame_equal(_canonical(third.frame), _canonical(fetch_runs(cache=False).frame))
    assert third.per_experiment == {"Default": 0, "alpha": 5, "beta": 4}


def test_reading_one_experiment_keeps_the_others_cached(store: dict[str, str]):
    fetch_runs()
    tracking.get_client().set_tag(store["beta0"], "note", "changed")  # the store changed: runs are listed
    only = fetch_runs(["alpha"])
    assert only.from_cache == 4 and set(only.frame["experiment"]) == {"alpha"}
    both = fetch_runs()  # the last report read alpha only: beta's runs are listed, not taken as they were
    assert both.from_cache == 6 and both.frame.set_index("run_id").loc[store["beta0"], "tags.note"] == "changed"


def test_an_unreadable_cache_is_rebuilt_not_trusted(store: dict[str, str], caplog: pytest.LogCaptureFixture):
    fetch_runs()
    path = runcache.cache_file(tracking.ensure_store())
    path.write_bytes(b"not parquet")
    again = fetch_runs()
    assert again.from_cache == 0 and len(again.frame) == 9 and "unreadable run cache" in caplog.text
    assert fetch_runs().from_cache == 9


def test_metric_histories_equal_mlflows_per_run_requests(store: dict[str, str]):
    client = tracking.get_client()
    ids = [store["alpha0"], store["beta1"], store["alpha4"]]
    client.log_batch(store["alpha4"], metrics=[Metric("loss", math.nan, 1002, 2), Metric("loss", 5.0, 999, 3)])
    ours = snapshot.metric_histories(ids, ["loss", "acc"])
    reference = pd.DataFrame([(r, k, m.step, m.value) for r in ids for k in ("loss", "acc")
                              for m in client.get_metric_history(r, k)], columns=["run_id", "key", "step", "value"])
    assert len(ours) == 3 * 3 + 2
    pd.testing.assert_frame_equal(ours, reference.astype({"step": int, "value": float}))
