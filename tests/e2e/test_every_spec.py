"""Every shipped spec runs end to end at tiny size.

Each spec under ``experiments/`` and ``tuning/`` is loaded as shipped, made tiny by
overrides (tiny registered models, 1 epoch, a few items, the tiny corpus, a bundled UCR
set) and run through the real runner (or ``xferlab tune``) on one fresh MLflow store.
Specs on real datasets (IEMOCAP, Speech Commands, Good-Sounds, NSynth, LibriSpeech,
MS-SNSD) read the small fake trees of tests/fake_trees.py through ``data.root`` (and
``data.noise_root``, ``data.alignment`` where the dataset takes them), as a user's copy
would be read. Per spec, one instance of each job path in it runs: V2S ``method`` (v2s,
tf_a) and AT condition (baseline, weight-init, AT, dual AT: weight-init from an AT model
plus AT, in both orders of the catalogue's 34-39), so a grid's every path is exercised.
A spec that stops running fails here, not hours into a real run. Slow (several minutes):
``pytest -m slow``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests import fake_trees
from tests.conftest import ROOT, fresh_env, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

SPECS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if not p.name.startswith("_"))
STUDIES = sorted((ROOT / "tuning").glob("*.yaml"))
TINY_SOURCE, TINY_ORTHO = "attrnn_tiny", "ortho-smoke-speaker"  # registered by the smoke specs


def offline(dataset: str) -> bool:
    from xferlab.registry import DATASETS

    return not DATASETS.meta(dataset).get("local")


def tiny(kind: str, dataset: str, trees: dict[str, dict[str, str]] | None = None, epochs: int = 1) -> list[str]:
    """Overrides that keep a spec's shape but make one instance take seconds; a real
    dataset is read from its fake tree (``trees``: family -> data.* values). ``epochs``: 0
    keeps an untrained-control spec untrained."""
    synth = dataset.startswith("synth/")
    data = ["data.profile=tiny", "data.max_items=64"] if synth else real_data(dataset, trees or {})
    common = [f"train.epochs={epochs}", "seeds=[0]"]
    if kind == "v2s":
        return [*common, "data.dataset=ucr/Coffee", f"model.source={TINY_SOURCE}", "model.pretrain=null",
                "analysis.swd_projections=16"]
    if kind == "pretrain_v2s":
        return [*common, *data, f"model.arch={TINY_SOURCE}"]
    if kind == "pretrain_at":
        return [*common, *data, "model.width=0.03125"]
    return [*common, *data, "model.width=0.03125", "at.pretrain=null"]


def real_data(dataset: str, trees: dict[str, dict[str, str]]) -> list[str]:
    """``data.root`` and the other path options a real dataset takes, set to its fake tree."""
    import dataclasses

    from xferlab.schema import dataset_options

    if offline(dataset):
        return []
    options = dataset_options(dataset)
    takes = {"root"} | ({f.name for f in dataclasses.fields(options)} if options else set())
    return [f"data.{k}={v}" for k, v in trees[dataset.split("/")[0]].items() if k in takes]


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """The fake dataset trees, as the data.* values that point a spec at them."""
    base = tmp_path_factory.mktemp("datasets")
    noise = fake_trees.mssnsd(base / "MS-SNSD")
    libri, alignment = fake_trees.librispeech(base / "librispeech")
    return {"gsc": {"root": str(fake_trees.speech_commands(base / "speech_commands")), "noise_root": str(noise),
                    "per_class": "6"},  # a few items: the tree has 12 clips of each digit
            "mssnsd": {"root": str(noise)},
            "iemocap": {"root": str(fake_trees.iemocap(base / "iemocap"))},
            "goodsounds": {"root": str(fake_trees.goodsounds(base / "good-sounds"))},
            "nsynth": {"root": str(fake_trees.nsynth(base / "nsynth"))},
            "librispeech": {"root": str(libri), "alignment": str(alignment)}}


def stand_ins(instances) -> None:
    """Register the tiny orthogonal model under every model name the AT instances load
    (orthogonal and weight-init), so a grid over those names keeps its shape; each stand-in
    says it was trained on the magnitude its consumer reads (AT refuses another)."""
    from xferlab.tracking import load_torch_state, model_exists, register_torch_state, start_run

    names = {n: i.cfg.model.magnitude for i in instances if i.kind == "at"
             for n in (i.cfg.at.orthogonal, i.cfg.init.from_) if n}
    for name in sorted(n for n in names if not model_exists(n)):
        state, config, _ = load_torch_state(TINY_ORTHO)
        with start_run("sources", f"stand-in {name}", tags={"xferlab.role": "smoke"}) as run:
            register_torch_state(state, {**config, "magnitude": names[name]}, name, run, metric=0.0)


def job_path(inst) -> tuple:
    """What makes an instance take a different path through its job."""
    cfg = inst.cfg
    if inst.kind == "v2s":
        return (cfg.model.method,)
    if inst.kind == "at":
        return (cfg.at.enabled, bool(cfg.init.from_))
    return ()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> tuple[Path, dict[str, str]]:
    """A fresh store with the tiny source and orthogonal models registered (smoke specs)."""
    workdir, env = tmp_path_factory.mktemp("every-spec"), fresh_env(cache_dir)
    for spec in ("source", "orthogonal"):
        out = run_cli(["run", str(ROOT / f"experiments/smoke/{spec}.yaml")], workdir, env)
        assert out.returncode == 0, out.stdout + out.stderr
    return workdir, env


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_spec_runs_at_tiny_size(spec: Path, store, trees, monkeypatch: pytest.MonkeyPatch):
    from xferlab.runner import run_instances
    from xferlab.spec import load_spec

    workdir, env = store
    for key in ("XFERLAB_CACHE", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    monkeypatch.chdir(workdir)
    first = load_spec(spec).instances[0]
    epochs = min(1, first.get("train.epochs"))
    instances = load_spec(spec, tiny(first.kind, first.dataset, trees, epochs)).instances
    picked = list({job_path(i): i for i in reversed(instances)}.values())  # the first instance of each path
    stand_ins(picked)
    assert run_instances(picked, force=True) == 0


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_study_runs_one_tiny_trial(study: Path, store):
    import yaml

    workdir, env = store
    text = yaml.safe_load(study.read_text())
    experiment = load_experiment(study, text["experiment"])
    stand_ins_for_study(workdir, experiment)
    overrides = [arg for o in tiny(experiment.kind, experiment.dataset) if not o.startswith("seeds")
                 for arg in ("--set", o)]
    out = run_cli(["tune", str(study), "--n-trials", "1", "--storage", f"sqlite:///{workdir / 'optuna.db'}",
                   *overrides], workdir, {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def stand_ins_for_study(workdir: Path, experiment) -> None:
    import os

    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    try:
        stand_ins([experiment])
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI") if old is None else os.environ.__setitem__("MLFLOW_TRACKING_URI", old)


def load_experiment(study: Path, experiment: str):
    from xferlab.spec import load_spec

    return load_spec((study.parent / experiment).resolve()).instances[0]
