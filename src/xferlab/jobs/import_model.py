"""``xferlab models import``: put weights a user already has into the Model Registry.

Two kinds of file, told apart by their suffix:

- a Keras model (``.keras`` or ``.h5``) of a source AM with our input contract: raw audio,
  16000 samples in, class probabilities out (kapre's and xferlab's layers are known);
- a PyTorch state dict (``.pt``/``.pth``) of a VGG16 of a given width (an orthogonal or a
  pretrained anti-transfer model), loaded with ``weights_only=True``.

Each is validated before anything is registered (shapes against the contract or against
a VGG16 of that width, then one forward pass that must give finite probabilities); a
mismatch is a one-line error naming it. The registration is an MLflow run of its own
(experiment ``sources``, role ``import``) that records where the file came from.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from xferlab.data.features import MAGNITUDES, check_magnitude
from xferlab.errors import UserError

KERAS_SUFFIXES, TORCH_SUFFIXES = (".keras", ".h5"), (".pt", ".pth")
N_SAMPLES = 16000


def import_model(path: Path, name: str, width: float | None = None, classes: Sequence[str] | None = None,
                 segment_s: float = 1.0, mean: float = 0.0, std: float = 1.0, magnitude: str | None = None) -> int:
    """Validate ``path`` and register it as a new version of ``name``; the version number."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no model file {path}: give the path of a .keras/.h5 Keras model or a .pt/.pth state dict")
    if path.suffix in KERAS_SUFFIXES:
        return _import_keras(path, name)
    if path.suffix in TORCH_SUFFIXES:
        if width is None or not classes:
            raise UserError("a VGG16 state dict needs --width (e.g. 1.0, 0.125) and --classes (its class names, "
                            "in output order)")
        return _import_vgg(path, name, width, list(classes), segment_s, mean, std,
                           check_magnitude(magnitude or MAGNITUDES[0]))
    raise UserError(f"{path.name}: unknown model file type {path.suffix!r}: use .keras/.h5 (a Keras source AM) "
                    "or .pt/.pth (a VGG16 state dict)")


def check_keras_am(model) -> int:
    """The number of classes of a Keras AM that keeps the input contract (raises otherwise)."""
    inputs, outputs = tuple(model.input_shape), tuple(model.output_shape)
    if inputs[1:] not in ((N_SAMPLES,), (N_SAMPLES, 1)):
        raise UserError(f"the Keras model takes inputs of shape {inputs}: a source AM takes {N_SAMPLES} raw samples "
                        f"at 16 kHz, shape (None, {N_SAMPLES})")
    if len(outputs) != 2 or not outputs[1] or outputs[1] < 2:
        raise UserError(f"the Keras model gives outputs of shape {outputs}: a source AM gives class probabilities, "
                        "shape (None, n_classes) with n_classes >= 2")
    probs = np.asarray(model.predict(np.zeros((2, N_SAMPLES), np.float32), verbose=0))
    if not np.isfinite(probs).all() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise UserError("the Keras model's outputs on silence are not probabilities (not finite or not summing to 1): "
                        "end the model with a softmax")
    return int(outputs[1])


def _import_keras(path: Path, name: str) -> int:
    import keras

    from xferlab import tracking
    from xferlab.v2s import models  # noqa: F401  (kapre's and our layers, for loading)
    import xferlab.v2s.reprogram  # noqa: F401

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - keras raises many types for a bad file
        raise UserError(f"cannot load {path.name} as a Keras model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]})") from None
    n_classes = check_keras_am(model)
    with tracking.start_run("sources", f"import {name}", tags=_tags(path, "keras")) as run:
        version = tracking.register_keras_model(model, name, run, metric=math.nan, metric_name="imported",
                                                input_example=np.zeros((1, N_SAMPLES), np.float32))
        run.set_tags({"xferlab.registered_model": name, "xferlab.registered_version": version,
                      "xferlab.n_classes": n_classes})
    return version


def check_vgg_state(state: dict, width: float, n_classes: int):
    """A VGG16 of ``width`` with ``state`` loaded (raises on the first mismatch)."""
    import torch

    from xferlab.at.vgg import vgg16

    model = vgg16(n_classes, width)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise UserError(f"the state dict is not a VGG16's: {'missing ' + missing[0] if missing else 'unexpected ' + extra[0]}"
                        f" ({len(missing)} missing, {len(extra)} unexpected keys)")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UserError(f"{key} has shape {tuple(state[key].shape)} in the file but {tuple(tensor.shape)} in a "
                            f"VGG16 of width {width} with {n_classes} classes: check --width and --classes")
    model.load_state_dict(state)
    with torch.no_grad():
        logits = model.eval()(torch.zeros(1, 126, 129))
    if not torch.isfinite(logits).all():
        raise UserError("the VGG16 gives non-finite outputs on silence: the weights are damaged")
    return model


def _import_vgg(path: Path, name: str, width: float, classes: list[str], segment_s: float, mean: float,
                std: float, magnitude: str) -> int:
    import torch

    from xferlab import tracking

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise UserError(f"cannot load {path.name} as a PyTorch state dict ({type(exc).__name__}): save it with "
                        "torch.save(model.state_dict(), path)") from None
    if not isinstance(state, dict):
        raise UserError(f"{path.name} holds a {type(state).__name__}, not a state dict: save it with "
                        "torch.save(model.state_dict(), path)")
    model = check_vgg_state(state, width, len(classes))
    config = {"width": width, "n_classes": len(classes), "classes": classes, "task": f"imported from {path.name}",
              "segment_s": segment_s, "mean": mean, "std": std, "magnitude": magnitude}
    with tracking.start_run("sources", f"import {name}", tags=_tags(path, "torch_state")) as run:
        version = tracking.register_torch_state(model.state_dict(), config, name, run, metric=math.nan,
                                                metric_name="imported")
        run.set_tags({"xferlab.registered_model": name, "xferlab.registered_version": version,
                      "xferlab.n_classes": len(classes)})
    return version


def _tags(path: Path, fmt: str) -> dict[str, str]:
    return {"xferlab.role": "import", "xferlab.kind": "import", "xferlab.imported_from": str(path.resolve()),
            "xferlab.format": fmt}
