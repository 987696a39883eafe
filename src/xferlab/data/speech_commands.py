"""Google Speech Commands v1/v2: the V2S source task and the anti-transfer digits task.

Expected layout (the published archive, extracted)::

    <root>/yes/0a7c2a8d_nohash_0.wav      one folder per word; <speaker>_nohash_<n>.wav
    <root>/validation_list.txt            lines like ``right/bb05582b_nohash_0.wav``
    <root>/testing_list.txt
    <root>/_background_noise_/*.wav       long noise recordings (white, pink, running tap...)

Files in neither list are training files. The lists split by speaker (hash of the
speaker id), so the published splits are speaker-disjoint.

- V2S source task (:func:`source_manifest`): the 35 words of v2 (v1 has 30), a
  ``_silence_`` class cropped from the background noise and, when only some words are
  kept, an ``_unknown_`` class drawn from the others.
- Anti-transfer digits (:func:`digits_manifest`, :func:`noisy_digits`): zero..nine,
  ``per_class`` files each (1000 in the paper, seeded), clean or mixed once per clip
  with MS-SNSD noise at an SNR drawn from the paper's nominal range.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from xferlab.data import audio
from xferlab.errors import UserError

WORDS_V1 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
            "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow")
WORDS_V2 = WORDS_V1 + ("backward", "forward", "follow", "learn", "visual")
DIGITS = WORDS_V1[10:20]
SILENCE, UNKNOWN = "_silence_", "_unknown_"
SNR_RANGES: dict[str, tuple[float, float] | None] = {
    "clean": None, "noisy": (20.0, 40.0), "verynoisy": (0.0, 10.0)}  # paper's nominal ranges (dB)
FIX = ("point data.root at the extracted Speech Commands folder (the one holding yes/, no/, ..., "
       "validation_list.txt and _background_noise_/)")
load_audio = audio.load_rows


def _root(root: str | Path | None) -> Path:
    return audio.require_dir(root, "Speech Commands", FIX)


def _word_folders(base: Path) -> dict[str, Path]:
    folders = {p.name: p for p in base.iterdir()
               if p.is_dir() and not p.name.startswith(("_", ".")) and any(p.glob("*_nohash_*.wav"))}
    if not folders:
        raise UserError(f"Speech Commands folder {base} has no word folders of <speaker>_nohash_<n>.wav "
                        f"files: {FIX}")
    return folders


def _split_lists(base: Path) -> dict[str, str]:
    """relative path -> split, from the two list files (everything else is train)."""
    owner: dict[str, str] = {}
    for split, name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
        path = base / name
        if not path.is_file():
            raise UserError(f"Speech Commands folder {base} has no {name}: {FIX}")
        for line in path.read_text().split():
            owner[line.strip().replace("\\", "/")] = split
    return owner


def read_speech_commands(root: str | Path | None, words: Sequence[str] | None = None) -> pd.DataFrame:
    """Manifest of the word clips: path, label (= word), word, speaker, group (= speaker), split.

    ``split`` is train / val / test from the published list files.
    """
    base = _root(root)
    folders = _word_folders(base)
    chosen = sorted(folders) if words is None else list(words)
    missing = [w for w in chosen if w not in folders]
    if missing:
        raise UserError(f"Speech Commands folder {base} has no word folder(s) {missing}: choose words "
                        f"from {', '.join(sorted(folders))} (v1 has 30 words, v2 35)")
    owner = _split_lists(base)
    rows = []
    for word in chosen:
        for path in audio.visible(list(folders[word].glob("*_nohash_*.wav"))):
            rel = f"{word}/{path.name}"
            rows.append({"path": str(path), "label": word, "word": word,
                         "speaker": path.name.split("_nohash_")[0], "split": owner.get(rel, "train")})
    df = pd.DataFrame(rows)
    df["group"] = df["speaker"]
    return df


def background_noises(root: str | Path | None) -> list[Path]:
    """The recordings in ``_background_noise_/`` (used for the ``_silence_`` class)."""
    folder = _root(root) / "_background_noise_"
    paths = audio.visible(list(folder.glob("*.wav"))) if folder.is_dir() else []
    if not paths:
        raise UserError(f"{folder} holds no .wav files: {FIX}, or build the task without _silence_")
    return paths


def silence_rows(root: str | Path | None, counts: Mapping[str, int], seed: int = 0,
                 seconds: float = 1.0) -> pd.DataFrame:
    """``_silence_`` examples: random 1 s crops of the background noise at a random gain in [0, 1].

    As in TensorFlow's reference recipe, the crops of every split come from the same
    noise recordings (the class is meant to be easy; nothing about words leaks).
    """
    rng = np.random.default_rng(seed)
    noises = [(str(p), audio.duration(p)) for p in background_noises(root)]
    rows = []
    for split, n in counts.items():
        for _ in range(int(n)):
            path, dur = noises[rng.integers(len(noises))]
            start = float(rng.uniform(0.0, max(0.0, dur - seconds)))
            rows.append({"path": path, "label": SILENCE, "word": SILENCE, "speaker": SILENCE,
                         "group": SILENCE, "split": split, "start": start, "end": start + seconds,
                         "gain": float(rng.uniform(0.0, 1.0))})
    return pd.DataFrame(rows)


def add_unknown(manifest: pd.DataFrame, known: Sequence[str], fraction: float = 0.1,
                seed: int = 0) -> pd.DataFrame:
    """Relabel words outside ``known`` as ``_unknown_`` and keep ``fraction`` x (known rows) of
    them per split (seeded). Nothing changes when every word is known (the 35-word v2 task)."""
    is_known = manifest["word"].isin(list(known))
    rng = np.random.default_rng(seed)
    parts = [manifest[is_known]]
    for split, rows in manifest[~is_known].groupby("split"):
        n = min(len(rows), int(round(fraction * int((manifest[is_known]["split"] == split).sum()))))
        picked = rows.sort_values("path").iloc[np.sort(rng.choice(len(rows), n, replace=False))]
        parts.append(picked.assign(label=UNKNOWN))
    return pd.concat(parts).reset_index(drop=True)


def source_manifest(root: str | Path | None, words: Sequence[str] = WORDS_V2, silence: float = 0.1,
                    unknown: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """The V2S source task: ``words`` + ``_silence_`` (+ ``_unknown_`` from the other words).

    ``silence`` and ``unknown`` are sizes relative to the word clips of each split
    (0 drops the class). With all 35 v2 words there is no ``_unknown_``: 36 classes,
    the size of the authors' AM output.
    """
    df = add_unknown(read_speech_commands(root), words, unknown, seed)
    if silence > 0:
        counts = df.groupby("split").size()
        df = pd.concat([df, silence_rows(root, (counts * silence).round().astype(int).to_dict(), seed)])
    return df.reset_index(drop=True)


def digits_manifest(root: str | Path | None, per_class: int | None = 1000, seed: int = 0) -> pd.DataFrame:
    """zero..nine, ``per_class`` clips of each (seeded; None = all). Keeps the list-file ``split``
    column, but the paper split these clips at random (70/20/10)."""
    return audio.balance_classes(read_speech_commands(root, DIGITS), per_class, seed)


def noisy_digits(root: str | Path | None, noise_root: str | Path | None, condition: str = "noisy",
                 per_class: int | None = 1000, seed: int = 0) -> pd.DataFrame:
    """Digits mixed once per clip with an MS-SNSD noise at an SNR drawn from ``condition``'s range.

    Adds noise_path, noise_type, noise_offset, snr_db (see ``audio.load_rows``); "clean"
    returns the plain digits.
    """
    if condition not in SNR_RANGES:
        raise UserError(f"digits condition {condition!r} is unknown: use {', '.join(SNR_RANGES)}")
    df = digits_manifest(root, per_class, seed)
    if SNR_RANGES[condition] is None:
        return df
    if not noise_root:
        raise UserError(f"the {condition} digits need MS-SNSD noise: set data.noise_root (or "
                        "$XFERLAB_MSSNSD_DIR) to a clone of the MS-SNSD repository")
    from xferlab.data.mssnsd import assign_noise, read_noises

    return assign_noise(df, read_noises(noise_root), SNR_RANGES[condition], seed + 1, clip_seconds=1.0)


def _listed_parts(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {s: df[df["split"] == s] for s in ("train", "val", "test")}


def load_task(name: str, data: Mapping[str, Any]) -> Any:
    """Registry factory for ``gsc/words``: the published splits, clips cut/padded to 16000
    samples. The noisy digits (:func:`load_digits`) also read ``data["noise_root"]`` (or
    ``$XFERLAB_MSSNSD_DIR``), the MS-SNSD folder."""
    root = data.get("root")
    df = source_manifest(root)
    return audio.to_task(name, _listed_parts(df), audio.SR, max_items=data.get("max_items"), info={"root": str(root)})


def load_digits(name: str, data: Mapping[str, Any]) -> Any:
    """Registry factory for ``gsc/digits[_noisy|_verynoisy]``: split 70/20/10 at random (the paper)."""
    root = data.get("root")
    condition = name.split("_", 1)[1] if "_" in name else "clean"
    noise_root = data.get("noise_root") or os.environ.get("XFERLAB_MSSNSD_DIR")
    df = noisy_digits(root, noise_root, condition, data.get("per_class", 1000))
    return audio.to_task(name, audio.random_parts(df), audio.SR, classes=list(DIGITS),
                         max_items=data.get("max_items"), info={"root": str(root), "condition": condition})


@dataclass(frozen=True)
class Options:
    """``data.*`` keys of the Speech Commands datasets."""

    noise_root: Optional[str] = None  # MS-SNSD folder for the noisy digits ($XFERLAB_MSSNSD_DIR)
    per_class: int = 1000  # digits: files per class, as in the paper


LOCAL = True  # reads the user's copy under data.root
OPTIONS = Options
TASKS = {
    "gsc/words": (load_task, "Google Speech Commands v1/v2: words + _silence_ + _unknown_ (data.root)"),
    "gsc/digits": (load_digits, "Speech Commands digits, clean, 1000 per class"),
    "gsc/digits_noisy": (load_digits, "digits + MS-SNSD noise at 20-40 dB (data.noise_root)"),
    "gsc/digits_verynoisy": (load_digits, "digits + MS-SNSD noise at 0-10 dB (data.noise_root)"),
}
