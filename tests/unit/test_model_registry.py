"""Model Registry on a real MLflow sqlite store: Keras and PyTorch round trips, champion alias, lineage.

Kept apart from test_tracking.py because importing TensorFlow costs ~8 s.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts

from xferlab.errors import UserError
from xferlab.serving import SHIPPED
from xferlab.spec import Instance
from xferlab.tracking import (ensure_store, load_keras_model, load_torch_state, model_exists, record_lineage,
                              register_keras_model, register_torch_state, resolve_model, start_instance_run)


def make_instance(kind: str = "pretrain_at", experiment: str = "sources") -> Instance:
    config = {"kind": kind, "seed": 0, "data": {"dataset": "synth/words"}}
    return Instance(spec_name="sources/unit", spec_path="experiments/sources/unit.yaml", kind=kind,
                    paper="antitransfer", table=None, experiment=experiment, cell="default", seed=0,
                    config=config, hash=uuid.uuid4().hex[:16])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        mp.chdir(root)
        yield ensure_store()


@pytest.fixture()
def client(store: str) -> MlflowClient:
    return MlflowClient(store, store)


def tiny_state(seed: int) -> tuple[dict, dict]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    return net.state_dict(), {"arch": "tiny", "width": 3, "layers": [4, 3]}


def register_state(name: str, metric: float, seed: int = 0, **kwargs: object) -> int:
    state, config = tiny_state(seed)
    with start_instance_run(make_instance(), role="pretrain") as run:
        return register_torch_state(state, config, name, run, metric, metric_name="val_accuracy", **kwargs)


def test_torch_state_round_trip_is_data_only(client: MlflowClient, store: str):
    torch = pytest.importorskip("torch")
    name = f"orth_{uuid.uuid4().hex[:6]}"
    state, config = tiny_state(0)
    with start_instance_run(make_instance(), role="pretrain") as run:
        version = register_torch_state(state, config, name, run, 0.5)
    loaded, loaded_config, ref = load_torch_state(name)
    assert version == 1 and loaded_config == config and list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert (ref.name, ref.version, ref.uri, ref.run_id, ref.format) == (name, 1, f"models:/{name}/1", run.run_id,
                                                                        "torch_state")
    model_dir = Path(download_artifacts(ref.uri))
    files = {p.name for p in model_dir.iterdir()} - {"registered_model_meta"}  # written by the download
    assert files == {"MLmodel", "state_dict.pt", "config.json", "requirements.txt", "code"}
    torch.load(model_dir / "state_dict.pt", weights_only=True)  # loads without unpickling code
    shipped = {str(p.relative_to(model_dir / "code" / "xferlab")) for p in (model_dir / "code").rglob("*.py")}
    assert shipped == set(SHIPPED)  # the pyfunc loader and what it imports, nothing else
    logged = client.get_logged_model(ref.model_id)
    assert logged.experiment_id == run.experiment_id and logged.source_run_id == run.run_id
    assert logged.artifact_location.startswith(str(Path(store[len("sqlite:///"):]).parent / "mlartifacts"))
    assert [o.model_id for o in client.get_run(run.run_id).outputs.model_outputs] == [ref.model_id]


def test_a_pinned_version_is_loaded_once_per_process_and_never_stale(client: MlflowClient):
    """The second load of a version comes from memory (its files are gone by then); a model
    deleted and registered again under the same version number is loaded anew."""
    import shutil

    torch = pytest.importorskip("torch")
    name = f"orth_{uuid.uuid4().hex[:6]}"
    register_state(name, 0.5, seed=1)
    first, _, ref = load_torch_state(name)
    first["extra"] = torch.zeros(1)  # the caller's dict is its own
    files = Path(client.get_logged_model(ref.model_id).artifact_location.removeprefix("file://"))
    shutil.rmtree(files)  # the version's files in the store
    with pytest.raises(Exception):
        download_artifacts(ref.uri)
    again, _, _ = load_torch_state(name)
    assert "extra" not in again and all(torch.equal(again[k], tiny_state(1)[0][k]) for k in again)
    client.delete_registered_model(name)
    register_state(name, 0.5, seed=2)
    fresh, _, ref2 = load_torch_state(name)
    assert ref2.uri == ref.uri and ref2.run_id != ref.run_id
    assert all(torch.equal(fresh[k], tiny_state(2)[0][k]) for k in fresh)


def test_champion_moves_only_on_a_better_metric(client: MlflowClient):
    name = f"src_{uuid.uuid4().hex[:6]}"
    assert register_state(name, 0.5) == 1
    assert register_state(name, 0.4, seed=1) == 2
    assert int(client.get_model_version_by_alias(name, "champion").version) == 1
    assert register_state(name, 0.5, seed=2) == 3  # a tie keeps the old champion
    assert int(client.get_model_version_by_alias(name, "champion").version) == 1
    assert register_state(name, 0.7, seed=3) == 4
    assert resolve_model(name).version == 4
    assert resolve_model(f"models:/{name}/2").version == 2
    assert resolve_model(f"models:/{name}/latest").version == 4
    assert resolve_model(f"models:/{name}@champion").version == 4
    assert client.get_model_version(name, "2").tags["xferlab.metric"] == "0.4"
    lower = f"loss_{uuid.uuid4().hex[:6]}"
    register_state(lower, 0.3, higher_is_better=False)
    register_state(lower, 0.2, seed=1, higher_is_better=False)
    register_state(lower, 0.9, seed=2, higher_is_better=False)
    assert resolve_model(lower).version == 2


def test_without_champion_the_latest_version_is_used(client: MlflowClient):
    name = f"noalias_{uuid.uuid4().hex[:6]}"
    register_state(name, 0.1)
    register_state(name, 0.2, seed=1)
    client.delete_registered_model_alias(name, "champion")
    assert resolve_model(name).version == 2


def test_unknown_models_are_user_errors_with_the_hint(store: str):
    hint = "pretrain one with `xferlab run experiments/sources/at_orthogonal.yaml`"
    assert not model_exists("nope")
    with pytest.raises(UserError) as err:
        load_torch_state("nope", hint=hint)
    assert str(err.value) == f"no registered model 'nope': {hint}"
    name = f"few_{uuid.uuid4().hex[:6]}"
    register_state(name, 0.1)
    assert model_exists(name)
    with pytest.raises(UserError, match="no version 7"):
        resolve_model(f"models:/{name}/7")
    with pytest.raises(UserError, match="no alias 'best'"):
        resolve_model(f"models:/{name}@best")
    with pytest.raises(UserError, match="torch_state model, not keras"):
        load_keras_model(name)


def test_lineage_is_recorded_on_the_downstream_run(client: MlflowClient):
    name = f"lin_{uuid.uuid4().hex[:6]}"
    register_state(name, 0.1)
    ref = resolve_model(name)
    with start_instance_run(make_instance("at", "antitransfer")) as run:
        record_lineage(run, ref, role="orthogonal")
    got = client.get_run(run.run_id)
    assert got.data.tags["xferlab.orthogonal_model"] == name
    assert got.data.tags["xferlab.orthogonal_version"] == "1"
    assert got.data.tags["xferlab.orthogonal_run"] == ref.run_id
    assert [m.model_id for m in got.inputs.model_inputs] == [ref.model_id]


def test_keras_register_load_round_trip(client: MlflowClient):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    name = f"am_{uuid.uuid4().hex[:6]}"
    with start_instance_run(make_instance("pretrain_v2s", "sources"), role="pretrain") as run:
        assert register_keras_model(model, name, run, metric=0.8, metric_name="val_accuracy") == 1
    loaded, ref = load_keras_model(name)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert (ref.name, ref.version, ref.run_id, ref.format) == (name, 1, run.run_id, "keras")
    with pytest.raises(UserError, match="keras model, not torch_state"):
        load_torch_state(name)


def test_a_batch_norm_vgg16_is_rebuilt_as_registered(store: str):
    """model.norm=batch is in the registered config: AT's loader and the pyfunc loader
    rebuild the BN variant (a plain VGG16 would not take its state dict)."""
    torch = pytest.importorskip("torch")
    from xferlab.at.vgg import vgg16
    from xferlab.jobs.at import load_registered
    from xferlab.serving import _load_pyfunc

    net = vgg16(3, 1 / 32, seed=0, batch_norm=True)
    with torch.no_grad():  # non-default running statistics, so a plain rebuild would differ
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
    config = {"width": 1 / 32, "norm": "batch", "n_classes": 3, "classes": ["a", "b", "c"], "task": "unit",
              "segment_s": 1.0, "mean": 0.0, "std": 1.0}
    name = f"bn_{uuid.uuid4().hex[:6]}"
    with start_instance_run(make_instance(), role="pretrain") as run:
        register_torch_state(net.state_dict(), config, name, run, 0.5)
    x = torch.randn(2, 1, 32, 33)
    net.eval()
    with start_instance_run(make_instance("at", "antitransfer")) as run:
        loaded = load_registered(name, run, "orthogonal", 0).eval()
    served = _load_pyfunc(str(download_artifacts(f"models:/{name}/1"))).model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x)) and torch.allclose(served(x), net(x))


def test_a_log_magnitude_vgg16_serves_log_inputs_and_refuses_a_linear_run(store: str):
    """model.magnitude=log is in the registered config: the pyfunc model compresses raw
    audio's spectrogram as in training (so its probabilities are the network's on the
    z-scored log input), and AT refuses to push a linear run away from it (and a log run
    away from a model registered before the option, which saw linear inputs)."""
    torch = pytest.importorskip("torch")
    from xferlab.at.vgg import vgg16
    from xferlab.data.features import LOG_FLOOR, spectrogram
    from xferlab.jobs.at import load_registered
    from xferlab.serving import _load_pyfunc

    net = vgg16(2, 1 / 32, seed=0).eval()
    log_cfg = {"width": 1 / 32, "magnitude": "log", "n_classes": 2, "classes": ["a", "b"], "task": "unit",
               "segment_s": 0.25, "mean": -9.0, "std": 2.0}
    log_name, old_name = f"log_{uuid.uuid4().hex[:6]}", f"old_{uuid.uuid4().hex[:6]}"
    with start_instance_run(make_instance(), role="pretrain") as run:
        register_torch_state(net.state_dict(), log_cfg, log_name, run, 0.5)
        register_torch_state(net.state_dict(), {k: v for k, v in log_cfg.items() if k != "magnitude"}, old_name, run, 0.5)
    clips = np.random.default_rng(0).normal(0, 0.05, (3, 4000)).astype(np.float32)
    served = _load_pyfunc(str(download_artifacts(f"models:/{log_name}/1"))).predict(clips)
    with torch.no_grad():
        expected = torch.softmax(net((torch.log(spectrogram(clips) + LOG_FLOOR) + 9.0) / 2.0), dim=1).numpy()
    np.testing.assert_allclose(served.to_numpy(), expected, rtol=1e-5, atol=1e-6)
    with start_instance_run(make_instance("at", "antitransfer")) as run:
        load_registered(log_name, run, "orthogonal", 0, "log")  # same magnitude: loads
        with pytest.raises(UserError, match="trained on log magnitudes .* set model.magnitude=log"):
            load_registered(log_name, run, "orthogonal", 0, "linear")
        with pytest.raises(UserError, match="trained on linear magnitudes"):
            load_registered(old_name, run, "orthogonal", 0, "log")
