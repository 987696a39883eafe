"""Pure helpers shared by the table builders: aggregation over seeds and mismatch flags.

Every run of one table cell should differ from its neighbours in the seed only. Three
things can silently break that: a different configuration (a spec edited between runs,
an override), different code and another version of a registered model it loaded (a
source or orthogonal model re-trained under its name). :func:`consistency` finds, per
cell, the majority of each and flags the others; the report lists them and marks the cell,
and ``--strict`` drops them from the numbers. A run superseded by a newer FINISHED run of
the same instance (:func:`superseded`: a ``--force`` rerun, or a rerun after the model it
loaded was replaced) is never counted: one instance is one seed.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from xferlab.report.query import column, metric

SEED_PARAMS = ("params.seed",)  # the only param allowed to differ inside a cell
COMMIT_TAG = "tags.xferlab.git_commit"
SELECT_TAG = "tags.xferlab.select"  # keys chosen on validation (the spec's `select`)
SELECTION_COLUMNS = ["settings", "chosen", "runs", "val_accuracy", "test_accuracy", "best_test_accuracy",
                     "validation", "left_out"]
VAL_MODE_TAG = "tags.xferlab.val_mode"  # V2S: holdout | paper (validation = the UCR test split)
LINEAGE_URI = re.compile(r"tags\.xferlab\.\w+_uri")  # a model the run loaded (xferlab.tracking.models.record_lineage)
INSTANCE_TAGS = ("tags.xferlab.spec_hash", "tags.xferlab.role")
REGISTERED_TAG = "tags.xferlab.registered_model"


def superseded(frame: pd.DataFrame) -> pd.Series:
    """True for a FINISHED run with a newer FINISHED run of the same instance (spec hash and
    role): the instance's result is its newest run, so a rerun never adds a seed to a cell.
    Exempt: tuning trials (a study may sample one setting twice, and each is a trial) and
    runs that registered a model (a model version stays what its downstream runs loaded)."""
    spec_hash, role = (column(frame, tag).fillna("").astype(str) for tag in INSTANCE_TAGS)
    candidate = ((column(frame, "status") == "FINISHED") & (spec_hash != "") & (role != "trial")
                 & column(frame, REGISTERED_TAG).isna())
    out = pd.Series(False, index=frame.index)
    if not candidate.any():
        return out
    start = column(frame, "start_time", 0).fillna(0).astype(float)[candidate]
    newest = start.groupby([spec_hash[candidate], role[candidate]]).transform("max")
    out[candidate] = start < newest
    return out


def stats(values: pd.Series) -> tuple[float, float, int]:
    """(mean, sample std, n) of the non-missing values; std is NaN below two values."""
    v = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    n = int(v.size)
    if n == 0:
        return np.nan, np.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if n > 1 else np.nan, n


def aggregate(frame: pd.DataFrame, by: Sequence[str], value: str, prefix: str = "") -> pd.DataFrame:
    """One row per group of ``by``: ``{prefix}mean``, ``{prefix}std`` (ddof 1), ``{prefix}n``
    (non-missing values), in order of first appearance; one vectorised groupby."""
    cols = [f"{prefix}mean", f"{prefix}std", f"{prefix}n"]
    if frame.empty:
        return pd.DataFrame(columns=[*by, *cols])
    values = frame[list(by)].assign(_v=pd.to_numeric(frame[value], errors="coerce").astype(float))
    out = values.groupby(list(by), sort=False, dropna=False)["_v"].agg(["mean", "std", "count"]).reset_index()
    out.columns = [*by, *cols]
    out[f"{prefix}n"] = out[f"{prefix}n"].astype(int)
    return out


def config_key(frame: pd.DataFrame) -> pd.Series:
    """A hash per run of all its params except the seed (same key = same configuration)."""
    cols = sorted(c for c in frame.columns if c.startswith("params.") and c not in SEED_PARAMS)
    if not cols or frame.empty:
        return pd.Series("", index=frame.index, dtype=object)
    values = frame[cols].astype(object).where(frame[cols].notna(), "\x00").astype(str)
    return pd.util.hash_pandas_object(values, index=False).astype(str)


def cell_labels(frame: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """"Coffee, v2s_a" per run: the values of ``by`` joined (missing shown as a dash)."""
    parts = [frame[c].astype(object).where(frame[c].notna(), "—").astype(str) for c in by]  # pandas 3 keeps NaN
    return parts[0].str.cat(parts[1:], sep=", ")


def validation_ce(frame: pd.DataFrame, cells: pd.Series) -> pd.Series:
    """Each run's validation cross-entropy at its kept epoch (``best_val_ce_loss``). Keras'
    validation loss (``best_val_loss``) adds the program's L2 penalty, which grows with the
    L2 weight, so ranking settings of different ``model.l2`` on it is biased towards the
    weakest penalty. A cell holding a run logged before ``best_val_ce_loss`` existed ranks
    all its runs on ``best_val_loss``, so one cell never compares the two quantities."""
    ce, loss = metric(frame, "best_val_ce_loss"), metric(frame, "best_val_loss")
    every = ce.notna().groupby(cells).transform("all")
    return ce.where(every, loss)


def select_on_validation(frame: pd.DataFrame, by: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cell of ``by`` holding runs of a spec with ``select``: keep the configuration with
    the lowest mean validation cross-entropy over its seeds (:func:`validation_ce`; the
    paper's criterion; ties: higher mean ``best_val_accuracy``). Loss, not accuracy: on a
    validation split of a few series many settings tie on accuracy.

    Only runs that asked for the selection (``select``) and whose validation is held out
    from training are candidates. A cell whose only candidates validated on the test split
    (``val_mode: paper``, the authors' protocol) is selected among those and labelled so in
    the ``validation`` column. Every other run of a selecting cell is left out of the
    table and counted in ``left_out`` with the reason. Returns the kept runs and one row
    per selected cell: the chosen setting, its validation and test accuracy (means, %) and,
    for honesty, the best test accuracy any candidate reached (an oracle's choice).
    """
    selecting = column(frame, SELECT_TAG).fillna("").astype(str) != ""
    if frame.empty or not selecting.any():
        return frame, pd.DataFrame(columns=[*by, *SELECTION_COLUMNS])
    cells = cell_labels(frame, by)
    on_test = column(frame, VAL_MODE_TAG).fillna("").astype(str) == "paper"
    held_out_cells = set(cells[selecting & ~on_test])
    candidate = selecting & (~on_test | ~cells.isin(held_out_cells))  # held out; paper only where nothing else
    runs = pd.DataFrame({"cell": cells, "key": config_key(frame), "val": metric(frame, "best_val_accuracy") * 100,
                         "loss": validation_ce(frame, cells), "test": metric(frame, "test_accuracy") * 100})
    configs = runs[candidate].groupby(["cell", "key"], sort=False).agg(
        val=("val", "mean"), loss=("loss", "mean"), test=("test", "mean"), runs=("val", "size"))
    configs = configs.reset_index().sort_values(["loss", "val"], ascending=[True, False], na_position="last")
    chosen = configs.drop_duplicates("cell").set_index("cell")
    in_scope = cells.isin(set(cells[selecting]))
    keep = ~in_scope | (candidate & (runs["key"] == cells.map(chosen["key"])))
    rows = []
    for cell, best in chosen.loc[sorted(set(cells[in_scope]))].iterrows():  # cells in name order
        first = frame.loc[candidate & (cells == cell) & (runs["key"] == best["key"])].iloc[0]
        keys = [k for k in str(first.get(SELECT_TAG) or "").split(",") if k]
        mine = cells == cell
        rows.append({**{c: first[c] for c in by}, "settings": int((configs["cell"] == cell).sum()),
                     "chosen": ", ".join(f"{k}={first.get(f'params.{k}')}" for k in keys),
                     "runs": int(best["runs"]), "val_accuracy": best["val"], "test_accuracy": best["test"],
                     "best_test_accuracy": configs.loc[configs["cell"] == cell, "test"].max(),
                     "validation": "held out" if cell in held_out_cells else "test split (paper protocol)",
                     "left_out": _left_out(int((mine & ~selecting).sum()), int((mine & selecting & ~candidate).sum()))})
    return frame[keep], pd.DataFrame(rows, columns=[*by, *SELECTION_COLUMNS])


