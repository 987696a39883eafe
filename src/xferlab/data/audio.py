"""Shared audio and manifest helpers for the readers of real datasets.

Every reader (Speech Commands, IEMOCAP, Good-Sounds, NSynth, LibriSpeech, MS-SNSD)
returns a *manifest*: a ``pandas.DataFrame`` with one row per example and at least
``path`` (absolute), ``label`` (string) and ``group`` (what a group-wise split keeps
together). Audio is only read when a model needs it, by :func:`load_rows`, which
understands a few optional columns so that every reader shares one loader:

- ``start`` / ``end`` (seconds): read only that stretch (word segments, silence crops);
- ``gain``: multiply the clip (the ``_silence_`` class of Speech Commands);
- ``noise_path``, ``noise_offset`` (seconds), ``snr_db``: mix that stretch of a noise
  file into the clip at exactly that SNR (``xferlab.data.noise.mix_at_snr``). The
  manifest thus records the mixing recipe, so a noisy data set is reproducible and each
  clip is mixed once (the original mixed every clip at 5 SNRs: defect 9).

Everything comes back as mono float32 at 16 kHz (the rate both papers use).
"""
from __future__ import annotations

from math import gcd
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import resample_poly

from xferlab.data import splits
from xferlab.errors import UserError

SR = 16000


