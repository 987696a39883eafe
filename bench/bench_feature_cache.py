"""What the on-disk feature cache saves an AT grid: the first instance's feature step
(decode the dataset, segment, spectrograms, written to the cache) against every later
instance's (open the cache and read every item once, z-scored, as training does in its
first epoch), measured side by side in one run on a fresh cache folder.

The first is what every instance paid before the cache (it decoded the dataset again).
Usage: python bench/bench_feature_cache.py [--dataset synth/style_speakersplit]
       [--profile small] [--seconds 1.0] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synth/style_speakersplit")
    parser.add_argument("--profile", default="small", help="synthetic corpus profile (synth/* datasets)")
    parser.add_argument("--seconds", type=float, default=1.0, help="segment length (data.segment_s)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from xferlab.at.streams import ZScoredSplit
    from xferlab.data.feature_cache import cached_spectrograms
    from xferlab.registry import DATASETS

    from xferlab.schema import Data, validate_data

    tree = {"dataset": args.dataset, **({"profile": args.profile} if args.dataset.startswith("synth/") else {})}
    data = validate_data(tree, Data())  # the data section exactly as a spec would resolve it
    DATASETS.create(args.dataset, data)  # warm-up: the corpus itself is generated/cached once, outside the timing
    first, later = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="xferlab-fcache-") as root:
            start = time.perf_counter()
            cache, hit = cached_spectrograms(args.dataset, data, args.seconds,
                                             lambda: DATASETS.create(args.dataset, data), root=Path(root))
            first.append(time.perf_counter() - start)
            assert not hit
            start = time.perf_counter()
            cache, hit = cached_spectrograms(args.dataset, data, args.seconds, lambda: None, root=Path(root))
            for name in cache.splits:
                split = ZScoredSplit.of(cache, name)
                for begin in range(0, len(split), 64):
                    split.__getitems__(list(range(begin, min(begin + 64, len(split)))))
            later.append(time.perf_counter() - start)
            assert hit
            size = cache.nbytes()  # before the folder goes
    segments = sum(cache.meta["segments"].values())
    print(f"feature step of an AT instance, {args.dataset} ({args.profile}), {segments} segments of "
          f"{args.seconds:g} s, {size / 1e6:.0f} MB cached, {os.cpu_count()} CPUs, {args.rounds} rounds (medians)")
    print(f"  first instance (decode + write cache): {statistics.median(first):.2f} s")
    print(f"  later instance (read the cache):       {statistics.median(later):.2f} s")
    print(f"first / later instance feature step: {statistics.median(first) / statistics.median(later):.1f}x")


if __name__ == "__main__":
    main()
