"""The training loop: frozen orthogonal model, init, early stopping, metrics, seeds."""
import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from xferlab.at.augment import SpecMask
from xferlab.at.config import ATConfig
from xferlab.at.init import init_from_state
from xferlab.at.train import train_at
from xferlab.at.vgg import build_vgg
from xferlab.errors import Diverged, TrialPruned, UserError

K = 3


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (n,), generator=g)
    x = torch.randn(n, 32, 33, generator=g) + y[:, None, None] * 0.5  # (N, T, F), learnable
    return x, y


def tiny(seed: int = 0):
    return build_vgg("vgg16_tiny", K, seed=seed)


def run(seed=0, model_seed=0, val=None, **kw):
    kw.setdefault("epochs", 2)
    kw.setdefault("lr", 1e-3)
    return train_at(tiny(model_seed), data(24, 1), data(12, 2) if val is None else val, data(12, 3),
                    seed=seed, batch_size=8, device="cpu", **kw)


def test_orthogonal_model_gets_no_gradient_and_never_changes():
    orth = tiny(9)
    before = {k: v.clone() for k, v in orth.state_dict().items()}
    model = tiny(0)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    res = train_at(model, data(16, 1), data(8, 2), epochs=1, lr=1e-3, orth_model=orth,
                   at_cfg={"layer": 4, "orthogonal": "ignored-here"}, device="cpu")
    assert all(p.grad is None for p in orth.parameters())
    assert all(torch.equal(before[k], v) for k, v in orth.state_dict().items())
    assert not torch.equal(start["features.0.weight"], model.state_dict()["features.0.weight"])
    assert res.history[0]["at_loss"] > 0 and res.metrics["val_at_loss"] > 0
    assert res.metrics["val_loss"] == pytest.approx(res.metrics["val_ce_loss"] + res.metrics["val_at_loss"])


def test_paper_index0_is_a_constant_term():
    res = run(epochs=1, orth_model=tiny(9), at_cfg=ATConfig(layer=0, tap="paper", beta=2.0))
    assert res.history[0]["at_loss"] == pytest.approx(2.0)  # input vs itself: |cos| = 1


def test_init_from_state_really_loads():
    src, dst = build_vgg("vgg16_tiny", 5, seed=1), tiny(0)
    rep = init_from_state(dst, {"module." + k: v for k, v in src.state_dict().items()})
    assert rep.loaded_features == 26 and rep.loaded == 26 + 4  # all but the last linear
    assert set(rep.skipped) == {"classifier.6.weight", "classifier.6.bias"}
    for k, v in dst.state_dict().items():
        if not k.startswith("classifier.6"):
            assert torch.equal(v, src.state_dict()[k]), k
    assert init_from_state(tiny(2), tiny(3)).loaded == 32  # a module is accepted too


def test_init_from_mismatched_state_is_an_error():
    with pytest.raises(UserError, match="feature extractor"):
        init_from_state(tiny(0), build_vgg("vgg16_w16", K).state_dict())  # other width
    renamed = {"net." + k: v for k, v in tiny(1).state_dict().items()}
    with pytest.raises(UserError):
        init_from_state(tiny(0), renamed)  # the original's silent no-op
    with pytest.raises(UserError, match="no tensor"):
        init_from_state(tiny(0), renamed, strict_features=False)


@pytest.mark.parametrize("patience", [1, 3])
def test_early_stopping_after_exactly_patience_epochs(patience):
    seen = []
    res = run(lr=0.0, epochs=10, patience=patience, on_epoch=lambda e, m: seen.append((e, m)))
    # lr 0: the validation loss never improves after epoch 1
    assert res.epochs_run == 1 + patience and res.stopped_early and res.best_epoch == 1
    assert [e for e, _ in seen] == list(range(1, patience + 2))
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "at_loss", "val_at_loss"} <= set(seen[0][1])
    full = run(lr=0.0, epochs=3, patience=None)
    assert full.epochs_run == 3 and not full.stopped_early


def test_final_metrics_are_over_the_whole_split(tmp_path):
    ckpt = tmp_path / "best.pt"
    res = run(epochs=2, checkpoint_path=str(ckpt))
    x, y = data(12, 3)
    res.model.eval()
    with torch.no_grad():
        pred = res.model(x).argmax(1).numpy()
    yt = y.numpy()
    np.testing.assert_array_equal(res.predictions["test"][1], pred)
    m = res.metrics
    assert m["test_accuracy"] == pytest.approx(accuracy_score(yt, pred))
    assert m["test_f1_macro"] == pytest.approx(f1_score(yt, pred, average="macro", zero_division=0))
    assert m["test_precision_macro"] == pytest.approx(precision_score(yt, pred, average="macro", zero_division=0))
    assert m["test_recall_macro"] == pytest.approx(recall_score(yt, pred, average="macro", zero_division=0))
    best = torch.load(ckpt, weights_only=True)
    assert all(torch.equal(best[k], v) for k, v in res.model.state_dict().items())
    assert m["val_loss"] == pytest.approx(res.history[res.best_epoch - 1]["val_loss"], rel=1e-5)


