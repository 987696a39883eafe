"""Timing of one training step: baseline, original AT and our AT, at a given tap.

Why: the cost of AT depends on the depth of the tap (the original runs the orthogonal
network up to it on every batch) and on the Gram's shape ((B*C)^2 rows x H*W). Three
variants, built on the real step code of ``train`` (``_Stepper``):

- ``baseline``: CE only;
- ``original``: a second forward of ``features[:k]`` through the orthogonal network on
  every batch, and the direct (B*C) x (B*C) Gram;
- ``ours``: orthogonal activations gathered by item index from an ``OrthCache`` built once
  (outside the timing, as once per training run), and the cheaper Gram form (``auto``).

Each step draws its batch by index from a small item set, as a loader would.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Iterable, Iterator, Mapping, TypeVar

import torch
from torch import nn

from xferlab.at.config import ATConfig
from xferlab.at.taps import OrthCache
from xferlab.at.train import _Stepper
from xferlab.at.vgg import build_vgg, default_device, to_device

VARIANTS = ("baseline", "original", "ours")
K = TypeVar("K")


class StepBench:
    """One prepared variant (model, optimiser, stepper, items); ``time(steps)`` runs steps."""

    def __init__(self, variant: str, layer: int | None, width: str | float = "vgg16_w8",
                 batch: int = 8, frames: int = 126, bins: int = 129, n_classes: int = 10,
                 device: str | torch.device | None = None, seed: int = 0, batches: int = 4,
                 layout: str = "ours") -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
        if layout not in ("default", "ours"):
            raise ValueError(f"unknown layout {layout!r}: use default (a plain .to(device)) or ours (to_device)")
        self.dev = torch.device(device) if device else default_device()
        place = to_device if layout == "ours" else nn.Module.to  # "default": a plain .to(device)
        self.net = place(build_vgg(width, n_classes, seed=seed), self.dev)
        cfg = ATConfig(layer=layer) if variant != "baseline" and layer is not None else None
        orth = place(build_vgg(width, n_classes, seed=seed + 1), self.dev).eval().requires_grad_(False) if cfg else None
        self.step = _Stepper(self.net, orth, cfg, seed, "direct" if variant == "original" else "auto")
        self.opt = torch.optim.Adam(self.net.parameters(), lr=5e-5)
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch * batches, frames, bins, generator=gen).to(self.dev)  # (items, T, F)
        self.y = torch.randint(0, n_classes, (batch * batches,), generator=gen).to(self.dev)
        self.cache = None
        if variant == "ours" and cfg is not None:
            self.cache = OrthCache.build(orth, torch.utils.data.TensorDataset(self.x, self.y), cfg.end, self.dev)
        self.batch, self.i = batch, 0

    def _one(self) -> None:
        """One optimiser step on the next batch of items (forward, AT term, backward, Adam)."""
        n = len(self.y)
        idx = torch.arange(self.i, self.i + self.batch) % n  # (B,) item indices
        self.i = (self.i + self.batch) % n
        x, y = self.x[idx.to(self.dev)], self.y[idx.to(self.dev)]
        a_orth = self.cache.gather(idx) if self.cache is not None else None
        _, ce_sum, term = self.step(x, y, a_orth)
        self.opt.zero_grad(set_to_none=True)
        (ce_sum / len(y) + term).backward()
        self.opt.step()

    def time(self, steps: int, warmup: int = 1) -> float:
        """Median seconds per step over ``steps`` steps after ``warmup`` untimed ones."""
        self.net.train()
        times = []
        for i in range(warmup + steps):
            self._sync()
            t0 = time.perf_counter()
            self._one()
            self._sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def _sync(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    def close(self) -> None:
        self.step.close()
        if self.cache is not None:
            self.cache.close()


def bench_step(width: str | float = "vgg16_w8", layer: int | None = None, batch: int = 8,
               steps: int = 20, warmup: int = 3, variant: str = "ours", **kwargs: object) -> float:
    """Median seconds of one step of ``variant`` (``layer`` None: the baseline)."""
    bench = StepBench(variant if layer is not None else "baseline", layer, width, batch, **kwargs)  # type: ignore[arg-type]
    try:
        return bench.time(steps, warmup)
    finally:
        bench.close()


@contextlib.contextmanager
def _warmed(benches: Mapping[K, StepBench]) -> Iterator[Mapping[K, StepBench]]:
    """The benches after an untimed allocator and kernel warm-up; closed on exit."""
    try:
        for b in benches.values():
            b.time(1, warmup=2)
        yield benches
    finally:
        for b in benches.values():
            b.close()


def _timed_round(benches: Mapping[K, StepBench], r: int, steps: int, warmup: int) -> dict[K, float]:
    """Seconds per step of each bench, timed back to back in an order rotated by round ``r``,
    so a busy machine slows them alike."""
    keys = list(benches)
    k = r % len(keys)
    return {key: benches[key].time(steps, warmup) for key in keys[k:] + keys[:k]}


def compare(layers: Iterable[int] = (2, 7, 12, 13), rounds: int = 5, steps: int = 10,
            warmup: int = 1, **kwargs: object) -> dict[str, dict[int, list[float]]]:
    """Interleaved rounds: in each round and tap, baseline, original and ours are timed back
    to back (order rotated per round), so a busy machine slows all three alike.

    Returns {"baseline_s": {tap: [s per round]}, "original": {tap: [ratio per round]},
    "ours": {tap: [ratio per round]}}.
    """
    layers = list(layers)
    out: dict[str, dict[int, list[float]]] = {"baseline_s": {}, "original": {}, "ours": {}}
    per_tap = {t: {v: StepBench(v, t, **kwargs) for v in VARIANTS} for t in layers}  # type: ignore[arg-type]
    with _warmed({(v, t): b for t, bs in per_tap.items() for v, b in bs.items()}):
        for r in range(rounds):
            for t in layers:
                secs = _timed_round(per_tap[t], r, steps, warmup)
                out["baseline_s"].setdefault(t, []).append(secs["baseline"])
                for v in ("original", "ours"):
                    out[v].setdefault(t, []).append(secs[v] / secs["baseline"])
    return out


def compare_layout(rounds: int = 5, steps: int = 10, warmup: int = 1, **kwargs: object) -> list[float]:
    """Per interleaved round, a baseline step in the default layout (a plain ``.to(device)``)
    over one in ours (:func:`xferlab.at.vgg.to_device`): the speed-up of the layout alone."""
    benches = {layout: StepBench("baseline", None, layout=layout, **kwargs)  # type: ignore[arg-type]
               for layout in ("default", "ours")}
    with _warmed(benches):
        rounds_secs = [_timed_round(benches, r, steps, warmup) for r in range(rounds)]
    return [secs["default"] / secs["ours"] for secs in rounds_secs]
