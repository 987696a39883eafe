"""The spec-key contract: typed sections, and the machinery that checks values against them.

Each experiment kind declares its schema in its own module (:mod:`xferlab.kinds`), built
from the shared sections here (``Data``, ``Train``); each dataset declares its own
``data.*`` options in its data module. Every key a spec, an override, a grid axis or a
tuning search space may name is a field of one of these dataclasses, with its type and
default. The resolved instance carries every value that applies to it (defaults
included), so its hash changes whenever anything that shapes the run changes, and only
then. Keep this module free of heavy imports: `xferlab run --dry-run` validates specs
without TensorFlow or PyTorch.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from xferlab.errors import UserError

Mapping_ = Union[int, Literal["max"]]


@dataclass(frozen=True)
class Data:
    """Where the examples come from (`data.dataset` is a registered name).

    Only the keys every dataset understands are here. A dataset's own options (a UCR
    archive folder, a synthetic corpus profile, IEMOCAP's merge_excited, ...) are declared
    by its data module (``OPTIONS``) and join the section only for that dataset, so a new
    option of one dataset changes no hash of a spec that uses another.
    """

    dataset: str = ""
    root: Optional[str] = None  # local folder of a real dataset (IEMOCAP, Speech Commands, ...)
    segment_s: float = 1.0  # AT: segment length in seconds
    max_items: Optional[int] = None  # cap on examples (quick runs); None = all


@dataclass(frozen=True)
class Train:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    patience: Optional[int] = None  # early stopping patience in epochs; None = off


# Top-level keys every spec may carry besides the kind's sections.
TOP_KEYS = ("base", "kind", "paper", "table", "experiment", "description", "seed", "seeds", "grid", "select", "role")
SPEC_ROLES = ("final", "smoke")  # `role:` of a spec; smoke runs stay out of the paper tables by default


# ---------------------------------------------------------------------------------------
# Checking values against the schema
# ---------------------------------------------------------------------------------------

def _key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


# Field metadata of an option added after runs were recorded: at its default value it is
# left out of the resolved config, so every instance that does not set it keeps its hash
# (and its finished runs). ``build`` fills the default back in for the jobs.
OMIT_DEFAULT = "omit_default"


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """YAML key -> (field, resolved type hint) of a schema dataclass. Cached per class:
    resolving the hints is most of the cost of expanding a grid of a thousand cells. (Treat
    the result as read-only.)"""
    hints = typing.get_type_hints(cls)
    return {_key(f): (f, hints[f.name]) for f in dataclasses.fields(cls)}


def schema_for(kind: str) -> type:
    """The spec schema of a registered kind (see :mod:`xferlab.kinds`)."""
    from xferlab.kinds import get_kind

    return get_kind(kind).schema


def leaf_keys(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every dotted key of a schema with its type: the names a spec may use (for the data
    section: the common keys and every dataset's options)."""
    out: dict[str, Any] = {}
    for key, (_, hint) in _fields(cls).items():
        if hint is Data:
            out.update({f"{prefix}{key}.{k}": h for k, h in data_keys().items()})
        elif dataclasses.is_dataclass(hint):
            out.update(leaf_keys(hint, f"{prefix}{key}."))
        else:
            out[prefix + key] = hint
    return out


def dataset_options(dataset: str) -> Optional[type]:
    """The options dataclass a dataset's module declares (None: it takes none)."""
    from xferlab.registry import DATASETS

    if dataset not in DATASETS:
        raise UserError(DATASETS.unknown_message(dataset))
    return DATASETS.meta(dataset).get("options")


def foreign_data_keys(data: dict[str, Any]) -> list[str]:
    """Keys of a data section that are options of another dataset, not of its own (e.g. a
    synthetic corpus's ``profile`` once ``--set data.dataset=gsc/words`` names real speech)."""
    options = dataset_options(data.get("dataset", Data().dataset))
    own = set(_fields(options)) if options else set()
    return [k for k in data if k not in _fields(Data) and k not in own]


