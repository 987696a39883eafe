"""The anti-transfer study's per-experiment spreadsheet, in the original code's layout.

One row per instance (a configuration of the experiment: one grid cell of the spec),
then: ID, a link to its parameters (the run's ``spec.yaml``) with a summary, two empty
comment columns for the reader, the number of runs, and the mean and std over the
instance's repetitions (seeds) of loss, accuracy, F1, precision and recall on train,
validation and test. In every numeric column the best value is highlighted: lowest for
losses and stds, highest for the others. Unlike the original, the metrics of each run
are whole-split values of the restored best checkpoint (not per-batch averages).

:func:`write_experiment_xlsx` takes a plain runs frame (``mlflow.search_runs`` columns),
so the AT side can call it without the rest of the report.
"""
from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from xferlab.report.frames import SEED_PARAMS, config_key
from xferlab.report.query import column

MEASURES = (("loss", "loss"), ("accuracy", "acc"), ("f1_macro", "F1"), ("precision_macro", "precision"),
            ("recall_macro", "recall"))
SPLITS = ("train", "val", "test")


def metric_name(split: str, measure: str, frame: pd.DataFrame) -> str | None:
    """The metric holding a split's final value: ``test_x``; ``best_train_x`` (the best
    checkpoint's, since plain ``train_x`` is the per-epoch curve); None if not logged."""
    names = [f"test_{measure}"] if split == "test" else [f"best_{split}_{measure}", f"{split}_{measure}"]
    return next((n for n in names if f"metrics.{n}" in frame.columns), None)


def _artifact_link(artifact_uri: object, name: str = "spec.yaml") -> str | None:
    """A file:// link to a run artifact when the artifact store is a local folder."""
    if not isinstance(artifact_uri, str) or not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path).joinpath(name).as_uri()
    return None


def _configurations(runs: pd.DataFrame) -> pd.Series:
    """The row label of each run: its cell (``tags.xferlab.cell``), and where one cell holds
    runs of several configurations (a spec edited after it ran, e.g. another magnitude), the
    params that tell them apart, so two configurations are never averaged into one row."""
    cells = column(runs, "tags.xferlab.cell").fillna(column(runs, "run_name")).fillna("default").astype(str)
    keys = config_key(runs)
    labels = cells.copy()
    for cell in cells[keys.groupby(cells).transform("nunique") > 1].unique():
        mine = runs.loc[cells == cell, [c for c in runs.columns if c.startswith("params.") and c not in SEED_PARAMS]]
        shown = mine.astype(object).where(mine.notna(), "—").astype(str)  # absent: a dash (pandas 3 keeps NaN)
        params = [c for c in shown.columns if shown[c].nunique() > 1]
        for i in mine.index:
            labels[i] = cell + " [" + ", ".join(f"{c[len('params.'):]}={shown.at[i, c]}" for c in params) + "]"
    return labels


def instance_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (``tags.xferlab.cell``, split by params where a cell holds
    several), mean/std over its runs (one vectorised groupby for all 15 metrics)."""
    cells = _configurations(runs)
    values = pd.DataFrame(index=runs.index)
    for split in SPLITS:
        for measure, short in MEASURES:
            name = metric_name(split, measure, runs)
            values[f"{split} {short}"] = (pd.to_numeric(runs[f"metrics.{name}"], errors="coerce").astype(float)
                                          if name else np.nan)
    grouped = values.groupby(cells.values, sort=True)
    mean, std = grouped.mean(), grouped.std(ddof=1)
    first_uri = column(runs, "artifact_uri").groupby(cells.values, sort=True).first()
    table = pd.DataFrame({"ID": range(1, len(mean) + 1), "parameters": mean.index,
                          "link": [_artifact_link(u) for u in first_uri.reindex(mean.index)],
                          "comment 1": "", "comment 2": "", "runs": grouped.size().values})
    for col in values.columns:
        table[f"{col} mean"], table[f"{col} std"] = mean[col].values, std[col].values
    return table


def best_mask(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Per numeric column, which rows hold the best value (ties all count)."""
    out = {}
    for col in frame.columns:
        if not (col.endswith(" mean") or col.endswith(" std")):
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.notna().sum() == 0:
            continue
        lower = col.endswith(" std") or " loss " in f" {col} "
        best = values.min() if lower else values.max()
        out[col] = values == best
    return out


def write_link(sheet: object, row: int, col: int, url: str, text: str, fmt: object) -> None:
    """A HYPERLINK formula: xlsxwriter's ``write_url`` rewrites ``file:///`` paths Windows
    style (``tmp\\x``, relative), which breaks links to a Linux artifact store."""
    quoted = lambda v: v.replace('"', '""')  # noqa: E731
    if len(url) <= 255 and len(text) <= 255:
        sheet.write_formula(row, col, f'=HYPERLINK("{quoted(url)}","{quoted(text)}")', fmt, text)
    else:
        sheet.write(row, col, text)


def write_experiment_xlsx(runs_df: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Write one experiment's spreadsheet (the original layout, best values highlighted)."""
    import xlsxwriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = instance_rows(runs_df)
    book = xlsxwriter.Workbook(str(path), {"nan_inf_to_errors": True})
    sheet = book.add_worksheet("results")
    head = book.add_format({"bold": True, "bg_color": "#dde5f0", "border": 1, "text_wrap": True, "valign": "top"})
    num = book.add_format({"num_format": "0.0000"})
    best = book.add_format({"num_format": "0.0000", "bold": True, "bg_color": "#c6efce", "font_color": "#006100"})
    link_fmt = book.add_format({"font_color": "blue", "underline": 1})
    sheet.write(0, 0, title or "experiment", book.add_format({"bold": True, "font_size": 13}))
    columns = [c for c in table.columns if c != "link"]
    for j, col in enumerate(columns):
        sheet.write(2, j, col, head)
        sheet.set_column(j, j, 30 if col == "parameters" else (14 if "comment" in col else 11))
    marks = best_mask(table)
    for i, row in table.iterrows():
        r = 3 + int(i)
        for j, col in enumerate(columns):
            value = row[col]
            if col == "parameters" and row.get("link"):
                write_link(sheet, r, j, row["link"], str(value), link_fmt)
            elif isinstance(value, float):
                if not math.isnan(value):
                    sheet.write_number(r, j, value, best if marks.get(col, pd.Series(False, index=table.index))[i] else num)
            else:
                sheet.write(r, j, value)
    sheet.freeze_panes(3, 2)
    book.close()
    return path