def test_seeds_reproduce_and_differ():
    a, b, c = run(seed=0), run(seed=0), run(seed=1)
    assert a.history == b.history
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert a.history[0]["train_loss"] != c.history[0]["train_loss"]  # shuffle and dropout differ


def test_errors_and_pruning_propagate():
    with pytest.raises(UserError, match="orthogonal"):
        run(at_cfg={"layer": 2})
    with pytest.raises(UserError, match="unknown at"):
        run(orth_model=tiny(1), at_cfg={"layer": 2, "lyr": 3})

    def prune(epoch, metrics):
        raise TrialPruned()

    with pytest.raises(TrialPruned):
        run(on_epoch=prune)
    assert run(epochs=1, at_cfg={"enabled": False}).history[0]["at_loss"] == 0.0


LOSS_KEYS = ("train_loss", "at_loss", "val_loss", "val_at_loss", "val_ce_loss")


@pytest.mark.parametrize("aggregation, augment", [("gram", None), ("stochastic_pairwise", None),
                                                   ("gram", SpecMask(2, 0.2, 2, 0.2))])
def test_orth_cache_gives_the_same_trajectory(tmp_path, aggregation, augment):
    """Cached (in memory, then memmap) vs a second forward per batch: same seed, same
    per-epoch losses and final weights (up to float rounding of batched convs); with masks
    on the training batches too (the orthogonal model sees the clean batch either way)."""
    cfg = {"layer": 3, "aggregation": aggregation}
    runs = [run(seed=4, epochs=3, orth_model=tiny(9), at_cfg=cfg, orth_cache=False, augment=augment),
            run(seed=4, epochs=3, orth_model=tiny(9), at_cfg=cfg, augment=augment),
            run(seed=4, epochs=3, orth_model=tiny(9), at_cfg=cfg, orth_cache_bytes=0,
                orth_cache_dir=str(tmp_path), augment=augment)]
    ref = runs[0]
    assert ref.history[0]["at_loss"] > 0
    for other in runs[1:]:
        for r0, r1 in zip(ref.history, other.history, strict=True):
            for key in LOSS_KEYS:
                assert r1[key] == pytest.approx(r0[key], rel=1e-5, abs=1e-7), key
        assert other.best_epoch == ref.best_epoch
        assert other.metrics["test_loss"] == pytest.approx(ref.metrics["test_loss"], rel=1e-5)
        for k, v in ref.model.state_dict().items():
            torch.testing.assert_close(other.model.state_dict()[k], v, rtol=1e-4, atol=1e-6)
    assert list(tmp_path.iterdir()) == []  # the memmap directory is gone


