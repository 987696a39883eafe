"""An anti-transfer instance on a dataset several times larger than the memory it may use.

Writes a fake NSynth tree (the real reader's layout: ``nsynth-{train,valid,test}/``,
``examples.json``, 4 s WAV clips of three instrument families) whose spectrogram features
are ``--gb`` GB, registers a tiny orthogonal model on a few of its clips, then runs the
same AT spec (width 1/32, AT at conv 7, one epoch) twice through ``xferlab run``: on a
``--small`` fraction of the clips and on all of them. Each run is a child process in a
memory cgroup capped at ``--limit-gb`` (cgroup v1 or v2, when this machine lets root make
one; otherwise the cap is only reported, not enforced), and its peak resident memory is
read from the kernel (``wait4``'s ``ru_maxrss``). The claim under test: peak memory is set
by the batch and the model, not by the dataset, so both runs peak alike and the large one
finishes under a cap smaller than its data.

Usage: python bench/bench_large_dataset.py [--gb 3] [--limit-gb 1.2] [--small 0.05]
       [--workdir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR, SECONDS = 16000, 4.0
FAMILIES = ("bass", "guitar", "organ")


def write_tree(root: Path, clips: int, seed: int = 0) -> int:
    """``clips`` 4 s int16 clips split 70/20/10 over train/valid/test; returns bytes written."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * SECONDS)) / SR
    counts = {"train": int(clips * 0.7), "valid": int(clips * 0.2)}
    counts["test"] = clips - sum(counts.values())
    written = 0
    for subset, n in counts.items():
        folder, meta = root / f"nsynth-{subset}", {}
        (folder / "audio").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            family = FAMILIES[i % len(FAMILIES)]
            pitch = int(rng.integers(40, 80))
            note = f"{family}_acoustic_{i % 50:03d}-{pitch:03d}-100"
            tone = np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * (1 + FAMILIES.index(family)) * t)
            x = (0.3 * tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
            sf.write(folder / "audio" / f"{note}_{i}.wav", x, SR, subtype="PCM_16")
            meta[f"{note}_{i}"] = {"note_str": f"{note}_{i}", "instrument_family_str": family,
                                   "instrument_source_str": "acoustic", "instrument_str": note.rsplit("-", 2)[0],
                                   "pitch": pitch, "velocity": 100}
            written += 44 + 2 * len(x)
        (folder / "examples.json").write_text(json.dumps(meta))
    return written


def feature_bytes_per_clip() -> int:
    from xferlab.data.features import N_BINS, n_frames

    return n_frames(int(SR * SECONDS)) * N_BINS * 4


def specs(work: Path, tree: Path) -> tuple[Path, Path]:
    data = f"data: {{dataset: nsynth/family, root: {tree}, segment_s: {SECONDS}}}"
    ortho = work / "ortho.yaml"
    ortho.write_text(f"kind: pretrain_at\n{data[:-1]}, max_items: 48}}\nmodel: {{width: 0.03125, register_as: "
                     "ortho-bench}\ntrain: {epochs: 1, batch_size: 8}\nseed: 0\n")
    at = work / "at.yaml"
    at.write_text(f"kind: at\n{data}\nmodel: {{width: 0.03125}}\nat: {{enabled: true, orthogonal: ortho-bench, "
                  "layer: 7}\ntrain: {epochs: 1, batch_size: 8}\nseed: 0\n")
    return ortho, at


class Cgroup:
    """A memory-capped cgroup for the child runs (v2 if mounted so, else v1), or None."""

    CANDIDATES = ((Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),  # cgroup v1
                  (Path("/sys/fs/cgroup"), "memory.max"))  # cgroup v2 (memory controller enabled)

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        for base, limit_file in self.CANDIDATES:
            path = base / f"xferlab-bench-{os.getpid()}"
            try:
                path.mkdir()
            except OSError:
                continue
            try:
                (path / limit_file).write_text(str(limit))
                swap = path / "memory.memsw.limit_in_bytes"  # v1 with swap accounting: no escape to swap
                if swap.exists():
                    swap.write_text(str(limit))
            except OSError:
                path.rmdir()
                continue
            self.path, self.procs = path, path / "cgroup.procs"
            return

    def join(self) -> None:
        """Called in the child before exec: move it into the capped group."""
        if self.path is not None:
            self.procs.write_text(str(os.getpid()))

    def remove(self) -> None:
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass


def run(args: list[str], env: dict[str, str], cgroup: Cgroup | None = None) -> tuple[int, float, float, str]:
    """(exit status, peak RSS in MB, seconds, output tail) of ``xferlab <args>``."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "xferlab.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=cgroup.join if cgroup else None)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, time.perf_counter() - start, out[-1500:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=3.0, help="spectrogram features of the whole dataset, GB")
    parser.add_argument("--limit-gb", type=float, default=1.2, help="memory cap of each AT run, GB")
    parser.add_argument("--small", type=float, default=0.05, help="fraction of the clips in the small run")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the tree, store and caches")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="xferlab-large-"))
    clips = int(args.gb * 1e9 / feature_bytes_per_clip())
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "XFERLAB_CACHE": str(work / "cache"),
           "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    cgroup = Cgroup(int(args.limit_gb * 1e9))
    try:
        start = time.perf_counter()
        wav_bytes = write_tree(work / "nsynth", clips)
        print(f"fake NSynth tree: {clips} clips of {SECONDS:.0f} s, {wav_bytes / 1e9:.2f} GB of int16 WAV, "
              f"{clips * SR * SECONDS * 4 / 1e9:.2f} GB decoded float32, {clips * feature_bytes_per_clip() / 1e9:.2f} GB "
              f"of spectrograms ({time.perf_counter() - start:.0f} s to write)", flush=True)
        ortho, at = specs(work, work / "nsynth")
        code, _, _, out = run(["run", str(ortho)], env)
        if code:
            raise SystemExit(f"registering the orthogonal model failed:\n{out}")
        cap = (f"capped at {args.limit_gb:.2f} GB ({cgroup.path})" if cgroup.path else
               f"NOT capped (no writable memory cgroup here); compare with {args.limit_gb:.2f} GB")
        print(f"each AT run: width 1/32, AT at conv 7, batch 8, 1 epoch; {cap}", flush=True)
        peaks = {}
        for name, items in (("small", max(30, int(clips * args.small))), ("full", clips)):
            extra = ["--set", f"data.max_items={items}"] if name == "small" else []
            code, peak, secs, out = run(["run", str(at), "--force", *extra], env, cgroup)
            status = "FINISHED" if code == 0 else f"FAILED (exit {code})"
            print(f"  {name:5s} {items:6d} clips, {items * feature_bytes_per_clip() / 1e9:5.2f} GB of features: "
                  f"{status}, peak RSS {peak:6.0f} MB, {secs:5.0f} s", flush=True)
            if code:
                print(out)
            peaks[name] = peak
        ratio = clips / max(30, int(clips * args.small))
        print(f"peak RSS, full / small dataset: {peaks['full'] / peaks['small']:.2f}x (dataset {ratio:.0f}x larger); "
              f"full dataset {clips * feature_bytes_per_clip() / 1e9 / args.limit_gb:.1f}x the cap")
    finally:
        cgroup.remove()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