def resample(x: np.ndarray, sr_in: int, sr_out: int = SR) -> np.ndarray:
    """Polyphase resampling (anti-aliased); output length is ceil(len * sr_out / sr_in)."""
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)
    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def read_audio(path: str | Path, sr: int = SR, start: float | None = None,
               end: float | None = None) -> np.ndarray:
    """Read a WAV/FLAC file (or the ``start``..``end`` seconds of it) as mono float32 at ``sr``.

    Only the requested stretch is read from disk, in the file's own rate, then the
    channels are averaged and the result is resampled.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file {path} does not exist: the dataset copy is incomplete "
                        "or data.root points at the wrong folder")
    try:
        with sf.SoundFile(str(path)) as f:
            native = f.samplerate
            first = min(int(round((start or 0.0) * native)), f.frames)
            f.seek(first)
            frames = -1 if end is None else max(0, int(round(end * native)) - first)
            x = f.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UserError(f"cannot read audio file {path} ({exc}): replace the file or remove it "
                        "from the dataset folder") from None
    x = resample(x.mean(axis=1), native, sr)
    if end is not None:  # rounding of the two rates may add a sample; keep exactly (end - start) * sr
        x = x[:max(0, int(round((end - (start or 0.0)) * sr)))]
    return x


def clip_samples(path: str | Path, sr: int = SR, start: float | None = None, end: float | None = None) -> int:
    """How many samples :func:`read_audio` returns for the same arguments, from the file's
    header alone (no decoding): the same frame arithmetic, then the resampler's length."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UserError(f"cannot read audio file {path} ({exc}): replace the file or remove it") from None
    native, frames = info.samplerate, info.frames
    first = min(int(round((start or 0.0) * native)), frames)
    n = frames - first if end is None else min(max(0, int(round(end * native)) - first), frames - first)
    if native != sr:
        g = gcd(int(native), int(sr))
        n = -(-n * (sr // g) // (native // g))
    if end is not None:
        n = min(n, max(0, int(round((end - (start or 0.0)) * sr))))
    return n


def duration(path: str | Path) -> float:
    """Length of an audio file in seconds, from its header (no decoding)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UserError(f"cannot read audio file {path} ({exc}): replace the file or remove it") from None
    return info.frames / info.samplerate


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or cut to exactly ``n`` samples (short clips are padded, as in AT)."""
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def tile_to(x: np.ndarray, n: int) -> np.ndarray:
    """Repeat a (noise) signal until it has ``n`` samples; a loop sounds like noise, zeros do not."""
    if len(x) == 0:
        raise UserError("a noise file is empty: remove it from the noise folder")
    return np.tile(x, -(-n // len(x)))[:n]


def _value(row: pd.Series, column: str) -> object:
    value = row.get(column)
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def load_row(row: pd.Series, length: int | None = None, sr: int = SR) -> np.ndarray:
    """One manifest row as float32 at ``sr`` (see the module docstring for the columns)."""
    start, end = _value(row, "start"), _value(row, "end")
    x = read_audio(row["path"], sr, start, end)
    if length is not None:
        x = fit_length(x, length)
    gain = _value(row, "gain")
    if gain is not None:
        x = (x * float(gain)).astype(np.float32)
    noise_path = _value(row, "noise_path")
    if noise_path is not None and len(x):
        from xferlab.data.noise import mix_at_snr, power

        offset = float(_value(row, "noise_offset") or 0.0)
        noise = read_audio(noise_path, sr, offset, offset + len(x) / sr + 1.0 / sr)
        noise = tile_to(noise, len(x))
        if power(x) > 0.0 and power(noise) > 0.0:  # an all-zero clip has no SNR: left clean
            x = mix_at_snr(x, noise, float(row["snr_db"]))
    return x.astype(np.float32, copy=False)


class LazyClips(Sequence[np.ndarray]):
    """The clips of a manifest, decoded one at a time when indexed.

    What a reader gives the anti-transfer jobs: the feature cache writer walks it once,
    clip by clip, so a dataset larger than memory is never held decoded; ``samples(i)``
    counts a clip's samples from its header, so the writer can size its file first.
    """

    def __init__(self, rows: pd.DataFrame, length: int | None = None, sr: int = SR) -> None:
        self.rows, self.length, self.sr = rows.reset_index(drop=True), length, sr

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return load_row(self.rows.iloc[i], self.length, self.sr)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every clip decoded and stacked (n, length): only for fixed-length clips."""
        if self.length is None:
            raise UserError("clips of different lengths cannot be stacked: give the task a clip length")
        x = load_rows(self.rows, self.length, self.sr)
        return x if dtype is None else x.astype(dtype, copy=False)

    def samples(self, i: int) -> int:
        """len(self[i]), from the file header (the noise mix and gain keep the length)."""
        if self.length is not None:
            return self.length
        row = self.rows.iloc[i]
        return clip_samples(row["path"], self.sr, _value(row, "start"), _value(row, "end"))


def load_rows(rows: pd.DataFrame, length: int | None = None, sr: int = SR) -> np.ndarray | list[np.ndarray]:
    """Audio of every row: an (n, length) float32 array when ``length`` is given, else a list."""
    clips = [load_row(row, length, sr) for _, row in rows.iterrows()]
    if length is None:
        return clips
    return np.stack(clips) if clips else np.zeros((0, length), np.float32)


def balance_classes(df: pd.DataFrame, per_class: int | None = None, seed: int = 0,
                    column: str = "label") -> pd.DataFrame:
    """Keep ``per_class`` random rows of every class (default: the rarest class's count).

    Rows are picked from a sorted order with a seeded generator, so the same seed
    gives the same subset whatever order the files were listed in.
    """
    counts = df[column].value_counts()
    n = int(counts.min()) if per_class is None else int(per_class)
    short = counts[counts < n]
    if len(short):
        raise UserError(f"class {short.index[0]!r} has only {short.iloc[0]} examples, fewer than "
                        f"per_class={n}: lower the per-class count")
    rng = np.random.default_rng(seed)
    parts = []
    for value in sorted(counts.index, key=str):
        rows = df[df[column] == value].sort_values("path")
        parts.append(rows.iloc[np.sort(rng.choice(len(rows), n, replace=False))])
    return pd.concat(parts).reset_index(drop=True)


def require_dir(path: str | Path | None, what: str, fix: str) -> Path:
    """Resolve a dataset folder or fail with a message naming the fix."""
    if path is None or str(path) == "":
        raise UserError(f"no folder given for {what}: {fix}")
    p = Path(path).expanduser().resolve()
    if not p.is_dir():
        raise UserError(f"{what} folder {p} does not exist: {fix}")
    return p


def visible(paths: Sequence[Path]) -> list[Path]:
    """Drop hidden files and macOS resource forks (``._x.wav``) that copies often carry."""
    return sorted(p for p in paths if not p.name.startswith("."))


AT_FRACTIONS = (0.7, 0.2, 0.1)  # the anti-transfer study's train/val/test proportions
SPLIT_SEED = 0  # splits are fixed; repetitions differ only in their own seed


def random_parts(df: pd.DataFrame, seed: int = SPLIT_SEED) -> dict[str, pd.DataFrame]:
    """The anti-transfer "random" condition: a seeded 70/20/10 split by row."""
    return splits.random_split(df.reset_index(drop=True), AT_FRACTIONS, seed)


def to_task(name: str, parts: dict[str, pd.DataFrame], length: int | None = None,
            classes: Sequence[str] | None = None, max_items: int | None = None,
            info: dict | None = None):  # -> xferlab.data.tasks.AudioTask
    """Load split manifests into an ``AudioTask`` (the object every job consumes).

    Classes are the sorted unique label strings unless given, so integer targets come
    from string labels by sorted value (never from an argmax of integer labels: defect 8).
    Each split's ``x`` is a :class:`LazyClips`: nothing is decoded here. The AT jobs walk
    it clip by clip into the feature cache; a job that trains on arrays (V2S pretraining on
    Speech Commands) takes ``np.asarray(x)``, which needs ``length`` (clips padded/cut to it).
    """
    from xferlab.data.tasks import AudioTask

    classes = list(classes or sorted(pd.concat(parts.values())["label"].astype(str).unique()))
    index = {c: i for i, c in enumerate(classes)}
    x, y, g = {}, {}, {}
    for split, rows in parts.items():
        rows = splits.cap(rows, max_items, SPLIT_SEED)
        if rows.empty:
            raise UserError(f"dataset {name}: the {split} split is empty; check data.root and the "
                            "dataset options (too few files?)")
        unknown = sorted(set(rows["label"].astype(str)) - set(index))
        if unknown:
            raise UserError(f"dataset {name}: labels {unknown[:5]} are not among the classes: fix the class list")
        x[split] = LazyClips(rows, length)
        y[split] = rows["label"].astype(str).map(index).to_numpy(np.int64)
        g[split] = rows["group"].astype(str).to_numpy()
    return AudioTask(name, classes, x, y, g, dict(info or {}))
