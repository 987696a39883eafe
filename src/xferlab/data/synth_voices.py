"""Speakers, speaking styles, the clip plan and per-clip rendering of the synthetic corpus.

A speaker is a TTS voice plus fixed settings (F0, F0 span, rate, formant scale, voice
quality) and a recording channel (microphone band, EQ, room). A style is a prosody
change relative to the speaker (pitch level and range, rate, spectral tilt, breath,
tension) loosely after the acoustics of acted emotions. Every utterance jitters the
speaker (F0 +-8 %, rate +-10 %, formants +-2 %) so that identity is not a template.
Loudness is drawn in the plan independently of style, because a style classifier would
otherwise read the level.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from xferlab.data.noise import NOISE_KINDS, colored, make_noise, mix_at_snr, power
from xferlab.data.tts import (ESPEAK_ACCENTS, FIXED_PITCH, NATIVE_F0, SR, Synthesizer,
                              Utterance, fade, sox, trim_silence)

WORDS = ("backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
         "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on",
         "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up",
         "visual", "wow", "yes", "zero")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
LABELS = WORDS + (SILENCE, UNKNOWN)
# Other English words for _unknown_: no command words and none of their homophones.
UNKNOWN_WORDS = tuple("""apple water table chair green music window paper river garden
orange yellow purple money people little chicken bottle castle pencil rabbit monkey winter
summer morning evening kitchen button silver golden basket candle letter number father mother
sister brother doctor teacher market station planet rocket guitar piano camera coffee butter
cookie banana lemon tomato potato carrot pepper salad dinner lunch breakfast ocean island
forest mountain valley desert thunder lightning rainbow cloud snow storm fire stone metal
glass wood light dark fast slow small large cold warm soft hard quick quiet loud clean dirty
empty open start begin finish jump walk swim sing dance read sleep laugh smile friend family
city street village bridge road train plane boat horse sheep mouse tiger lion zebra""".split())
MAX_WORD = SR - SR // 20  # longest word (samples) before it is time-compressed to fit


@dataclass(frozen=True)
class Profile:
    """Corpus size and noise policy; every profile defines the full label vocabulary."""

    n_speakers: int
    styles_per_word: int  # utterances per (speaker, word), each in another style
    unknown_per_speaker: int
    silence_per_speaker: int
    noisy_fraction: float  # share of speech clips mixed with background noise
    snrs: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0)
    words: tuple[str, ...] = WORDS


@dataclass(frozen=True)
class Style:
    """Prosody of a speaking style relative to the speaker's neutral voice."""

    f0: float  # F0 level factor
    span: float  # F0 range factor
    rate: float  # speaking-rate factor
    treble_db: float  # spectral tilt: high shelf at 2.5 kHz
    breath: float  # aspiration noise relative to the voice
    tension: float  # soft saturation (pressed, tense voice)

    def scaled(self, strength: float) -> "Style":
        """This style ``strength`` times as far from the neutral voice: factors raised to
        the power, dB and voice-quality amounts multiplied (0 = neutral, 1 = as defined)."""
        return Style(self.f0 ** strength, self.span ** strength, self.rate ** strength,
                     self.treble_db * strength, self.breath * strength, self.tension * strength)


STYLES = {"neutral": Style(1.00, 1.0, 1.00, 0.0, 0.00, 0.0),
          "happy": Style(1.15, 1.6, 1.08, 2.0, 0.00, 0.0),
          "sad": Style(0.90, 0.55, 0.82, -4.0, 0.25, 0.0),
          "angry": Style(1.08, 1.3, 1.12, 4.0, 0.00, 0.3)}


@dataclass(frozen=True)
class Channel:
    """Microphone and room of a speaker's recordings."""

    highpass: float  # Hz
    lowpass: float  # Hz, 0 = full band
    eq: tuple[tuple[float, float, float], ...]  # peaking filters: (Hz, dB, Q)
    reverb: tuple[float, ...]  # sox reverb arguments; () = dry room


@dataclass(frozen=True)
class Speaker:
    id: str
    engine: str
    voice: str
    sex: str  # m | f | c (child-like)
    f0: float
    f0_span: float
    rate: float
    vtl: float
    formants: tuple[tuple[float, float], ...]
    extra: tuple[str, ...]
    channel: Channel


@dataclass(frozen=True)
class ClipTask:
    index: int
    word: str  # label
    text: str  # what is said ("" for silence)
    speaker: Speaker
    style: str  # a STYLES key, "none" for silence
    noise: str  # a NOISE_KINDS entry or "none"
    snr_db: float  # NaN when clean
    gain_db: float  # speech RMS in dBFS (silence: noise RMS)
    seed: int
    style_strength: float = 1.0  # how far the style moves the voice (Style.scaled)


