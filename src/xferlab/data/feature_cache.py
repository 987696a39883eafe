"""Decoded spectrogram segments, cached on disk once and shared by a whole grid.

An anti-transfer grid (13 layers x seeds) trains on the same features dozens of times;
decoding and transforming the audio again for every instance costs more than a short
training. The first instance (or worker process) that needs a dataset's segments writes
them here; every later one reads them without decoding.

Neither side holds the dataset in memory: the writer sizes each file from the clips'
headers, then decodes, segments and transforms a few hundred segments at a time; readers
fetch the rows of a batch with positioned reads (:class:`Rows`), so a process's memory is
its batch and its model, whatever the dataset's size (the page cache keeps what fits).

Layout: ``$XFERLAB_CACHE/features/<key>/`` with ``<split>_x.npy`` (N, T, 129) float32
(the raw paper spectrograms, not normalised), ``<split>_y.npy`` and ``meta.json`` (the
training split's global mean and std of each magnitude a job may read them as, linear and
log (:func:`xferlab.data.features.compress`); the class names). ``<key>`` hashes everything that
produced them: the dataset name, its resolved ``data`` section (root, options,
max_items), the segment length and the feature parameters (:data:`FORMAT`). A cache is
written in a private temporary folder (``<key>.tmp-*``) and renamed into place only when complete (with a
``COMPLETE`` marker), so a killed writer never leaves a half-written cache that a reader
would use, and two writers racing both finish with one identical copy.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from xferlab.data.features import (HOP, MAGNITUDES, N_BINS, N_FFT, SAMPLE_RATE, compress, n_frames, n_segments,
                                    segment, spectrogram)
from xferlab.data.rows import Rows
from xferlab.errors import UserError

FORMAT = 2  # bump when the feature computation or meta.json changes: old caches are then never read
MARKER = "COMPLETE"
CHUNK_BYTES = 16 << 20  # spectrogram bytes transformed per step: bounds the transform's memory


def cache_root() -> Path:
    """``$XFERLAB_CACHE/features`` (default ``.xferlab-cache/features`` in the cwd)."""
    return Path(os.environ.get("XFERLAB_CACHE", ".xferlab-cache")) / "features"


def feature_key(dataset: str, data: Mapping[str, Any], seconds: float) -> str:
    """Hash of what produces the features: the dataset, its data section (paths made
    absolute; the segment length counted once), the ``XFERLAB_*`` variables readers fall
    back on (an MS-SNSD or alignment folder), the data module's ``VERSION`` (the synthetic
    corpus generator's) and the feature parameters."""
    from xferlab.registry import DATASETS

    section = {k: _absolute(v) if k in PATH_KEYS else v for k, v in sorted(data.items()) if k != "segment_s"}
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("XFERLAB_") and k != "XFERLAB_CACHE"}
    version = DATASETS.meta(dataset).get("version") if dataset in DATASETS else None
    spec = {"format": FORMAT, "dataset": dataset, "seconds": float(seconds), "n_fft": N_FFT, "hop": HOP,
            "data": section, "env": env, "version": version}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


PATH_KEYS = ("root", "ucr_dir", "noise_root", "alignment")


def _absolute(value: Any) -> Any:
    return str(Path(value).expanduser().resolve()) if isinstance(value, str) and value else value


@dataclass(frozen=True)
class CachedFeatures:
    """A complete cache folder: splits read a few rows at a time and what the job needs to know."""

    root: Path
    meta: Mapping[str, Any]

    @classmethod
    def open(cls, root: Path) -> "CachedFeatures":
        return cls(root, json.loads((root / "meta.json").read_text()))

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])

    def split(self, name: str) -> tuple[Rows, np.ndarray]:
        """(x (N, T, 129) float32 rows read on demand; y (N,) int64)."""
        return Rows(self.root / f"{name}_x.npy"), np.load(self.root / f"{name}_y.npy")

    def stats(self, magnitude: str = MAGNITUDES[0]) -> tuple[float, float]:
        """(mean, std) of the training split read as ``magnitude`` (the global z-score's)."""
        mean, std = self.meta["stats"][magnitude]
        return float(mean), float(std)

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.iterdir())


