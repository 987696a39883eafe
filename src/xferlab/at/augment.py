"""SpecAugment-style masking of training spectrograms (Park et al. 2019), in torch.

Each training example gets ``freq_masks`` bands of frequency bins and ``time_masks`` spans
of frames set to zero (the training mean: the VGG16 reads z-scored spectrograms), each of a
width drawn uniformly from 0 to ``width`` times the axis' length, at a uniform position.
Masks are drawn per example from a seeded generator, so a seed reproduces a run. Only the
target network's training batches are masked: validation and test, and the orthogonal
network's (cached) activations, see the clean input.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SpecMask:
    freq_masks: int = 0
    freq_width: float = 0.15  # the widest band, as a fraction of the frequency bins
    time_masks: int = 0
    time_width: float = 0.1  # the widest span, as a fraction of the frames

    @property
    def active(self) -> bool:
        return self.freq_masks > 0 or self.time_masks > 0


def _spans(batch: int, length: int, count: int, width: float, gen: torch.Generator) -> torch.Tensor:
    """(batch, length) bool: ``count`` random spans per row, each up to ``width * length`` long."""
    hit = torch.zeros(batch, length, dtype=torch.bool)
    widest = int(width * length)
    if count <= 0 or widest <= 0:
        return hit
    pos = torch.arange(length)
    for _ in range(count):
        w = torch.randint(0, widest + 1, (batch, 1), generator=gen)
        start = (torch.rand(batch, 1, generator=gen) * (length - w + 1)).floor().long()
        hit |= (pos >= start) & (pos < start + w)
    return hit


def mask_batch(x: torch.Tensor, spec: SpecMask, gen: torch.Generator) -> torch.Tensor:
    """``x`` (B, T, F) or (B, 1, T, F) with the masked bins and frames set to zero (a new tensor)."""
    if not spec.active:
        return x
    b, t, f = x.shape[0], x.shape[-2], x.shape[-1]
    keep = ~(_spans(b, t, spec.time_masks, spec.time_width, gen)[:, :, None]
             | _spans(b, f, spec.freq_masks, spec.freq_width, gen)[:, None, :])  # (B, T, F)
    if x.dim() == 4:
        keep = keep[:, None]
    return x * keep.to(x.device, x.dtype)
