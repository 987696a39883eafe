"""A spec hash stays stable as the schema grows, and runs recorded before the hash scheme
changed stay found.

- A dataset's options sit with its data module and join an instance's config only for
  that dataset: adding an option (with a default) to one dataset changes no hash of a
  shipped spec that uses another.
- ``tests/unit/data/v1_hashes.json`` holds the hashes the shipped specs had under the
  first scheme (one flat data section), recorded before the change: ``Instance.hashes``
  still carries them, which is what the runner's dedup and claims look up, so a user's
  FINISHED runs are not run again. A spec whose experiment changed on purpose (the V2S
  specs moved from validating on the test split to held-out validation with selection;
  ``sources/attrnn.yaml`` became the large-corpus, speed-perturbed recipe) is removed from
  the file: its old runs are another experiment and must not be found.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from xferlab.registry import DATASETS
from xferlab.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if not p.name.startswith("_"))
V1 = json.loads((Path(__file__).parent / "data" / "v1_hashes.json").read_text())


def hashes() -> dict[tuple[str, str, int], tuple[str, str]]:
    """(spec, cell, seed) -> (hash, dataset) of the first and last instance of every shipped
    spec: a sample of each grid, taken the same way before and after the change."""
    out = {}
    for p in SPECS:
        instances = load_spec(p).instances
        for i in (instances[0], instances[-1]):
            out[(str(p.relative_to(ROOT / "experiments")), i.cell, i.seed)] = (i.hash, i.dataset)
    return out


def module_families() -> dict[str, list[str]]:
    """Options dataclass name -> the registered dataset names that take it."""
    families: dict[str, list[str]] = {}
    for name in DATASETS.names():
        options = DATASETS.meta(name.rstrip("*")).get("options")
        if options is not None:
            families.setdefault(f"{options.__module__}.{options.__qualname__}", []).append(name.rstrip("*"))
    return families


@pytest.fixture(scope="module")
def before() -> dict[tuple[str, str, int], tuple[str, str]]:
    return hashes()


@pytest.mark.parametrize("family", sorted(module_families()))
def test_a_new_option_of_one_dataset_changes_no_other_spec_hash(family: str, before, monkeypatch: pytest.MonkeyPatch):
    names = module_families()[family]
    options = DATASETS.meta(names[0]).get("options")
    grown = dataclasses.make_dataclass(options.__name__, [("brand_new_option", int, dataclasses.field(default=7))],
                                       bases=(options,), frozen=True)
    for name in names:
        monkeypatch.setitem(DATASETS._meta[name], "options", grown)
    after = hashes()
    users = {k for k, (_, dataset) in before.items() if any(dataset.startswith(n) for n in names)}
    unchanged = {k for k in before if before[k][0] == after[k][0]}
    assert unchanged == set(before) - users  # the option's own datasets change; nothing else does
    assert len(before) > len(users)


@pytest.mark.parametrize("spec", sorted(V1), ids=str)
def test_runs_recorded_under_the_first_scheme_stay_found(spec: str):
    instances = load_spec(ROOT / "experiments" / spec).instances
    for which, index in (("first", 0), ("last", -1)):
        cell, seed, old = V1[spec][which]
        inst = instances[index]
        assert (inst.cell, inst.seed) == (cell, seed)
        assert old in inst.hashes, f"{spec} {which}: {old} not among {inst.hashes}"


def test_an_option_added_with_omit_default_keeps_every_hash_until_it_is_set():
    """model.dropout and model.head_init came after AT runs were recorded: at their defaults
    they are absent from the resolved config (the hash is unchanged) and the typed config
    still carries them; set, they are part of the config and of the hash."""
    path = ROOT / "experiments" / "quickstart" / "orthogonal.yaml"
    plain = load_spec(path, ["model.dropout=0.5", "model.head_init=torchvision"]).instances[0]
    assert "dropout" not in plain.config["model"] and "head_init" not in plain.config["model"]
    assert (plain.cfg.model.dropout, plain.cfg.model.head_init) == (0.5, "torchvision")
    other = load_spec(path, ["model.dropout=0.5", "model.head_init=torchvision", "model.dropout=0.2"]).instances[0]
    assert other.config["model"]["dropout"] == 0.2 and other.hash != plain.hash
