"""Tuning throughput, per-trial overhead and pruning on the AT smoke study, side by side.

1. Trials per minute of 1 worker pinned to one core (one intra-op thread) vs 2 workers
   pinned to one core each (``xferlab tune --workers 2 --pin``), for the same budget: in
   the steady state (each worker's trials after its first, which pays the imports) and
   from the wall clock of the whole command (start-up included, as a user sees it); pruning off
   so that every trial does the same work; rounds alternate (1 2 2 1) so that the load of
   a shared machine hits both alike.
2. The per-trial overhead outside training, from the 1-worker studies: the time per trial
   minus the training itself (each run's ``fit_seconds``), split into the part inside the
   trial (MLflow run, data, models, figures, artifacts) and the part between trials
   (budget check, reaper, sampler).
3. Epochs spent with and without pruning for the same budget of trials and the same
   sampler seed, on models that learn (``LEARNING``), the best value each reached, and the
   objective's spread over seeds at the best setting, which says how far apart two best
   values may be by chance.

Everything runs in a fresh temporary directory (own MLflow and Optuna stores); the tiny
orthogonal model is pretrained once before timing. The corpus cache is $XFERLAB_CACHE
(default ./.xferlab-cache), generated on first use.
Usage: python bench/bench_tuning.py [--trials 8] [--epochs 3] [--rounds 2] [--prune-epochs 6] [--keep DIR]
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


def xferlab(args: list[str], cwd: Path, env: dict[str, str], cores: set[int] | None = None) -> float:
    """Run the CLI (bound to ``cores`` when given); return its wall time in seconds (raise
    with its output on failure)."""
    start = time.monotonic()
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    out = subprocess.run([sys.executable, "-m", "xferlab", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         preexec_fn=pin)
    if out.returncode != 0:
        raise SystemExit(f"xferlab {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return time.monotonic() - start


def load(workdir: Path, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'optuna.db'}")


def steady_rate(study) -> float:
    """Trials per minute once every worker has its first trial behind it: per worker process
    (the trial's ``xferlab.pid``), its later trials over the time from the end of its first
    to the end of its last; summed over the workers."""
    by_worker: dict[int, list] = {}
    for t in study.trials:
        if t.state.name == "COMPLETE":  # a surplus trial stands down before it runs
            by_worker.setdefault(t.user_attrs["xferlab.pid"], []).append(t)
    rate = 0.0
    for trials in by_worker.values():
        trials.sort(key=lambda t: t.datetime_start)
        if len(trials) > 1:
            rate += 60 * (len(trials) - 1) / (trials[-1].datetime_complete - trials[0].datetime_complete).total_seconds()
    return rate


def throughput(workdir: Path, env: dict[str, str], trials: int, epochs: int, rounds: int) -> list[str]:
    """Rounds in the order 1 2 2 1 ...; prints trials per minute; returns the 1-worker studies."""
    one_core = {sorted(os.sched_getaffinity(0))[0]}
    walls: dict[int, list[float]] = {1: [], 2: []}
    steady: dict[int, list[float]] = {1: [], 2: []}
    singles = []
    order = [w for n in range(rounds) for w in ((1, 2) if n % 2 == 0 else (2, 1))]
    for n, workers in enumerate(order):
        name = f"throughput-{workers}-{n}"
        args = ["tune", STUDY, "--workers", str(workers), "--n-trials", str(trials), "--set", f"study={name}",
                "--set", f"pruner={PRUNERS['none']}", "--set", f"train.epochs={epochs}"]
        wall = xferlab(args + (["--pin"] if workers == 2 else []), workdir, env, one_core if workers == 1 else None)
        study = load(workdir, name)
        done = sum(t.state.name == "COMPLETE" for t in study.trials)
        walls[workers].append(60 * done / wall)
        steady[workers].append(steady_rate(study))
        singles += [name] if workers == 1 else []
        print(f"  {workers} worker(s): {done} trials in {wall:.0f} s; steady state "
              f"{steady[workers][-1]:.1f} trials/min; load {os.getloadavg()[0]:.1f}", flush=True)
    rates = {w: sum(v) / len(v) for w, v in walls.items()}
    only = {w: sum(v) / len(v) for w, v in steady.items()}
    print("  | setting | trials/min (steady state) | trials/min (whole command) |")
    print("  |---|---|---|")
    print(f"  | 1 worker on 1 core, 1 thread | {only[1]:.2f} | {rates[1]:.2f} |")
    print(f"  | 2 workers on 1 core each (--pin) | {only[2]:.2f} | {rates[2]:.2f} |")
    print(f"  => 2 workers / 1 worker: {only[2] / only[1]:.2f}x (steady state), {rates[2] / rates[1]:.2f}x "
          "(whole command)")
    return singles


def overhead(workdir: Path, names: list[str]) -> None:
    """Per trial of the 1-worker studies: wall time, training (fit_seconds), the rest. A
    study's first trial also imports the frameworks and loads the models (start-up, paid
    once per worker); the later ones show what every further trial costs."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    first: list[float] = []
    walls, fits, gaps = [], [], []
    for name in names:
        trials = sorted((t for t in load(workdir, name).trials if t.state.name == "COMPLETE"),
                        key=lambda t: t.datetime_start)
        for n, t in enumerate(trials):
            wall = (t.datetime_complete - t.datetime_start).total_seconds()
            fit = client.get_run(t.user_attrs["mlflow_run_id"]).data.metrics["fit_seconds"]
            if n == 0:
                first.append(wall - fit)
            else:
                walls.append(wall)
                fits.append(fit)
        gaps += [(b.datetime_start - a.datetime_complete).total_seconds() for a, b in zip(trials, trials[1:])]
    n = len(walls)
    wall, fit, gap = sum(walls) / n, sum(fits) / n, sum(gaps) / max(1, len(gaps))
    print(f"  first trial of a worker (imports, model loads): {sum(first) / len(first):.2f} s outside training")
    print(f"  {n} later trials: {wall:.2f} s per trial, of which training {fit:.2f} s; overhead outside training "
          f"{wall - fit + gap:.2f} s per trial ({wall - fit:.2f} s inside the trial, {gap:.2f} s between trials)")


