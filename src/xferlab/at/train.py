"""Training loop for the baseline and anti-transfer runs (the same code path for both).

What it fixes relative to the original (see ANTITRANSFER.md, "Defects"):
- a TRUE patience: stop after ``patience`` consecutive epochs without a lower validation
  loss (the original effectively waited 3);
- final metrics over the WHOLE split with sklearn, as ``f(y_true, y_pred)`` (the original
  swapped the arguments, so precision and recall were exchanged, and averaged per batch);
- the final validation loss is that of the best checkpoint only;
- seeds per repetition (global torch seed + a seeded DataLoader generator + a seeded
  generator for the stochastic aggregation): different seeds differ, a seed reproduces.
- the kept epoch is the one with the lowest FINITE validation loss (a NaN epoch can
  never be "best"); no finite epoch at all raises ``Diverged``, so no record claims a
  result that does not exist.
As in the original, the validation loss used for model selection includes the AT term;
both parts are recorded. Epochs are numbered from 1; ``on_epoch(epoch, metrics)`` may
raise ``TrialPruned``, which propagates.

The orthogonal network's activations of the train and validation items are computed once
and cached (``taps.OrthCache``; ``orth_cache=False`` restores a second forward per batch):
its features are deterministic, so the trajectory is the same, at a baseline's cost.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from xferlab.at.augment import SpecMask, mask_batch
from xferlab.at.config import ATConfig
from xferlab.at.loss import at_loss
from xferlab.at.taps import ActivationTap, OrthCache, orth_activation
from xferlab.at.vgg import default_device, to_device
from xferlab.errors import Diverged, UserError

Split = tuple[Any, Any] | Dataset | DataLoader
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class ATResult:
    """Outcome of ``train_at``: the model holds the best-validation weights."""

    model: nn.Module
    history: list[dict[str, float]]
    metrics: dict[str, float]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def make_loader(data: Split, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader over (X, y) arrays or a Dataset; a given DataLoader is used as is.

    X is (N, T, F) or (N, 1, T, F); the shuffle order comes from a generator seeded
    with ``seed``, so it is reproducible and independent of the global RNG.
    """
    if isinstance(data, DataLoader):
        return data
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(as_dataset(data), batch_size=batch_size, shuffle=shuffle, generator=gen)


def as_dataset(data: tuple[Any, Any] | Dataset) -> Dataset:
    """(X, y) arrays -> a TensorDataset (float inputs, long labels); a Dataset as is."""
    if not isinstance(data, tuple):
        return data
    x = torch.as_tensor(np.asarray(data[0]) if not torch.is_tensor(data[0]) else data[0]).float()
    y = torch.as_tensor(np.asarray(data[1]) if not torch.is_tensor(data[1]) else data[1]).long()
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise UserError(f"split has {x.shape[0]} inputs and {y.shape[0]} labels: both must match and be > 0")
    return TensorDataset(x, y)


class Indexed(Dataset):
    """Items (x, y) -> (x, y, item index): what a batch needs to gather cached activations.
    The sampler only sees the length, so a seeded shuffle gives the same order as unwrapped."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, Any, int]:
        item = self.base[i]
        return item[0], item[1], i

    def __getitems__(self, indices: list[int]) -> list[tuple[Any, Any, int]]:
        """A batch in one read when the wrapped split can (a split streamed from disk)."""
        fetch = getattr(self.base, "__getitems__", None)
        items = fetch(indices) if fetch is not None else [self.base[i] for i in indices]
        return [(item[0], item[1], i) for item, i in zip(items, indices)]


class _Stepper:
    """Computes CE + AT for a batch; the target activation comes from a forward hook.

    ``gram_form`` is passed to ``at_loss`` (``auto``: the cheaper Gram form; the bench
    forces ``direct`` to time the original approach).
    """

    def __init__(self, model: nn.Module, orth: nn.Module | None, cfg: ATConfig | None,
                 seed: int, gram_form: str = "auto", augment: SpecMask | None = None) -> None:
        self.model, self.orth, self.cfg, self.gram_form = model, orth, cfg, gram_form
        self.tap = ActivationTap(model, cfg.end) if cfg is not None else None
        self.gen = torch.Generator().manual_seed(int(seed) + 1)
        self.augment = augment or SpecMask()  # training batches only (_train_epoch)
        self.mask_gen = torch.Generator().manual_seed(int(seed) + 2)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, a_orth: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (logits (B, K), CE sum over the batch, AT term (scalar)); ``a_orth``
        (B, C, H, W) is the cached orthogonal activation, else it is computed here."""
        logits = self.model(x)
        ce_sum = F.cross_entropy(logits, y, reduction="sum")
        if self.tap is None:
            return logits, ce_sum, logits.new_zeros(())
        cfg = self.cfg
        a_t = self.tap.pop()  # (B, C, H, W), with graph
        a_p = a_orth if a_orth is not None else orth_activation(self.orth, x, cfg.end)  # no graph
        term = at_loss(a_t, a_p, cfg.aggregation, cfg.distance, cfg.beta, cfg.gram, self.gen, cfg.window,
                       self.gram_form)
        return logits, ce_sum, term

    def close(self) -> None:
        if self.tap is not None:
            self.tap.remove()


