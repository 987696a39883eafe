"""Noise kinds and SNR mixing: the mixer must hit the requested SNR exactly (the original
anti-transfer mixer's square root halved it in dB)."""
from __future__ import annotations

import numpy as np
import pytest

from xferlab.data.noise import NOISE_KINDS, SR, make_noise, mix_at_snr, power, snr_db


@pytest.mark.parametrize("target", [-5.0, 0.0, 3.5, 10.0, 20.0, 40.0])
def test_mix_at_snr_is_exact(target: float) -> None:
    rng = np.random.default_rng(int(target * 10) + 100)
    clean = rng.standard_normal(SR) * rng.uniform(0.01, 1.0)
    noise = rng.standard_normal(SR) * rng.uniform(0.01, 3.0) + 0.1 * np.sin(np.arange(SR))
    mixed = mix_at_snr(clean, noise, target)
    assert snr_db(clean, mixed) == pytest.approx(target, abs=1e-9)
    # the definition itself: P_clean / P_noise_scaled == 10 ** (snr / 10)
    assert power(clean) / power(mixed - clean) == pytest.approx(10 ** (target / 10), rel=1e-9)


def test_twenty_db_means_a_hundredfold_power_ratio() -> None:
    """The halved-SNR bug would give a ratio of 10 here."""
    rng = np.random.default_rng(1)
    clean, noise = rng.standard_normal(4000), rng.standard_normal(4000)
    added = mix_at_snr(clean, noise, 20.0) - clean
    assert power(clean) / power(added) == pytest.approx(100.0)


def test_float32_in_float32_out() -> None:
    rng = np.random.default_rng(2)
    clean = rng.standard_normal(SR).astype(np.float32)
    mixed = mix_at_snr(clean, make_noise("pink", SR, rng), 10.0)
    assert mixed.dtype == np.float32
    assert snr_db(clean, mixed) == pytest.approx(10.0, abs=1e-3)


def test_mix_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        mix_at_snr(np.ones(10), np.ones(11), 0.0)
    with pytest.raises(ValueError, match="silent"):
        mix_at_snr(np.ones(10), np.zeros(10), 0.0)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_kinds_are_unit_rms_and_seeded(kind: str) -> None:
    talkers = [np.sin(np.arange(9000) * 0.05 * (i + 1)).astype(np.float32) for i in range(4)]
    a = make_noise(kind, SR, np.random.default_rng(3), talkers)
    b = make_noise(kind, SR, np.random.default_rng(3), talkers)
    assert a.shape == (SR,) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert power(a) == pytest.approx(1.0, rel=1e-3)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kind,slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_colored_noise_spectral_slope(kind: str, slope: float) -> None:
    x = make_noise(kind, 8 * SR, np.random.default_rng(4))
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    band = (freqs > 100) & (freqs < 6000)
    fitted = np.polyfit(np.log10(freqs[band]), np.log10(spectrum[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.15)


def test_hum_peaks_at_mains_frequency() -> None:
    x = make_noise("hum", SR, np.random.default_rng(5))
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    peak = freqs[np.argmax(np.abs(np.fft.rfft(x)))]
    assert any(abs(peak - h * base) < 3 for base in (50, 60) for h in range(1, 9))


def test_babble_needs_speech_and_unknown_kind_fails() -> None:
    with pytest.raises(ValueError, match="babble"):
        make_noise("babble", SR, np.random.default_rng(6))
    with pytest.raises(ValueError, match="unknown noise kind"):
        make_noise("rain", SR, np.random.default_rng(6))
