"""The kapre mel front end against librosa (kapre's own parity tests do the same).

The filterbank is librosa's by construction (kapre calls ``librosa.filters.mel``), so
what this checks independently is the STFT (``tf.signal.stft``: periodic Hann, no
centring, zero padding at the end only), the magnitude, the decibel conversion (10 log10
of a magnitude, floor and 80 dB range per example) and the per-utterance normalisation.

Measured agreement with the settings below: mel magnitudes within 1.3e-5 relative per
bin (1.7e-7 of the example's maximum), decibels within 6e-5 dB, normalised values within
1e-5: float32 FFT round-off against librosa's float64. The tolerances sit about 10x
above that, and far below the ~18 dB error of librosa's default ``center=True`` framing
(checked below too, as the reason for the reference's framing).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")
librosa = pytest.importorskip("librosa")

from xferlab.v2s import frontend as fe  # noqa: E402

MEL_RTOL = 1e-4  # per bin, relative
MEL_ATOL_OF_MAX = 1e-6  # absolute, as a fraction of the example's largest mel magnitude
DB_ATOL = 1e-3  # dB
NORM_ATOL = 1e-4  # in standard deviations


def signals() -> np.ndarray:
    """(2, 16000) float32, deterministic.

    0: a 100 Hz -> 3 kHz chirp plus white noise at speech loudness (no dB clipping);
    1: the same, 1000x louder with a silent middle third, so its range exceeds 80 dB and
       kapre's per-example clipping is exercised (a batch-wide maximum would clip 0 too).
    """
    t = np.arange(fe.N_SAMPLES) / fe.SAMPLE_RATE
    chirp = 0.5 * np.sin(2 * np.pi * (100 * t + (3000 - 100) / 2 * t ** 2))
    x0 = chirp + 0.05 * np.random.default_rng(0).standard_normal(fe.N_SAMPLES)
    x1 = 1000 * x0
    x1[fe.N_SAMPLES // 3: 2 * fe.N_SAMPLES // 3] = 0.0
    return np.stack([x0, x1]).astype("float32")


def reference_mel(x: np.ndarray, center: bool = False) -> np.ndarray:
    """librosa mel magnitudes (T, 80) of one signal, framed as kapre frames it.

    ``center=False`` on the signal zero-padded at its end to (N_FRAMES - 1) * HOP + N_FFT
    samples reproduces ``pad_end=True``; ``center=True`` is librosa's default framing.
    """
    y = x.astype(np.float64)
    if not center:
        y = np.pad(y, (0, (fe.N_FRAMES - 1) * fe.HOP + fe.N_FFT - len(y)))
    spec = np.abs(librosa.stft(y, n_fft=fe.N_FFT, hop_length=fe.HOP, window="hann", center=center))
    bank = librosa.filters.mel(sr=fe.SAMPLE_RATE, n_fft=fe.N_FFT, n_mels=fe.N_MELS, fmin=fe.F_MIN,
                               fmax=fe.F_MAX, htk=False, norm="slaney")  # (80, 513)
    return (bank @ spec[:, :fe.N_FRAMES]).T  # (T, 80)


def reference_db(mel: np.ndarray) -> np.ndarray:
    """kapre's MagnitudeToDecibel in librosa terms: power_to_db (10 log10) of the magnitude."""
    return librosa.power_to_db(mel, ref=fe.REF, amin=fe.AMIN, top_db=fe.TOP_DB)


@pytest.fixture(scope="module")
def kapre_out() -> dict[str, np.ndarray]:
    """The front end's ``mel``, ``mel_db`` and ``mel_norm`` layers on signals(), (2, T, 80)."""
    wave = keras.Input((fe.N_SAMPLES,))
    model = keras.Model(wave, fe.mel_frontend(wave))
    names = ("mel", "mel_db", "mel_norm")
    taps = keras.Model(wave, [model.get_layer(n).output for n in names])
    outs = taps(signals(), training=False)
    assert all(tuple(o.shape) == (2, fe.N_FRAMES, fe.N_MELS, 1) for o in outs)
    return {n: np.asarray(o)[..., 0] for n, o in zip(names, outs)}


@pytest.mark.parametrize("i", [0, 1])
def test_mel_magnitudes_match_librosa(kapre_out: dict[str, Any], i: int):
    ref = reference_mel(signals()[i])
    np.testing.assert_allclose(kapre_out["mel"][i], ref, rtol=MEL_RTOL, atol=MEL_ATOL_OF_MAX * ref.max())


@pytest.mark.parametrize("i", [0, 1])
def test_decibels_match_librosa_per_example(kapre_out: dict[str, Any], i: int):
    ref = reference_db(reference_mel(signals()[i]))
    clipped = np.isclose(ref.min(), ref.max() - fe.TOP_DB)
    assert clipped == (i == 1)  # the 80 dB range is exercised on example 1 only
    np.testing.assert_allclose(kapre_out["mel_db"][i], ref, rtol=0, atol=DB_ATOL)


@pytest.mark.parametrize("i", [0, 1])
def test_per_utterance_norm_is_a_zscore_of_the_example(kapre_out: dict[str, Any], i: int):
    """(dB - mean) / sqrt(var + eps) over the whole (T, 80) example, eps = 1e-6."""
    db = reference_db(reference_mel(signals()[i]))
    ref = (db - db.mean()) / np.sqrt(db.var() + 1e-6)
    np.testing.assert_allclose(kapre_out["mel_norm"][i], ref, rtol=0, atol=NORM_ATOL)


def test_librosa_default_centring_is_not_what_kapre_does(kapre_out: dict[str, Any]):
    """Why the reference frames with ``center=False``: the default is off by many dB."""
    centred = reference_db(reference_mel(signals()[0], center=True))
    assert np.abs(kapre_out["mel_db"][0] - centred).max() > 1.0
