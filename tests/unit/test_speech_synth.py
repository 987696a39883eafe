"""The synthetic speech corpus: vocabulary, format, determinism, loudness vs style, cache.

The tiny corpus is generated once per session (in the shared XFERLAB_CACHE, so the e2e
tests reuse it); determinism is checked on a strided subset rendered serially, whose clips
must be byte-identical to the same clips of the parallel run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from xferlab.data import speech_synth as ss
from xferlab.data.noise import NOISE_KINDS
from xferlab.data.synth_voices import plan
from xferlab.errors import UserError

SC_WORDS = ("backward bed bird cat dog down eight five follow forward four go happy house learn "
            "left marvin nine no off on one right seven sheila six stop three tree two up visual "
            "wow yes zero").split()


@pytest.fixture(scope="module")
def tiny(cache_dir: Path) -> ss.Corpus:
    out = cache_dir / "synth" / ss.default_dir("tiny", 0).name
    return ss.generate_corpus("tiny", out=out, seed=0, workers=2, progress=False)


def _hashes(corpus: ss.Corpus, rows: pd.DataFrame) -> list[str]:
    return [hashlib.sha256((corpus.root / p).read_bytes()).hexdigest() for p in rows["path"]]


def test_label_vocabulary(tiny: ss.Corpus) -> None:
    assert list(ss.WORDS) == SC_WORDS
    assert list(ss.LABELS) == SC_WORDS + ["_silence_", "_unknown_"]
    assert set(tiny.words()) == set(ss.LABELS)
    assert not set(ss.UNKNOWN_WORDS) & set(SC_WORDS)
    assert set(tiny.manifest.loc[tiny.manifest.word == "_unknown_", "text"]) <= set(ss.UNKNOWN_WORDS)


def test_speakers_styles_engines(tiny: ss.Corpus) -> None:
    m = tiny.manifest
    assert len(tiny.speakers()) >= 8
    assert tiny.styles() == sorted(ss.STYLES)
    assert set(m.engine) == {"espeak", "flite", "festival"}
    speech = m[m.word != "_silence_"]
    assert (speech.groupby("speaker")["style"].nunique() == len(ss.STYLES)).all()


def test_clip_format(tiny: ss.Corpus) -> None:
    audio = tiny.load_audio()
    assert audio.shape == (len(tiny.manifest), 16000) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 1.0 and np.abs(audio).max(axis=1).min() > 0
    info = sf.info(tiny.root / tiny.manifest.path.iloc[0])
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")


def test_manifest_records_noise_and_placement(tiny: ss.Corpus) -> None:
    m = tiny.manifest
    speech = m[m.word != "_silence_"]
    assert set(m.noise) <= set(NOISE_KINDS) | {"none"}
    assert set(speech.noise) == set(NOISE_KINDS) | {"none"}
    assert speech.snr_db.isna().equals(speech.noise == "none")
    assert m.loc[m.word == "_silence_", "snr_db"].isna().all()
    assert (speech.offset + speech.n_speech <= 16000).all() and speech.offset.std() > 1000
    assert (m.loc[m.word == "_silence_", "style"] == "none").all()


def test_loudness_is_independent_of_style(tiny: ss.Corpus) -> None:
    """Level must not give the style away: both the drawn gain and the measured RMS of
    the clean speech have (nearly) the same mean in every style."""
    m = tiny.manifest
    clean = m[(m.word != "_silence_") & (m.noise == "none")]
    audio = tiny.load_audio(clean)
    rms = [10 * np.log10(np.mean(a[o: o + n] ** 2)) for a, o, n in zip(audio, clean.offset, clean.n_speech)]
    table = pd.DataFrame({"style": clean["style"], "gain": clean["gain_db"], "rms": rms})
    by_style = table.groupby("style").mean()
    assert by_style["gain"].max() - by_style["gain"].min() < 3.0
    assert by_style["rms"].max() - by_style["rms"].min() < 3.0
    assert np.allclose(rms, clean["gain_db"], atol=0.5)  # the recorded gain is the level


def test_deterministic_and_independent_of_workers(tiny: ss.Corpus, tmp_path: Path) -> None:
    sub = ss.generate_corpus("tiny", out=tmp_path / "sub", seed=0, workers=1, progress=False, _subset=10)
    same = tiny.manifest.set_index("index").loc[sub.manifest["index"]].reset_index()
    pd.testing.assert_frame_equal(sub.manifest, same[sub.manifest.columns])
    assert set(sub.manifest.engine) == {"espeak", "flite", "festival"}
    assert _hashes(sub, sub.manifest) == _hashes(tiny, same)
    assert plan(ss.PROFILES["tiny"], 1)[0] != plan(ss.PROFILES["tiny"], 0)[0]


@pytest.mark.parametrize("profile, per_word", [("speakers", 4), ("speakers8", 8)])
def test_the_speakers_profiles_have_the_small_profiles_voices(profile: str, per_word: int) -> None:
    """The speaker-identity profiles must be the quickstart's 32 voices (speakers are drawn
    before any clip), each word said ``per_word`` times instead of 2, every style equally
    often, so a speaker model trained on them knows the speakers of the small corpus's tasks."""
    small, speakers = plan(ss.PROFILES["small"], 0), plan(ss.PROFILES[profile], 0)
    assert {t.speaker for t in small} == {t.speaker for t in speakers}
    words = [t for t in speakers if t.word not in (ss.SILENCE, ss.UNKNOWN)]
    per_speaker = pd.Series([t.speaker.id for t in words]).value_counts()
    assert (per_speaker == per_word * len(ss.WORDS)).all() and len(per_speaker) == 32
    styles = pd.Series([(t.speaker.id, t.word, t.style) for t in words]).value_counts()
    assert (styles == per_word // len(ss.STYLES)).all()


def test_cache_hit_returns_at_once(tiny: ss.Corpus) -> None:
    stamp = (tiny.root / "manifest.csv").stat().st_mtime_ns
    start = time.perf_counter()
    again = ss.generate_corpus("tiny", out=tiny.root, seed=0, progress=False)
    assert time.perf_counter() - start < 2.0
    assert (tiny.root / "manifest.csv").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again.manifest, ss.load_corpus(tiny.root).manifest)


