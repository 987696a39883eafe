"""Small fake copies of the real datasets, each in its published layout.

The reader tests (tests/unit/test_readers.py) check the readers on them, and the every-spec
test (tests/e2e/test_every_spec.py) trains each real-data spec on them at tiny size. Clips
are short random noise written with soundfile; labels, speakers, sessions, instruments and
splits follow each dataset's own conventions, with enough items per class and split that
every task the readers build has every class in training and no split empty.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import soundfile as sf

from xferlab.data.speech_commands import DIGITS


def wav(path: Path, n: int = 400, sr: int = 16000, seed: int = 0, channels: int = 1,
        fmt: str = "WAV") -> Path:
    """A short random clip (different per seed) written with soundfile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, (n, channels)).astype(np.float32)
    sf.write(str(path), x, sr, format=fmt, subtype="FLOAT" if fmt == "WAV" else "PCM_16")
    return path


def speech_commands(root: Path, speakers: int = 6, takes: int = 2, n: int = 4000) -> Path:
    """Word folders of ``<speaker>_nohash_<k>.wav``; the last two speakers are listed in
    validation_list.txt and testing_list.txt (speaker-disjoint, as the published lists)."""
    names = [f"{chr(97 + s) * 4}{s + 1:04d}" for s in range(speakers)]
    lists: dict[str, list[str]] = {"validation_list.txt": [], "testing_list.txt": []}
    seed = 0
    for word in (*DIGITS, "yes", "no"):
        for s, spk in enumerate(names):
            for k in range(takes):
                seed += 1
                wav(root / word / f"{spk}_nohash_{k}.wav", n=n, seed=seed)
                if s >= speakers - 2:
                    lists["validation_list.txt" if s == speakers - 2 else "testing_list.txt"].append(
                        f"{word}/{spk}_nohash_{k}.wav")
    for name, lines in lists.items():
        (root / name).write_text("\n".join(lines) + "\n")
    wav(root / "_background_noise_" / "white_noise.wav", n=32000, seed=99)
    return root


def mssnsd(root: Path, clean: int = 7) -> Path:
    """noise_train/ and noise_test/ (noise type = file name before ``_``) and clean_train/."""
    for i, name in enumerate(["AirConditioner_1", "AirConditioner_2", "Babble_1", "Typing_10", "Typing_3",
                              "Babble_2"]):
        wav(root / "noise_train" / f"{name}.wav", n=8000 + 3000 * i, seed=100 + i)
    for i, name in enumerate(["Babble_7", "AirConditioner_8", "Typing_9"]):
        wav(root / "noise_test" / f"{name}.wav", n=6000 + 2000 * i, seed=200 + i)
    for i in range(clean):
        wav(root / "clean_train" / f"clnsp{i}.wav", n=1200, seed=300 + i)
    return root


def iemocap(parent: Path, utterances: dict[int, dict[str, str]] | None = None, n: int = 400) -> Path:
    """``IEMOCAP_full_release/Session{1..5}``: sentence wavs and EmoEvaluation files with one
    line per utterance (category codes neu/ang/hap/sad/exc/fru/xxx). Returns ``parent``."""
    base = parent / "IEMOCAP_full_release"
    for session, utts in (utterances or balanced_iemocap()).items():
        by_dialog: dict[str, list[str]] = {}
        for i, (utt, code) in enumerate(utts.items()):
            dialog = utt.rsplit("_", 1)[0]
            wav(base / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav", n=n,
                seed=session * 100 + i)
            by_dialog.setdefault(dialog, []).append(
                f"[{i}.5000 - {i + 1}.2500]\t{utt}\t{code}\t[2.5000, 3.0000, 2.0000]\nC-E1:\tNeutral;\t()\n")
        folder = base / f"Session{session}" / "dialog" / "EmoEvaluation"
        (folder / "Categorical").mkdir(parents=True, exist_ok=True)
        for dialog, lines in by_dialog.items():
            (folder / f"{dialog}.txt").write_text("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
                                                  + "\n".join(lines))
    return parent