class PoisonedVal(Dataset):
    """Validation items whose inputs are NaN while ``poison[0]`` is set (a test switch that
    the epoch callback flips), to make chosen epochs non-finite."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, poison: list[bool]) -> None:
        self.x, self.y, self.poison = x, y, poison

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return (torch.full_like(self.x[i], math.nan) if self.poison[0] else self.x[i]), self.y[i]


def test_best_epoch_is_the_lowest_finite_validation_loss():
    poison = [True]
    x, y = data(12, 2)

    def heal(epoch, metrics):
        poison[0] = epoch == 2  # epochs 1 and 3 are NaN, 2 is finite; the final pass is clean

    res = train_at(tiny(0), data(24, 1), PoisonedVal(x, y, poison), epochs=3, lr=1e-3, seed=0,
                   batch_size=8, device="cpu", on_epoch=heal, patience=None)
    losses = [row["val_loss"] for row in res.history]
    assert math.isnan(losses[0]) and math.isfinite(losses[1]) and math.isnan(losses[2])
    assert res.best_epoch == 2 and res.metrics["best_epoch"] == 2.0
    assert res.metrics["val_loss"] == pytest.approx(losses[1], rel=1e-5)  # the kept weights are epoch 2's


def test_no_finite_validation_loss_raises_diverged():
    x, y = data(12, 2)
    with pytest.raises(Diverged, match="NaN or infinite"):
        train_at(tiny(0), data(24, 1), (torch.full_like(x, math.nan), y), epochs=2, lr=1e-3,
                 batch_size=8, device="cpu")
    with pytest.raises(Diverged):  # also when early stopping ends the run first
        run(epochs=5, patience=1, lr=1e-3, val=(torch.full_like(x, math.inf), y))


def test_cosine_schedule_anneals_per_step_from_the_rate_to_a_twentieth():
    from xferlab.at.train import schedule

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    assert schedule(opt, "constant", 1, range(10)) is None
    sched = schedule(opt, "cosine", 1, range(10))  # 1 epoch of 10 batches
    rates = [opt.param_groups[0]["lr"]]
    for _ in range(10):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(5e-5)
    assert rates[5] == pytest.approx(5e-5 + (1e-3 - 5e-5) / 2)  # half way: the cosine's midpoint
    assert all(a > b for a, b in zip(rates, rates[1:]))
    with pytest.raises(UserError, match="lr_schedule 'step'"):
        schedule(opt, "step", 1, range(10))


def rates_of(kind: str, epochs: int, steps: int, warmup: float, lr: float = 1e-3) -> list[float]:
    from xferlab.at.train import schedule

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = schedule(opt, kind, epochs, range(steps), warmup)
    rates = [opt.param_groups[0]["lr"]]
    for _ in range(epochs * steps):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    return rates


def test_warm_up_ramps_the_rate_linearly_then_hands_over_to_the_schedule():
    """Worked example: 2 epochs of 10 batches, half an epoch of warm-up (5 steps): the rate
    rises 1/5, 2/5 ... 5/5 of lr, then stays (constant) or anneals to lr/20 over the other
    15 steps (cosine)."""
    constant = rates_of("constant", 2, 10, 0.5)
    assert constant[:6] == pytest.approx([2e-4, 4e-4, 6e-4, 8e-4, 1e-3, 1e-3])
    assert constant[5:] == pytest.approx([1e-3] * 16)
    cosine = rates_of("cosine", 2, 10, 0.5)
    assert cosine[:5] == pytest.approx([2e-4, 4e-4, 6e-4, 8e-4, 1e-3])
    assert cosine[5 + 15] == pytest.approx(5e-5)  # the floor after the last step
    assert cosine[5 + 7] == pytest.approx(5e-5 + (1e-3 - 5e-5) / 2 * (1 + math.cos(math.pi * 7 / 15)))
    plain = rates_of("cosine", 2, 10, 0.0)  # no warm-up: the cosine from the first step, as before
    assert plain[0] == pytest.approx(1e-3) and plain[10] == pytest.approx(5e-5 + (1e-3 - 5e-5) / 2)


def test_a_warm_up_run_trains_differently_and_a_negative_one_is_refused():
    from xferlab.kinds.at import ATSpec, check_warmup
    from xferlab.schema import build

    assert run(epochs=1).history[0]["train_loss"] != run(epochs=1, lr_warmup=0.5).history[0]["train_loss"]
    with pytest.raises(UserError, match=r"train.lr_warmup=-1.0 .* use 0 \(none\)"):
        check_warmup(build(ATSpec, {"train": {"lr_warmup": -1.0}}))


def test_a_cosine_run_trains_differently_from_a_constant_one():
    constant, cosine = run(epochs=3), run(epochs=3, lr_schedule="cosine")
    assert constant.history[0]["train_loss"] != cosine.history[0]["train_loss"]  # the rate falls within epoch 1
    assert all(math.isfinite(h["val_loss"]) for h in cosine.history)


def test_train_at_steps_the_cosine_once_per_batch_down_to_the_floor(monkeypatch):
    import xferlab.at.train as at_train

    made = []
    real = at_train.schedule

    def spy(opt, kind, epochs, loader, warmup):
        made.append((real(opt, kind, epochs, loader, warmup), opt))
        return made[-1][0]

    monkeypatch.setattr(at_train, "schedule", spy)
    run(epochs=2, lr=1e-3, lr_schedule="cosine", patience=None)  # 24 items, batches of 8: 3 steps per epoch
    [(sched, opt)] = made
    assert sched.last_epoch == 6 and opt.param_groups[0]["lr"] == pytest.approx(5e-5)


def test_cpu_layout_is_channels_last_and_computes_what_the_default_layout_does():
    """to_device's channels-last weights (a speed choice) change the arithmetic's order
    only: the same logits and gradients as the default layout, to float rounding."""
    from xferlab.at.vgg import to_device

    x, y = data(8, 4)
    out = {}
    for layout in ("default", "ours"):
        net = tiny(0)
        net = to_device(net, torch.device("cpu")) if layout == "ours" else net.to("cpu")
        conv = net.features[2]  # 2 input channels: the layouts differ (a 1-channel conv is both)
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == (layout == "ours")
        torch.manual_seed(0)  # the same dropout masks
        logits = net(x)
        torch.nn.functional.cross_entropy(logits, y).backward()
        out[layout] = (logits.detach(), [p.grad.clone() for p in net.parameters()])
    torch.testing.assert_close(out["ours"][0], out["default"][0], rtol=1e-5, atol=1e-6)
    for ours, default in zip(out["ours"][1], out["default"][1]):
        torch.testing.assert_close(ours, default, rtol=1e-4, atol=1e-6)


def test_a_cpu_training_checkpoint_loads_into_a_default_layout_network(tmp_path):
    """train_at trains channels-last on the CPU; its checkpoint (strides and all) loads into
    a fresh network in the default layout, which then computes the same logits."""
    res = run(checkpoint_path=str(tmp_path / "best.pt"))
    assert res.model.features[2].weight.is_contiguous(memory_format=torch.channels_last)
    fresh = tiny(5)
    fresh.load_state_dict(torch.load(tmp_path / "best.pt", weights_only=True))
    assert not fresh.features[2].weight.is_contiguous(memory_format=torch.channels_last)
    x, _ = data(6, 7)
    torch.testing.assert_close(fresh.eval()(x), res.model.eval()(x), rtol=1e-5, atol=1e-6)
