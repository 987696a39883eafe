"""Shared epoch loop pieces for V2S, TF_a and source pretraining.

Training code reports through ``on_epoch(epoch, metrics)`` (epochs count from 1;
metrics ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy`` and ``swd``
when an SWD function is given). Tracking logs them, tuning may raise ``TrialPruned``
from the callback: Keras lets it propagate out of ``fit``, and so do we.
The weights of the epoch with the lowest FINITE validation loss are restored at the end;
when no epoch has one, the model diverged and :class:`~xferlab.errors.Diverged` is raised
instead of testing it (a run must not end FINISHED with metrics of a NaN model).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import keras
import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from xferlab.errors import Diverged

OnEpoch = Callable[[int, dict[str, float]], None]
EPS = 1e-7  # keras.backend.epsilon(): the clip Keras applies before log


@dataclass
class TrainResult:
    """What a training call returns: per-epoch history and final metrics."""

    history: list[dict[str, float]]  # one dict per epoch, with key "epoch" (from 1)
    best_epoch: int  # epoch (from 1) whose weights were restored, by val loss; 0: untrained (epochs=0)
    metrics: dict[str, float] = field(default_factory=dict)  # best_val_*, test_* (+ best_epoch)
    confusion: np.ndarray | None = None  # (n_classes, n_classes) on the test set, rows = truth
    extra: dict[str, Any] = field(default_factory=dict)


class EpochReporter(keras.callbacks.Callback):
    """Collects metrics, keeps the best-val-loss weights, forwards to ``on_epoch``, and
    stops training after ``patience`` epochs without a better validation loss (None or <= 0: never, as in AT).

    ``best_weights`` stays None until an epoch has a finite validation loss: NaN and
    infinities never count as best (``NaN < x`` is False, but ``-inf`` would win a bare
    comparison), so None after training means the model diverged at every epoch.
    """

    def __init__(self, on_epoch: OnEpoch | None = None,
                 swd_fn: Callable[[keras.Model], float] | None = None, patience: int | None = None) -> None:
        super().__init__()
        self.on_epoch, self.swd_fn, self.patience = on_epoch, swd_fn, patience
        self.history: list[dict[str, float]] = []
        self.best_loss, self.best_epoch, self.best_weights = np.inf, 0, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        metrics = {"train_loss": float(logs["loss"]), "train_accuracy": float(logs["accuracy"]),
                   "val_loss": float(logs["val_loss"]), "val_accuracy": float(logs["val_accuracy"])}
        if self.swd_fn is not None:
            metrics["swd"] = float(self.swd_fn(self.model))
        if is_better(metrics["val_loss"], self.best_loss):
            self.best_loss, self.best_epoch = metrics["val_loss"], epoch + 1
            self.best_weights = [w.numpy().copy() for w in self.model.weights]
        self.history.append({"epoch": epoch + 1, **metrics})
        if self.on_epoch is not None:
            self.on_epoch(epoch + 1, metrics)  # may raise TrialPruned: let it propagate
        if (self.patience or 0) > 0 and epoch + 1 - self.best_epoch >= self.patience:
            self.model.stop_training = True  # Keras ends fit after this epoch

    @property
    def diverged(self) -> bool:
        """True when no epoch so far had a finite validation loss."""
        return self.best_weights is None

    def restore_best(self) -> None:
        if self.best_weights is not None:
            for w, value in zip(self.model.weights, self.best_weights):
                w.assign(value)


def is_better(loss: float, best: float) -> bool:
    """Whether ``loss`` is a finite validation loss below ``best`` (which starts at inf)."""
    return math.isfinite(loss) and loss < best


def sparse_ce(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample cross entropy exactly as Keras computes it on non-logit scores.

    Keras clips the scores, takes the log and renormalises (softmax of log p), so
    mapped V2S scores that do not sum to one are handled like the authors' code did.
    """
    logp = np.log(np.clip(scores, EPS, 1 - EPS))  # (n, C)
    top = logp.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logp - top).sum(axis=1))  # (n,)
    return lse - logp[np.arange(len(y)), y]


