"""Experiment specs: YAML values -> validated, expanded, hashed instances.

A spec is a YAML file of values only (``yaml.safe_load``: no tags, no code, no
interpolation). ``base:`` names parent specs (paths relative to the file) that are deep
merged first; ``--set key=value`` overrides come last. The merged tree is validated
against the kind's schema (:mod:`xferlab.schema`), then the ``grid`` expands into cells and
each cell runs once per seed: one :class:`Instance` each, with a stable hash of its
resolved values (the dedup key of the runner).
"""
from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from xferlab import schema
from xferlab.errors import UserError
from xferlab.kinds import get_kind, kind_names


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"a.b.c": value}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def stable_hash(config: Mapping[str, Any], length: int = 16) -> str:
    """Hash of a resolved config: canonical JSON (sorted keys), sha256, hex prefix."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# The data section of the first hash scheme (v1, until 2026-12): one flat section holding
# every dataset's options with their defaults. Frozen here so that runs recorded under it
# stay found: the runner's dedup accepts an instance's v1 hash beside its own.
V1_DATA: Mapping[str, Any] = {
    "dataset": "", "ucr_dir": None, "root": None, "profile": "small", "split": "default", "confound": 0.0,
    "segment_s": 1.0, "max_items": None, "noise_root": None, "per_class": 1000, "merge_excited": False,
    "microphone": None, "instrument_counts": [8, 2, 2], "noise_types": None, "alignment": None, "top_k": 1000,
}


def v1_hash(config: Mapping[str, Any]) -> str | None:
    """The hash the same instance had under the v1 scheme; None when it uses an option v1 lacked."""
    data = dict(config.get("data", {}))
    if not set(data) <= set(V1_DATA):
        return None
    return stable_hash({**config, "data": {**V1_DATA, **data}})


@dataclass(frozen=True)
class Instance:
    """One training run of a spec: a grid cell with one seed, fully resolved."""

    spec_name: str  # e.g. "smoke/v2s": the spec path relative to experiments/, no suffix
    spec_path: str
    kind: str  # v2s | at | pretrain_v2s | pretrain_at
    paper: str  # v2s | antitransfer
    table: str | None
    experiment: str  # MLflow experiment name
    cell: str  # "data.dataset=ucr/Coffee,model.source=attrnn" or "default"
    seed: int
    config: Mapping[str, Any] = field(repr=False)  # resolved nested values, incl. kind and seed
    hash: str = ""
    role: str = "final"  # the spec's `role:` (final | smoke); not part of the hash: dedup is per role

    def flat(self) -> dict[str, Any]:
        return flatten(self.config)

    @functools.cached_property
    def cfg(self) -> Any:
        """The typed, frozen config of the kind's schema (``cfg.train.epochs``): what jobs read
        (built once per instance: the runner, the claims and the job all ask for it)."""
        return schema.build(get_kind(self.kind).schema, self.config)

    @functools.cached_property
    def hashes(self) -> tuple[str, ...]:
        """Hashes a FINISHED run of this instance may carry: this scheme's, then v1's."""
        old = v1_hash(self.config)
        return (self.hash,) if old in (None, self.hash) else (self.hash, old)

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def dataset(self) -> str:
        return str(self.get("data.dataset", ""))

    @property
    def select(self) -> list[str]:
        """Keys chosen on validation per table cell (the spec's ``select``), or none."""
        return list(self.config.get("select", []))


# ---------------------------------------------------------------------------------------
# Reading and merging
# ---------------------------------------------------------------------------------------
def read_yaml(path: Path) -> dict[str, Any]:
    """One YAML mapping, values only; every failure is a one-line UserError."""
    if not path.is_file():
        raise UserError(f"spec file {path} does not exist: check the path (specs live in experiments/)")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"invalid YAML in {path}{where}: {getattr(exc, 'problem', exc)}; fix the file") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise UserError(f"{path} must hold a mapping of keys (got {type(tree).__name__}); see experiments/ for examples")
    return tree


