"""The spec-key contract: one typed schema per experiment kind.

A spec is validated against the dataclasses below: every key a spec, an override, a grid
axis or a tuning search space may name is a field here, with its type and default. The
resolved instance therefore carries every value (defaults included), so its hash changes
whenever anything that shapes the run changes. Keep this module free of heavy imports:
`xferlab run --dry-run` validates specs without TensorFlow or PyTorch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

Mapping_ = Union[int, Literal["max"]]


@dataclass
class Data:
    """Where the examples come from (`data.dataset` is a registered name)."""

    dataset: str = ""
    ucr_dir: Optional[str] = None  # local UCR archive; else $XFERLAB_UCR_DIR; else bundled sets
    root: Optional[str] = None  # local folder of a real dataset (IEMOCAP, Speech Commands, ...)
    profile: str = "small"  # synthetic speech corpus profile: tiny | small | full
    split: str = "default"  # dataset-specific split name (random, speaker, ...)
    confound: float = 0.0  # synthetic AT tasks: how strongly the orthogonal factor tracks the label
    segment_s: float = 1.0  # AT: segment length in seconds
    max_items: Optional[int] = None  # cap on examples (quick runs); None = all
    # real datasets (see the README's data section)
    noise_root: Optional[str] = None  # MS-SNSD folder for the noisy digits ($XFERLAB_MSSNSD_DIR)
    per_class: int = 1000  # GSC digits: files per class, as in the paper
    merge_excited: bool = False  # IEMOCAP: count "exc" as happy (the paper does not)
    microphone: Optional[str] = None  # Good-Sounds: keep one microphone's takes
    instrument_counts: list[int] = field(default_factory=lambda: [8, 2, 2])  # Good-Sounds split
    noise_types: Optional[list[str]] = None  # MS-SNSD: restrict the noise types
    alignment: Optional[str] = None  # LibriSpeech word alignment CSV ($XFERLAB_LIBRISPEECH_ALIGNMENT)
    top_k: int = 1000  # LibriSpeech: most frequent words kept


@dataclass
class Train:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    patience: Optional[int] = None  # early stopping patience in epochs; None = off


@dataclass
class V2SModel:
    source: str = "attrnn"  # registered source model name or a models:/ URI
    mapping: Mapping_ = "max"  # source labels per target class, or max
    mapping_kind: Literal["random", "one_to_one", "frequency"] = "random"
    seg: int = 1  # copies of the target series inside the 16000 samples
    dropout: float = 0.4
    l2: float = 0.05
    mask: bool = False
    method: Literal["v2s", "tf_a"] = "v2s"
    pretrain: Optional[str] = None  # spec to run first when `source` is not registered yet


@dataclass
class V2STrain(Train):
    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.05
    lr_decay: float = 0.48  # inverse-time decay per iteration, as the authors' Keras 2 code
    val_mode: Literal["paper", "holdout"] = "holdout"
    val_fraction: float = 0.2


@dataclass
class Analysis:
    swd: bool = False  # sliced Wasserstein distance per epoch
    swd_projections: int = 1000
    figures: bool = True  # curves, CAM panel, t-SNE


@dataclass
class SourceModel:
    arch: str = "attrnn"  # registered architecture
    register_as: str = ""  # registry name; default: v2s-<arch>-<dataset tail>


@dataclass
class PretrainTrain(Train):
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: to lr/20 at the last step
    augment: bool = True


@dataclass
class ATModel:
    width: float = 0.125  # VGG16 channel multiplier; 1.0 = the paper
    register_as: Optional[str] = None  # register the trained model (orthogonal / dual AT)


@dataclass
class AT:
    enabled: bool = False
    orthogonal: Optional[str] = None  # registered model name or models:/ URI
    layer: int = 4  # conv layer 1..13 (conv tap mode)
    tap: Literal["conv", "paper"] = "conv"
    beta: float = 1.0
    aggregation: Literal["none", "mean", "sum", "max", "product", "gram", "pairwise",
                         "stochastic_pairwise"] = "gram"
    distance: Literal["cos_squared", "mse_sigmoid"] = "cos_squared"
    gram: Literal["batch", "sample"] = "batch"
    pretrain: Optional[str] = None  # spec to run first when `orthogonal` is not registered yet


@dataclass
class Init:
    from_: Optional[str] = field(default=None, metadata={"key": "from"})


@dataclass
class ATTrain(Train):
    epochs: int = 20
    batch_size: int = 8
    lr: float = 5e-5
    patience: Optional[int] = 5


@dataclass
class V2SSpec:
    data: Data = field(default_factory=lambda: Data(dataset="ucr/Coffee"))
    model: V2SModel = field(default_factory=V2SModel)
    train: V2STrain = field(default_factory=V2STrain)
    analysis: Analysis = field(default_factory=Analysis)


@dataclass
class PretrainV2SSpec:
    data: Data = field(default_factory=lambda: Data(dataset="synth/words"))
    model: SourceModel = field(default_factory=SourceModel)
    train: PretrainTrain = field(default_factory=PretrainTrain)


@dataclass
class ATSpec:
    data: Data = field(default_factory=lambda: Data(dataset="synth/style_speakersplit"))
    model: ATModel = field(default_factory=ATModel)
    at: AT = field(default_factory=AT)
    init: Init = field(default_factory=Init)
    train: ATTrain = field(default_factory=ATTrain)


@dataclass
class PretrainATSpec:
    data: Data = field(default_factory=lambda: Data(dataset="synth/speaker"))
    model: ATModel = field(default_factory=ATModel)
    train: ATTrain = field(default_factory=ATTrain)


# kind -> (schema, paper, MLflow experiment)
KIND_SCHEMAS: dict[str, tuple[type, str, str]] = {
    "v2s": (V2SSpec, "v2s", "v2s"),
    "pretrain_v2s": (PretrainV2SSpec, "v2s", "sources"),
    "at": (ATSpec, "antitransfer", "antitransfer"),
    "pretrain_at": (PretrainATSpec, "antitransfer", "sources"),
}

# Top-level keys every spec may carry besides the kind's sections.
TOP_KEYS = ("base", "kind", "paper", "table", "experiment", "description", "seed", "seeds", "grid", "select")


# ---------------------------------------------------------------------------------------
# Checking values against the schema
# ---------------------------------------------------------------------------------------
import dataclasses  # noqa: E402
import difflib  # noqa: E402
import typing  # noqa: E402
from typing import Any  # noqa: E402

from xferlab.errors import UserError  # noqa: E402


def _key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """YAML key -> (field, resolved type hint) of a schema dataclass."""
    hints = typing.get_type_hints(cls)
    return {_key(f): (f, hints[f.name]) for f in dataclasses.fields(cls)}


def schema_for(kind: str) -> type:
    if kind not in KIND_SCHEMAS:
        close = difflib.get_close_matches(str(kind), KIND_SCHEMAS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(KIND_SCHEMAS)}"
        raise UserError(f"unknown kind {kind!r}: {hint}")
    return KIND_SCHEMAS[kind][0]


def leaf_keys(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every dotted key of a schema with its type: the names a spec may use."""
    out: dict[str, Any] = {}
    for key, (_, hint) in _fields(cls).items():
        if dataclasses.is_dataclass(hint):
            out.update(leaf_keys(hint, f"{prefix}{key}."))
        else:
            out[prefix + key] = hint
    return out


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
        if dataclasses.is_dataclass(hint):
            sub = tree.get(key) or {}
            if not isinstance(sub, dict):
                raise UserError(f"{prefix}{key} must be a mapping of keys, got {sub!r}")
            base = _rekey(hint, dataclasses.asdict(getattr(default, f.name)))
            out[key] = validate(hint, {**base, **sub}, f"{prefix}{key}.")
        else:
            value = tree.get(key, getattr(default, f.name))
            out[key] = coerce(value, hint, prefix + key)
    return out


def _rekey(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """asdict() uses attribute names (from_); specs use YAML keys (from)."""
    names = {f.name: _key(f) for f in dataclasses.fields(cls)}
    return {names[k]: v for k, v in values.items()}