def _left_out(without_select: int, on_test: int) -> str:
    """The selection table's note of the runs of a cell that were not candidates."""
    parts = [f"{without_select} without select"] if without_select else []
    parts += [f"{on_test} validated on the test split"] if on_test else []
    return ", ".join(parts) or "none"


def majority(cells: pd.Series, values: pd.Series, start: pd.Series) -> pd.Series:
    """Per run, its cell's most frequent value; ties go to the value of the most recent run.

    Vectorised (one groupby) so that thousands of runs cost milliseconds.
    """
    tally = pd.DataFrame({"cell": cells.values, "value": values.values, "start": start.astype(float).values})
    tally = tally.groupby(["cell", "value"], sort=False).agg(count=("start", "size"), last=("start", "max"))
    best = tally.sort_values(["count", "last"], ascending=False).reset_index().drop_duplicates("cell")
    return pd.Series(cells.map(best.set_index("cell")["value"]).values, index=values.index)


def _param_diff(run: pd.Series, ref: pd.Series) -> str:
    keys = [c for c in run.index if c.startswith("params.") and c not in SEED_PARAMS
            and str(run[c]) != str(ref[c]) and not (pd.isna(run[c]) and pd.isna(ref[c]))]
    shown = [f"{k[len('params.'):]}={run[k]} (majority {ref[k]})" for k in keys[:4]]
    return "; ".join(shown) + (f"; +{len(keys) - 4} more" if len(keys) > 4 else "")


