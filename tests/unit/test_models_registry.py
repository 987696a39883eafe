"""Every registered model builds, runs a forward pass and survives a save/load round trip.

Parametrised over ``xferlab.registry.MODELS`` (as timm's tests are over ``list_models``),
so a newly registered model is tested without editing this file. Each entry's meta names
its framework and its family's tiny variant (``xferlab.catalog``); full-size models get a
forward pass (on PyTorch's meta device when too large to allocate here), and only the
tiny variants take the slower save/load round trip, which keeps the file to seconds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xferlab.catalog import MODELS
from xferlab.errors import UserError

NAMES = MODELS.names()
N_CLASSES = 3
BATCH = 2
MAX_REAL_PARAMS = 10_000_000  # above this a torch model is only shape-checked on "meta"


def meta(name: str) -> dict[str, Any]:
    """The entry's meta, failing with what to register when the contract is missing."""
    info = MODELS.meta(name)
    assert {"framework", "tiny"} <= info.keys(), (
        f"register {name!r} with framework=... and tiny=<its family's tiny variant>")
    return info


TINY = sorted({meta(n)["tiny"] for n in NAMES})


# --- per-framework cases: build, sample input, forward, round trip ------------------------
def keras_input() -> np.ndarray:
    """(2, 16000) float32 raw audio at speech-like loudness, deterministic."""
    return (np.random.default_rng(0).standard_normal((BATCH, 16000)) * 0.1).astype("float32")


def keras_forward(model: Any) -> np.ndarray:
    """Softmax probabilities (B, n_classes): finite and summing to 1 per example."""
    probs = np.asarray(model(keras_input(), training=False))
    assert probs.shape == (BATCH, N_CLASSES)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    return probs


def keras_round_trip(name: str, tmp_path: Path) -> None:
    """.keras file -> keras.models.load_model -> identical predictions."""
    keras = pytest.importorskip("keras")
    model = MODELS.create(name, N_CLASSES)
    before = keras_forward(model)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras_forward(again), before)


def torch_input() -> Any:
    """(2, 1, 126, 129): a batch of one-channel paper spectrograms, deterministic."""
    torch = pytest.importorskip("torch")
    return torch.randn(BATCH, 1, 126, 129, generator=torch.Generator().manual_seed(0))


def torch_forward(model: Any) -> Any:
    """Logits (B, n_classes) in eval mode (no dropout), finite unless on 'meta'."""
    import torch

    with torch.no_grad():
        logits = model.eval()(torch_input().to(next(model.parameters()).device))
    assert tuple(logits.shape) == (BATCH, N_CLASSES)
    if logits.device.type != "meta":
        assert torch.isfinite(logits).all()
    return logits


def torch_round_trip(name: str, tmp_path: Path) -> None:
    """state_dict -> file -> a fresh model of another seed -> identical outputs."""
    import torch

    model, fresh = MODELS.create(name, N_CLASSES, seed=0), MODELS.create(name, N_CLASSES, seed=1)
    before = torch_forward(model)
    assert not torch.equal(torch_forward(fresh), before)  # else the check below proves nothing
    torch.save(model.state_dict(), tmp_path / "m.pt")
    fresh.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert torch.equal(torch_forward(fresh), before)


def torch_build_full(name: str) -> Any:
    """The full-size model: on the meta device first (no memory), for real when small."""
    import torch

    with torch.device("meta"):
        model = MODELS.create(name, N_CLASSES)
    if sum(p.numel() for p in model.parameters()) <= MAX_REAL_PARAMS:
        model = MODELS.create(name, N_CLASSES, seed=0)
    return model


CASES = {
    "keras": {"build": lambda n: MODELS.create(n, N_CLASSES), "forward": keras_forward,
              "round_trip": keras_round_trip},
    "torch": {"build": torch_build_full, "forward": torch_forward, "round_trip": torch_round_trip},
}


def case(name: str) -> dict[str, Any]:
    framework = meta(name)["framework"]
    assert framework in CASES, f"{name!r}: add a test case for framework {framework!r}"
    pytest.importorskip(framework)
    return CASES[framework]


# --- the tests ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_meta_names_a_tiny_of_the_same_framework(name):
    tiny = meta(name)["tiny"]
    assert tiny in MODELS, f"{name!r} names an unregistered tiny variant {tiny!r}"
    assert meta(tiny)["tiny"] == tiny and meta(tiny)["framework"] == meta(name)["framework"]


@pytest.mark.parametrize("name", [n if meta(n)["tiny"] == n else pytest.param(n, marks=pytest.mark.slow)
                                  for n in NAMES])  # full-size builds: -m slow (default-run time)
def test_builds_and_forwards(name):
    c = case(name)
    c["forward"](c["build"](name))


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
@pytest.mark.parametrize("name", TINY)
def test_tiny_save_load_identical_outputs(name, tmp_path):
    case(name)["round_trip"](name, tmp_path)


def test_unknown_name_is_one_line_with_the_nearest_name():
    with pytest.raises(UserError, match="did you mean 'attrnn'") as err:
        MODELS.create("attrn", N_CLASSES)
    assert "\n" not in str(err.value)


def test_vgg16_takes_the_spec_float_width():
    """``model.width`` is a float, and ``vgg16`` builds any width from it."""
    pytest.importorskip("torch")
    model = MODELS.create("vgg16", N_CLASSES, width=0.25, seed=0)
    assert model.width == 0.25 and model.features[0].out_channels == 16
    assert MODELS.create("vgg16_w8", N_CLASSES).width == 0.125
