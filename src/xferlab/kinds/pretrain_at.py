"""The ``pretrain_at`` kind: train an orthogonal VGG16 and register it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xferlab.kinds import Kind
from xferlab.kinds.at import ATModel, ATTrain, check_dropout, check_masks, check_warmup
from xferlab.schema import Data

if TYPE_CHECKING:
    from xferlab.spec import Instance


@dataclass(frozen=True)
class PretrainATSpec:
    data: Data = field(default_factory=lambda: Data(dataset="synth/speaker"))
    model: ATModel = field(default_factory=ATModel)
    train: ATTrain = field(default_factory=ATTrain)


def registers(instance: "Instance") -> str:
    """``model.register_as``, else ``ortho-<dataset tail>`` (``synth/speaker`` -> ``ortho-speaker``)."""
    cfg: PretrainATSpec = instance.cfg
    return cfg.model.register_as or "ortho-" + cfg.data.dataset.split("/")[-1]


KIND = Kind(name="pretrain_at", help="train and register an orthogonal VGG16", schema=PretrainATSpec,
            paper="antitransfer", experiment="sources", job="xferlab.jobs.at:run", registers=registers,
            checks=(check_dropout, check_masks, check_warmup))
