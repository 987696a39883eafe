"""What an item hands back: a section of the page with its tables, figures and files.

Plain data with no imports from the rest of the report, so that the builder
(:mod:`build`), the page (:mod:`html`) and the items all depend on this module and never
on each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class TableOut:
    """A written table: its frame, the MLflow query behind it and the files it went to."""

    name: str
    title: str
    frame: pd.DataFrame
    query: str
    notes: list[str] = field(default_factory=list)
    runs: int = 0
    files: list[Path] = field(default_factory=list)


@dataclass
class FigureOut:
    """A written figure; ``query`` is empty for the paper's own figures (no runs behind)."""

    name: str
    title: str
    path: Path
    notes: list[str] = field(default_factory=list)
    query: str = ""
    runs: int = 0


@dataclass
class Section:
    """One item's part of the page; ``missing`` holds its "no runs for ..." lines and
    ``summary`` the lines the console shows besides them (e.g. the claims' verdicts)."""

    name: str
    title: str
    tables: list[TableOut] = field(default_factory=list)
    figures: list[FigureOut] = field(default_factory=list)
    files: list[tuple[Path, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
