"""Report items of the Voice2Series paper: Tables 2-4, D.2, significance, Figures 3-5.

Each V2S table is found by ONE tag filter (``tags.xferlab.table = '<table>'``) plus role
and status; the source models' pretraining runs are found by
``tags.xferlab.kind = 'pretrain_v2s'`` and joined through the lineage tag.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from xferlab.report import papers, v2s_ablations, v2s_tables
from xferlab.report.context import Context, emit, no_runs, titled
from xferlab.report.frames import flag_notes, select_on_validation
from xferlab.report.query import Query, artifact_names, column, copy_artifact, metric_histories
from xferlab.report.sections import FigureOut, Section

CELL = ["dataset", "column"]
NOTES = ["accuracies in percent; ours = mean ± sample std over seeds (n = runs); summary rows: n = datasets",
         "MPCE = mean over datasets of (100 - accuracy) / classes (Wang et al. 2017)"]


def sources(ctx: Context) -> tuple[pd.DataFrame, Query]:
    """FINISHED pretraining runs of V2S source models (any role: they are often 'pretrain')."""
    query = ctx.query({"xferlab.kind": "pretrain_v2s"}, "sources", any_role=True)
    return ctx.memo("v2s_sources", lambda: ctx.select(query)), query


def prepared(ctx: Context, table: str, by: Sequence[str] = CELL) -> tuple[pd.DataFrame, Query]:
    """The runs of one V2S table, prepared, checked for mismatches (memoised)."""
    query = ctx.query({"xferlab.table": table}, "v2s")

    def make() -> pd.DataFrame:
        frame = v2s_tables.prepare(ctx.select(query), sources(ctx)[0])
        frame, chosen = select_on_validation(frame, list(by))
        if len(chosen):
            ctx.selections[table] = chosen
        return ctx.check(table, frame, list(by))

    return ctx.memo(f"v2s_prepared:{table}", make), query


def emit_selected(ctx: Context, sec: Section, table: str, title: str, frame: pd.DataFrame, query: Query,
                  notes: list[str], runs: int) -> None:
    """``emit`` the table; when its spec chose settings on validation (``select``), add a note
    and the ``<table>_selection`` table of what was chosen beside it."""
    chosen = ctx.selections.get(table)
    if chosen is None or chosen.empty:
        emit(ctx, sec, table, title, frame, query, notes, runs)
        return
    emit(ctx, sec, table, title, frame, query,
         notes + [f"{len(chosen)} cell(s) use the setting chosen on validation: see {table}_selection"], runs)
    picked = chosen.rename(columns={"column": "paper column"})
    picked_notes = ["per cell, the setting with the lowest mean validation cross-entropy over its seeds "
                    "(best_val_ce_loss: without the program's L2 penalty, which differs between L2 settings; "
                    "ties: higher val accuracy); the other settings' runs are left out of the main table",
                    "best_test_accuracy: the best any setting reached on test (what choosing on test would give); "
                    "with val_mode paper the validation set IS the test set"]
    emit(ctx, sec, f"{table}_selection", f"{table}: settings chosen on validation", picked, query, picked_notes,
         int(picked["runs"].sum()))


def table2_frame(ctx: Context) -> pd.DataFrame:
    def make() -> pd.DataFrame:
        runs, _ = prepared(ctx, "v2s_table2")
        table = v2s_tables.table2(runs)
        flags = ctx.flags.get("v2s_table2")
        if flags is not None:
            notes = flag_notes(flags.assign(column=flags["column"].map(papers.COLUMN_LABELS)), "dataset", "column")
            table["flags"] = table["dataset"].map(notes).fillna("")
        return table

    return ctx.memo("v2s_table2_frame", make)


def table2_item(ctx: Context) -> Section:
    sec = titled("v2s_table2")
    runs, query = prepared(ctx, "v2s_table2")
    table = table2_frame(ctx)
    if runs.empty:
        sec.missing.append(no_runs("V2S Table 2", query))
    for col in v2s_tables.OURS:
        if not runs.empty and not (runs["column"] == col).any():
            sec.missing.append(no_runs(f"Table 2 column {papers.COLUMN_LABELS[col]}", query))
    other = runs[runs["column"].isna()]
    rows = table[table["row"] == "dataset"]
    with_runs = rows[[f"ours_{c}_n" for c in v2s_tables.OURS]].sum(axis=1) > 0
    in_paper = rows["paper_sota"].notna()
    notes = NOTES + [f"{int((with_runs & in_paper).sum())} of the paper's {int(in_paper.sum())} datasets have runs"
                     + (f", plus {int((with_runs & ~in_paper).sum())} dataset(s) not in the paper" if (~in_paper).any() else ""),
                     "val modes: " + (", ".join(f"{k} ({v})" for k, v in column(runs, "params.train.val_mode")
                                                 .value_counts().items()) or "-")]
    if len(other):
        notes.append(f"{len(other)} run(s) left out: source architecture without a Table 2 column "
                     f"({', '.join(sorted(set(other['arch'])))})")
    emit_selected(ctx, sec, "v2s_table2", "V2S Table 2: test accuracy (%) per UCR dataset, paper vs ours", table,
                  query, notes, len(runs))
    return sec


def significance_item(ctx: Context) -> Section:
    sec = titled("v2s_significance")
    runs, query = prepared(ctx, "v2s_table2")
    table = v2s_tables.significance(table2_frame(ctx))
    if runs.empty:
        sec.missing.append(no_runs("the significance test", query))
    notes = ["ours (mean over seeds per dataset) vs the paper's column, paired over the datasets both have; "
             "scipy.stats.wilcoxon (signed-rank, zero differences dropped) and ttest_rel; p two-sided",
             "the paper reports p = 0.0017 (V2S vs SOTA) and 0.0011 (vs FCN) without naming the test; "
             "on the paper's own columns Wilcoxon V2S_a vs SOTA gives p = 0.44"]
    emit(ctx, sec, "v2s_significance", "V2S: ours vs the paper, paired tests over datasets", table, query, notes,
         len(runs))
    return sec


def table3_item(ctx: Context) -> Section:
    sec = titled("v2s_table3")
    runs, query = prepared(ctx, "v2s_table2")
    src, src_query = sources(ctx)
    if runs.empty:
        sec.missing.append(no_runs("V2S Table 3", query))
    elif src.empty:
        sec.missing.append(no_runs("Table 3's source models", src_query))
    table = v2s_ablations.table3(runs, src)
    notes = ["source validation loss: the pretraining runs the Table 2 runs used (lineage tag xferlab.source_run)",
             "SWD: last-epoch swd per run, mean over seeds per dataset, then mean / median over datasets",
             f"source runs: {src_query.describe()}"]
    emit(ctx, sec, "v2s_table3", "V2S Table 3: source validation loss, mean and median SWD", table, query, notes,
         len(runs))
    return sec


def table4_item(ctx: Context) -> Section:
    sec = titled("v2s_table4")
    runs, query = prepared(ctx, "v2s_table4", ["dataset", "arch"])
    if runs.empty:
        sec.missing.append(no_runs("V2S Table 4", query))
    table = v2s_ablations.table4(runs, sources(ctx)[0])
    notes = ["ours: params (M), source test accuracy and best validation loss from the linked pretraining runs; "
             "target accuracy = mean over datasets of the per-dataset mean over seeds; MPCE as in Table 2"]
    emit_selected(ctx, sec, "v2s_table4", "V2S Table 4: source architectures, paper vs ours", table, query, notes,
                  len(runs))
    return sec


def mapping_item(ctx: Context) -> Section:
    sec = titled("v2s_mapping")
    by = ["dataset", "params.model.mapping_kind", "params.model.mapping"]
    runs, query = prepared(ctx, "v2s_mapping", by)
    if runs.empty:
        sec.missing.append(no_runs("the D.2 mapping comparison", query))
    table = v2s_ablations.mapping_table(runs)
    emit_selected(ctx, sec, "v2s_mapping", "V2S D.2: test accuracy (%) per label mapping", table, query,
                  [NOTES[0], "setting = model.mapping_kind and model.mapping (source labels per target class)"],
                  len(runs))
    return sec


def source_control_item(ctx: Context) -> Section:
    """V2S on an untrained source (table v2s_source_control) beside the trained sources'
    Table 2 runs at the same seg and dropout: what the source's speech training carries."""
    sec = titled("v2s_source_control")
    control, query = prepared(ctx, "v2s_source_control")
    trained_query = ctx.query({"xferlab.table": "v2s_table2"}, "v2s")
    trained = ctx.memo("v2s_table2_all_settings",
                       lambda: v2s_tables.prepare(ctx.select(trained_query), sources(ctx)[0]))
    if control.empty:
        sec.missing.append(no_runs("the untrained-source control", query))
    table = v2s_ablations.source_control(control, trained)
    notes = [NOTES[0], "trained: one row per other source of the same architecture, its Table 2 runs at the "
             "control's setting trained the same way (every model and train param but the source equal; "
             "no selection on validation: the control fixes the setting)",
             f"trained runs: {trained_query.describe()}"]
    emit(ctx, sec, "v2s_source_control", "V2S control: untrained vs trained source at the same setting, "
         "test accuracy (%)", table, query, notes, len(control))
    return sec


