"""The anti-transfer paper's input features: linear-magnitude STFT spectrograms of segments.

Why this module exists: the original computed spectrograms offline with scipy; we compute
the same numbers with ``torch.stft`` so that the computation is batched and runs on the
GPU when the waveforms are there. Conventions (identical to ``scipy.signal.stft`` with
``window="hamming", nperseg=256, noverlap=128, boundary="zeros", padded=False`` and its
default ``scaling="spectrum"``):

- 16 kHz mono input; a periodic Hamming window of 256 samples, hop 128, 256-point FFT
  -> 129 frequency bins (DC .. Nyquist);
- "centred" frames: the signal is zero-padded by 128 samples on both sides, frame p is
  centred on sample p * 128, so a clip of L samples gives 1 + L // 128 frames
  (1 s = 16000 samples -> 126 frames, as in the paper);
- magnitude scaled by 1 / sum(window) (scipy's "spectrum" scaling); the global z-score
  that follows removes the scale anyway;
- output layout (..., T, F) = (..., frames, 129) with time in natural order (the
  original's reversed time axis was an artefact of ``np.rot90``).

Also here: resampling to 16 kHz (readers call it), cutting clips into non-overlapping
fixed-length segments, the log-magnitude variant of the offline analogues (:func:`compress`)
and the global z-score fitted on the training split only.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from typing import TYPE_CHECKING, Sequence

import numpy as np

from xferlab.errors import UserError

if TYPE_CHECKING:  # torch is imported where it is used: the data layer loads no framework
    import torch

SAMPLE_RATE = 16000
N_FFT = 256
HOP = 128
N_BINS = N_FFT // 2 + 1  # 129
# What the network sees of the magnitude: "linear" is the paper's; "log" is log(|X| + LOG_FLOOR),
# an offline-analogue variant (see :func:`compress`). The first name is the default.
MAGNITUDES = ("linear", "log")
LOG_FLOOR = 1e-5  # about 84 dB under the loudest bin of the synthetic corpus (0.17)


def n_frames(n_samples: int, hop: int = HOP) -> int:
    """Frames produced for ``n_samples`` under the centred convention (16000 -> 126)."""
    return 1 + n_samples // hop


def resample_to(wave: np.ndarray, sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a 1-D (or (..., L)) waveform with a polyphase filter; no-op at target_sr.

    Readers of datasets with other rates (44.1 kHz Good-Sounds, 16 kHz elsewhere) call this
    so that every feature is computed at the paper's 16 kHz.
    """
    import scipy.signal

    if sr <= 0:
        raise UserError(f"sample rate {sr} is not positive: check the audio file header")
    wave = np.asarray(wave, dtype=np.float32)
    if sr == target_sr:
        return wave
    g = gcd(int(sr), int(target_sr))
    out = scipy.signal.resample_poly(wave, target_sr // g, int(sr) // g, axis=-1)
    return out.astype(np.float32)


def to_mono(wave: np.ndarray) -> np.ndarray:
    """Average channels of a (L, channels) array (soundfile's layout) into (L,)."""
    wave = np.asarray(wave, dtype=np.float32)
    return wave.mean(axis=1) if wave.ndim == 2 else wave


def spectrogram(wave: "np.ndarray | torch.Tensor", chunk: int = 512) -> "torch.Tensor":
    """Linear-magnitude STFT of 16 kHz waveforms: (..., L) -> (..., 1 + L // 128, 129).

    Runs on the device of ``wave`` (numpy input -> CPU). Batches are processed ``chunk``
    signals at a time to bound memory; the result is float32.
    """
    import torch

    x = torch.as_tensor(wave)
    if not x.is_floating_point():
        x = x.float()
    if x.dim() == 0 or x.shape[-1] == 0:
        raise UserError("empty waveform given to spectrogram: check the clip length")
    lead, length = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, length)  # (N, L)
    window = torch.hamming_window(N_FFT, periodic=True, dtype=flat.dtype, device=flat.device)
    parts = []
    for start in range(0, flat.shape[0], chunk):
        z = torch.stft(flat[start:start + chunk], N_FFT, HOP, window=window, center=True,
                       pad_mode="constant", return_complex=True)  # (n, F, T)
        parts.append(z.abs().transpose(1, 2) / window.sum())  # (n, T, F)
    out = torch.cat(parts, dim=0).to(torch.float32)
    return out.reshape(*lead, out.shape[-2], out.shape[-1])


def magnitude_of(config: "dict[str, object]") -> str:
    """The magnitude a registered VGG16 was trained on, from its config; configs written
    before the option have none and saw the paper's linear magnitude."""
    return str(config.get("magnitude", MAGNITUDES[0]))


