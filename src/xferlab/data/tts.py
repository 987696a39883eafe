"""Wrappers around Debian's text-to-speech engines, returning 16 kHz float32 audio.

Three engines give the synthetic corpus its voices (measured facts in DATA.md):
espeak-ng is parametric and gives unlimited speakers through custom variant files in a
private copy of its data directory (``--path``); flite has four recorded voices (kal16,
awb, rms, slt) whose prosody is set with ``--setf``; festival has kal/ked diphones and
the slt HTS voice and runs as ONE long-lived batch process per worker, because a process
per word costs ~30x more. sox provides time-stretching and room reverb.

Vocal-tract (formant) scaling of the recorded voices: the engine is asked for F0/k and
rate/k, then the audio is resampled so that every frequency is multiplied by k; F0 and
duration come back to the requested values while the formants move by k. Voices that
ignore F0 requests (flite rms, festival slt HTS) get their F0 from that resampling alone,
so their formants move with it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.signal import resample_poly

from xferlab.errors import UserError

SR = 16000
ESPEAK_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
                  "en-gb-x-gbclan", "en-gb-x-gbcwmd")
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
# Median F0 (Hz) of each recorded voice at default settings, measured with librosa.yin.
NATIVE_F0 = {("flite", "kal16"): 102.0, ("flite", "awb"): 141.0, ("flite", "rms"): 103.0,
             ("flite", "slt"): 166.0, ("festival", "kal_diphone"): 105.0,
             ("festival", "ked_diphone"): 105.0, ("festival", "cmu_us_slt_arctic_hts"): 169.0}
FIXED_PITCH = {("flite", "rms"), ("festival", "cmu_us_slt_arctic_hts")}
APT_PACKAGES = {
    "espeak-ng": "espeak-ng", "flite": "flite", "sox": "sox libsox-fmt-base",
    "festival": "festival festlex-cmu festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
}
_FESTIVAL_DATA = {"festvox-kallpc16k": "voices/english/kal_diphone",
                  "festvox-kdlpc16k": "voices/english/ked_diphone",
                  "festvox-us-slt-hts": "voices/us/cmu_us_slt_arctic_hts",
                  "festlex-cmu": "dicts/cmu"}
_TEXT = re.compile(r"^[a-z' ]+$")


def require_tools(tools: Sequence[str] = tuple(APT_PACKAGES)) -> None:
    """Fail early, before any worker starts, when an engine or a festival voice is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        packages = " ".join(APT_PACKAGES[t] for t in missing)
        raise UserError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
                        f"run `apt-get install -y --no-install-recommends {packages}`")
    if "festival" in tools:
        root = Path("/usr/share/festival")
        absent = [pkg for pkg, sub in _FESTIVAL_DATA.items() if not (root / sub).exists()]
        if absent:
            raise UserError(f"festival data {', '.join(absent)} not installed: "
                            f"run `apt-get install -y --no-install-recommends {' '.join(absent)}`")


