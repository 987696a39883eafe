"""Facts about the running process recorded on every run: commit, host, pid, environment.

No mlflow, TensorFlow or torch imports here: package versions come from
``importlib.metadata`` so that recording the environment never costs a framework import.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

KEY_PACKAGES = ("xferlab", "numpy", "scipy", "tensorflow", "keras", "kapre", "torch", "mlflow",
                "optuna", "pandas", "librosa", "pot")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the repository holding this package, ``-dirty`` if tracked files changed.

    None when the package is not a tracked part of a git checkout (e.g. installed from a
    wheel into a venv that happens to sit inside some repository).
    """
    pkg = Path(__file__).resolve().parents[1]
    if _git(["ls-files", "--error-unmatch", "__init__.py"], pkg) is None:
        return None
    commit = _git(["rev-parse", "HEAD"], pkg)
    if not commit:
        return None
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], pkg)
    return commit + ("-dirty" if dirty else "")


def hostname() -> str:
    return socket.gethostname()


def process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may contain spaces


def pid_alive(pid: int, start: str | None = None) -> bool:
    """True if ``pid`` runs on this host (and, when known, is the same process as before)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False
    if not Path("/proc/self/stat").exists():
        return True  # no procfs: existence is all we can tell
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has finished; only its parent has not collected it yet


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, Any]:
    """What reproduces the run's software context (written as ``environment.json``)."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "hostname": hostname(),
        "executable": sys.executable,
        "argv": sys.argv,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "env": {k: os.environ[k] for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                                           "TF_CPP_MIN_LOG_LEVEL")
                if k in os.environ},
    }
