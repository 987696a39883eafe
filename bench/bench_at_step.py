"""Cost of one anti-transfer training step relative to a baseline step (issue 4).

Baseline and AT steps are timed side by side in the same process, interleaved over several
rounds so that a busy machine affects both alike; the figure is the median ratio.
Usage: python bench/bench_at_step.py [--model vgg16_w8] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics

from xferlab.at.bench import bench_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="vgg16_w8")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    layers = (2, 12)
    ratios: dict[int, list[float]] = {layer: [] for layer in layers}
    base_times = []
    for _ in range(args.rounds):
        base = bench_step(args.model, None, args.batch, steps=args.steps)
        base_times.append(base)
        for layer in layers:
            ratios[layer].append(bench_step(args.model, layer, args.batch, steps=args.steps) / base)
    print(f"AT step cost, {args.model}, batch {args.batch}, 1 s segments (126 x 129), "
          f"{args.rounds} interleaved rounds; baseline step {statistics.median(base_times) * 1000:.0f} ms")
    for layer in layers:
        r = ratios[layer]
        print(f"  AT at conv {layer:2d} / baseline: {statistics.median(r):.2f}x  (rounds {min(r):.2f}-{max(r):.2f})")


if __name__ == "__main__":
    main()