def cached_spectrograms(dataset: str, data: Mapping[str, Any], seconds: float, make_task: Callable[[], Any],
                        root: Path | None = None) -> tuple[CachedFeatures, bool]:
    """The cached features of ``dataset``, written first (``make_task()`` decodes it) when
    missing; (cache, True when it was already there)."""
    final = (root or cache_root()) / feature_key(dataset, data, seconds)
    if (final / MARKER).is_file():
        return CachedFeatures.open(final), True
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=final.parent))  # private to this writer
    try:
        task = make_task()
        stats = {name: _write_split(task.x[name], task.y[name], seconds, tmp, name) for name in task.x}
        count, sums = stats["train"][1:]
        meta = {"format": FORMAT, "dataset": dataset, "name": task.name, "seconds": seconds, "splits": list(task.x),
                "classes": [str(c) for c in task.classes], "n_classes": int(task.n_classes),
                "stats": {m: _global_stats(count, *sums[m]) for m in MAGNITUDES},
                "segments": {name: s[0] for name, s in stats.items()}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        (tmp / MARKER).write_text("")
        if final.is_dir() and not (final / MARKER).is_file():
            shutil.rmtree(final, ignore_errors=True)  # not ours to trust: never written by this module
        try:
            tmp.rename(final)
        except OSError:  # another process completed the same cache first: use its copy
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return CachedFeatures.open(final), False


def _write_split(clips: Any, labels: Any, seconds: float, out: Path,
                 name: str) -> tuple[int, int, dict[str, tuple[float, float]]]:
    """Segment and transform one split into ``<name>_x.npy``, a few hundred segments at a
    time, decoding each clip only when its turn comes; returns (segments, values, {magnitude:
    (sum, sum of squares)}) for the global z-score of each magnitude."""
    counts = [n_segments(_samples(clips, i), seconds) for i in range(len(clips))]
    seg_len = int(round(seconds * SAMPLE_RATE))
    shape = (sum(counts), n_frames(seg_len), N_BINS)
    x = Rows.create(out / f"{name}_x.npy", shape, np.float32)
    sums = {m: (0.0, 0.0) for m in MAGNITUDES}
    for start, segs in _segment_chunks(clips, counts, seconds):
        part = spectrogram(segs).numpy()  # (n, T, 129)
        x.write(start, part)
        for m, (total, square) in sums.items():
            seen = compress(part, m)
            sums[m] = (total + float(seen.sum(dtype=np.float64)), square + float(np.square(seen, dtype=np.float64).sum()))
    x.close()
    np.save(out / f"{name}_y.npy", np.repeat(np.asarray(labels, dtype=np.int64), counts))
    return shape[0], int(np.prod(shape)), sums


def _samples(clips: Any, i: int) -> int:
    """A clip's length: from its file header for lazily decoded clips, else len()."""
    return clips.samples(i) if hasattr(clips, "samples") else len(clips[i])


def _segment_chunks(clips: Any, counts: list[int], seconds: float):
    """(first segment index, segments) of about CHUNK_BYTES of spectrograms at a time, each
    clip decoded once, in order; a clip whose decoded length disagrees with its header is an
    error."""
    seg_len = int(round(seconds * SAMPLE_RATE))
    chunk = max(1, CHUNK_BYTES // (n_frames(seg_len) * N_BINS * 4))
    start, pending, pending_n = 0, [], 0
    for i, expected in enumerate(counts):
        segs = segment(clips[i], seconds)
        if len(segs) != expected:
            raise UserError(f"clip {i} decoded to {len(segs)} segments but its header said {expected}: "
                            "the file is damaged; re-extract the dataset")
        pending.append(segs)
        pending_n += len(segs)
        if pending_n >= chunk or i == len(counts) - 1:
            yield start, np.concatenate(pending)
            start, pending, pending_n = start + pending_n, [], 0


def _global_stats(count: int, total: float, square: float, eps: float = 1e-8) -> tuple[float, float]:
    """Mean and population std of ``count`` training values from their running sums in
    float64 (the same statistics as :meth:`GlobalZScore.fit` on the whole array, without
    holding it)."""
    mean = total / count
    std = max(square / count - mean * mean, 0.0) ** 0.5
    return mean, std if std > eps else 1.0


def describe_cache(root: Path | None = None) -> str:
    """One line for ``xferlab data show``: where the feature cache is and how big."""
    base = root or cache_root()
    entries = [p for p in base.glob("*") if (p / MARKER).is_file()] if base.is_dir() else []
    size = sum(f.stat().st_size for p in entries for f in p.iterdir())
    return f"feature cache: {base.resolve()} ({len(entries)} dataset feature set(s), {size / 1e6:.1f} MB)"


