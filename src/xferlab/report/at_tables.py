"""Anti-transfer tables as pure functions: runs DataFrame -> table DataFrame.

Grouping: target task (``data.dataset``) and split (``data.split``), condition (tag
``xferlab.condition``: baseline | weight_init | at | dual_at) and the model it is measured
against (the orthogonal model for AT, the initialising one for weight-init). Accuracies
in percent, mean +- std over repetitions (seeds). The "best layer" is chosen on
validation accuracy, not on test accuracy, so the headline number is not a test-set
maximum; "mean over layers" averages the per-layer means.

The paper's numbers sit beside ours through an explicit analogue map (synthetic style
task ~ IEMOCAP emotion, synthetic digits ~ Google Speech Commands digits); the
``paper_task`` column says which paper row a row is compared with.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from xferlab.report import papers
from xferlab.report.frames import aggregate
from xferlab.report.query import column, metric, seed

# A target task setting: what a baseline is comparable within (the model width and head and
# the synthetic corpus profile change the task as much as the dataset does).
TASK = ["task", "split", "confound", "style_strength", "width", "profile", "dropout", "head_init", "norm",
        "magnitude", "masks"]
# A cell: one experiment (spec) of one condition at one layer (and the layer's tap mode).
# The spec is part of it, so two experiments are never averaged into one number, even
# with equal settings.
CELL = [*TASK, "spec", "condition", "ref_model", "tap", "layer"]
AT_CONDITIONS = ("at", "dual_at")
# One line of a figure over confound values or layers: one experiment of one task setting
# (so a log-magnitude experiment never joins a linear one's line).
SWEEP = [c for c in TASK if c != "confound"] + ["spec", "ref_model"]


def _condition(runs: pd.DataFrame) -> pd.Series:
    enabled = column(runs, "params.at.enabled").astype(str).str.lower() == "true"
    init = ~column(runs, "params.init.from").astype(str).isin(["None", "", "nan", "none"])
    derived = np.where(enabled, np.where(init, "dual_at", "at"), np.where(init, "weight_init", "baseline"))
    return column(runs, "tags.xferlab.condition").fillna(pd.Series(derived, index=runs.index))


def _masks(runs: pd.DataFrame) -> pd.Series:
    """The SpecAugment-style masks of the training batches, e.g. ``freq 2x0.15, time 2x0.1``;
    empty when off (absent params: off, the options came later)."""
    parts = []
    for key, width in (("freq", 0.15), ("time", 0.1)):
        count = pd.to_numeric(column(runs, f"params.train.mask_{key}"), errors="coerce").fillna(0).astype(int)
        frac = pd.to_numeric(column(runs, f"params.train.mask_{key}_width"), errors="coerce").fillna(width)
        parts.append([f"{key} {c}x{f:g}" if c > 0 else "" for c, f in zip(count, frac)])
    return pd.Series([", ".join(p for p in pair if p) for pair in zip(*parts)], index=runs.index, dtype=object)


def prepare(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs + task, split, condition, ref_model, layer and accuracies in percent."""
    cond = _condition(runs)
    orth = column(runs, "params.at.orthogonal").fillna("").astype(str)
    init = column(runs, "params.init.from").fillna("").astype(str)
    ref_model = np.where(cond.isin(AT_CONDITIONS), orth, np.where(cond == "weight_init", init, ""))
    layer = pd.to_numeric(column(runs, "params.at.layer"), errors="coerce").where(cond.isin(AT_CONDITIONS))
    return runs.assign(task=column(runs, "params.data.dataset").fillna("?").astype(str),
                       split=column(runs, "params.data.split").fillna("default").astype(str),
                       confound=pd.to_numeric(column(runs, "params.data.confound"), errors="coerce").fillna(0.0),
                       width=pd.to_numeric(column(runs, "params.model.width"), errors="coerce").fillna(0.0),
                       profile=column(runs, "params.data.profile").fillna("").astype(str),
                       style_strength=pd.to_numeric(column(runs, "params.data.style_strength"),
                                                    errors="coerce").fillna(1.0),
                       # absent = the default (the options came after runs were recorded)
                       dropout=pd.to_numeric(column(runs, "params.model.dropout"), errors="coerce").fillna(0.5),
                       head_init=column(runs, "params.model.head_init").fillna("torchvision").astype(str),
                       norm=column(runs, "params.model.norm").fillna("none").astype(str),
                       magnitude=column(runs, "params.model.magnitude").fillna("linear").astype(str),
                       masks=_masks(runs), spec=column(runs, "tags.xferlab.spec").fillna("?").astype(str),
                       condition=cond, ref_model=ref_model, layer=layer,
                       tap=column(runs, "params.at.tap").fillna("conv").astype(str).where(cond.isin(AT_CONDITIONS), ""),
                       seed=seed(runs),
                       test=metric(runs, "test_accuracy") * 100, train=metric(runs, "best_train_accuracy") * 100,
                       val=metric(runs, "best_val_accuracy") * 100)