def balanced_iemocap(per_speaker: int = 2) -> dict[int, dict[str, str]]:
    """Every session: both speakers say each of the four kept emotions ``per_speaker`` times."""
    out: dict[int, dict[str, str]] = {}
    for session in range(1, 6):
        utts, k = {}, 0
        for sex in "FM":
            for code in ("neu", "ang", "hap", "sad"):
                for _ in range(per_speaker):
                    utts[f"Ses0{session}F_impro0{session}_{sex}{k:03d}"] = code
                    k += 1
        out[session] = utts
    return out


def goodsounds(root: Path, sounds: list[tuple[int, str, str]] | None = None, n: int = 400) -> Path:
    """``database.sqlite`` (packs, sounds, takes) and ``sound_files/`` with two microphones."""
    root.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(root / "database.sqlite")
    con.execute("CREATE TABLE packs (id INTEGER, name TEXT, description TEXT)")
    con.execute("CREATE TABLE sounds (id INTEGER, instrument TEXT, note TEXT, klass TEXT, pack_id INTEGER)")
    con.execute("CREATE TABLE takes (id INTEGER, microphone TEXT, filename TEXT, sound_id INTEGER)")
    con.execute("INSERT INTO packs VALUES (1, 'mixed_pack', '')")
    for sid, instrument, klass in sounds or balanced_goodsounds():
        con.execute("INSERT INTO sounds VALUES (?, ?, 'C', ?, 1)", (sid, instrument, klass))
        for j, mic in enumerate(("neumann", "akg")):
            rel = f"sound_files/{instrument}_pack/{mic}/{sid:04d}.wav"
            con.execute("INSERT INTO takes VALUES (?, ?, ?, ?)", (sid * 10 + j, mic, rel, sid))
            wav(root / rel, n=n, seed=sid * 10 + j)
    con.commit()
    con.close()
    return root


def balanced_goodsounds(instruments: int = 12) -> list[tuple[int, str, str]]:
    """Every instrument plays every goodness class once (the paper splits 8/2/2 instruments)."""
    klasses = ("good-sound", "bad-timbre", "bad-pitch", "bad-dynamics", "bad-attack")
    return [(i * len(klasses) + k + 1, f"instrument{i:02d}", klass)
            for i in range(instruments) for k, klass in enumerate(klasses)]


def nsynth(root: Path, per_family: int = 2, n: int = 400) -> Path:
    """``nsynth-{train,valid,test}/examples.json`` and ``audio/<note_str>.wav``; three
    families with ``per_family`` notes in every subset."""
    seed = 0
    for subset in ("train", "valid", "test"):
        folder, meta = root / f"nsynth-{subset}", {}
        for family, source in (("guitar", "acoustic"), ("bass", "synthetic"), ("organ", "electronic")):
            for k in range(per_family):
                seed += 1
                note = f"{family}_{source}_{seed:03d}-0{60 + k}-100"
                wav(folder / "audio" / f"{note}.wav", n=n, seed=seed)
                meta[note] = {"note_str": note, "instrument_family_str": family, "instrument_source_str": source,
                              "instrument_str": note.rsplit("-", 2)[0], "pitch": 60 + k, "velocity": 100}
        (folder / "examples.json").write_text(json.dumps(meta))
    return root


def librispeech(root: Path, speakers: int = 3, utterances: int = 4) -> tuple[Path, Path]:
    """``LibriSpeech/train-clean-100/<speaker>/<chapter>/*.flac`` with transcripts, and an
    alignment CSV (utterance,word,start,end) of three words in every utterance. Returns
    (the LibriSpeech folder, the alignment file)."""
    base = root / "LibriSpeech"
    rows = ["utterance,word,start,end"]
    for s in range(speakers):
        spk, chap = str(19 + s), str(198 + s)
        folder = base / "train-clean-100" / spk / chap
        for k in range(utterances):
            utt = f"{spk}-{chap}-{k:04d}"
            wav(folder / f"{utt}.flac", n=16000, seed=s * 10 + k, fmt="FLAC")
            rows += [f"{utt},the,0.00,0.25", f"{utt},cat,0.30,0.60", f"{utt},sat,0.65,0.95"]
        (folder / f"{spk}-{chap}.trans.txt").write_text(
            "".join(f"{spk}-{chap}-{k:04d} THE CAT SAT\n" for k in range(utterances)))
    align = root / "alignment.csv"
    align.write_text("\n".join(rows) + "\n")
    return base, align
