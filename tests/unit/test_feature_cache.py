"""The on-disk feature cache: the same numbers as the in-memory path, written once, never
read half-written, keyed by everything that produced it; the streamed split batches like
an in-memory TensorDataset."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from xferlab.at.streams import ZScoredSplit
from xferlab.data import audio
from xferlab.data.rows import Rows
from xferlab.data.feature_cache import MARKER, cached_spectrograms, describe_cache, feature_key
from xferlab.data.features import LOG_FLOOR, MAGNITUDES, GlobalZScore, segment_clips, spectrogram

DATA = {"dataset": "fake/task", "root": None, "max_items": None, "segment_s": 0.5}


def fake_task(seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    splits = {"train": 7, "val": 3, "test": 3}
    x = {k: rng.normal(0, 0.1, (n, 12000)).astype(np.float32) for k, n in splits.items()}
    y = {k: np.arange(n) % 2 for k, n in splits.items()}
    return SimpleNamespace(name="fake", x=x, y=y, classes=["a", "b"], n_classes=2)


def reference(task: SimpleNamespace, seconds: float, magnitude: str = "linear") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The in-memory computation the AT job used before the cache (log: numpy's log of the
    magnitude plus the floor, z-scored on the training split's own statistics)."""
    feats = {}
    for split in task.x:
        segs, y, _ = segment_clips(list(task.x[split]), task.y[split], seconds)
        mag = spectrogram(segs).numpy().astype(np.float64)
        feats[split] = (np.log(mag + LOG_FLOOR) if magnitude == "log" else mag, y)
    z = GlobalZScore.fit(feats["train"][0])
    return {split: (z(x).numpy(), y) for split, (x, y) in feats.items()}


