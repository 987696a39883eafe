"""The report: query MLflow -> pandas -> the papers' tables (CSV, Markdown, xlsx, HTML)
and figures (PNG), side by side with the published numbers.

- :mod:`query`: the only place that talks to the store (through :mod:`xferlab.tracking`):
  one fetch per experiment into a DataFrame, metric histories and artifacts on demand.
- :mod:`v2s_tables`, :mod:`v2s_ablations`, :mod:`at_tables`, :mod:`tuning`: pure table
  builders, runs DataFrame -> table DataFrame.
- :mod:`frames`: aggregation over seeds, mismatch flags (config / code) per cell.
- :mod:`figures`, :mod:`writers`, :mod:`at_xlsx`, :mod:`html`: outputs.
- :mod:`items`: the items, registered into ``xferlab.registry.TABLES`` in the page's order
  (no heavy imports); :mod:`sections` and :mod:`context`: what items return and share;
  :mod:`build`: the build; :mod:`cli`: ``xferlab report``.
- :mod:`papers` reads ``reference/``: the papers' numbers (package data, sources in its
  README).
"""
from __future__ import annotations

from typing import Any

__all__ = ["build_report", "write_experiment_xlsx", "add_report_parser"]


def __getattr__(name: str) -> Any:
    """Lazy: importing the package costs nothing until a name is used."""
    if name == "build_report":
        from xferlab.report.build import build_report
        return build_report
    if name == "write_experiment_xlsx":
        from xferlab.report.at_xlsx import write_experiment_xlsx
        return write_experiment_xlsx
    if name == "add_report_parser":
        from xferlab.report.cli import add_report_parser
        return add_report_parser
    raise AttributeError(f"module 'xferlab.report' has no attribute {name!r}")