def at_layers(prepared: pd.DataFrame, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per task/split/condition/model/layer: test, train and val accuracy, and the gain over
    the baseline of the same task and split (AT minus baseline, points), and the paired
    columns (:data:`PAIRED`). ``pairs``: :func:`seed_pairs` of ``prepared`` when the caller has it."""
    keys = CELL
    table = aggregate(prepared, keys, "test", "test_")
    for split_name in ("train", "val"):
        table = table.merge(aggregate(prepared, keys, split_name, f"{split_name}_"), on=keys, how="left")
    table = _with_baseline(table, prepared)
    table["test_gain"] = table["test_mean"] - table["baseline_test"]
    table["train_gain"] = table["train_mean"] - table["baseline_train"]
    table.loc[table["condition"] == "baseline", ["test_gain", "train_gain"]] = np.nan
    table = table.join(_paired(table, seed_pairs(prepared) if pairs is None else pairs))
    return table.sort_values(keys, na_position="first").reset_index(drop=True)


PAIRED = ["test_pairs", "test_diff", "test_diff_sd", "test_diff_ci_low", "test_diff_ci_high", "test_p_paired", "seeds_for_paper_gain"]


def paper_gain() -> float:
    """The paper's headline AT gain in test points (IEMOCAP speaker-wise, AT pretrained on
    the same dataset minus baseline), read from its table: what a comparison must detect."""
    head = papers.load("at_headline")
    hit = head[(head["task"] == "speech_emotion") & (head["split"] == "speaker_wise")].iloc[0]
    return float(hit["at_same_dataset_test_acc"] - hit["baseline_test_acc"])


def seed_pairs(prepared: pd.DataFrame) -> pd.DataFrame:
    """Per AT cell and seed: its test accuracy and ``d``, AT minus the baseline of the same
    seed (the baseline of the cell's spec, else of the task setting's only baseline spec, as
    :func:`_with_baseline`; NaN without one). Vectorised: the catalogue has hundreds of cells."""
    at = prepared[prepared["condition"].isin(AT_CONDITIONS)]
    if at.empty:
        return pd.DataFrame(columns=[*CELL, "seed", "test", "d"])
    base = prepared[prepared["condition"] == "baseline"]
    own = base.groupby([*TASK, "spec", "seed"])["test"].mean().rename("own").reset_index()
    has_own = base[[*TASK, "spec"]].drop_duplicates().assign(has_own=True)
    n_specs = base.groupby(TASK)["spec"].transform("nunique")
    only = base[n_specs == 1].groupby([*TASK, "seed"])["test"].mean().rename("only").reset_index()
    pairs = (at.groupby([*CELL, "seed"], dropna=False)["test"].mean().reset_index()
             .merge(own, on=[*TASK, "spec", "seed"], how="left").merge(only, on=[*TASK, "seed"], how="left")
             .merge(has_own, on=[*TASK, "spec"], how="left"))
    pairs["d"] = pairs["test"] - pairs["own"].where(pairs["has_own"].eq(True), pairs["only"])
    return pairs[[*CELL, "seed", "test", "d"]]


def _paired(table: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per AT row, from its :func:`seed_pairs`: pairs, mean difference and its spread, 95 %
    interval, paired t-test p, and the seeds a paired test would need to detect the
    paper's gain at p < 0.05 with 80 % power, given the spread of these differences."""
    from xferlab.report.power import differences_by_group, seeds_needed

    out = pd.DataFrame(np.nan, index=table.index, columns=PAIRED)
    if pairs.empty:
        return out
    stats = differences_by_group(pairs, CELL, "d")
    stats["seeds"] = seeds_needed(paper_gain(), stats["sd"].to_numpy(float))
    found = table[CELL].reset_index().merge(stats, on=CELL, how="inner").set_index("index")
    out.loc[found.index] = found[["n", "diff", "sd", "ci_low", "ci_high", "p", "seeds"]].to_numpy(float)
    out.loc[~table["condition"].isin(AT_CONDITIONS)] = np.nan
    return out


