"""Tests parametrised over the dataset and kind registries, so a new entry is tested
without editing a test (models: test_models_registry.py; report items:
test_report_items.py).

- Every dataset name either loads offline (bundled UCR sets, the synthetic corpus at its
  tiny profile) or, when it reads the user's copy, fails before any run with the one-line
  error that names ``data.root``.
- Every kind has a schema whose defaults resolve, a job that imports, and a smoke spec
  under ``experiments/smoke``; tests/e2e/test_smoke_runs.py runs the ``v2s`` and ``at``
  smoke specs from an empty store, and their prerequisites run the other two.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from xferlab.catalog import check_dataset
from xferlab.errors import UserError
from xferlab.kinds import get_kind, kind_names
from xferlab.registry import DATASETS, resolve
from xferlab.schema import dataset_options
from xferlab.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = {"ucr/*": "ucr/Coffee"}  # a prefix family is tested through one member


def defaults(name: str) -> dict:
    options = dataset_options(name)
    values = dataclasses.asdict(options()) if options else {}
    return {**values, "root": None, "max_items": None, **({"profile": "tiny"} if "profile" in values else {})}


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_loads_offline_or_names_its_root(name: str, cache_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    name = EXAMPLE.get(name, name)
    data = defaults(name)
    if DATASETS.meta(name).get("local"):
        for root in (None, str(tmp_path / "missing")):
            with pytest.raises(UserError, match=r"data\.root") as err:
                check_dataset(name, {**data, "root": root})
            assert "\n" not in str(err.value) and "--set data.root=" in str(err.value)
        return
    monkeypatch.setenv("XFERLAB_CACHE", str(cache_dir))  # the tiny corpus is made once per session
    check_dataset(name, data)
    loaded = DATASETS.create(name, data)
    assert loaded.n_classes >= 2 and loaded.describe()


@pytest.mark.parametrize("bad, message", [
    ({"profile": "huge"}, r"data.profile='huge' is not a synthetic corpus profile: use one of tiny, small"),
    ({"style_strength": 2.5}, r"data.style_strength=2.5 is out of range: use 0 .* to 2"),
    ({"confound": 1.5}, r"data.confound=1.5 must lie in \[0, 1\]"),
])
def test_synthetic_options_are_checked_before_any_audio_is_made(bad: dict, message: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XFERLAB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match=message):
        check_dataset("synth/style", {**defaults("synth/style"), **bad})
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind", kind_names())
def test_every_kind_has_a_schema_a_job_and_a_smoke_spec(kind: str):
    record = get_kind(kind)
    assert dataclasses.is_dataclass(record.schema) and record.schema()
    assert callable(resolve(record.job))
    if record.after_grid:
        assert callable(resolve(record.after_grid))
    smoke = [p for p in sorted((ROOT / "experiments" / "smoke").glob("*.yaml"))
             if load_spec(p).instances[0].kind == kind]
    assert smoke, f"kind {kind!r} has no smoke spec under experiments/smoke"
    inst = load_spec(smoke[0]).instances[0]
    record.check(inst.cfg)  # the typed config builds and passes the kind's own checks


def test_an_unknown_kind_is_one_line_with_the_nearest_name():
    with pytest.raises(UserError, match=r"unknown kind 'v2': did you mean 'v2s'\?"):
        get_kind("v2")
