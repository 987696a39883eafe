"""The claims table: each paper's headline claims, ours beside them, with a verdict.

One row per claim and scope, computed from the runs alone (the paper's figures come from
``reference/``):

- V2S, per Table 2 dataset and spec, for each reprogrammed source column (V2S_a, V2S_u):
  *beats TF_a* (paired by seed) and *reaches the paper's accuracy* (within
  :data:`MATCH_MARGIN` points, or above).
- AT, per analogue (task setting, spec, orthogonal model): *beats the baseline* at the layer
  chosen on validation (paired by seed), and *gains on average over the layers* (the
  paper's per-layer curve at the same blocks, conv k = its block k; IEMOCAP analogues
  only: the paper has no per-layer numbers for the others).
- a gain claim exists only where the paper shows a gain (V2S and TF_a both at 100 on FordA
  make no "beats" claim).

Verdicts, on two-sided 95 % t intervals:

- a gain claim is **reproduced** when the interval of the paired difference lies above 0;
  **not reproduced** when it does not, and lies below the paper's own gain (a gain of the
  paper's size is excluded); otherwise **inconclusive**, with the seeds a paired t-test
  needs to detect the paper's gain at p < 0.05 with 80 % power, from the spread of the
  differences (:func:`xferlab.report.power.seeds_needed`).
- a level claim is **reproduced** when the interval of our mean lies at or above the
  paper's figure minus the margin, **not reproduced** when it lies below that, otherwise
  **inconclusive**, with the seeds needed to tell, from the spread and the distance to it.
- fewer than two seeds give no interval: inconclusive, "needs 2+ seeds".
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from xferlab.report import at_tables, papers
from xferlab.report.power import differences_by_group, seeds_needed
from xferlab.report.query import column, seed

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
MATCH_MARGIN = 2.0  # points: "reaches the paper's accuracy" allows this much below it
MIN_GAIN = 0.0  # a gain claim exists only where the paper's own gain is above this (points)
GAIN, LEVEL = "gain (points)", "accuracy (%)"  # what paper_figure, ours and the interval measure
COLUMNS = ["paper", "claim", "scope", "spec", "measure", "paper_figure", "ours", "ci_low", "ci_high", "n", "p", "verdict",
           "seeds_needed", "detail"]
STAT = ["n", "diff", "sd", "ci_low", "ci_high", "p"]  # what power.differences_by_group gives per group
V2S_COLUMNS = ("v2s_a", "v2s_u")  # reprogrammed sources compared with the paper; TF_a is their foil
ONE_SEED = "one seed: an interval needs 2 or more"
NO_PAIR = "no pair: no run of the other side with the same task setting and seed"


def gain_verdict(stat: pd.Series, paper_gain: float) -> tuple[str, float, str]:
    """(verdict, seeds needed, why) for "X beats Y by the paper's ``paper_gain``" from the
    paired difference ``stat`` (n, diff, sd, ci_low, ci_high)."""
    if stat["n"] == 0:
        return INCONCLUSIVE, math.nan, NO_PAIR
    if stat["n"] < 2 or not np.isfinite(stat["ci_low"]):
        return INCONCLUSIVE, math.nan, ONE_SEED
    low, high = float(stat["ci_low"]), float(stat["ci_high"])
    if low > 0:
        smaller = f", smaller than the paper's {paper_gain:+.1f} (above the interval)" if high < paper_gain else ""
        return REPRODUCED, math.nan, f"the interval lies above 0{smaller}"
    if high < paper_gain:
        return NOT_REPRODUCED, math.nan, f"no gain shown and the paper's {paper_gain:+.1f} lies above the interval"
    need = float(seeds_needed(paper_gain, float(stat["sd"])))
    return INCONCLUSIVE, need, f"the interval holds 0 and the paper's {paper_gain:+.1f}"


def level_verdict(stat: pd.Series, margin: float = MATCH_MARGIN) -> tuple[str, float, str]:
    """(verdict, seeds needed, why) for "ours reaches the paper's figure within ``margin``"
    from ``stat``: ours minus the paper's figure over seeds (n, diff, sd, ci_low, ci_high)."""
    if stat["n"] < 2 or not np.isfinite(stat["ci_low"]):
        return INCONCLUSIVE, math.nan, ONE_SEED
    if stat["ci_low"] >= -margin:
        return REPRODUCED, math.nan, f"the interval lies above the paper's figure - {margin:g}"
    if stat["ci_high"] < -margin:
        return NOT_REPRODUCED, math.nan, f"the interval lies below the paper's figure - {margin:g}"
    need = float(seeds_needed(abs(float(stat["diff"]) + margin), float(stat["sd"])))
    return INCONCLUSIVE, need, f"the interval holds the paper's figure - {margin:g}"


