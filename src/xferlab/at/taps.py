"""Where the AT term looks: tap modes and forward hooks into ``model.features``.

Two modes (spec key ``at.tap``):

- ``conv`` (default, the clean one): ``at.layer = n`` in 1..13 taps the output of conv n
  AFTER its ReLU, i.e. ``features[:CONV_INDICES[n-1] + 2]``.
- ``paper`` (the original's semantics, reproduced on purpose): ``at.layer = k`` in 0..12
  indexes the original list [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28] and taps
  ``features[:index]``, i.e. the output of the module just BEFORE conv k+1 (a ReLU or a
  max-pool). k = 0 taps the input itself, which is identical for both networks: the AT
  term is a constant with no gradient. conv5_3 is never reached in this mode.

Why a hook: the trained network's activation must come from the SAME forward pass that
produces the logits (a second forward would double the cost and, with dropout or any
stochastic layer, give a different graph). The orthogonal network runs only up to the
tap, under ``torch.no_grad()``; it never trains.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xferlab.at.vgg import CONV_INDICES
from xferlab.errors import UserError

TAP_MODES = ("conv", "paper")


def tap_end(mode: str, layer: int) -> int:
    """Number of ``features`` modules to run so that the last output is the tapped one.

    0 means "the input itself" (paper mode, k = 0).
    """
    if mode == "conv":
        if not 1 <= int(layer) <= len(CONV_INDICES):
            raise UserError(f"at.layer={layer} is out of range for tap 'conv': use 1..13")
        return CONV_INDICES[int(layer) - 1] + 2  # conv + its ReLU
    if mode == "paper":
        if not 0 <= int(layer) < len(CONV_INDICES):
            raise UserError(f"at.layer={layer} is out of range for tap 'paper': use 0..12")
        return CONV_INDICES[int(layer)]
    raise UserError(f"unknown at.tap {mode!r}: use one of {', '.join(TAP_MODES)}")


def _features(model: nn.Module) -> nn.Sequential:
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Sequential):
        raise UserError(f"{type(model).__name__} has no `features` Sequential: AT needs a VGG-like model")
    return feats


class ActivationTap:
    """Forward hook that keeps the tapped activation of the latest forward pass.

    Usage: ``tap = ActivationTap(model, end)``; after ``model(x)``, ``tap.activation`` is
    (B, C, H, W) with its autograd graph. ``tap.remove()`` (or ``with``) detaches the hook.
    """

    def __init__(self, model: nn.Module, end: int) -> None:
        feats = _features(model)
        if not 0 <= end <= len(feats):
            raise UserError(f"tap end {end} is outside the model's {len(feats)} feature modules")
        self.activation: torch.Tensor | None = None
        if end == 0:  # the input of features[0]
            self._handle = feats[0].register_forward_pre_hook(self._keep_input)
        else:
            self._handle = feats[end - 1].register_forward_hook(self._keep_output)

    def _keep_input(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.activation = args[0]

    def _keep_output(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        self.activation = output

    def pop(self) -> torch.Tensor:
        """Return the stored activation and forget it (no stale tensor between batches)."""
        if self.activation is None:
            raise RuntimeError("no activation captured: run the model's forward first")
        act, self.activation = self.activation, None
        return act

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self) -> "ActivationTap":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def features_up_to(model: nn.Module, x: torch.Tensor, end: int) -> torch.Tensor:
    """Run ``features[:end]`` on x ((B, T, F) or (B, 1, T, F)) -> (B, C, H, W)."""
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return _features(model)[:end](x)


def orth_activation(orth: nn.Module, x: torch.Tensor, end: int) -> torch.Tensor:
    """The frozen orthogonal network's activation at the tap, without a graph."""
    with torch.no_grad():
        return features_up_to(orth, x, end)