@pytest.mark.parametrize("magnitude", MAGNITUDES)
def test_cached_features_equal_the_in_memory_computation(tmp_path: Path, magnitude: str):
    task = fake_task()
    cache, hit = cached_spectrograms("fake/task", DATA, 0.5, lambda: task, root=tmp_path)
    assert not hit and (cache.root / MARKER).is_file()
    ref = reference(task, 0.5, magnitude)
    for split, (x_ref, y_ref) in ref.items():
        streamed = ZScoredSplit.of(cache, split, magnitude)
        x = torch.stack([streamed[i][0] for i in range(len(streamed))]).numpy()
        np.testing.assert_allclose(x, x_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(cache.split(split)[1], y_ref)
    assert cache.meta["classes"] == ["a", "b"] and cache.meta["n_classes"] == 2


def test_a_second_instance_reads_without_decoding(tmp_path: Path):
    cached_spectrograms("fake/task", DATA, 0.5, fake_task, root=tmp_path)

    def must_not_decode() -> None:
        raise AssertionError("decoded again")

    cache, hit = cached_spectrograms("fake/task", DATA, 0.5, must_not_decode, root=tmp_path)
    assert hit and isinstance(cache.split("train")[0], Rows)
    assert "1 dataset feature set(s)" in describe_cache(tmp_path)


def test_a_half_written_cache_is_never_used(tmp_path: Path):
    key = feature_key("fake/task", DATA, 0.5)
    (tmp_path / key).mkdir()
    (tmp_path / key / "meta.json").write_text("{broken")  # a folder without the COMPLETE marker

    def killed() -> None:
        raise KeyboardInterrupt  # a writer killed half-way leaves nothing behind

    with pytest.raises(KeyboardInterrupt):
        cached_spectrograms("fake/task", DATA, 0.5, killed, root=tmp_path)
    assert not list(tmp_path.glob("*.tmp-*"))
    cache, hit = cached_spectrograms("fake/task", DATA, 0.5, fake_task, root=tmp_path)
    assert not hit and cache.meta["n_classes"] == 2


def test_the_key_covers_what_produced_the_features():
    base = feature_key("fake/task", DATA, 0.5)
    assert feature_key("fake/task", {**DATA, "segment_s": 9.0}, 0.5) == base  # the length is counted once
    assert feature_key("fake/task", DATA, 1.0) != base
    assert feature_key("fake/task", {**DATA, "max_items": 10}, 0.5) != base
    assert feature_key("fake/task", {**DATA, "root": "/elsewhere"}, 0.5) != base
    assert feature_key("fake/other", DATA, 0.5) != base


def test_the_key_follows_reader_fallbacks_relative_roots_and_the_generator(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    base = feature_key("gsc/digits_noisy", DATA, 1.0)
    monkeypatch.setenv("XFERLAB_MSSNSD_DIR", "/data/MS-SNSD")  # the noisy digits' fallback noise folder
    assert feature_key("gsc/digits_noisy", DATA, 1.0) != base
    monkeypatch.chdir(tmp_path)
    relative = feature_key("gsc/digits", {**DATA, "root": "gsc"}, 1.0)
    monkeypatch.chdir(tmp_path.parent)
    assert feature_key("gsc/digits", {**DATA, "root": "gsc"}, 1.0) != relative  # another folder
    from xferlab.registry import DATASETS

    assert DATASETS.meta("synth/style").get("version")  # the corpus generator's version is in the key


def test_streamed_batches_equal_in_memory_batches(tmp_path: Path):
    cache, _ = cached_spectrograms("fake/task", DATA, 0.5, fake_task, root=tmp_path)
    x, y = cache.split("train")
    streamed = ZScoredSplit.of(cache, "train")
    mean, std = cache.stats()
    memory = TensorDataset(torch.as_tensor((np.asarray(x) - mean) / std).float(), torch.as_tensor(y))
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for (xa, ya), (xb, yb) in zip(DataLoader(streamed, 4, shuffle=True, generator=gen_a),
                                  DataLoader(memory, 4, shuffle=True, generator=gen_b)):
        torch.testing.assert_close(xa, xb)
        assert torch.equal(ya, yb)


def test_rows_read_what_a_memory_map_reads(tmp_path: Path):
    x = np.random.default_rng(0).normal(size=(50, 7, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rows = Rows(tmp_path / "x.npy")
    assert len(rows) == 50 and rows.shape == x.shape
    np.testing.assert_array_equal(rows[3], x[3])
    np.testing.assert_array_equal(rows[-1], x[-1])
    np.testing.assert_array_equal(rows[10:20], x[10:20])
    np.testing.assert_array_equal(rows[5:30:4], x[5:30:4])
    picked = np.array([9, 2, 3, 4, 40, 2, 49, 0])  # unsorted, runs, a repeat
    np.testing.assert_array_equal(rows[picked], x[picked])
    np.testing.assert_array_equal(np.asarray(rows), x)


def test_clip_lengths_from_headers_equal_the_decoded_lengths(tmp_path: Path):
    """The writer sizes its file from headers: they must agree with decoding, for
    resampled files, stretches, a stretch past the file's end and FLAC."""
    from tests.fake_trees import wav

    files = [wav(tmp_path / "a.wav", n=44100, sr=44100), wav(tmp_path / "b.flac", n=8000, sr=8000, fmt="FLAC"),
             wav(tmp_path / "c.wav", n=12345, sr=22050), wav(tmp_path / "d.wav", n=16000)]
    rows = pd.DataFrame([{"path": str(f), "start": start, "end": end} for f in files
                         for start, end in ((None, None), (0.1, 0.35), (0.2, 5.0), (0.0, 0.05))])
    clips = audio.LazyClips(rows)
    for i in range(len(clips)):
        assert clips.samples(i) == len(clips[i]), rows.iloc[i].to_dict()


def test_a_reader_task_is_decoded_once_clip_by_clip_into_the_cache(tmp_path: Path, monkeypatch):
    """A reader's clips are decoded lazily: each once, while the cache is written, and the
    cached values equal the in-memory computation on the decoded clips."""
    from tests.fake_trees import wav

    rows = pd.DataFrame([{"path": str(wav(tmp_path / f"{i}.wav", n=4000 + 1500 * i, seed=i)),
                          "label": "ab"[i % 2], "group": str(i)} for i in range(12)])
    parts = {"train": rows[:6], "val": rows[6:9], "test": rows[9:]}
    task = audio.to_task("fake/reader", parts)
    decoded = {k: [np.asarray(c) for c in v] for k, v in task.x.items()}
    calls = []
    real = audio.load_row
    monkeypatch.setattr(audio, "load_row", lambda row, *a, **k: calls.append(row["path"]) or real(row, *a, **k))
    cache, _ = cached_spectrograms("fake/reader", DATA, 0.5, lambda: task, root=tmp_path / "cache")
    assert sorted(calls) == sorted(rows["path"])  # every clip decoded exactly once
    ref = reference(SimpleNamespace(x=decoded, y=task.y), 0.5)
    for split, (x_ref, y_ref) in ref.items():
        streamed = ZScoredSplit.of(cache, split)
        np.testing.assert_allclose(streamed.inputs(0, len(streamed)).numpy(), x_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(cache.split(split)[1], y_ref)
