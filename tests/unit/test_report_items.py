"""Every registered report item, run on an EMPTY MLflow store, says that it has no runs.

Parametrised over the tables registry at collection time, so a newly registered item is
tested without editing this file. The store is real MLflow (sqlite in a temp folder,
through ``MLFLOW_TRACKING_URI``), created and fetched once for the module: the items see
exactly what ``xferlab report`` gives them on a fresh store.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping

import pytest

from xferlab.registry import TABLES
from xferlab.report.build import build_report
from xferlab.report.items import ALWAYS, item_names
from xferlab.report.query import Fetched, fetch_runs


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Fetched]:
    """One empty store for every case: its URI and the (empty) runs fetched from it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('empty-store')}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        fetched = fetch_runs()
        assert fetched.frame.empty
        yield uri, fetched


@pytest.mark.parametrize("name", item_names())
def test_item_on_an_empty_store_says_it_has_no_runs(name: str, empty_store, tmp_path: Path):
    _, fetched = empty_store
    report = build_report([name], None, tmp_path, fetched=fetched)
    section, *always = report.sections
    assert (section.name, section.title) == (name, TABLES.help(name))  # titled from the registry
    assert section.missing, f"{name} built a section on an empty store without saying that it has no runs"
    assert all(line.startswith("no runs for ") for line in section.missing), section.missing
    assert [s.name for s in always] == list(ALWAYS)
    assert report.index.is_file() and report.workbook.is_file()


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
def test_a_whole_report_imports_no_tuning_optuna_or_frameworks(empty_store, tmp_path: Path):
    """Every item built in a fresh process: none of them pulls in xferlab.tuning, optuna,
    TensorFlow or PyTorch, not even through an import inside a function."""
    uri, _ = empty_store
    code = ("import sys; from pathlib import Path; from xferlab.report.build import build_report; "
            "build_report([], None, Path('r')); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'tensorflow', 'torch') "
            "or m == 'xferlab.tuning' or m.startswith('xferlab.tuning.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**_without_mlflow(os.environ), "MLFLOW_TRACKING_URI": uri})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _without_mlflow(env: Mapping[str, str]) -> dict[str, str]:
    """The environment minus MLflow settings that could point the child at another store."""
    return {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
