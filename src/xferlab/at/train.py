"""Training loop for the baseline and anti-transfer runs (the same code path for both).

What it fixes relative to the original (see ANTITRANSFER.md, "Defects"):
- a TRUE patience: stop after ``patience`` consecutive epochs without a lower validation
  loss (the original effectively waited 3);
- final metrics over the WHOLE split with sklearn, as ``f(y_true, y_pred)`` (the original
  swapped the arguments, so precision and recall were exchanged, and averaged per batch);
- the final validation loss is that of the best checkpoint only;
- seeds per repetition (global torch seed + a seeded DataLoader generator + a seeded
  generator for the stochastic aggregation): different seeds differ, a seed reproduces.
As in the original, the validation loss used for model selection includes the AT term;
both parts are recorded. Epochs are numbered from 1; ``on_epoch(epoch, metrics)`` may
raise ``TrialPruned``, which propagates.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from xferlab.at.config import ATConfig
from xferlab.at.loss import at_loss
from xferlab.at.taps import ActivationTap, orth_activation
from xferlab.at.vgg import default_device
from xferlab.errors import UserError

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
    if isinstance(data, tuple):
        x = torch.as_tensor(np.asarray(data[0]) if not torch.is_tensor(data[0]) else data[0]).float()
        y = torch.as_tensor(np.asarray(data[1]) if not torch.is_tensor(data[1]) else data[1]).long()
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise UserError(f"split has {x.shape[0]} inputs and {y.shape[0]} labels: both must match and be > 0")
        data = TensorDataset(x, y)
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=gen)


class _Stepper:
    """Computes CE + AT for a batch; the target activation comes from a forward hook."""

    def __init__(self, model: nn.Module, orth: nn.Module | None, cfg: ATConfig | None,
                 seed: int) -> None:
        self.model, self.orth, self.cfg = model, orth, cfg
        self.tap = ActivationTap(model, cfg.end) if cfg is not None else None
        self.gen = torch.Generator().manual_seed(int(seed) + 1)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (logits (B, K), CE sum over the batch, AT term (scalar))."""
        logits = self.model(x)
        ce_sum = F.cross_entropy(logits, y, reduction="sum")
        if self.tap is None:
            return logits, ce_sum, logits.new_zeros(())
        cfg = self.cfg
        a_t = self.tap.pop()  # (B, C, H, W), with graph
        a_p = orth_activation(self.orth, x, cfg.end)  # (B, C, H, W), no graph
        term = at_loss(a_t, a_p, cfg.aggregation, cfg.distance, cfg.beta, cfg.gram, self.gen, cfg.window)
        return logits, ce_sum, term

    def close(self) -> None:
        if self.tap is not None:
            self.tap.remove()


def _train_epoch(step: _Stepper, loader: DataLoader, opt: torch.optim.Optimizer,
                 device: torch.device) -> dict[str, float]:
    """One pass in train mode; running (sample-weighted) loss and accuracy."""
    step.model.train()
    n = correct = 0
    ce_tot = at_tot = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits, ce_sum, term = step(x, y)
        loss = ce_sum / len(y) + term
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
        correct += int((logits.argmax(1) == y).sum())
        ce_tot += float(ce_sum.detach())
        at_tot += float(term.detach()) * len(y)
    return {"train_loss": (ce_tot + at_tot) / n, "train_ce_loss": ce_tot / n,
            "train_accuracy": correct / n, "at_loss": at_tot / n}


@torch.no_grad()
def evaluate(step: _Stepper, loader: DataLoader, device: torch.device) -> dict[str, Any]:
    """Eval-mode pass over a WHOLE split: CE per sample, AT per batch weighted by its size,
    and the concatenated (y_true, y_pred) for sklearn."""
    step.model.eval()
    n = 0
    ce_tot = at_tot = 0.0
    ys, preds = [], []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits, ce_sum, term = step(x, y)
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
    model.to(device)
    if cfg is None:
        return None
    if orth is None:
        raise UserError("AT is enabled but no orthogonal model was given: set at.orthogonal or at.enabled=false")
    return orth.to(device).eval().requires_grad_(False)


def train_at(model: nn.Module, train: Split, val: Split, test: Split | None = None,
             epochs: int = 50, lr: float = 5e-5, batch_size: int = 8, patience: int | None = 5,
             seed: int = 0, orth_model: nn.Module | None = None,
             at_cfg: ATConfig | Mapping[str, Any] | None = None,
             on_epoch: EpochCallback | None = None, checkpoint_path: str | None = None,
             device: str | torch.device | None = None) -> ATResult:
    """Train ``model`` (CE, plus the AT term when ``at_cfg`` is enabled) with Adam, no weight
    decay, early stopping on the validation loss (CE + AT) and the best checkpoint reloaded.

    ``patience`` None or <= 0 disables early stopping. Without ``checkpoint_path`` the best
    state dict goes to a temporary file that is deleted afterwards.
    """
    cfg = ATConfig.from_mapping(at_cfg)
    dev = torch.device(device) if device is not None else default_device()
    torch.manual_seed(int(seed))
    orth = _prepare(model, orth_model, cfg, dev)
    loaders = {"train": make_loader(train, batch_size, True, seed),
               "val": make_loader(val, batch_size, False)}
    if test is not None:
        loaders["test"] = make_loader(test, batch_size, False)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0)
    step = _Stepper(model, orth, cfg, seed)
    with tempfile.TemporaryDirectory(prefix="xferlab_at_") as tmp:
        ckpt = checkpoint_path or os.path.join(tmp, "best.pt")
        try:
            history, best_epoch, stopped = _fit(step, loaders, opt, dev, epochs, patience, on_epoch, ckpt)
            model.load_state_dict(torch.load(ckpt, map_location=dev, weights_only=True))
            metrics, preds = {"best_epoch": float(best_epoch)}, {}
            for name, loader in loaders.items():
                ev = evaluate(step, make_loader(loader.dataset, batch_size, False), dev)
                metrics.update(split_metrics(name, ev))
                preds[name] = (ev["y_true"], ev["y_pred"])
        finally:
            step.close()
    return ATResult(model, history, metrics, best_epoch, len(history), stopped, preds)


def _fit(step: _Stepper, loaders: dict[str, DataLoader], opt: torch.optim.Optimizer,
         dev: torch.device, epochs: int, patience: int | None, on_epoch: EpochCallback | None,
         ckpt: str) -> tuple[list[dict[str, float]], int, bool]:
    """The epoch loop: returns (history, best epoch, stopped early?)."""
    history: list[dict[str, float]] = []
    best, best_epoch, waited = float("inf"), 0, 0
    for epoch in range(1, int(epochs) + 1):
        row = _train_epoch(step, loaders["train"], opt, dev)
        ev = evaluate(step, loaders["val"], dev)
        row.update(val_loss=ev["loss"], val_ce_loss=ev["ce_loss"], val_at_loss=ev["at_loss"],
                   val_accuracy=float((ev["y_true"] == ev["y_pred"]).mean()))
        if ev["loss"] < best or best_epoch == 0:  # epoch 1 always saves a checkpoint
            best, best_epoch, waited = ev["loss"], epoch, 0
            torch.save(step.model.state_dict(), ckpt)
        else:
            waited += 1
        history.append({"epoch": float(epoch), **row})
        if on_epoch is not None:
            on_epoch(epoch, dict(row))
        if patience is not None and patience > 0 and waited >= patience:
            return history, best_epoch, True
    return history, best_epoch, False