def consistency(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Runs that differ from their cell's majority: run_id, cell, kind (config | code | model), detail."""
    columns = ["run_id", "run_name", "cell", "kind", "detail", *by]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    cells = cell_labels(frame, by)
    start = column(frame, "start_time", 0).fillna(0)
    keys = config_key(frame)
    commits = column(frame, COMMIT_TAG).fillna("unknown").astype(str)
    lineage = [frame[tag].fillna("").astype(str) for tag in sorted(frame.columns) if LINEAGE_URI.fullmatch(str(tag))]
    models = pd.Series([", ".join(u for u in uris if u) for uris in zip(*lineage)] if lineage else "",
                       index=frame.index, dtype=object)
    major_key, major_commit = majority(cells, keys, start), majority(cells, commits, start)
    major_models = majority(cells, models, start)
    rows: list[dict[str, object]] = []
    for i in frame.index[keys != major_key]:  # few: detail row by row
        ref = frame.loc[(cells == cells[i]) & (keys == major_key[i])].iloc[0]
        rows.append(dict(kind="config", detail=_param_diff(frame.loc[i], ref), index=i))
    for i in frame.index[commits != major_commit]:
        rows.append(dict(kind="code", detail=f"commit {commits[i][:12]} (majority {major_commit[i][:12]})", index=i))
    for i in frame.index[(models != major_models) & (keys == major_key)]:  # a config flag already says more
        rows.append(dict(kind="model", detail=f"loaded {models[i] or 'no registered model'} "
                                              f"(majority {major_models[i] or 'none'})", index=i))
    out = pd.DataFrame(rows, columns=["kind", "detail", "index"])
    picked = frame.loc[out["index"]]
    out = out.assign(run_id=picked["run_id"].values, run_name=column(picked, "run_name").values,
                     cell=cells[out["index"]].values, **{k: picked[k].values for k in by})
    return out[columns].reset_index(drop=True)


def drop_flagged(frame: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """``--strict``: keep only the runs that agree with their cell's majority."""
    return frame[~frame["run_id"].isin(set(flags["run_id"]))] if len(flags) else frame


def flag_notes(flags: pd.DataFrame, row_key: str, label_key: str | None = None) -> pd.Series:
    """Per table row (``row_key``): "! 1 config, 2 code" style notes for the flagged cells."""
    if flags.empty:
        return pd.Series(dtype=object)

    def note(group: pd.DataFrame) -> str:
        parts = []
        for label, sub in group.groupby(label_key, sort=False) if label_key else [("", group)]:
            kinds = sub.groupby("kind")["run_id"].nunique()
            text = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
            parts.append(f"{label}: {text}" if label else text)
        return "! " + "; ".join(parts) + " (see flags)"

    return flags.groupby(row_key, sort=False).apply(note, include_groups=False)


def fmt_stat(mean: float, std: float, n: int, digits: int = 2) -> str:
    """``95.00 ± 1.20 (n=3)``; ``—`` when there are no runs."""
    if not n or pd.isna(mean):
        return "—"
    spread = f" ± {std:.{digits}f}" if pd.notna(std) else ""
    return f"{mean:.{digits}f}{spread} (n={n})"
