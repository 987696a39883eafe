"""Readers of the real datasets, each on a tiny fake tree in its published layout."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from xferlab.data import audio, goodsounds, iemocap, librispeech, mssnsd, nsynth, speech_commands as gsc
from xferlab.errors import UserError
from xferlab.registry import DATASETS
from tests import fake_trees
from tests.fake_trees import wav


# --- audio helpers ------------------------------------------------------------------------
def test_resampled_to_16k_with_right_length_and_mono(tmp_path: Path) -> None:
    x = audio.read_audio(wav(tmp_path / "a.wav", n=4410, sr=44100, channels=2))
    assert x.dtype == np.float32 and x.shape == (1600,)
    part = audio.read_audio(tmp_path / "a.wav", start=0.025, end=0.075)
    assert part.shape == (800,)


def test_missing_and_unreadable_audio_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist: .*data.root"):
        audio.read_audio(tmp_path / "nope.wav")
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(UserError, match="cannot read audio file .*: replace the file"):
        audio.read_audio(tmp_path / "bad.wav")


# --- Speech Commands + MS-SNSD --------------------------------------------------------------
@pytest.fixture
def gsc_root(tmp_path: Path) -> Path:
    root = tmp_path / "speech_commands"
    seed = 0
    for word in (*gsc.DIGITS, "yes", "no"):
        for spk in ("aaaa0001", "bbbb0002", "cccc0003"):
            for k in range(2):
                seed += 1
                wav(root / word / f"{spk}_nohash_{k}.wav", seed=seed)
    (root / "validation_list.txt").write_text("yes/bbbb0002_nohash_0.wav\nyes/bbbb0002_nohash_1.wav\n")
    (root / "testing_list.txt").write_text("yes/cccc0003_nohash_0.wav\nno/cccc0003_nohash_1.wav\n")
    wav(root / "_background_noise_" / "white_noise.wav", n=32000, seed=99)
    return root


@pytest.fixture
def mssnsd_root(tmp_path: Path) -> Path:
    root = tmp_path / "MS-SNSD"
    for i, name in enumerate(["AirConditioner_1", "AirConditioner_2", "Babble_1", "Typing_10", "Typing_3"]):
        wav(root / "noise_train" / f"{name}.wav", n=8000 + 3000 * i, seed=100 + i)
    wav(root / "noise_test" / "Babble_7.wav", n=6000, seed=200)
    for i in range(7):
        wav(root / "clean_train" / f"clnsp{i}.wav", n=1200, seed=300 + i)
    return root


def test_gsc_labels_speakers_and_published_splits(gsc_root: Path) -> None:
    df = gsc.read_speech_commands(gsc_root)
    assert len(df) == 12 * 6 and set(df["label"]) == {*gsc.DIGITS, "yes", "no"}
    split = dict(zip(df["path"].map(lambda p: "/".join(Path(p).parts[-2:])), df["split"]))
    assert split["yes/bbbb0002_nohash_1.wav"] == "val" and split["no/cccc0003_nohash_1.wav"] == "test"
    assert split["no/cccc0003_nohash_0.wav"] == "train" and (df["split"] == "train").sum() == 68
    assert set(df["speaker"]) == {"aaaa0001", "bbbb0002", "cccc0003"} and (df["group"] == df["speaker"]).all()
    assert all(Path(p).is_absolute() for p in df["path"])


def test_gsc_layout_errors_name_the_fix(gsc_root: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist: point data.root"):
        gsc.read_speech_commands(tmp_path / "missing")
    with pytest.raises(UserError, match="no word folders.*point data.root"):
        gsc.read_speech_commands(gsc_root / "_background_noise_")
    with pytest.raises(UserError, match=r"no word folder\(s\) \['cat'\]: choose words"):
        gsc.read_speech_commands(gsc_root, ["yes", "cat"])
    (gsc_root / "testing_list.txt").unlink()
    with pytest.raises(UserError, match="no testing_list.txt: point data.root"):
        gsc.read_speech_commands(gsc_root)


def test_gsc_source_task_silence_and_unknown(gsc_root: Path) -> None:
    df = gsc.source_manifest(gsc_root, words=("yes", "no"), silence=0.5, unknown=0.5)
    counts = df.groupby(["split", "label"]).size()
    # train: yes 3 + no 5 known clips -> 4 unknown (digits) -> (8 + 4) * 0.5 = 6 silence crops
    assert (counts[("train", "yes")], counts[("train", "no")]) == (3, 5)
    assert (counts[("train", gsc.UNKNOWN)], counts[("train", gsc.SILENCE)]) == (4, 6)
    assert set(df.loc[df["label"] == gsc.UNKNOWN, "word"]) <= set(gsc.DIGITS)
    x = gsc.load_audio(df[df["label"] == gsc.SILENCE].head(3), length=16000)
    assert x.shape == (3, 16000) and np.abs(x).max() <= 0.5
    assert len(gsc.WORDS_V2) == 35 and len(gsc.WORDS_V1) == 30


def test_digits_balanced_and_seeded(gsc_root: Path) -> None:
    a = gsc.digits_manifest(gsc_root, per_class=4, seed=1)
    assert a["label"].value_counts().to_dict() == {d: 4 for d in gsc.DIGITS}
    assert a["path"].tolist() == gsc.digits_manifest(gsc_root, per_class=4, seed=1)["path"].tolist()
    assert a["path"].tolist() != gsc.digits_manifest(gsc_root, per_class=4, seed=2)["path"].tolist()
    with pytest.raises(UserError, match="fewer than per_class=7: lower"):
        gsc.digits_manifest(gsc_root, per_class=7)


@pytest.mark.parametrize("condition", ["noisy", "verynoisy"])
def test_noisy_digits_have_the_intended_snr(gsc_root: Path, mssnsd_root: Path, condition: str) -> None:
    df = gsc.noisy_digits(gsc_root, mssnsd_root, condition, per_class=3, seed=0)
    low, high = gsc.SNR_RANGES[condition]
    assert df["path"].is_unique and len(df) == 30  # one mixture per clip
    assert df["snr_db"].between(low, high).all() and df["snr_db"].std() > 0
    assert set(df["noise_type"]) <= {"AirConditioner", "Babble", "Typing"}
    rows = df.head(6)
    clean = gsc.load_audio(rows.drop(columns=["noise_path", "snr_db"]), length=16000)
    noisy = gsc.load_audio(rows, length=16000)
    for c, n, target in zip(clean, noisy, rows["snr_db"]):
        measured = 10 * np.log10(np.mean(c.astype(np.float64) ** 2) / np.mean((n - c.astype(np.float64)) ** 2))
        assert abs(measured - target) < 0.1
    assert gsc.noisy_digits(gsc_root, None, "clean", per_class=3).shape[0] == 30
    with pytest.raises(UserError, match="need MS-SNSD noise: set data.noise_root"):
        gsc.noisy_digits(gsc_root, None, condition, per_class=3)
    with pytest.raises(UserError, match="unknown: use clean, noisy, verynoisy"):
        gsc.noisy_digits(gsc_root, mssnsd_root, "loud", per_class=3)


def test_mssnsd_noise_types_from_file_names(mssnsd_root: Path, tmp_path: Path) -> None:
    noises = mssnsd.read_noises(mssnsd_root)
    assert dict(zip(noises["group"], noises["label"]))["Typing_10"] == "Typing"
    assert noises.groupby("split")["label"].apply(set).to_dict() == {
        "train": {"AirConditioner", "Babble", "Typing"}, "test": {"Babble"}}
    assert mssnsd.noise_type("Neighbor_speaking_2.wav") == "Neighbor_speaking"
    df = mssnsd.noisy_speech_manifest(mssnsd_root, snr_range=(5.0, 15.0))
    assert sorted(df["label"].value_counts().tolist()) == [2, 2, 3] and (df["label"] == df["noise_type"]).all()
    assert df["path"].is_unique and df["snr_db"].between(5, 15).all()
    assert all(mssnsd.noise_type(p) == t for p, t in zip(df["noise_path"], df["label"]))
    only = mssnsd.noisy_speech_manifest(mssnsd_root, types=["Babble", "Typing"])
    assert set(only["label"]) == {"Babble", "Typing"}
    with pytest.raises(UserError, match=r"noise types \['Wind'\] are not in"):
        mssnsd.read_noises(mssnsd_root, types=["Wind"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no noise_train/.*clone of the MS-SNSD repository"):
        mssnsd.read_noises(tmp_path / "empty")


def test_gsc_registry_factory_gives_a_task(gsc_root: Path, mssnsd_root: Path) -> None:
    task = DATASETS.create("gsc/digits_verynoisy", {"root": str(gsc_root), "noise_root": str(mssnsd_root),
                                                  "per_class": 3})
    assert task.classes == list(gsc.DIGITS) and np.asarray(task.x["train"]).shape[1] == 16000
    assert sum(len(y) for y in task.y.values()) == 30 and task.info["condition"] == "verynoisy"


# --- IEMOCAP --------------------------------------------------------------------------------
EVAL_LINES = {  # utterance -> category code, per session
    1: {"Ses01F_impro01_F000": "neu", "Ses01F_impro01_M001": "ang", "Ses01F_impro01_F002": "exc",
        "Ses01F_script01_1_M003": "fru"},
    2: {"Ses02M_impro02_F000": "hap", "Ses02M_impro02_M001": "sad"},
    3: {"Ses03F_impro01_M000": "xxx", "Ses03F_impro01_F001": "neu"},
    4: {"Ses04M_script02_2_F000": "sad"},
    5: {"Ses05F_impro03_M000": "ang", "Ses05F_impro03_F001": "hap"},
}


@pytest.fixture
def iemocap_root(tmp_path: Path) -> Path:
    return fake_trees.iemocap(tmp_path, EVAL_LINES)


def test_iemocap_labels_dropped_emotions_and_exc_option(iemocap_root: Path) -> None:
    df = iemocap.read_iemocap(iemocap_root)  # the parent of IEMOCAP_full_release is accepted
    labels = dict(zip(df["utterance"], df["label"]))
    assert labels == {"Ses01F_impro01_F000": "neutral", "Ses01F_impro01_M001": "angry",
                      "Ses02M_impro02_F000": "happy", "Ses02M_impro02_M001": "sad",
                      "Ses03F_impro01_F001": "neutral", "Ses04M_script02_2_F000": "sad",
                      "Ses05F_impro03_M000": "angry", "Ses05F_impro03_F001": "happy"}
    row = df.set_index("utterance").loc["Ses01F_impro01_M001"]
    assert (row["speaker"], row["gender"], row["session"], row["group"]) == ("Ses01M", "M", 1, "Session1")
    assert Path(row["path"]).is_file()
    merged = iemocap.read_iemocap(iemocap_root / "IEMOCAP_full_release", merge_excited=True)
    assert dict(zip(merged["utterance"], merged["label"]))["Ses01F_impro01_F002"] == "happy"
    assert len(merged) == 9 and set(merged["label"]) == {"neutral", "angry", "happy", "sad"}


def test_iemocap_speakerwise_split_and_speaker_task(iemocap_root: Path) -> None:
    parts = iemocap.session_split(iemocap.read_iemocap(iemocap_root))
    assert {k: sorted(set(v["session"])) for k, v in parts.items()} == {"train": [1, 2, 3], "val": [4], "test": [5]}
    spk = iemocap.speaker_labels(iemocap.read_iemocap(iemocap_root, keep_all=True))
    assert len(spk) == 11 and sorted(spk["label"].unique()) == [f"Session{n}" for n in range(1, 6)]
    task = DATASETS.create("iemocap/emotion_speakerwise", {"root": str(iemocap_root)})
    assert task.classes == ["angry", "happy", "neutral", "sad"] and len(task.x["test"]) == 2


def test_iemocap_layout_errors_name_the_fix(iemocap_root: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    with pytest.raises(UserError, match="no Session1..5/dialog/EmoEvaluation: point data.root at the "
                                        "IEMOCAP_full_release folder"):
        iemocap.read_iemocap(tmp_path / "other")
    next((iemocap_root / "IEMOCAP_full_release" / "Session2").rglob("*.wav")).unlink()
    with pytest.raises(UserError, match="have no audio.*re-extract"):
        iemocap.read_iemocap(iemocap_root)


# --- Good-Sounds ----------------------------------------------------------------------------
SOUNDS = [  # id, instrument, klass
    (1, "flute", "good-sound"), (2, "flute", "bad-richness"), (3, "cello", "bad-timbre"),
    (4, "cello", "bad-pitch"), (5, "violin", "bad-dynamics"), (6, "violin", "bad-attack"),
    (7, "violin", "scale-good"), (8, "cello", "bad-pitch bad-timbre"), (9, "trumpet", "good-sound"),
]


@pytest.fixture
def goodsounds_root(tmp_path: Path) -> Path:
    return fake_trees.goodsounds(tmp_path / "good-sounds", SOUNDS)


def test_goodsounds_goodness_classes(goodsounds_root: Path) -> None:
    df = goodsounds.read_goodsounds(goodsounds_root)
    by_sound = df.groupby("sound_id")["label"].first().to_dict()
    assert by_sound == {1: "good", 2: "bad-timbre", 3: "bad-timbre", 4: "bad-pitch", 5: "bad-dynamics",
                        6: "bad-attack", 9: "good"}  # richness -> timbre; scale and mixed classes dropped
    assert len(df) == 14 and set(df["microphone"]) == {"neumann", "akg"} and set(df["pack"]) == {"mixed_pack"}
    assert all(Path(p).is_file() for p in df["path"]) and (df["group"] == df["instrument"]).all()
    balanced = audio.balance_classes(df, seed=0)
    assert set(balanced["label"].value_counts()) == {2}


def test_goodsounds_instrument_labels_are_distinct(goodsounds_root: Path) -> None:
    df = goodsounds.instrument_labels(goodsounds.read_goodsounds(goodsounds_root, keep_all=True))
    assert sorted(df["label"].unique()) == ["cello", "flute", "trumpet", "violin"]
    targets = df["label"].map(goodsounds.class_index(df["label"]))
    assert targets.nunique() == 4  # the original's argmax made every target 0 (defect 8)
    parts = goodsounds.instrument_split(df, counts=(2, 1, 1), seed=0)
    seen = [set(p["instrument"]) for p in parts.values()]
    assert [len(s) for s in seen] == [2, 1, 1] and set.union(*seen) == set(df["instrument"])
    with pytest.raises(UserError, match="give three positive counts summing to 4"):
        goodsounds.instrument_split(df)


def test_goodsounds_layout_errors_name_the_fix(goodsounds_root: Path, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(UserError, match="no database.sqlite: point data.root at the good-sounds folder"):
        goodsounds.read_goodsounds(tmp_path / "x")
    con = sqlite3.connect(goodsounds_root / "database.sqlite")
    con.execute("ALTER TABLE sounds RENAME COLUMN klass TO quality")
    con.commit()
    con.close()
    with pytest.raises(UserError, match=r"table sounds lacks column\(s\) \['klass'\]"):
        goodsounds.read_goodsounds(goodsounds_root)


# --- NSynth ---------------------------------------------------------------------------------
def test_nsynth_families_and_layout_errors(tmp_path: Path) -> None:
    notes = {"train": [("guitar_acoustic_001-060-100", "guitar", "acoustic"),
                       ("bass_synthetic_009-052-050", "bass", "synthetic")],
             "valid": [("organ_electronic_104-040-127", "organ", "electronic")],
             "test": [("guitar_electronic_022-070-075", "guitar", "electronic")]}
    for subset, items in notes.items():
        folder = tmp_path / f"nsynth-{subset}"
        meta = {}
        for i, (note, family, source) in enumerate(items):
            wav(folder / "audio" / f"{note}.wav", seed=i)
            meta[note] = {"note_str": note, "instrument_family_str": family, "instrument_source_str": source,
                          "instrument_str": note.rsplit("-", 2)[0], "pitch": int(note.split("-")[1]),
                          "velocity": int(note.split("-")[2])}
        (folder / "examples.json").write_text(json.dumps(meta))
    df = nsynth.read_nsynth(tmp_path)
    assert dict(zip(df["note"], df["label"]))["bass_synthetic_009-052-050"] == "bass"
    assert df.groupby("split").size().to_dict() == {"train": 2, "val": 1, "test": 1}
    assert set(df["group"]) == {"guitar_acoustic_001", "bass_synthetic_009", "organ_electronic_104",
                                "guitar_electronic_022"}
    (tmp_path / "nsynth-test" / "audio" / "guitar_electronic_022-070-075.wav").unlink()
    with pytest.raises(UserError, match="have no audio/<note_str>.wav"):
        nsynth.read_nsynth(tmp_path)
    with pytest.raises(UserError, match="no nsynth-train/, nsynth-valid/, nsynth-test/: point data.root"):
        nsynth.read_nsynth(tmp_path / "nsynth-train")


# --- LibriSpeech ----------------------------------------------------------------------------
def test_librispeech_speakers_and_word_segments(tmp_path: Path) -> None:
    subset = tmp_path / "LibriSpeech" / "train-clean-100"
    texts = {("19", "198"): ["THE CAT SAT", "THE DOG"], ("26", "495"): ["A CAT"]}
    for (spk, chap), lines in texts.items():
        folder = subset / spk / chap
        for k, _ in enumerate(lines):
            wav(folder / f"{spk}-{chap}-{k:04d}.flac", n=16000, seed=k, fmt="FLAC")
        (folder / f"{spk}-{chap}.trans.txt").write_text(
            "".join(f"{spk}-{chap}-{k:04d} {t}\n" for k, t in enumerate(lines)))
    df = librispeech.read_librispeech(tmp_path / "LibriSpeech")
    assert sorted(df["label"]) == ["19", "19", "26"] and set(df["subset"]) == {"train-clean-100"}
    assert librispeech.read_librispeech(subset)["utterance"].tolist() == df["utterance"].tolist()
    align = tmp_path / "align.csv"
    align.write_text("utterance,word,start,end\n19-198-0000,THE,0.10,0.20\n19-198-0000,cat,0.20,0.45\n"
                     "19-198-0000,,0.45,0.50\n19-198-0000,sat,0.50,0.70\n19-198-0001,the,0.00,0.10\n"
                     "19-198-0001,dog,0.10,0.30\n26-495-0000,cat,0.30,0.55\n99-1-0000,the,0,1\n")
    seg = librispeech.word_segments(df, align, top_k=2)
    assert seg.groupby("label").size().to_dict() == {"cat": 2, "the": 2}
    assert dict(zip(seg["label"] + seg["start"].astype(str), seg["group"]))["cat0.3"] == "26"
    clips = librispeech.load_audio(seg)
    assert [len(c) for c in clips] == [int(round((e - s) * 16000)) for s, e in zip(seg["start"], seg["end"])]
    (tmp_path / "bad.csv").write_text("utt,word\nx,y\n")
    with pytest.raises(UserError, match="header must be utterance,word,start,end"):
        librispeech.read_alignment(tmp_path / "bad.csv")
    with pytest.raises(UserError, match=r"no subset\(s\) \['dev-clean'\]"):
        librispeech.read_librispeech(tmp_path / "LibriSpeech", ["dev-clean"])


def test_goodsounds_microphone_option(goodsounds_root: Path) -> None:
    df = goodsounds.read_goodsounds(goodsounds_root, microphone="akg")
    assert len(df) == 7 and df["sound_id"].is_unique
    with pytest.raises(UserError, match=r"no takes by microphone 'iphone': choose from \['akg', 'neumann'\]"):
        goodsounds.read_goodsounds(goodsounds_root, microphone="iphone")
