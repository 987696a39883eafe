"""Voice2Series Tables 3 and 4 and the appendix D.2 mapping comparison (pure functions).

Source-side numbers (validation loss, accuracy, parameters) come from the pretraining
runs that produced the source models the target runs actually used: each V2S run records
its source model's run (``tags.xferlab.source_run``, the lineage), so the join is exact.
SWD is the last epoch's value of the per-epoch ``swd`` metric (what search_runs returns
as the metric's latest value), averaged over seeds per dataset, then mean/median over
datasets as in the paper.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from xferlab.report import papers
from xferlab.report.frames import aggregate, config_key, stats
from xferlab.report.query import column, metric
from xferlab.report.v2s_tables import mpce


def linked_sources(prepared: pd.DataFrame, sources: pd.DataFrame) -> pd.DataFrame:
    """The pretraining runs the given V2S runs used (by lineage tag)."""
    if sources is None or sources.empty:
        return pd.DataFrame(columns=["run_id"])
    ids = set(column(prepared, "tags.xferlab.source_run").dropna())
    return sources[sources["run_id"].isin(ids)]


def _swd_by_dataset(runs: pd.DataFrame) -> pd.Series:
    return runs.dropna(subset=["swd"]).groupby("dataset")["swd"].mean()


def _source_names(src: pd.DataFrame) -> str:
    names = column(src, "tags.xferlab.registered_model").fillna("?").astype(str)
    versions = column(src, "tags.xferlab.registered_version").fillna("?").astype(str)
    return ", ".join(sorted({f"{n} v{v}" for n, v in zip(names, versions)}))


def table3(prepared: pd.DataFrame, sources: pd.DataFrame | None, ref: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per reprogrammed source (V2S_a, V2S_u): source validation loss, mean/median SWD."""
    ref = (papers.load("v2s_table3") if ref is None else ref).set_index("model")
    rows = []
    for col in ("v2s_a", "v2s_u"):
        runs = prepared[prepared["column"] == col]
        src = linked_sources(runs, sources)
        loss_mean, loss_std, n_src = stats(metric(src, "best_val_loss"))
        swd = _swd_by_dataset(runs)
        label = papers.COLUMN_LABELS[col]
        rows.append({"model": label, "source_models": _source_names(src),
                     "ours_source_val_loss": loss_mean, "ours_source_runs": n_src,
                     "paper_source_val_loss": ref["source_val_loss"].get(label, np.nan),
                     "ours_mean_swd": swd.mean() if len(swd) else np.nan,
                     "ours_median_swd": swd.median() if len(swd) else np.nan,
                     "ours_swd_datasets": int(len(swd)), "ours_runs": int(len(runs)),
                     "paper_mean_swd": ref["mean_swd"].get(label, np.nan),
                     "paper_median_swd": ref["median_swd"].get(label, np.nan)})
    return pd.DataFrame(rows)


def _arch_row(arch: str, runs: pd.DataFrame, src: pd.DataFrame) -> dict[str, object]:
    per_ds = aggregate(runs, ["dataset"], "acc")
    classes = runs.groupby("dataset")["n_classes"].max()
    info = papers.dataset_info()["classes"]
    k = per_ds["dataset"].map(info).fillna(per_ds["dataset"].map(classes))
    swd = _swd_by_dataset(runs)
    return {"arch": arch, "source_models": _source_names(src),
            "ours_params_m": stats(metric(src, "n_params") / 1e6)[0],
            "ours_source_acc": stats(metric(src, "test_accuracy") * 100)[0],
            "ours_source_loss": stats(metric(src, "best_val_loss"))[0],
            "ours_mean_swd": swd.mean() if len(swd) else np.nan,
            "ours_target_acc": per_ds["mean"].mean() if len(per_ds) else np.nan,
            "ours_target_mpce": mpce(per_ds["mean"], k), "ours_datasets": int(len(per_ds)),
            "ours_runs": int(len(runs))}


