"""Table outputs: CSV (numbers as computed), Markdown and the display form, report.xlsx.

CSV and the xlsx sheets keep one column per number (``ours_v2s_a_mean``, ``_std``,
``_n``) so they can be reprocessed; Markdown and HTML show the display form, where each
mean/std/n triple becomes one ``mean ± std (n=k)`` cell, so that the number of runs
behind every number is on the page.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from xferlab.report.frames import fmt_stat

_TRIPLE = re.compile(r"^(?P<p>.+)_(mean|std|n)$")


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def display(frame: pd.DataFrame) -> pd.DataFrame:
    """Strings for people: mean/std/n triples merged, floats to four significant digits."""
    out: dict[str, list[str]] = {}
    done: set[str] = set()
    for col in frame.columns:
        if col in done:
            continue
        m = _TRIPLE.match(col)
        p = m.group("p") if m else None
        if p and f"{p}_mean" in frame.columns and f"{p}_n" in frame.columns:
            std = frame[f"{p}_std"] if f"{p}_std" in frame.columns else pd.Series(float("nan"), index=frame.index)
            out[p] = [fmt_stat(a, b, int(c) if pd.notna(c) else 0) for a, b, c in
                      zip(frame[f"{p}_mean"], std, frame[f"{p}_n"])]
            done |= {f"{p}_mean", f"{p}_std", f"{p}_n"}
        else:
            out[col] = [_fmt(v) for v in frame[col]]
            done.add(col)
    return pd.DataFrame(out, index=frame.index)


def markdown(frame: pd.DataFrame, title: str = "", query: str = "", notes: Iterable[str] = ()) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    shown = display(frame)
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [f"# {title}", ""] if title else []
    if query:
        lines += [f"Query: `{query}`", ""]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    lines.append("| " + " | ".join(esc(c) for c in shown.columns) + " |")
    lines.append("|" + "---|" * len(shown.columns))
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, out: Path, name: str, title: str, query: str,
                notes: Iterable[str] = ()) -> list[Path]:
    """``<name>.csv`` and ``<name>.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{name}.csv", out / f"{name}.md"
    frame.to_csv(csv, index=False)
    md.write_text(markdown(frame, title, query, list(notes)), encoding="utf-8")
    return [csv, md]


def sheet_name(name: str, used: set[str]) -> str:
    """Excel sheet names: at most 31 characters, no []:*?/\\, unique."""
    base = re.sub(r"[\[\]:*?/\\]", "_", name)[:31] or "sheet"
    candidate, i = base, 1
    while candidate.lower() in used:
        suffix = f"~{i}"
        candidate, i = base[:31 - len(suffix)] + suffix, i + 1
    used.add(candidate.lower())
    return candidate


def _cell(value: object) -> object:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def write_workbook(path: Path, tables: list[tuple[str, str, str, pd.DataFrame]]) -> Path:
    """``report.xlsx``: one sheet per (name, title, query, frame), title and query on top."""
    import xlsxwriter

    path.parent.mkdir(parents=True, exist_ok=True)
    book = xlsxwriter.Workbook(str(path), {"nan_inf_to_errors": True})
    bold = book.add_format({"bold": True, "bg_color": "#e8eef7", "border": 1, "text_wrap": True})
    title_fmt = book.add_format({"bold": True, "font_size": 13})
    num = book.add_format({"num_format": "0.0000"})
    used: set[str] = set()
    for name, title, query, frame in tables:
        sheet = book.add_worksheet(sheet_name(name, used))
        sheet.write(0, 0, title, title_fmt)
        sheet.write(1, 0, f"query: {query}" if query else "")
        for j, col in enumerate(frame.columns):
            sheet.write(3, j, str(col), bold)
            width = max([len(str(col))] + [len(_fmt(v)) for v in frame[col].head(200)])
            sheet.set_column(j, j, min(max(width + 2, 8), 60))
        for i, row in enumerate(frame.itertuples(index=False), start=4):
            for j, value in enumerate(row):
                v = _cell(value)
                if isinstance(v, float):
                    sheet.write_number(i, j, v, num)
                elif v is not None:
                    sheet.write(i, j, v)
        sheet.freeze_panes(4, 1)
    book.close()
    return path