def check_magnitude(magnitude: str) -> str:
    """``magnitude`` when it is one of :data:`MAGNITUDES`, else a one-line UserError."""
    if magnitude not in MAGNITUDES:
        raise UserError(f"unknown magnitude {magnitude!r}: use one of {', '.join(MAGNITUDES)}")
    return magnitude


def compress(x: "np.ndarray | torch.Tensor", magnitude: str) -> "np.ndarray | torch.Tensor":
    """The paper's linear magnitude as is, or its logarithm ``log(x + LOG_FLOOR)``.

    Why the option: a linear-magnitude spectrogram is heavy-tailed (on the synthetic corpus
    the median bin is 2e-5, the top 0.1 % above 0.04), so after the global z-score a few
    harmonics carry almost all the variance and the weak ones a voice's style lives in are
    near zero. The narrow VGG16s sat at the chance loss for their first epochs on it; on log
    inputs the same networks learn faster and leave it in epoch 1 more often, not always
    (measured: README, "What the synthetic data shows").
    Works on numpy arrays and torch tensors alike (serving uses it).
    """
    if check_magnitude(magnitude) == MAGNITUDES[0]:
        return x
    if isinstance(x, np.ndarray):
        return np.log(x + np.float32(LOG_FLOOR))
    return (x + LOG_FLOOR).log()


def n_segments(samples: int, seconds: float, sr: int = SAMPLE_RATE, min_tail: float = 0.0) -> int:
    """How many segments :func:`segment` cuts from a clip of ``samples`` samples. A cache
    writer counts them from file headers before decoding anything, to size its file."""
    if seconds <= 0:
        raise UserError(f"segment length {seconds} s must be positive: set data.segment_s > 0")
    if samples == 0:
        raise UserError("empty clip given to segment: drop zero-length files from the dataset")
    n_full, tail = divmod(int(samples), int(round(seconds * sr)))
    return n_full + int(tail > 0 and (tail >= min_tail * sr or n_full == 0))


def segment(wave: np.ndarray, seconds: float, sr: int = SAMPLE_RATE,
            min_tail: float = 0.0) -> np.ndarray:
    """Cut a clip into non-overlapping segments of ``seconds``: (L,) -> (n_seg, seg_len).

    The last partial segment (and a clip shorter than one segment) is zero-padded, as in
    the paper; a tail shorter than ``min_tail`` seconds is dropped unless it is the only
    segment, so that no clip disappears.
    """
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    seg_len = int(round(seconds * sr))
    out = np.zeros((n_segments(wave.shape[0], seconds, sr, min_tail), seg_len), dtype=np.float32)
    flat = out.reshape(-1)
    used = min(wave.shape[0], out.size)
    flat[:used] = wave[:used]
    return out


def segment_clips(clips: Sequence[np.ndarray], labels: Sequence[int], seconds: float,
                  groups: Sequence[int] | None = None, sr: int = SAMPLE_RATE,
                  min_tail: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment many clips; each segment inherits its clip's label and group id.

    ``groups`` defaults to the clip index, so that a split by group never puts segments
    of one clip on both sides. Returns (segments (N, seg_len), labels (N,), groups (N,)).
    """
    if len(clips) != len(labels) or (groups is not None and len(groups) != len(clips)):
        raise UserError("clips, labels and groups differ in length: pass one label/group per clip")
    group_ids = list(range(len(clips))) if groups is None else list(groups)
    segs, ys, gs = [], [], []
    for clip, y, g in zip(clips, labels, group_ids):
        s = segment(clip, seconds, sr, min_tail)
        segs.append(s)
        ys.append(np.full(len(s), y, dtype=np.int64))
        gs.append(np.full(len(s), g, dtype=np.int64))
    if not segs:
        raise UserError("no clips to segment: the dataset selection is empty")
    return np.concatenate(segs), np.concatenate(ys), np.concatenate(gs)


@dataclass(frozen=True)
class GlobalZScore:
    """One mean and one std over all values of the TRAINING features, applied to every split.

    Why global scalars: the paper normalises with the training set's global statistics;
    fitting on validation/test data would leak them into training.
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, train: "np.ndarray | torch.Tensor", eps: float = 1e-8) -> "GlobalZScore":
        import torch

        x = torch.as_tensor(train).double()
        if x.numel() == 0:
            raise UserError("cannot fit the z-score on an empty training split: check the split")
        std = float(x.std(unbiased=False))
        return cls(mean=float(x.mean()), std=std if std > eps else 1.0)

    def __call__(self, x: "np.ndarray | torch.Tensor") -> "torch.Tensor":
        import torch

        t = torch.as_tensor(x)
        return ((t - self.mean) / self.std).to(torch.float32)

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}
