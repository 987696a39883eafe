"""Training splits read from the on-disk feature caches, a batch at a time, z-scored on read.

An AT instance then holds a batch, the model and (when it fits) the orthogonal
activations in memory, not its dataset: the features stay on disk
(:mod:`xferlab.data.feature_cache`) and the page cache decides what stays in RAM.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from xferlab.data.features import MAGNITUDES, compress


class ZScoredSplit(Dataset):
    """Items ``(x (T, F) float32, y)`` of a feature split, ``(compress(x) - mean) / std`` on read.

    ``mean`` and ``std`` are the training split's global scalars of the same ``magnitude``
    (the paper's normalisation; ``compress`` is :func:`xferlab.data.features.compress`, the
    identity for the paper's linear magnitude); ``x`` may be a row file on disk
    (:class:`xferlab.data.rows.Rows`) of any size.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, mean: float, std: float, magnitude: str = MAGNITUDES[0]) -> None:
        if len(x) != len(y) or len(y) == 0:
            raise ValueError(f"split has {len(x)} inputs and {len(y)} labels: both must match and be > 0")
        self.x, self.y, self.mean, self.std = x, np.asarray(y, dtype=np.int64), float(mean), float(std)
        self.magnitude = magnitude

    @classmethod
    def of(cls, cache: Any, name: str, magnitude: str = MAGNITUDES[0]) -> "ZScoredSplit":
        """Split ``name`` of a :class:`xferlab.data.feature_cache.CachedFeatures`, read as ``magnitude``."""
        return cls(*cache.split(name), *cache.stats(magnitude), magnitude=magnitude)

    def __len__(self) -> int:
        return len(self.y)

    def _scaled(self, rows: np.ndarray) -> torch.Tensor:
        seen = compress(rows.astype(np.float32), self.magnitude)
        return torch.from_numpy(((seen - self.mean) / self.std).astype(np.float32))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self._scaled(np.asarray(self.x[i])), int(self.y[i])

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A whole batch in one call (DataLoader calls this when present)."""
        rows = self._scaled(np.asarray(self.x[np.asarray(indices)]))
        return [(rows[k], int(self.y[i])) for k, i in enumerate(indices)]

    def inputs(self, start: int, stop: int) -> torch.Tensor:
        """Items start..stop-1 stacked (n, T, F), for one-pass consumers such as the orthogonal cache."""
        return self._scaled(np.asarray(self.x[start:stop]))
