"""Good-Sounds: the sound-goodness target task and the orthogonal instrument task.

Expected layout (``root`` is the folder holding the database, usually ``good-sounds``)::

    <root>/database.sqlite
    <root>/sound_files/<pack>/<microphone>/<take>.wav

Columns relied on (read with ``PRAGMA table_info``, so extra or reordered columns are
fine): ``sounds.id``, ``sounds.instrument``, ``sounds.klass``, ``takes.sound_id``,
``takes.filename``; optional ``takes.microphone``, ``sounds.pack_id`` -> ``packs.name``
and ``sounds.player`` are carried along when present. ``takes.filename`` is resolved
relative to ``root`` (also accepted: relative to ``root/good-sounds`` or with a leading
``good-sounds/`` when ``root`` is that folder). Every take (microphone) of a sound is a
row; ``sound_id`` lets a split keep a sound's takes together.

Goodness classes as in the paper: good, bad-dynamics, bad-pitch, bad-timbre (with
bad-richness merged into it), bad-attack. ``klass`` is split into tokens; ``good`` /
``good-sound`` -> good, ``bad-<x>`` or ``bad-<x>-stability`` -> its class; a row with an
unknown token (e.g. scale recordings) or two different classes is dropped.

Instrument labels are the instrument STRINGS; integer targets come from their sorted
unique values. The original took an argmax of integer labels, which turned every target
into class 0 (defect 8).
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from xferlab.data import audio
from xferlab.errors import UserError

GOODNESS = ("good", "bad-dynamics", "bad-pitch", "bad-timbre", "bad-attack")
_BAD = {"dynamics": "bad-dynamics", "pitch": "bad-pitch", "timbre": "bad-timbre",
        "richness": "bad-timbre", "attack": "bad-attack"}
_TOKEN = re.compile(r"^(?:(good)(?:-sounds?)?|bad-(dynamics|pitch|timbre|richness|attack)(?:-stability)?)$")
REQUIRED = {"sounds": ("id", "instrument", "klass"), "takes": ("sound_id", "filename")}
FIX = "point data.root at the good-sounds folder that holds database.sqlite and sound_files/"
load_audio = audio.load_rows


def goodness(klass: object) -> str | None:
    """Paper class of a ``sounds.klass`` value, or None when it is not one of the five."""
    if not isinstance(klass, str):
        return None
    found = set()
    for token in re.split(r"[\s,;]+", klass.strip().lower().replace("_", "-")):
        match = _TOKEN.match(token) if token else None
        if token and match is None:
            return None
        if match:
            found.add("good" if match.group(1) else _BAD[match.group(2)])
    return found.pop() if len(found) == 1 else None


def _database(base: Path) -> Path:
    for candidate in (base / "database.sqlite", base / "good-sounds" / "database.sqlite"):
        if candidate.is_file():
            return candidate
    raise UserError(f"Good-Sounds folder {base} has no database.sqlite: {FIX}")


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in con.execute(f"PRAGMA table_info({table})")}


def _query(db: Path) -> pd.DataFrame:
    """Join takes to sounds (and packs when possible), tolerating optional columns."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cols = {t: _columns(con, t) for t in ("sounds", "takes", "packs")}
        for table, needed in REQUIRED.items():
            lacking = [c for c in needed if c not in cols[table]]
            if lacking:
                raise UserError(f"Good-Sounds database {db}: table {table} lacks column(s) {lacking}: "
                                f"use the database.sqlite shipped with Good-Sounds; {FIX}")
        select = ["t.sound_id AS sound_id", "t.filename AS filename", "s.instrument AS instrument",
                  "s.klass AS klass"]
        select += [f"{a}.{c} AS {c}" for a, t, c in (("t", "takes", "microphone"), ("s", "sounds", "player"))
                   if c in cols[t]]
        join = ""
        if "pack_id" in cols["sounds"] and {"id", "name"} <= cols["packs"]:
            select.append("p.name AS pack")
            join = " LEFT JOIN packs p ON p.id = s.pack_id"
        sql = f"SELECT {', '.join(select)} FROM takes t JOIN sounds s ON s.id = t.sound_id{join}"
        return pd.read_sql_query(sql, con)
    except sqlite3.DatabaseError as exc:
        raise UserError(f"cannot read Good-Sounds database {db} ({exc}): {FIX}") from None
    finally:
        con.close()


def _resolve(base: Path, filename: str) -> Path | None:
    rel = filename.replace("\\", "/").lstrip("/")
    candidates = [base / rel, base / "good-sounds" / rel]
    if rel.startswith("good-sounds/"):
        candidates.append(base / rel[len("good-sounds/"):])
    return next((c for c in candidates if c.is_file()), None)


