"""The ``pretrain_v2s`` kind: train a V2S source AM on speech commands and register it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from xferlab.errors import UserError
from xferlab.kinds import Kind
from xferlab.schema import OMIT_DEFAULT, Data, Train

if TYPE_CHECKING:
    from xferlab.spec import Instance


@dataclass(frozen=True)
class SourceModel:
    arch: str = "attrnn"  # registered architecture
    register_as: str = ""  # registry name; default: the architecture's name


@dataclass(frozen=True)
class PretrainTrain(Train):
    epochs: int = 8  # 0: register the seeded network untrained (the control for what pretraining adds)
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: to lr/20 at the last step
    augment: bool = True
    # Perturbations of what real recordings bring (xferlab.data.perturb: speed, reverb, noise,
    # telephone, listed in that order), each applied to a training example with probability perturb_p.
    perturb: list[str] = field(default_factory=list, metadata={OMIT_DEFAULT: True})
    perturb_p: float = field(default=0.5, metadata={OMIT_DEFAULT: True})


@dataclass(frozen=True)
class PretrainV2SSpec:
    data: Data = field(default_factory=lambda: Data(dataset="synth/words"))
    model: SourceModel = field(default_factory=SourceModel)
    train: PretrainTrain = field(default_factory=PretrainTrain)


def registers(instance: "Instance") -> str:
    """``model.register_as``, else the architecture's name (what ``model.source`` names)."""
    cfg: PretrainV2SSpec = instance.cfg
    return cfg.model.register_as or cfg.model.arch


def check_perturb(cfg: PretrainV2SSpec) -> None:
    """train.perturb names registered perturbations; train.perturb_p is a probability."""
    from xferlab.data.perturb import PERTURBATIONS

    unknown = [name for name in cfg.train.perturb if name not in PERTURBATIONS]
    if unknown:
        raise UserError(f"train.perturb names unknown perturbation(s) {', '.join(map(repr, unknown))}: "
                        f"choose from {', '.join(PERTURBATIONS)}")
    ordered = [name for name in PERTURBATIONS if name in cfg.train.perturb]
    if list(cfg.train.perturb) != ordered:  # one spelling per training, so one hash per training
        raise UserError(f"train.perturb={list(cfg.train.perturb)}: list each once, in the order they are "
                        f"applied: {ordered}")
    if not 0.0 <= cfg.train.perturb_p <= 1.0:
        raise UserError(f"train.perturb_p={cfg.train.perturb_p} is not a probability: use a value in [0, 1]")


def check_epochs(cfg: PretrainV2SSpec) -> None:
    """train.epochs >= 0; 0 registers the untrained network, a control that must carry a
    name of its own: under the architecture's name it could become the champion that every
    V2S spec naming that architecture then reprograms."""
    if cfg.train.epochs < 0:
        raise UserError(f"train.epochs={cfg.train.epochs} is negative: use 0 (register the untrained "
                        "network, a control) or the epochs to train")
    if cfg.train.epochs == 0 and (cfg.model.register_as or cfg.model.arch) == cfg.model.arch:
        raise UserError(f"train.epochs=0 registers an untrained {cfg.model.arch} as {cfg.model.arch!r}, the name V2S "
                        f"specs load: give the control its own name, e.g. --set "
                        f"model.register_as={cfg.model.arch}_untrained")


KIND = Kind(name="pretrain_v2s", help="train and register a V2S source AM", schema=PretrainV2SSpec,
            paper="v2s", experiment="sources", job="xferlab.jobs.pretrain_v2s:run", registers=registers,
            checks=(check_perturb, check_epochs))
