"""MS-SNSD (Microsoft Scalable Noisy Speech Dataset): noise types and noisy speech.

Expected layout (a clone of the MS-SNSD repository)::

    <root>/noise_train/AirConditioner_1.wav, Babble_3.wav, ...
    <root>/noise_test/...
    <root>/clean_train/*.wav        clean read speech
    <root>/clean_test/*.wav

The noise type is the file-name prefix before the trailing number
(``AirConditioner_1.wav`` -> ``AirConditioner``). The anti-transfer paper's orthogonal
"noise type" task classifies 11 types of clean speech mixed with noise; which 11 it used
is not documented, so :func:`noisy_speech_manifest` takes an optional ``types`` list and
otherwise uses every type it finds.

Mixtures are described, not written: rows carry ``noise_path``, ``noise_offset`` and
``snr_db`` and ``audio.load_rows`` mixes them on loading with the correct SNR formula
(the original's square root halved the SNR in dB: defect 9). Each clean clip is mixed
once (the original mixed each at 5 SNRs, and a random split then leaked them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from xferlab.data import audio
from xferlab.errors import UserError

NOISE_SUBSETS = ("noise_train", "noise_test")
CLEAN_SUBSETS = ("clean_train", "clean_test")
DEFAULT_SNR = (0.0, 40.0)  # MS-SNSD's synthesizer default range (snr_lower, snr_upper)
FIX = ("point data.root (data.noise_root for the noisy digits) at a clone of the MS-SNSD repository "
       "(the folder holding noise_train/ and clean_train/)")
load_audio = audio.load_rows


def noise_type(name: str) -> str:
    """Noise type from a file name: the stem without its trailing number(s)."""
    stem = Path(name).stem
    kind = re.sub(r"([_\-\s]*\d+)+$", "", stem)
    return kind or stem


def _root(root: str | Path | None) -> Path:
    path = audio.require_dir(root, "MS-SNSD", FIX)
    if not any((path / d).is_dir() for d in NOISE_SUBSETS + CLEAN_SUBSETS):
        raise UserError(f"MS-SNSD folder {path} has no noise_train/, noise_test/, clean_train/ or "
                        f"clean_test/: {FIX}")
    return path


def _wavs(root: Path, subsets: Sequence[str]) -> list[tuple[str, Path]]:
    found = []
    for subset in subsets:
        folder = root / subset
        if not folder.is_dir():
            raise UserError(f"MS-SNSD folder {root} has no {subset}/: {FIX}, or choose other subsets")
        found += [(subset, p) for p in audio.visible(list(folder.glob("*.wav")))]
    if not found:
        raise UserError(f"MS-SNSD folders {', '.join(subsets)} under {root} hold no .wav files: {FIX}")
    return found


def read_noises(root: str | Path | None, subsets: Sequence[str] = NOISE_SUBSETS,
                types: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per noise file: path, label (= noise_type), group (file stem), split, duration."""
    base = _root(root)
    rows = [{"path": str(p), "label": noise_type(p.name), "noise_type": noise_type(p.name),
             "group": p.stem, "split": subset.split("_", 1)[1], "duration": audio.duration(p)}
            for subset, p in _wavs(base, subsets)]
    df = pd.DataFrame(rows)
    if types is not None:
        missing = sorted(set(types) - set(df["label"]))
        if missing:
            raise UserError(f"noise types {missing} are not in {base}: choose from "
                            f"{', '.join(sorted(df['label'].unique()))}")
        df = df[df["label"].isin(list(types))].reset_index(drop=True)
    return df


def read_clean(root: str | Path | None, subsets: Sequence[str] = ("clean_train",)) -> pd.DataFrame:
    """One row per clean speech file: path, group (file stem), split, duration."""
    base = _root(root)
    return pd.DataFrame([{"path": str(p), "group": p.stem, "split": subset.split("_", 1)[1],
                          "duration": audio.duration(p)} for subset, p in _wavs(base, subsets)])


def _clip_seconds(manifest: pd.DataFrame, i: int, clip_seconds: float | None) -> float:
    if clip_seconds is not None:
        return float(clip_seconds)
    if "duration" in manifest.columns:
        return float(manifest["duration"].iloc[i])
    return 1.0


