"""The ``pretrain_v2s`` kind: train a V2S source AM on speech commands and register it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from xferlab.kinds import Kind
from xferlab.schema import Data, Train

if TYPE_CHECKING:
    from xferlab.spec import Instance


@dataclass(frozen=True)
class SourceModel:
    arch: str = "attrnn"  # registered architecture
    register_as: str = ""  # registry name; default: the architecture's name


@dataclass(frozen=True)
class PretrainTrain(Train):
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: to lr/20 at the last step
    augment: bool = True


@dataclass(frozen=True)
class PretrainV2SSpec:
    data: Data = field(default_factory=lambda: Data(dataset="synth/words"))
    model: SourceModel = field(default_factory=SourceModel)
    train: PretrainTrain = field(default_factory=PretrainTrain)


def registers(instance: "Instance") -> str:
    """``model.register_as``, else the architecture's name (what ``model.source`` names)."""
    cfg: PretrainV2SSpec = instance.cfg
    return cfg.model.register_as or cfg.model.arch


KIND = Kind(name="pretrain_v2s", help="train and register a V2S source AM", schema=PretrainV2SSpec,
            paper="v2s", experiment="sources", job="xferlab.jobs.pretrain_v2s:run", registers=registers)
