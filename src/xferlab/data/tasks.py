"""Speech tasks built from the synthetic TTS corpus: arrays of clips with labels and splits.

Each task names what is predicted (word, speaker, speaking style, noise kind) and how the
clips are split (by speaker, by word, at random). Splits use a fixed seed (0) so that
repetitions of an experiment differ only in their own seed, as in the papers.

The style tasks can carry a *confound* (the anti-transfer calibration): in the training
split every speaker gets a "home" style, and a clip of another style is kept only with
probability ``1 - confound``. At confound 1 speaker identity predicts the style
perfectly in training; validation and test stay balanced over unseen speakers, so a
network that learned the speaker shortcut pays for it there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from xferlab.data import splits
from xferlab.data.speech_synth import GENERATOR_VERSION
from xferlab.errors import UserError
from xferlab.schema import OMIT_DEFAULT

SPLIT_SEED = 0
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NOISY_SNR = {"clean": None, "noisy": (20.0, 40.0), "verynoisy": (0.0, 10.0)}  # paper's nominal ranges


@dataclass
class AudioTask:
    """Clips (n, samples) float32 at 16 kHz, integer labels and a group per clip, per split."""

    name: str
    classes: list[str]
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    groups: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        lines = [f"{self.name}: {self.n_classes} classes"]
        for split, y in self.y.items():
            counts = np.bincount(y, minlength=self.n_classes)
            lines.append(f"  {split:5s} {len(y):6d} clips, {len(np.unique(self.groups[split])):4d} groups, "
                         f"per class {counts.min()}..{counts.max()}")
        return "\n".join(lines)


def corpus_for(data: Mapping[str, Any]) -> Any:
    from xferlab.data.speech_synth import generate_corpus

    return generate_corpus(data.get("profile", "small"), seed=0,
                           style_strength=float(data.get("style_strength", 1.0)))


def from_frames(name: str, corpus: Any, parts: dict[str, pd.DataFrame], label: str,
                classes: list[str] | None = None, group: str = "speaker",
                max_items: int | None = None) -> AudioTask:
    """Load the audio of each split's rows and encode ``label`` against ``classes``."""
    classes = classes or sorted(pd.concat(parts.values())[label].unique())
    index = {c: i for i, c in enumerate(classes)}
    x, y, g = {}, {}, {}
    for split, rows in parts.items():
        rows = splits.cap(rows, max_items, SPLIT_SEED)
        if rows.empty:
            raise UserError(f"task {name}: the {split} split is empty; use a bigger corpus (data.profile)")
        x[split] = corpus.load_audio(rows)
        y[split] = rows[label].map(index).to_numpy(np.int64)
        g[split] = rows[group].astype(str).to_numpy()
    return AudioTask(name, list(classes), x, y, g, {"corpus": str(corpus.root)})


def _split(df: pd.DataFrame, how: str, stratify: str) -> dict[str, pd.DataFrame]:
    if how == "speaker":
        return splits.speaker_split(df, seed=SPLIT_SEED)
    if how == "word":
        return splits.word_split(df, seed=SPLIT_SEED)
    if how == "random":
        return splits.stratified_split(df, stratify, seed=SPLIT_SEED)
    raise UserError(f"data.split={how!r} is not valid for this task: use speaker, word or random")


def words_task(name: str, data: Mapping[str, Any]) -> AudioTask:
    """Keyword recognition (35 words + _silence_ + _unknown_), speaker-disjoint by default."""
    corpus = corpus_for(data)
    parts = _split(corpus.manifest, _how(data, "speaker"), "word")
    return from_frames(name, corpus, parts, "word", max_items=data.get("max_items"))


def speaker_task(name: str, data: Mapping[str, Any]) -> AudioTask:
    """Speaker identity; random split stratified by speaker (every speaker in every split)."""
    corpus = corpus_for(data)
    df = corpus.manifest[~corpus.manifest["word"].isin(["_silence_"])]
    parts = _split(df, _how(data, "random"), "speaker")
    return from_frames(name, corpus, parts, "speaker", max_items=data.get("max_items"))


def style_task(name: str, data: Mapping[str, Any]) -> AudioTask:
    """Speaking style (emotion-like); speaker-disjoint by default; optional confound."""
    corpus = corpus_for(data)
    df = corpus.manifest[~corpus.manifest["word"].isin(["_silence_"])]
    parts = _split(df, _how(data, "random" if name.endswith("_random") else "speaker"), "style")
    parts["train"] = confound_styles(parts["train"], float(data.get("confound", 0.0)))
    task = from_frames(name, corpus, parts, "style", max_items=data.get("max_items"))
    task.info["confound"] = float(data.get("confound", 0.0))
    return task


def check_confound(confound: float) -> None:
    if not 0.0 <= confound <= 1.0:
        raise UserError(f"data.confound={confound:g} must lie in [0, 1]: 0 = balanced, 1 = speaker decides style")


def confound_styles(train: pd.DataFrame, confound: float) -> pd.DataFrame:
    """Keep each speaker's home-style clips and other styles with probability 1 - confound."""
    check_confound(confound)
    if confound == 0.0:
        return train
    rng = np.random.default_rng(SPLIT_SEED)
    styles = sorted(train["style"].unique())
    speakers = sorted(train["speaker"].unique())
    home = {s: styles[i % len(styles)] for i, s in enumerate(rng.permutation(speakers))}
    at_home = train["style"].to_numpy() == train["speaker"].map(home).to_numpy()
    keep = at_home | (rng.random(len(train)) >= confound)
    return train[keep]