def _with_baseline(table: pd.DataFrame, prepared: pd.DataFrame) -> pd.DataFrame:
    """``baseline_test``/``baseline_train`` per row: the baseline of the row's own spec, else
    the task setting's baseline when exactly one spec has one (the catalogue keeps baselines
    in specs of their own), else none: two baseline experiments are never pooled."""
    base = prepared[prepared["condition"] == "baseline"].groupby([*TASK, "spec"])[["test", "train"]].mean()
    base = base.rename(columns={"test": "baseline_test", "train": "baseline_train"}).reset_index()
    own = table.merge(base, on=[*TASK, "spec"], how="left")
    single = base[base.groupby(TASK)["spec"].transform("nunique") == 1].drop(columns="spec")
    other = table.merge(single, on=TASK, how="left")
    for col in ("baseline_test", "baseline_train"):
        own[col] = own[col].fillna(other[col])
    return own


def _pick(layers: pd.DataFrame, cond: str, ref: str) -> dict[str, object]:
    """Best layer (by validation) and mean over layers for one condition and model."""
    sub = layers[(layers["condition"] == cond) & (layers["ref_model"] == ref)]
    if sub.empty:
        return {}
    score = sub["val_mean"].where(sub["val_mean"].notna(), sub["test_mean"])
    best = sub.loc[score.idxmax()]
    return {f"{cond}_best_layer": best["layer"], f"{cond}_best_tap": best["tap"],
            f"{cond}_best_on": "validation" if pd.notna(best["val_mean"]) else "test (no validation accuracy)",
            f"{cond}_best_test_mean": best["test_mean"],
            f"{cond}_best_test_std": best["test_std"], f"{cond}_best_test_n": best["test_n"],
            f"{cond}_best_train_mean": best["train_mean"], f"{cond}_best_train_std": best["train_std"],
            f"{cond}_best_train_n": best["train_n"],
            f"{cond}_layers_test_mean": sub["test_mean"].mean(), f"{cond}_layers_test_n": int(len(sub)),
            f"{cond}_layers_train_mean": sub["train_mean"].mean(), f"{cond}_layers_train_n": int(len(sub))}


def _stat_cols(sub: pd.DataFrame, prefix: str) -> dict[str, object]:
    if sub.empty:
        return {}
    row = sub.iloc[0]
    return {f"{prefix}_test_mean": row["test_mean"], f"{prefix}_test_std": row["test_std"],
            f"{prefix}_test_n": row["test_n"], f"{prefix}_train_mean": row["train_mean"],
            f"{prefix}_train_std": row["train_std"], f"{prefix}_train_n": row["train_n"]}