def table4(prepared: pd.DataFrame, sources: pd.DataFrame | None, ref: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per paper model (ours where a source of that architecture has runs) and per
    architecture we ran that the paper lacks."""
    ref = papers.load("v2s_table4") if ref is None else ref
    runs = prepared[prepared["method"] == "v2s"]
    ours = pd.DataFrame([_arch_row(a, g, linked_sources(g, sources)) for a, g in runs.groupby("arch")])
    if ours.empty:
        ours = pd.DataFrame(columns=["arch", "ours_runs"])
    ours["model"] = [papers.COLUMN_LABELS.get(papers.column_for_source(a, "v2s"), a) for a in ours["arch"]]
    paper = ref.rename(columns={c: f"paper_{c}" for c in ref.columns if c not in ("model", "description")})
    table = paper.merge(ours, on="model", how="outer")
    table["ours_runs"] = table["ours_runs"].fillna(0).astype(int)
    order = {m: i for i, m in enumerate(ref["model"])}
    return table.sort_values("model", key=lambda s: s.map(order).fillna(len(order))).reset_index(drop=True)


def mapping_label(kind: object, count: object) -> str:
    return "one-to-one" if kind == "one_to_one" else f"{kind} m={count}"


def _setting_order(label: str) -> tuple[int, float]:
    kind, _, count = label.partition(" m=")
    rank = {"one-to-one": 0, "random": 1, "frequency": 2}.get(kind, 3)
    return rank, float(count) if count.isdigit() else float("inf")


def mapping_table(prepared: pd.DataFrame) -> pd.DataFrame:
    """Appendix D.2: datasets x mapping settings (mean/std/n of test accuracy) + a mean row."""
    if prepared.empty:
        return pd.DataFrame(columns=["dataset"])
    runs = prepared.assign(setting=[mapping_label(k, c) for k, c in zip(
        column(prepared, "params.model.mapping_kind"), column(prepared, "params.model.mapping"))])
    agg = aggregate(runs, ["dataset", "setting"], "acc")
    settings = sorted(agg["setting"].unique(), key=_setting_order)
    table = pd.DataFrame({"dataset": sorted(agg["dataset"].unique())})
    for s in settings:
        part = agg[agg["setting"] == s].drop(columns="setting").rename(
            columns={"mean": f"{s}_mean", "std": f"{s}_std", "n": f"{s}_n"})
        table = table.merge(part, on="dataset", how="left")
        table[f"{s}_n"] = table[f"{s}_n"].fillna(0).astype(int)
    mean_row = {"dataset": "mean over datasets"}
    for s in settings:
        mean_row[f"{s}_mean"] = table[f"{s}_mean"].mean()
        mean_row[f"{s}_n"] = int(table[f"{s}_mean"].notna().sum())
    return pd.concat([table, pd.DataFrame([mean_row])], ignore_index=True)


SETTING = ["params.model.seg", "params.model.dropout"]
SOURCE_PARAMS = ("params.model.source", "params.model.pretrain")  # what the control varies


def _training_params(*frames: pd.DataFrame) -> list[str]:
    """Every ``model.*`` and ``train.*`` param of any of ``frames`` but the source's."""
    return sorted({c for f in frames for c in f.columns
                   if c.startswith(("params.model.", "params.train.")) and c not in SOURCE_PARAMS})


def source_control(control: pd.DataFrame, trained: pd.DataFrame, ref: pd.DataFrame | None = None) -> pd.DataFrame:
    """The untrained-source control beside trained sources at the same setting.

    ``control``: prepared runs of the control table (V2S on an untrained source);
    ``trained``: prepared Table 2 runs, all settings (before any selection on validation).
    One row per dataset, setting (seg, dropout) and trained source: the control's test
    accuracy, chance (100 / classes), and that source's runs trained the same way (method,
    architecture and every model and train param but the source equal), so the gap is what
    the source's training carries. A control without such runs keeps one row with none.
    """
    cols = ["dataset", "setting", "control_source", "control_mean", "control_std", "control_n", "chance",
            "trained_source", "trained_mean", "trained_std", "trained_n", "trained_minus_control", "paper_v2s_a"]
    if control.empty:
        return pd.DataFrame(columns=cols)
    ref = papers.load("v2s_table2") if ref is None else ref

    params = _training_params(control, trained)  # one column set, so equal values give equal keys

    def keyed(runs: pd.DataFrame) -> pd.DataFrame:
        setting = [f"seg {s}, dropout {d}" for s, d in zip(column(runs, SETTING[0]), column(runs, SETTING[1]))]
        return runs.assign(setting=setting, source=column(runs, "params.model.source").fillna("?").astype(str),
                           training=config_key(runs.reindex(columns=params)))

    control, trained = keyed(control), keyed(trained)
    by = ["dataset", "setting", "method", "arch", "training"]
    table = aggregate(control.assign(control_source=control["source"]), [*by, "control_source"], "acc", "control_")
    rows = []
    for _, cell in table.iterrows():
        same = trained[(trained[by] == cell[by]).all(axis=1) & (trained["source"] != cell["control_source"])]
        classes = control.loc[control["dataset"] == cell["dataset"], "n_classes"].max()
        base = {**cell.drop(["method", "arch", "training"]).to_dict(),
                "chance": 100.0 / classes if classes == classes and classes else np.nan}
        for source, runs in same.groupby("source") if len(same) else [("", same)]:
            mean, std, n = stats(runs["acc"])
            rows.append({**base, "trained_source": source, "trained_mean": mean, "trained_std": std,
                         "trained_n": n, "trained_minus_control": mean - cell["control_mean"]})
    out = pd.DataFrame(rows).merge(ref[["dataset", "v2s_a"]].rename(columns={"v2s_a": "paper_v2s_a"}),
                                   on="dataset", how="left")
    return out[cols]
