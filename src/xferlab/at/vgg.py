"""VGG16 for one-channel spectrograms, with a width multiplier and an optional batch norm.

Why our own class rather than torchvision: torchvision is not a dependency, and we need
a width option to train on CPU. The module layout and parameter names are kept identical
to torchvision's ``vgg16`` (``features.<i>``, ``classifier.<i>``) so that:

- the conv indices into ``features`` are [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
  exactly the original's AT index list (the "paper" tap mode depends on it);
- state dicts of width 1.0 have the same keys and shapes as the original's models
  (first conv with 1 input channel, last linear with ``n_classes`` outputs).

Head: torchvision's ``AdaptiveAvgPool2d((7, 7))`` then Linear(C5*49, H), ReLU, Dropout,
Linear(H, H), ReLU, Dropout, Linear(H, n_classes), with H = 4096 * width (C5 = 512 * width),
i.e. the paper's head scaled with the width.

Batch norm (``batch_norm=True``, spec key ``model.norm: batch``) is an offline-analogue
variant, not the paper's network: each conv becomes ``Sequential(conv, BatchNorm2d)`` at the
same ``features`` index, so the conv indices, the tap modes and the AT layer numbers are
unchanged (the state dict keys are then ``features.<i>.0`` / ``features.<i>.1``). Why: at
width 1/16 the first blocks have 4 and 8 channels, and without normalisation Adam drives
whole layers' ReLUs off or learns very slowly (the speaker model plateaued near 60 %).

Names live in the model registry only (``xferlab.catalog``): ``vgg16`` builds any width
(``MODELS.create("vgg16", n_classes, width=w, seed=s)``, ``w`` being the spec's float
``model.width``), and ``vgg16_w8`` / ``vgg16_w16`` / ``vgg16_tiny`` are the fixed widths
1/8, 1/16 and 1/32 (tiny: for tests only). Each width is written once, as the default of
its factory below, so there is no name -> width table to keep in sync with the registry.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xferlab.errors import UserError

# Output channels at width 1.0; "M" = 2x2 max pooling (torchvision's configuration "D").
CFG_D: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                          512, 512, 512, "M", 512, 512, 512, "M"]
CONV_INDICES: list[int] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # into features
HEAD_INITS = ("torchvision", "kaiming")  # the paper's, and He normal for narrow heads


def scaled(n: int, width: float) -> int:
    """Channels/units at ``width``; at least 1 so any width yields a valid network."""
    return max(1, int(round(n * width)))


class VGG16(nn.Module):
    """VGG16 (batch norm optional): input (B, 1, T, F) -> logits (B, n_classes)."""

    def __init__(self, n_classes: int, width: float = 1.0, in_channels: int = 1,
                 dropout: float = 0.5, head_init: str = "torchvision", batch_norm: bool = False) -> None:
        super().__init__()
        if n_classes < 1 or width <= 0:
            raise UserError(f"VGG16 needs n_classes >= 1 and width > 0 (got {n_classes}, {width})")
        self.width = float(width)
        self.n_classes = int(n_classes)
        layers: list[nn.Module] = []
        c_in = in_channels
        for v in CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                c_out = scaled(int(v), width)
                conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
                block = nn.Sequential(conv, nn.BatchNorm2d(c_out)) if batch_norm else conv
                layers += [block, nn.ReLU()]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = scaled(4096, width)
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, n_classes))
        if head_init not in HEAD_INITS:
            raise UserError(f"head_init={head_init!r} is not known: use {' or '.join(HEAD_INITS)}")
        self.reset_parameters(head_init)

    def reset_parameters(self, head_init: str = "torchvision") -> None:
        """torchvision's VGG initialisation: Kaiming-normal convs (fan-out), N(0, 0.01)
        linears; with ``head_init="kaiming"`` the linears are He-normal (fan-in) instead.

        Why the option: N(0, 0.01) suits the paper's 4096-unit head, but at width 1/16 the
        head is 1568 -> 256 -> 256 -> n, and each linear then scales its input's standard
        deviation by about 0.01 * sqrt(fan-in) (0.4, 0.16, 0.16): the logits start near
        1e-3 and the speaker model sat at the chance loss for its first epoch or two.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                if head_init == "kaiming":
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # (B, T, F) -> (B, 1, T, F)
            x = x.unsqueeze(1)
        x = self.features(x)  # (B, C5, T/32, F/32)
        x = self.avgpool(x)  # (B, C5, 7, 7)
        return self.classifier(torch.flatten(x, 1))  # (B, n_classes)


