"""Synthetic speech corpus: an offline stand-in for Speech Commands and IEMOCAP-like styles.

Clips are one second of 16 kHz mono speech: the 35 Speech Commands v2 words plus
``_unknown_`` (other English words) and ``_silence_`` (background only), said by many
synthetic speakers (engine x voice x pitch x rate x formant scale x room/microphone) in
four speaking styles. What matters is that a model trained here generalises to real
recordings, so every nuisance factor varies: per-utterance speaker jitter, loudness drawn
independently of style (otherwise level gives the style away), random placement inside
the second, rooms, microphones and background noise at recorded SNRs.

The plan (who says what, how, how loud, with which noise) is drawn in the parent process
from the seed; every clip then draws its remaining randomness from its own seed, so the
corpus is byte-identical whatever the number of workers. A finished corpus is a directory
with ``clips/``, ``manifest.csv`` and a ``COMPLETE`` marker written last; it is built in a
temporary sibling directory and renamed, so an interrupted run never looks complete.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import wave
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from xferlab.data import synth_voices as sv
from xferlab.data.synth_voices import (LABELS, SILENCE, STYLES, UNKNOWN, UNKNOWN_WORDS, WORDS,
                                       Profile)
from xferlab.data.tts import SR, Synthesizer, require_tools
from xferlab.errors import UserError

__all__ = ["Corpus", "GENERATOR_VERSION", "LABELS", "PROFILES", "Profile", "SILENCE", "STYLES",
           "UNKNOWN", "UNKNOWN_WORDS", "WORDS", "check_profile", "check_style_strength", "default_dir", "generate_corpus",
           "load_corpus"]
GENERATOR_VERSION = 1
MARKER = "COMPLETE"
_SPEAKERS = Profile(32, 4, 8, 0, 0.4)
_FULL = Profile(160, 3, 12, 6, 0.4)
PROFILES = {  # the single list of profile names (the CLI and the errors read it)
    "tiny": Profile(8, 1, 3, 2, 0.5),  # 320 clips: the unit tests
    "small": Profile(32, 2, 8, 4, 0.4),  # 2624 clips: quickstart
    # the small profile's 32 voices (speakers are drawn first, so the same), each word said
    # in 4 styles: 1.9x the speech per speaker, for speaker identity (no silence clips)
    "speakers": _SPEAKERS,  # 4736 clips
    # the same voices, each word said 8 times (every style twice): 3.7x the small profile's
    # speech per speaker, enough for a speaker model at width 1/16 to pass 80 % (one seed)
    "speakers8": replace(_SPEAKERS, styles_per_word=8),  # 9216 clips
    "full": _FULL,  # 19680 clips: real pretraining
    # twice the full profile's voices (its 160 first, then 160 more), nothing else changed:
    # does a source model generalise better to unseen speakers with more of them?
    "large": replace(_FULL, n_speakers=320),  # 39360 clips
}


@dataclass
class Corpus:
    """A generated corpus on disk: its root directory and one manifest row per clip."""

    root: Path
    manifest: pd.DataFrame

    def load_audio(self, rows: pd.DataFrame | None = None) -> np.ndarray:
        """Clips of ``rows`` (default: all) as a (n, 16000) float32 array in [-1, 1).

        Reads the canonical 44-byte-header WAV payload directly (tens of thousands of clips
        in seconds); other WAV layouts fall back to soundfile.
        """
        rows = self.manifest if rows is None else rows
        out = np.zeros((len(rows), SR), np.float32)  # (n, 16000)
        for i, rel in enumerate(rows["path"]):
            data = (self.root / rel).read_bytes()
            if len(data) == 44 + 2 * SR and data[36:40] == b"data":
                out[i] = np.frombuffer(data, "<i2", offset=44) / np.float32(32768.0)
            else:
                audio, _ = sf.read(self.root / rel, dtype="float32", frames=SR, fill_value=0.0)
                out[i, : len(audio)] = audio
        return out

    def words(self) -> list[str]:
        return sorted(self.manifest["word"].unique())

    def speakers(self) -> list[str]:
        return sorted(self.manifest["speaker"].unique())

    def styles(self) -> list[str]:
        return sorted(s for s in self.manifest["style"].unique() if s in STYLES)



def default_dir(profile: str, seed: int, style_strength: float = 1.0) -> Path:
    """``$XFERLAB_CACHE/synth/<profile>-s<seed>-v<GENERATOR_VERSION>`` (cache root
    defaults to ``.xferlab-cache`` in the working directory), with ``-style<k>`` appended
    for a style strength other than 1."""
    cache = Path(os.environ.get("XFERLAB_CACHE", ".xferlab-cache"))
    suffix = "" if style_strength == 1.0 else f"-style{style_strength + 0.0:g}"  # (+ 0.0: no "-0")
    return cache / "synth" / f"{profile}-s{seed}-v{GENERATOR_VERSION}{suffix}"


STYLE_STRENGTHS = (0.0, 2.0)  # the range the engines render (at 4 festival fails on the slowest sad words)


def check_profile(profile: str, name: str = "data.profile") -> None:
    if profile not in PROFILES:
        raise UserError(f"{name}={profile!r} is not a synthetic corpus profile: use one of {', '.join(PROFILES)}")


def check_style_strength(value: float, name: str = "data.style_strength") -> None:
    """Refuse a style strength outside what the speech engines can render, or with more than
    two decimals (it names the corpus folder: 1.0000001 and 1 must not share one)."""
    low, high = STYLE_STRENGTHS
    if not low <= value <= high:
        raise UserError(f"{name}={value:g} is out of range: use {low:g} (every style neutral) "
                        f"to {high:g} (styles twice as far from the neutral voice; 1 = as defined)")
    if round(value, 2) != value:
        raise UserError(f"{name}={value!r} has more than two decimals: round it (e.g. {round(value, 2):g})")


def load_corpus(path: Path | str) -> Corpus:
    """Open a completed corpus directory (one with a COMPLETE marker)."""
    root = Path(path)
    if not (root / MARKER).is_file():
        raise UserError(f"{root} is not a complete synthetic corpus (no {MARKER} marker): "
                        f"generate it with `xferlab data synth --profile {'|'.join(PROFILES)} --out {root}`")
    numeric = ("snr_db", "f0", "rate", "vtl")  # NaN is written as "" (clean, or silence)
    manifest = pd.read_csv(root / "manifest.csv", keep_default_na=False,
                           na_values={c: [""] for c in numeric})
    return Corpus(root=root, manifest=manifest)


def _reuse(out: Path, meta: dict) -> Corpus | None:
    """Return the finished corpus at ``out`` if it matches ``meta``; clear leftovers of an
    interrupted run; refuse to touch a directory that is not ours."""
    if (out / MARKER).is_file():
        found = {"style_strength": 1.0, **json.loads((out / MARKER).read_text())}  # older markers: 1
        if {k: found.get(k) for k in meta} != meta:
            raise UserError(f"{out} already holds another corpus ({found}): "
                            "pass another --out or delete that directory")
        return load_corpus(out)
    if out.exists():
        if not out.is_dir() or set(p.name for p in out.iterdir()) - {"clips", "manifest.csv"}:
            raise UserError(f"{out} exists and is not a synthetic corpus: "
                            "pass another --out or delete that directory")
        shutil.rmtree(out)
    return None


def generate_corpus(profile: str = "tiny", out: Path | None = None, seed: int = 0,
                    workers: int | None = None, progress: bool = True,
                    _subset: int | None = None, style_strength: float = 1.0) -> Corpus:
    """Generate (or reuse from the cache) the synthetic corpus of ``profile``.

    ``style_strength`` scales how far each speaking style moves the voice (see
    :meth:`synth_voices.Style.scaled`); every other draw of the plan stays the same.

    ``_subset`` keeps an evenly strided sample of that many clips of the same plan (clip i
    of a subset is byte-identical to the same clip of the full profile): tests use it.
    """
    check_profile(profile)
    check_style_strength(style_strength)
    meta = {"profile": profile, "seed": seed, "generator_version": GENERATOR_VERSION, "subset": _subset,
            "style_strength": float(style_strength) + 0.0}
    if out is None:
        out = default_dir(profile, seed, style_strength)
        out = out.with_name(f"{out.name}-sub{_subset}") if _subset else out
    out = Path(out)
    corpus = _reuse(out, meta)
    if corpus is not None:
        return corpus
    require_tools()
    tasks = sv.plan(PROFILES[profile], seed, float(style_strength))
    if _subset:
        tasks = tasks[:: max(1, len(tasks) // _subset)][:_subset]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        rows = _render_all(tasks, tmp, seed, workers or os.cpu_count() or 1, progress, profile)
        pd.DataFrame(rows).sort_values("index").to_csv(tmp / "manifest.csv", index=False)
        (tmp / MARKER).write_text(json.dumps({**meta, "n_clips": len(rows)}))
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load_corpus(out)


def _publish(tmp: Path, out: Path) -> None:
    """Atomically move the finished corpus into place; a concurrent run that finished
    first wins and this one's copy is discarded."""
    try:
        os.rename(tmp, out)
    except OSError:
        if not (out / MARKER).is_file():
            raise


