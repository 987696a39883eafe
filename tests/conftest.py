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


@pytest.fixture(scope="session", autouse=True)
def _session_cache(cache_dir: Path):
    """In-process code sees the session's XFERLAB_CACHE too (the report's run cache, the
    corpus), so no test writes a cache into the checkout."""
    with pytest.MonkeyPatch.context() as mp:
        if "XFERLAB_CACHE" not in os.environ:
            mp.setenv("XFERLAB_CACHE", str(cache_dir))
        yield


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


def run_cli_together(commands: list[list[str]], cwd: Path, env: dict[str, str],
                     timeout: int = 900) -> list[subprocess.CompletedProcess]:
    """Several ``python -m xferlab`` commands at once on one store (as several users or
    machines would): their start-ups (TensorFlow, PyTorch, MLflow imports) overlap."""
    procs = [subprocess.Popen([sys.executable, "-m", "xferlab", *args], cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
    done = []
    for args, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


# The smoke specs as a new user first runs them, from an empty store: the V2S one tagged
# as Table 2 so that the report tests can build on the same store.
SMOKE_RUNS = {"v2s": ["--set", "table=v2s_table2"], "at": []}
# What tests/e2e/test_report.py adds to that store: the same Table 2 cell with another
# configuration (1 epoch: the report must flag one of the two) and two dropout settings as the D.2
# table with ``select``. They start with the smoke runs (and wait for the tiny source model
# the first V2S process pretrains), so their start-ups overlap instead of adding up.
SMOKE_SPEC = {"v2s_1epoch": "v2s", "v2s_mapping": "v2s"}  # the smoke spec each report run starts from
REPORT_RUNS = {"v2s_1epoch": ["--set", "table=v2s_table2", "--set", "train.epochs=1",
                              "--set", "analysis.figures=false", "--set", "analysis.swd=false"],
               "v2s_mapping": ["--set", "table=v2s_mapping", "--set", "select=[model.dropout]",
                               "--set", "grid.model.dropout=[0.0, 0.5]", "--set", "analysis.figures=false",
                               "--set", "analysis.swd=false"]}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whichever test first asks for the smoke store sets it up (four CLI runs from empty,
    minutes on a busy 2-core host): every test that uses it gets the longer timeout."""
    for item in items:
        if "smoke_store" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(1800))


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> tuple[Path, dict[str, str], dict]:
    """One store where the smoke V2S and AT specs ran from empty through the CLI, at the
    same time (each pretrains its tiny model first), with the report tests' runs
    (REPORT_RUNS) started beside them. tests/e2e/test_smoke_runs.py inspects it and
    tests/e2e/test_report.py reports on it, so each pays the frameworks' start-up and the
    tiny pretraining once. Returns (workdir, env, {name: completed process})."""
    workdir, env = tmp_path_factory.mktemp("smoke"), fresh_env(cache_dir)
    runs = {**SMOKE_RUNS, **REPORT_RUNS}
    commands = [["run", str(ROOT / f"experiments/smoke/{SMOKE_SPEC.get(name, name)}.yaml"), *args]
                for name, args in runs.items()]
    outs = dict(zip(runs, run_cli_together(commands, workdir, env)))
    for out in outs.values():
        assert out.returncode == 0, out.stdout + out.stderr
    return workdir, env, outs
