"""Prerequisites are planned by the runner: only the missing registered models are made,
only by the pretraining instances that register them, and a model that is there is never
trained again (so a rerun registers no second version).

The plan itself needs no training: models are registered here as real (tiny) torch state
dicts in a real sqlite MLflow store, and the plan is read before anything runs.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xferlab.errors import UserError
from xferlab.runner import missing_prerequisites, pretraining_plan, run_prerequisites
from xferlab.spec import load_spec

PRETRAIN = """kind: pretrain_at
data: {dataset: synth/speaker, profile: tiny}
model: {width: 0.03125}
train: {epochs: 1, batch_size: 16, patience: null}
grid: {model.register_as: [ortho-a, ortho-b, ortho-c, ortho-d]}
"""
AT = """kind: at
data: {dataset: synth/style_speakersplit, profile: tiny}
model: {width: 0.03125}
at: {enabled: true, pretrain: orthogonal.yaml}
train: {epochs: 1, batch_size: 16, patience: null}
grid: {at.orthogonal: [ortho-a, ortho-b, ortho-c, ortho-d]}
"""


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from xferlab.tracking import ensure_store

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    ensure_store()
    (tmp_path / "orthogonal.yaml").write_text(PRETRAIN)
    (tmp_path / "at.yaml").write_text(AT)
    return tmp_path


def register(name: str) -> None:
    from xferlab.tracking import register_torch_state, start_run

    with start_run("sources", f"make {name}") as run:
        register_torch_state({"w": torch.zeros(2)}, {"width": 0.03125, "n_classes": 2}, name, run, metric=0.5)


def test_only_the_missing_model_is_planned(specs: Path):
    for name in ("ortho-a", "ortho-b", "ortho-d"):
        register(name)
    instances = load_spec(specs / "at.yaml").instances
    assert list(missing_prerequisites(instances)) == ["ortho-c"]
    plan = pretraining_plan(instances)
    assert [i.get("model.register_as") for i in plan] == ["ortho-c"]  # one of four trains
    register("ortho-c")
    assert pretraining_plan(instances) == []  # a rerun plans nothing, so registers nothing
    assert run_prerequisites(instances) == {}


def test_a_spec_that_does_not_register_the_model_is_a_clear_error(specs: Path):
    instances = load_spec(specs / "at.yaml", ["at.orthogonal=ortho-z"]).instances
    with pytest.raises(UserError, match=r"at.orthogonal=ortho-z names a model that .*orthogonal.yaml"):
        pretraining_plan(instances)
    from xferlab.catalog import check_instances

    with pytest.raises(UserError, match=r"does not register"):  # a dry run says so too, store untouched
        check_instances(instances)


def test_a_disabled_orthogonal_model_is_not_needed(specs: Path):
    instances = load_spec(specs / "at.yaml", ["at.enabled=false"]).instances
    assert pretraining_plan(instances) == []


def test_a_pinned_uri_is_never_planned(specs: Path):
    instances = load_spec(specs / "at.yaml", ["at.orthogonal=models:/ortho-a/1"]).instances
    assert missing_prerequisites(instances) == {}
