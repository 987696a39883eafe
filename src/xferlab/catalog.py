"""The model catalogue, and the pre-run checks of datasets and instances.

Datasets are declared by their data modules (``TASKS``) and kinds by theirs
(:mod:`xferlab.kinds`); both are found by :mod:`xferlab.registry`. Models are registered
here with lazy ``"module:attr"`` targets, so importing this module (for ``xferlab list``
or a dry run) imports no framework.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from xferlab.errors import UserError
from xferlab.kinds import get_kind
from xferlab.registry import DATASETS, KINDS, MODELS, TABLES  # noqa: F401  (re-exported)
from xferlab.spec import Instance

def check_dataset(name: str, data: Mapping[str, Any]) -> None:
    """Fail early (before any run starts) on a dataset name that cannot be served.

    What to check is the dataset's own business (its module's ``LOCAL`` and ``check``,
    kept as registry meta), so a new dataset brings its checks with it.
    """
    if name not in DATASETS:
        raise UserError(DATASETS.unknown_message(name))
    meta = DATASETS.meta(name)
    if meta.get("local"):
        root = data.get("root")
        if not root or not Path(root).is_dir():
            raise UserError(f"{name} reads your local copy of the dataset, but data.root "
                            f"{'is not set' if not root else repr(root) + ' is not a folder'}: "
                            f"add --set data.root=/path/to/the/dataset (see the README's data section)")
    if meta.get("check"):
        meta["check"](name, data)


def check_instances(instances: Iterable[Instance]) -> None:
    """Validate what a dry run can check without frameworks or the store: datasets, each
    kind's checks, and that each named pretraining spec registers the model it is for."""
    from xferlab.runner import makers_of

    seen: set[str] = set()
    checked: set[tuple[str, str]] = set()
    for inst in instances:
        kind = get_kind(inst.kind)
        kind.check(inst.cfg)
        for need in kind.needs(inst.cfg):  # the pretraining spec exists and registers the model
            if (need.model, need.spec) not in checked:
                checked.add((need.model, need.spec))
                makers_of(need, inst)
        data = inst.config["data"]
        key = repr(sorted(data.items()))
        if key not in seen:
            seen.add(key)
            check_dataset(inst.dataset, data)


def describe_dataset(name: str, ucr_dir: str | None = None) -> str:
    """Human summary of a dataset (sizes, length, classes) for `xferlab data show`."""
    data = {"ucr_dir": ucr_dir}
    check_dataset(name, data)
    return DATASETS.create(name, data).describe()


# --- models (architectures; trained models live in the MLflow Model Registry) ----------
# The only table of architecture names. Build with MODELS.create(name, n_classes, ...):
# V2S source AMs take (n_classes); VGG16 factories take (n_classes, seed=, device=) and
# "vgg16" also width= (the spec's float model.width). Each entry's meta says its
# framework and names its family's tiny variant, which is what the registry-wide tests
# build, so a newly registered model is tested without editing a test.
for _arch, _help in {"attrnn": "V2S_a attention RNN (~0.2M)", "attrnn_unet": "V2S_u U-Net front (~0.3M)",
                     "tcn": "temporal convolutional network (Table 4 ablation)"}.items():
    MODELS.register(_arch, f"xferlab.v2s.models:{_arch}", help=f"V2S source AM: {_help}",
                    framework="keras", tiny=f"{_arch}_tiny")
    MODELS.register(f"{_arch}_tiny", f"xferlab.v2s.models:{_arch}_tiny", help=f"tiny {_arch} for tests",
                    framework="keras", tiny=f"{_arch}_tiny")
for _arch, _help in {"vgg16": "width 1 (the paper) or any width=<model.width>", "vgg16_w8": "width 1/8 (CPU)",
                     "vgg16_w16": "width 1/16 (CPU)", "vgg16_tiny": "width 1/32, for tests"}.items():
    MODELS.register(_arch, f"xferlab.at.vgg:{_arch}", help=f"anti-transfer VGG16 without BN, {_help}",
                    framework="torch", tiny="vgg16_tiny")

# --- report tables (built by xferlab.report from MLflow runs) ----------------------------
# Registered into TABLES by xferlab.report.items, not here: the report is a higher layer
# than this catalogue. `xferlab list tables` and `xferlab report` import that module.