def _row(paper: str, claim: str, scope: str, spec: str, figure: float, ours: float, stat: pd.Series,
         verdict: tuple[str, float, str], detail: str = "", measure: str = GAIN) -> dict[str, object]:
    word, need, why = verdict
    return {"paper": paper, "claim": claim, "scope": scope, "spec": spec, "measure": measure,
            "paper_figure": figure, "ours": ours,
            "ci_low": stat["ci_low"], "ci_high": stat["ci_high"], "n": int(stat["n"]), "p": stat["p"],
            "verdict": word, "seeds_needed": need, "detail": "; ".join(x for x in (why, detail) if x)}


# -- Voice2Series ------------------------------------------------------------------------

def _v2s_seeds(prepared: pd.DataFrame) -> pd.DataFrame:
    """Mean test accuracy per spec, dataset, paper column and seed."""
    runs = prepared[prepared["column"].notna()]
    runs = runs.assign(spec=column(runs, "tags.xferlab.spec").fillna("?").astype(str), seed=seed(runs))
    return runs.groupby(["spec", "dataset", "column", "seed"])["acc"].mean().reset_index()


def v2s_claims(prepared: pd.DataFrame) -> list[dict[str, object]]:
    """V2S rows from the prepared Table 2 runs (:func:`v2s_tables.prepare`, after the
    selection on validation)."""
    if prepared.empty:
        return []
    ref = papers.load("v2s_table2").set_index("dataset")
    seeds = _v2s_seeds(prepared)
    seeds = seeds[seeds["dataset"].isin(ref.index)]  # a claim needs the paper's figure
    rows: list[dict[str, object]] = []
    for col in V2S_COLUMNS:
        mine = seeds[seeds["column"] == col]
        if mine.empty:
            continue
        label = papers.COLUMN_LABELS[col]
        level = differences_by_group(mine.assign(d=mine["acc"] - mine["dataset"].map(ref[col])), ["spec", "dataset"], "d")
        for stat in level.to_dict("records"):
            figure = float(ref.loc[stat["dataset"], col])
            rows.append(_row("V2S", f"{label} reaches the paper's test accuracy (within {MATCH_MARGIN:g} points)",
                             stat["dataset"], stat["spec"], figure, figure + stat["diff"],
                             _shifted(stat, figure), level_verdict(pd.Series(stat)), measure=LEVEL))
        tf = seeds[seeds["column"] == "tf_a"][["spec", "dataset", "seed", "acc"]].rename(columns={"acc": "tf"})
        pairs = mine.merge(tf, on=["spec", "dataset", "seed"], how="inner")
        for stat in differences_by_group(pairs.assign(d=pairs["acc"] - pairs["tf"]), ["spec", "dataset"], "d").to_dict("records"):
            gain = float(ref.loc[stat["dataset"], col] - ref.loc[stat["dataset"], "tf_a"])
            if not gain > MIN_GAIN:
                continue  # the paper shows no gain here (e.g. FordA: both 100): there is no claim to test
            rows.append(_row("V2S", f"{label} beats TF_a (test points, paired by seed)", stat["dataset"], stat["spec"],
                             gain, stat["diff"], pd.Series(stat), gain_verdict(pd.Series(stat), gain)))
    return rows


def _shifted(stat: dict[str, object], figure: float) -> pd.Series:
    """A level claim's interval shown as accuracy (ours), not as the distance to the paper."""
    out = pd.Series(stat)
    out["ci_low"], out["ci_high"] = figure + out["ci_low"], figure + out["ci_high"]
    return out


# -- anti-transfer ----------------------------------------------------------------------

def _paper_gain(summary_row: pd.Series, cond: str) -> float:
    """The paper's test gain for the row's analogue: AT (same-dataset orthogonal model) or
    dual AT minus baseline; NaN where the paper has no such figure."""
    base = summary_row.get("paper_baseline_test", math.nan)
    other = summary_row.get("paper_dual_at_test" if cond == "dual_at" else "paper_at_test", math.nan)
    return float(other) - float(base) if pd.notna(base) and pd.notna(other) else math.nan


def paper_layer_gains(paper_task: str) -> pd.Series:
    """The paper's per-layer test gains (points, by block) for an IEMOCAP analogue; empty
    for tasks without per-layer numbers."""
    if not paper_task.startswith("speech_emotion"):
        return pd.Series(dtype=float)
    split = "speaker" if paper_task.endswith("speaker_wise") else "random"
    ref = papers.load("at_per_layer_iemocap").set_index("block")
    return ref[f"test_iemo_{split}"] - papers.PER_LAYER_BASELINES[("test", split)]


def _same_analogue(frame: pd.DataFrame, key: pd.Series, cond: str) -> pd.Series:
    """Rows of ``frame`` (per-layer table or seed pairs) of the summary row ``key``'s task
    setting, spec and model, in condition ``cond``, at a layer."""
    cols = [*at_tables.TASK, "spec", "ref_model"]
    return (frame[cols] == key[cols]).all(axis=1) & (frame["condition"] == cond) & frame["layer"].notna()