def figure_dataset(ctx: Context, runs: pd.DataFrame) -> str | None:
    """--v2s-dataset, else the first dataset (paper order) with V2S runs."""
    wanted = ctx.options.v2s_dataset
    if wanted:
        return wanted.split("/")[-1]
    order = list(papers.load("v2s_table2")["dataset"])
    present = runs[runs["method"] == "v2s"]["dataset"].unique()
    ranked = sorted(present, key=lambda d: order.index(d) if d in order else len(order))
    return ranked[0] if ranked else None


def fig3_item(ctx: Context) -> Section:
    sec = titled("v2s_fig3")
    runs, query = prepared(ctx, "v2s_table2")
    dataset = figure_dataset(ctx, runs)
    chosen = runs[runs["dataset"] == dataset].sort_values("start_time").groupby("column").head(5)
    shown = f"{query.describe()} AND tags.`xferlab.dataset` LIKE '%/{dataset}'"
    if chosen.empty:
        sec.missing.append(no_runs(f"V2S Figure 3 on {dataset or 'any dataset'}", shown))
        return sec
    hist = metric_histories(chosen["run_id"], ["val_accuracy", "val_loss", "train_accuracy", "train_loss", "swd"])
    labels = {r: f"{papers.COLUMN_LABELS.get(c, c)} ({a})" for r, c, a in zip(chosen["run_id"], chosen["column"].fillna("?"),
                                                                               chosen["arch"])}
    modes = set(column(chosen, "params.train.val_mode").dropna())
    held_out = "test" if modes == {"paper"} else "validation"
    from xferlab.report import figures

    path = figures.v2s_fig3(hist, labels, ctx.path("figures", "v2s_fig3.png"),
                            f"{dataset}: per-epoch curves (mean ± std over seeds)", held_out)
    notes = [f"held-out curves = {held_out} split (train.val_mode: {', '.join(sorted(modes)) or '?'}); "
             "the first 5 runs per method"]
    sec.figures.append(FigureOut("v2s_fig3", f"Figure 3 on {dataset}", path, notes, shown, len(chosen)))
    return sec


