"""The ``at`` kind: VGG16 on spectrograms: baseline, weight-init or anti-transfer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Optional

from xferlab.errors import UserError
from xferlab.kinds import Kind, Load, Prerequisite, prerequisites
from xferlab.schema import OMIT_DEFAULT, Data, Train

if TYPE_CHECKING:
    from xferlab.spec import Instance


@dataclass(frozen=True)
class ATModel:
    width: float = 0.125  # VGG16 channel multiplier; 1.0 = the paper
    register_as: Optional[str] = None  # register the trained model (orthogonal / dual AT)
    # The head's two dropouts (0.5 = the paper). At width 1/16 the head has 256 units and
    # 0.5 slowed the speaker model about threefold (docs in xferlab.at.vgg).
    dropout: float = field(default=0.5, metadata={OMIT_DEFAULT: True})
    # How the head's linears start: "torchvision" N(0, 0.01) (the paper's VGG16), or
    # "kaiming" (He normal, fan-in), which keeps the narrow head's signal at unit scale.
    head_init: Literal["torchvision", "kaiming"] = field(default="torchvision", metadata={OMIT_DEFAULT: True})
    # "batch": BatchNorm2d after every conv (an offline-analogue variant, named as such in
    # the report; the paper's VGG16 has none). "none" keeps the paper's network.
    norm: Literal["none", "batch"] = field(default="none", metadata={OMIT_DEFAULT: True})
    # What the network sees of the spectrogram's magnitude (xferlab.data.features.compress):
    # "linear" is the paper's; "log" is an offline-analogue variant, named in the report, on
    # which the narrow VGG16s learn faster (README, "What the synthetic data shows"). An
    # orthogonal or initialising model must have been trained on the same magnitude.
    magnitude: Literal["linear", "log"] = field(default="linear", metadata={OMIT_DEFAULT: True})


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Init:
    from_: Optional[str] = field(default=None, metadata={"key": "from"})


@dataclass(frozen=True)
class ATTrain(Train):
    epochs: int = 20
    batch_size: int = 8
    lr: float = 5e-5
    patience: Optional[int] = 5
    # SpecAugment-style masking of the training batches (xferlab.at.augment): per example,
    # mask_freq bands of up to mask_freq_width of the bins and mask_time spans of up to
    # mask_time_width of the frames are zeroed. Off (0) in the paper.
    mask_freq: int = field(default=0, metadata={OMIT_DEFAULT: True})
    mask_freq_width: float = field(default=0.15, metadata={OMIT_DEFAULT: True})
    mask_time: int = field(default=0, metadata={OMIT_DEFAULT: True})
    mask_time_width: float = field(default=0.1, metadata={OMIT_DEFAULT: True})
    # "cosine": the rate anneals per step to lr/20, planned over train.epochs (as the V2S source's);
    # "constant" is the paper's Adam.
    lr_schedule: Literal["constant", "cosine"] = field(default="constant", metadata={OMIT_DEFAULT: True})
    # epochs (a fraction allowed) of linear warm-up to lr before the schedule; 0: none, as the
    # paper. Measured on the quickstart's style baseline (README): it did not move the first
    # epoch off the chance loss, at lr 1e-3 or 2e-3.
    lr_warmup: float = field(default=0.0, metadata={OMIT_DEFAULT: True})


@dataclass(frozen=True)
class ATSpec:
    data: Data = field(default_factory=lambda: Data(dataset="synth/style_speakersplit"))
    model: ATModel = field(default_factory=ATModel)
    at: AT = field(default_factory=AT)
    init: Init = field(default_factory=Init)
    train: ATTrain = field(default_factory=ATTrain)


def check_layer(cfg: ATSpec) -> None:
    """at.layer must name a tap of its mode: conv 1..13 (after the ReLU), paper 0..12."""
    low, high = (1, 13) if cfg.at.tap == "conv" else (0, 12)
    if not low <= cfg.at.layer <= high:
        raise UserError(f"at.layer={cfg.at.layer} is out of range for tap mode {cfg.at.tap!r}: use {low}..{high}")


def check_dropout(cfg: ATSpec) -> None:
    if not 0.0 <= cfg.model.dropout < 1.0:
        raise UserError(f"model.dropout={cfg.model.dropout} is out of range: use a value in [0, 1)")


def check_warmup(cfg: ATSpec) -> None:
    if cfg.train.lr_warmup < 0:
        raise UserError(f"train.lr_warmup={cfg.train.lr_warmup} is negative: use 0 (none) or the epochs of warm-up")


def check_masks(cfg: ATSpec) -> None:
    """SpecAugment-style masks: counts >= 0, widths fractions of the axis in [0, 1]."""
    t = cfg.train
    for key, count, width in (("freq", t.mask_freq, t.mask_freq_width), ("time", t.mask_time, t.mask_time_width)):
        if count < 0:
            raise UserError(f"train.mask_{key}={count} is negative: use 0 (off) or the number of masks per example")
        if not 0.0 <= width <= 1.0:
            raise UserError(f"train.mask_{key}_width={width} is out of range: use a fraction of the axis in [0, 1]")


def check_orthogonal(cfg: ATSpec) -> None:
    if cfg.at.enabled and not cfg.at.orthogonal:
        raise UserError("at.enabled is true but at.orthogonal names no model: set at.orthogonal=<registered name>")


def loads(cfg: ATSpec) -> list[Load]:
    """The weight-init model (``init.from``) and, under AT, the orthogonal model."""
    out = [Load("init", cfg.init.from_, "init.from")] if cfg.init.from_ else []
    if cfg.at.enabled and cfg.at.orthogonal:
        out.append(Load("orthogonal", cfg.at.orthogonal, "at.orthogonal"))
    return out


def needs(cfg: ATSpec) -> list[Prerequisite]:
    """The models it loads, when ``at.pretrain`` says how to train them."""
    return prerequisites(loads(cfg), cfg.at.pretrain)


def registers(instance: "Instance") -> Optional[str]:
    """``model.register_as`` (dual AT: the first model of the pair)."""
    cfg: ATSpec = instance.cfg
    return cfg.model.register_as


KIND = Kind(name="at", help="VGG16 on spectrograms: baseline, weight-init or anti-transfer", schema=ATSpec,
            paper="antitransfer", experiment="antitransfer", job="xferlab.jobs.at:run",
            checks=(check_layer, check_dropout, check_masks, check_warmup, check_orthogonal), needs=needs, loads=loads,
            registers=registers, after_grid="xferlab.jobs.summary:after_grid")
