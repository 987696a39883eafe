"""Registered models work in the tools researchers already use: a fresh Python process
loads the smoke store's source AM and orthogonal VGG16 with MLflow alone (pyfunc, and the
Keras flavour's own loader), predicts from raw 16 kHz audio exactly as xferlab's own
models do, and ``mlflow models serve`` answers a request on localhost."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

SOURCE, ORTHO = "models:/attrnn_tiny@champion", "models:/ortho-smoke-speaker@champion"

FRESH_PROCESS = f"""
import json, sys
import numpy as np
import mlflow.keras, mlflow.pyfunc
assert not [m for m in sys.modules if m.startswith(("xferlab", "kapre"))]
x = np.load(sys.argv[1])
source = np.asarray(mlflow.pyfunc.load_model("{SOURCE}").predict(x))
exported = mlflow.keras.load_model("{SOURCE}")  # a TensorFlow SavedModel: keep it referenced
flavour = np.asarray(exported.serve(x))
orth = mlflow.pyfunc.load_model("{ORTHO}").predict(x)
np.savez(sys.argv[2], source=source, flavour=flavour, orth=orth.to_numpy(), classes=np.array(list(orth.columns), dtype=str))
print(json.dumps({{"kapre": "kapre" in sys.modules,
                   "xferlab_files": sorted({{m.__file__ for n, m in sys.modules.items()
                                            if n.startswith("xferlab") and getattr(m, "__file__", None)}})}}))
"""


def clips(n: int = 3) -> np.ndarray:
    t = np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    return np.stack([0.3 * np.sin(2 * np.pi * (200 + 150 * k) * t) + rng.normal(0, 0.02, 16000)
                     for k in range(n)]).astype(np.float32)


@pytest.fixture
def store_env(smoke_store, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    workdir, env, _ = smoke_store
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(workdir)
    clean = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # xferlab's source tree not on the path
    return workdir, {**clean, "MLFLOW_TRACKING_URI": uri}


def expected(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """What xferlab's own loaders and feature code give for ``x``: (source, orth, classes)."""
    import torch

    from xferlab import tracking
    from xferlab.at.vgg import build_vgg
    from xferlab.data.features import spectrogram
    from xferlab.v2s import models  # noqa: F401  (registers the AM's layers)

    am, _ = tracking.load_keras_model(SOURCE.removeprefix("models:/"))
    state, config, _ = tracking.load_torch_state(ORTHO.removeprefix("models:/"))
    vgg = build_vgg(config["width"], config["n_classes"]).eval()
    vgg.load_state_dict(state)
    z = (spectrogram(x[:, :int(round(config["segment_s"] * 16000))]) - config["mean"]) / config["std"]
    with torch.no_grad():
        orth = torch.softmax(vgg(z), dim=1).numpy()
    return am.predict(x, verbose=0), orth, config["classes"]


@pytest.mark.slow  # a fresh TensorFlow + torch process (~14 s); xferlab.serving also runs in test_explain.py
def test_registered_models_load_and_predict_with_mlflow_alone(store_env, tmp_path: Path):
    workdir, env = store_env
    x = clips()
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "x.npy"), str(tmp_path / "y.npz")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert not seen["kapre"]  # the exported AM needs no kapre
    code = [f for f in seen["xferlab_files"] if os.sep + "code" + os.sep + "xferlab" + os.sep in f]
    assert code == seen["xferlab_files"] and code  # only the copy shipped inside the orthogonal model
    got = np.load(tmp_path / "y.npz")
    source, orth, classes = expected(x)
    np.testing.assert_allclose(got["source"], source, atol=1e-5)
    np.testing.assert_allclose(got["flavour"], source, atol=1e-5)
    np.testing.assert_allclose(got["orth"], orth, atol=1e-5)
    assert list(got["classes"]) == list(classes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_request(store_env, tmp_path: Path):
    _, env = store_env
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", ORTHO, "--env-manager",
                               "local", "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(0.5)
        x = clips(2)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                         data=json.dumps({"inputs": x.tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"]
        _, orth, classes = expected(x)
        got = np.array([[row[c] for c in classes] for row in answer])
        np.testing.assert_allclose(got, orth, atol=1e-5)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
