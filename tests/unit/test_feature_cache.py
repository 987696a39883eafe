"""The on-disk feature cache: the same numbers as the in-memory path, written once, never
read half-written, keyed by everything that produced it; the streamed split batches like
an in-memory TensorDataset."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from xferlab.at.streams import ZScoredSplit
from xferlab.data.feature_cache import MARKER, cached_spectrograms, describe_cache, feature_key
from xferlab.data.features import GlobalZScore, segment_clips, spectrogram

DATA = {"dataset": "fake/task", "root": None, "max_items": None, "segment_s": 0.5}


def fake_task(seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    splits = {"train": 7, "val": 3, "test": 3}
    x = {k: rng.normal(0, 0.1, (n, 12000)).astype(np.float32) for k, n in splits.items()}
    y = {k: np.arange(n) % 2 for k, n in splits.items()}
    return SimpleNamespace(name="fake", x=x, y=y, classes=["a", "b"], n_classes=2)


def reference(task: SimpleNamespace, seconds: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The in-memory computation the AT job used before the cache."""
    feats = {}
    for split in task.x:
        segs, y, _ = segment_clips(list(task.x[split]), task.y[split], seconds)
        feats[split] = (spectrogram(segs).numpy(), y)
    z = GlobalZScore.fit(feats["train"][0])
    return {split: (z(x).numpy(), y) for split, (x, y) in feats.items()}


def test_cached_features_equal_the_in_memory_computation(tmp_path: Path):
    task = fake_task()
    cache, hit = cached_spectrograms("fake/task", DATA, 0.5, lambda: task, root=tmp_path)
    assert not hit and (cache.root / MARKER).is_file()
    ref = reference(task, 0.5)
    for split, (x_ref, y_ref) in ref.items():
        streamed = ZScoredSplit(*cache.split(split), cache.mean, cache.std)
        x = torch.stack([streamed[i][0] for i in range(len(streamed))]).numpy()
        np.testing.assert_allclose(x, x_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(cache.split(split)[1], y_ref)
    assert cache.meta["classes"] == ["a", "b"] and cache.meta["n_classes"] == 2


def test_a_second_instance_reads_without_decoding(tmp_path: Path):
    cached_spectrograms("fake/task", DATA, 0.5, fake_task, root=tmp_path)

    def must_not_decode() -> None:
        raise AssertionError("decoded again")

    cache, hit = cached_spectrograms("fake/task", DATA, 0.5, must_not_decode, root=tmp_path)
    assert hit and isinstance(cache.split("train")[0], np.memmap)
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
    streamed = ZScoredSplit(x, y, cache.mean, cache.std)
    memory = TensorDataset(torch.as_tensor((np.asarray(x) - cache.mean) / cache.std).float(), torch.as_tensor(y))
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for (xa, ya), (xb, yb) in zip(DataLoader(streamed, 4, shuffle=True, generator=gen_a),
                                  DataLoader(memory, 4, shuffle=True, generator=gen_b)):
        torch.testing.assert_close(xa, xb)
        assert torch.equal(ya, yb)
