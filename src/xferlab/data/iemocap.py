"""IEMOCAP: the anti-transfer speech-emotion target task and the session ("speaker") task.

Expected layout (the release as distributed; ``root`` may be the
``IEMOCAP_full_release`` folder or the folder that contains it)::

    IEMOCAP_full_release/Session{1..5}/sentences/wav/<dialog>/<utterance>.wav
    IEMOCAP_full_release/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt

Each evaluation file has one summary line per utterance::

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]

The fourth field is the consensus category. The paper keeps four emotions: neutral
(neu), angry (ang), happy (hap) and sad (sad) and drops the rest. Many IEMOCAP papers
merge excited (exc) into happy; the anti-transfer paper uses hap only, so merging is an
option (``merge_excited``), off by default.

The speaker of an utterance is its session plus the gender letter of the utterance's
last id field (``Ses01F_impro01_M003`` -> ``Ses01M``; the dialog name's letter says who
wore the markers, not who speaks). Each session has two actors, so the paper's
"speaker" task labels the session (1-5), and its speaker-wise split is by session:
1-3 train, 4 validation, 5 test.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from xferlab.data import audio
from xferlab.errors import UserError

EMOTIONS = {"neu": "neutral", "ang": "angry", "hap": "happy", "sad": "sad"}
SESSIONS = (1, 2, 3, 4, 5)
SPEAKERWISE = {"train": (1, 2, 3), "val": (4,), "test": (5,)}
LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses\d\d[FM]_\S+)\s+(\S+)\s+\[")
FIX = "point data.root at the IEMOCAP_full_release folder"
load_audio = audio.load_rows


def find_release(root: str | Path | None) -> Path:
    """The IEMOCAP_full_release folder (``root`` itself or its child of that name)."""
    base = audio.require_dir(root, "IEMOCAP", FIX)
    if not (base / "Session1").is_dir() and (base / "IEMOCAP_full_release").is_dir():
        base = base / "IEMOCAP_full_release"
    if not any((base / f"Session{n}" / "dialog" / "EmoEvaluation").is_dir() for n in SESSIONS):
        raise UserError(f"IEMOCAP folder {base} has no Session1..5/dialog/EmoEvaluation: {FIX}")
    return base


def parse_evaluation(path: Path) -> list[tuple[str, str]]:
    """(utterance id, category code) for every summary line of one EmoEvaluation file."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        match = LINE.match(line.strip())
        if match:
            found.append((match.group(3), match.group(4).lower()))
    return found


def label_map(merge_excited: bool = False, keep_all: bool = False) -> dict[str, str] | None:
    """Category code -> label; None (keep every code as its own label) with ``keep_all``."""
    if keep_all:
        return None
    return {**EMOTIONS, "exc": "happy"} if merge_excited else dict(EMOTIONS)


def _row(base: Path, session: int, utt: str, code: str, label: str) -> dict[str, Any]:
    dialog = utt.rsplit("_", 1)[0]
    gender = utt.rsplit("_", 1)[1][0]
    return {"path": str(base / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav"),
            "label": label, "utterance": utt, "emotion_code": code, "dialog": dialog,
            "speaker": f"{utt[:5]}{gender}", "session": session, "gender": gender,
            "group": f"Session{session}", "improvised": "_impro" in dialog}


def read_iemocap(root: str | Path | None, merge_excited: bool = False,
                 keep_all: bool = False) -> pd.DataFrame:
    """Manifest of the labelled utterances.

    Columns: path, label (neutral/angry/happy/sad), utterance, emotion_code, dialog,
    speaker (e.g. Ses01F), session (1..5), gender (F/M), group (= "Session<n>"),
    improvised. Other emotions are dropped unless ``keep_all`` (then label = raw code).
    """
    base = find_release(root)
    mapping = label_map(merge_excited, keep_all)
    rows = []
    for session in SESSIONS:
        folder = base / f"Session{session}" / "dialog" / "EmoEvaluation"
        for path in audio.visible(list(folder.glob("*.txt"))) if folder.is_dir() else []:
            for utt, code in parse_evaluation(path):
                label = code if mapping is None else mapping.get(code)
                if label is not None:
                    rows.append(_row(base, session, utt, code, label))
    if not rows:
        raise UserError(f"IEMOCAP folder {base}: no evaluation line with a kept emotion was found in "
                        f"Session*/dialog/EmoEvaluation/*.txt: {FIX}")
    df = pd.DataFrame(rows).drop_duplicates("utterance").reset_index(drop=True)
    _check_audio(df)
    return df


def _check_audio(df: pd.DataFrame) -> None:
    missing = [p for p in df["path"] if not Path(p).is_file()]
    if missing:
        raise UserError(f"{len(missing)} labelled IEMOCAP utterances have no audio (e.g. {missing[0]}): "
                        f"re-extract the release so that Session*/sentences/wav is complete, and {FIX}")


def session_split(df: pd.DataFrame, plan: Mapping[str, Sequence[int]] = SPEAKERWISE) -> dict[str, pd.DataFrame]:
    """The paper's speaker-wise split: sessions 1-3 train, 4 validation, 5 test."""
    parts = {name: df[df["session"].isin(list(sessions))] for name, sessions in plan.items()}
    for name, part in parts.items():
        if part.empty:
            raise UserError(f"IEMOCAP speaker-wise split: no utterances of session(s) {list(plan[name])} "
                            f"for {name}: the copy lacks those sessions; {FIX}")
    return parts


def speaker_labels(df: pd.DataFrame) -> pd.DataFrame:
    """The orthogonal "speaker" task: label = session ("Session1".."Session5")."""
    return df.assign(label=df["group"])


def load_task(name: str, data: Mapping[str, Any]) -> Any:
    """Registry factory: ``iemocap/emotion_random``, ``iemocap/emotion_speakerwise``, ``iemocap/speaker``.

    Clips keep their own length (the AT job cuts them into ``data.segment_s`` segments:
    4 s in the paper, 1 s for the "iemocap_1sec" orthogonal model). ``data.merge_excited``
    (optional) merges exc into happy.
    """
    merge = bool(data.get("merge_excited", False))
    info = {"root": str(data.get("root")), "merge_excited": merge}
    return audio.to_task(name, SPLITS[name](data.get("root"), merge), max_items=data.get("max_items"), info=info)


@dataclass(frozen=True)
class Options:
    """``data.*`` keys of the IEMOCAP datasets."""

    merge_excited: bool = False  # count "exc" as happy (the paper does not)


SPLITS = {  # name -> (root, merge_excited) -> split frames
    "iemocap/emotion_random": lambda root, merge: audio.random_parts(read_iemocap(root, merge)),
    "iemocap/emotion_speakerwise": lambda root, merge: session_split(read_iemocap(root, merge)),
    "iemocap/speaker": lambda root, merge: audio.random_parts(speaker_labels(read_iemocap(root, keep_all=True))),
}
LOCAL = True  # reads the user's copy under data.root
OPTIONS = Options
TASKS = {
    "iemocap/emotion_random": (load_task, "IEMOCAP 4 emotions, random split"),
    "iemocap/emotion_speakerwise": (load_task, "IEMOCAP 4 emotions, sessions 1-3 / 4 / 5"),
    "iemocap/speaker": (load_task, "IEMOCAP session (speaker pair) identity"),
}
