"""Pretrain a source acoustic model on (n, 16000) float32 speech with integer labels.

The AM's value for reprogramming is how well it generalises to real recorded speech,
not its score on synthetic speakers, so augmentation is on by default: a random time
shift (zero-filled, not circular: a word must not wrap around the second) and a random
gain in dB (loudness must not predict the class).
"""
from __future__ import annotations

import math

import keras
import numpy as np

from xferlab.data.perturb import perturb_some
from xferlab.errors import UserError
from xferlab.v2s.fitting import OnEpoch, TrainResult, evaluate_classifier, fit_and_report, scored
from xferlab.v2s.frontend import N_SAMPLES


def shift_and_gain(x: np.ndarray, rng: np.random.Generator, max_shift: int, gain_db: float) -> np.ndarray:
    """(b, 16000) -> augmented copy: each row shifted by up to +-max_shift, gain +-gain_db."""
    out = np.zeros_like(x)
    shifts = rng.integers(-max_shift, max_shift + 1, size=len(x)) if max_shift > 0 else np.zeros(len(x), int)
    gains = 10.0 ** (rng.uniform(-gain_db, gain_db, size=len(x)) / 20.0)
    for i, (s, g) in enumerate(zip(shifts, gains)):
        if s >= 0:
            out[i, s:] = x[i, :x.shape[1] - s] * g
        else:
            out[i, :s] = x[i, -s:] * g
    return out


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled, augmented mini-batches drawn afresh every epoch (no full-array copies)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                 max_shift: int, gain_db: float, perturb: tuple[str, ...] = (), perturb_p: float = 0.5) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.max_shift, self.gain_db = max_shift, gain_db
        self.perturb, self.perturb_p = tuple(perturb), perturb_p
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int):
        idx = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        x = self.x[idx]
        if self.perturb:  # the recording first (rate, room, noise, line); where the word sits and how loud, last
            x = perturb_some(x, self.perturb, self.perturb_p, self.rng)
        return shift_and_gain(x, self.rng, self.max_shift, self.gain_db), self.y[idx]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))


def _check(x: np.ndarray, y: np.ndarray, n_classes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != N_SAMPLES or len(x) != len(y):
        raise UserError(f"{what}: a source model takes (n, {N_SAMPLES}) waveforms with n labels, "
                        f"got {x.shape} and {y.shape}; resample/pad the clips to 1 s at 16 kHz")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
        raise UserError(f"{what}: labels must be integers 0..{n_classes - 1}")
    return x, y.astype(np.int64)


def learning_rate(lr: float, schedule: str, epochs: int, batch_size: int, n_train: int):
    """A float for ``constant``; a Keras cosine decay over every step for ``cosine``."""
    if schedule == "constant":
        return lr
    if schedule != "cosine":
        raise UserError(f"unknown train.lr_schedule {schedule!r}; use constant or cosine")
    steps = max(1, epochs * math.ceil(n_train / batch_size))
    return keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps, alpha=0.05)


def pretrain_source(model: keras.Model, x_train: np.ndarray, y_train: np.ndarray,
                    x_val: np.ndarray, y_val: np.ndarray,
                    x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
                    epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                    augment: bool = True, max_shift: int = 1600, gain_db: float = 6.0,
                    lr_schedule: str = "constant", patience: int | None = None,
                    perturb: tuple[str, ...] = (), perturb_p: float = 0.5,
                    on_epoch: OnEpoch | None = None, verbose: int = 0) -> TrainResult:
    """Train a source AM with Adam; restore the best-val-loss epoch; test metrics if given.

    Raises :class:`~xferlab.errors.Diverged` when no epoch had a finite validation loss.

    ``max_shift`` is in samples (1600 = 0.1 s), ``gain_db`` the +- range of the gain.
    ``lr_schedule="cosine"`` anneals the rate to lr/20 over all steps: long runs keep
    improving at the end instead of oscillating around a constant-rate plateau.
    ``perturb``: names of :data:`xferlab.data.perturb.PERTURBATIONS`, each applied to a
    training example with probability ``perturb_p`` (with or without ``augment``).
    ``epochs=0`` trains nothing: see :func:`untrained`.
    """
    n_classes = int(model.output_shape[-1])
    x_train, y_train = _check(x_train, y_train, n_classes, "training data")
    val = _check(x_val, y_val, n_classes, "validation data")
    test = _check(x_test, y_test, n_classes, "test data") if x_test is not None else None
    if epochs < 0:
        raise UserError(f"train.epochs={epochs} is negative: use 0 (register the untrained network) or more")
    if epochs == 0:
        return untrained(model, val, test, batch_size)
    keras.utils.set_random_seed(seed)
    rate = learning_rate(lr, lr_schedule, epochs, batch_size, len(x_train))
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    if augment or perturb:
        train = AugmentedBatches(x_train, y_train, batch_size, seed, max_shift if augment else 0,
                                 gain_db if augment else 0.0, tuple(perturb), perturb_p)
    else:
        train = (x_train, y_train)
    return fit_and_report(model, train, val, test, epochs, batch_size, on_epoch, None, verbose,
                          what="the source model's validation loss", patience=patience)


def untrained(model: keras.Model, val: tuple[np.ndarray, np.ndarray],
              test: tuple[np.ndarray, np.ndarray] | None, batch_size: int) -> TrainResult:
    """The network as initialised, scored like a trained one (epoch 0, no history).

    Why: reprogramming an untrained source is the control that says what the source's
    pretraining contributes to V2S; the seeded initialisation is the model registered.
    """
    val_metrics, _ = evaluate_classifier(model, *val, batch_size, prefix="val")
    return scored(model, [], 0, val_metrics, test, batch_size)
