"""The ``v2s`` kind: reprogram a registered source AM (or fine-tune it: TF_a) on a UCR set."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, Optional

from xferlab.errors import UserError
from xferlab.kinds import Kind, Load, Prerequisite, prerequisites
from xferlab.schema import Data, Mapping_, Train

if TYPE_CHECKING:
    from xferlab.spec import Instance


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


def loads(cfg: V2SSpec) -> list[Load]:
    """The frozen source AM."""
    return [Load("source", cfg.model.source, "model.source")]


def needs(cfg: V2SSpec) -> list[Prerequisite]:
    """The source AM, when the spec says how to pretrain it."""
    return prerequisites(loads(cfg), cfg.model.pretrain)


@lru_cache(maxsize=64)
def series_length(dataset: str, data_items: tuple) -> int:
    """Length of a dataset's series (read once per process: a grid asks per cell)."""
    from xferlab.catalog import DATASETS

    return int(DATASETS.create(dataset, dict(data_items)).length)


def unfit(instance: "Instance") -> str | None:
    """Why ``model.seg`` copies of this dataset's series cannot fit the AM's input, or None.

    The paper's seg grid (1..10) assumes short series: a 2000-sample series has room for 8
    copies in 16000 samples. A grid over datasets of different lengths then holds cells that
    cannot exist; the runner skips them (and says so) rather than recording failed runs,
    so a selection over seg chooses among the settings each dataset can take.
    """
    from xferlab.v2s.segments import N_SAMPLES, segment_starts

    cfg = instance.cfg
    if cfg.model.method != "v2s" or cfg.model.seg <= 1:
        return None
    data = instance.config["data"]
    length = series_length(instance.dataset, tuple(sorted(data.items(), key=str)))  # a load error is raised, never a skip
    if length > N_SAMPLES:
        return None  # too long at any seg: the run fails with that message, as at seg 1
    try:
        segment_starts(length, cfg.model.seg)
    except UserError as err:
        return str(err)
    return None


KIND = Kind(name="v2s", help="Voice2Series reprogramming (or TF_a) on a UCR set", schema=V2SSpec,
            paper="v2s", experiment="v2s", job="xferlab.jobs.v2s:run", needs=needs, loads=loads,
            unfit=unfit)
