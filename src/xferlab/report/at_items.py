"""Report items of the anti-transfer paper (tables, spreadsheets, figures) and tuning.

AT target runs are found by ONE tag filter, ``tags.xferlab.kind = 'at'`` (orthogonal
pretraining is kind ``pretrain_at``), plus role and status. Tuning studies are parent
runs with ``tags.xferlab.role = 'study'`` and their trial children, whatever the status.
"""
from __future__ import annotations

import re

import pandas as pd

from xferlab.report import at_tables, figures, tuning
from xferlab.report.at_xlsx import write_experiment_xlsx
from xferlab.report.context import Context, emit, no_runs, titled
from xferlab.report.frames import flag_notes
from xferlab.report.query import Query, column, copy_artifact, metric_histories, png_artifacts
from xferlab.report.sections import FigureOut, Section

NOTES = ["accuracies in percent; mean ± sample std over repetitions (n = runs); train = best checkpoint's "
         "whole-split accuracy", "best layer chosen on validation accuracy; 'layers' = mean over layers of the "
         "per-layer means (n = layers)"]

PAIRED_NOTE = ("test_diff = AT minus baseline test accuracy, paired by seed (test_pairs = seeds both have; "
               "test_diff_sd = the spread of the per-seed differences); "
               "95 % t interval (test_diff_ci_low/high) and paired t-test p (test_p_paired); "
               "seeds_for_paper_gain = seeds a paired test needs to detect the paper's +{gain:.1f} points "
               "(IEMOCAP speaker-wise) at p < 0.05 with 80 % power, from the spread of these differences")


def prepared(ctx: Context) -> tuple[pd.DataFrame, Query]:
    query = ctx.query({"xferlab.kind": "at"}, "antitransfer")

    def make() -> pd.DataFrame:
        return ctx.check("at", at_tables.prepare(ctx.select(query)), at_tables.CELL)

    return ctx.memo("at_prepared", make), query


def pairs_frame(ctx: Context) -> pd.DataFrame:
    """AT minus baseline per cell and seed (:func:`at_tables.seed_pairs`), built once per report."""
    return ctx.memo("at_pairs", lambda: at_tables.seed_pairs(prepared(ctx)[0]))


def layers_frame(ctx: Context) -> pd.DataFrame:
    """The per-layer table, built once per report (the summary, its table, the per-layer
    figure and the claims all read it; its paired columns are the costly part at thousands
    of cells)."""
    return ctx.memo("at_layers", lambda: at_tables.at_layers(prepared(ctx)[0], pairs_frame(ctx)))


def summary_frame(ctx: Context) -> pd.DataFrame:
    def make() -> pd.DataFrame:
        runs, _ = prepared(ctx)
        table = at_tables.summary(runs, layers_frame(ctx))
        flags = ctx.flags.get("at")
        if flags is not None and len(table):
            key = lambda f: pd.Series([f"{r['spec']}: {at_tables.setting_label(r)}"  # noqa: E731
                                       for r in f.to_dict("records")], index=f.index, dtype=object)
            notes = flag_notes(flags.assign(row=key(flags)), "row", "condition")
            table["flags"] = key(table).map(notes).fillna("")
        return table

    return ctx.memo("at_summary", make)


def section(ctx: Context, key: str, what: str) -> tuple[Section, pd.DataFrame, Query]:
    """A section over the prepared AT runs, saying "no runs for <what>" when there are none."""
    sec = titled(key)
    runs, query = prepared(ctx)
    if runs.empty:
        sec.missing.append(no_runs(what, query))
    return sec, runs, query


def summary_item(ctx: Context) -> Section:
    sec, runs, query = section(ctx, "at_summary", "the AT summary")
    notes = NOTES + ["paper columns: the analogue paper row (paper_task); paper_at_test = AT with the orthogonal "
                     "model on the same dataset (GSC: single AT, first bar), paper_at_alt_test = bigger dataset "
                     "(GSC: second bar)"]
    emit(ctx, sec, "at_summary", "AT: test and train accuracy (%) per task and split, paper beside",
         summary_frame(ctx), query, notes, len(runs))
    return sec


def layers_item(ctx: Context) -> Section:
    sec, runs, query = section(ctx, "at_layers", "the AT per-layer table")
    emit(ctx, sec, "at_layers", "AT: accuracy (%) per task, split, condition, model and layer; gain over baseline",
         layers_frame(ctx), query, [*NOTES[:1], PAIRED_NOTE.format(gain=at_tables.paper_gain())], len(runs))
    return sec


SPREADSHEET_COLUMNS = ("run_id", "run_name", "artifact_uri", "tags.xferlab.cell", "tags.xferlab.spec")


def spreadsheets_item(ctx: Context) -> Section:
    sec, runs, _ = section(ctx, "at_spreadsheets", "the per-experiment spreadsheets")
    keep = [c for c in runs.columns if c.startswith(("metrics.", "params.")) or c in SPREADSHEET_COLUMNS]
    runs = runs[keep]  # what a sheet shows, and the params that keep two configurations apart
    for spec, group in runs.groupby(column(runs, "tags.xferlab.spec").fillna("unknown")):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(spec)).strip("_")
        path = write_experiment_xlsx(group, ctx.path("at_experiments", f"{safe}.xlsx"), f"experiment {spec}")
        sec.files.append((path, f"{spec}: {group['tags.xferlab.cell'].nunique()} instance(s), {len(group)} run(s)"))
    return sec


