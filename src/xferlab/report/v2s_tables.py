"""Voice2Series tables as pure functions: runs DataFrame (+ reference) -> table DataFrame.

Accuracies are reported in percent like the paper; ours are mean, sample std and number
of runs over seeds per dataset. Summary rows follow the paper: mean, median and MPCE
(mean per-class error, Wang et al. 2017: mean over datasets of error rate / classes).
Paper summaries appear twice: as printed (over the paper's 30 datasets) and recomputed
on exactly the datasets we have runs for, which is what the difference compares.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from xferlab.report import papers
from xferlab.report.frames import aggregate
from xferlab.report.query import column, metric

OURS = ("v2s_a", "v2s_u", "tf_a")  # Table 2's columns we reproduce
PAPER = ("sota", "v2s_a", "v2s_u", "tf_a")


def source_arch(runs: pd.DataFrame, sources: pd.DataFrame | None) -> pd.Series:
    """The source model's architecture per V2S run: from the lineage (the pretraining run's
    ``model.arch``), else the registered name in ``model.source``."""
    name = column(runs, "params.model.source").fillna("").astype(str)
    name = name.map(lambda s: re.sub(r"^models:/", "", s).split("/")[0].split("@")[0])
    if sources is not None and len(sources) and "params.model.arch" in sources:
        arch = sources.set_index("run_id")["params.model.arch"]
        linked = column(runs, "tags.xferlab.source_run").map(arch)
        name = linked.where(linked.notna(), name)
    return name


def prepare(runs: pd.DataFrame, sources: pd.DataFrame | None = None) -> pd.DataFrame:
    """Runs + the columns tables group by: dataset, arch, column (paper column), acc %, swd."""
    method = column(runs, "params.model.method").fillna(column(runs, "tags.xferlab.method")).fillna("v2s")
    arch = source_arch(runs, sources)
    out = runs.assign(
        dataset=column(runs, "tags.xferlab.dataset").fillna("").astype(str).str.split("/").str[-1],
        method=method, arch=arch,
        column=[papers.column_for_source(a, m) for a, m in zip(arch, method)],
        acc=metric(runs, "test_accuracy") * 100.0, swd=metric(runs, "swd"),
        n_classes=pd.to_numeric(column(runs, "tags.xferlab.n_classes"), errors="coerce"))
    return out


def _classes(table: pd.DataFrame, prepared: pd.DataFrame) -> pd.Series:
    """Classes per dataset: the paper's, else what the runs recorded."""
    from_runs = prepared.groupby("dataset")["n_classes"].max() if len(prepared) else pd.Series(dtype=float)
    return table["classes"].fillna(table["dataset"].map(from_runs))


