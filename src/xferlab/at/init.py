"""Weight initialisation from another model's state dict that REALLY loads the weights.

Why: the original loaded full-model checkpoints into the feature extractor with
non-strict matching; no key matched, nothing was loaded, and its "weight-init" and
"dual AT" runs silently trained from random weights. Here every feature tensor must
match by name and shape (else a UserError), classifier tensors are loaded when their
shapes match (the last linear usually differs in ``n_classes``), and the count of loaded
tensors is reported so that the run can log it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from xferlab.errors import UserError

_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / torch.compile wrappers


@dataclass
class InitReport:
    """What ``init_from_state`` did: tensors loaded, and own keys left untouched."""

    loaded: int
    loaded_features: int
    skipped: list[str] = field(default_factory=list)


def _clean(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def init_from_state(model: nn.Module, state: Mapping[str, torch.Tensor] | nn.Module,
                    strict_features: bool = True) -> InitReport:
    """Copy matching tensors of ``state`` into ``model`` in place and report the count.

    ``features.*``: all must be present with equal shapes when ``strict_features``
    (a mismatch names the first offending keys); classifier and other tensors: loaded
    when present with an equal shape, else skipped. Loading nothing is always an error.
    """
    src = _clean(state.state_dict() if isinstance(state, nn.Module) else state)
    own = model.state_dict()
    matched: dict[str, torch.Tensor] = {}
    bad_features: list[str] = []
    skipped: list[str] = []
    for key, tensor in own.items():
        other = src.get(key)
        if other is not None and tuple(other.shape) == tuple(tensor.shape):
            matched[key] = other.detach().to(device=tensor.device, dtype=tensor.dtype)
        elif key.startswith("features."):
            bad_features.append(key)
        else:
            skipped.append(key)
    if bad_features and strict_features:
        raise UserError(f"init state does not match the feature extractor ({len(bad_features)} "
                        f"tensors missing or of another shape, e.g. {', '.join(bad_features[:3])}): "
                        "initialise from a model of the same architecture and width")
    if not matched:
        raise UserError("init state matches no tensor of the model: check init.from names a model "
                        "of the same architecture and width")
    own.update(matched)
    model.load_state_dict(own)
    n_feat = sum(k.startswith("features.") for k in matched)
    return InitReport(loaded=len(matched), loaded_features=n_feat, skipped=skipped + bad_features)
