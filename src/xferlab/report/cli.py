"""``xferlab report``: argument parsing for the report (wired into ``xferlab.cli``).

``add_report_parser(subparsers)`` adds the subcommand; its handler imports pandas, mlflow
and matplotlib only when it runs, so ``xferlab --help`` stays instant.
"""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = "reports"


def add_report_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``report`` to the CLI's subparsers."""
    p = sub.add_parser(
        "report", help="rebuild the papers' tables and figures from MLflow runs, beside the published numbers",
        description="Query MLflow once per experiment, build the requested tables (CSV, Markdown, a sheet of "
        "report.xlsx) and figures (PNG) and an offline index.html. Only FINISHED runs of role 'final' count "
        "unless --role says otherwise, the newest of each instance; runs that differ from their cell's majority "
        "(config, commit or loaded model version) are flagged.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="report items or globs, e.g. v2s_table2 'at_*' (default: all; see --list)")
    p.add_argument("--experiment", action="append", default=None, metavar="NAME",
                   help="MLflow experiment to read (repeatable; default: every active experiment)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT}/)")
    p.add_argument("--role", action="append", default=None, dest="roles", metavar="ROLE",
                   help="run roles that count (repeatable; default: final; e.g. --role final --role smoke)")
    p.add_argument("--spec", metavar="GLOB", help="only runs of the specs matching GLOB count for the V2S and AT "
                   "tables, e.g. 'synth/style_vs_speaker_small' or 'v2s/table2*' (source and orthogonal models "
                   "they used are still found)")
    p.add_argument("--strict", action="store_true",
                   help="leave runs that differ from their cell's majority out of the numbers (default: flag them)")
    p.add_argument("--v2s-dataset", metavar="NAME", help="dataset of V2S Figures 3-5, e.g. Coffee (default: first "
                   "with runs)")
    p.add_argument("--at-dataset", metavar="NAME", help="task of the AT loss figure, e.g. synth/style_speakersplit")
    p.add_argument("--no-cache", action="store_true", help="read every run from the store, not the finished ones "
                   "from the local cache ($XFERLAB_CACHE/runs; the cache is then left as it is)")
    p.add_argument("--list", action="store_true", help="list the report items and exit")
    p.set_defaults(handler=cmd_report)
    return p


def list_items() -> int:
    """``xferlab report --list``: the items in the page's order, read from the tables registry."""
    from xferlab.report.items import ALWAYS, item_names, title

    for name in item_names():
        print(f"{name:18s} {title(name)}")
    print(f"({', '.join(ALWAYS)}: written by every report)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.list:
        return list_items()
    from xferlab.report.build import build_report, select_items
    from xferlab.report.context import Options

    select_items(args.names)  # unknown names fail before the store is touched
    options = Options(roles=tuple(args.roles or ("final",)), strict=args.strict,
                      v2s_dataset=args.v2s_dataset, at_dataset=args.at_dataset, spec=args.spec)
    report = build_report(args.names, args.experiment, Path(args.out), options, cache=not args.no_cache)
    for section in report.sections:
        for line in section.missing + section.summary:
            print(line)
        outputs = [t.files[0] for t in section.tables if t.files] + [f.path for f in section.figures]
        outputs += [p for p, _ in section.files]
        for path in outputs:
            print(f"  wrote {path}")
    print(f"report: {report.index} (+ {report.workbook.name}); {report.fetched.describe()}, built in "
          f"{report.seconds:.1f} s")
    return 0
