"""NSynth: the orthogonal "instrument family" task (11 families) of the anti-transfer paper.

Expected layout (the three json/wav archives, extracted side by side)::

    <root>/nsynth-train/examples.json       {note_str: {"instrument_family_str": ..., ...}, ...}
    <root>/nsynth-train/audio/<note_str>.wav
    <root>/nsynth-valid/...
    <root>/nsynth-test/...

Label = ``instrument_family_str`` (bass, brass, flute, guitar, keyboard, mallet, organ,
reed, string, synth_lead, vocal; synth_lead occurs in train only); group =
``instrument_str`` (NSynth's own splits keep instruments apart).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from xferlab.data import audio
from xferlab.errors import UserError

SUBSETS = {"train": "nsynth-train", "valid": "nsynth-valid", "test": "nsynth-test"}
SPLIT_NAME = {"train": "train", "valid": "val", "test": "test"}
FIX = "point data.root at the folder holding nsynth-train/, nsynth-valid/ and nsynth-test/"
load_audio = audio.load_rows


def _examples(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / "examples.json"
    if not path.is_file():
        raise UserError(f"NSynth folder {folder} has no examples.json: {FIX} (the json/wav release)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"NSynth file {path} is not valid JSON ({exc}): re-extract the archive") from None


def read_subset(base: Path, subset: str) -> pd.DataFrame:
    """One NSynth subset: path, label (family), instrument, group, split, pitch, velocity, source."""
    folder = base / SUBSETS[subset]
    examples = _examples(folder)
    present = {p.stem for p in (folder / "audio").glob("*.wav")}
    missing = sorted(set(examples) - present)
    if missing:
        raise UserError(f"{len(missing)} NSynth notes of {folder.name} have no audio/<note_str>.wav "
                        f"(e.g. {missing[0]}): extract the whole archive; {FIX}")
    rows = [{"path": str(folder / "audio" / f"{note}.wav"), "label": str(ex["instrument_family_str"]),
             "instrument": str(ex["instrument_str"]), "group": str(ex["instrument_str"]),
             "split": SPLIT_NAME[subset], "note": note, "pitch": ex.get("pitch"),
             "velocity": ex.get("velocity"), "source": ex.get("instrument_source_str")}
            for note, ex in sorted(examples.items())]
    return pd.DataFrame(rows)


def read_nsynth(root: str | Path | None, subsets: Sequence[str] = ("train", "valid", "test")) -> pd.DataFrame:
    """Manifest of the chosen subsets (``split`` = train / val / test)."""
    base = audio.require_dir(root, "NSynth", FIX)
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown:
        raise UserError(f"NSynth subsets {unknown} are unknown: use {', '.join(SUBSETS)}")
    absent = [SUBSETS[s] for s in subsets if not (base / SUBSETS[s]).is_dir()]
    if absent:
        raise UserError(f"NSynth folder {base} has no {'/, '.join(absent)}/: {FIX}")
    return pd.concat([read_subset(base, s) for s in subsets]).reset_index(drop=True)


def load_task(name: str, data: Mapping[str, Any]) -> Any:
    """Registry factory for ``nsynth/family``: NSynth's own train/valid/test splits."""
    df = read_nsynth(data.get("root"))
    parts = {s: df[df["split"] == s] for s in ("train", "val", "test")}
    return audio.to_task(name, parts, max_items=data.get("max_items"), info={"root": str(data.get("root"))})


LOCAL = True  # reads the user's copy under data.root
TASKS = {"nsynth/family": (load_task, "NSynth instrument family (11)")}