# Pruning needs curves that separate. In the smoke setting (48 items, the paper's head, 3
# epochs) every trial's validation CE stays at ln 4, so the pruning comparison trains models
# that learn: the He-initialised head without dropout (issue 15) on the whole tiny corpus.
LEARNING = ["--set", "model.dropout=0.0", "--set", "model.head_init=kaiming", "--set", "data.max_items=null"]


def pruning(workdir: Path, env: dict[str, str], trials: int, epochs: int) -> dict[str, tuple[int, float, str]]:
    """{pruner: (epochs spent, best value, states)} for the same budget and seed."""
    out = {}
    for pruner, text in PRUNERS.items():
        xferlab(["tune", STUDY, "--n-trials", str(trials), "--set", f"study=pruning-{pruner}",
                 "--set", f"pruner={text}", "--set", f"train.epochs={epochs}", *LEARNING], workdir, env)
        study = load(workdir, f"pruning-{pruner}")
        spent = sum(len(t.intermediate_values) for t in study.trials)
        states = " ".join(t.state.name[0] for t in study.trials)
        out[pruner] = (spent, study.best_value, states)
        print(f"  pruner {pruner:6s}: {spent} epochs, best {study.best_value:.5f} (trial {study.best_trial.number}, "
              f"{study.best_trial.params})  [{states}]", flush=True)
    return out


def seed_spread(workdir: Path, env: dict[str, str], epochs: int, seeds: int) -> float:
    """The standard deviation of the objective over ``seeds`` fresh seeds (1, 2, ...) at the
    unpruned study's best setting: the noise a difference of best values is read against.
    The best trial's own value is left out: it was picked as the lowest of the study."""
    from mlflow import MlflowClient

    best = load(workdir, "pruning-none").best_trial
    fixed = [a for k, v in best.params.items() for a in ("--set", f"{k}={v}")]
    xferlab(["run", str(ROOT / "experiments/smoke/at.yaml"), "--only", "at.enabled=True", "--set",
             "experiment=pruning-noise", "--set", f"seeds={list(range(1, seeds + 1))}", "--set",
             f"train.epochs={epochs}", *LEARNING, *fixed], workdir, env)
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pruning-noise")
    query = f"tags.`xferlab.role` != 'summary' AND params.`train.epochs` = '{epochs}'"  # not an earlier --keep run's
    values = [r.data.metrics["best_val_ce_loss"] for r in client.search_runs([exp.experiment_id], query)
              if all(r.data.params.get(k) == str(v) for k, v in best.params.items())]
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8, help="budget of each study (default 8)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    parser.add_argument("--prune-epochs", type=int, default=6, help="epochs per trial of the pruning comparison "
                        "(default 6)")
    parser.add_argument("--noise-seeds", type=int, default=3, help="fresh seeds at the best setting for the "
                        "objective's spread (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the 1-vs-2-worker comparison (default 2)")
    parser.add_argument("--keep", help="work in this directory (kept) instead of a temporary one")
    args = parser.parse_args()
    if args.noise_seeds < 2:
        parser.error("--noise-seeds must be at least 2 (a spread needs two values)")
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="xferlab-bench-tuning-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.setdefault("XFERLAB_CACHE", str(Path.cwd() / ".xferlab-cache"))
    single = {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # the pinned single worker: one thread
    print(f"work dir {workdir}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    xferlab(["run", str(ROOT / "experiments/smoke/orthogonal.yaml")], workdir, env)  # warm-up: corpus, model
    print(f"trials per minute, AT smoke study, {args.trials} trials of {args.epochs} epochs, no pruning:")
    singles = throughput(workdir, single, args.trials, args.epochs, args.rounds)
    print("per-trial overhead outside training (1 worker):")
    overhead(workdir, singles)
    print(f"pruning, models that learn, same budget ({args.trials} trials of up to {args.prune_epochs} epochs) and "
          "sampler seed:")
    result = pruning(workdir, env, args.trials, args.prune_epochs)
    (off, best_off, _), (on, best_on, _) = result["none"], result["median"]
    spread = seed_spread(workdir, env, args.prune_epochs, args.noise_seeds)
    print(f"  => epochs with / without pruning: {on}/{off} = {on / off:.2f} ({1 - on / off:.0%} saved); best value "
          f"(minimised val CE) {best_on:.5f} vs {best_off:.5f} (difference {best_on - best_off:+.5f}); the "
          f"objective's std over {args.noise_seeds} fresh seeds at the unpruned best setting: {spread:.5f} "
          f"(difference = {(best_on - best_off) / spread:+.2f} std)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
