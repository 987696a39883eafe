"""Search spaces over spec keys: validated once, suggested per trial, compared across resumes.

A space maps dotted spec keys (``at.beta``, ``model.mapping``: any key of the kind's schema,
:func:`xferlab.schema.leaf_keys`) to one distribution each::

    at.layer: {type: int, low: 1, high: 13}
    at.beta: {type: float, low: 0.1, high: 10, log: true}
    at.aggregation: {type: categorical, choices: [gram, mean, max]}

The canonical JSON of a space (:func:`fingerprint`) is stored on the Optuna study, so a
resumed study whose space changed is refused instead of mixing incomparable trials.
No optuna import here: spec validation stays cheap.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from xferlab import schema
from xferlab.errors import UserError

TYPES = ("int", "float", "categorical")
FIELDS = ("type", "low", "high", "step", "log", "choices")
GRID_MAX = 10_000


@dataclass(frozen=True)
class Param:
    """One searched spec key and its distribution."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        """The value of this key for ``trial`` (an ``optuna.Trial``)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices or ()))
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        """Every value, for the grid sampler (floats need a step)."""
        if self.type == "categorical":
            return list(self.choices or ())
        if self.type == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.type == "float" and self.step and not self.log:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9))
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        raise UserError(f"space key {self.key}: the grid sampler needs a finite set of values: give "
                        "`choices:` or (for int/float) a `step:` without `log: true`")

    def corners(self) -> list[Any]:
        """Values checked against the spec before any trial runs."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]


def parse_space(tree: Any, kind: str, where: str) -> dict[str, Param]:
    """The ``space:`` mapping of a study spec -> {key: Param}; every problem is one line."""
    if not isinstance(tree, Mapping) or not tree:
        raise UserError(f"{where}: `space:` must map spec keys to distributions, e.g. "
                        "space: {at.beta: {type: float, low: 0.1, high: 10, log: true}}")
    valid = schema.leaf_keys(schema.schema_for(kind))
    out: dict[str, Param] = {}
    for key, body in tree.items():
        if key not in valid:
            raise schema.unknown_key_error(str(key), valid, f"{where} space")
        out[key] = parse_param(str(key), body, valid[key], where)
    return out


def parse_param(key: str, body: Any, hint: Any, where: str) -> Param:
    """One distribution, checked for shape and against the key's schema type."""
    if not isinstance(body, Mapping):
        raise UserError(f"{where}: space key {key} must be a mapping like {{type: int, low: 1, high: 4}}, got {body!r}")
    for name in body:
        if name not in FIELDS:
            raise schema.unknown_key_error(f"{key}.{name}", [f"{key}.{f}" for f in FIELDS], f"{where} space")
    kind = body.get("type") or _infer_type(body)
    if kind not in TYPES:
        raise UserError(f"{where}: space key {key} has type {kind!r}: use one of {', '.join(TYPES)}")
    param = Param(key, kind, body.get("low"), body.get("high"), body.get("step"), bool(body.get("log", False)),
                  tuple(body["choices"]) if isinstance(body.get("choices"), list) else body.get("choices"))
    _check_shape(param, where)
    for value in param.corners():
        schema.coerce(value, hint, key)  # e.g. a float range over an int key fails here
    return param


def _infer_type(body: Mapping[str, Any]) -> str:
    if "choices" in body:
        return "categorical"
    ints = all(isinstance(body.get(b), int) and not isinstance(body.get(b), bool) for b in ("low", "high"))
    return "int" if ints and isinstance(body.get("step", 1), int) else "float"


def _check_shape(p: Param, where: str) -> None:
    head = f"{where}: space key {p.key}"
    if p.type == "categorical":
        if not isinstance(p.choices, tuple) or not p.choices:
            raise UserError(f"{head}: categorical needs a non-empty list `choices: [...]`")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in p.choices):
            raise UserError(f"{head}: choices must be scalars (numbers, strings, booleans, null)")
        if any(v is not None for v in (p.low, p.high, p.step)) or p.log:
            raise UserError(f"{head}: categorical takes only `choices` (drop low/high/step/log)")
        return
    if p.choices is not None:
        raise UserError(f"{head}: {p.type} takes low/high (use type: categorical for choices)")
    numbers = [v for v in (p.low, p.high, p.step) if v is not None]
    if p.low is None or p.high is None or not all(_is_number(v) for v in numbers):
        raise UserError(f"{head}: {p.type} needs numbers `low:` and `high:` (and optionally `step:`)")
    if p.type == "int" and not all(isinstance(v, int) for v in numbers):
        raise UserError(f"{head}: int bounds and step must be integers (use type: float otherwise)")
    if p.low > p.high:
        raise UserError(f"{head}: low ({p.low}) is above high ({p.high}): swap them")
    if p.step is not None and p.step <= 0:
        raise UserError(f"{head}: step must be positive")
    if p.log and (p.low <= 0 or (p.step is not None and (p.type == "float" or p.step != 1))):
        raise UserError(f"{head}: log: true needs low > 0 and no step (int: step 1)")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def grid_space(space: Mapping[str, Param]) -> dict[str, list[Any]]:
    """{key: values} for optuna's GridSampler, with a size check."""
    grid = {key: p.grid() for key, p in space.items()}
    if grid_size(grid) > GRID_MAX:
        raise UserError(f"the grid has {grid_size(grid)} points (> {GRID_MAX}): coarsen the steps or use sampler tpe")
    return grid


def grid_size(grid: Mapping[str, list[Any]]) -> int:
    return math.prod(len(v) for v in grid.values())


def fingerprint(space: Mapping[str, Param]) -> str:
    """Canonical JSON of the space (the identity a resumed study must keep)."""
    plain = {key: {k: v for k, v in asdict(p).items() if k != "key" and v not in (None, False)}
             for key, p in sorted(space.items())}
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), default=list)


def first_difference(stored: str, current: str) -> str:
    """A short human description of how two fingerprints differ."""
    try:
        a, b = json.loads(stored), json.loads(current)
    except ValueError:
        return "the stored space cannot be read"
    for key in sorted(set(a) | set(b)):
        if key not in b:
            return f"{key} was searched and is not in the spec any more"
        if key not in a:
            return f"{key} is new in the spec"
        if a[key] != b[key]:
            return f"{key} was {json.dumps(a[key])} and is now {json.dumps(b[key])}"
    return "no difference"
