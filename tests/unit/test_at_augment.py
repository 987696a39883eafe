"""SpecAugment-style masks: shapes, widths, reproducibility, and off by default (bad
settings: tests/e2e/test_cli.py)."""
from __future__ import annotations

import torch

from xferlab.at.augment import SpecMask, mask_batch


def test_masks_zero_whole_bands_and_spans_within_their_widths():
    x = torch.ones(64, 1, 50, 40)
    out = mask_batch(x, SpecMask(freq_masks=1, freq_width=0.25, time_masks=1, time_width=0.2),
                     torch.Generator().manual_seed(0))
    assert out.shape == x.shape and x.min() == 1  # the input is left as it was
    zero = out[:, 0] == 0
    bins = zero.all(dim=1)  # (B, F): frequency bins masked over every frame
    frames = zero.all(dim=2)  # (B, T): frames masked over every bin
    assert int(bins.sum(1).max()) <= 10 and int(frames.sum(1).max()) <= 10  # 0.25 * 40, 0.2 * 50
    assert bins.any() and frames.any()
    assert torch.equal(zero, bins[:, None, :] | frames[:, :, None])  # nothing else is zeroed
    for row in bins:  # one contiguous band per example
        idx = torch.nonzero(row).flatten()
        assert len(idx) == 0 or int(idx[-1] - idx[0]) + 1 == len(idx)


def test_masks_are_drawn_per_example_and_reproduced_by_the_seed():
    x, spec = torch.rand(8, 30, 20), SpecMask(freq_masks=2, time_masks=2)
    a = mask_batch(x, spec, torch.Generator().manual_seed(3))
    assert torch.equal(a, mask_batch(x, spec, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, mask_batch(x, spec, torch.Generator().manual_seed(4)))
    assert len({tuple((a[i] == 0).all(0).tolist()) for i in range(8)}) > 1


def test_no_masks_is_the_identity():
    x = torch.rand(4, 1, 10, 8)
    assert mask_batch(x, SpecMask(), torch.Generator()) is x