def assign_noise(manifest: pd.DataFrame, noises: pd.DataFrame, snr_range: tuple[float, float],
                 seed: int = 0, clip_seconds: float | None = None,
                 noise_types: Sequence[str] | None = None) -> pd.DataFrame:
    """Give every row one noise stretch and one SNR drawn uniformly from ``snr_range``.

    ``noise_types`` (one per row) forces the type of each row's noise (the noise-type
    task); otherwise any noise file is drawn. The stretch starts at a random offset that
    leaves ``clip_seconds`` (default: the row's ``duration``, else 1 s) inside the file.
    """
    low, high = float(snr_range[0]), float(snr_range[1])
    if low > high:
        raise UserError(f"SNR range {snr_range} is reversed: give (low, high) in dB")
    if noises.empty:
        raise UserError("no noise files to mix: check the MS-SNSD folder and the noise types")
    rng = np.random.default_rng(seed)
    noises = noises.sort_values("path").reset_index(drop=True)
    by_type = {t: g.index.to_numpy() for t, g in noises.groupby("label")}
    picks, offsets = [], []
    for i in range(len(manifest)):
        pool = by_type[noise_types[i]] if noise_types is not None else noises.index.to_numpy()
        k = int(pool[rng.integers(len(pool))])
        slack = max(0.0, float(noises.at[k, "duration"]) - _clip_seconds(manifest, i, clip_seconds))
        picks.append(k)
        offsets.append(float(rng.uniform(0.0, slack)))
    out = manifest.copy()
    out["noise_path"] = noises.loc[picks, "path"].to_numpy()
    out["noise_type"] = noises.loc[picks, "label"].to_numpy()
    out["noise_offset"] = offsets
    out["snr_db"] = rng.uniform(low, high, size=len(out))
    return out


def noisy_speech_manifest(root: str | Path | None, types: Sequence[str] | None = None,
                          snr_range: tuple[float, float] = DEFAULT_SNR, seed: int = 0,
                          clean_subsets: Sequence[str] = ("clean_train",),
                          noise_subsets: Sequence[str] = ("noise_train",)) -> pd.DataFrame:
    """The orthogonal "noise type" task: each clean clip mixed once with a typed noise.

    Types are dealt round-robin over the shuffled clean clips, so the classes are
    balanced to within one clip; label = noise type, group = clean file. The default
    folders (clean_train + noise_train) are those MS-SNSD's own synthesizer uses.
    """
    noises = read_noises(root, noise_subsets, types)
    clean = read_clean(root, clean_subsets).sort_values("path").reset_index(drop=True)
    kinds = sorted(noises["label"].unique())
    rng = np.random.default_rng(seed)
    rank = np.empty(len(clean), np.int64)
    rank[rng.permutation(len(clean))] = np.arange(len(clean))
    wanted = [kinds[r % len(kinds)] for r in rank]
    df = assign_noise(clean, noises, snr_range, seed + 1, noise_types=wanted)
    df["label"] = df["noise_type"]
    return df[["path", "label", "group", "split", "duration", "noise_path", "noise_type",
               "noise_offset", "snr_db"]]


def load_task(name: str, data: Mapping[str, Any]) -> Any:
    """Registry factory for ``mssnsd/noise_type``: the noisy-speech manifest, split 70/20/10 at
    random (one mixture per clean clip, so no clip appears on both sides of the split)."""
    types = data.get("noise_types")
    df = noisy_speech_manifest(data.get("root"), types=list(types) if types else None)
    return audio.to_task(name, audio.random_parts(df), max_items=data.get("max_items"),
                         info={"root": str(data.get("root"))})


@dataclass(frozen=True)
class Options:
    """``data.*`` keys of the MS-SNSD dataset."""

    noise_types: Optional[list[str]] = None  # restrict the noise types


LOCAL = True  # reads the user's copy under data.root
OPTIONS = Options
TASKS = {"mssnsd/noise_type": (load_task, "MS-SNSD noisy speech, noise-type labels")}