def test_incomplete_directory_is_not_complete(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    (out / "clips").mkdir(parents=True)
    (out / "manifest.csv").write_text("path,word\n")
    with pytest.raises(UserError, match="not a complete synthetic corpus"):
        ss.load_corpus(out)
    corpus = ss.generate_corpus("tiny", out=out, workers=1, progress=False, _subset=3)
    assert (out / ss.MARKER).is_file() and len(corpus.manifest) == 3


def test_foreign_directories_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / ss.MARKER).write_text(json.dumps({"profile": "small", "seed": 0}))
    with pytest.raises(UserError, match="another corpus"):
        ss.generate_corpus("tiny", out=other, progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a synthetic corpus"):
        ss.generate_corpus("tiny", out=tmp_path / "mine", progress=False)
    with pytest.raises(UserError, match="data.profile='huge' is not a synthetic corpus profile"):
        ss.generate_corpus("huge", out=tmp_path / "x")


def test_missing_engine_names_the_apt_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(UserError) as err:
        ss.generate_corpus("tiny", out=tmp_path / "c", progress=False)
    message = str(err.value)
    assert "espeak-ng" in message and "apt-get install -y" in message
    assert "festvox-kallpc16k" in message and "\n" not in message
    assert not (tmp_path / "c").exists()


def test_the_large_profile_adds_voices_to_the_full_ones() -> None:
    """A source model trained on `large` is compared with one trained on `full`: the larger
    corpus must hold the full corpus's 160 voices and 160 new ones, every word in as many
    styles, so that only the number of voices differs."""
    assert dataclasses.replace(ss.PROFILES["full"], n_speakers=320) == ss.PROFILES["large"]
    full, large = plan(ss.PROFILES["full"], 0), plan(ss.PROFILES["large"], 0)
    full_voices, large_voices = {t.speaker for t in full}, {t.speaker for t in large}
    assert len(full_voices) == 160 and len(large_voices) == 320 and full_voices < large_voices
    per_voice = pd.Series([t.speaker.id for t in large]).value_counts()
    assert (per_voice == len(full) // 160).all()


def test_style_strength_scales_the_styles_and_nothing_else(tiny: ss.Corpus, tmp_path: Path) -> None:
    """At strength 2 each style's F0 and rate factors apply twice over the same draws, the
    neutral and silent clips stay byte-identical, and the corpus gets its own folder."""
    assert ss.default_dir("tiny", 0, 2.0).name.endswith("-style2")
    assert ss.default_dir("tiny", 0, 1.0) == ss.default_dir("tiny", 0)
    one, two = plan(ss.PROFILES["tiny"], 0), plan(ss.PROFILES["tiny"], 0, 2.0)
    assert [repr(dataclasses.replace(t, style_strength=1.0)) for t in two] == [repr(t) for t in one]  # (NaN SNRs)
    sub = ss.generate_corpus("tiny", out=tmp_path / "k2", seed=0, workers=1, progress=False, _subset=24,
                             style_strength=2.0)
    base = tiny.manifest.set_index("index").loc[sub.manifest["index"]].reset_index()
    for style in ("happy", "sad", "angry", "neutral"):
        mine, theirs = sub.manifest[sub.manifest["style"] == style], base[base["style"] == style]
        assert len(mine) > 0, style
        factor = ss.STYLES[style]
        np.testing.assert_allclose(mine["f0"].to_numpy() / theirs["f0"].to_numpy(), factor.f0, rtol=1e-9)
        np.testing.assert_allclose(mine["rate"].to_numpy() / theirs["rate"].to_numpy(), factor.rate, rtol=1e-9)
    same = sub.manifest["style"].isin(["neutral", "none"]).to_numpy()
    assert same.any() and _hashes(sub, sub.manifest[same]) == _hashes(tiny, base[same])
    with pytest.raises(UserError, match="another corpus"):  # the folder holds strength 2
        ss.generate_corpus("tiny", out=tmp_path / "k2", seed=0, progress=False, _subset=24)


def test_style_strength_scaling_and_range() -> None:
    for style in ss.STYLES.values():
        assert style.scaled(1.0) == style and style.scaled(0.0) == ss.STYLES["neutral"]
    assert ss.STYLES["sad"].scaled(2.0).rate == pytest.approx(ss.STYLES["sad"].rate ** 2)
    for bad in (-0.5, 2.5):
        with pytest.raises(UserError, match=r"data.style_strength=.* is out of range: use 0 .* to 2"):
            ss.generate_corpus("tiny", out=Path("/nonexistent"), style_strength=bad)
    with pytest.raises(UserError, match=r"data.style_strength=1.0000001 has more than two decimals: round it \(e.g. 1\)"):
        ss.generate_corpus("tiny", out=Path("/nonexistent"), style_strength=1.0000001)
    assert ss.default_dir("tiny", 0, -0.0) == ss.default_dir("tiny", 0, 0.0)


def test_a_corpus_marked_before_style_strength_is_reused(tmp_path: Path) -> None:
    """Markers written before the option have no style_strength: they hold strength 1."""
    out = tmp_path / "old"
    ss.generate_corpus("tiny", out=out, workers=1, progress=False, _subset=3)
    marker = json.loads((out / ss.MARKER).read_text())
    del marker["style_strength"]
    (out / ss.MARKER).write_text(json.dumps(marker))
    stamp = (out / "manifest.csv").stat().st_mtime_ns
    ss.generate_corpus("tiny", out=out, progress=False, _subset=3)
    assert (out / "manifest.csv").stat().st_mtime_ns == stamp
