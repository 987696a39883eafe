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

Gram without the Gram matrix (``gram_form``): with F, P of shape (N, D) (N = B*C rows in
batch mode, C per sample; D = H*W), the row cosines need only
sum_j (f_i.f_j)(p_i.p_j) = f_i^T (F^T P) p_i and |row i of F F^T|^2 = f_i^T (F^T F) f_i,
and the summed squared Gram difference is ||F^T F||^2 - 2 ||F^T P||^2 + ||P^T P||^2 (all
D x D). Deep taps have few positions and many channels (D << N), where this costs
O(N D^2) instead of O(N^2 D); ``auto`` picks the cheaper form from the shapes. The value
and its gradient equal the direct form's up to float rounding (tests/unit/test_at_gram.py).
The direct form's Gram has a symmetric backward, (dG + dG^T) F: one matmul, not autograd's
two, since the AT step's extra cost at shallow taps is mostly these matmuls.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from xferlab.errors import UserError

AGGREGATIONS = ("gram", "none", "mean", "sum", "max", "product", "pairwise", "stochastic_pairwise")
DISTANCES = ("cos_squared", "mse_sigmoid")
GRAM_MODES = ("batch", "sample")
GRAM_FORMS = ("auto", "direct", "factored")
COS_EPS = 1e-8


class Rows(NamedTuple):
    """Aggregated target/orthogonal tensors; ``paired`` = compare every row with every row
    of the same sample (pairwise aggregations), else row i with row i."""

    target: torch.Tensor
    orth: torch.Tensor
    paired: bool


