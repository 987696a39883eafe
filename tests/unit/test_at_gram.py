"""The Gram terms without the Gram matrix: same value AND gradient as the direct form.

Why: ``auto`` silently switches between the two forms by shape, so a training run must not
be able to tell which one it got. Shapes cover D < N (the factored form's case) and D > N.
"""
import pytest
import torch

from xferlab.at.loss import DISTANCES, GRAM_MODES, at_loss, use_factored
from xferlab.errors import UserError

# (B, C, H, W): N = B*C (batch) or C (sample) against D = H*W
SHAPES = [(2, 16, 2, 3), (4, 32, 2, 2), (3, 24, 1, 5), (2, 3, 4, 5), (1, 4, 6, 7), (2, 8, 3, 3)]


def pair(shape, dtype, seed: int, dead: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """ReLU-like activations; ``dead`` zeroes whole channels (zero Gram rows: the eps floor)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.relu(torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    p = torch.relu(torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    if dead:
        a[:, 0] = 0
        p[-1, -1] = 0
    return a, p


def value_and_grads(a, p, form, distance, mode):
    ta, tp = a.clone().requires_grad_(True), p.clone().requires_grad_(True)
    loss = at_loss(ta, tp, "gram", distance, 0.7, mode, gram_form=form)
    loss.backward()
    return loss.detach(), ta.grad, tp.grad


@pytest.mark.parametrize("dead", [False, True])
@pytest.mark.parametrize("mode", GRAM_MODES)
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("shape", SHAPES)
def test_factored_equals_direct_float64(shape, distance, mode, dead):
    a, p = pair(shape, torch.float64, 1, dead)
    v1, ga1, gp1 = value_and_grads(a, p, "direct", distance, mode)
    v2, ga2, gp2 = value_and_grads(a, p, "factored", distance, mode)
    torch.testing.assert_close(v2, v1, rtol=1e-10, atol=1e-14)
    scale = ga1.abs().max()
    assert scale > 0
    torch.testing.assert_close(ga2, ga1, rtol=1e-8, atol=1e-10 * float(scale))
    torch.testing.assert_close(gp2, gp1, rtol=1e-8, atol=1e-10 * float(gp1.abs().max()))


@pytest.mark.parametrize("mode", GRAM_MODES)
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("shape", [(8, 64, 7, 8), (8, 8, 9, 10), (2, 16, 2, 3)])
def test_factored_equals_direct_float32(shape, distance, mode):
    a, p = pair(shape, torch.float32, 2)
    v1, ga1, _ = value_and_grads(a, p, "direct", distance, mode)
    v2, ga2, _ = value_and_grads(a, p, "factored", distance, mode)
    torch.testing.assert_close(v2, v1, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ga2, ga1, rtol=1e-3, atol=1e-4 * float(ga1.abs().max()))


def test_direct_gram_gradient_matches_plain_autograd():
    """The symmetric backward of the direct Gram equals autograd through f @ f.T."""
    a, p = pair((3, 5, 4, 6), torch.float64, 3)
    _, ga, _ = value_and_grads(a, p, "direct", "cos_squared", "batch")
    ta = a.clone().requires_grad_(True)
    f, q = ta.reshape(15, 24), p.reshape(15, 24)
    cos = torch.nn.functional.cosine_similarity(f @ f.t() / 360, q @ q.t() / 360, dim=-1, eps=1e-8)
    (0.7 * cos.abs().mean().pow(2)).backward()
    torch.testing.assert_close(ga, ta.grad, rtol=1e-9, atol=1e-14)


def test_auto_picks_the_cheaper_form_and_keeps_its_value():
    assert use_factored((8, 64, 7, 8), "batch", "cos_squared")  # conv 12/13 of VGG16/8: D=56, N=512
    assert not use_factored((8, 8, 126, 129), "batch", "cos_squared")  # conv 2: D >> N
    assert not use_factored((8, 32, 31, 32), "batch", "cos_squared")  # conv 7: D=992, N=256
    assert not use_factored((8, 64, 7, 8), "sample", "cos_squared")  # N = C = 64 per sample
    assert use_factored((1, 1, 100, 100), "batch", "mse_sigmoid", "factored")
    assert not use_factored((8, 64, 1, 1), "batch", "mse_sigmoid", "direct")
    a, p = pair((8, 64, 7, 8), torch.float64, 4)
    auto = at_loss(a, p)
    assert float(auto) == pytest.approx(float(at_loss(a, p, gram_form="direct")), rel=1e-10)
    with pytest.raises(UserError, match="gram form"):
        at_loss(a, p, gram_form="bogus")
