"""The ``at.*`` section of a spec as a validated value object.

Why a separate object: the loop, the tuner's search space and the report all name the same
keys; validating them once up front turns a typo into a one-line UserError before any
training starts, instead of a crash after the first epoch.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from xferlab.at.loss import AGGREGATIONS, DISTANCES, GRAM_MODES
from xferlab.at.taps import tap_end
from xferlab.errors import UserError

# Spec keys of the at section that are resolved elsewhere (the lead builds the model).
_IGNORED = ("orthogonal",)


@dataclass(frozen=True)
class ATConfig:
    """AT settings; the defaults are the paper's (Gram over the batch, squared cosine,
    beta 1). ``layer`` counts convs 1..13 in ``conv`` mode, 0..12 in ``paper`` mode."""

    enabled: bool = True
    layer: int = 4
    tap: str = "conv"
    beta: float = 1.0
    aggregation: str = "gram"
    distance: str = "cos_squared"
    gram: str = "batch"
    window: int = 16  # channels of the stochastic_pairwise window

    def __post_init__(self) -> None:
        tap_end(self.tap, self.layer)  # raises UserError when out of range
        for key, value, allowed in (("aggregation", self.aggregation, AGGREGATIONS),
                                    ("distance", self.distance, DISTANCES),
                                    ("gram", self.gram, GRAM_MODES)):
            if value not in allowed:
                raise UserError(f"unknown at.{key} {value!r}: use one of {', '.join(allowed)}")
        if self.window < 1:
            raise UserError(f"at.window={self.window} must be >= 1")

    @property
    def end(self) -> int:
        """Number of ``features`` modules up to the tap (see ``taps.tap_end``)."""
        return tap_end(self.tap, self.layer)

    @classmethod
    def from_mapping(cls, cfg: "ATConfig | Mapping[str, Any] | None") -> "ATConfig | None":
        """Build from a spec's ``at`` mapping; None or ``enabled: false`` -> None (baseline)."""
        if cfg is None or isinstance(cfg, ATConfig):
            return cfg if cfg is None or cfg.enabled else None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known - set(_IGNORED))
        if unknown:
            raise UserError(f"unknown at.* key(s) {', '.join(unknown)}: known {', '.join(sorted(known))}")
        made = cls(**{k: v for k, v in cfg.items() if k in known})
        return made if made.enabled else None