def _unpack(batch: Any, cache: OrthCache | None, device: torch.device,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A batch (x, y[, item index]) -> x, y on the device and the cached orthogonal
    activation (B, C, H, W) when this split has a cache, else None."""
    x, y = batch[0].to(device), batch[1].to(device)
    a_orth = cache.gather(batch[2]) if cache is not None and len(batch) > 2 else None
    return x, y, a_orth


def _train_epoch(step: _Stepper, loader: DataLoader, opt: torch.optim.Optimizer,
                 device: torch.device, cache: OrthCache | None = None,
                 sched: torch.optim.lr_scheduler.LRScheduler | None = None) -> dict[str, float]:
    """One pass in train mode; running (sample-weighted) loss and accuracy."""
    step.model.train()
    n = correct = 0
    ce_tot = at_tot = 0.0
    for batch in loader:
        x, y, a_orth = _unpack(batch, cache, device)
        if step.augment.active:  # the orthogonal model sees the clean batch, as its cache does
            if a_orth is None and step.tap is not None:
                a_orth = orth_activation(step.orth, x, step.cfg.end)
            x = mask_batch(x, step.augment, step.mask_gen)
        logits, ce_sum, term = step(x, y, a_orth)
        loss = ce_sum / len(y) + term
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        n += len(y)
        correct += int((logits.argmax(1) == y).sum())
        ce_tot += float(ce_sum.detach())
        at_tot += float(term.detach()) * len(y)
    return {"train_loss": (ce_tot + at_tot) / n, "train_ce_loss": ce_tot / n,
            "train_accuracy": correct / n, "at_loss": at_tot / n}


@torch.no_grad()
def evaluate(step: _Stepper, loader: DataLoader, device: torch.device,
             cache: OrthCache | None = None) -> dict[str, Any]:
    """Eval-mode pass over a WHOLE split: CE per sample, AT per batch weighted by its size,
    and the concatenated (y_true, y_pred) for sklearn."""
    step.model.eval()
    n = 0
    ce_tot = at_tot = 0.0
    ys, preds = [], []
    for batch in loader:
        x, y, a_orth = _unpack(batch, cache, device)
        logits, ce_sum, term = step(x, y, a_orth)
        n += len(y)
        ce_tot += float(ce_sum.detach())
        at_tot += float(term.detach()) * len(y)
        ys.append(y.cpu().numpy())
        preds.append(logits.argmax(1).cpu().numpy())
    return {"loss": (ce_tot + at_tot) / n, "ce_loss": ce_tot / n, "at_loss": at_tot / n,
            "y_true": np.concatenate(ys), "y_pred": np.concatenate(preds)}


def split_metrics(prefix: str, ev: Mapping[str, Any]) -> dict[str, float]:
    """Loss parts and sklearn accuracy / macro F1 / precision / recall as f(y_true, y_pred)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    yt, yp = ev["y_true"], ev["y_pred"]
    return {f"{prefix}_loss": ev["loss"], f"{prefix}_ce_loss": ev["ce_loss"],
            f"{prefix}_at_loss": ev["at_loss"],
            f"{prefix}_accuracy": float(accuracy_score(yt, yp)),
            f"{prefix}_f1_macro": float(f1_score(yt, yp, average="macro", zero_division=0)),
            f"{prefix}_precision_macro": float(precision_score(yt, yp, average="macro", zero_division=0)),
            f"{prefix}_recall_macro": float(recall_score(yt, yp, average="macro", zero_division=0))}


def _prepare(model: nn.Module, orth: nn.Module | None, cfg: ATConfig | None,
             device: torch.device) -> nn.Module | None:
    """Move models to the device; freeze the orthogonal one (eval, no grad, never stepped)."""
    to_device(model, device)
    if cfg is None:
        return None
    if orth is None:
        raise UserError("AT is enabled but no orthogonal model was given: set at.orthogonal or at.enabled=false")
    return to_device(orth, device).eval().requires_grad_(False)


def train_at(model: nn.Module, train: Split, val: Split, test: Split | None = None,
             epochs: int = 50, lr: float = 5e-5, batch_size: int = 8, patience: int | None = 5,
             seed: int = 0, orth_model: nn.Module | None = None,
             at_cfg: ATConfig | Mapping[str, Any] | None = None,
             on_epoch: EpochCallback | None = None, checkpoint_path: str | None = None,
             device: str | torch.device | None = None, orth_cache: bool = True,
             orth_cache_bytes: int | None = None, orth_cache_dir: str | None = None,
             augment: SpecMask | None = None, lr_schedule: str = "constant",
             lr_warmup: float = 0.0) -> ATResult:
    """Train ``model`` (CE, plus the AT term when ``at_cfg`` is enabled) with Adam, no weight
    decay, early stopping on the validation loss (CE + AT) and the best checkpoint reloaded.

    ``patience`` None or <= 0 disables early stopping. Without ``checkpoint_path`` the best
    state dict goes to a temporary file that is deleted afterwards. ``orth_cache``: compute
    the orthogonal activations of the train/val items once (in memory up to
    ``orth_cache_bytes`` per split, default :func:`xferlab.at.taps.cache_budget`, else a row file under ``orth_cache_dir`` or the system temp
    dir, deleted afterwards); splits given as a DataLoader are not cached. Raises
    ``Diverged`` when no epoch has a finite validation loss. ``augment``: SpecAugment-style
    masks on the training batches (:mod:`xferlab.at.augment`; none by default, as the paper).
    ``lr_schedule="cosine"`` anneals the rate per step to lr/20, planned over all ``epochs``
    (an early stop cuts it off before the floor); ``constant`` is the paper's. ``lr_warmup``
    epochs of linear warm-up come first (:func:`schedule`).
    """
    cfg = ATConfig.from_mapping(at_cfg)
    dev = torch.device(device) if device is not None else default_device()
    torch.manual_seed(int(seed))
    orth = _prepare(model, orth_model, cfg, dev)
    splits = {"train": train, "val": val, **({"test": test} if test is not None else {})}
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0)
    step = _Stepper(model, orth, cfg, seed, augment=augment)
    with tempfile.TemporaryDirectory(prefix="xferlab_at_") as tmp, contextlib.ExitStack() as stack:
        stack.callback(step.close)
        caches: dict[str, OrthCache] = {}
        if cfg is not None and orth_cache:
            caches = _orth_caches(orth, cfg, splits, dev, orth_cache_bytes, orth_cache_dir, stack)
        loaders = {name: make_loader(Indexed(as_dataset(data)) if name in caches else data,
                                     batch_size, name == "train", seed if name == "train" else 0)
                   for name, data in splits.items()}
        ckpt = checkpoint_path or os.path.join(tmp, "best.pt")
        sched = schedule(opt, lr_schedule, int(epochs), loaders["train"], lr_warmup)
        history, best_epoch, stopped = _fit(step, loaders, caches, opt, dev, epochs, patience, on_epoch, ckpt, sched)
        model.load_state_dict(torch.load(ckpt, map_location=dev, weights_only=True))
        metrics, preds = {"best_epoch": float(best_epoch)}, {}
        for name, loader in loaders.items():
            ev = evaluate(step, make_loader(loader.dataset, batch_size, False), dev, caches.get(name))
            metrics.update(split_metrics(name, ev))
            preds[name] = (ev["y_true"], ev["y_pred"])
    return ATResult(model, history, metrics, best_epoch, len(history), stopped, preds)