def data_keys() -> dict[str, Any]:
    """Common data keys and every dataset's options, with their types."""
    from xferlab.registry import DATASETS

    keys = {key: hint for key, (_, hint) in _fields(Data).items()}
    for name in DATASETS.names():
        options = DATASETS.meta(name.rstrip("*")).get("options")
        if options is not None:
            keys.update({key: hint for key, (_, hint) in _fields(options).items() if key not in keys})
    return keys


def unknown_key_error(key: str, valid: typing.Iterable[str], where: str) -> UserError:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.4)
    hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
    return UserError(f"unknown key {key!r} in {where}: {hint}")


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in args)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a type hint; allow the few safe conversions YAML needs.

    ``1e-3`` is a string in YAML 1.1, so a float field accepts a numeric string; an int
    is accepted where a float is expected. Nothing else is converted: ``"yes"`` is not a
    bool and ``2.5`` is not an int.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        for arm in args:
            try:
                return coerce(value, arm, key)
            except UserError:
                continue
    elif origin is list:
        if isinstance(value, list):
            return [coerce(item, args[0], f"{key}[{i}]") for i, item in enumerate(value)]
    elif origin is Literal:
        if value in args:
            return value
    elif hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    raise UserError(f"{key} = {value!r} is not a valid value: expected {_type_name(hint)}")


def validate(cls: type, tree: Any, prefix: str = "") -> dict[str, Any]:
    """Resolve a section against its schema: defaults filled in, types checked."""
    fields = _fields(cls)
    for key in tree:
        if key not in fields:
            raise unknown_key_error(prefix + str(key), (prefix + k for k in leaf_keys(cls)), "the spec")
    default = cls()
    out: dict[str, Any] = {}
    for key, (f, hint) in fields.items():
        if hint is Data:
            out[key] = validate_data(tree.get(key) or {}, getattr(default, f.name), f"{prefix}{key}.")
        elif dataclasses.is_dataclass(hint):
            sub = tree.get(key) or {}
            if not isinstance(sub, dict):
                raise UserError(f"{prefix}{key} must be a mapping of keys, got {sub!r}")
            base = _rekey(hint, dataclasses.asdict(getattr(default, f.name)))
            out[key] = validate(hint, {**base, **sub}, f"{prefix}{key}.")
        else:
            value = tree.get(key, getattr(default, f.name))
            out[key] = coerce(value, hint, prefix + key)
            if f.metadata.get(OMIT_DEFAULT) and out[key] == getattr(default, f.name):
                del out[key]  # absent means the default: the instance keeps the hash it had before
    return out


def _rekey(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """asdict() uses attribute names (from_); specs use YAML keys (from)."""
    names = {f.name: _key(f) for f in dataclasses.fields(cls)}
    return {names[k]: v for k, v in values.items()}


def validate_data(tree: Any, default: Data, prefix: str = "data.") -> dict[str, Any]:
    """The data section: common keys plus the options of the chosen dataset only."""
    if not isinstance(tree, dict):
        raise UserError(f"{prefix.rstrip('.')} must be a mapping of keys, got {tree!r}")
    dataset = tree.get("dataset", default.dataset)
    options = dataset_options(dataset)
    common = {k for k in _fields(Data)}
    own = set(_fields(options)) if options else set()
    for key in tree:
        if key not in common and key not in own:
            if key in data_keys():
                raise UserError(f"{prefix}{key} is not an option of dataset {dataset!r} (it takes "
                                f"{', '.join(sorted(own)) or 'no options of its own'}): remove it")
            raise unknown_key_error(prefix + str(key), (prefix + k for k in data_keys()), "the spec")
    base = dataclasses.asdict(default)
    out = validate(Data, {**base, **{k: v for k, v in tree.items() if k in common}}, prefix)
    if options is not None:
        out.update(validate(options, {k: v for k, v in tree.items() if k in own}, prefix))
    return out


def build(cls: type, tree: Any) -> Any:
    """A resolved section -> the frozen, typed config jobs read (``cfg.train.epochs``).

    The data section keeps its common keys only: a dataset's own options go to its
    factory with the plain resolved mapping.
    """
    values = {}
    for key, (f, hint) in _fields(cls).items():
        if dataclasses.is_dataclass(hint):
            values[f.name] = build(hint, tree.get(key) or {})
        elif key in tree:
            values[f.name] = tree[key]
    return cls(**values)
