"""VGG16 layout, registered variants, seeding, and the two tap modes."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xferlab.at import vgg
from xferlab.at.taps import ActivationTap, features_up_to, orth_activation, tap_end
from xferlab.catalog import MODELS
from xferlab.errors import UserError


def test_width1_layout_matches_torchvision_vgg16():
    with torch.device("meta"):  # no memory for the 134M parameters
        m = vgg.build_vgg("vgg16", n_classes=4)
    convs = [i for i, mod in enumerate(m.features) if isinstance(mod, nn.Conv2d)]
    assert convs == vgg.CONV_INDICES and len(m.features) == 31
    assert [m.features[i].out_channels for i in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    sd = m.state_dict()
    assert tuple(sd["features.0.weight"].shape) == (64, 1, 3, 3)
    assert tuple(sd["classifier.0.weight"].shape) == (4096, 512 * 7 * 7)
    assert tuple(sd["classifier.6.weight"].shape) == (4, 4096)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())


@pytest.mark.parametrize("name,first,hidden", [("vgg16_w8", 8, 512), ("vgg16_w16", 4, 256),
                                               ("vgg16_tiny", 2, 128), (0.25, 16, 1024)])
def test_registered_widths(name, first, hidden):
    m = vgg.build_vgg(name, n_classes=3)
    assert m.features[0].out_channels == first and m.classifier[0].out_features == hidden
    assert m(torch.randn(2, 64, 65)).shape == (2, 3)  # (B, T, F) accepted
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_batch_norm_variant_keeps_indices_and_taps():
    """model.norm=batch wraps each conv with its BatchNorm2d at the same features index, so
    the AT layer numbers and both tap modes mean what they mean without it."""
    plain, bn = vgg.VGG16(4, 1 / 16), vgg.VGG16(4, 1 / 16, batch_norm=True)
    assert len(bn.features) == len(plain.features) == 31
    for i in vgg.CONV_INDICES:
        conv, norm = bn.features[i]
        assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
        assert norm.num_features == conv.out_channels == plain.features[i].out_channels
    x = torch.randn(3, 1, 64, 65)
    for mode, layer in (("conv", 4), ("paper", 5)):
        end = tap_end(mode, layer)
        assert features_up_to(bn, x, end).shape == features_up_to(plain, x, end).shape
    bn.eval()
    assert bn(x).shape == (3, 4) and "features.0.1.running_mean" in bn.state_dict()


def test_registry_factories_and_unknown_name():
    assert vgg.vgg16_tiny(n_classes=5, seed=0).classifier[-1].out_features == 5
    assert MODELS.create("vgg16_w8", 3).width == 0.125 and vgg.build_vgg("0.5", 3).width == 0.5
    with pytest.raises(UserError, match="did you mean 'vgg16'"):
        vgg.build_vgg("vgg19", 3)
    with pytest.raises(UserError, match="not a VGG16"):
        vgg.build_vgg("attrnn", 3)  # registered, but a Keras AM: refused without importing TF


def test_seed_reproduces_and_differs():
    a = vgg.build_vgg("vgg16_tiny", 3, seed=1).state_dict()
    b = vgg.build_vgg("vgg16_tiny", 3, seed=1).state_dict()
    c = vgg.build_vgg("vgg16_tiny", 3, seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])


def manual_features(m: vgg.VGG16, x: torch.Tensor, n_convs: int) -> torch.Tensor:
    """Run conv/ReLU/pool by hand with the model's weights until conv n's ReLU."""
    x, done = x.unsqueeze(1), 0
    for v in vgg.CFG_D:
        if v == "M":
            x = F.max_pool2d(x, 2)
            continue
        conv = m.features[vgg.CONV_INDICES[done]]
        x = F.relu(F.conv2d(x, conv.weight, conv.bias, padding=1))
        done += 1
        if done == n_convs:
            return x
    raise AssertionError("unreachable")


@pytest.mark.parametrize("n", list(range(1, 14)))
def test_conv_tap_is_output_of_conv_n_after_relu(n):
    m = vgg.build_vgg("vgg16_tiny", 3, seed=0).eval()
    x = torch.randn(2, 32, 32)
    with ActivationTap(m, tap_end("conv", n)) as tap:
        m(x)
        got = tap.pop()
    torch.testing.assert_close(got, manual_features(m, x, n))
    assert got.min() >= 0  # after the ReLU


def test_paper_tap_semantics():
    m = vgg.build_vgg("vgg16_tiny", 3, seed=0).eval()
    x = torch.randn(2, 32, 32)
    assert tap_end("paper", 0) == 0
    with ActivationTap(m, 0) as tap:  # index 0: the input itself
        m(x)
        assert torch.equal(tap.pop(), x.unsqueeze(1))
    # k=1 -> features[:2], the ReLU after conv 1 (= conv mode 1);
    # k=2 -> features[:5], the max-pool after conv 2 (the module just before conv 3).
    torch.testing.assert_close(features_up_to(m, x, tap_end("paper", 1)), manual_features(m, x, 1))
    torch.testing.assert_close(features_up_to(m, x, tap_end("paper", 2)),
                               F.max_pool2d(manual_features(m, x, 2), 2))
    assert tap_end("paper", 12) == 28  # conv5_3 (index 28) itself is never reached
    for mode, bad in (("conv", 0), ("conv", 14), ("paper", -1), ("paper", 13), ("pool", 1)):
        with pytest.raises(UserError):
            tap_end(mode, bad)


@pytest.mark.parametrize("end", [tap_end("conv", 4), tap_end("conv", 13)])
def test_hook_activation_equals_separate_forward(end):
    m = vgg.build_vgg("vgg16_tiny", 3, seed=0).eval()
    x = torch.randn(3, 32, 40)
    with ActivationTap(m, end) as tap:
        logits = m(x)
        act = tap.pop()
    assert logits.shape == (3, 3) and act.requires_grad
    torch.testing.assert_close(act, features_up_to(m, x, end))
    with pytest.raises(RuntimeError):
        tap.pop()  # consumed
    o = orth_activation(m, x, end)
    assert not o.requires_grad and torch.equal(o, features_up_to(m, x, end).detach())


def _head_output_std(head_init: str) -> float:
    """Std of the logits of a width-1/16 VGG16 (the quickstart's) on unit-variance input."""
    m = vgg.VGG16(32, 1 / 16, head_init=head_init)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.no_grad():
            return float(m.eval()(torch.randn(8, 1, 126, 129)).std())


def test_he_initialised_head_keeps_a_narrow_vgg16s_logits_at_scale():
    """Worked example of the docstring: the paper's N(0, 0.01) head shrinks each layer's
    signal (fan-ins 1568, 256, 256 at width 1/16), He normal keeps it; the convs are the same."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        paper = _head_output_std("torchvision")
        torch.manual_seed(1)
        he = _head_output_std("kaiming")
    assert paper < 0.01 < 0.1 < he
    a, b = vgg.VGG16(4, 1 / 16), vgg.VGG16(4, 1 / 16, head_init="kaiming")
    assert abs(float(a.classifier[0].weight.detach().std()) - 0.01) < 0.001
    assert abs(float(b.classifier[0].weight.detach().std()) - (2 / b.classifier[0].in_features) ** 0.5) < 0.002
    with pytest.raises(UserError, match="head_init='xavier' is not known: use torchvision or kaiming"):
        vgg.VGG16(4, 1 / 16, head_init="xavier")


def test_dropout_option_reaches_the_head():
    m = vgg.build_vgg("vgg16_tiny", n_classes=3, dropout=0.0)
    assert [mod.p for mod in m.classifier if isinstance(mod, nn.Dropout)] == [0.0, 0.0]
