"""Segment replication / padding of a target series into the AM's 16000 samples (numpy only).

V2S.md step 1: build a zero vector of 16000 samples and copy x_t (length L) into it m
times (``seg``). With K = 16000 // L whole slots and s = K // m, copy i starts at sample
(i * s) * L; m = 1 puts one copy at the start; m > K is a UserError. The Keras layer
``reprogram.SegmentPad`` applies the same arithmetic inside the model.
"""
from __future__ import annotations

import numpy as np

from xferlab.errors import UserError

N_SAMPLES = 16000  # the AM's input length (== frontend.N_SAMPLES; no TensorFlow import here)


def segment_starts(length: int, seg: int, total: int = N_SAMPLES) -> list[int]:
    """Start samples of the ``seg`` copies of a length-L series inside ``total`` samples.

    K = total // L whole slots, s = K // seg, copy i starts at (i * s) * L.
    Example: L=5000 -> K=3; seg=1: [0]; seg=2: [0, 5000]; seg=3: [0, 5000, 10000].
    """
    if length < 1 or length > total:
        raise UserError(f"a series of length {length} does not fit the AM's {total}-sample input; "
                        f"resample or crop the target series to <= {total} samples")
    n_slots = total // length  # K
    if not isinstance(seg, (int, np.integer)) or seg < 1:
        raise UserError(f"model.seg must be an integer >= 1, got {seg!r}")
    if seg > n_slots:
        raise UserError(f"model.seg={seg} copies of a length-{length} series do not fit into {total} "
                        f"samples (K = {total} // {length} = {n_slots}); use model.seg <= {n_slots}")
    step = n_slots // seg  # s
    return [i * step * length for i in range(seg)]


def replicate_segments(x: np.ndarray, seg: int, total: int = N_SAMPLES) -> np.ndarray:
    """(n, L) target series -> (n, total) zero vectors holding ``seg`` copies (numpy)."""
    x = np.asarray(x, dtype=np.float32)
    out = np.zeros((x.shape[0], total), dtype=np.float32)
    for start in segment_starts(x.shape[1], seg, total):
        out[:, start:start + x.shape[1]] = x
    return out


def segment_mask(length: int, seg: int, total: int = N_SAMPLES) -> np.ndarray:
    """0/1 mask M (total,) that zeroes theta where the target copies sit, 1 elsewhere."""
    mask = np.ones(total, dtype=np.float32)
    for start in segment_starts(length, seg, total):
        mask[start:start + length] = 0.0
    return mask