def _render_all(tasks: list[sv.ClipTask], tmp: Path, seed: int, workers: int,
                progress: bool, profile: str) -> list[dict]:
    """Render ``tasks`` into ``tmp/clips`` in chunks of 16; return their manifest rows."""
    (tmp / "clips").mkdir(parents=True)
    main_synth = Synthesizer(tmp / "work" / "main")
    talkers = sv.babble_talkers(seed, main_synth)
    main_synth.close()
    chunks = [tasks[i: i + 16] for i in range(0, len(tasks), 16)]
    rows: list[dict] = []
    with tqdm(total=len(tasks), disable=not progress, unit="clip", desc=f"synth {profile}") as bar:
        for chunk_rows in _chunk_results(chunks, (tmp, talkers), workers):
            rows += chunk_rows
            bar.update(len(chunk_rows))
    shutil.rmtree(tmp / "work")  # engine scratch (espeak data links, temporary WAVs)
    return rows


def _chunk_results(chunks: list[list[sv.ClipTask]], init: tuple, workers: int) -> Iterator[list[dict]]:
    """Rendered chunks, in this process or over a pool (whose exit terminates the workers
    and, with them, their festival processes)."""
    if workers <= 1:
        _init_worker(*init)
        try:
            yield from map(_render_chunk, chunks)
        finally:
            _close_worker()
        return
    # fork is fast; spawn is safe when TensorFlow or torch threads run in the parent
    threaded = {"tensorflow", "torch"} & set(sys.modules)
    ctx = multiprocessing.get_context("spawn" if threaded or os.name != "posix" else "fork")
    with ctx.Pool(workers, _init_worker, init) as pool:
        yield from pool.imap_unordered(_render_chunk, chunks)


_WORKER: dict = {}


def _init_worker(tmp: Path, talkers: list[np.ndarray]) -> None:
    _WORKER.update(tmp=tmp, talkers=talkers,
                   synth=Synthesizer(tmp / "work" / str(os.getpid())))


def _close_worker() -> None:
    synth = _WORKER.pop("synth", None)
    if synth is not None:
        synth.close()


def _render_chunk(chunk: list[sv.ClipTask]) -> list[dict]:
    """Render, quantise and write a chunk of clips; return their manifest rows."""
    rows = []
    for task in chunk:
        clip, info = sv.render(task, _WORKER["synth"], _WORKER["talkers"])
        rel = Path("clips") / task.word / f"{task.speaker.id}_{task.index:06d}.wav"
        _write_wav(_WORKER["tmp"] / rel, clip)
        rows.append({"index": task.index, "path": rel.as_posix(), **sv.row(task), **info})
    return rows


def _write_wav(path: Path, clip: np.ndarray) -> None:
    """16-bit PCM with the canonical 44-byte header (what load_audio reads fast)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(clip * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())
