"""The anti-transfer term: aggregate both activations, then a distance, times beta ONCE.

``at_loss(a_target, a_orth, ...)`` takes the tapped activations of the trained network
(A, with graph) and of the frozen orthogonal network (P), both (B, C, H, W).

Aggregations (spec key ``at.aggregation``), each producing "rows" compared along the
last axis:

- ``gram`` (default, the paper's): F = A as (B*C, H*W), G = F F^T / (B*C*H*W): ONE Gram
  over batch x channels jointly, as the original (cross-sample terms included) -> rows of
  (B*C, B*C). ``gram_mode="sample"`` (``at.gram: sample``) takes one Gram per sample,
  F_b (C, H*W), G_b = F_b F_b^T / (C*H*W) -> (B, C, C).
- ``none``: A itself (B, C, H, W) (rows along W).
- ``mean`` / ``sum`` / ``max``: over channels -> (B, H, W).
- ``product``: prod over channels of (x + 1e-10)^0.001 -> (B, H, W) (meant for
  non-negative ReLU outputs; negative inputs give NaN, as in the original).
- ``pairwise``: every channel i of A against every channel j of P (all pairs aligned):
  rows A[b, i] (flattened H*W) vs P[b, j] for all (b, i, j), computed in closed form
  (normalised matmul) instead of materialising the (B, C, C, H*W) expansion.
- ``stochastic_pairwise``: ``pairwise`` restricted to one random contiguous window of
  ``window`` channels (the same window in both networks), drawn from ``generator`` so
  that a seeded run reproduces it.

Distances (spec key ``at.distance``):

- ``cos_squared`` (default): cosine along the last axis row by row, absolute value, mean
  over rows, squared: beta * (mean |cos|)^2. Beta is applied once (the newer original
  module multiplied by beta twice; we do not copy that).
- ``mse_sigmoid``: -beta * sigmoid(MSE(A', P')), which rewards pushing features apart.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from xferlab.errors import UserError

AGGREGATIONS = ("gram", "none", "mean", "sum", "max", "product", "pairwise", "stochastic_pairwise")
DISTANCES = ("cos_squared", "mse_sigmoid")
GRAM_MODES = ("batch", "sample")
COS_EPS = 1e-8


class Rows(NamedTuple):
    """Aggregated target/orthogonal tensors; ``paired`` = compare every row with every row
    of the same sample (pairwise aggregations), else row i with row i."""

    target: torch.Tensor
    orth: torch.Tensor
    paired: bool


def gram(a: torch.Tensor, mode: str = "batch") -> torch.Tensor:
    """Gram matrix of (B, C, H, W): (B*C, B*C) for ``batch``, (B, C, C) for ``sample``."""
    b, c, h, w = a.shape
    if mode == "batch":
        f = a.reshape(b * c, h * w)  # (B*C, HW)
        return f @ f.t() / (b * c * h * w)
    if mode == "sample":
        f = a.reshape(b, c, h * w)  # (B, C, HW)
        return f @ f.transpose(1, 2) / (c * h * w)
    raise UserError(f"unknown at.gram {mode!r}: use one of {', '.join(GRAM_MODES)}")


def _channel_window(c: int, window: int, generator: torch.Generator | None) -> slice:
    w = max(1, min(int(window), c))
    start = int(torch.randint(0, c - w + 1, (1,), generator=generator))
    return slice(start, start + w)


def aggregate(a: torch.Tensor, p: torch.Tensor, aggregation: str = "gram", gram_mode: str = "batch",
              generator: torch.Generator | None = None, window: int = 16) -> Rows:
    """Apply one aggregation to both activations (B, C, H, W); see the module docstring."""
    if aggregation == "gram":
        return Rows(gram(a, gram_mode), gram(p, gram_mode), False)
    if aggregation == "none":
        return Rows(a, p, False)
    if aggregation == "mean":
        return Rows(a.mean(1), p.mean(1), False)
    if aggregation == "sum":
        return Rows(a.sum(1), p.sum(1), False)
    if aggregation == "max":
        return Rows(a.amax(1), p.amax(1), False)
    if aggregation == "product":
        return Rows((a + 1e-10).pow(0.001).prod(1), (p + 1e-10).pow(0.001).prod(1), False)
    if aggregation == "pairwise":
        return Rows(a.flatten(2), p.flatten(2), True)  # (B, C, HW)
    if aggregation == "stochastic_pairwise":
        win = _channel_window(a.shape[1], window, generator)
        return Rows(a[:, win].flatten(2), p[:, win].flatten(2), True)  # (B, w, HW)
    raise UserError(f"unknown at.aggregation {aggregation!r}: use one of {', '.join(AGGREGATIONS)}")


def cos_squared(rows: Rows) -> torch.Tensor:
    """(mean over rows of |cosine along the last axis|)^2, without beta."""
    t = F.normalize(rows.target, dim=-1, eps=COS_EPS)
    o = F.normalize(rows.orth, dim=-1, eps=COS_EPS)
    if rows.paired:  # (B, C, D) x (B, D, C) -> (B, C, C): every channel pair
        cos = t @ o.transpose(-1, -2)
    else:
        cos = (t * o).sum(-1)
    return cos.abs().mean().pow(2)


def mse_sigmoid(rows: Rows) -> torch.Tensor:
    """-sigmoid(MSE), without beta; pairwise MSE uses |t|^2 + |o|^2 - 2 t.o per pair."""
    t, o = rows.target, rows.orth
    if rows.paired:  # mean over (b, i, j, d) of (t[b,i,d] - o[b,j,d])^2
        d = t.shape[-1]
        sq = (t * t).sum(-1).unsqueeze(-1) + (o * o).sum(-1).unsqueeze(-2) - 2 * t @ o.transpose(-1, -2)
        mse = sq.mean() / d
    else:
        mse = (t - o).pow(2).mean()
    return -torch.sigmoid(mse)


def at_loss(a_target: torch.Tensor, a_orth: torch.Tensor, aggregation: str = "gram",
            distance: str = "cos_squared", beta: float = 1.0, gram_mode: str = "batch",
            generator: torch.Generator | None = None, window: int = 16) -> torch.Tensor:
    """The AT term: beta * distance(aggregate(A), aggregate(P)); a scalar tensor."""
    if a_target.shape != a_orth.shape:
        raise UserError(f"AT activations differ in shape {tuple(a_target.shape)} vs "
                        f"{tuple(a_orth.shape)}: use an orthogonal model of the same width")
    if a_target.dim() != 4:
        raise UserError(f"AT expects (B, C, H, W) activations, got shape {tuple(a_target.shape)}")
    if distance not in DISTANCES:
        raise UserError(f"unknown at.distance {distance!r}: use one of {', '.join(DISTANCES)}")
    rows = aggregate(a_target, a_orth.to(a_target.dtype), aggregation, gram_mode, generator, window)
    dist = cos_squared(rows) if distance == "cos_squared" else mse_sigmoid(rows)
    return beta * dist