def batch_norm_of(config: dict[str, Any]) -> bool:
    """Whether a registered model's config (``jobs.at.model_config``) is the batch-norm
    variant; configs written before the option have no ``norm`` key: plain VGG16."""
    return config.get("norm", "none") == "batch"


def default_device() -> torch.device:
    """CUDA when present, else CPU: the same code runs on a laptop and a GPU node."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(net: nn.Module, device: torch.device) -> nn.Module:
    """Move ``net`` to ``device``, its conv weights channels-last on the CPU.

    Why: with channels-last weights PyTorch's CPU convolutions take oneDNN's path, which
    at the narrow widths the offline analogues train runs a training step 1.4x (width 1/8)
    to 1.9x (width 1/16) faster than the default layout (``bench/bench_at_step.py`` prints
    the ratio), with the same logits and gradients to float rounding. CUDA keeps the default
    layout: not measured there. Inputs need no change; activations come out channels-last
    (``reshape`` copes).
    """
    net.to(device)
    if device.type == "cpu":
        net.to(memory_format=torch.channels_last)
    return net


def vgg16(n_classes: int = 2, width: float = 1.0, seed: int | None = None,
          device: str | torch.device | None = None, **kwargs: Any) -> VGG16:
    """Registered ``vgg16``: VGG16 at any ``width`` (1.0 = the paper).

    ``seed`` makes the initial weights reproducible without touching the global RNG
    state, so repetitions differ by seed only and a caller's own RNG stream is untouched.
    """
    if seed is None:
        model = VGG16(n_classes, width, **kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = VGG16(n_classes, width, **kwargs)
    return model.to(device) if device is not None else model


def vgg16_w8(n_classes: int = 2, seed: int | None = None, **kwargs: Any) -> VGG16:
    """Registered ``vgg16_w8``: width 1/8, trainable on a CPU."""
    return vgg16(n_classes, 1 / 8, seed=seed, **kwargs)


def vgg16_w16(n_classes: int = 2, seed: int | None = None, **kwargs: Any) -> VGG16:
    """Registered ``vgg16_w16``: width 1/16, the synthetic-corpus default."""
    return vgg16(n_classes, 1 / 16, seed=seed, **kwargs)


def vgg16_tiny(n_classes: int = 2, seed: int | None = None, **kwargs: Any) -> VGG16:
    """Registered ``vgg16_tiny``: width 1/32, the family's tiny variant for tests."""
    return vgg16(n_classes, 1 / 32, seed=seed, **kwargs)


def build_vgg(name_or_width: str | float = "vgg16", n_classes: int = 2, seed: int | None = None,
              device: str | torch.device | None = None, **kwargs: Any) -> VGG16:
    """A VGG16 through the model registry (``jobs/at.py``, ``at/bench.py``): a registered
    VGG name, or a width (number or numeric string) for ``vgg16``; a registered model of
    another framework is refused (no TensorFlow in a PyTorch run)."""
    from xferlab.catalog import MODELS

    name, extra = _vgg_entry(name_or_width)
    if name not in MODELS:
        raise UserError(MODELS.unknown_message(name))
    if MODELS.meta(name).get("framework") != "torch":  # e.g. "attrnn": never import TF here
        raise UserError(f"{name!r} is a registered model but not a VGG16 variant")
    return MODELS.create(name, n_classes, seed=seed, device=device, **extra, **kwargs)


def _vgg_entry(name_or_width: str | float) -> tuple[str, dict[str, float]]:
    """(registered name, extra kwargs): numbers and numeric strings become vgg16 widths;
    any other string is a name, left for the registry to resolve (or to reject with its
    nearest-name hint)."""
    if not isinstance(name_or_width, str):
        return "vgg16", {"width": float(name_or_width)}
    try:
        return "vgg16", {"width": float(name_or_width)}
    except ValueError:
        return name_or_width, {}
