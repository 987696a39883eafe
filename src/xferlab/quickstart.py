"""The main job: from an empty directory to a finished report on embedded defaults.

Every stage is an ordinary xferlab command run in its own process (TensorFlow and PyTorch
never share one), so what the quickstart does is exactly what a user can repeat by hand.
Stages reuse what is done: the corpus cache, registered models and FINISHED runs, so a
second quickstart takes minutes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from xferlab.errors import UserError

ROOT = Path(__file__).resolve().parents[2]  # the repository (editable install)


def stages() -> list[tuple[str, list[str]]]:
    """(title, xferlab arguments) in order; later stages need the earlier ones."""
    q = ROOT / "experiments" / "quickstart"
    steps = [
        ("synthetic speech corpus (small profile)", ["data", "synth", "--profile", "small"]),
        ("V2S source model (attrnn, small corpus)", ["run", str(q / "source.yaml")]),
        ("V2S on Coffee and GunPoint", ["run", str(q / "v2s.yaml")]),
        ("synthetic speech corpus (speakers8 profile: the same voices, 8 utterances per word)",
         ["data", "synth", "--profile", "speakers8"]),
        ("orthogonal model (speaker identity)", ["run", str(q / "orthogonal.yaml")]),
        ("anti-transfer: baseline vs AT, 3 seeds", ["run", str(q / "at.yaml")]),
    ]
    study = ROOT / "tuning" / "at-style-smoke.yaml"
    if study.is_file():
        steps.append(("Optuna study (AT layer and beta, smoke budget)", ["tune", str(study)]))
    steps.append(("report", ["report"]))
    return steps


def run_stage(n: int, total: int, title: str, args: list[str]) -> float:
    """One stage as `python -m xferlab ARGS`, output streamed; raises on failure."""
    print(f"\n=== [{n}/{total}] {title}\n$ xferlab {' '.join(args)}", flush=True)
    start = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "xferlab", *args], env=os.environ.copy())
    seconds = time.monotonic() - start
    if code != 0:
        raise UserError(f"quickstart stage '{title}' failed (exit {code}); fix the error above and "
                        "run `xferlab quickstart` again (finished work is reused)")
    print(f"=== [{n}/{total}] done in {seconds:.0f} s", flush=True)
    return seconds


def main() -> int:
    """Run every stage, then say where everything is and how long each stage took."""
    from xferlab.tracking.store import tracking_uri

    if not (ROOT / "experiments").is_dir():
        raise UserError(f"the quickstart needs the repository's experiments/ folder (looked in {ROOT}): "
                        "install xferlab with `pip install -e .` from a clone")
    plan = stages()
    times = [(title, run_stage(n, len(plan), title, args)) for n, (title, args) in enumerate(plan, 1)]
    print("\n=== quickstart finished")
    for title, seconds in times:
        print(f"  {seconds:7.0f} s  {title}")
    print(f"  {sum(s for _, s in times):7.0f} s  total\n")
    print(f"report:     {Path('reports/index.html').resolve()}")
    print(f"MLflow UI:  mlflow ui --backend-store-uri {tracking_uri()}")
    if (ROOT / "tuning" / "at-style-smoke.yaml").is_file():
        print(f"Optuna:     optuna-dashboard sqlite:///{Path('optuna.db').resolve()}")
    return 0