def table2_rows(prepared: pd.DataFrame, ref: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-dataset rows: paper info and columns, ours mean/std/n, difference, sources."""
    ref = papers.load("v2s_table2") if ref is None else ref
    names = list(ref["dataset"]) + sorted(set(prepared["dataset"]) - set(ref["dataset"]))
    table = pd.DataFrame({"dataset": names}).merge(ref, on="dataset", how="left")
    table = table.rename(columns={c: f"paper_{c}" for c in PAPER})
    table["classes"] = _classes(table, prepared)
    for col in OURS:
        agg = aggregate(prepared[prepared["column"] == col], ["dataset"], "acc", prefix=f"ours_{col}_")
        table = table.merge(agg, on="dataset", how="left")
        table[f"ours_{col}_n"] = table[f"ours_{col}_n"].fillna(0).astype(int)
        table[f"diff_{col}"] = table[f"ours_{col}_mean"] - table[f"paper_{col}"]
    archs = prepared.groupby("dataset")["arch"].agg(lambda s: ", ".join(sorted(set(s) - {""})))
    table["sources"] = table["dataset"].map(archs).fillna("")
    table.insert(0, "row", "dataset")
    return table


def mpce(acc_percent: pd.Series, classes: pd.Series) -> float:
    """Mean per-class error in percent: mean over datasets of (100 - acc) / classes."""
    ok = acc_percent.notna() & classes.notna()
    return float(((100.0 - acc_percent[ok]) / classes[ok]).mean()) if ok.any() else np.nan


def _summary(rows: pd.DataFrame, label: str, fn: str, same: bool, printed: pd.DataFrame) -> dict[str, object]:
    """One summary row; ``same``: paper recomputed on the datasets ours has, else as printed."""
    out: dict[str, object] = {"row": "summary", "dataset": label}
    in_paper = rows[[f"paper_{c}" for c in OURS]].notna().any(axis=1)
    any_ours = (rows[[f"ours_{c}_n" for c in OURS]].sum(axis=1) > 0) & in_paper
    for col in PAPER:
        has = (rows[f"ours_{col}_n"] > 0) & rows[f"paper_{col}"].notna() if col in OURS else any_ours
        if same:
            sub = rows[has]
            p = sub[f"paper_{col}"]
            out[f"paper_{col}"] = mpce(p, sub["classes"]) if fn == "mpce" else getattr(p, fn)()
        else:
            out[f"paper_{col}"] = float(printed.loc[f"{fn}_accuracy" if fn != "mpce" else "mpce", col])
    for col in OURS:  # ours on the paper's datasets only: a set the paper has no figure for is a row, never in a summary
        sub = rows[(rows[f"ours_{col}_n"] > 0) & rows[f"paper_{col}"].notna()]
        means = sub[f"ours_{col}_mean"]
        out[f"ours_{col}_mean"] = mpce(means, sub["classes"]) if fn == "mpce" else getattr(means, fn)()
        out[f"ours_{col}_n"] = int(len(sub))  # datasets behind the summary
        out[f"diff_{col}"] = out[f"ours_{col}_mean"] - out[f"paper_{col}"] if same else np.nan
    return out


def table2(prepared: pd.DataFrame, ref: pd.DataFrame | None = None,
           printed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 2: one row per dataset (missing ones kept, ours empty) plus six summary rows."""
    rows = table2_rows(prepared, ref)
    printed = (papers.load("v2s_table2_summary") if printed is None else printed).set_index("statistic")
    summary = [_summary(rows, f"{fn} ({'paper recomputed on our datasets' if same else 'paper as printed'})",
                        fn, same, printed)
               for same in (False, True) for fn in ("mean", "median", "mpce")]
    for row in summary:
        row["dataset"] = row["dataset"].replace("mpce", "MPCE")
    return pd.concat([rows, pd.DataFrame(summary)], ignore_index=True)


def paired_tests(ours: pd.Series, paper: pd.Series) -> dict[str, float]:
    """Wilcoxon signed-rank and paired t-test of ours vs paper over the datasets both have."""
    from scipy import stats as st

    ok = ours.notna() & paper.notna()
    a, b = ours[ok].astype(float).to_numpy(), paper[ok].astype(float).to_numpy()
    out = {"n_datasets": int(ok.sum()), "mean_diff": float(np.mean(a - b)) if ok.any() else np.nan,
           "wilcoxon_stat": np.nan, "wilcoxon_p": np.nan, "t_stat": np.nan, "t_p": np.nan}
    if out["n_datasets"] >= 2 and np.any(a != b):
        w = st.wilcoxon(a, b)
        out.update(wilcoxon_stat=float(w.statistic), wilcoxon_p=float(w.pvalue))
        if np.std(a - b) > 0:
            t = st.ttest_rel(a, b)
            out.update(t_stat=float(t.statistic), t_p=float(t.pvalue))
    return out


def significance(table: pd.DataFrame) -> pd.DataFrame:
    """Ours vs the paper's same column and vs SOTA, paired over datasets (Table 2 rows)."""
    rows = table[table["row"] == "dataset"]
    out = []
    for col in OURS:
        for paper in (col, "sota"):
            out.append({"ours": papers.COLUMN_LABELS[col], "paper": papers.COLUMN_LABELS[paper],
                        **paired_tests(rows[f"ours_{col}_mean"], rows[f"paper_{paper}"])})
    return pd.DataFrame(out)
