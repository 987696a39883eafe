"""Cost of one anti-transfer training step relative to a baseline step, per tap.

In ONE run, at conv 2, 7, 12 and 13, three steps are timed side by side in the same
process, interleaved over rounds so that a busy machine affects all alike (medians):
the baseline, the original approach (orthogonal forward on every batch + the full
batch x channel Gram) and ours (cached orthogonal activations + the cheaper Gram form).
The goal: ours at most 1.10x the baseline at every tap (VGG16 width 1/8, batch 8, CPU); since
the channels-last layout made the baseline step faster, conv 2 is at about 1.2x (README).
Then the layout every step above uses (``xferlab.at.vgg.to_device``: channels-last conv
weights on the CPU) against the default layout of a plain ``.to(device)``, baseline steps
interleaved the same way.
Usage: python bench/bench_at_step.py [--quick] [--width 0.125] [--batch 8] [--rounds 5]
       [--steps 10] [--device cpu] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics

import torch

from xferlab.at.bench import compare, compare_layout

LAYERS = (2, 7, 12, 13)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", default="0.125", help="VGG16 width: a number or a name (vgg16_w8)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="3 rounds x 3 steps: well under a minute")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = 3, 3
    return args


def main() -> None:
    args = parse()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    res = compare(LAYERS, rounds=args.rounds, steps=args.steps, width=args.width, batch=args.batch,
                  frames=126, bins=129, device=args.device)
    base_ms = statistics.median(s for t in LAYERS for s in res["baseline_s"][t]) * 1000
    print(f"AT step cost, VGG16 width {args.width}, batch {args.batch}, input 126 x 129, {args.device}, "
          f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds x {args.steps} steps; "
          f"baseline step {base_ms:.0f} ms")
    worst = 0.0
    for t in LAYERS:
        orig, ours = statistics.median(res["original"][t]), statistics.median(res["ours"][t])
        worst = max(worst, ours)
        print(f"  conv {t:2d}: original / baseline {orig:.2f}x, ours / baseline {ours:.2f}x "
              f"(ours per round {min(res['ours'][t]):.2f}-{max(res['ours'][t]):.2f})")
    print(f"AT step / baseline, worst tap: {worst:.2f}x")
    if args.device != "cpu":
        return  # the layout differs on the CPU only
    layout = compare_layout(rounds=args.rounds, steps=args.steps, width=args.width, batch=args.batch,
                            frames=126, bins=129, device=args.device)
    print(f"baseline step, default layout / ours (channels-last on CPU): {statistics.median(layout):.2f}x "
          f"(per round {min(layout):.2f}-{max(layout):.2f})")


if __name__ == "__main__":
    main()
