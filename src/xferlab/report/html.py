"""``index.html``: every table and figure of the report on one self-contained page.

Offline by construction: inline CSS, no scripts, no fonts or CDNs; figures and files are
linked by paths relative to the page, so the folder can be moved or zipped. Each table
shows the MLflow query that produced it, and each number the runs behind it.
"""
from __future__ import annotations

import html
import os
from pathlib import Path

from xferlab.report.sections import FigureOut, Section, TableOut
from xferlab.report.writers import display

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1400px;
     padding:0 1em;color:#1d2330;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #c9d3e3;padding-bottom:.2em;margin-top:2em}
h3{margin:1.4em 0 .3em} .meta{color:#5b6475;font-size:.9em}
code.q{display:block;background:#f3f5f9;border:1px solid #dfe4ec;padding:.35em .6em;font-size:.82em;
       white-space:pre-wrap;word-break:break-word}
.scroll{overflow-x:auto;margin:.5em 0 1em}
table.t{border-collapse:collapse;font-size:.82em}
table.t th{background:#e8eef7;position:sticky;top:0;text-align:left}
table.t th,table.t td{border:1px solid #d5dbe5;padding:.25em .5em;white-space:nowrap}
table.t tr:nth-child(even) td{background:#fafbfd}
.missing{color:#9a3412;background:#fff7ed;border-left:4px solid #fb923c;padding:.3em .6em;margin:.4em 0}
.note{color:#374151;font-size:.88em;margin:.2em 0} figure{margin:1em 0} figure img{max-width:100%;border:1px solid #e5e7eb}
figcaption{font-size:.88em;color:#4b5563} nav a{margin-right:.8em} .files a{margin-right:1em}
"""


def _rel(path: Path, root: Path) -> str:
    return html.escape(os.path.relpath(path, root).replace(os.sep, "/"), quote=True)


def _table_html(table: TableOut, root: Path) -> str:
    if table.frame.empty:
        body = '<p class="note">(empty: no rows)</p>'
    else:
        body = display(table.frame).to_html(index=False, escape=True, border=0, classes="t", na_rep="")
    links = " ".join(f'<a href="{_rel(p, root)}">{html.escape(p.suffix[1:])}</a>' for p in table.files)
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in table.notes)
    return (f'<h3 id="{html.escape(table.name)}">{html.escape(table.title)}</h3>'
            f'<code class="q">{html.escape(table.query)}</code>{notes}'
            f'<p class="note">{table.runs} run(s) behind this table · files: {links}</p>'
            f'<div class="scroll">{body}</div>')


def _figure_html(fig: FigureOut, root: Path) -> str:
    notes = " ".join(html.escape(n) for n in fig.notes)
    query = f'<code class="q">{html.escape(fig.query)}</code>' if fig.query else ""
    runs = (" · " if notes else "") + f"{fig.runs} run(s)" if fig.query else ""  # none behind the paper's figures
    return (f'<h3 id="{html.escape(fig.name)}">{html.escape(fig.title)}</h3>{query}'
            f'<figure><a href="{_rel(fig.path, root)}"><img src="{_rel(fig.path, root)}" '
            f'alt="{html.escape(fig.title, quote=True)}"></a><figcaption>{notes}{runs}</figcaption></figure>')


def _section_html(section: Section, root: Path) -> str:
    parts = [f'<h2 id="sec-{html.escape(section.name)}">{html.escape(section.title)}</h2>']
    parts += [f'<p class="missing">{html.escape(line)}</p>' for line in section.missing]
    parts += [_table_html(t, root) for t in section.tables]
    parts += [_figure_html(f, root) for f in section.figures]
    if section.files:
        items = "".join(f'<li><a href="{_rel(p, root)}">{html.escape(label)}</a></li>' for p, label in section.files)
        parts.append(f'<ul class="files">{items}</ul>')
    return "\n".join(parts)


def write_index(out: Path, sections: list[Section], meta: dict[str, str]) -> Path:
    """Write ``out/index.html`` for the given sections."""
    nav = " ".join(f'<a href="#sec-{html.escape(s.name)}">{html.escape(s.title)}</a>' for s in sections)
    info = " · ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in meta.items())
    body = "\n".join(_section_html(s, out) for s in sections)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>xferlab report</title><style>{CSS}</style></head><body>"
            f'<h1>xferlab report</h1><p class="meta">{info}</p>'
            f'<p class="meta"><a href="report.xlsx">report.xlsx</a> (every table as a sheet)</p>'
            f"<nav>{nav}</nav>{body}</body></html>\n")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