def _layer_stat(row: pd.Series) -> pd.Series:
    return pd.Series({"n": row["test_pairs"] if pd.notna(row["test_pairs"]) else 0, "diff": row["test_diff"],
                      "sd": row["test_diff_sd"], "ci_low": row["test_diff_ci_low"],
                      "ci_high": row["test_diff_ci_high"], "p": row["test_p_paired"]})


def at_claims(summary: pd.DataFrame, layers: pd.DataFrame, pairs: pd.DataFrame) -> list[dict[str, object]]:
    """AT rows from the report's AT summary, per-layer table and per-seed pairs (:mod:`at_tables`)."""
    rows: list[dict[str, object]] = []
    for _, key in summary.iterrows() if len(summary) else []:
        if not key.get("paper_task"):
            continue
        scope = f"{at_tables.setting_label(key)} vs {key['ref_model']}"
        for cond in at_tables.AT_CONDITIONS:
            best, gain = key.get(f"{cond}_best_layer"), _paper_gain(key, cond)
            per_layer = layers[_same_analogue(layers, key, cond)].sort_values("layer")
            if pd.isna(best) or per_layer.empty or not np.isfinite(gain):
                continue
            name, tap = "AT" if cond == "at" else "dual AT", key[f"{cond}_best_tap"]
            chosen = _layer_stat(per_layer[(per_layer["layer"] == best) & (per_layer["tap"] == tap)].iloc[0])
            where = f"{'conv' if tap == 'conv' else 'paper tap'} {best:.0f}, chosen on {key[f'{cond}_best_on']}"
            rows.append(_row("AT", f"{name} beats the baseline (test points, paired by seed; layer {where})", scope,
                             key["spec"], gain, chosen["diff"], chosen, gain_verdict(chosen, gain),
                             f"paper analogue {key['paper_task']}"))
            conv = per_layer[per_layer["tap"] == "conv"]
            paper_layers = paper_layer_gains(str(key["paper_task"])).reindex(conv["layer"].astype(int)).dropna()
            if cond == "at" and len(paper_layers) > 1:
                conv = conv[conv["layer"].astype(int).isin(paper_layers.index)]
                mine = pairs[_same_analogue(pairs, key, cond) & (pairs["tap"] == "conv")]
                rows.append(layers_mean_row(conv, mine[mine["layer"].isin(conv["layer"])], paper_layers, scope,
                                            str(key["spec"])))
    return rows


def layers_mean_row(per_layer: pd.DataFrame, pairs: pd.DataFrame, paper_layers: pd.Series, scope: str,
                    spec: str) -> dict[str, object]:
    """The paper's per-layer curve as one gain claim: AT gains on average over the layers.
    Per seed, the mean over the layers of AT minus baseline (only seeds run at every one of
    them), then paired as any gain. The paper's figure is the mean of its gains at the same
    blocks (conv k = its block k; its curve dips below 0 at some blocks)."""
    complete = pairs.dropna(subset=["d"]).groupby("seed").filter(lambda g: g["layer"].nunique() == len(per_layer))
    per_seed = complete.groupby("seed")["d"].mean().rename("d").reset_index().assign(cell=0)
    stat = pd.Series(differences_by_group(per_seed, ["cell"], "d").iloc[0]) if len(per_seed) else \
        pd.Series(math.nan, index=STAT).fillna({"n": 0})
    figure = float(paper_layers.mean())
    verdict = gain_verdict(stat, figure)
    if stat["n"] < 2:
        verdict = (INCONCLUSIVE, math.nan, f"{int(stat['n'])} seed(s) run at every layer: an interval needs 2 or more")
    shown = "; ".join(f"conv {r['layer']:.0f} {r['test_diff']:+.1f} (n={int(r['test_pairs'] or 0)})"
                      for _, r in per_layer.iterrows() if pd.notna(r["test_diff"]))
    blocks = ", ".join(f"{b}" for b in paper_layers.index)
    paper = (f"paper at the same blocks ({blocks}): {paper_layers.min():+.1f} to {paper_layers.max():+.1f}, "
             f"gains at {int((paper_layers > 0).sum())} of {len(paper_layers)}")
    return _row("AT", f"AT gains on average over the layers (the per-layer curve; {len(per_layer)} layers)", scope,
                spec, figure, stat["diff"], stat, verdict, f"{paper}; ours per layer (all seeds): {shown}")


def claims(v2s_prepared: pd.DataFrame, at_summary: pd.DataFrame, at_layers: pd.DataFrame,
           at_pairs: pd.DataFrame) -> pd.DataFrame:
    """The claims table (:data:`COLUMNS`), V2S rows then AT rows."""
    rows = v2s_claims(v2s_prepared) + at_claims(at_summary, at_layers, at_pairs)
    return pd.DataFrame(rows, columns=COLUMNS)


def tally(table: pd.DataFrame) -> str:
    """"2 reproduced, 1 not reproduced, 5 inconclusive" (the verdicts that occur)."""
    counts = table["verdict"].value_counts()
    return ", ".join(f"{int(counts[v])} {v}" for v in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE) if v in counts)