def read_goodsounds(root: str | Path | None, keep_all: bool = False,
                    microphone: str | None = None) -> pd.DataFrame:
    """Manifest of every take with a paper goodness class (all takes with ``keep_all``).

    Takes of one sound by several microphones are near-duplicates: a random split by
    file puts them on both sides; ``microphone`` keeps one microphone's takes only.

    Columns: path, label (goodness class, None for unclassified takes under keep_all),
    goodness, klass, instrument, group (= instrument), sound_id, plus microphone,
    player, pack when the database has them.
    """
    base = audio.require_dir(root, "Good-Sounds", FIX)
    df = _query(_database(base))
    df["goodness"] = df["klass"].map(goodness)
    if microphone is not None:
        if "microphone" not in df.columns or microphone not in set(df["microphone"]):
            found = sorted(map(str, df["microphone"].unique())) if "microphone" in df.columns else []
            raise UserError(f"Good-Sounds has no takes by microphone {microphone!r}: choose from {found}")
        df = df[df["microphone"] == microphone]
    if not keep_all:
        df = df[df["goodness"].notna()]
    if df.empty:
        raise UserError(f"Good-Sounds database under {base} has no take with a goodness class: {FIX}")
    paths = [_resolve(base, str(f)) for f in df["filename"]]
    missing = [f for f, p in zip(df["filename"], paths) if p is None]
    if missing:
        raise UserError(f"{len(missing)} Good-Sounds takes have no audio file (e.g. {missing[0]} under "
                        f"{base}): extract sound_files/ completely; {FIX}")
    df = df.assign(path=[str(p) for p in paths], label=df["goodness"], group=df["instrument"].astype(str),
                   instrument=df["instrument"].astype(str))
    first = ["path", "label", "goodness", "klass", "instrument", "group", "sound_id"]
    return df[first + [c for c in df.columns if c not in first and c != "filename"]].reset_index(drop=True)


def instrument_labels(df: pd.DataFrame) -> pd.DataFrame:
    """The orthogonal task: label = instrument name (a string, never an integer argmax)."""
    return df.assign(label=df["instrument"].astype(str))


def class_index(labels: Sequence[str]) -> dict[str, int]:
    """Integer target of each label, by sorted unique value."""
    return {c: i for i, c in enumerate(sorted(set(map(str, labels))))}


def instrument_split(df: pd.DataFrame, counts: Sequence[int] = (8, 2, 2),
                     seed: int = 0) -> dict[str, pd.DataFrame]:
    """Instrument-wise split: ``counts`` instruments in train/val/test (8/2/2 in the paper)."""
    names = np.array(sorted(df["instrument"].astype(str).unique()), dtype=object)
    if len(names) != sum(counts) or min(counts) < 1:
        raise UserError(f"instrument-wise split of {len(names)} instruments cannot use counts {list(counts)}: "
                        f"give three positive counts summing to {len(names)} (data.instrument_counts)")
    names = names[np.random.default_rng(seed).permutation(len(names))]
    bounds = np.cumsum([0, *counts])
    return {split: df[df["instrument"].isin(list(names[bounds[i]:bounds[i + 1]]))]
            for i, split in enumerate(("train", "val", "test"))}


@dataclass(frozen=True)
class Options:
    """``data.*`` keys of the Good-Sounds datasets."""

    microphone: Optional[str] = None  # keep one microphone's takes
    instrument_counts: list[int] = field(default_factory=lambda: [8, 2, 2])  # train/val/test instruments


def _goodness_random(name: str, data: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    return audio.random_parts(audio.balance_classes(read_goodsounds(data.get("root"), microphone=data.get("microphone"))))


def _goodness_instrumentwise(name: str, data: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    counts = tuple(data.get("instrument_counts") or (8, 2, 2))
    df = audio.balance_classes(read_goodsounds(data.get("root"), microphone=data.get("microphone")))
    return instrument_split(df, counts)


def _instrument(name: str, data: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    df = read_goodsounds(data.get("root"), keep_all=True, microphone=data.get("microphone"))
    return audio.random_parts(instrument_labels(df))


def _task(parts: Any) -> Any:
    """A registry factory: the split frames of ``parts`` -> an AudioTask (classes balanced
    before splitting for goodness, as the paper)."""
    def load(name: str, data: Mapping[str, Any]) -> Any:
        classes = list(GOODNESS) if name.startswith("goodsounds/goodness") else None
        return audio.to_task(name, parts(name, data), classes=classes, max_items=data.get("max_items"),
                             info={"root": str(data.get("root"))})
    return load


LOCAL = True  # reads the user's copy under data.root
OPTIONS = Options
TASKS = {
    "goodsounds/goodness_random": (_task(_goodness_random), "Good-Sounds goodness (5 classes, balanced), random split"),
    "goodsounds/goodness_instrumentwise": (_task(_goodness_instrumentwise), "Good-Sounds goodness, instrument-wise 8/2/2"),
    "goodsounds/instrument": (_task(_instrument), "Good-Sounds instrument identity"),
}
