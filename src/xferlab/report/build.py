"""Build the report: fetch runs once, run the requested items, write every output.

An item (a table, a figure or a set of files) is a function ``ctx -> Section``, found
in the tables registry (:mod:`xferlab.report.items` registers them, in the page's order);
items never query MLflow for runs themselves: they select from the frame fetched once
(:meth:`Context.select`) and ask only for the metric histories or artifacts of the few
runs a figure needs. Missing data never raises: a section carries "no runs for ..."
lines instead, printed on the console and shown on the page.
"""
from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import pandas as pd

from xferlab.errors import UserError
from xferlab.registry import TABLES
from xferlab.report.context import Context, Options, no_runs
from xferlab.report.html import write_index
from xferlab.report.items import ALWAYS, item_names
from xferlab.report.query import Fetched, column, fetch_runs
from xferlab.report.sections import Section, TableOut
from xferlab.report.writers import write_table, write_workbook


def select_items(names: Sequence[str]) -> list[str]:
    """Item names matching the given names or globs (all when none), in the page's order;
    unknown ones are errors."""
    known = item_names()
    if not names or set(names) <= set(ALWAYS):
        return known if not names else []
    chosen: list[str] = []
    for pattern in names:
        hits = [n for n in known if fnmatch.fnmatch(n, pattern)]
        if not hits and pattern in ALWAYS:
            continue  # always written
        if not hits:
            raise UserError(f"unknown report item {pattern!r}: use one of {', '.join(known)} (globs allowed, "
                            "e.g. 'v2s_*'; `xferlab report --list` describes them)")
        chosen += [h for h in hits if h not in chosen]
    return [n for n in known if n in chosen]


def flags_section(ctx: Context) -> Section:
    sec = Section("flags", "Flagged runs: configuration, code or model version differs from the cell's majority, "
                           "or a rerun replaced the run")
    cols = ["table", "cell", "run_id", "run_name", "kind", "detail", "policy"]
    frames = [f[cols] for f in ctx.flags.values()]
    old = ctx.query({}).apply(ctx.superseded)  # the roles and specs the tables count
    if len(old):
        cell = column(old, "tags.xferlab.spec").astype(str) + " " + column(old, "tags.xferlab.cell").astype(str)
        frames.append(pd.DataFrame({"table": "(all)", "cell": cell + " seed=" + column(old, "tags.xferlab.seed").astype(str),
                                    "run_id": old["run_id"], "run_name": column(old, "run_name"), "kind": "superseded",
                                    "detail": "a newer FINISHED run of the same instance replaced it",
                                    "policy": "excluded"}))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    notes = ["config: the run's params (all but the seed) differ from the majority of its table cell; "
             "code: its git commit differs; model: it loaded another version of a registered model. "
             "Numbers include flagged runs unless --strict. superseded: a rerun of the same instance "
             "(--force, or a new champion of a model it loads) replaced it; never counted."]
    if frame.empty:
        notes.append("no run differs from its cell's majority")
    files = write_table(frame, ctx.out / "tables", "flags", sec.title, "", notes)
    sec.tables.append(TableOut("flags", sec.title, frame, "consistency check of every table's cells",
                               notes, len(frame), files))
    return sec


def inventory_section(ctx: Context) -> Section:
    sec = Section("inventory", "What the store holds: runs per experiment, role and status")
    runs = ctx.fetched.frame
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


@dataclass
class Report:
    sections: list[Section]
    index: Path
    workbook: Path
    fetched: Fetched
    seconds: float


def build_report(names: Sequence[str], experiments: Sequence[str] | None, out: Path,
                 options: Options | None = None, fetched: Fetched | None = None, cache: bool = True) -> Report:
    """Fetch (unless given), build the chosen items, write tables, report.xlsx, index.html.

    Each item's function comes from the tables registry (a lazy target, imported here on
    first use), so a newly registered item needs no change in this module."""
    start = time.perf_counter()
    chosen = select_items(names)
    fetched = fetched if fetched is not None else fetch_runs(experiments, cache)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(fetched, out, options or Options())
    sections = [TABLES.get(name)(ctx) for name in chosen]
    sections += [flags_section(ctx), inventory_section(ctx)]
    tables = [(t.name, t.title, t.query, t.frame) for s in sections for t in s.tables]
    workbook = write_workbook(out / "report.xlsx", tables)
    seconds = time.perf_counter() - start
    meta = {"generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "store": fetched.uri,
            "experiments": ", ".join(f"{k} ({v} runs)" for k, v in fetched.per_experiment.items()) or "none",
            "roles": ", ".join(ctx.options.roles), "mismatches": "excluded" if ctx.options.strict else "flagged",
            "built in": f"{seconds:.1f} s ({fetched.describe()})"}
    index = write_index(out, sections, meta)
    return Report(sections, index, workbook, fetched, time.perf_counter() - start)