def boost_item(ctx: Context) -> Section:
    sec = titled("at_boost")
    runs, query = prepared(ctx)
    ours = at_tables.our_boost(summary_frame(ctx))
    if ours.empty:
        sec.missing.append(no_runs("our boost bars (AT and baseline of the same task)", query))
    path = figures.at_boost(at_tables.paper_boost(), ours, ctx.path("figures", "at_boost.png"))
    sec.figures.append(FigureOut("at_boost", "Test accuracy boost: AT minus baseline", path,
                                 ["paper bars recomputed from its headline numbers"], query.describe(), len(runs)))
    return sec


def per_layer_item(ctx: Context) -> Section:
    sec = titled("at_per_layer")
    runs, query = prepared(ctx)
    layers = layers_frame(ctx)
    has = layers[layers["condition"].isin(at_tables.AT_CONDITIONS) & layers["test_gain"].notna()]
    if has.empty:
        sec.missing.append(no_runs("our per-layer improvement (AT runs with a baseline of the same task)", query))
    else:
        path = figures.at_per_layer(layers, ctx.path("figures", "at_per_layer.png"))
        sec.figures.append(FigureOut("at_per_layer", "Ours: AT minus baseline per layer", path, [],
                                     query.describe(), len(runs)))
    path = figures.at_per_layer_paper(ctx.path("figures", "at_per_layer_paper.png"))
    sec.figures.append(FigureOut("at_per_layer_paper", "Paper: IEMOCAP per-layer improvement", path,
                                 ["from the paper's plotting-script numbers minus its baselines"], "", 0))
    return sec


def confound_item(ctx: Context) -> Section:
    sec = titled("at_confound")
    runs, query = prepared(ctx)
    table = summary_frame(ctx)
    swept = table.groupby(at_tables.SWEEP, dropna=False)["confound"].transform("nunique") > 1 if len(table) else []
    if not len(table) or not swept.any():
        sec.missing.append(no_runs("the confound sweep (needs 2+ values of data.confound for one task)", query))
        return sec
    path = figures.at_confound(table[swept], ctx.path("figures", "at_confound.png"))
    sec.figures.append(FigureOut("at_confound", "Test accuracy against data.confound", path,
                                 ["mean ± std over repetitions; AT at the layer chosen on validation"],
                                 query.describe(), len(runs)))
    return sec


def loss_item(ctx: Context) -> Section:
    sec = titled("at_loss")
    runs, query = prepared(ctx)
    at = runs[runs["condition"].isin(at_tables.AT_CONDITIONS)]
    if ctx.options.at_dataset:
        at = at[at["task"] == ctx.options.at_dataset]
    if at.empty:
        sec.missing.append(no_runs(f"the AT loss curves{' on ' + ctx.options.at_dataset if ctx.options.at_dataset else ''}",
                                   query))
        return sec
    first = at.sort_values("start_time").iloc[0]
    same = (at[at_tables.CELL] == first[at_tables.CELL]) | (at[at_tables.CELL].isna() & pd.isna(first[at_tables.CELL]))
    cell = at[same.all(axis=1)].head(5)
    hist = metric_histories(cell["run_id"], ["train_ce_loss", "val_ce_loss", "at_loss", "val_at_loss",
                                             "train_loss", "val_loss"])
    title = f"{at_tables.setting_label(first)}: {first['condition']} at layer {first['layer']:.0f} vs {first['ref_model']}"
    path = figures.at_loss(hist, ctx.path("figures", "at_loss.png"), title)
    sec.figures.append(FigureOut("at_loss", "Loss through epochs", path, ["mean ± std over repetitions (the first 5)"],
                                 f"{query.describe()} AND params.`at.layer` = '{first['layer']:.0f}'", len(cell)))
    return sec


def tuning_item(ctx: Context) -> Section:
    sec = titled("tuning")
    query = Query((("xferlab.role", "study"),), (), None)
    table = tuning.study_table(ctx.runs)
    if table.empty:
        sec.missing.append(no_runs("tuning", query))
    text = query.describe() + "; trials: tags.`xferlab.role` = 'trial' AND tags.`mlflow.parentRunId` = <study run>"
    emit(ctx, sec, "tuning", "Tuning: best value, best parameters and trials by state per study", table, text,
         ["states from the trial runs' tag or status; best params = the params that vary across the study's trials"],
         int(table["trials"].sum()) if len(table) else 0)
    for row in table.itertuples():
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(row.study)).strip("_")
        for art in png_artifacts(row.parent_run):
            path = copy_artifact(row.parent_run, art, ctx.path("tuning", safe, art.replace("/", "_")))
            if path is not None:
                sec.figures.append(FigureOut(f"tuning_{safe}_{path.stem}", f"{row.study}: {art}", path,
                                             [f"copied from the study's parent run {row.parent_run}"], "", row.trials))
    return sec

