"""The smoke specs through the CLI on an empty store: what a new user sees first.

Each spec pretrains its tiny source/orthogonal model when missing, trains for 2 epochs and
must leave FINISHED runs with the design's tags, per-epoch metrics and artifacts. The
store is the session's ``smoke_store`` (tests/conftest.py), where both specs ran from
empty; the report tests add runs of their own to it, so the runs are picked by tag.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import ROOT, SMOKE_RUNS, run_cli

TAGS = ("xferlab.paper", "xferlab.spec", "xferlab.spec_hash", "xferlab.cell", "xferlab.seed", "xferlab.role",
        "xferlab.dataset", "xferlab.git_commit")


def client_for(workdir: Path) -> MlflowClient:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def finished_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    return [r for r in client.search_runs([exp.experiment_id]) if r.info.status == "FINISHED"]


def artifact_names(client: MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)}


def check_common(client: MlflowClient, run, epochs: int = 2) -> None:
    for tag in TAGS:
        assert tag in run.data.tags, f"tag {tag} missing"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert steps == list(range(1, epochs + 1))
    for name in ("val_loss", "val_accuracy", "train_accuracy"):
        assert len(client.get_metric_history(run.info.run_id, name)) == epochs
    assert {"spec.yaml", "environment.json", "history.csv", "confusion_matrix.png"} <= artifact_names(
        client, run.info.run_id)
    assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0


SMOKE_V2S = ["run", str(ROOT / "experiments/smoke/v2s.yaml"), *SMOKE_RUNS["v2s"]]


@pytest.fixture(scope="module")
def v2s_dir(smoke_store) -> tuple[Path, dict[str, str], dict]:
    return smoke_store


def smoke_v2s_runs(client: MlflowClient) -> list:
    """The FINISHED runs of the smoke V2S spec as the session ran it (2 epochs, Table 2 tag)."""
    return [r for r in finished_runs(client, "v2s") if r.data.tags.get("xferlab.table") == "v2s_table2"
            and r.data.params.get("train.epochs") == "2"]


def test_smoke_v2s_from_empty_store(v2s_dir):
    workdir, env, _ = v2s_dir
    client = client_for(workdir)
    [source] = [r for r in finished_runs(client, "sources") if r.data.tags["xferlab.kind"] == "pretrain_v2s"]
    assert source.data.tags["xferlab.role"] == "pretrain"
    from xferlab.data.perturb import PERTURBATIONS  # the robustness probe: held-out clips under each

    for name in PERTURBATIONS:
        assert 0.0 <= source.data.metrics[f"test_{name}_accuracy"] <= 1.0
    assert str(client.get_model_version_by_alias("attrnn_tiny", "champion").version) == "1"
    # pretrained once: a rerun or a second process registers no second version
    assert len(client.search_model_versions("name='attrnn_tiny'")) == 1
    [run] = smoke_v2s_runs(client)
    check_common(client, run)
    assert run.data.tags["xferlab.source_model"] == "attrnn_tiny"
    assert run.data.tags["xferlab.source_version"] == "1"
    assert run.data.tags["xferlab.val_mode"] == "holdout"
    assert len(client.get_metric_history(run.info.run_id, "swd")) == 2
    for metric in ("test_loss", "test_f1_macro", "best_epoch", "mpce"):
        assert metric in run.data.metrics
    assert {"fig3_curves.png", "fig4_cam.png", "fig5_tsne.png"} <= artifact_names(client, run.info.run_id)
    # one of the session's V2S processes pretrained and registered the source: Keras's
    # export listing (every captured variable's TensorSpec) stays out of its progress lines
    assert not [name for name, out in v2s_dir[2].items() if "TensorSpec(" in out.stdout]


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
def test_second_run_skips_finished_instance(v2s_dir):
    workdir, env, _ = v2s_dir
    before = len(finished_runs(client_for(workdir), "v2s"))
    again = run_cli(SMOKE_V2S, workdir, env)
    assert again.returncode == 0 and "1 already finished, 0 to run" in again.stdout
    assert len(finished_runs(client_for(workdir), "v2s")) == before
    assert len(smoke_v2s_runs(client_for(workdir))) == 1


BAD = {"model.source=no_such_model": "no registered model",
       "model.seg=99": "nothing to run: model.seg=99 copies of a length-286 series do not fit into 16000 samples"}


@pytest.mark.slow  # default-run time; the logic is also held by unit tests
def test_bad_v2s_settings_fail_cleanly(v2s_dir):
    """Each bad setting (run together, as two users might) exits 2 with a one-line reason
    naming it and nothing new is FINISHED. A missing source model fails its run (FAILED,
    with a traceback); a seg the series cannot take leaves no cell to run, so it is refused
    before any run opens."""
    from tests.conftest import run_cli_together

    workdir, env, _ = v2s_dir
    client = client_for(workdir)
    v2s = client.get_experiment_by_name("v2s").experiment_id
    before = {r.info.run_id for r in client.search_runs([v2s])}
    commands = [[*SMOKE_V2S, "--set", override, "--set", "model.pretrain=null"] for override in BAD]
    for out, message in zip(run_cli_together(commands, workdir, env), BAD.values()):
        assert out.returncode == 2, out.stdout + out.stderr
        assert message in out.stderr.strip().splitlines()[-1]
    new = [r for r in client.search_runs([v2s]) if r.info.run_id not in before]
    assert [r.data.params["model.source"] for r in new] == ["no_such_model"]  # seg=99 opened no run
    assert new[0].info.status == "FAILED" and "traceback.txt" in artifact_names(client, new[0].info.run_id)


@pytest.mark.slow  # default-run time: on 2026-12-07's slower host the default run took 657 s with these; run with -m slow
def test_smoke_at_from_empty_store(smoke_store, tmp_path: Path):
    workdir, _, outs = smoke_store
    out = outs["at"]
    client = client_for(workdir)
    finished = finished_runs(client, "antitransfer")
    [summary] = [r for r in finished if r.data.tags["xferlab.role"] == "summary"]
    runs = {r.data.tags["xferlab.cell"]: r for r in finished if r is not summary}
    assert set(runs) == {"at.enabled=False", "at.enabled=True"}
    for run in runs.values():
        check_common(client, run)
    at_run = runs["at.enabled=True"]
    assert at_run.data.tags["xferlab.orthogonal_model"] == "ortho-smoke-speaker"
    assert len(client.get_metric_history(at_run.info.run_id, "at_loss")) == 2
    assert at_run.data.metrics["at_loss"] > 0
    for metric in ("test_f1_macro", "test_precision_macro", "test_recall_macro", "best_train_accuracy",
                   "best_val_accuracy", "train_at_loss"):
        assert metric in at_run.data.metrics
    assert "loss_epochs.png" in artifact_names(client, at_run.info.run_id)
    # the original's per-experiment spreadsheet, as an artifact of the summary run
    assert summary.data.tags["xferlab.spec"] == "smoke/at" and summary.data.params["instances"] == "2"
    assert {"experiment.xlsx", "experiment.csv"} <= artifact_names(client, summary.info.run_id)
    rows = pd.read_csv(client.download_artifacts(summary.info.run_id, "experiment.csv", str(tmp_path)))
    by_cell = rows.set_index("parameters")
    assert by_cell.loc["at.enabled=True", "test acc mean"] == pytest.approx(at_run.data.metrics["test_accuracy"])
    assert f"summary run {summary.info.run_id}" in out.stdout


@pytest.mark.slow  # default-run time: on 2026-12-07's slower host the default run took 657 s with these; run with -m slow
@pytest.mark.parametrize("name", ["v2s", "at"])
def test_each_smoke_run_recorded_the_models_its_kind_loads(smoke_store, name: str,
                                                          monkeypatch: pytest.MonkeyPatch):
    """Every model a kind's ``loads`` names is recorded by its job under that role, so a
    finished run stays current (runner.plan and the claims compare the two): were a role
    not recorded, every rerun would train the instance again."""
    from xferlab.spec import load_spec
    from xferlab.tracking.lineage import expected_lineage, stale

    workdir, env, _ = smoke_store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")  # the CLI's: sqlite in its cwd
    args = SMOKE_RUNS[name]
    overrides = [args[i + 1] for i, arg in enumerate(args) if arg == "--set"]
    instances = load_spec(ROOT / f"experiments/smoke/{name}.yaml", overrides).instances
    experiment = "v2s" if name == "v2s" else "antitransfer"
    runs = {r.data.tags.get("xferlab.spec_hash"): r for r in finished_runs(client_for(workdir), experiment)}
    loaded = [inst for inst in instances if expected_lineage(inst)]
    assert loaded  # the smoke spec loads a registered model somewhere
    for inst in loaded:
        assert all(uri for uri in expected_lineage(inst).values())
        assert stale(runs[inst.hash], inst) is None
