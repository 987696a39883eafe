"""``xferlab models import``: outside weights (files these tests write themselves) are
checked against the contract before they are registered; a mismatch is one line, exit 2,
and registers nothing."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from xferlab.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("import")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        mp.chdir(root)
        yield root


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
def test_a_keras_am_is_registered_and_loads_like_a_trained_one(store: Path, capsys):
    from xferlab import tracking
    from xferlab.catalog import MODELS

    am = MODELS.create("attrnn_tiny", 5)
    am.save(store / "am.keras")
    assert main(["models", "import", str(store / "am.keras"), "--name", "imported_am"]) == 0
    assert "registered imported_am version 1" in capsys.readouterr().out
    loaded, ref = tracking.load_keras_model("imported_am")
    x = np.random.default_rng(0).normal(0, 0.1, (2, 16000)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), am.predict(x, verbose=0), atol=1e-6)
    assert ref.version == 1 and ref.format == "keras"


def test_a_vgg16_state_dict_is_registered_with_its_classes(store: Path, capsys):
    import torch

    from xferlab import tracking
    from xferlab.at.vgg import vgg16

    torch.save(vgg16(3, 0.03125, seed=0).state_dict(), store / "vgg.pt")
    assert main(["models", "import", str(store / "vgg.pt"), "--name", "imported_vgg", "--width", "0.03125",
                 "--classes", "a,b,c"]) == 0
    state, config, _ = tracking.load_torch_state("imported_vgg")
    assert config["classes"] == ["a", "b", "c"] and config["width"] == 0.03125 and config["magnitude"] == "linear"
    assert main(["models", "import", str(store / "vgg.pt"), "--name", "imported_vgg_log", "--width", "0.03125",
                 "--classes", "a,b,c", "--magnitude", "log", "--mean", "-9.7", "--std", "1.75"]) == 0
    assert tracking.load_torch_state("imported_vgg_log")[1]["magnitude"] == "log"  # AT and serving read it
    assert all(torch.equal(state[k], v) for k, v in vgg16(3, 0.03125, seed=0).state_dict().items())


def test_mismatches_are_one_line_errors_and_register_nothing(store: Path, capsys):
    import keras
    import torch

    from xferlab import tracking
    from xferlab.at.vgg import vgg16

    short = keras.Sequential([keras.Input((8000,)), keras.layers.Dense(3, activation="softmax")])
    short.save(store / "short.keras")
    torch.save(vgg16(3, 0.0625, seed=0).state_dict(), store / "wide.pt")
    (store / "junk.pt").write_bytes(b"not a tensor file")
    (store / "model.onnx").write_bytes(b"x")
    cases = [
        (["short.keras"], "the Keras model takes inputs of shape (None, 8000): a source AM takes 16000 raw samples"),
        (["wide.pt", "--width", "0.03125", "--classes", "a,b,c"],
         "features.0.weight has shape (4, 1, 3, 3) in the file but (2, 1, 3, 3) in a VGG16 of width 0.03125"),
        (["wide.pt", "--width", "0.0625", "--classes", "a,b"], "in a VGG16 of width 0.0625 with 2 classes"),
        (["wide.pt"], "a VGG16 state dict needs --width"),
        (["junk.pt", "--width", "1", "--classes", "a,b"], "cannot load junk.pt as a PyTorch state dict"),
        (["model.onnx"], "unknown model file type '.onnx'"),
        (["missing.keras"], "missing.keras: give the path of a .keras/.h5 Keras model"),
    ]
    for args, message in cases:
        assert main(["models", "import", str(store / args[0]), *args[1:], "--name", "never"]) == 2, args
        assert message in one_error(capsys), args
    assert not tracking.model_exists("never")
