"""The acoustic models' mel front end (kapre) and per-utterance normalisation.

The source AM owns its front end, so that reprogramming perturbs raw waveforms and the
gradient reaches theta through the STFT. Settings follow V2S.md: n_fft 1024, hop 128,
80 mel bands between 40 Hz and 8 kHz, magnitude (power 1) in decibels, frozen
filterbank (kapre keeps it as a constant, not a weight). ``pad_end=True`` gives
ceil(16000 / 128) = 125 frames, like the 'same' padding of the original kapre 0.1 layer.

Reference (tests/unit/test_frontend_librosa.py): ``mel_db`` equals librosa's
``power_to_db(melspectrogram(power=1, center=False), ref=REF, amin=AMIN, top_db=TOP_DB)``
of the signal zero-padded at its end to (N_FRAMES - 1) * HOP + N_FFT samples, per example,
to float32 round-off. Two things differ from librosa's defaults: no centring (librosa's
``center=True`` pads both ends and shifts every frame by N_FFT / 2), and the decibels are
10 log10 of a *magnitude* (kapre's convention, i.e. ``power_to_db`` not ``amplitude_to_db``).

Per-utterance normalisation is essential for reprogramming (measured: without it V2S
stays at chance on Coffee/GunPoint), because a tiny target series plus theta has a
loudness far from the speech the AM saw; normalising each spectrogram to zero mean and
unit variance removes that mismatch.
"""
from __future__ import annotations

import keras
from kapre.time_frequency import STFT, ApplyFilterbank, Magnitude, MagnitudeToDecibel

SAMPLE_RATE = 16000
N_SAMPLES = 16000  # the AM's input length: 1 s at 16 kHz
N_FFT = 1024
HOP = 128
N_MELS = 80
F_MIN = 40.0
F_MAX = 8000.0
N_FRAMES = -(-N_SAMPLES // HOP)  # 125, with pad_end=True
REF = 1.0  # 0 dB; a mel magnitude, so 10 log10 (kapre's MagnitudeToDecibel)
AMIN = 1e-5  # floor before the log: -50 dB
TOP_DB = 80.0  # per-example dynamic range below that example's maximum


@keras.saving.register_keras_serializable(package="xferlab")
class PerUtteranceNorm(keras.layers.Layer):
    """(x - mean) / std over all non-batch axes of each example.

    Uses sqrt(var + eps) rather than std + eps so the gradient stays finite on a
    constant spectrogram (e.g. an all-zero input clipped at the dB floor).
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        axes = tuple(range(1, len(x.shape)))
        mean = keras.ops.mean(x, axis=axes, keepdims=True)
        var = keras.ops.var(x, axis=axes, keepdims=True)
        return (x - mean) / keras.ops.sqrt(var + self.epsilon)

    def get_config(self) -> dict:
        return {**super().get_config(), "epsilon": self.epsilon}


def mel_frontend(wave, normalise: bool = True):
    """Raw waveform (b, 16000) -> normalised log-mel (b, 125, 80, 1), as flat layers.

    The layers are added to the caller's functional graph one by one (not as a nested
    Sequential) so analysis code can tap ``mel_db`` and ``mel_norm`` by name.
    """
    x = keras.layers.Reshape((N_SAMPLES, 1), name="wave")(wave)  # (b, 16000, 1)
    x = STFT(n_fft=N_FFT, hop_length=HOP, pad_end=True, input_data_format="channels_last",
             output_data_format="channels_last", name="stft")(x)  # (b, 125, 513, 1) complex
    x = Magnitude(name="magnitude")(x)
    fb = {"sample_rate": SAMPLE_RATE, "n_freq": N_FFT // 2 + 1, "n_mels": N_MELS,
          "f_min": F_MIN, "f_max": F_MAX, "htk": False, "norm": "slaney"}
    x = ApplyFilterbank(type="mel", filterbank_kwargs=fb, data_format="channels_last",
                        name="mel")(x)  # (b, 125, 80, 1)
    x = MagnitudeToDecibel(ref_value=REF, amin=AMIN, dynamic_range=TOP_DB,
                           name="mel_db")(x)  # 10 log10(max(magnitude, AMIN) / REF), 80 dB range
    if normalise:
        x = PerUtteranceNorm(name="mel_norm")(x)
    return x  # (b, 125, 80, 1)
