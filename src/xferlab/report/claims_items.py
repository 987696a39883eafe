"""The report item of the claims table (``xferlab report claims``): both papers' headline
claims beside ours, from the same prepared runs the V2S and AT tables use (selection on
validation, consistency flags, ``--spec`` and ``--role`` included)."""
from __future__ import annotations

import pandas as pd

from xferlab.report import at_items, claims, figures, v2s_items
from xferlab.report.context import Context, emit, no_runs, titled
from xferlab.report.sections import FigureOut, Section

NOTES = [f"gain claims: reproduced when the 95 % t interval of the paired difference lies above 0; not reproduced "
         "when it does not and lies below the paper's gain; else inconclusive, with the seeds a paired t-test needs "
         "to detect the paper's gain at p < 0.05 with 80 % power (from the spread of the differences)",
         f"level claims (reaches the paper's accuracy): reproduced when the interval of our mean lies at or above the "
         f"paper's figure - {claims.MATCH_MARGIN:g} points; not reproduced when it lies below; else inconclusive",
         "p: gain claims, paired t-test of the difference against 0; level claims, t-test of ours against the "
         "paper's figure. n: seeds (pairs). V2S rows use the setting chosen on validation where the spec selects; "
         "AT rows use the layer chosen on validation",
         "one row per spec: two experiments are never pooled into one claim",
         "each row is its own 95 % test: among many rows about 1 in 20 true-null claims reads as reproduced by "
         "chance; read a single reproduced row among many inconclusive ones with that in mind"]


def claims_item(ctx: Context) -> Section:
    sec = titled("claims")
    v2s_runs, v2s_query = v2s_items.prepared(ctx, "v2s_table2")
    at_runs, at_query = at_items.prepared(ctx)
    table = claims.claims(v2s_runs, at_items.summary_frame(ctx), at_items.layers_frame(ctx),
                          at_items.pairs_frame(ctx))
    query = f"V2S: {v2s_query.describe()}; AT: {at_query.describe()}"
    if table.empty:
        sec.missing.append(no_runs("any claim (V2S Table 2 runs of a paper dataset, or AT runs with a baseline of a "
                                   "task the paper has an analogue of)", query))
    emit(ctx, sec, "claims", "Claims: each paper's headline claims, the paper's figure, ours and a verdict", table,
         query, NOTES, len(v2s_runs) + len(at_runs))
    if len(table):
        drawn = figures.claim_rows(table)
        path = figures.claims(drawn, ctx.path("figures", "claims.png"))
        shown = "every claim" if len(drawn) == len(table) else (
            f"{len(drawn)} of the {len(table)} claims (decided ones first, then AT before V2S); the table lists all")
        sec.figures.append(FigureOut("claims", "Claims: ours (95 % interval) beside the paper's figure", path,
                                     [f"colour = verdict; {shown}"], query, len(v2s_runs) + len(at_runs)))
        sec.summary += console_lines(table)
    return sec


def console_lines(table: pd.DataFrame, most: int = 12) -> list[str]:
    """The tally, then the decided claims (at most ``most``), then a pointer to the rest."""
    decided = table[table["verdict"] != claims.INCONCLUSIVE]
    lines = [f"claims: {claims.tally(table)} (tables/claims.md)"]
    lines += [f"  {r.verdict:15s} {r.paper} {r.claim} [{r.scope}, {r.spec}]" for r in decided.head(most).itertuples()]
    if len(decided) > most:
        lines.append(f"  ... and {len(decided) - most} more decided claim(s)")
    return lines
