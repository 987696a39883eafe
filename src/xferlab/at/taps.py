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

Why a cache (``OrthCache``): the orthogonal network is frozen and its ``features`` hold no
dropout, so its tapped activation of an item is the same at every epoch. Computing it once
per item (not once per item per epoch) removes the second forward from every training step;
batches gather the cached activations by item index, which is exact.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from xferlab.at.vgg import CONV_INDICES
from xferlab.data.rows import Rows, available_memory
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


MAX_CACHE_BYTES = 1 << 30  # in memory up to 1 GiB per split, else a row file on disk


def cache_budget(device: torch.device) -> int:
    """Bytes one split's orthogonal activations may take in memory: 1 GiB, or an eighth of
    what the device (GPU memory, else this process's RAM or memory cgroup) has free, when
    that is less, so that a run under a memory cap spills to disk rather than being killed."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        free = available_memory()
    return int(min(MAX_CACHE_BYTES, free // 8))


def dataset_inputs(dataset: Dataset, start: int, stop: int) -> torch.Tensor:
    """Inputs x of items start..stop-1 stacked: (n, T, F) or (n, 1, T, F); items are (x, y, ...)."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0][start:stop]
    if hasattr(dataset, "inputs"):  # a streamed split (at.streams.ZScoredSplit): one read per chunk
        return dataset.inputs(start, stop)
    return torch.stack([torch.as_tensor(dataset[i][0]) for i in range(start, stop)])


class OrthCache:
    """Tapped orthogonal activations of every item of one split, gathered by item index.

    The store is a tensor on the compute device when the split fits under the byte budget,
    else a row file (:class:`xferlab.data.rows.Rows`: a batch reads its rows, nothing is
    mapped, so the process stays the size of a batch) in a fresh directory (under
    ``cache_dir`` if given, else the system temp dir) that ``close()`` deletes. Build it
    with ``OrthCache.build``.
    """

    def __init__(self, store: torch.Tensor | Rows, device: torch.device,
                 tmpdir: str | None = None) -> None:
        self.store, self.device, self.tmpdir = store, device, tmpdir

    @property
    def in_memory(self) -> bool:
        return torch.is_tensor(self.store)

    def __len__(self) -> int:
        return len(self.store)

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        """Item indices (B,) -> their activations (B, C, H, W) on the compute device."""
        if self.in_memory:
            return self.store.index_select(0, idx.to(self.store.device))
        return torch.from_numpy(self.store[idx.cpu().numpy()]).to(self.device)

    @classmethod
    def build(cls, orth: nn.Module, dataset: Dataset, end: int, device: torch.device,
              max_bytes: int | None = None, cache_dir: str | None = None,
              chunk: int = 32) -> "OrthCache":
        """Run ``orth.features[:end]`` once over ``dataset`` in chunks of ``chunk`` items."""
        n = len(dataset)
        if n == 0:
            raise UserError("cannot cache the orthogonal activations of an empty split")
        first = orth_activation(orth, dataset_inputs(dataset, 0, min(chunk, n)).to(device), end)
        shape, nbytes = (n, *first.shape[1:]), n * first[0].numel() * first.element_size()
        budget = cache_budget(device) if max_bytes is None else max_bytes
        cache = cls._allocate(shape, first.dtype, device, nbytes <= budget, cache_dir)
        cache._write(0, first)
        for start in range(len(first), n, chunk):
            x = dataset_inputs(dataset, start, min(start + chunk, n)).to(device)
            cache._write(start, orth_activation(orth, x, end))
        return cache

    @classmethod
    def _allocate(cls, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
                  in_memory: bool, cache_dir: str | None) -> "OrthCache":
        if in_memory:
            return cls(torch.empty(shape, dtype=dtype, device=device), device)
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)
        tmpdir = tempfile.mkdtemp(prefix="xferlab_orth_", dir=cache_dir)
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        return cls(Rows.create(Path(tmpdir) / "orth.npy", shape, np_dtype), device, tmpdir)

    def _write(self, start: int, act: torch.Tensor) -> None:
        if self.in_memory:
            self.store[start:start + len(act)] = act
        else:
            self.store.write(start, act.cpu().numpy())

    def close(self) -> None:
        """Free the store; delete the row file's directory (idempotent)."""
        if not self.in_memory:
            self.store.close()
        self.store = torch.empty(0)
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self) -> "OrthCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
