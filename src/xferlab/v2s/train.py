"""Train a V2S (or TF_a) model on target series with the authors' optimiser.

The authors' Keras 2 call ``Adam(lr=0.05, decay=0.48)`` is inverse-time decay per
iteration, lr_t = lr / (1 + 0.48 t): about 0.0086 after 10 steps and 0.001 after 100.
Keras 3 dropped ``decay``, and a constant 0.05 leaves V2S at chance (measured), so the
schedule is explicit here (``decay`` configurable, 0.48 default; 0 = constant lr).
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from xferlab.errors import UserError
from xferlab.v2s.fitting import OnEpoch, TrainResult, fit_and_report

AUTHORS_DECAY = 0.48


def inverse_time_decay(lr: float,
                       decay: float = AUTHORS_DECAY) -> keras.optimizers.schedules.LearningRateSchedule:
    """lr_t = lr / (1 + decay * t), t = optimizer iterations (Keras 2's ``decay`` argument)."""
    return keras.optimizers.schedules.InverseTimeDecay(initial_learning_rate=lr, decay_steps=1,
                                                        decay_rate=decay)


def _check_data(x: np.ndarray, y: np.ndarray, n_classes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 (n, L) series and int labels in 0..n_classes-1, or a UserError naming the split."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise UserError(f"{what}: expected (n, L) series and n labels, got {x.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
        raise UserError(f"{what}: labels must be integers 0..{n_classes - 1} (map raw labels by "
                        f"sorted unique value first), got {np.unique(y)[:10]}")
    return x, y.astype(np.int64)


def compile_classifier(model: keras.Model, lr: float, decay: float) -> None:
    """Adam on the inverse-time-decay schedule; sparse CE on the (mapped) scores."""
    model.compile(optimizer=keras.optimizers.Adam(inverse_time_decay(lr, decay)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def train_v2s(model: keras.Model, x_train: np.ndarray, y_train: np.ndarray,
              x_val: np.ndarray, y_val: np.ndarray,
              x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
              epochs: int = 100, batch_size: int = 32, lr: float = 0.05, seed: int = 0,
              on_epoch: OnEpoch | None = None, swd_fn: Callable[[keras.Model], float] | None = None,
              decay: float = AUTHORS_DECAY, verbose: int = 0, patience: int | None = None) -> TrainResult:
    """Train theta (V2S) or the whole AM + head (TF_a); restore the best-val-loss epoch;
    stop after ``patience`` epochs without a better validation loss (None: run every epoch).

    Returns per-epoch train/val loss and accuracy (+ ``swd`` when ``swd_fn`` is given)
    and final ``test_loss``, ``test_accuracy``, ``test_f1_macro``, ``test_mpce_term``,
    ``best_epoch`` with the test confusion matrix. Deterministic for a given ``seed``
    (``keras.utils.set_random_seed``: shuffling, dropout and initialisers). Raises
    :class:`~xferlab.errors.Diverged` when the validation loss is NaN or infinite at
    every epoch (e.g. too large a ``lr``): the run ends FAILED, not FINISHED.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise UserError(f"train.epochs, train.batch_size and train.lr must be positive "
                        f"(got {epochs}, {batch_size}, {lr})")
    n_classes = int(model.output_shape[-1])
    x_train, y_train = _check_data(x_train, y_train, n_classes, "training data")
    x_val, y_val = _check_data(x_val, y_val, n_classes, "validation data")
    test = None
    if x_test is not None:
        test = _check_data(x_test, y_test, n_classes, "test data")
    keras.utils.set_random_seed(seed)
    compile_classifier(model, lr, decay)
    result = fit_and_report(model, (x_train, y_train), (x_val, y_val), test, epochs, batch_size,
                            on_epoch, swd_fn, verbose, patience=patience)
    result.extra.update({"lr": lr, "decay": decay, "seed": seed})
    return result