# Interleaved so that any prefix mixes engines; espeak is half because it is the most
# variable, the recorded voices the most natural.
VOICE_CYCLE = (("espeak", ""), ("flite", "slt"), ("festival", "kal_diphone"), ("espeak", ""),
               ("flite", "awb"), ("festival", "cmu_us_slt_arctic_hts"), ("espeak", ""),
               ("flite", "rms"), ("espeak", ""), ("festival", "ked_diphone"), ("espeak", ""),
               ("flite", "kal16"), ("espeak", ""), ("espeak", ""))


def _channel_sample(rng: np.random.Generator) -> Channel:
    eq = tuple((float(np.exp(rng.uniform(np.log(200), np.log(5000)))), float(rng.uniform(-8, 8)),
                float(rng.uniform(0.7, 2.0))) for _ in range(int(rng.integers(1, 4))))
    reverb = (float(rng.uniform(10, 80)), float(rng.uniform(20, 90)), float(rng.uniform(20, 100)),
              100.0, float(rng.uniform(0, 25)), float(rng.uniform(-10, -2)))
    return Channel(highpass=float(np.exp(rng.uniform(np.log(40), np.log(300)))),
                   lowpass=float(rng.uniform(3400, 7800)) if rng.random() < 0.5 else 0.0,
                   eq=eq, reverb=reverb if rng.random() < 0.5 else ())


def _espeak_voice(rng: np.random.Generator) -> dict:
    """A parametric espeak-ng speaker: accent, sex-typical F0 and formant scale, per-formant
    offsets and levels, voice source (klatt), flutter, roughness, sometimes breathiness."""
    sex = str(rng.choice(["m", "f", "c"], p=[0.45, 0.45, 0.1]))
    f0_lim, vtl_lim = {"m": ((85, 145), (0.88, 1.02)), "f": ((160, 250), (1.05, 1.18)),
                       "c": ((230, 320), (1.18, 1.30))}[sex]
    extra = (f"flutter {rng.integers(0, 40)}", f"roughness {rng.integers(0, 5)}")
    if rng.random() < 0.5:
        extra += (f"klatt {rng.integers(1, 6)}",)
    if rng.random() < 0.25:
        extra += ("breath " + " ".join(str(v) for v in rng.integers(10, 60, 6)),)
    formants = tuple((float(rng.uniform(0.95, 1.05)), float(rng.uniform(70, 130))) for _ in range(5))
    return {"voice": str(rng.choice(ESPEAK_ACCENTS)), "sex": sex, "f0": rng.uniform(*f0_lim),
            "vtl": rng.uniform(*vtl_lim), "extra": extra, "formants": formants}


def _recorded_voice(engine: str, voice: str, rng: np.random.Generator) -> dict:
    """A new speaker from a recorded voice: F0 moved by up to -20/+30 % and the formants
    by a correlated, smaller factor (voices that ignore F0 requests move both together)."""
    fixed = (engine, voice) in FIXED_PITCH
    sex = "f" if "slt" in voice else "m"
    factor = rng.uniform(0.85, 1.2) if sex == "f" or fixed else rng.uniform(0.8, 1.3)
    vtl = factor if fixed else np.clip(factor ** 0.35 * rng.uniform(0.95, 1.05), 0.88, 1.18)
    return {"voice": voice, "sex": sex, "f0": NATIVE_F0[(engine, voice)] * factor, "vtl": vtl}


def sample_speaker(index: int, rng: np.random.Generator) -> Speaker:
    """Speaker ``index``: its engine/voice comes from VOICE_CYCLE, the rest from ``rng``."""
    engine, voice = VOICE_CYCLE[index % len(VOICE_CYCLE)]
    v = _espeak_voice(rng) if engine == "espeak" else _recorded_voice(engine, voice, rng)
    return Speaker(id=f"spk{index:03d}", engine=engine, voice=v["voice"], sex=v["sex"],
                   f0=float(v["f0"]), f0_span=float(v["f0"] * rng.uniform(0.2, 0.6)),
                   rate=float(rng.uniform(0.82, 1.2)), vtl=float(v["vtl"]),
                   formants=v.get("formants", ()), extra=v.get("extra", ()),
                   channel=_channel_sample(rng))