def summary(prepared: pd.DataFrame, layers: pd.DataFrame | None = None) -> pd.DataFrame:
    """The headline table: per task, split and reference model, baseline / weight-init /
    AT (best layer, mean over layers) / dual AT, test and train, beside the paper.
    ``layers``: :func:`at_layers` of ``prepared`` when the caller has it already."""
    layers = at_layers(prepared) if layers is None else layers
    exp = [*TASK, "spec"]  # one row per experiment and reference model
    refs = layers[layers["condition"] != "baseline"][[*exp, "ref_model"]].drop_duplicates()
    bare = layers[exp].drop_duplicates().merge(refs[exp].drop_duplicates(), how="left", indicator=True)
    bare = bare[bare["_merge"] == "left_only"][exp]
    # a baseline-only experiment is shown beside AT instead of as a row of its own only where an
    # AT experiment of its task setting has no baseline and borrows it: the setting's only one
    # (_baseline_rows)
    base = layers[layers["condition"] == "baseline"][exp].drop_duplicates()
    borrowers = refs[~refs[exp].apply(tuple, axis=1).isin(set(base.apply(tuple, axis=1)))] if len(refs) else refs
    lent = base.groupby(TASK, dropna=False)["spec"].transform("nunique") == 1
    lent = set(base[lent][TASK].apply(tuple, axis=1)) & set(borrowers[TASK].apply(tuple, axis=1))
    bare = bare[~bare[TASK].apply(tuple, axis=1).isin(lent)]
    keys = pd.concat([refs, bare.assign(ref_model="")])
    rows = []
    for key in keys.to_dict("records"):
        same_task = (layers[TASK] == pd.Series({k: key[k] for k in TASK})).all(axis=1)
        here = layers[same_task & (layers["spec"] == key["spec"])]
        row: dict[str, object] = dict(key)
        row.update(_stat_cols(_baseline_rows(layers[same_task], key["spec"]), "baseline"))
        row.update(_stat_cols(here[(here["condition"] == "weight_init") & (here["ref_model"] == key["ref_model"])],
                              "weight_init"))
        for cond in AT_CONDITIONS:
            row.update(_pick(here, cond, key["ref_model"]))
        row.update(paper_row(key["task"], key["split"]))
        rows.append(row)
    table = pd.DataFrame(rows)
    for cond in AT_CONDITIONS:
        if f"{cond}_best_test_mean" in table and "baseline_test_mean" in table:
            table[f"{cond}_gain_test"] = table[f"{cond}_best_test_mean"] - table["baseline_test_mean"]
    return table


def _baseline_rows(task_layers: pd.DataFrame, spec: str) -> pd.DataFrame:
    """The baseline of ``spec``, else the only spec's baseline of this task setting, else none."""
    base = task_layers[task_layers["condition"] == "baseline"]
    own = base[base["spec"] == spec]
    return own if len(own) or base["spec"].nunique() != 1 else base


def task_label(task: str, split: str, confound: float) -> str:
    """``synth/style_speakersplit confound 0.8``: the split only when not the default."""
    text = task if split in ("default", "") else f"{task} / {split}"
    return text + (f" confound {confound:g}" if confound else "")


def setting_label(row: "pd.Series | dict") -> str:
    """``synth/style_speakersplit confound 0.8 (log magnitude, style strength 2)``: a task
    setting as every table, figure and note names it."""
    return f"{task_label(row['task'], row['split'], row['confound'])}{variant_label(row)}"


def variant_label(row: "pd.Series | dict") -> str:
    """`` (log magnitude, batch norm, style strength 2)``: the offline-analogue variants a task setting uses,
    so that no row of them reads as the paper's network; empty for the paper's."""
    parts = [text for key, paper, text in (("magnitude", "linear", "log magnitude"), ("norm", "none", "batch norm"))
             if str(row.get(key, paper)) != paper]
    strength = float(row.get("style_strength", 1.0))
    if strength != 1.0:
        parts.append(f"style strength {strength:g}")
    return f" ({', '.join(parts)})" if parts else ""


