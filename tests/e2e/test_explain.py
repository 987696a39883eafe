"""Trained models are kept with their runs and load again; ``xferlab explain RUN_ID`` redraws
Figure 4 for any test series and conv layer of a finished V2S run (the smoke store's), and
``xferlab probe RUN_ID`` scores read-outs at each depth of its source model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # default-run time: on 2026-12-07's slower host the default run took 657 s with these; run with -m slow


@pytest.fixture
def store(smoke_store, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    workdir, env, _ = smoke_store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    monkeypatch.setenv("XFERLAB_CACHE", env["XFERLAB_CACHE"])
    return workdir, env


def smoke_run(kind: str, **tags: str):
    import mlflow

    client = mlflow.MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = [r for r in client.search_runs(ids, "attributes.status = 'FINISHED'")
            if r.data.tags.get("xferlab.kind") == kind and r.data.tags.get("xferlab.role") == "smoke"
            and r.data.params.get("train.epochs") == "2"  # not the report's 1-epoch copy
            and all(r.data.tags.get(f"xferlab.{k}") == v for k, v in tags.items())]
    assert runs, f"no finished smoke {kind} run"
    return runs[0]


def test_a_v2s_run_keeps_its_program_and_it_scores_what_the_run_logged(store):
    """The kept program on the pinned source version gives the logged test accuracy."""
    from xferlab import tracking
    from xferlab.catalog import DATASETS
    from xferlab.jobs.v2s import load_kept

    run = smoke_run("v2s", table="v2s_table2")
    model, meta = load_kept(tracking.download_artifact(run.info.run_id, "model"))
    assert meta["source_uri"] == f"models:/{meta['source_name']}/{meta['source_version']}"
    ds = DATASETS.create(meta["dataset"], meta["data"])
    accuracy = float((model.predict(ds.x_test, verbose=0).argmax(axis=1) == ds.y_test).mean())
    assert accuracy == pytest.approx(run.data.metrics["test_accuracy"], abs=1e-6)


def test_an_at_run_keeps_its_best_checkpoint_loadable_like_a_registered_model(store):
    from xferlab import serving, tracking

    run = smoke_run("at")
    classifier = serving._load_pyfunc(tracking.download_artifact(run.info.run_id, "model"))
    probs = classifier.predict(np.random.default_rng(0).normal(0, 0.1, (3, 16000)).astype(np.float32))
    assert probs.shape == (3, int(run.data.tags["xferlab.n_classes"]))
    np.testing.assert_allclose(probs.to_numpy().sum(axis=1), 1.0, atol=1e-5)


def test_explain_draws_and_logs_cam_panels_for_chosen_samples(store, tmp_path: Path):
    from xferlab.cli import main  # in-process: TensorFlow is loaded already

    run = smoke_run("v2s", table="v2s_table2")
    assert main(["explain", run.info.run_id, "--samples", "0", "5", "--out", str(tmp_path / "cams")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "cams").glob("*.png"))
    assert pngs == ["cam_test0_conv1_conv2.png", "cam_test5_conv1_conv2.png"]
    assert all((tmp_path / "cams" / p).stat().st_size > 5000 for p in pngs)
    import mlflow

    logged = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "explain")]
    assert logged == [f"explain/{p}" for p in pngs]


@pytest.mark.parametrize("args, message", [
    (["--layers", "conv9"], "the run's AM has no conv layer 'conv9': choose from conv1, conv2"),
    (["--samples", "999"], "test sample 999 is out of range: the test split of ucr/Coffee has 28 series (0..27)"),
    (["--class", "7"], "--class 7 is out of range: ucr/Coffee has 2 classes (0..1)"),
])
def test_explain_bad_choices_are_one_line_errors(store, args, message, capsys):
    from xferlab.cli import main

    run = smoke_run("v2s", table="v2s_table2")
    assert main(["explain", run.info.run_id, "--no-log", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize("command", ["explain", "probe"])
def test_explain_and_probe_name_what_is_wrong_with_the_run(store, capsys, command):
    from xferlab.cli import main

    at_run = smoke_run("at")
    assert main([command, at_run.info.run_id]) == 2
    assert f"{command} needs a V2S run" in capsys.readouterr().err
    assert main([command, "0123456789abcdef"]) == 2
    assert "no run '0123456789abcdef'" in capsys.readouterr().err


def test_probe_scores_every_depth_on_the_runs_own_training_series(store, tmp_path: Path, capsys):
    """The raw-series 1-NN row equals a 1-NN written out here on the series the run trained
    on (its held-out validation left out), and the output row is the run's logged accuracy."""
    import mlflow
    import pandas as pd

    from xferlab.cli import main
    from xferlab.data.ucr import load_ucr
    from xferlab.jobs.common import stratified_holdout

    run = smoke_run("v2s", table="v2s_table2")
    assert main(["probe", run.info.run_id, "--out", str(tmp_path / "probe")]) == 0
    assert "embedding" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "probe" / "probe.csv")
    assert list(table.layer.unique()) == ["series", "mel_norm", "conv2", "embedding", "logits", "output"]
    assert len(table) == 2 + 2 * 4 * 2 + 1  # series x 2 read-outs, 4 layers x 2 inputs x 2 read-outs, output
    assert table.test_accuracy.between(0, 1).all()
    ds = load_ucr("Coffee")
    idx, _ = stratified_holdout(ds.y_train, float(run.data.params["train.val_fraction"]), int(run.data.params["seed"]))
    assert len(idx) < len(ds.y_train)
    dist = ((ds.x_test[:, None, :] - ds.x_train[idx][None, :, :]) ** 2).sum(axis=-1)
    nearest = float((ds.y_train[idx][dist.argmin(axis=1)] == ds.y_test).mean())
    def accuracy(layer: str, readout: str) -> float:
        return table[(table.layer == layer) & (table.readout == readout)].test_accuracy.item()

    assert accuracy("series", "1-NN") == pytest.approx(nearest)
    assert accuracy("output", "V2S label mapping") == pytest.approx(run.data.metrics["test_accuracy"], abs=1e-6)
    logged = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "probe")]
    assert logged == ["probe/probe.csv", "probe/probe.png"]


def test_a_run_without_a_logged_model_is_a_one_line_error(store, capsys):
    from xferlab import tracking
    from xferlab.cli import main

    with tracking.start_run("v2s", "made before models were kept", tags={"xferlab.kind": "v2s",
                                                                        "xferlab.method": "v2s"}) as run:
        pass
    assert main(["explain", run.run_id]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"run {run.run_id} has no logged model (model/)" in err[0]
