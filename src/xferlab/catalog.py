"""What is registered: datasets, models, tables and experiment kinds.

Every entry is a lazy ``"module:attr"`` string, so importing this module (for
``xferlab list`` or spec validation) imports no framework. Dataset factories take
``(data: dict)`` -- the instance's resolved ``data`` section -- and prefix families get
the full name first.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from xferlab.errors import UserError
from xferlab.registry import DATASETS, KINDS, MODELS, TABLES  # noqa: F401  (re-exported)
from xferlab.spec import Instance

# --- datasets ---------------------------------------------------------------------------
DATASETS.register("ucr/", "xferlab.catalog:_load_ucr",
                  help="UCR archive: bundled sets, or any set under $XFERLAB_UCR_DIR / data.ucr_dir")


def _load_ucr(name: str, data: Mapping[str, Any]) -> Any:
    from xferlab.data.ucr import load_ucr

    return load_ucr(name, data.get("ucr_dir"))


def load() -> None:
    """Registration happens at import; kept as an explicit call site for readers."""


def check_dataset(name: str, data: Mapping[str, Any]) -> None:
    """Fail early (before any run starts) on a dataset name that cannot be served."""
    if name not in DATASETS:
        raise UserError(DATASETS.unknown_message(name))
    if name.startswith("ucr/"):
        from xferlab.data.ucr import check_ucr

        check_ucr(name, data.get("ucr_dir"))


def check_instances(instances: Iterable[Instance]) -> None:
    """Validate what a dry run can check without frameworks: dataset names, kinds."""
    seen: set[str] = set()
    for inst in instances:
        if inst.kind not in KINDS:
            raise UserError(f"kind {inst.kind!r} cannot run yet in this version of xferlab")
        key = f"{inst.dataset}|{inst.get('data.ucr_dir')}"
        if key not in seen:
            seen.add(key)
            check_dataset(inst.dataset, inst.config["data"])


def describe_dataset(name: str, ucr_dir: str | None = None) -> str:
    """Human summary of a dataset (sizes, length, classes) for `xferlab data show`."""
    data = {"ucr_dir": ucr_dir}
    check_dataset(name, data)
    return DATASETS.create(name, data).describe()
