"""The perturbations of xferlab.data.perturb do what their names say, reproducibly."""
from __future__ import annotations

import numpy as np
import pytest

from xferlab.data.noise import power, snr_db
from xferlab.data.perturb import PERTURBATIONS, SR, perturb_some, probe_sets

N = SR  # one second


def tone(freq: float, n: int = 4) -> np.ndarray:
    t = np.arange(N) / SR
    return np.stack([0.3 * np.sin(2 * np.pi * freq * t)] * n).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x))) * SR / len(x))


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_each_perturbation_is_seeded_keeps_shape_and_leaves_silence_silent(name):
    x = np.concatenate([tone(300.0, 2), np.zeros((1, N), np.float32)])
    a, b = (PERTURBATIONS[name](x, np.random.default_rng(3)) for _ in range(2))
    c = PERTURBATIONS[name](x, np.random.default_rng(4))
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:2], x[:2]) and not np.array_equal(a, c)
    assert not a[2].any()


def test_noise_lands_between_0_and_20_db_snr():
    x = tone(300.0, 8)
    out = PERTURBATIONS["noise"](x, np.random.default_rng(0))
    snrs = [snr_db(x[i].astype(np.float64), out[i]) for i in range(len(x))]
    assert all(-0.1 < s < 20.1 for s in snrs) and max(snrs) - min(snrs) > 2.0


def test_reverb_keeps_the_level_and_adds_a_decaying_tail():
    click = np.zeros((1, N), np.float32)
    click[0, 100] = 1.0
    out = PERTURBATIONS["reverb"](click, np.random.default_rng(0))[0]
    assert power(out) == pytest.approx(power(click[0]), rel=1e-4)
    tail = np.abs(out[101:]) ** 2
    early, late = tail[:1600].sum(), tail[3200:4800].sum()
    assert early > 0 and late < early  # energy after the click, falling off


def test_telephone_passes_the_voice_band_and_cuts_outside_it():
    inside, low, high = (PERTURBATIONS["telephone"](tone(f, 1), np.random.default_rng(0))[0] for f in (1000.0, 100.0, 6000.0))
    assert power(inside) > 0.5 * power(tone(1000.0, 1)[0])
    assert power(low) < 0.05 * power(inside) and power(high) < 0.01 * power(inside)
    spectrum = np.abs(np.fft.rfft(inside)) ** 2  # 1 Hz bins
    assert spectrum[4500:].sum() < 1e-5 * spectrum[300:3400].sum()  # no codec hiss above the line's band


def test_mu_law_keeps_a_sine_at_the_snr_of_8_bit_companding():
    from xferlab.data.perturb import mu_law

    y = 0.8 * np.sin(np.linspace(0, 40 * np.pi, 4000))
    coded = mu_law(y)
    assert 30.0 < snr_db(y, coded) < 45.0  # G.711: about 38 dB for a loud sine
    assert len(np.unique(np.round(coded, 9))) <= 255


def test_speed_moves_the_pitch_by_its_factor():
    out = PERTURBATIONS["speed"](tone(400.0, 8), np.random.default_rng(0))
    peaks = [peak_hz(row) for row in out]
    assert all(400 * 0.85 - 2 <= p <= 400 * 1.15 + 2 for p in peaks) and len(set(peaks)) > 1


def test_perturb_some_applies_each_with_its_probability():
    x = tone(300.0, 6)
    np.testing.assert_array_equal(perturb_some(x, ["noise", "speed"], 0.0, np.random.default_rng(0)), x)
    every = perturb_some(x, ["noise"], 1.0, np.random.default_rng(0))
    assert all(not np.array_equal(every[i], x[i]) for i in range(len(x)))
    for names, p in ((["noize"], 0.5), (["noise"], 1.5)):
        with pytest.raises(ValueError, match="names from"):
            perturb_some(x, names, p, np.random.default_rng(0))


def test_the_probe_hears_the_same_clips_every_time():
    x = tone(300.0, 2)
    first, second = dict(probe_sets(x)), dict(probe_sets(x))
    assert list(first) == list(PERTURBATIONS)
    for name in PERTURBATIONS:
        np.testing.assert_array_equal(first[name], second[name])
