"""Overhead of tracking (issue 5): one instance with MLflow logging vs the same training with
logging off, side by side in one process.

"Logging on" is :func:`xferlab.runner.run_one` as ``xferlab run`` calls it: a run created in
a fresh sqlite store, params, spec and environment files, a metric batch per epoch, the
history, confusion matrix and curves uploaded at the end. "Logging off" calls the same job
with a stand-in run object whose methods do nothing (the figures are still drawn into a
temp dir, so only tracking differs). A warm-up of each comes first (imports, data caches),
then rounds alternate the two so that a busy machine affects both alike. Since a shared
machine's load still blurs a difference of wall times, the time spent inside the tracking
calls of the "on" runs is also measured directly.
Usage: python bench/bench_tracking_overhead.py [--spec experiments/smoke/at.yaml] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parents[1]


class NullRun:
    """The run interface the jobs use, recording nothing."""

    def __init__(self, instance: Any) -> None:
        self.instance, self.run_id, self.experiment_id = instance, "offline", "0"
        self.history: list[dict[str, float]] = []
        self.epoch_hooks: list = []
        self.artifact_dir = Path(tempfile.mkdtemp(prefix="xferlab-nullrun-"))

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.history.append({"epoch": epoch, **metrics})
        for hook in self.epoch_hooks:
            hook(epoch, dict(metrics))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        pass

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_artifact(self, path: Any, artifact_path: str | None = None) -> None:
        pass

    def close(self) -> None:
        shutil.rmtree(self.artifact_dir, ignore_errors=True)


INSIDE = {"s": 0.0}  # seconds spent inside tracking calls during the current "on" instance


def instrument() -> None:
    """Time every tracking call of :class:`TrackedRun`: a figure that load noise cannot blur
    as much as a difference of two wall times."""
    import functools

    from xferlab.tracking.runs import TrackedRun

    def timed(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                INSIDE["s"] += time.monotonic() - start
        return wrapper

    for name in ("__enter__", "_close", "log_metrics", "log_params", "set_tags", "log_artifact"):
        setattr(TrackedRun, name, timed(getattr(TrackedRun, name)))
    original = TrackedRun.log_epoch

    def log_epoch(self: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        hooks, self.epoch_hooks = self.epoch_hooks, []  # the progress printer is not tracking
        try:
            timed(original)(self, epoch, metrics)
        finally:
            self.epoch_hooks = hooks
        for hook in hooks:
            hook(epoch, dict(metrics))

    TrackedRun.log_epoch = log_epoch


def timed_on(instance: Any) -> float:
    from xferlab.runner import run_one

    INSIDE["s"] = 0.0
    start = time.monotonic()
    outcome = run_one(instance, role="smoke")
    if outcome.status != "FINISHED":
        raise SystemExit(f"the instance failed: {outcome.error}")
    return time.monotonic() - start


def timed_off(instance: Any) -> float:
    from xferlab.kinds import get_kind

    run = NullRun(instance)
    start = time.monotonic()
    get_kind(instance.kind).run_job(instance, run)
    elapsed = time.monotonic() - start
    run.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "experiments/smoke/at.yaml"))
    parser.add_argument("--set", dest="overrides", action="append",
                        default=["at.enabled=false", "train.epochs=3", "data.max_items=48"],
                        help="more spec overrides, applied after the defaults (the spec must give one instance)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="xferlab-bench-tracking-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir}/mlflow.db"
    os.environ.setdefault("XFERLAB_CACHE", str(Path.cwd() / ".xferlab-cache"))
    from xferlab.spec import load_spec
    from xferlab.tracking import ensure_store

    ensure_store()
    [instance] = load_spec(args.spec, args.overrides).instances
    print(f"{instance.spec_name} {instance.cell} ({', '.join(args.overrides)}); load average "
          f"{os.getloadavg()[0]:.1f}; warm-up...", flush=True)
    timed_off(instance), timed_on(instance)
    instrument()
    on, off, inside = [], [], []
    for n in range(args.rounds):
        pair = (timed_on, on), (timed_off, off)
        for fn, out in (pair if n % 2 == 0 else pair[::-1]):
            out.append(fn(instance))
        inside.append(INSIDE["s"])
        print(f"  round {n + 1}: logging on {on[-1]:.2f} s (of which tracking calls {inside[-1]:.2f} s), "
              f"off {off[-1]:.2f} s", flush=True)
    for name, pick in (("median", statistics.median), ("fastest", min)):  # min: least disturbed by load
        t_on, t_off = pick(on), pick(off)
        print(f"{name} wall time: with MLflow {t_on:.2f} s, without {t_off:.2f} s; overhead "
              f"{t_on - t_off:+.2f} s per instance = {t_on / t_off:.2f}x")
    share = [i / t for i, t in zip(inside, on)]
    print(f"time inside tracking calls: median {statistics.median(inside):.2f} s per instance, "
          f"{statistics.median(share):.1%} of the instance (=> {1 / (1 - statistics.median(share)):.2f}x "
          "over training alone)")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