def digits_task(name: str, data: Mapping[str, Any]) -> AudioTask:
    """The ten digits, speaker-disjoint; noisy variants mix noise at the paper's SNR ranges."""
    corpus = corpus_for(data)
    df = clean_clips(corpus.manifest[corpus.manifest["word"].isin(DIGITS)])
    parts = _split(df, _how(data, "speaker"), "word")
    task = from_frames(name, corpus, parts, "word", classes=list(DIGITS), max_items=data.get("max_items"))
    condition = name.rsplit("_", 1)[-1] if "_" in name else "clean"
    if NOISY_SNR.get(condition):
        add_noise(task, NOISY_SNR[condition])
    task.info["condition"] = condition
    return task


def clean_clips(df: pd.DataFrame) -> pd.DataFrame:
    """Clips the corpus recorded without background noise: the tasks that control the
    noise themselves (clean/noisy digits, noise kind) must not stack it on top."""
    return df[df["noise"] == "none"]


def add_noise(task: AudioTask, snr_range: tuple[float, float]) -> None:
    """Mix one seeded noise (kind and SNR drawn per clip) into every clip, in place."""
    from xferlab.data.noise import NOISE_KINDS, make_noise, mix_at_snr

    rng = np.random.default_rng(SPLIT_SEED + 1)
    kinds = [k for k in NOISE_KINDS if k != "babble"]
    for split, x in task.x.items():
        for i in range(len(x)):
            noise = make_noise(kinds[rng.integers(len(kinds))], x.shape[1], rng)
            x[i] = mix_at_snr(x[i], noise, rng.uniform(*snr_range))


def noise_kind_task(name: str, data: Mapping[str, Any]) -> AudioTask:
    """Which noise kind is mixed into a word clip (the MS-SNSD noise-type analogue)."""
    from xferlab.data.noise import NOISE_KINDS, make_noise, mix_at_snr

    corpus = corpus_for(data)
    df = clean_clips(corpus.manifest[~corpus.manifest["word"].isin(["_silence_"])]).copy()
    rng = np.random.default_rng(SPLIT_SEED + 2)
    kinds = [k for k in NOISE_KINDS if k != "babble"]
    df["noise_kind"] = [kinds[i] for i in rng.integers(len(kinds), size=len(df))]
    parts = _split(df, _how(data, "random"), "noise_kind")
    task = from_frames(name, corpus, parts, "noise_kind", max_items=data.get("max_items"))
    for split, x in task.x.items():
        for i in range(len(x)):
            kind = task.classes[task.y[split][i]]
            x[i] = mix_at_snr(x[i], make_noise(kind, x.shape[1], rng), rng.uniform(0.0, 20.0))
    return task


def _how(data: Mapping[str, Any], default: str) -> str:
    split = data.get("split", "default")
    return default if split in (None, "default") else split


@dataclass(frozen=True)
class Options:
    """``data.*`` keys of the synthetic tasks."""

    profile: str = "small"  # corpus profile: a name in speech_synth.PROFILES
    split: str = "default"  # speaker | word | random; default: the task's own
    confound: float = 0.0  # style tasks: how strongly the training speaker tracks the style
    # how far the corpus's speaking styles move the voice: 1 as defined, 2 twice as far (the
    # style cue's strength against the speakers' own variation); a corpus of its own
    style_strength: float = field(default=1.0, metadata={OMIT_DEFAULT: True})


OPTIONS = Options


def check(name: str, data: Mapping[str, Any]) -> None:
    """Pre-run check (no audio is made): the corpus profile, the style strength and the
    confound are ones the generator and the tasks take."""
    from xferlab.data.speech_synth import check_profile, check_style_strength

    check_profile(data.get("profile", "small"))
    check_style_strength(float(data.get("style_strength", 1.0)))
    check_confound(float(data.get("confound", 0.0)))


VERSION = f"synth-generator-{GENERATOR_VERSION}"  # regenerated corpus -> new cached features
TASKS: dict[str, tuple[Callable[[str, Mapping[str, Any]], AudioTask], str]] = {
    "synth/words": (words_task, "35 words + _silence_ + _unknown_, speaker-disjoint (V2S source task)"),
    "synth/speaker": (speaker_task, "speaker identity, random split (orthogonal to style and words)"),
    "synth/style": (style_task, "speaking style (emotion-like), speaker-disjoint, optional data.confound"),
    "synth/style_speakersplit": (style_task, "speaking style, speaker-disjoint split (the paper's speaker-wise)"),
    "synth/style_random": (style_task, "speaking style, random split"),
    "synth/digits": (digits_task, "ten digits, clean, speaker-disjoint"),
    "synth/digits_noisy": (digits_task, "ten digits mixed with noise at 20-40 dB SNR"),
    "synth/digits_verynoisy": (digits_task, "ten digits mixed with noise at 0-10 dB SNR"),
    "synth/noise_kind": (noise_kind_task, "noise kind mixed into word clips (orthogonal to digits)"),
}
