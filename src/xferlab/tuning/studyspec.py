"""Study specs (``tuning/*.yaml``): what to tune, against which metric, how, for how long.

Values only (``yaml.safe_load``), like experiment specs::

    experiment: ../experiments/synth/tune_style.yaml   # relative to this file
    study: at-style                  # the Optuna study name (resumed when it exists)
    metric: best_val_accuracy        # a final metric of the run
    direction: maximize
    intermediate: val_accuracy       # per-epoch metric reported to the pruner
    sampler: {name: tpe, seed: 0}    # tpe | random | grid (+ options: {...})
    pruner: {name: median, options: {n_startup_trials: 3, n_warmup_steps: 2}}
    n_trials: 30                     # budget across all workers (COMPLETE + PRUNED)
    timeout_s: 7200                  # per invocation, optional
    set: {train.epochs: 10}          # fixed overrides of the experiment spec
    space: {at.beta: {type: float, low: 0.1, high: 10, log: true}}

``--set`` overrides address the study spec when their first part is a study key
(``n_trials=4``, ``pruner.name=none``) and the experiment spec otherwise
(``train.epochs=2``), appended after ``set:``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from xferlab import schema
from xferlab.errors import UserError
from xferlab.spec import Instance, apply_overrides, load_spec, parse_override, read_yaml, set_dotted, stable_hash
from xferlab.tuning.space import Param, grid_size, grid_space, parse_space

STUDY_KEYS = ("experiment", "study", "description", "metric", "direction", "intermediate", "sampler", "pruner",
              "n_trials", "timeout_s", "heartbeat_s", "grace_s", "max_retry", "set", "space")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "threshold", "none")
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class StudySpec:
    """A validated study spec; :meth:`instance` builds the experiment instance of a trial."""

    path: Path
    experiment: Path
    study: str
    metric: str
    direction: str
    intermediate: str | None
    sampler: Mapping[str, Any]
    pruner: Mapping[str, Any]
    n_trials: int
    timeout_s: float | None
    heartbeat_s: int
    grace_s: int
    max_retry: int
    sets: tuple[str, ...]
    space: Mapping[str, Param] = field(repr=False)
    kind: str = ""
    description: str = ""

    def instance(self, params: Mapping[str, Any]) -> Instance:
        """The single experiment instance with the trial's ``params`` (spec keys) applied."""
        overrides = list(self.sets) + [f"{k}={json.dumps(v)}" for k, v in params.items()]
        instances = load_spec(self.experiment, overrides).instances
        if len(instances) != 1:
            raise UserError(f"{self.experiment} expands into {len(instances)} instances for a trial: fix grid axes "
                            "and seeds in the study's `set:` (e.g. set: {at.enabled: true, seed: 0})")
        return instances[0]

    def base_hash(self) -> str:
        """Hash of everything a trial fixes (the spec without the searched keys)."""
        config = dict(self.instance({k: p.corners()[0] for k, p in self.space.items()}).flat())
        return stable_hash({k: v for k, v in config.items() if k not in self.space})


def load_study_spec(path: str | Path, overrides: Iterable[str] = ()) -> StudySpec:
    """Read, override and validate a study spec; check every space value against the experiment."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"study spec {path} does not exist: check the path (study specs live in tuning/)")
    tree = read_yaml(path)
    sets = _set_list(tree.get("set"), path)
    for text in overrides:
        key, value = parse_override(text)
        if key.split(".")[0] in STUDY_KEYS and key.split(".")[0] not in ("set", "space", "experiment"):
            set_dotted(tree, key, value)
        else:
            sets.append(text)
    for key in tree:
        if key not in STUDY_KEYS:
            raise schema.unknown_key_error(str(key), STUDY_KEYS, str(path))
    return _build(path, tree, tuple(sets))


def _set_list(value: Any, path: Path) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise UserError(f"{path}: `set:` must map experiment spec keys to values, e.g. set: {{train.epochs: 5}}")
    return [f"{k}={json.dumps(v)}" for k, v in value.items()]


def _build(path: Path, tree: Mapping[str, Any], sets: tuple[str, ...]) -> StudySpec:
    experiment = _experiment_path(path, tree)
    kind = _kind_of(experiment, sets)
    direction = _choice(tree, "direction", DIRECTIONS, path, "maximize")
    sampler, pruner = _section(tree, "sampler", SAMPLERS, path, "tpe"), _section(tree, "pruner", PRUNERS, path, "none")
    space = parse_space(tree.get("space"), kind, str(path))
    n_trials = _positive_int(tree, "n_trials", path, None)
    if sampler["name"] == "grid":
        size = grid_size(grid_space(space))
        n_trials = min(n_trials or size, size)
    if n_trials is None:
        raise UserError(f"{path}: give a budget: `n_trials: 20` (and optionally `timeout_s:`), or --n-trials")
    heartbeat = _positive_int(tree, "heartbeat_s", path, 60)
    intermediate = tree.get("intermediate", "val_accuracy")
    spec = StudySpec(
        path=path, experiment=experiment, study=_text(tree, "study", path, path.stem),
        metric=_text(tree, "metric", path, "best_val_accuracy"), direction=direction,
        intermediate=None if intermediate is None else _text(tree, "intermediate", path, "val_accuracy"),
        sampler=sampler, pruner=pruner, n_trials=n_trials, timeout_s=_timeout(tree, path), heartbeat_s=heartbeat,
        grace_s=_positive_int(tree, "grace_s", path, 2 * heartbeat),
        max_retry=_positive_int(tree, "max_retry", path, 2, allow_zero=True), sets=sets, space=space, kind=kind,
        description=str(tree.get("description", "")))
    _check_values(spec)
    return spec


def with_budget(spec: StudySpec, n_trials: int | None, timeout_s: float | None) -> StudySpec:
    """The spec with the command line's budget (``--n-trials``, ``--timeout``) applied."""
    changes: dict[str, Any] = {}
    if n_trials:
        if n_trials < 1:
            raise UserError(f"--n-trials {n_trials} must be positive")
        if spec.sampler["name"] == "grid":
            n_trials = min(n_trials, grid_size(grid_space(spec.space)))
        changes["n_trials"] = n_trials
    if timeout_s:
        changes["timeout_s"] = float(timeout_s)
    return replace(spec, **changes) if changes else spec


