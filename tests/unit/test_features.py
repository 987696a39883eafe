"""Spectrogram vs scipy, framing, resampling, segmentation and the global z-score."""
import numpy as np
import pytest
import scipy.signal
import torch

from xferlab.data import features as ft
from xferlab.errors import UserError


def scipy_reference(x: np.ndarray) -> np.ndarray:
    """scipy.signal.stft with the documented conventions -> (T, F) magnitude."""
    _, _, z = scipy.signal.stft(x, fs=16000, window="hamming", nperseg=256, noverlap=128,
                                boundary="zeros", padded=False, scaling="spectrum")
    return np.abs(z).T


@pytest.mark.parametrize("n", [16000, 4000, 1000, 3001])
def test_spectrogram_matches_scipy(n):
    x = np.random.default_rng(n).standard_normal(n)
    ours = ft.spectrogram(torch.tensor(x, dtype=torch.float64)).numpy()
    ref = scipy_reference(x)
    assert ours.shape == ref.shape == (ft.n_frames(n), 129)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


def test_spectrogram_matches_shorttimefft_and_float32():
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    win = scipy.signal.get_window("hamming", 256)
    sft = scipy.signal.ShortTimeFFT(win, hop=128, fs=16000, scale_to="magnitude")
    ref = np.abs(sft.stft(x.astype(np.float64), p0=0, p1=ft.n_frames(16000))).T
    ours = ft.spectrogram(x)
    assert ours.dtype == torch.float32 and tuple(ours.shape) == (126, 129)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-3, atol=1e-5)


def test_spectrogram_batched_time_in_natural_order():
    x = np.zeros((2, 3, 16000), dtype=np.float32)
    x[1, 2, 12000:] = np.sin(np.arange(4000) * 0.3)  # energy only at the end of the clip
    s = ft.spectrogram(x, chunk=2)
    assert tuple(s.shape) == (2, 3, 126, 129)
    assert float(s[0].abs().sum()) == 0.0
    energy = s[1, 2].sum(-1)  # (T,)
    assert energy[:90].max() == 0 and energy[-10:].min() > 0


def test_resample_to_16k():
    t = np.arange(44100) / 44100
    y = ft.resample_to(np.sin(2 * np.pi * 440 * t), 44100)
    assert y.shape == (16000,) and y.dtype == np.float32
    ref = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y[100:-100] - ref[100:-100]).max() < 0.02
    same = np.ones(5)
    assert ft.resample_to(same, 16000).shape == (5,)
    with pytest.raises(UserError):
        ft.resample_to(same, 0)


def test_segment_pads_last_and_short():
    wave = np.arange(1, 26, dtype=np.float32)  # 25 samples, seg of 10 at sr=10
    segs = ft.segment(wave, 1.0, sr=10)
    assert segs.shape == (3, 10)
    np.testing.assert_array_equal(segs[1], np.arange(11, 21))
    np.testing.assert_array_equal(segs[2], [21, 22, 23, 24, 25, 0, 0, 0, 0, 0])
    assert ft.segment(wave[:4], 1.0, sr=10).shape == (1, 10)  # short clip kept, padded
    assert ft.segment(wave, 1.0, sr=10, min_tail=0.6).shape == (2, 10)  # 0.5 s tail dropped
    assert ft.segment(wave[:4], 1.0, sr=10, min_tail=0.6).shape == (1, 10)  # but never the only one
    with pytest.raises(UserError):
        ft.segment(wave, 0.0)


def test_segment_clips_inherits_label_and_group():
    clips = [np.ones(25), np.ones(10), np.ones(3)]
    x, y, g = ft.segment_clips(clips, [7, 8, 9], 1.0, sr=10)
    assert x.shape == (5, 10)
    assert y.tolist() == [7, 7, 7, 8, 9] and g.tolist() == [0, 0, 0, 1, 2]
    _, _, g2 = ft.segment_clips(clips, [7, 8, 9], 1.0, groups=[4, 4, 5], sr=10)
    assert g2.tolist() == [4, 4, 4, 4, 5]
    with pytest.raises(UserError):
        ft.segment_clips(clips, [1, 2], 1.0)


def test_global_zscore_uses_training_statistics():
    train = np.array([[1.0, 2.0], [3.0, 4.0]])
    z = ft.GlobalZScore.fit(train)
    assert z.mean == pytest.approx(2.5) and z.std == pytest.approx(np.sqrt(1.25))
    out = z(np.array([2.5, 2.5 + np.sqrt(1.25)]))
    np.testing.assert_allclose(out.numpy(), [0.0, 1.0], atol=1e-6)
    normed = z(train)
    assert float(normed.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(normed.std(unbiased=False)) == pytest.approx(1.0, abs=1e-6)
    assert ft.GlobalZScore.fit(np.ones(4)).std == 1.0  # constant input does not divide by 0


def test_compress_is_the_identity_or_the_floored_log_on_arrays_and_tensors():
    """``linear`` returns the paper's magnitude untouched; ``log`` is log(x + floor), the same
    on numpy (the feature cache) and torch (serving); a misspelt magnitude is refused."""
    x = np.array([0.0, 1e-6, 0.01, 0.2], dtype=np.float32)
    assert ft.compress(x, "linear") is x
    np.testing.assert_allclose(ft.compress(x, "log"), np.log(x.astype(np.float64) + ft.LOG_FLOOR), rtol=1e-6)
    np.testing.assert_allclose(ft.compress(torch.from_numpy(x), "log").numpy(), ft.compress(x, "log"), rtol=1e-6)
    assert ft.compress(x, "log")[0] == pytest.approx(np.log(ft.LOG_FLOOR))  # silence sits at the floor, finite
    with pytest.raises(UserError, match="unknown magnitude 'db'"):
        ft.compress(x, "db")
