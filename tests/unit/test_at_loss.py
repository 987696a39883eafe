"""The AT term against naive numpy loops, for every aggregation and distance."""
import math

import numpy as np
import pytest
import torch

from xferlab.at.loss import AGGREGATIONS, at_loss, gram
from xferlab.errors import UserError

B, C, H, W = 2, 3, 4, 5


def acts(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = np.maximum(rng.standard_normal((B, C, H, W)), 0) + 0.01  # ReLU-like, no zero rows
    p = np.maximum(rng.standard_normal((B, C, H, W)), 0) + 0.01
    return a, p


def naive_gram_batch(a: np.ndarray) -> np.ndarray:
    b, c, h, w = a.shape
    rows = [a[i, j].reshape(-1) for i in range(b) for j in range(c)]
    g = np.zeros((b * c, b * c))
    for r in range(b * c):
        for s in range(b * c):
            g[r, s] = sum(rows[r][k] * rows[s][k] for k in range(h * w)) / (b * c * h * w)
    return g


def naive_gram_sample(a: np.ndarray) -> np.ndarray:
    b, c, h, w = a.shape
    g = np.zeros((b, c, c))
    for i in range(b):
        for r in range(c):
            for s in range(c):
                g[i, r, s] = np.sum(a[i, r] * a[i, s]) / (c * h * w)
    return g


def naive_channel(a: np.ndarray, how: str) -> np.ndarray:
    out = np.zeros((a.shape[0], a.shape[2], a.shape[3]))
    for i in range(a.shape[0]):
        for y in range(a.shape[2]):
            for x in range(a.shape[3]):
                v = [a[i, c, y, x] for c in range(a.shape[1])]
                out[i, y, x] = {"mean": np.mean(v), "sum": sum(v), "max": max(v),
                                "product": math.prod((t + 1e-10) ** 0.001 for t in v)}[how]
    return out


def naive_cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(np.dot(u, v) / (max(np.linalg.norm(u), 1e-8) * max(np.linalg.norm(v), 1e-8)))


def naive_pairs(a: np.ndarray, p: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """All (A[b, i], P[b, j]) channel pairs, flattened."""
    return [(a[b, i].reshape(-1), p[b, j].reshape(-1))
            for b in range(a.shape[0]) for i in range(a.shape[1]) for j in range(p.shape[1])]


def naive_aggregate(a, p, aggregation, gram_mode="batch"):
    """Return list of row pairs to compare."""
    if aggregation == "gram":
        f = naive_gram_batch if gram_mode == "batch" else naive_gram_sample
        ga, gp = f(a), f(p)
        return list(zip(ga.reshape(-1, ga.shape[-1]), gp.reshape(-1, gp.shape[-1])))
    if aggregation in ("pairwise",):
        return naive_pairs(a, p)
    if aggregation == "none":
        ta, tp = a, p
    else:
        ta, tp = naive_channel(a, aggregation), naive_channel(p, aggregation)
    return list(zip(ta.reshape(-1, ta.shape[-1]), tp.reshape(-1, tp.shape[-1])))


def naive_loss(pairs, distance, beta):
    if distance == "cos_squared":
        return beta * np.mean([abs(naive_cos(u, v)) for u, v in pairs]) ** 2
    mse = np.mean([np.mean((u - v) ** 2) for u, v in pairs])
    return -beta * (1 / (1 + np.exp(-mse)))


CASES = [(agg, "batch") for agg in AGGREGATIONS if agg != "stochastic_pairwise"] + [("gram", "sample")]


@pytest.mark.parametrize("distance", ["cos_squared", "mse_sigmoid"])
@pytest.mark.parametrize("aggregation,gram_mode", CASES)
def test_at_loss_matches_naive(aggregation, gram_mode, distance):
    a, p = acts(1)
    ours = at_loss(torch.tensor(a), torch.tensor(p), aggregation, distance, 0.7, gram_mode)
    ref = naive_loss(naive_aggregate(a, p, aggregation, gram_mode), distance, 0.7)
    assert float(ours) == pytest.approx(ref, rel=1e-6, abs=1e-9)


def test_gram_shapes_and_values():
    a, _ = acts(2)
    g = gram(torch.tensor(a), "batch")
    assert tuple(g.shape) == (B * C, B * C)
    np.testing.assert_allclose(g.numpy(), naive_gram_batch(a), rtol=1e-10)
    np.testing.assert_allclose(gram(torch.tensor(a), "sample").numpy(), naive_gram_sample(a), rtol=1e-10)


@pytest.mark.parametrize("distance", ["cos_squared", "mse_sigmoid"])
def test_stochastic_pairwise_uses_seeded_window(distance):
    a, p = acts(3)
    ta, tp = torch.tensor(a), torch.tensor(p)
    full = at_loss(ta, tp, "stochastic_pairwise", distance, 1.0, window=C,
                   generator=torch.Generator().manual_seed(0))
    assert float(full) == pytest.approx(float(at_loss(ta, tp, "pairwise", distance)), rel=1e-9)
    start = int(torch.randint(0, C - 2 + 1, (1,), generator=torch.Generator().manual_seed(5)))
    ours = at_loss(ta, tp, "stochastic_pairwise", distance, 1.0, window=2,
                   generator=torch.Generator().manual_seed(5))
    ref = naive_loss(naive_pairs(a[:, start:start + 2], p[:, start:start + 2]), distance, 1.0)
    assert float(ours) == pytest.approx(ref, rel=1e-6)
    gen = torch.Generator().manual_seed(0)
    draws = {float(at_loss(ta, tp, "stochastic_pairwise", distance, window=1, generator=gen)) for _ in range(12)}
    assert len(draws) > 1  # the window moves between calls


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_beta_applied_once_and_gradient_reaches_target(aggregation):
    a, p = acts(4)
    ta = torch.tensor(a, requires_grad=True)
    one = at_loss(ta, torch.tensor(p), aggregation, "cos_squared", 1.0, generator=torch.Generator().manual_seed(0))
    three = at_loss(ta, torch.tensor(p), aggregation, "cos_squared", 3.0, generator=torch.Generator().manual_seed(0))
    assert three.item() == pytest.approx(3 * one.item(), rel=1e-12)
    three.backward()
    assert ta.grad is not None and torch.isfinite(ta.grad).all() and ta.grad.abs().sum() > 0


def test_identical_activations_give_beta_and_errors_are_user_errors():
    a, _ = acts(5)
    t = torch.tensor(a)
    assert float(at_loss(t, t.clone(), beta=2.0)) == pytest.approx(2.0)  # |cos| = 1 on every row
    with pytest.raises(UserError):
        at_loss(t, t[:, :2])
    with pytest.raises(UserError):
        at_loss(t, t, aggregation="bogus")
    with pytest.raises(UserError):
        at_loss(t, t, distance="bogus")
    with pytest.raises(UserError):
        at_loss(t, t, gram_mode="bogus")