def evaluate_classifier(model: keras.Model, x: np.ndarray, y: np.ndarray,
                        batch_size: int = 64, prefix: str = "test") -> tuple[dict[str, float], np.ndarray]:
    """Loss (+ the model's regularisation terms, as in Keras), the cross-entropy alone,
    accuracy, macro F1, MPCE term.

    ``{prefix}_mpce_term`` is error_rate / n_classes: summing it over datasets gives the
    MPCE of Table 2 (Wang et al. 2017).
    """
    scores = model.predict(x, batch_size=batch_size, verbose=0)  # (n, C)
    y = np.asarray(y, dtype=np.int64)
    n_classes = scores.shape[1]
    pred = scores.argmax(axis=1)
    reg = float(sum(float(keras.ops.convert_to_numpy(l)) for l in model.losses))
    acc = float((pred == y).mean())
    ce = float(sparse_ce(scores, y).mean())
    metrics = {f"{prefix}_loss": ce + reg, f"{prefix}_ce_loss": ce,
               f"{prefix}_accuracy": acc,
               f"{prefix}_f1_macro": float(f1_score(y, pred, average="macro", labels=range(n_classes),
                                                    zero_division=0)),
               f"{prefix}_mpce_term": (1.0 - acc) / n_classes}
    return metrics, confusion_matrix(y, pred, labels=range(n_classes))


def fit_and_report(model: keras.Model, train: Any, val: tuple[np.ndarray, np.ndarray],
                   test: tuple[np.ndarray, np.ndarray] | None, epochs: int, batch_size: int,
                   on_epoch: OnEpoch | None, swd_fn=None, verbose: int = 0,
                   what: str = "the validation loss", patience: int | None = None) -> TrainResult:
    """Run ``fit`` (``train`` is (x, y) or a PyDataset), restore best weights, test.

    The model must be compiled with a sparse cross-entropy loss and "accuracy". Raises
    :class:`~xferlab.errors.Diverged` (its message names ``what``) when no epoch had a
    finite validation loss: there is no epoch to restore, and test metrics of the last,
    diverged weights would be recorded as a result.
    """
    reporter = EpochReporter(on_epoch, swd_fn, patience)
    if isinstance(train, tuple):
        model.fit(train[0], train[1], batch_size=batch_size, epochs=epochs, validation_data=val,
                  shuffle=True, callbacks=[reporter], verbose=verbose)
    else:
        model.fit(train, epochs=epochs, validation_data=val, callbacks=[reporter], verbose=verbose)
    if reporter.diverged:
        raise Diverged(what)
    reporter.restore_best()
    best = next((h for h in reporter.history if h["epoch"] == reporter.best_epoch), {})
    if isinstance(val, tuple) and model.losses:  # a regularised model: its val_loss holds the penalty too
        best = {**best, "val_ce_loss": evaluate_classifier(model, *val, batch_size, prefix="val")[0]["val_ce_loss"]}
    return scored(model, reporter.history, reporter.best_epoch, best, test, batch_size)


def scored(model: keras.Model, history: list[dict[str, float]], best_epoch: int, best: dict[str, float],
           test: tuple[np.ndarray, np.ndarray] | None, batch_size: int) -> TrainResult:
    """The :class:`TrainResult` of the model as it stands: ``best`` holds the kept epoch's
    ``val_loss`` and ``val_accuracy`` (and ``val_ce_loss``, the validation cross-entropy
    alone); test metrics and confusion when ``test`` is given.

    ``best_val_loss`` is Keras' validation loss, which adds the model's regularisation (the
    program's L2 term): it ranks epochs of one run, but not settings of different L2, where
    the penalty itself differs. ``best_val_ce_loss`` leaves the penalty out, so it ranks
    settings (``report.frames.select_on_validation``); without a separate value it is the
    validation loss.
    """
    metrics = {"best_epoch": float(best_epoch), "epochs_run": float(len(history)),
               "best_val_loss": best.get("val_loss", np.nan),
               "best_val_ce_loss": best.get("val_ce_loss", best.get("val_loss", np.nan)),
               "best_val_accuracy": best.get("val_accuracy", np.nan)}
    confusion = None
    if test is not None and test[0] is not None:
        test_metrics, confusion = evaluate_classifier(model, test[0], test[1], batch_size)
        metrics.update(test_metrics)
    return TrainResult(history, best_epoch, metrics, confusion)
