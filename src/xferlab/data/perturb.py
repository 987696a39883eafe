"""What real recordings bring that the synthetic voices lack, as perturbations of 16 kHz clips.

A source model is worth reprogramming when it hears speech it was not trained on: other
rooms, noise, telephone bands and codecs, other speaking rates and vocal tracts. Each
perturbation here maps a batch ``(n, samples)`` to a perturbed copy, drawing its randomness
from the generator it is given, so a seeded run reproduces it. They serve twice:

- as training augmentation of a source model (``train.perturb`` of ``pretrain_v2s``), each
  applied to an example with probability ``train.perturb_p``;
- as a robustness probe: the held-out test split under each perturbation alone, logged as
  ``test_<name>_accuracy`` beside the clean ``test_accuracy``.

The probe's draws come from a fixed seed, so every source model with the same test split
is scored on the same perturbed clips.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from xferlab.data.audio import fit_length
from xferlab.data.noise import make_noise, mix_at_snr, power

SR = 16000
Perturbation = Callable[[np.ndarray, np.random.Generator], np.ndarray]
PROBE_SEED = 20261206  # the robustness probe's draws: the same perturbed clips for every model


def _rows(x: np.ndarray, rng: np.random.Generator, one: Callable[[np.ndarray, np.random.Generator], np.ndarray]
          ) -> np.ndarray:
    out = np.array(x, dtype=np.float32, copy=True)
    for i in range(len(out)):
        if power(out[i]) > 0.0:  # a silent clip stays silent (SNR and level are undefined)
            out[i] = one(out[i], rng)
    return out


def noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White, pink, brown noise or mains hum at an SNR drawn from 0 to 20 dB."""
    def one(row: np.ndarray, g: np.random.Generator) -> np.ndarray:
        kind = str(g.choice(["white", "pink", "brown", "hum"]))
        return mix_at_snr(row, make_noise(kind, len(row), g), float(g.uniform(0.0, 20.0)))
    return _rows(x, rng, one)


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A simulated room: the direct sound plus an exponentially decaying noise tail
    (RT60 0.2 to 0.8 s, the tail's energy 0.3 to 3x the direct path's), level kept."""
    from scipy.signal import fftconvolve

    def one(row: np.ndarray, g: np.random.Generator) -> np.ndarray:
        rt60 = g.uniform(0.2, 0.8)
        t = np.arange(int(rt60 * SR)) / SR
        tail = g.standard_normal(len(t)) * np.exp(-6.908 * t / rt60)  # -60 dB at rt60
        tail[0] = 0.0
        ir = np.sqrt(g.uniform(0.3, 3.0) / np.sum(tail ** 2)) * tail
        ir[0] = 1.0
        wet = fftconvolve(row, ir)[:len(row)]
        return (wet * np.sqrt(power(row) / max(power(wet), 1e-20))).astype(np.float32)
    return _rows(x, rng, one)


def telephone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A narrow-band line: the clip at 8 kHz, band-passed (8th-order Butterworth) from
    200-400 Hz to 3000-3700 Hz (the telephone band, 300 to 3400 Hz, with the spread of real
    handsets), 8-bit mu-law companded as G.711 codes it, and back at 16 kHz: nothing above
    4 kHz, quantisation noise included."""
    from scipy.signal import butter, resample_poly, sosfilt

    def one(row: np.ndarray, g: np.random.Generator) -> np.ndarray:
        edges = [g.uniform(200.0, 400.0), g.uniform(3000.0, 3700.0)]
        band = sosfilt(butter(4, edges, btype="bandpass", fs=SR // 2, output="sos"), resample_poly(row, 1, 2))
        peak = float(np.max(np.abs(band))) or 1.0
        coded = mu_law(band / peak)
        return fit_length(resample_poly(coded * peak, 2, 1), len(row)).astype(np.float32)
    return _rows(x, rng, one)


def mu_law(y: np.ndarray, mu: float = 255.0, levels: int = 127) -> np.ndarray:
    """Compress ``y`` in [-1, 1], quantise to 2 * levels + 1 codes, expand again."""
    code = np.round(np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu) * levels) / levels
    return np.sign(code) * np.expm1(np.abs(code) * np.log1p(mu)) / mu


def speed(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Speed perturbation by a factor of 0.85 to 1.15 in steps of 0.01 (rate, pitch and
    formants move together, as a shorter or longer vocal tract speaking faster or slower
    would); polyphase resampling (anti-aliased), the result centred in the clip's length."""
    from scipy.signal import resample_poly

    def one(row: np.ndarray, g: np.random.Generator) -> np.ndarray:
        down = int(g.integers(85, 116))  # factor down / 100
        out = resample_poly(row, 100, down)
        return centred(out, len(row)).astype(np.float32)
    return _rows(x, rng, one)


def centred(x: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad ``x`` to ``n`` samples around its centre (a slowed word keeps its middle)."""
    if len(x) >= n:
        start = (len(x) - n) // 2
        return x[start:start + n]
    before = (n - len(x)) // 2
    return np.pad(x, (before, n - len(x) - before))


# The registry of perturbations: spec values, metric names and the probe all read it.
# Their order is the order a recording meets them in, and the order they are applied in: the
# talker's rate, the room, the noise in the room, the line.
PERTURBATIONS: dict[str, Perturbation] = {"speed": speed, "reverb": reverb, "noise": noise,
                                          "telephone": telephone}


def perturb_some(x: np.ndarray, names: list[str] | tuple[str, ...], p: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Each named perturbation applied to each example with probability ``p``, in the
    registry's order (an example may get several)."""
    unknown = sorted(set(names) - set(PERTURBATIONS))
    if unknown or not 0.0 <= p <= 1.0:
        raise ValueError(f"perturbations {unknown} / p={p}: names from {list(PERTURBATIONS)}, p in [0, 1]")
    out = np.array(x, dtype=np.float32, copy=True)
    for name in PERTURBATIONS:
        if name in names:
            chosen = np.flatnonzero(rng.random(len(out)) < p)
            if len(chosen):
                out[chosen] = PERTURBATIONS[name](out[chosen], rng)
    return out


def probe_sets(x: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """The robustness probe's inputs, one at a time (each is a copy of ``x``): ``x`` under
    each perturbation alone, fixed draws."""
    for name, fn in PERTURBATIONS.items():
        yield name, fn(x, np.random.default_rng(PROBE_SEED))
