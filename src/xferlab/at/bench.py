"""Timing of one training step, baseline versus AT at a given tap (for bench scripts).

Why: the cost of AT depends on the depth of the tap (the orthogonal network runs up to
it) and on the Gram size (B*C)^2; this measures it with the real step code of ``train``.
"""
from __future__ import annotations

import time
from typing import Iterable

import torch

from xferlab.at.config import ATConfig
from xferlab.at.train import _Stepper
from xferlab.at.vgg import build_vgg, default_device


def bench_step(model: str = "vgg16_w8", layer: int | None = None, batch: int = 8,
               frames: int = 126, bins: int = 129, steps: int = 20, warmup: int = 3,
               n_classes: int = 10, device: str | None = None, seed: int = 0) -> float:
    """Median seconds of one optimiser step (forward, AT term, backward, Adam).

    ``layer`` None is the baseline; otherwise AT with the paper's defaults at conv ``layer``.
    """
    dev = torch.device(device) if device else default_device()
    net = build_vgg(model, n_classes, seed=seed).to(dev)
    cfg = ATConfig(layer=layer) if layer is not None else None
    orth = build_vgg(model, n_classes, seed=seed + 1).to(dev).eval().requires_grad_(False) if cfg else None
    step = _Stepper(net, orth, cfg, seed)
    opt = torch.optim.Adam(net.parameters(), lr=5e-5)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, bins, generator=gen).to(dev)  # (B, T, F)
    y = torch.randint(0, n_classes, (batch,), generator=gen).to(dev)
    times = []
    net.train()
    try:
        for i in range(warmup + steps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            _, ce_sum, term = step(x, y)
            opt.zero_grad(set_to_none=True)
            (ce_sum / batch + term).backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    finally:
        step.close()
    return sorted(times)[len(times) // 2]


def step_cost_ratios(layers: Iterable[int] = (2, 12), **kwargs: object) -> dict[str, float]:
    """Seconds per baseline step and AT/baseline ratios per conv layer."""
    base = bench_step(layer=None, **kwargs)  # type: ignore[arg-type]
    out = {"baseline_s": base}
    for layer in layers:
        t = bench_step(layer=layer, **kwargs)  # type: ignore[arg-type]
        out[f"at_conv{layer}_s"] = t
        out[f"ratio_conv{layer}"] = t / base
    return out


if __name__ == "__main__":
    print(step_cost_ratios())
