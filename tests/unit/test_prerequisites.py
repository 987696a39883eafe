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


# -- a FINISHED run counts only while the models it loaded are the ones a new run would load --
def finished_run(instance, loaded: str | None) -> str:
    """A FINISHED run of ``instance`` that recorded loading ``loaded`` (as the AT job does)."""
    from xferlab.tracking import record_lineage, resolve_model, start_instance_run

    with start_instance_run(instance) as run:
        if loaded:
            record_lineage(run, resolve_model(loaded), role="orthogonal")
    return run.run_id


def register_scored(name: str, metric: float) -> None:
    from xferlab.tracking import register_torch_state, start_run

    with start_run("sources", f"make {name}") as run:
        register_torch_state({"w": torch.zeros(2)}, {"width": 0.03125, "n_classes": 2}, name, run, metric=metric)


def test_a_run_made_with_a_replaced_champion_runs_again(specs: Path, capsys: pytest.CaptureFixture[str]):
    from xferlab.runner import plan

    register_scored("ortho-a", 0.5)
    inst = load_spec(specs / "at.yaml", ["at.orthogonal=ortho-a"]).instances[0]
    first = finished_run(inst, "ortho-a")
    todo, skipped = plan([inst], force=False)
    assert not todo and skipped[0].run_id == first
    register_scored("ortho-a", 0.4)  # version 2, worse: the champion stays version 1
    assert not plan([inst], force=False)[0]
    register_scored("ortho-a", 0.9)  # version 3 becomes the champion: the old result answers another question
    todo, skipped = plan([inst], force=False)
    assert todo == [inst] and not skipped
    assert "used models:/ortho-a/1; its orthogonal model is now models:/ortho-a/3" in capsys.readouterr().out
    second = finished_run(inst, "ortho-a")
    todo, skipped = plan([inst], force=False)
    assert not todo and skipped[0].run_id == second


def test_a_pinned_version_and_a_baseline_are_never_stale(specs: Path):
    from xferlab.runner import plan

    register_scored("ortho-a", 0.5)
    pinned = load_spec(specs / "at.yaml", ["at.orthogonal=models:/ortho-a/1"]).instances[0]
    baseline = load_spec(specs / "at.yaml", ["at.orthogonal=ortho-a", "at.enabled=false"]).instances[0]
    finished_run(pinned, "models:/ortho-a/1")
    finished_run(baseline, None)  # loads nothing, records nothing
    register_scored("ortho-a", 0.9)
    assert plan([pinned, baseline], force=False)[0] == []


def test_a_claim_does_not_count_a_stale_run(specs: Path):
    """Two processes sharing the store: the claim agrees with the plan (a stale FINISHED run
    does not hold the instance; a current one does)."""
    from xferlab.tracking import record_lineage, resolve_model, start_instance_run
    from xferlab.tracking.claims import ClaimLost, hold

    register_scored("ortho-a", 0.5)
    inst = load_spec(specs / "at.yaml", ["at.orthogonal=ortho-a"]).instances[0]
    finished_run(inst, "ortho-a")
    register_scored("ortho-a", 0.9)
    with start_instance_run(inst) as run:
        hold(run, "final")  # won: the FINISHED run used version 1
        record_lineage(run, resolve_model("ortho-a"), role="orthogonal")
    with pytest.raises(ClaimLost):
        with start_instance_run(inst) as run:
            hold(run, "final")  # taken: the run above used the champion, version 2