def schedule(opt: torch.optim.Optimizer, kind: str, epochs: int, loader: Any, warmup: float = 0.0,
             ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step rate schedule: None for ``constant`` without warm-up; ``cosine`` goes
    from the rate to rate/20 over ``epochs`` passes of ``loader`` (an early stop cuts it off
    before the floor; the floor keeps the last epochs learning, as ``xferlab.v2s.pretrain``
    does). ``warmup`` > 0 first raises the rate linearly, rate/W, 2 rate/W ... rate, over
    that many epochs' steps (W) (a higher rate without killing the ReLUs of narrow layers in the
    first steps), and the schedule runs over the rest. Only a cosine or a warm-up asks the
    loader for its length."""
    if kind not in ("constant", "cosine"):
        raise UserError(f"unknown train.lr_schedule {kind!r}; use constant or cosine")
    if kind == "constant" and warmup <= 0:
        return None
    total = max(1, epochs * len(loader))
    warm = min(total - 1, round(warmup * len(loader))) if warmup > 0 else 0
    cosine = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total - warm),
                                                         eta_min=opt.param_groups[0]["lr"] / 20.0)
              if kind == "cosine" else None)  # made first: the ramp's start must not set its floor
    if not warm:
        return cosine
    ramp = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
    if cosine is None:
        return ramp  # constant: stays at the rate once the warm-up is over
    return torch.optim.lr_scheduler.SequentialLR(opt, [ramp, cosine], milestones=[warm])


def _orth_caches(orth: nn.Module, cfg: ATConfig, splits: Mapping[str, Split], dev: torch.device,
                 max_bytes: int | None, cache_dir: str | None, stack: contextlib.ExitStack) -> dict[str, OrthCache]:
    """Caches for the splits evaluated every epoch (train, val); the test split runs once,
    so caching it saves nothing. DataLoader splits carry no item index: not cached."""
    caches = {}
    for name in ("train", "val"):
        if not isinstance(splits[name], DataLoader):
            cache = OrthCache.build(orth, as_dataset(splits[name]), cfg.end, dev, max_bytes, cache_dir)
            caches[name] = stack.enter_context(cache)
    return caches


def _fit(step: _Stepper, loaders: dict[str, DataLoader], caches: Mapping[str, OrthCache],
         opt: torch.optim.Optimizer, dev: torch.device, epochs: int, patience: int | None,
         on_epoch: EpochCallback | None, ckpt: str,
         sched: torch.optim.lr_scheduler.LRScheduler | None = None) -> tuple[list[dict[str, float]], int, bool]:
    """The epoch loop: returns (history, best epoch, stopped early?). The best epoch is the
    one with the lowest finite validation loss; none finite -> ``Diverged``."""
    history: list[dict[str, float]] = []
    best, best_epoch, waited, stopped = math.inf, 0, 0, False
    for epoch in range(1, int(epochs) + 1):
        row = _train_epoch(step, loaders["train"], opt, dev, caches.get("train"), sched)
        ev = evaluate(step, loaders["val"], dev, caches.get("val"))
        row.update(val_loss=ev["loss"], val_ce_loss=ev["ce_loss"], val_at_loss=ev["at_loss"],
                   val_accuracy=float((ev["y_true"] == ev["y_pred"]).mean()))
        if math.isfinite(ev["loss"]) and ev["loss"] < best:
            best, best_epoch, waited = ev["loss"], epoch, 0
            torch.save(step.model.state_dict(), ckpt)
        else:
            waited += 1
        history.append({"epoch": float(epoch), **row})
        if on_epoch is not None:
            on_epoch(epoch, dict(row))
        if patience is not None and patience > 0 and waited >= patience:
            stopped = True
            break
    if best_epoch == 0:
        raise Diverged(f"the validation loss ({len(history)} epochs)")
    return history, best_epoch, stopped