def paper_task(task: str, split: str) -> tuple[str, str] | None:
    """The paper's (task, split) a run's task is compared with, or None."""
    t, s = task.lower(), split.lower()
    if "style" in t or "iemocap" in t or "emotion" in t:
        return "speech_emotion", "random" if ("random" in t or s == "random") else "speaker_wise"
    if "good" in t:
        return "sound_goodness", "instrument_wise" if "instrument" in (t + s) else "random"
    if "digit" in t:
        return "digits", "noisy_more" if "verynoisy" in t else ("noisy" if "noisy" in t else "clean")
    return None


_TRAIN_TASK = {"speech_emotion": "IEMOCAP emotion", "sound_goodness": "Good-Sounds goodness", "digits": "GSC digits"}
_GSC_ROWS = {"clean": 0, "noisy": 1, "noisy_more": 2}


def paper_row(task: str, split: str) -> dict[str, object]:
    """The paper's columns for a task: baseline / AT / alternative AT / dual AT, test & train."""
    found = paper_task(task, split)
    if found is None:
        return {"paper_task": ""}
    ptask, psplit = found
    out: dict[str, object] = {"paper_task": f"{ptask} / {psplit}"}
    if ptask == "digits":
        gsc = papers.load("at_gsc").iloc[_GSC_ROWS[psplit]]
        out.update(paper_baseline_test=gsc["baseline_test_acc"], paper_at_test=gsc["single_at_a"],
                   paper_at_alt_test=gsc["single_at_b"], paper_dual_at_test=gsc["dual_at"])
    else:
        head = papers.load("at_headline")
        hit = head[(head["task"] == ptask) & (head["split"] == psplit)].iloc[0]
        out.update(paper_baseline_test=hit["baseline_test_acc"], paper_at_test=hit["at_same_dataset_test_acc"],
                   paper_at_alt_test=hit["at_bigger_dataset_test_acc"])
    train = papers.load("at_train_acc")
    hit = train[(train["task"] == _TRAIN_TASK[ptask]) & (train["split"] == psplit)]
    if len(hit):
        out.update(paper_baseline_train=hit.iloc[0]["baseline_train_acc"], paper_at_train=hit.iloc[0]["at_train_acc"])
    return out


def paper_boost() -> pd.DataFrame:
    """The paper's "test accuracy boost" bars, recomputed from its headline numbers."""
    head = papers.load("at_headline")
    same = head["at_same_dataset_test_acc"] - head["baseline_test_acc"]
    bigger = head["at_bigger_dataset_test_acc"] - head["baseline_test_acc"]
    both = pd.concat([same, bigger])
    task2 = pd.concat([head["task"], head["task"]])
    rows = [("overall", both.mean()), ("speech emotion", both[task2 == "speech_emotion"].mean()),
            ("sound goodness", both[task2 == "sound_goodness"].mean()),
            ("pretrain on bigger dataset", bigger.mean()), ("pretrain on same dataset", same.mean())]
    return pd.DataFrame(rows, columns=["label", "boost"])


def our_boost(table: pd.DataFrame) -> pd.DataFrame:
    """Ours: AT (best layer and mean over layers) minus baseline test accuracy per row."""
    if table.empty or "at_best_test_mean" not in table:
        return pd.DataFrame(columns=["label", "best_layer", "mean_layers"])
    rows = table[table["at_best_test_mean"].notna() & table["baseline_test_mean"].notna()]
    labels = [f"{row['spec']}: {setting_label(row)}\nvs {row['ref_model']}" for row in rows.to_dict("records")]
    return pd.DataFrame({"label": labels,
                         "best_layer": rows["at_best_test_mean"] - rows["baseline_test_mean"],
                         "mean_layers": rows["at_layers_test_mean"] - rows["baseline_test_mean"]})