def deep_merge(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """Child values win; mappings merge key by key, except ``grid`` which is replaced.

    ``seed`` and ``seeds`` exclude each other: a child naming one drops the parent's other.
    """
    out = copy.deepcopy(dict(parent))
    for exclusive in (("seed", "seeds"), ("seeds", "seed")):
        if exclusive[0] in child:
            out.pop(exclusive[1], None)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "grid":
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_tree(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The spec at ``path`` merged over its ``base:`` chain (relative paths, no cycles)."""
    path = path.resolve()
    if path in _seen:
        raise UserError(f"base: cycle through {path}: remove one of the base references")
    tree = read_yaml(path)
    bases = tree.pop("base", None) or []
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        if not isinstance(base, str):
            raise UserError(f"base: in {path} must be a path or a list of paths, got {base!r}")
        merged = deep_merge(merged, load_tree(path.parent / base, _seen + (path,)))
    return deep_merge(merged, tree)


# ---------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=1e-3"`` -> ("train.lr", 0.001-ish); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r} is not key=value: write e.g. --set train.epochs=2")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


WHOLE_KEYS = {  # top keys --set cannot replace whole, and what to do instead
    "grid": "--set grid=... cannot replace a whole grid: fix one axis with --set grid.<key>=[...] (or "
            "--set <key>=<value>), or run some cells only with --only '*<key>=<value>*'",
    "base": "--set base=... cannot change the spec a spec extends: edit the spec's base: line, or copy the spec"}


def apply_overrides(tree: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides; naming a grid axis fixes it (the axis is dropped)."""
    tree = copy.deepcopy(tree)
    valid = schema.leaf_keys(schema.schema_for(tree.get("kind")))
    named: set[str] = set()  # keys the command line set itself (drop_foreign_options keeps them)
    for text in overrides:
        key, value = parse_override(text)
        named.add(key)
        if key.startswith("grid."):
            axis = key[len("grid."):]
            _check_key(axis, valid, "--set grid")
            grid = tree.setdefault("grid", {})
            if not isinstance(grid, dict):
                raise UserError("--set grid.<key> needs a grid mapping, but this spec's grid is a list of cells")
            grid[axis] = value if isinstance(value, list) else [value]
            continue
        if key in ("seed", "seeds"):
            tree.pop("seeds" if key == "seed" else "seed", None)
            tree[key] = value
            continue
        if key in schema.TOP_KEYS and key not in ("grid", "base"):
            tree[key] = value
            continue
        if key in WHOLE_KEYS:
            raise UserError(WHOLE_KEYS[key])
        _check_key(key, valid, "--set")
        set_dotted(tree, key, value)
        if key == "data.dataset":
            drop_foreign_options(tree["data"], named)
        grid = tree.get("grid")
        for block in [grid] if isinstance(grid, dict) else grid if isinstance(grid, list) else []:
            if isinstance(block, dict):  # a union grid: the axis is fixed in every block
                block.pop(key, None)
    return tree


def drop_foreign_options(data: dict[str, Any], named: set[str]) -> None:
    """``--set data.dataset=X`` on a spec written for another dataset: the spec's options of
    that other dataset (a synthetic corpus's ``profile``) do not apply to X and are dropped.
    One the command line set itself stays, so validation names it."""
    for key in schema.foreign_data_keys(data):
        if f"data.{key}" not in named:
            data.pop(key)


def _check_key(key: str, valid: Mapping[str, Any], where: str) -> None:
    if key not in valid:
        raise schema.unknown_key_error(key, list(valid) + [k for k in schema.TOP_KEYS if k != "base"], where)


# ---------------------------------------------------------------------------------------
# Validation and expansion
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """A loaded spec: its merged tree and the instances it expands into."""

    name: str
    path: str
    kind: str
    tree: Mapping[str, Any] = field(repr=False)
    instances: tuple[Instance, ...] = field(repr=False)


def spec_name(path: Path) -> str:
    """``experiments/smoke/v2s.yaml`` -> ``smoke/v2s``; outside experiments/, the stem."""
    parts = path.resolve().with_suffix("").parts
    if "experiments" in parts:
        idx = len(parts) - 1 - parts[::-1].index("experiments")
        return "/".join(parts[idx + 1:])
    return path.stem


def grid_cells(grid: Any, valid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``grid`` -> list of {dotted key: value}; a mapping is a product, a list a union."""
    if grid is None or grid == {}:
        return [{}]
    if isinstance(grid, dict):
        grid = [grid]
    if not isinstance(grid, list) or not all(isinstance(g, dict) for g in grid):
        raise UserError("grid must map keys to lists of values (or be a list of such mappings)")
    cells: list[dict[str, Any]] = []
    for block in grid:
        axes = {}
        for key, values in block.items():
            _check_key(key, valid, "grid")
            axes[key] = values if isinstance(values, list) else [values]
        cells += [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    unique = {cell_label(c): c for c in reversed(cells)}  # blocks that became equal (a fixed axis): once
    return [c for c in cells if unique.get(cell_label(c)) is c]


def cell_label(cell: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in cell.items()) or "default"


def seeds_of(tree: Mapping[str, Any]) -> list[int]:
    seeds = tree.get("seeds", [tree.get("seed", 0)])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
        raise UserError(f"seeds = {seeds!r} is not valid: expected a non-empty list of integers, e.g. [0, 1, 2]")
    return seeds


def resolve(tree: Mapping[str, Any], cell: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The full values of one instance: sections validated, defaults filled, top keys set."""
    kind = get_kind(tree.get("kind"))
    cls, paper, experiment = kind.schema, kind.paper, kind.experiment
    sections = {k: v for k, v in tree.items() if k not in schema.TOP_KEYS}
    sections = copy.deepcopy(sections)
    for key, value in cell.items():
        set_dotted(sections, key, value)
    config = {
        "kind": kind.name,
        "paper": _top_str(tree, "paper", paper),
        "table": _top_str(tree, "table", None),
        "experiment": _top_str(tree, "experiment", experiment),
        "seed": seed,
    }
    if "select" in tree:  # absent -> no key, so the hashes of specs without it stay as they were
        config["select"] = select_keys(tree["select"], schema.leaf_keys(cls))
    config.update(schema.validate(cls, sections))
    return config


def select_keys(value: Any, valid: Mapping[str, Any]) -> list[str]:
    """``select: [model.dropout, model.seg]``: the keys chosen on validation per table cell.

    The runs of such a spec differ in these keys inside one table cell on purpose; the
    report keeps, per cell, the setting with the best mean validation accuracy.
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(k, str) for k in value):
        raise UserError(f"select = {value!r} is not valid: expected a list of keys, e.g. [model.dropout, model.seg]")
    for key in value:
        _check_key(key, valid, "select")
    return list(value)


def _top_str(tree: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = tree.get(key, default)
    if value is not None and not isinstance(value, str):
        raise UserError(f"{key} = {value!r} is not valid: expected a string")
    return value


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> Spec:
    """Read, merge, override, validate and expand a spec file."""
    path = Path(path)
    tree = load_tree(path)
    if "kind" not in tree:
        raise UserError(f"{path} names no kind: add `kind: v2s` (or {', '.join(kind_names())})")
    schema_cls = schema.schema_for(tree["kind"])
    tree = apply_overrides(tree, overrides)
    for key in tree:
        if key not in schema.TOP_KEYS and key not in {f.name for f in schema.dataclasses.fields(schema_cls)}:
            raise schema.unknown_key_error(key, [*schema.leaf_keys(schema_cls), *schema.TOP_KEYS], str(path))
    name = spec_name(path)
    role = tree.get("role", "final")
    if role not in schema.SPEC_ROLES:
        raise UserError(f"role = {role!r} is not valid in {path}: use {' or '.join(schema.SPEC_ROLES)}")
    cells = grid_cells(tree.get("grid"), schema.leaf_keys(schema_cls))
    instances = []
    for cell in cells:
        for seed in seeds_of(tree):
            config = resolve(tree, cell, seed)
            instances.append(Instance(
                spec_name=name, spec_path=str(path), kind=config["kind"], paper=config["paper"],
                table=config["table"], experiment=config["experiment"], cell=cell_label(cell),
                seed=seed, config=config, hash=stable_hash(config), role=role))
    return Spec(name=name, path=str(path), kind=tree["kind"], tree=tree, instances=tuple(instances))
