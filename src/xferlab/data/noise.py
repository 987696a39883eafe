"""Synthetic background noise and mixing at an exact signal-to-noise ratio.

The noise kinds stand in for recorded background noise (MS-SNSD, Speech Commands'
``_background_noise_``) when none is available offline: white, pink and brown noise,
mains hum with harmonics, and babble made by overlapping other speech clips.

SNR convention: ``mix_at_snr(clean, noise, s)`` returns ``clean + a * noise`` with
``10 * log10(P(clean) / P(a * noise)) == s`` (P = mean square). The original anti-transfer
mixer took a square root of the power ratio, which halves the SNR in dB; not here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

SR = 16000
NOISE_KINDS = ("white", "pink", "brown", "babble", "hum")


def power(x: np.ndarray) -> float:
    """Mean square of a signal, in float64 so that float32 clips do not lose precision."""
    return float(np.mean(np.square(x, dtype=np.float64)))


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR in dB of ``noisy`` with respect to its clean component."""
    return 10.0 * np.log10(power(clean) / power(np.asarray(noisy, np.float64) - clean))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Add ``noise`` scaled so that the clean-to-noise power ratio is ``snr_db`` dB.

    The result has ``clean``'s dtype when it is floating point, float64 otherwise.
    """
    if clean.shape != noise.shape:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} differ in shape")
    p_clean, p_noise = power(clean), power(noise)
    if p_clean == 0.0 or p_noise == 0.0:
        raise ValueError("SNR is undefined when the clean signal or the noise is silent")
    scale = np.sqrt(p_clean / (p_noise * 10.0 ** (snr_db / 10.0)))
    mixed = clean.astype(np.float64) + scale * noise.astype(np.float64)
    return mixed.astype(clean.dtype if np.issubdtype(clean.dtype, np.floating) else np.float64)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.sqrt(max(power(x), 1e-20))).astype(np.float32)


def colored(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS.

    Shaped in the frequency domain; the slope is flattened below 20 Hz so that brown
    noise does not turn into a slow drift of the waveform.
    """
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SR), 20.0)
    spectrum *= freqs ** (-exponent / 2.0)
    spectrum[0] = 0.0
    return _unit(np.fft.irfft(spectrum, n))


def hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz with decaying random harmonics and a faint hiss, unit RMS."""
    t = np.arange(n) / SR
    base = rng.choice([50.0, 60.0]) * rng.uniform(0.995, 1.005)
    x = np.zeros(n)
    for h in range(1, 9):
        amp = rng.uniform(0.2, 1.0) / h ** rng.uniform(0.5, 1.5)
        x += amp * np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi))
    return _unit(_unit(x) + 0.05 * rng.standard_normal(n))


def babble(n: int, rng: np.random.Generator, talkers: Sequence[np.ndarray],
           n_talkers: tuple[int, int] = (3, 7)) -> np.ndarray:
    """Overlap several random stretches of other people's speech (cocktail-party noise).

    Each talker is normalised to unit power before summing so that no single voice
    dominates and the babble stays unintelligible.
    """
    if not talkers:
        raise ValueError("babble needs speech clips to overlap; none were given")
    out = np.zeros(n)
    for _ in range(int(rng.integers(n_talkers[0], n_talkers[1] + 1))):
        clip = talkers[int(rng.integers(len(talkers)))]
        reps = -(-(n + len(clip)) // len(clip))
        start = int(rng.integers(len(clip)))
        out += _unit(np.tile(clip, reps)[start: start + n])
    return _unit(out)


def make_noise(kind: str, n: int, rng: np.random.Generator,
               talkers: Sequence[np.ndarray] = ()) -> np.ndarray:
    """One unit-RMS noise signal of ``n`` samples of the given kind (see NOISE_KINDS)."""
    exponents = {"white": 0.0, "pink": 1.0, "brown": 2.0}
    if kind in exponents:
        return colored(n, rng, exponents[kind])
    if kind == "hum":
        return hum(n, rng)
    if kind == "babble":
        return babble(n, rng, talkers)
    raise ValueError(f"unknown noise kind {kind!r}; choose from {', '.join(NOISE_KINDS)}")
