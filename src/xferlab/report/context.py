"""What items share while the report is built: options, the fetched runs, a memo.

Items import this module (and :mod:`sections`), never :mod:`build`: the builder looks
the items up in the tables registry, so the dependency runs one way only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from xferlab.report.frames import consistency, drop_flagged, superseded
from xferlab.report.items import title
from xferlab.report.query import Fetched, Query
from xferlab.report.sections import Section, TableOut
from xferlab.report.writers import write_table


@dataclass
class Options:
    roles: tuple[str, ...] = ("final",)
    strict: bool = False
    v2s_dataset: str | None = None
    at_dataset: str | None = None
    spec: str | None = None  # glob: only these specs' runs count for the V2S and AT tables


class Context:
    """What items share: the fetched runs, options, output folder, memo and flags."""

    def __init__(self, fetched: Fetched, out: Path, options: Options) -> None:
        self.fetched, self.out, self.options = fetched, out, options
        older = superseded(fetched.frame)
        self.runs = fetched.frame[~older]  # one run per instance: its newest
        self.superseded = fetched.frame[older]  # listed among the flags, scoped like the tables
        self._memo: dict[str, Any] = {}
        self.flags: dict[str, pd.DataFrame] = {}  # table -> flagged runs (with the cell's key columns)
        self.selections: dict[str, pd.DataFrame] = {}  # table -> settings chosen on validation per cell

    def query(self, tags: dict[str, str], experiment: str | None = None, any_role: bool = False) -> Query:
        """Tag equalities + roles + FINISHED; ``any_role`` (models the tables link to, such as
        source models) also ignores ``--spec``, which scopes the experiments' own runs."""
        if any_role:
            return Query(tuple(tags.items()), (), "FINISHED", experiment)
        return Query(tuple(tags.items()), self.options.roles, "FINISHED", experiment, self.options.spec)

    def select(self, query: Query) -> pd.DataFrame:
        return query.apply(self.runs) if len(self.runs) else self.runs

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def check(self, table: str, frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
        """Record runs that differ from their cell's majority; drop them under --strict."""
        flags = consistency(frame, by)
        if len(flags):
            policy = "excluded (--strict)" if self.options.strict else "included, flagged"
            self.flags[table] = flags.assign(table=table, policy=policy)
        return drop_flagged(frame, flags) if self.options.strict else frame

    def path(self, *parts: str) -> Path:
        path = self.out.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def no_runs(what: str, query: Query | str) -> str:
    """The one wording of missing data, on the console and the page ("no runs for X (query)")."""
    text = query.describe() if isinstance(query, Query) else query
    return f"no runs for {what} ({text})"


def titled(name: str) -> Section:
    """An empty section for item ``name``, titled from the tables registry (the title is
    written down once, where the item is registered)."""
    return Section(name, title(name))


def emit(ctx: Context, sec: Section, name: str, title: str, frame: pd.DataFrame, query: Query | str,
         notes: list[str], runs: int) -> None:
    """Write ``frame`` as table ``name`` (CSV, Markdown) and add it to ``sec``."""
    text = query.describe() if isinstance(query, Query) else query
    files = write_table(frame, ctx.out / "tables", name, title, text, notes)
    sec.tables.append(TableOut(name, title, frame, text, notes, runs, files))