def _self_gram(f: torch.Tensor) -> torch.Tensor:
    """f f^T for f (G, N, D) -> (G, N, N). From N = 64 rows only the upper blocks of a 2 x 2
    split are multiplied (3/4 of the work) and mirrored: shallow taps have N^2 D large."""
    n = f.shape[1]
    if n < 64:
        return torch.matmul(f, f.transpose(-1, -2))
    top, bottom = f[:, : n // 2], f[:, n // 2:]  # (G, N/2, D) each
    g11 = torch.matmul(top, top.transpose(-1, -2))
    g12 = torch.matmul(top, bottom.transpose(-1, -2))
    g22 = torch.matmul(bottom, bottom.transpose(-1, -2))
    return torch.cat([torch.cat([g11, g12], 2), torch.cat([g12.transpose(1, 2), g22], 2)], 1)


class _SymGram(torch.autograd.Function):
    """G = F F^T * scale for F (G, N, D) -> (G, N, N), with the symmetric backward
    dF = (dG + dG^T) F * scale: one matmul where autograd's ``f @ f.T`` spends two."""

    @staticmethod
    def forward(ctx: Any, f: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(f)
        ctx.scale = scale
        return _self_gram(f) * scale  # (G, N, N)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (f,) = ctx.saved_tensors
        sym = (grad + grad.transpose(-1, -2)) * ctx.scale  # (G, N, N): scale the small side
        return torch.matmul(sym, f), None  # (G, N, D)


def gram_rows(a: torch.Tensor, mode: str = "batch") -> tuple[torch.Tensor, int]:
    """(B, C, H, W) -> (F of shape (G, N, D), Gram normalisation s): G = 1, N = B*C for
    ``batch``; G = B, N = C for ``sample``; D = H*W."""
    b, c, h, w = a.shape
    if mode == "batch":
        return a.reshape(1, b * c, h * w), b * c * h * w
    if mode == "sample":
        return a.reshape(b, c, h * w), c * h * w
    raise UserError(f"unknown at.gram {mode!r}: use one of {', '.join(GRAM_MODES)}")


def gram(a: torch.Tensor, mode: str = "batch") -> torch.Tensor:
    """Gram matrix of (B, C, H, W): (B*C, B*C) for ``batch``, (B, C, C) for ``sample``."""
    f, s = gram_rows(a, mode)  # (G, N, D)
    if f.requires_grad:
        g = _SymGram.apply(f, 1.0 / s)
    else:
        g = _self_gram(f) / s
    return g[0] if mode == "batch" else g  # (B*C, B*C) | (B, C, C)


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


def factored_gram_cos_squared(a: torch.Tensor, p: torch.Tensor, mode: str = "batch") -> torch.Tensor:
    """``cos_squared`` of the two Grams' rows from D x D products only (no N x N Gram).

    The eps floor of F.normalize, max(|G[i]|, eps) with |G[i]| = sqrt(q_i) / s, becomes
    sqrt(max(q_i, (eps s)^2)) / s, so value and gradient (zero where clamped) match.
    """
    f, s = gram_rows(a, mode)  # (G, N, D)
    q, _ = gram_rows(p, mode)  # (G, N, D)
    ft = f.transpose(1, 2)  # (G, D, D) products below
    d = f.shape[-1]
    fm = torch.matmul(f, torch.cat([torch.matmul(ft, q), torch.matmul(ft, f)], dim=2))  # (G, N, 2D)
    cross = (fm[..., :d] * q).sum(-1)  # (G, N): s^2 * G_A[i].G_P[i]
    na2 = (fm[..., d:] * f).sum(-1)  # s^2 * |G_A[i]|^2
    np2 = (torch.matmul(q, torch.matmul(q.transpose(1, 2), q)) * q).sum(-1)  # s^2 * |G_P[i]|^2
    floor = float(COS_EPS * s) ** 2
    cos = cross / (na2.clamp_min(floor).sqrt() * np2.clamp_min(floor).sqrt())
    return cos.abs().mean().pow(2)


def factored_gram_mse_sigmoid(a: torch.Tensor, p: torch.Tensor, mode: str = "batch") -> torch.Tensor:
    """``mse_sigmoid`` of the two Grams from D x D products: sum (G_A - G_P)^2 =
    (||F^T F||^2 - 2 ||F^T P||^2 + ||P^T P||^2) / s^2, averaged over the G*N*N entries."""
    f, s = gram_rows(a, mode)  # (G, N, D)
    q, _ = gram_rows(p, mode)
    ft = f.transpose(1, 2)
    sq = (torch.matmul(ft, f) / s).pow(2).sum() - 2 * (torch.matmul(ft, q) / s).pow(2).sum() \
        + (torch.matmul(q.transpose(1, 2), q) / s).pow(2).sum()
    return -torch.sigmoid(sq / (f.shape[0] * f.shape[1] ** 2))


def use_factored(shape: torch.Size | tuple[int, ...], mode: str, distance: str, form: str = "auto") -> bool:
    """Whether the D x D form is cheaper for activations of ``shape`` (B, C, H, W).

    Multiply-adds, forward + backward: direct ~3 N^2 D (two Grams, one symmetric
    backward); factored ~12 N D^2 for cos_squared (three D x D products, three
    quadratic forms, their backward), ~5 N D^2 for mse_sigmoid.
    """
    if form not in GRAM_FORMS:
        raise UserError(f"unknown gram form {form!r}: use one of {', '.join(GRAM_FORMS)}")
    if form != "auto":
        return form == "factored"
    b, c, h, w = shape
    n, d = (b * c if mode == "batch" else c), h * w
    per_row = 12 if distance == "cos_squared" else 5
    return per_row * d < 3 * n


def at_loss(a_target: torch.Tensor, a_orth: torch.Tensor, aggregation: str = "gram",
            distance: str = "cos_squared", beta: float = 1.0, gram_mode: str = "batch",
            generator: torch.Generator | None = None, window: int = 16,
            gram_form: str = "auto") -> torch.Tensor:
    """The AT term: beta * distance(aggregate(A), aggregate(P)); a scalar tensor.

    ``gram_form`` (Gram aggregation only): ``auto`` picks the cheaper of ``direct`` (the
    N x N Grams) and ``factored`` (D x D products); both give the same value.
    """
    if a_target.shape != a_orth.shape:
        raise UserError(f"AT activations differ in shape {tuple(a_target.shape)} vs "
                        f"{tuple(a_orth.shape)}: use an orthogonal model of the same width")
    if a_target.dim() != 4:
        raise UserError(f"AT expects (B, C, H, W) activations, got shape {tuple(a_target.shape)}")
    if distance not in DISTANCES:
        raise UserError(f"unknown at.distance {distance!r}: use one of {', '.join(DISTANCES)}")
    a_orth = a_orth.to(a_target.dtype)
    if aggregation == "gram" and gram_mode in GRAM_MODES \
            and use_factored(a_target.shape, gram_mode, distance, gram_form):
        fn = factored_gram_cos_squared if distance == "cos_squared" else factored_gram_mse_sigmoid
        return beta * fn(a_target, a_orth, gram_mode)
    rows = aggregate(a_target, a_orth, aggregation, gram_mode, generator, window)
    dist = cos_squared(rows) if distance == "cos_squared" else mse_sigmoid(rows)
    return beta * dist