def plan(profile: Profile, seed: int, style_strength: float = 1.0) -> list[ClipTask]:
    """Every clip of the corpus, speaker by speaker; styles rotate over words so that each
    speaker uses every style and each word is said in every style. ``style_strength``
    changes only how the styles sound, not the plan's draws: the same clips are made."""
    rng = np.random.default_rng(seed)
    speakers = [sample_speaker(i, rng) for i in range(profile.n_speakers)]
    names = list(STYLES)
    tasks: list[ClipTask] = []
    for spk in speakers:
        first = int(rng.integers(len(names)))
        said = [(w, w, names[(first + j + r) % len(names)])
                for j, w in enumerate(profile.words) for r in range(profile.styles_per_word)]
        said += [(UNKNOWN, str(t), names[int(rng.integers(len(names)))])
                 for t in rng.choice(UNKNOWN_WORDS, profile.unknown_per_speaker, replace=False)]
        said += [(SILENCE, "", "none")] * profile.silence_per_speaker
        for word, text, style in said:
            silent = word == SILENCE
            noisy = silent or rng.random() < profile.noisy_fraction
            tasks.append(ClipTask(
                index=len(tasks), word=word, text=text, speaker=spk, style=style,
                noise=str(rng.choice(NOISE_KINDS)) if noisy else "none",
                snr_db=float(rng.choice(profile.snrs)) if noisy and not silent else float("nan"),
                gain_db=float(rng.uniform(-75, -30) if silent else rng.uniform(-40, -18)),
                seed=int(np.random.SeedSequence([seed, len(tasks)]).generate_state(1)[0]),
                style_strength=style_strength))
    return tasks


def row(task: ClipTask) -> dict:
    """Manifest columns known from the plan."""
    spk = task.speaker
    return {"word": task.word, "text": task.text, "speaker": spk.id, "voice": f"{spk.engine}:{spk.voice}",
            "engine": spk.engine, "sex": spk.sex, "style": task.style, "noise": task.noise,
            "snr_db": task.snr_db, "gain_db": task.gain_db, "seed": task.seed,
            "room": bool(spk.channel.reverb)}


def babble_talkers(seed: int, synth: Synthesizer, n: int = 8) -> list[np.ndarray]:
    """Speech of ``n`` extra speakers (not in the corpus) for babble noise: each says a
    random string of eight words. Only the fast voices (espeak, flite kal16), so that no
    festival process starts in the parent and a small generation starts quickly."""
    rng = np.random.default_rng([seed, 7919])
    fast = [i for i, (engine, voice) in enumerate(VOICE_CYCLE) if engine == "espeak" or voice == "kal16"]
    talkers = []
    for i in fast[:n]:
        spk = sample_speaker(i, rng)
        text = " ".join(rng.choice(UNKNOWN_WORDS + WORDS, 8))
        u = Utterance(spk.engine, spk.voice, text, spk.f0, spk.f0_span, spk.rate, spk.vtl,
                      spk.formants, spk.extra)
        talkers.append(trim_silence(synth.say(u)))
    return talkers


def _peaking(f: float, gain_db: float, q: float) -> np.ndarray:
    """RBJ-cookbook peaking filter as one second-order section (b0 b1 b2 1 a1 a2)."""
    amp, w = 10 ** (gain_db / 40), 2 * np.pi * f / SR
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * np.cos(w), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * np.cos(w), 1 - alpha / amp])
    return np.concatenate([b, a]) / a[0]


def _high_shelf(f: float, gain_db: float) -> np.ndarray:
    """RBJ-cookbook high shelf (slope 1) as one second-order section: the style's tilt."""
    amp, w = 10 ** (gain_db / 40), 2 * np.pi * f / SR
    cos, s = np.cos(w), np.sqrt(2 * amp) * np.sin(w)
    b = np.array([amp * ((amp + 1) + (amp - 1) * cos + s), -2 * amp * ((amp - 1) + (amp + 1) * cos),
                  amp * ((amp + 1) + (amp - 1) * cos - s)])
    a = np.array([(amp + 1) - (amp - 1) * cos + s, 2 * ((amp - 1) - (amp + 1) * cos),
                  (amp + 1) - (amp - 1) * cos - s])
    return np.concatenate([b, a]) / a[0]


@lru_cache(maxsize=64)
def _channel_filters(ch: Channel) -> tuple[np.ndarray, np.ndarray | None]:
    """Second-order sections of the microphone band and EQ, and the room's impulse
    response (sox reverb is linear and time-invariant, so its response to a click is the
    whole room; convolving with it costs far less than a sox call per clip)."""
    sos = [butter(2, ch.highpass, "highpass", fs=SR, output="sos")]
    if ch.lowpass:
        sos.append(butter(4, ch.lowpass, "lowpass", fs=SR, output="sos"))
    sos += [_peaking(f, g, q)[None] for f, g, q in ch.eq]
    if not ch.reverb:
        return np.vstack(sos), None
    click = np.zeros(SR, np.float32)
    click[0] = 1.0
    return np.vstack(sos), sox(click, ["reverb", *(f"{v:.2f}" for v in ch.reverb)])


