"""LibriSpeech: speaker identity and the orthogonal "1000 most frequent words" task.

Expected layout (``root`` is the ``LibriSpeech`` folder holding subsets, or one subset)::

    <root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   "<utt id> WORDS ..."

LibriSpeech ships no word timings. Word segments need an alignment file made by a forced
aligner (e.g. the Montreal Forced Aligner), converted to this simple table:

    utterance,word,start,end            header required; .tsv/.txt = tab, otherwise comma
    19-198-0001,NORTHANGER,0.53,1.21    start/end in seconds from the utterance start

Words are lower-cased; empty words and silence/unknown markers (sil, sp, spn, <unk>)
are skipped. The paper's orthogonal task is the 1000 most frequent words of the 100 h
set (train-clean-100): :func:`word_segments` keeps the ``top_k`` most frequent words
(count of segments; ties broken alphabetically).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import pandas as pd

from xferlab.data import audio
from xferlab.errors import UserError

SKIP_WORDS = {"", "sil", "sp", "spn", "<unk>", "<s>", "</s>"}
FIX = "point data.root at the LibriSpeech folder (holding e.g. train-clean-100/) or at one subset"
load_audio = audio.load_rows


def _subset_folders(base: Path, subsets: Sequence[str] | None) -> list[Path]:
    if any(base.glob("*/*/*.trans.txt")):  # root is itself a subset
        return [base]
    folders = [p for p in sorted(base.iterdir()) if p.is_dir() and any(p.glob("*/*/*.trans.txt"))]
    if subsets is not None:
        folders = [p for p in folders if p.name in set(subsets)]
        missing = sorted(set(subsets) - {p.name for p in folders})
        if missing:
            raise UserError(f"LibriSpeech folder {base} has no subset(s) {missing}: {FIX}")
    if not folders:
        raise UserError(f"LibriSpeech folder {base} has no <speaker>/<chapter>/*.trans.txt: {FIX}")
    return folders


def _transcripts(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in path.read_text().splitlines():
        utt, _, text = line.strip().partition(" ")
        if utt:
            pairs.append((utt, text.strip()))
    return pairs


def read_librispeech(root: str | Path | None, subsets: Sequence[str] | None = None) -> pd.DataFrame:
    """Utterance manifest: path, label (= speaker id), speaker, group (= speaker), chapter,
    utterance, transcript, subset."""
    base = audio.require_dir(root, "LibriSpeech", FIX)
    rows = []
    for folder in _subset_folders(base, subsets):
        for trans in sorted(folder.glob("*/*/*.trans.txt")):
            speaker, chapter = trans.parent.parent.name, trans.parent.name
            for utt, text in _transcripts(trans):
                path = trans.parent / f"{utt}.flac"
                if not path.is_file():
                    raise UserError(f"LibriSpeech utterance {utt} has no {path.name} in {trans.parent}: "
                                    f"extract the subset completely; {FIX}")
                rows.append({"path": str(path), "label": speaker, "speaker": speaker, "group": speaker,
                             "chapter": chapter, "utterance": utt, "transcript": text,
                             "subset": folder.name})
    return pd.DataFrame(rows)


def read_alignment(path: str | Path) -> pd.DataFrame:
    """Read the word alignment table (columns utterance, word, start, end; see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"word alignment file {path} does not exist: give a CSV/TSV with columns "
                        "utterance,word,start,end (see xferlab.data.librispeech)")
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    table = pd.read_csv(path, sep=sep, dtype={"utterance": str, "word": str}, keep_default_na=False)
    lacking = [c for c in ("utterance", "word", "start", "end") if c not in table.columns]
    if lacking:
        raise UserError(f"word alignment file {path} lacks column(s) {lacking}: its header must be "
                        "utterance,word,start,end (tab-separated for .tsv/.txt)")
    table["word"] = table["word"].str.strip().str.lower()
    table = table[~table["word"].isin(SKIP_WORDS)]
    return table.astype({"start": float, "end": float})[table["end"] > table["start"]]


def word_segments(manifest: pd.DataFrame, alignment: pd.DataFrame | str | Path,
                  top_k: int | None = 1000) -> pd.DataFrame:
    """One row per aligned word of the ``top_k`` most frequent words (None = all).

    Columns: path, start, end (seconds; ``audio.load_rows`` reads just that stretch),
    label (= word), word, utterance, speaker, group (= speaker).
    """
    table = read_alignment(alignment) if isinstance(alignment, (str, Path)) else alignment
    utts = manifest.set_index("utterance")
    table = table[table["utterance"].isin(utts.index)]
    if table.empty:
        raise UserError("the word alignment names none of the LibriSpeech utterances read: align the "
                        "same subset(s) that data.root points at")
    counts = table["word"].value_counts()
    ranked = sorted(counts.index, key=lambda w: (-counts[w], w))
    kept = table[table["word"].isin(set(ranked[:top_k] if top_k else ranked))]
    info = utts.loc[kept["utterance"], ["path", "speaker"]].to_numpy()
    return pd.DataFrame({"path": info[:, 0], "start": kept["start"].to_numpy(), "end": kept["end"].to_numpy(),
                         "label": kept["word"].to_numpy(), "word": kept["word"].to_numpy(),
                         "utterance": kept["utterance"].to_numpy(), "speaker": info[:, 1],
                         "group": info[:, 1]})


def load_task(name: str, data: Mapping[str, Any]) -> Any:
    """Registry factory: ``librispeech/speaker`` (utterances, random split stratified by
    speaker) and ``librispeech/words`` (word segments; ``data.alignment`` or
    ``$XFERLAB_LIBRISPEECH_ALIGNMENT`` names the alignment file; random 70/20/10)."""
    parts = SPLITS[name](read_librispeech(data.get("root")), data)
    return audio.to_task(name, parts, max_items=data.get("max_items"), info={"root": str(data.get("root"))})


def _speakers(manifest: pd.DataFrame, data: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    from xferlab.data import splits

    return splits.stratified_split(manifest, "label", audio.AT_FRACTIONS, seed=audio.SPLIT_SEED)


def _words(manifest: pd.DataFrame, data: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    alignment = data.get("alignment") or os.environ.get("XFERLAB_LIBRISPEECH_ALIGNMENT")
    if not alignment:
        raise UserError("librispeech/words needs a word alignment: set data.alignment (or "
                        "$XFERLAB_LIBRISPEECH_ALIGNMENT) to a utterance,word,start,end CSV")
    return audio.random_parts(word_segments(manifest, alignment, int(data.get("top_k", 1000))))


@dataclass(frozen=True)
class Options:
    """``data.*`` keys of the LibriSpeech datasets."""

    alignment: Optional[str] = None  # word alignment CSV ($XFERLAB_LIBRISPEECH_ALIGNMENT)
    top_k: int = 1000  # most frequent words kept


SPLITS = {"librispeech/speaker": _speakers, "librispeech/words": _words}
LOCAL = True  # reads the user's copy under data.root
OPTIONS = Options
TASKS = {
    "librispeech/speaker": (load_task, "LibriSpeech speaker identity"),
    "librispeech/words": (load_task, "LibriSpeech 1000 most frequent words (data.alignment)"),
}
