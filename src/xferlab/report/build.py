"""Build the report: fetch runs once, run the requested items, write every output.

An item (a table, a figure or a set of files) is a function ``ctx -> Section``; items
never query MLflow for runs themselves: they select from the frame fetched once
(:meth:`Context.select`) and ask only for the metric histories or artifacts of the few
runs a figure needs. Missing data never raises: a section carries "no runs for ..."
lines instead, printed on the console and shown on the page.
"""
from __future__ import annotations

import fnmatch
import importlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from xferlab.errors import UserError
from xferlab.report.catalog import ALWAYS, ITEMS
from xferlab.report.frames import consistency, drop_flagged
from xferlab.report.query import Fetched, Query, column



@dataclass
class TableOut:
    name: str
    title: str
    frame: pd.DataFrame
    query: str
    notes: list[str] = field(default_factory=list)
    runs: int = 0
    files: list[Path] = field(default_factory=list)


@dataclass
class FigureOut:
    name: str
    title: str
    path: Path
    notes: list[str] = field(default_factory=list)
    query: str = ""
    runs: int = 0


@dataclass
class Section:
    name: str
    title: str
    tables: list[TableOut] = field(default_factory=list)
    figures: list[FigureOut] = field(default_factory=list)
    files: list[tuple[Path, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


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
        self.fetched, self.runs, self.out, self.options = fetched, fetched.frame, out, options
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
    text = query.describe() if isinstance(query, Query) else query
    return f"no runs for {what} ({text})"


def select_items(names: Sequence[str]) -> list[str]:
    """Item names matching the given names or globs (all when none); unknown ones are errors."""
    if not names or set(names) <= set(ALWAYS):
        return list(ITEMS) if not names else []
    chosen: list[str] = []
    for pattern in names:
        hits = [n for n in ITEMS if fnmatch.fnmatch(n, pattern)]
        if not hits and pattern in ALWAYS:
            continue  # always written
        if not hits:
            raise UserError(f"unknown report item {pattern!r}: use one of {', '.join(ITEMS)} (globs allowed, "
                            "e.g. 'v2s_*'; `xferlab report --list` describes them)")
        chosen += [h for h in hits if h not in chosen]
    return [n for n in ITEMS if n in chosen]


def flags_section(ctx: Context) -> Section:
    from xferlab.report.writers import write_table

    sec = Section("flags", "Flagged runs: configuration or code differs from the cell's majority")
    cols = ["table", "cell", "run_id", "run_name", "kind", "detail", "policy"]
    frame = pd.concat([f[cols] for f in ctx.flags.values()], ignore_index=True) if ctx.flags else pd.DataFrame(
        columns=cols)
    notes = ["config: the run's params (all but the seed) differ from the majority of its table cell; "
             "code: its git commit differs. Numbers include flagged runs unless --strict."]
    if frame.empty:
        notes.append("no run differs from its cell's majority")
    files = write_table(frame, ctx.out / "tables", "flags", sec.title, "", notes)
    sec.tables.append(TableOut("flags", sec.title, frame, "consistency check of every table's cells",
                               notes, len(frame), files))
    return sec


def inventory_section(ctx: Context) -> Section:
    from xferlab.report.writers import write_table

    sec = Section("inventory", "What the store holds: runs per experiment, role and status")
    runs = ctx.runs
    if runs.empty:
        frame = pd.DataFrame(columns=["experiment", "role", "status", "runs"])
        sec.missing.append(no_runs("any item", f"experiments: {', '.join(ctx.fetched.experiments) or 'none'}"))
    else:
        keyed = runs.assign(role=column(runs, "tags.xferlab.role").fillna("(none)"))
        frame = keyed.groupby(["experiment", "role", "status"]).size().rename("runs").reset_index()
    query = f"all runs of experiments {', '.join(ctx.fetched.experiments) or '(none)'}"
    files = write_table(frame, ctx.out / "tables", "inventory", sec.title, query)
    sec.tables.append(TableOut("inventory", sec.title, frame, query, [], int(frame["runs"].sum()) if len(frame) else 0,
                               files))
    return sec


def _item(name: str) -> Callable[[Context], Section]:
    module, _, attr = ITEMS[name][1].partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass
class Report:
    sections: list[Section]
    index: Path
    workbook: Path
    fetched: Fetched
    seconds: float


def build_report(names: Sequence[str], experiments: Sequence[str] | None, out: Path,
                 options: Options | None = None, fetched: Fetched | None = None) -> Report:
    """Fetch (unless given), build the chosen items, write tables, report.xlsx, index.html."""
    from xferlab.report.html import write_index
    from xferlab.report.query import fetch_runs
    from xferlab.report.writers import write_workbook

    start = time.perf_counter()
    chosen = select_items(names)
    fetched = fetched if fetched is not None else fetch_runs(experiments)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(fetched, out, options or Options())
    sections = [_item(name)(ctx) for name in chosen]
    sections += [flags_section(ctx), inventory_section(ctx)]
    tables = [(t.name, t.title, t.query, t.frame) for s in sections for t in s.tables]
    workbook = write_workbook(out / "report.xlsx", tables)
    seconds = time.perf_counter() - start
    meta = {"generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "store": fetched.uri,
            "experiments": ", ".join(f"{k} ({v} runs)" for k, v in fetched.per_experiment.items()) or "none",
            "roles": ", ".join(ctx.options.roles), "mismatches": "excluded" if ctx.options.strict else "flagged",
            "built in": f"{seconds:.1f} s (runs fetched in {fetched.seconds:.1f} s)"}
    index = write_index(out, sections, meta)
    return Report(sections, index, workbook, fetched, time.perf_counter() - start)
