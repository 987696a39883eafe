"""The ``v2s`` kind: reprogram a registered source AM (or fine-tune it: TF_a) on a UCR set."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from xferlab.kinds import Kind, Prerequisite, model_ref
from xferlab.schema import Data, Mapping_, Train


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class V2STrain(Train):
    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.05
    lr_decay: float = 0.48  # inverse-time decay per iteration, as the authors' Keras 2 code
    val_mode: Literal["paper", "holdout"] = "holdout"
    val_fraction: float = 0.2


@dataclass(frozen=True)
class Analysis:
    swd: bool = False  # sliced Wasserstein distance per epoch
    swd_projections: int = 1000
    figures: bool = True  # curves, CAM panel, t-SNE


@dataclass(frozen=True)
class V2SSpec:
    data: Data = field(default_factory=lambda: Data(dataset="ucr/Coffee"))
    model: V2SModel = field(default_factory=V2SModel)
    train: V2STrain = field(default_factory=V2STrain)
    analysis: Analysis = field(default_factory=Analysis)


def needs(cfg: V2SSpec) -> list[Prerequisite]:
    """The source AM, when the spec says how to pretrain it."""
    if cfg.model.pretrain and model_ref(cfg.model.source):
        return [Prerequisite(cfg.model.source, cfg.model.pretrain, "model.source")]
    return []


KIND = Kind(name="v2s", help="Voice2Series reprogramming (or TF_a) on a UCR set", schema=V2SSpec,
            paper="v2s", experiment="v2s", job="xferlab.jobs.v2s:run", needs=needs)