def _artifact_item(ctx: Context, name: str, artifact: str) -> Section:
    sec = titled(name)
    title = sec.title
    runs, query = prepared(ctx, "v2s_table2")
    dataset = figure_dataset(ctx, runs)
    cands = runs[(runs["dataset"] == dataset) & (runs["method"] == "v2s")]
    cands = cands.assign(_a=cands["column"] != "v2s_a").sort_values(["_a", "start_time"]).head(5)
    shown = f"{query.describe()} AND tags.`xferlab.dataset` LIKE '%/{dataset}' AND params.`model.method` = 'v2s'"
    for run in cands.itertuples():
        listed = ctx.memo(f"artifacts:{run.run_id}", lambda: artifact_names(run.run_id))
        path = copy_artifact(run.run_id, artifact, ctx.path("figures", f"{name}.png")) if artifact in listed else None
        if path is not None:
            note = f"copied from run {run.run_id} ({run.run_name}), artifact {artifact}"
            sec.figures.append(FigureOut(name, f"{title} on {dataset}", path, [note], shown, 1))
            return sec
    sec.missing.append(no_runs(f"{title} (artifact {artifact}) on {dataset or 'any dataset'}", shown))
    return sec


def fig4_item(ctx: Context) -> Section:
    return _artifact_item(ctx, "v2s_fig4", "fig4_cam.png")


def fig5_item(ctx: Context) -> Section:
    return _artifact_item(ctx, "v2s_fig5", "fig5_tsne.png")
