"""The AT code gives the same numbers on CUDA as on the CPU (runs only where CUDA is present).

Why: the jobs pick CUDA automatically (``default_device``); a tensor left on the wrong device
or a CPU-only generator would break or silently change results on a GPU node.
"""
import pytest
import torch

from xferlab.at.config import ATConfig
from xferlab.at.loss import AGGREGATIONS, DISTANCES, at_loss
from xferlab.at.train import train_at
from xferlab.at.vgg import build_vgg, default_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_matmul():
    """TF32 would blur the CPU/CUDA comparison; the training code itself does not turn it on."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def test_default_device_is_cuda():
    assert default_device().type == "cuda"


def test_forward_matches_cpu():
    net = build_vgg("vgg16_w8", 4, seed=0).eval()
    x = torch.randn(3, 126, 129, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cpu = net(x)
        gpu = net.to(CUDA)(x.to(CUDA)).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("distance", DISTANCES)
def test_at_loss_matches_cpu(aggregation: str, distance: str):
    g = torch.Generator().manual_seed(1)
    a, p = torch.rand(4, 8, 6, 5, generator=g), torch.rand(4, 8, 6, 5, generator=g)
    cpu = at_loss(a, p, aggregation, distance, 2.0, "batch", torch.Generator().manual_seed(3))
    gpu = at_loss(a.to(CUDA), p.to(CUDA), aggregation, distance, 2.0, "batch", torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)


def test_training_with_at_on_cuda():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (24,), generator=g)
    x = torch.randn(24, 32, 33, generator=g) + y[:, None, None] * 0.5
    model, orth = build_vgg("vgg16_tiny", 3, seed=0), build_vgg("vgg16_tiny", 3, seed=9)
    res = train_at(model, (x[:16], y[:16]), (x[16:], y[16:]), epochs=2, lr=1e-3, orth_model=orth,
                   at_cfg=ATConfig(layer=4, aggregation="stochastic_pairwise"), device="cuda")
    assert next(model.parameters()).device.type == "cuda"
    assert res.metrics["val_at_loss"] > 0 and res.metrics["val_loss"] == pytest.approx(
        res.metrics["val_ce_loss"] + res.metrics["val_at_loss"])
