"""Shared fixtures: a session-wide corpus cache and a CLI runner in a clean directory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One XFERLAB_CACHE for the whole session: the tiny corpus is generated once."""
    return tmp_path_factory.mktemp("xferlab-cache")


@pytest.fixture()
def cli_env(cache_dir: Path) -> dict[str, str]:
    return fresh_env(cache_dir)


def fresh_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a fresh user: no tracking URI (sqlite in the cwd), shared cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(XFERLAB_CACHE=str(cache_dir), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def run_cli(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m xferlab ARGS`` in ``cwd``; output captured as text."""
    return subprocess.run([sys.executable, "-m", "xferlab", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