@dataclass(frozen=True)
class Utterance:
    """Everything an engine needs to say one text with one voice and one prosody."""

    engine: str  # espeak | flite | festival
    voice: str  # espeak accent, flite voice or festival voice name
    text: str
    f0: float  # requested median F0 in Hz
    f0_span: float  # F0 excursion in Hz (about 4 standard deviations)
    rate: float  # speaking-rate factor, 1 = engine default
    vtl: float = 1.0  # formant frequency scale (vocal-tract length proxy)
    formants: tuple[tuple[float, float], ...] = ()  # espeak: (freq factor, height %) of F1..
    extra: tuple[str, ...] = ()  # espeak: extra variant lines (klatt, flutter, breath...)


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a 16-bit mono PCM WAV held in memory; tolerates the unknown-length header
    espeak-ng writes to stdout."""
    pos = data.find(b"data", 12)
    if data[:4] != b"RIFF" or pos < 0:
        raise RuntimeError("TTS engine returned no WAV audio")
    sr = int.from_bytes(data[24:28], "little")
    pcm = np.frombuffer(data[pos + 8: pos + 8 + (len(data) - pos - 8) // 2 * 2], "<i2")
    return pcm.astype(np.float32) / 32768.0, sr


class Espeak:
    """espeak-ng with a per-utterance custom variant written into a private data dir."""

    def __init__(self, workdir: Path) -> None:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
        source = Path(out.split("Data at:")[-1].strip())
        self.root = workdir / "espeak"
        data = self.root / "espeak-ng-data"
        (data / "voices" / "!v").mkdir(parents=True, exist_ok=True)
        for entry in source.iterdir():
            if entry.name != "voices" and not (data / entry.name).exists():
                (data / entry.name).symlink_to(entry)
        self.variant = data / "voices" / "!v" / "xl"

    def synth(self, u: Utterance) -> tuple[np.ndarray, int]:
        lo = max(40.0, u.f0 - 0.45 * u.f0_span)  # measured: median ~ lo + 0.45 * span
        lines = ["language variant", "name xl", f"pitch {lo:.0f} {lo + u.f0_span:.0f}"]
        for i, (freq, height) in enumerate(u.formants or ((1.0, 100.0),) * 5, start=1):
            lines.append(f"formant {i} {100 * u.vtl * freq:.0f} {height:.0f} 100")
        self.variant.write_text("\n".join(lines + list(u.extra)) + "\n")
        wpm = int(np.clip(175 * u.rate, 80, 450))
        cmd = ["espeak-ng", f"--path={self.root}", "-v", f"{u.voice}+xl", "-s", str(wpm),
               "--stdout", u.text]
        return read_wav_bytes(subprocess.run(cmd, capture_output=True, check=True).stdout)


class Flite:
    """flite, one short process per utterance (its voices load in a few milliseconds)."""

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "flite.wav"

    def synth(self, u: Utterance) -> tuple[np.ndarray, int]:
        setf = {"int_f0_target_mean": u.f0, "int_f0_target_stddev": u.f0_span / 4,
                "duration_stretch": 1.0 / u.rate}
        cmd = ["flite", "-voice", u.voice, "-t", u.text, "-o", str(self.path)]
        for key, value in setf.items():
            cmd += ["--setf", f"{key}={value:.3f}"]
        self.path.unlink(missing_ok=True)
        subprocess.run(cmd, capture_output=True, check=True)
        return read_wav_bytes(self.path.read_bytes())


class Festival:
    """One festival process fed Scheme on stdin; a marker on stderr (unbuffered, unlike
    stdout) says a command has finished. Every prosody parameter is set on every call so
    that the output never depends on what the process said before."""

    _MARK = "@@xferlab-done@@"

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "festival.wav"
        self.proc: subprocess.Popen[str] | None = None
        self.voice = ""

    def _send(self, scheme: str) -> None:
        if self.proc is None:
            self.proc = subprocess.Popen(["festival", "--pipe"], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.write(f'{scheme}\n(format stderr "{self._MARK}\\n")\n')
        self.proc.stdin.flush()
        seen = []
        while self._MARK not in (line := self.proc.stderr.readline()):
            if not line:
                raise RuntimeError("festival exited: " + "".join(seen[-5:]))
            seen.append(line)

    def synth(self, u: Utterance) -> tuple[np.ndarray, int]:
        if u.voice != self.voice:
            self._send(f"(voice_{u.voice})\n(set! xl_hts_base hts_engine_params)")
            self.voice = u.voice
        if u.voice.endswith("_hts"):  # HTS ignores festival's F0 model; -r is its speed
            params = f"(set! hts_engine_params (append xl_hts_base '((\"-r\" {u.rate:.3f}))))"
        else:
            params = (f"(set! int_lr_params '((target_f0_mean {u.f0:.1f}) (target_f0_std "
                      f"{u.f0_span / 4:.1f}) (model_f0_mean 170) (model_f0_std 34)))\n"
                      f"(Parameter.set 'Duration_Stretch {1.0 / u.rate:.3f})")
        self.path.unlink(missing_ok=True)  # a failed command must not leave the last word behind
        self._send(f"{params}\n(utt.save.wave (SynthText \"{u.text}\") \"{self.path}\" 'riff)")
        if not self.path.exists():
            raise RuntimeError(f"festival {u.voice} failed to say {u.text!r}")
        return read_wav_bytes(self.path.read_bytes())

    def close(self) -> None:
        if self.proc is not None:
            self.proc.communicate(timeout=10)  # closing stdin ends the batch process
            self.proc = None


def scale_frequencies(x: np.ndarray, sr: int, k: float = 1.0) -> np.ndarray:
    """Resample ``x`` (rate ``sr``) to 16 kHz while multiplying every frequency by ``k``
    (and dividing the duration by ``k``); the ratio is rounded to keep the filter short."""
    ratio = Fraction(SR / (sr * k)).limit_denominator(64)
    if ratio == 1:
        return x.astype(np.float32)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


class Synthesizer:
    """The three engines of one worker process, sharing a private scratch directory."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.engines = {"espeak": Espeak(workdir), "flite": Flite(workdir),
                        "festival": Festival(workdir)}

    def say(self, u: Utterance) -> np.ndarray:
        """Synthesise ``u`` at 16 kHz, float32, with its F0, rate and formant scale."""
        if not _TEXT.match(u.text):
            raise ValueError(f"unsupported text {u.text!r}: lower-case words only")
        if u.engine == "espeak":
            k = 1.0  # espeak scales formants natively in the variant file
        elif (u.engine, u.voice) in FIXED_PITCH:
            k = float(np.clip(u.f0 / NATIVE_F0[(u.engine, u.voice)], 0.7, 1.4))
        else:
            k = u.vtl
        asked = replace(u, f0=u.f0 / k, f0_span=u.f0_span / k, rate=u.rate / k)
        x, sr = self.engines[u.engine].synth(asked)
        if len(x) < sr // 20:
            raise RuntimeError(f"{u.engine} {u.voice} returned no audio for {u.text!r}")
        return scale_frequencies(x, sr, k)

    def close(self) -> None:
        festival = self.engines["festival"]
        assert isinstance(festival, Festival)
        festival.close()


def sox(x: np.ndarray, effects: Sequence[str]) -> np.ndarray:
    """Run 16 kHz float32 audio through a sox effects chain (repeatable mode, no dither)."""
    raw = ["-t", "f32", "-r", str(SR), "-c", "1"]
    cmd = ["sox", "-R", "-D", *raw, "-", *raw, "-", *effects]
    out = subprocess.run(cmd, input=np.ascontiguousarray(x, "<f4").tobytes(),
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, "<f4").astype(np.float32)


def trim_silence(x: np.ndarray, top_db: float = 40.0, frame: int = 160) -> np.ndarray:
    """Cut leading and trailing frames more than ``top_db`` below the loudest frame,
    keeping one frame of margin, so that the word can be placed anywhere in the second."""
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -top_db)
    start, stop = max(loud[0] - 1, 0) * frame, min(loud[-1] + 2, n) * frame
    return x[start:stop]


def fade(x: np.ndarray, n: int = 80) -> np.ndarray:
    """Raised-cosine ramps of ``n`` samples at both ends: engines start and stop abruptly,
    and a click at the cut would be a cue that real recordings never give."""
    n = min(n, len(x) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n, dtype=np.float32))
    x = x.copy()
    x[:n] *= ramp
    x[len(x) - n:] *= ramp[::-1]
    return x