def _experiment_path(path: Path, tree: Mapping[str, Any]) -> Path:
    rel = tree.get("experiment")
    if not isinstance(rel, str) or not rel:
        raise UserError(f"{path}: name the experiment spec to tune: `experiment: ../experiments/...yaml` "
                        "(relative to the study file)")
    experiment = (path.parent / rel).resolve()
    if not experiment.is_file():
        raise UserError(f"{path}: experiment spec {rel} not found (looked at {experiment}); paths are relative "
                        "to the study file")
    return experiment


def _kind_of(experiment: Path, sets: tuple[str, ...]) -> str:
    from xferlab.spec import load_tree

    tree = apply_overrides(load_tree(experiment), sets)
    if "kind" not in tree:
        raise UserError(f"{experiment} names no kind: add `kind: at` (or v2s, ...)")
    schema.schema_for(tree["kind"])
    return str(tree["kind"])


def _choice(tree: Mapping[str, Any], key: str, options: tuple[str, ...], path: Path, default: str) -> str:
    value = tree.get(key, default)
    if value not in options:
        raise UserError(f"{path}: {key}: {value!r} is not valid: use one of {', '.join(options)}")
    return str(value)


def _section(tree: Mapping[str, Any], key: str, names: tuple[str, ...], path: Path, default: str) -> dict[str, Any]:
    """``sampler:``/``pruner:`` as {name, seed?, options}; a bare string names it."""
    value = tree.get(key) or {"name": default}
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise UserError(f"{path}: {key}: must be a mapping like {{name: {default}}}")
    allowed = ("name", "seed", "options") if key == "sampler" else ("name", "options")
    for sub in value:
        if sub not in allowed:
            raise schema.unknown_key_error(f"{key}.{sub}", [f"{key}.{a}" for a in allowed], str(path))
    name = _choice(value, "name", names, path, default)
    options = value.get("options") or {}
    if not isinstance(options, Mapping):
        raise UserError(f"{path}: {key}.options must be a mapping of keyword arguments")
    seed = value.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise UserError(f"{path}: sampler.seed must be an integer, got {seed!r}")
    return {"name": name, "seed": seed, "options": dict(options)} if key == "sampler" else \
        {"name": name, "options": dict(options)}


def _text(tree: Mapping[str, Any], key: str, path: Path, default: str) -> str:
    value = tree.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{path}: {key}: must be a non-empty string, got {value!r}")
    return value.strip()


def _positive_int(tree: Mapping[str, Any], key: str, path: Path, default: int | None,
                  allow_zero: bool = False) -> Any:
    value = tree.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise UserError(f"{path}: {key}: must be a {'non-negative' if allow_zero else 'positive'} integer, "
                        f"got {value!r}")
    return value


def _timeout(tree: Mapping[str, Any], path: Path) -> float | None:
    value = tree.get("timeout_s")
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{path}: timeout_s: must be a positive number of seconds, got {value!r}")
    return float(value)


def _check_values(spec: StudySpec) -> None:
    """Every bound and choice yields one valid instance (dataset, at.layer range, ...)."""
    from xferlab.catalog import check_instances

    base = {k: p.corners()[0] for k, p in spec.space.items()}
    checked = [spec.instance(base)]
    for key, param in spec.space.items():
        for value in param.corners()[1:]:
            checked.append(spec.instance({**base, key: value}))
    check_instances(checked)
