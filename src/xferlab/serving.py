"""Registered VGG16 models (orthogonal and pretrained anti-transfer models) as MLflow
``pyfunc`` models: raw 16 kHz audio in, class probabilities out.

A copy of this module and of the few modules it needs (:data:`SHIPPED`) travels inside
every registered PyTorch model (its ``code/`` folder), so ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` work in a process that has MLflow and torch but has not imported,
or even installed, xferlab. The weights stay data (``torch.load(weights_only=True)``).

Input: one clip per row (a 2-D array, a list of lists or a DataFrame), 16 kHz mono
float samples; each clip is cut or zero-padded to the training segment length, turned
into the paper's spectrogram, read as the magnitude the model was trained on (linear, or
log for the offline-analogue variant), z-scored with the training split's mean and std of
that magnitude (all kept in the model's ``config.json``) and classified. Output: a DataFrame of probabilities, one
column per class name.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from xferlab.data.features import SAMPLE_RATE

SHIPPED = ("__init__.py", "errors.py", "serving.py", "at/__init__.py", "at/vgg.py", "data/__init__.py",
           "data/features.py")  # what this module needs, relative to the xferlab package
STATE_FILE, CONFIG_FILE, CODE_DIR = "state_dict.pt", "config.json", "code"


class AudioClassifier:
    """A trained VGG16 with what it needs to classify raw audio (see the module docstring)."""

    def __init__(self, model: Any, config: dict[str, Any]) -> None:
        missing = [k for k in ("mean", "std", "segment_s", "classes") if k not in config]
        if missing:
            raise ValueError(f"model config lacks {missing}: this model was registered before xferlab kept its "
                             "feature statistics; register it again (xferlab run its pretraining spec --force)")
        self.model, self.config = model.eval(), config
        self.length = int(round(float(config["segment_s"]) * SAMPLE_RATE))

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd
        import torch

        from xferlab.data.features import compress, magnitude_of, spectrogram

        x = np.asarray(model_input.values if isinstance(model_input, pd.DataFrame) else model_input, np.float32)
        x = x[None] if x.ndim == 1 else x
        if x.ndim != 2:
            raise ValueError(f"expected one clip of 16 kHz samples per row, got an array of shape {x.shape}")
        clips = np.zeros((len(x), self.length), np.float32)
        clips[:, :min(self.length, x.shape[1])] = x[:, :self.length]
        seen = compress(spectrogram(clips), magnitude_of(self.config))
        z = (seen - float(self.config["mean"])) / float(self.config["std"])
        with torch.no_grad():
            probs = torch.softmax(self.model(z.float()), dim=1).numpy()
        return pd.DataFrame(probs, columns=[str(c) for c in self.config["classes"]])


def _load_pyfunc(path: str) -> AudioClassifier:
    """MLflow's entry point: ``path`` is the model folder (MLmodel, state dict, config)."""
    import torch

    from xferlab.at.vgg import batch_norm_of, vgg16

    with open(os.path.join(path, CONFIG_FILE)) as handle:
        config = json.load(handle)
    model = vgg16(int(config["n_classes"]), float(config["width"]),
                  batch_norm=batch_norm_of(config))
    model.load_state_dict(torch.load(os.path.join(path, STATE_FILE), map_location="cpu", weights_only=True))
    return AudioClassifier(model, config)
