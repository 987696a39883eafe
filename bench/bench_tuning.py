"""Tuning throughput and pruning on the AT smoke study (issue 5), measured side by side.

1. Trials per minute with 1 vs 2 worker processes (``xferlab tune --workers K``) for the
   same budget, from the wall clock of the whole command (process start-up included, as a
   user sees it) and from the trials alone; pruning off so that every trial does the same
   work; alternating rounds (1 2 2 1) so that the load of a shared machine hits both alike.
2. Epochs spent with and without pruning (median pruner) for the same budget of trials and
   the same sampler seed, and the best value each reached.

Everything runs in a fresh temporary directory (own MLflow and Optuna stores); the tiny
orthogonal model is pretrained once before timing. The corpus cache is $XFERLAB_CACHE
(default ./.xferlab-cache), generated on first use.
Usage: python bench/bench_tuning.py [--trials 6] [--epochs 4] [--rounds 2] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY = str(ROOT / "tuning/at-style-smoke.yaml")
PRUNERS = {"none": "{name: none}", "median": "{name: median, options: {n_startup_trials: 2, n_warmup_steps: 1}}"}


def xferlab(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run the CLI; return its wall time in seconds (raise with its output on failure)."""
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "xferlab", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"xferlab {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return time.monotonic() - start


def load(workdir: Path, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'optuna.db'}")


def throughput(workdir: Path, env: dict[str, str], trials: int, epochs: int, rounds: int) -> dict[int, float]:
    """{workers: trials per minute}, rounds in the order 1 2 2 1 ... so that a change in the
    machine's load hits both alike; also the rate between the first trial's start and the
    last trial's end (no process start-up)."""
    walls: dict[int, list[float]] = {1: [], 2: []}
    spans: dict[int, list[float]] = {1: [], 2: []}
    order = [w for n in range(rounds) for w in ((1, 2) if n % 2 == 0 else (2, 1))]
    for n, workers in enumerate(order):
        name = f"throughput-{workers}-{n}"
        wall = xferlab(["tune", STUDY, "--workers", str(workers), "--n-trials", str(trials), "--set", f"study={name}",
                        "--set", f"pruner={PRUNERS['none']}", "--set", f"train.epochs={epochs}"], workdir, env)
        study = load(workdir, name)
        span = (max(t.datetime_complete for t in study.trials) - min(t.datetime_start for t in study.trials))
        walls[workers].append(wall / len(study.trials))
        spans[workers].append(span.total_seconds() / len(study.trials))
        print(f"  {workers} worker(s): {len(study.trials)} trials in {wall:.0f} s "
              f"({span.total_seconds():.0f} s from first start to last end); load {os.getloadavg()[0]:.1f}",
              flush=True)
    rates = {w: 60 / (sum(v) / len(v)) for w, v in walls.items()}
    only = {w: 60 / (sum(v) / len(v)) for w, v in spans.items()}
    for w in (1, 2):
        print(f"  {w} worker(s): {rates[w]:.2f} trials/min (command wall time), {only[w]:.2f} trials/min (trials only)")
    print(f"  => 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x (command), {only[2] / only[1]:.2f}x (trials only)")
    return rates


def pruning(workdir: Path, env: dict[str, str], trials: int, epochs: int) -> dict[str, tuple[int, float, str]]:
    """{pruner: (epochs spent, best value, states)} for the same budget and seed."""
    out = {}
    for pruner, text in PRUNERS.items():
        xferlab(["tune", STUDY, "--n-trials", str(trials), "--set", f"study=pruning-{pruner}",
                 "--set", f"pruner={text}", "--set", f"train.epochs={epochs}"], workdir, env)
        study = load(workdir, f"pruning-{pruner}")
        spent = sum(len(t.intermediate_values) for t in study.trials)
        states = " ".join(t.state.name[0] for t in study.trials)
        out[pruner] = (spent, study.best_value, states)
        print(f"  pruner {pruner:6s}: {spent} epochs, best {study.best_value:.5f}  [{states}]", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6, help="budget of each study (default 6)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the 1-vs-2-worker comparison (default 2)")
    parser.add_argument("--keep", help="work in this directory (kept) instead of a temporary one")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="xferlab-bench-tuning-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.setdefault("XFERLAB_CACHE", str(Path.cwd() / ".xferlab-cache"))
    print(f"work dir {workdir}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    xferlab(["run", str(ROOT / "experiments/smoke/orthogonal.yaml")], workdir, env)  # warm-up: corpus, model
    print(f"trials per minute, AT smoke study, {args.trials} trials of {args.epochs} epochs, no pruning:")
    throughput(workdir, env, args.trials, args.epochs, args.rounds)
    print(f"pruning, same budget ({args.trials} trials of up to {args.epochs} epochs) and sampler seed:")
    result = pruning(workdir, env, args.trials, args.epochs)
    (off, best_off, _), (on, best_on, _) = result["none"], result["median"]
    print(f"  => epochs with / without pruning: {on}/{off} = {on / off:.2f}; best value (minimised "
          f"val CE) {best_on:.5f} vs {best_off:.5f} (difference {best_on - best_off:+.5f})")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