def _apply_channel(x: np.ndarray, ch: Channel, treble_db: float) -> np.ndarray:
    """Style tilt, then the speaker's microphone band, EQ and room; 16000 samples out."""
    sos, room = _channel_filters(ch)
    y = sosfilt(np.vstack([_high_shelf(2500.0, treble_db)[None], sos]), x)
    if room is not None:
        y = fftconvolve(y, room)[:SR]
    return y.astype(np.float32)


def _voice_quality(x: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Breathiness (envelope-following aspiration noise) and tension (soft saturation)."""
    breath, tension = style.breath * rng.uniform(0.5, 1.5), style.tension * rng.uniform(0.5, 1.5)
    hiss = np.diff(rng.standard_normal(len(x) + 1))
    if breath:
        env = np.convolve(np.abs(x), np.ones(320) / 320, mode="same")
        x = x + breath * env * hiss / np.sqrt(power(hiss))
    if tension:
        peak, drive = np.max(np.abs(x)) + 1e-9, 1 + 4 * tension
        x = np.tanh(drive * x / peak) / np.tanh(drive) * peak
    return x.astype(np.float32)


def _speech(task: ClipTask, synth: Synthesizer, rng: np.random.Generator) -> tuple[np.ndarray, slice, dict]:
    """The word said by the jittered speaker in the task's style, placed at a random
    offset and recorded through the speaker's channel; also the span it occupies."""
    spk, style = task.speaker, STYLES[task.style].scaled(task.style_strength)
    u = Utterance(spk.engine, spk.voice, task.text, spk.f0 * style.f0 * rng.uniform(0.92, 1.08),
                  spk.f0_span * style.span * rng.uniform(0.8, 1.25),
                  spk.rate * style.rate * rng.uniform(0.9, 1.1), spk.vtl * rng.uniform(0.98, 1.02),
                  spk.formants, spk.extra)
    word = trim_silence(synth.say(u))
    if len(word) > MAX_WORD:
        word = sox(word, ["tempo", "-s", f"{len(word) / MAX_WORD:.4f}"])[:MAX_WORD]
    word = _voice_quality(fade(word), style, rng)
    offset = int(rng.integers(0, SR - len(word) + 1))
    placed = np.zeros(SR, np.float32)
    placed[offset: offset + len(word)] = word
    clean = _apply_channel(placed, spk.channel, style.treble_db + rng.uniform(-1.5, 1.5))
    info = {"offset": offset, "n_speech": len(word), "f0": u.f0, "rate": u.rate, "vtl": u.vtl}
    return clean, slice(offset, offset + len(word)), info


def render(task: ClipTask, synth: Synthesizer, talkers: list[np.ndarray]) -> tuple[np.ndarray, dict]:
    """One 16000-sample clip for ``task`` and the manifest columns measured while making it.

    Level: the speech (or, for silence, the background) is scaled to ``gain_db`` RMS; the
    background noise is mixed at the planned SNR against the whole clean clip; a faint
    microphone noise floor 40-65 dB below the level is always added, since real recordings
    are never digitally silent; a clip that would clip is scaled down and its gain updated.
    """
    rng = np.random.default_rng(task.seed)
    if task.word == SILENCE:
        noise = make_noise(task.noise, SR, rng, talkers)
        clean, span = _apply_channel(noise, task.speaker.channel, 0.0), slice(None)
        info = {"offset": 0, "n_speech": 0, "f0": np.nan, "rate": np.nan, "vtl": np.nan}
    else:
        clean, span, info = _speech(task, synth, rng)
    clean *= 10 ** (task.gain_db / 20) / np.sqrt(max(power(clean[span]), 1e-20))
    clip = clean if task.word == SILENCE or task.noise == "none" else \
        mix_at_snr(clean, make_noise(task.noise, SR, rng, talkers), task.snr_db)
    floor_db = task.gain_db - rng.uniform(40, 65)
    clip = clip + colored(SR, rng, rng.uniform(0.0, 1.5)) * 10 ** (floor_db / 20)
    peak = float(np.max(np.abs(clip)))
    scale = min(1.0, 0.99 / peak)
    info.update(gain_db=task.gain_db + 20 * np.log10(scale), floor_db=floor_db + 20 * np.log10(scale))
    return (clip * scale).astype(np.float32), info
