"""Report table builders on hand-made run frames, against values worked out by hand.

The frames use ``mlflow.search_runs`` column names (``metrics.*``, ``params.*``,
``tags.*``), which is what the report fetches; no MLflow store is touched here.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from xferlab.report import at_tables, at_xlsx, frames, papers, tuning, v2s_ablations, v2s_tables, writers
from xferlab.report.query import Query


def v2s_run(i: int, dataset: str, acc: float, source: str = "attrnn", method: str = "v2s", seed: int = 0,
            **extra: object) -> dict[str, object]:
    run = {"run_id": f"r{i}", "run_name": f"run {i}", "start_time": 1000 + i, "status": "FINISHED",
           "tags.xferlab.dataset": f"ucr/{dataset}", "tags.xferlab.role": "final", "tags.xferlab.table": "v2s_table2",
           "tags.xferlab.git_commit": "abc", "params.model.source": source, "params.model.method": method,
           "params.seed": str(seed), "params.train.epochs": "100", "metrics.test_accuracy": acc}
    run.update(extra)
    return run


@pytest.fixture()
def table2_runs() -> pd.DataFrame:
    runs = [v2s_run(1, "Coffee", 0.90, seed=0), v2s_run(2, "Coffee", 1.00, seed=1),
            v2s_run(3, "GunPoint", 0.80), v2s_run(4, "Trace", 0.70),
            v2s_run(5, "Coffee", 0.50, method="tf_a"),
            v2s_run(6, "ArrowHead", 0.60, **{"tags.xferlab.n_classes": "3"})]
    return v2s_tables.prepare(pd.DataFrame(runs))


def row(table: pd.DataFrame, dataset: str) -> pd.Series:
    return table[table["dataset"] == dataset].iloc[0]


# -- aggregation -------------------------------------------------------------------------
def test_stats_mean_sample_std_and_count():
    mean, std, n = frames.stats(pd.Series([1.0, 2.0, np.nan, 4.0]))
    assert (mean, n) == (pytest.approx(7 / 3), 3)
    assert std == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert math.isnan(frames.stats(pd.Series([5.0]))[1])  # one value: no spread
    assert frames.stats(pd.Series([], dtype=float))[2] == 0


def test_aggregate_groups():
    df = pd.DataFrame({"g": ["a", "a", "b"], "v": [1.0, 3.0, 5.0]})
    out = frames.aggregate(df, ["g"], "v", "x_").set_index("g")
    assert out.loc["a", "x_mean"] == 2.0 and out.loc["a", "x_std"] == pytest.approx(math.sqrt(2))
    assert out.loc["b", "x_n"] == 1 and math.isnan(out.loc["b", "x_std"])


# -- Table 2 ---------------------------------------------------------------------------------
def test_table2_per_dataset_cells(table2_runs):
    table = v2s_tables.table2(table2_runs)
    coffee = row(table, "Coffee")
    assert coffee["ours_v2s_a_mean"] == pytest.approx(95.0)
    assert coffee["ours_v2s_a_std"] == pytest.approx(math.sqrt(50.0))  # (90, 100): sample std 7.07
    assert coffee["ours_v2s_a_n"] == 2
    assert coffee["diff_v2s_a"] == pytest.approx(95.0 - 100.0)
    assert coffee["ours_tf_a_mean"] == pytest.approx(50.0) and coffee["diff_tf_a"] == pytest.approx(50 - 53.57)
    assert row(table, "GunPoint")["diff_v2s_a"] == pytest.approx(80.0 - 96.67)
    wine = row(table, "Wine")  # in the paper, no runs: kept, marked missing
    assert wine["ours_v2s_a_n"] == 0 and math.isnan(wine["ours_v2s_a_mean"]) and wine["paper_v2s_a"] == 90.74
    extra = row(table, "ArrowHead")  # not in the paper: appended, classes from the run tag
    assert extra["classes"] == 3 and math.isnan(extra["paper_sota"])


def test_table2_summary_rows_mean_median_mpce(table2_runs):
    table = v2s_tables.table2(table2_runs).set_index("dataset")
    same = "paper recomputed on our datasets"
    # ArrowHead (60 %) is not in the paper: a row of the table, never part of a summary, so
    # both sides of every summary row stand on the same datasets
    ours = [95.0, 80.0, 70.0]  # Coffee, GunPoint, Trace (V2S_a means)
    classes = [2, 2, 4]
    assert table.loc[f"mean ({same})", "ours_v2s_a_mean"] == pytest.approx(np.mean(ours))
    assert table.loc[f"median ({same})", "ours_v2s_a_mean"] == pytest.approx(80.0)
    mpce = np.mean([(100 - a) / k for a, k in zip(ours, classes)])  # 2.5, 10, 7.5
    assert table.loc[f"MPCE ({same})", "ours_v2s_a_mean"] == pytest.approx(mpce)
    assert table.loc[f"mean ({same})", "ours_v2s_a_n"] == 3
    assert table.loc["mean (paper as printed)", "ours_v2s_a_n"] == 3
    # the paper recomputed on the datasets it shares with ours
    assert table.loc[f"mean ({same})", "paper_v2s_a"] == pytest.approx(np.mean([100, 96.67, 100]))
    assert table.loc[f"MPCE ({same})", "paper_v2s_a"] == pytest.approx(np.mean([0 / 2, 3.33 / 2, 0 / 4]))
    printed = papers.load("v2s_table2_summary").set_index("statistic")
    assert table.loc["MPCE (paper as printed)", "paper_v2s_a"] == printed.loc["mpce", "v2s_a"] == 2.04
    assert table.loc["median (paper as printed)", "paper_sota"] == 92.36


def test_mpce_definition():
    assert v2s_tables.mpce(pd.Series([90.0, 70.0]), pd.Series([2, 3])) == pytest.approx((5 + 10) / 2)


def test_source_arch_from_lineage_beats_registered_name():
    runs = pd.DataFrame([v2s_run(1, "Coffee", 0.9, source="my-am", **{"tags.xferlab.source_run": "s1"}),
                         v2s_run(2, "Coffee", 0.9, source="models:/attrnn_unet/3")])
    sources = pd.DataFrame({"run_id": ["s1"], "params.model.arch": ["attrnn_tiny"]})
    prepared = v2s_tables.prepare(runs, sources)
    assert list(prepared["arch"]) == ["attrnn_tiny", "attrnn_unet"]
    assert list(prepared["column"]) == ["v2s_a", "v2s_u"]


# -- significance ------------------------------------------------------------------------
def test_paired_tests_worked_example():
    ours, paper = pd.Series([91.0, 92, 93, 94, 95]), pd.Series([90.0, 90, 90, 90, 90])
    out = v2s_tables.paired_tests(ours, paper)
    # differences 1..5 all positive: W- = 0; exact two-sided p = 2 / 2^5 (only all-+ and all-- as extreme)
    assert out["wilcoxon_stat"] == 0 and out["wilcoxon_p"] == pytest.approx(2 / 32)
    # paired t: mean 3, sample sd sqrt(2.5), t = 3 / (sqrt(2.5) / sqrt(5)) = 4.2426 with 4 df
    t = 3 / (math.sqrt(2.5) / math.sqrt(5))
    assert out["t_stat"] == pytest.approx(t)
    assert out["t_p"] == pytest.approx(2 * st.t.sf(t, df=4))
    assert out["n_datasets"] == 5 and out["mean_diff"] == 3


def test_paired_tests_degenerate_cases():
    same = v2s_tables.paired_tests(pd.Series([1.0, 2.0]), pd.Series([1.0, 2.0]))
    assert same["n_datasets"] == 2 and math.isnan(same["wilcoxon_p"]) and math.isnan(same["t_p"])
    one = v2s_tables.paired_tests(pd.Series([1.0, np.nan]), pd.Series([2.0, 3.0]))
    assert one["n_datasets"] == 1 and math.isnan(one["wilcoxon_p"])


def test_significance_uses_dataset_rows_only(table2_runs):
    sig = v2s_tables.significance(v2s_tables.table2(table2_runs)).set_index(["ours", "paper"])
    # V2S_a vs paper V2S_a over Coffee, GunPoint, Trace (ArrowHead has no paper value)
    assert sig.loc[("V2S_a", "V2S_a"), "n_datasets"] == 3
    assert sig.loc[("V2S_a", "V2S_a"), "mean_diff"] == pytest.approx(np.mean([95 - 100, 80 - 96.67, 70 - 100]))
    assert sig.loc[("V2S_u", "SOTA"), "n_datasets"] == 0


# -- Tables 3, 4, D.2 ---------------------------------------------------------------------
def test_table3_source_loss_by_lineage_and_swd_over_datasets():
    src = {"tags.xferlab.source_run": "s1"}
    runs = pd.DataFrame([v2s_run(1, "Coffee", 0.9, **src, **{"metrics.swd": 1.0}),
                         v2s_run(2, "Coffee", 0.9, **src, **{"metrics.swd": 3.0}),
                         v2s_run(3, "GunPoint", 0.9, **src, **{"metrics.swd": 4.0}),
                         v2s_run(4, "Trace", 0.9, **src, **{"metrics.swd": 10.0})])
    sources = pd.DataFrame({"run_id": ["s1", "s2"], "params.model.arch": ["attrnn", "attrnn"],
                            "metrics.best_val_loss": [0.25, 9.0], "tags.xferlab.registered_model": ["attrnn"] * 2,
                            "tags.xferlab.registered_version": ["1", "2"]})
    table = v2s_ablations.table3(v2s_tables.prepare(runs, sources), sources).set_index("model")
    assert table.loc["V2S_a", "ours_source_val_loss"] == 0.25  # only the source these runs used
    assert table.loc["V2S_a", "ours_mean_swd"] == pytest.approx((2.0 + 4.0 + 10.0) / 3)  # per-dataset means
    assert table.loc["V2S_a", "ours_median_swd"] == 4.0
    assert table.loc["V2S_a", "paper_mean_swd"] == 1.829 and table.loc["V2S_u", "ours_runs"] == 0


def test_table4_per_architecture():
    runs = pd.DataFrame([v2s_run(1, "Coffee", 0.9, source="tcn", **{"tags.xferlab.source_run": "t"}),
                         v2s_run(2, "Trace", 0.7, source="tcn", **{"tags.xferlab.source_run": "t"})])
    sources = pd.DataFrame({"run_id": ["t"], "params.model.arch": ["tcn"], "metrics.n_params": [2e6],
                            "metrics.test_accuracy": [0.95], "metrics.best_val_loss": [0.2]})
    table = v2s_ablations.table4(v2s_tables.prepare(runs, sources), sources).set_index("model")
    tcn = table.loc["V2S_t"]
    assert tcn["ours_params_m"] == 2.0 and tcn["ours_source_acc"] == pytest.approx(95.0)
    assert tcn["ours_target_acc"] == pytest.approx(80.0)
    assert tcn["ours_target_mpce"] == pytest.approx(np.mean([10 / 2, 30 / 4]))
    assert tcn["paper_mean_target_acc"] == 86.21 and table.loc["V2S_a", "ours_runs"] == 0


def test_mapping_table_settings_in_order():
    runs = pd.DataFrame([v2s_run(i, d, a, **{"params.model.mapping_kind": k, "params.model.mapping": m})
                         for i, (d, a, k, m) in enumerate([("Coffee", 0.9, "random", "3"), ("Coffee", 0.7, "random", "3"),
                                                           ("Coffee", 0.6, "one_to_one", "1"),
                                                           ("Trace", 0.5, "random", "max")])])
    table = v2s_ablations.mapping_table(v2s_tables.prepare(runs)).set_index("dataset")
    assert [c for c in table.columns if c.endswith("_mean")] == ["one-to-one_mean", "random m=3_mean",
                                                                  "random m=max_mean"]
    assert table.loc["Coffee", "random m=3_mean"] == pytest.approx(80.0)
    assert table.loc["mean over datasets", "random m=3_n"] == 1


def test_source_control_sits_beside_trained_sources_at_its_own_setting():
    def run(i, dataset, acc, source, seg, dropout, table="v2s_table2", **extra):
        return v2s_run(i, dataset, acc, source=source, seed=i, **{
            "params.model.seg": str(seg), "params.model.dropout": str(dropout), "tags.xferlab.table": table,
            "tags.xferlab.n_classes": "2", "tags.xferlab.source_run": f"src-{source}", **extra})

    sources = pd.DataFrame({"run_id": ["src-attrnn", "src-attrnn_untrained", "src-tcn", "src-attrnn_q"],
                            "params.model.arch": ["attrnn", "attrnn", "tcn", "attrnn"]})  # the lineage
    control = v2s_tables.prepare(pd.DataFrame([run(1, "GunPoint", 0.5, "attrnn_untrained", 3, 0.2, "c"),
                                               run(2, "GunPoint", 0.6, "attrnn_untrained", 3, 0.2, "c")]), sources)
    trained = v2s_tables.prepare(pd.DataFrame([
        run(3, "GunPoint", 0.9, "attrnn", 3, 0.2), run(4, "GunPoint", 0.8, "attrnn", 3, 0.2),
        run(5, "GunPoint", 0.99, "attrnn", 10, 0.4),  # another setting: left out
        run(6, "GunPoint", 0.1, "attrnn_untrained", 3, 0.2),  # the control's own source: left out
        run(7, "GunPoint", 0.99, "tcn", 3, 0.2),  # another architecture: left out
        run(8, "GunPoint", 0.99, "attrnn", 3, 0.2, **{"params.model.method": "tf_a"}),  # another method: left out
        run(9, "Coffee", 0.99, "attrnn", 3, 0.2),  # no control on Coffee: no row
        run(10, "GunPoint", 0.99, "attrnn", 3, 0.2, **{"params.train.epochs": "2"}),  # trained otherwise: left out
        run(11, "GunPoint", 0.7, "attrnn_q", 3, 0.2)]), sources)  # another trained source: its own row
    table = v2s_ablations.source_control(control, trained)
    assert list(table["dataset"]) == ["GunPoint", "GunPoint"]
    assert list(table["trained_source"]) == ["attrnn", "attrnn_q"] and table["trained_mean"].iloc[1] == pytest.approx(70.0)
    got = table.iloc[0]
    assert got["setting"] == "seg 3, dropout 0.2" and got["control_source"] == "attrnn_untrained"
    assert got["control_mean"] == pytest.approx(55.0) and got["control_n"] == 2 and got["chance"] == 50.0
    assert got["trained_source"] == "attrnn" and got["trained_n"] == 2
    assert got["trained_mean"] == pytest.approx(85.0) and got["trained_minus_control"] == pytest.approx(30.0)
    assert got["paper_v2s_a"] == 96.67
    assert v2s_ablations.source_control(control.iloc[:0], trained).empty
    alone = v2s_ablations.source_control(control, trained.iloc[:0])  # no trained runs: the control's row, empty beside
    assert len(alone) == 1 and alone["trained_n"].iloc[0] == 0 and alone["control_n"].iloc[0] == 2


# -- consistency flags --------------------------------------------------------------------
def test_consistency_flags_config_and_code_minorities():
    runs = pd.DataFrame([v2s_run(1, "Coffee", 0.9, seed=0), v2s_run(2, "Coffee", 0.9, seed=1),
                         v2s_run(3, "Coffee", 0.9, seed=2, **{"params.train.epochs": "2"}),
                         v2s_run(4, "Coffee", 0.9, seed=3, **{"tags.xferlab.git_commit": "def"}),
                         v2s_run(5, "Trace", 0.9, seed=0, **{"params.train.epochs": "2"})])
    flags = frames.consistency(v2s_tables.prepare(runs), ["dataset", "column"])
    assert set(zip(flags["run_id"], flags["kind"])) == {("r3", "config"), ("r4", "code")}
    assert "train.epochs=2 (majority 100)" in flags.set_index("run_id").loc["r3", "detail"]
    kept = frames.drop_flagged(runs, flags)
    assert list(kept["run_id"]) == ["r1", "r2", "r5"]  # a lone run is its own majority


def test_consistency_flags_a_run_made_with_another_model_version():
    uri = "tags.xferlab.source_uri"
    runs = pd.DataFrame([v2s_run(1, "Coffee", 0.9, seed=0, **{uri: "models:/attrnn/2"}),
                         v2s_run(2, "Coffee", 0.9, seed=1, **{uri: "models:/attrnn/2"}),
                         v2s_run(3, "Coffee", 0.9, seed=2, **{uri: "models:/attrnn/1"})])
    flags = frames.consistency(v2s_tables.prepare(runs), ["dataset", "column"])
    assert list(zip(flags["run_id"], flags["kind"])) == [("r3", "model")]
    assert flags["detail"].iloc[0] == "loaded models:/attrnn/1 (majority models:/attrnn/2)"


def test_a_rerun_of_an_instance_supersedes_its_older_runs():
    """One instance is one seed: a --force rerun (or one after the model it loaded was
    replaced) replaces the older FINISHED run; other roles, statuses and instances stay, and
    a study's trials of one setting are all trials."""
    h, role, status = "tags.xferlab.spec_hash", "tags.xferlab.role", "status"
    runs = pd.DataFrame([v2s_run(1, "Coffee", 0.9, **{h: "a"}), v2s_run(2, "Coffee", 0.8, **{h: "a"}),
                         v2s_run(3, "Coffee", 0.7, **{h: "a", role: "trial"}),
                         v2s_run(7, "Coffee", 0.7, **{h: "a", role: "trial"}),
                         v2s_run(4, "Coffee", 0.6, **{h: "a", status: "FAILED"}),
                         v2s_run(5, "Coffee", 0.5, **{h: "b"}), v2s_run(6, "Coffee", 0.4)])
    assert list(runs["run_id"][frames.superseded(runs)]) == ["r1"]
    models = runs.assign(**{"tags.xferlab.registered_model": ["attrnn", "attrnn"] + [None] * 5})
    assert not frames.superseded(models).any()  # a registered version stays what its downstream runs loaded
    bare = runs.drop(columns=[role]).assign(**{h: ["a", "a", None, "a", "b", "b", None]})
    assert list(bare["run_id"][frames.superseded(bare)]) == ["r1", "r2"]  # no role recorded: r7 is the newest of "a"
    assert not frames.superseded(runs.iloc[:0]).any()


def test_select_on_validation_keeps_the_lowest_val_loss_setting_per_cell():
    sel = {"tags.xferlab.select": "model.dropout,model.seg", "params.model.seg": "1"}

    def run(i: int, dataset: str, dropout: str, val: float, test: float, seed: int = 0, **extra: object):
        return v2s_run(i, dataset, test, seed=seed, **{**sel, "params.model.dropout": dropout,
                                                       "metrics.best_val_accuracy": val,
                                                       "metrics.best_val_loss": 1 - val, **extra})

    runs = pd.DataFrame([
        run(1, "Coffee", "0.1", 0.80, 0.95), run(2, "Coffee", "0.1", 0.90, 0.85, seed=1),  # mean loss 0.15
        run(3, "Coffee", "0.4", 0.90, 0.70), run(4, "Coffee", "0.4", 0.70, 0.60, seed=1),  # mean loss 0.20
        run(5, "Trace", "0.1", 0.70, 0.50), run(6, "Trace", "0.4", 0.60, 0.90,  # loss beats accuracy
                                                 **{"metrics.best_val_loss": 0.1}),
        v2s_run(7, "GunPoint", 0.75, **{"params.model.dropout": "0.1"}),  # no select: untouched
        v2s_run(8, "GunPoint", 0.65, seed=1, **{"params.model.dropout": "0.4"})])
    kept, chosen = frames.select_on_validation(v2s_tables.prepare(runs), ["dataset", "column"])
    assert list(kept["run_id"]) == ["r1", "r2", "r6", "r7", "r8"]
    chosen = chosen.set_index("dataset")
    assert chosen.loc["Coffee", "chosen"] == "model.dropout=0.1, model.seg=1"
    assert chosen.loc["Coffee", "settings"] == 2 and chosen.loc["Coffee", "runs"] == 2
    assert chosen.loc["Coffee", "val_accuracy"] == pytest.approx(85.0)
    assert chosen.loc["Coffee", "test_accuracy"] == pytest.approx(90.0)
    assert chosen.loc["Coffee", "best_test_accuracy"] == pytest.approx(90.0)
    assert chosen.loc["Trace", "chosen"].startswith("model.dropout=0.4")
    assert "GunPoint" not in chosen.index
    # GunPoint's two settings are still a mismatch to flag; the selected cells are not
    assert set(frames.consistency(kept, ["dataset", "column"])["dataset"]) == {"GunPoint"}


def test_l2_settings_are_ranked_on_validation_cross_entropy_not_on_the_penalised_loss():
    """best_val_loss adds the program's L2 term, larger the larger model.l2: the setting with
    the lower cross-entropy wins. A cell holding a run logged before best_val_ce_loss (Trace's
    r3) ranks all its runs on best_val_loss, never one quantity against the other."""
    sel = {"tags.xferlab.select": "model.l2", "params.model.dropout": "0.2", "metrics.best_val_accuracy": 1.0}
    runs = pd.DataFrame([
        v2s_run(1, "GunPoint", 0.85, **sel, **{"params.model.l2": "0.0", "metrics.best_val_loss": 0.10,
                                               "metrics.best_val_ce_loss": 0.10}),
        v2s_run(2, "GunPoint", 0.90, **sel, **{"params.model.l2": "0.001", "metrics.best_val_loss": 0.25,
                                               "metrics.best_val_ce_loss": 0.08}),
        v2s_run(3, "Trace", 0.95, **sel, **{"params.model.l2": "0.0", "metrics.best_val_loss": 0.10}),
        v2s_run(4, "Trace", 0.99, **sel, **{"params.model.l2": "0.001", "metrics.best_val_loss": 0.20,
                                            "metrics.best_val_ce_loss": 0.12})])
    kept, chosen = frames.select_on_validation(v2s_tables.prepare(runs), ["dataset", "column"])
    assert list(kept["run_id"]) == ["r2", "r3"]
    assert chosen.set_index("dataset").loc["GunPoint", "chosen"] == "model.l2=0.001"


def test_selection_is_among_runs_that_asked_for_it_with_held_out_validation():
    """Issue 13: a run without ``select`` or validated on the test split is never a candidate
    in a cell that has held-out candidates; it is left out and counted."""
    sel = {"tags.xferlab.select": "model.dropout", "tags.xferlab.val_mode": "holdout"}

    def run(i: int, dropout: str, val_loss: float, test: float, **extra: object):
        return v2s_run(i, "Coffee", test, **{**sel, "params.model.dropout": dropout, "metrics.best_val_accuracy": 0.5,
                                             "metrics.best_val_loss": val_loss, **extra})

    runs = pd.DataFrame([
        run(1, "0.1", 0.30, 0.80), run(2, "0.4", 0.20, 0.70),
        run(3, "0.0", 0.01, 0.99, **{"tags.xferlab.val_mode": "paper"}),  # "validation" = test: not a candidate
        run(4, "0.2", 0.05, 0.95, **{"tags.xferlab.select": ""}),  # did not ask for selection
        v2s_run(5, "Trace", 0.60, **{**sel, "tags.xferlab.val_mode": "paper", "params.model.dropout": "0.1",
                                   "metrics.best_val_accuracy": 0.6, "metrics.best_val_loss": 0.3})])
    kept, chosen = frames.select_on_validation(v2s_tables.prepare(runs), ["dataset", "column"])
    assert list(kept["run_id"]) == ["r2", "r5"]
    chosen = chosen.set_index("dataset")
    assert chosen.loc["Coffee", "chosen"] == "model.dropout=0.4" and chosen.loc["Coffee", "settings"] == 2
    assert chosen.loc["Coffee", "validation"] == "held out"
    assert chosen.loc["Coffee", "left_out"] == "1 without select, 1 validated on the test split"
    assert chosen.loc["Trace", "validation"] == "test split (paper protocol)"  # the faithful mode, labelled


def test_select_on_validation_without_select_is_identity(table2_runs):
    kept, chosen = frames.select_on_validation(table2_runs, ["dataset", "column"])
    assert kept is table2_runs and chosen.empty


# -- anti-transfer ------------------------------------------------------------------------
def at_run(i: int, cond: str, test: float, val: float, layer: int = 4, seed: int = 0,
           task: str = "synth/style_speakersplit") -> dict[str, object]:
    return {"run_id": f"a{i}", "run_name": f"at {i}", "start_time": i, "status": "FINISHED",
            "tags.xferlab.condition": cond, "params.data.dataset": task, "params.data.split": "default",
            "params.at.orthogonal": "ortho", "params.init.from": "ortho" if cond == "weight_init" else "None",
            "params.at.layer": str(layer), "params.seed": str(seed), "metrics.test_accuracy": test,
            "metrics.best_val_accuracy": val, "metrics.best_train_accuracy": test + 0.1}


@pytest.fixture()
def at_runs() -> pd.DataFrame:
    return at_tables.prepare(pd.DataFrame([
        at_run(1, "baseline", 0.50, 0.5, seed=0), at_run(2, "baseline", 0.60, 0.5, seed=1),
        at_run(3, "at", 0.80, 0.40, layer=2), at_run(4, "at", 0.70, 0.60, layer=4, seed=0),
        at_run(5, "at", 0.60, 0.60, layer=4, seed=1), at_run(6, "weight_init", 0.40, 0.4)]))


def test_at_layers_gain_over_baseline(at_runs):
    layers = at_tables.at_layers(at_runs)
    l4 = layers[(layers["condition"] == "at") & (layers["layer"] == 4)].iloc[0]
    assert l4["test_mean"] == pytest.approx(65.0) and l4["test_n"] == 2
    assert l4["test_gain"] == pytest.approx(65.0 - 55.0)
    assert l4["train_gain"] == pytest.approx(75.0 - 65.0)
    assert layers[layers["condition"] == "baseline"]["test_gain"].isna().all()


def test_at_layers_pair_at_with_its_baseline_seed_by_seed(at_runs):
    """Layer 4 has seeds 0 and 1 (70, 60), the baseline seeds 0 and 1 (50, 60): differences
    20 and 0, mean 10, sd sqrt(200); 95 % interval 10 -+ t(0.975, 1) * sqrt(200) / sqrt(2).
    Layer 2 ran seed 0 only: one pair, no interval."""
    from scipy import stats

    layers = at_tables.at_layers(at_runs).set_index(["condition", "layer"])
    l4 = layers.loc[("at", 4.0)]
    half = stats.t.ppf(0.975, 1) * math.sqrt(200.0) / math.sqrt(2)
    assert l4["test_pairs"] == 2 and l4["test_diff"] == pytest.approx(10.0)
    assert (l4["test_diff_ci_low"], l4["test_diff_ci_high"]) == (pytest.approx(10 - half), pytest.approx(10 + half))
    assert l4["test_p_paired"] == pytest.approx(stats.ttest_rel([70.0, 60.0], [50.0, 60.0]).pvalue)
    assert l4["seeds_for_paper_gain"] > 2  # a spread of 14 points per pair needs many seeds for 4.1 points
    l2 = layers.loc[("at", 2.0)]
    assert l2["test_pairs"] == 1 and l2["test_diff"] == pytest.approx(30.0) and pd.isna(l2["test_diff_ci_low"])
    assert at_tables.paper_gain() == pytest.approx(61.3 - 57.2)


def test_at_summary_best_layer_by_validation(at_runs):
    row_ = at_tables.summary(at_runs).iloc[0]
    assert row_["ref_model"] == "ortho"
    assert row_["baseline_test_mean"] == pytest.approx(55.0) and row_["baseline_test_n"] == 2
    assert row_["baseline_test_std"] == pytest.approx(math.sqrt(50.0))
    assert row_["at_best_layer"] == 4  # val 60 beats layer 2's val 40, although layer 2 tests higher
    assert row_["at_best_test_mean"] == pytest.approx(65.0)
    assert row_["at_layers_test_mean"] == pytest.approx((80.0 + 65.0) / 2) and row_["at_layers_test_n"] == 2
    assert row_["weight_init_test_mean"] == pytest.approx(40.0)
    assert row_["at_gain_test"] == pytest.approx(10.0)
    assert row_["paper_task"] == "speech_emotion / speaker_wise" and row_["paper_baseline_test"] == 57.2
    assert row_["paper_at_train"] == 74.5


def test_paper_boost_from_headline_numbers():
    boost = at_tables.paper_boost().set_index("label")["boost"]
    same = [66.5 - 63.7, 61.3 - 57.2, 85.7 - 83.8, 34.3 - 22.8]
    bigger = [66.9 - 63.7, 61.1 - 57.2, 86.3 - 83.8, 30.0 - 22.8]
    assert boost["overall"] == pytest.approx(np.mean(same + bigger))
    assert boost["pretrain on same dataset"] == pytest.approx(np.mean(same))
    assert boost["speech emotion"] == pytest.approx(np.mean(same[:2] + bigger[:2]))


def test_paper_task_analogues():
    assert at_tables.paper_task("synth/style_random", "default") == ("speech_emotion", "random")
    assert at_tables.paper_task("synth/digits_verynoisy", "default") == ("digits", "noisy_more")
    assert at_tables.paper_task("synth/speaker", "default") is None
    gsc = at_tables.paper_row("synth/digits_noisy", "default")
    assert gsc["paper_baseline_test"] == 93.67 and gsc["paper_dual_at_test"] == 94.91


def test_experiment_xlsx_best_values():
    table = pd.DataFrame({"test loss mean": [0.5, 0.3], "test acc mean": [0.7, 0.9], "test acc std": [0.1, 0.05],
                          "val recall mean": [0.8, 0.6]})
    best = at_xlsx.best_mask(table)
    assert list(best["test loss mean"]) == [False, True]
    assert list(best["test acc mean"]) == [False, True]
    assert list(best["test acc std"]) == [False, True]
    assert list(best["val recall mean"]) == [True, False]


def test_experiment_rows_mean_std_over_repetitions():
    runs = pd.DataFrame({"tags.xferlab.cell": ["a", "a", "b"], "metrics.test_accuracy": [0.5, 0.7, 0.9],
                         "metrics.best_train_loss": [1.0, 2.0, 3.0], "artifact_uri": ["/tmp/x"] * 3})
    rows = at_xlsx.instance_rows(runs).set_index("parameters")
    assert rows.loc["a", "test acc mean"] == pytest.approx(0.6) and rows.loc["a", "runs"] == 2
    assert rows.loc["a", "test acc std"] == pytest.approx(math.sqrt(0.02))
    assert rows.loc["b", "train loss mean"] == 3.0 and math.isnan(rows.loc["b", "test F1 mean"])
    assert rows.loc["a", "link"] == "file:///tmp/x/spec.yaml"


def test_experiment_rows_keep_two_configurations_of_one_cell_apart():
    """A spec edited after it ran (the quickstart's style strength, 1 -> 2): its old and new
    runs share the cell tag, never a row; seeds alone never split one."""
    runs = pd.DataFrame({"tags.xferlab.cell": ["a", "a", "a", "a"], "metrics.test_accuracy": [0.4, 0.5, 0.6, 0.7],
                         "params.seed": ["0", "1", "0", "1"], "params.data.style_strength": [None, None, "2.0", "2.0"],
                         "artifact_uri": ["/tmp/x"] * 4})
    rows = at_xlsx.instance_rows(runs).set_index("parameters")
    assert rows.loc["a [data.style_strength=—]", "test acc mean"] == pytest.approx(0.45)
    assert rows.loc["a [data.style_strength=2.0]", "test acc mean"] == pytest.approx(0.65)
    assert list(at_xlsx.instance_rows(runs.iloc[2:])["parameters"]) == ["a"]


# -- tuning -------------------------------------------------------------------------------
def test_study_table_states_and_best():
    base = {"tags.xferlab.role": "trial", "tags.mlflow.parentRunId": "p", "params.train.epochs": "5"}
    runs = pd.DataFrame([
        {"run_id": "p", "run_name": "study-x", "status": "FINISHED", "start_time": 0, "tags.xferlab.role": "study",
         "tags.xferlab.study": "x", "tags.xferlab.metric": "val_loss", "tags.xferlab.direction": "minimize"},
        {**base, "run_id": "t0", "status": "FINISHED", "params.model.seg": "1", "metrics.val_loss": 0.3,
         "tags.xferlab.trial": "0"},
        {**base, "run_id": "t1", "status": "FINISHED", "params.model.seg": "3", "metrics.val_loss": 0.2,
         "tags.xferlab.trial": "1"},
        {**base, "run_id": "t2", "status": "KILLED", "params.model.seg": "5", "tags.xferlab.pruned": "true"},
        {**base, "run_id": "t3", "status": "FAILED", "params.model.seg": "7"}])
    study = tuning.study_table(runs).iloc[0]
    assert (study["trials"], study["COMPLETE"], study["PRUNED"], study["FAIL"]) == (4, 2, 1, 1)
    assert study["best_value"] == 0.2 and study["best_trial"] == "1"
    assert json.loads(study["best_params"]) == {"model.seg": "3"}  # epochs did not vary: not searched
    recorded = runs.copy()
    recorded.loc[0, ["metrics.best_value", "tags.xferlab.best_trial", "tags.xferlab.best.model.seg",
                     "metrics.trials_complete", "metrics.trials_pruned"]] = [0.1, "7", "9", 2, 1]
    study = tuning.study_table(recorded).iloc[0]  # the tuner's own record on the parent wins
    assert (study["best_value"], study["best_trial"]) == (0.1, "7")
    assert json.loads(study["best_params"]) == {"model.seg": "9"}
    assert study["optuna_counts"] == "complete 2, pruned 1"


# -- queries and writers ------------------------------------------------------------------
def test_query_apply_and_filter_string():
    runs = pd.DataFrame([v2s_run(1, "Coffee", 0.9), v2s_run(2, "Coffee", 0.9, **{"status": "FAILED"}),
                         v2s_run(3, "Coffee", 0.9, **{"tags.xferlab.role": "trial"})])
    q = Query((("xferlab.table", "v2s_table2"),))
    assert list(q.apply(runs)["run_id"]) == ["r1"]
    assert q.filter_string() == ("tags.`xferlab.table` = 'v2s_table2' AND tags.`xferlab.role` = 'final' "
                                 "AND attributes.status = 'FINISHED'")
    assert list(Query((("xferlab.table", "v2s_table2"),), ("final", "trial")).apply(runs)["run_id"]) == ["r1", "r3"]


def test_query_scoped_to_specs_by_glob():
    runs = pd.DataFrame([v2s_run(1, "Coffee", 0.9, **{"tags.xferlab.spec": "v2s/table2_selected"}),
                         v2s_run(2, "Coffee", 0.9, **{"tags.xferlab.spec": "quickstart/v2s"}),
                         v2s_run(3, "Coffee", 0.9)])  # no spec tag
    q = Query((("xferlab.table", "v2s_table2"),), spec="v2s/table2*")
    assert list(q.apply(runs)["run_id"]) == ["r1"]
    assert q.filter_string().endswith("AND tags.`xferlab.spec` LIKE 'v2s/table2%'")


def test_display_merges_mean_std_n_and_markdown():
    frame = pd.DataFrame({"dataset": ["A", "B"], "ours_mean": [95.0, np.nan], "ours_std": [1.234, np.nan],
                          "ours_n": [3, 0], "p": [0.001234, 1.0]})
    shown = writers.display(frame)
    assert list(shown.columns) == ["dataset", "ours", "p"]
    assert list(shown["ours"]) == ["95.00 ± 1.23 (n=3)", "—"]
    md = writers.markdown(frame, "T", "q")
    assert "| dataset | ours | p |" in md and "| A | 95.00 ± 1.23 (n=3) | 0.001234 |" in md


def test_sheet_names_short_and_unique():
    used: set[str] = set()
    names = [writers.sheet_name("a" * 40, used), writers.sheet_name("a" * 40, used), writers.sheet_name("x/y", used)]
    assert all(len(n) <= 31 for n in names) and len(set(names)) == 3 and names[2] == "x_y"


# -- figures (they render from frames; no store) --------------------------------------------
def test_figures_render_pngs(tmp_path, at_runs):
    from xferlab.report import figures

    hist = pd.DataFrame([(r, k, step, v * step) for r in ("a", "b") for k in ("val_accuracy", "val_loss", "swd",
                                                                          "train_ce_loss", "at_loss")
                         for step, v in ((1, 0.5), (2, 0.6))], columns=["run_id", "key", "step", "value"])
    summary = at_tables.summary(at_runs)
    paths = [figures.v2s_fig3(hist, {"a": "V2S_a", "b": "V2S_a"}, tmp_path / "f3.png", "t", "test"),
             figures.at_loss(hist, tmp_path / "loss.png", "t"),
             figures.at_boost(at_tables.paper_boost(), at_tables.our_boost(summary), tmp_path / "boost.png"),
             figures.at_per_layer(at_tables.at_layers(at_runs), tmp_path / "layers.png"),
             figures.at_confound(summary, tmp_path / "confound.png")]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_experiment_xlsx_layout_and_links(tmp_path):
    import re
    import zipfile

    from xlsxwriter.utility import xl_col_to_name

    runs = pd.DataFrame({"tags.xferlab.cell": ["a", "a", "b"], "metrics.test_accuracy": [0.5, 0.7, 0.9],
                         "metrics.test_loss": [1.0, 0.8, 0.2], "artifact_uri": ["/s/1", "/s/2", "/s/3"]})
    book = zipfile.ZipFile(at_xlsx.write_experiment_xlsx(runs, tmp_path / "e.xlsx", "experiment 7"))
    sheet = book.read("xl/worksheets/sheet1.xml").decode()
    strings = re.findall(r"<t[^>]*>([^<]*)</t>", book.read("xl/sharedStrings.xml").decode())
    assert strings[:7] == ["experiment 7", "ID", "parameters", "comment 1", "comment 2", "runs", "train loss mean"]
    assert '<f>HYPERLINK("file:///s/1/spec.yaml","a")</f>' in sheet  # a real absolute link, not tmp\x
    styles = dict(re.findall(r'<c r="([A-Z]+\d+)" s="(\d+)"', sheet))
    cols = at_xlsx.instance_rows(runs).columns.drop("link")
    letter = lambda name: xl_col_to_name(list(cols).index(name))  # noqa: E731
    # row 4 = "a" (loss 0.9, acc 0.6), row 5 = "b" (loss 0.2, acc 0.9): b is best in both
    assert styles[f"{letter('test loss mean')}5"] == styles[f"{letter('test acc mean')}5"]
    assert styles[f"{letter('test loss mean')}4"] != styles[f"{letter('test loss mean')}5"]


def test_two_experiments_are_never_averaged_into_one_cell():
    """Issue 13: AT cells are keyed by spec (and width and corpus profile). Equal settings in
    two specs give two rows. A spec without a baseline of its own is compared with the only
    baseline spec of its task; with two baseline specs, with neither (nothing pooled)."""
    def run(i: int, cond: str, test: float, spec: str, width: str = "0.0625", **kw):
        return {**at_run(i, cond, test, test, **kw), "tags.xferlab.spec": spec, "params.model.width": width}

    runs = at_tables.prepare(pd.DataFrame([
        run(1, "baseline", 0.40, "base_a"), run(2, "at", 0.50, "at_1"), run(3, "at", 0.70, "at_2"),
        run(4, "at", 0.90, "at_1", width="0.125")]))  # another width: another task setting
    table = at_tables.summary(runs).set_index(["spec", "width"])
    assert table.loc[("at_1", 0.0625), "at_best_test_mean"] == pytest.approx(50.0)  # not (50 + 70) / 2
    assert table.loc[("at_2", 0.0625), "at_best_test_mean"] == pytest.approx(70.0)
    assert table.loc[("at_1", 0.0625), "baseline_test_mean"] == pytest.approx(40.0)  # the one baseline spec
    assert pd.isna(table.loc[("at_1", 0.125)].get("baseline_test_mean"))  # no baseline at that width
    two = at_tables.prepare(pd.DataFrame([run(1, "baseline", 0.40, "base_a"), run(5, "baseline", 0.60, "base_b"),
                                          run(2, "at", 0.50, "at_1")]))
    row = at_tables.summary(two).set_index("spec").loc["at_1"]
    assert pd.isna(row.get("baseline_test_mean"))  # two baseline experiments: never pooled
    assert set(at_tables.summary(two)["spec"]) == {"at_1", "base_a", "base_b"}  # each baseline its own row
    # an AT spec with its own baseline lends nothing: a baseline-only spec of the same setting
    # (a confound-gap experiment) keeps its row
    own = at_tables.prepare(pd.DataFrame([run(1, "baseline", 0.40, "gap"), run(5, "baseline", 0.60, "at_1"),
                                          run(2, "at", 0.50, "at_1")]))
    table = at_tables.summary(own).set_index("spec")
    assert table.loc["gap", "baseline_test_mean"] == pytest.approx(40.0)
    assert table.loc["at_1", "baseline_test_mean"] == pytest.approx(60.0)


def test_a_changed_model_head_is_another_task_setting():
    """Runs of one spec before and after its VGG16 head changed are never pooled: an AT run
    with the He head is compared with the He-head baseline only (absent = the paper's head)."""
    def run(i: int, cond: str, test: float, head: str | None, seed: int = 0):
        extra = {"params.model.head_init": head, "params.model.dropout": "0.0"} if head else {}
        return {**at_run(i, cond, test, test, seed=seed), "tags.xferlab.spec": "quickstart/at", **extra}

    runs = at_tables.prepare(pd.DataFrame([run(1, "baseline", 0.30, None), run(2, "baseline", 0.50, "kaiming"),
                                           run(3, "at", 0.60, "kaiming")]))
    layers = at_tables.at_layers(runs)
    he = layers[(layers["condition"] == "at")].iloc[0]
    assert he["baseline_test"] == pytest.approx(50.0) and he["test_diff"] == pytest.approx(10.0)
    assert set(layers["head_init"]) == {"torchvision", "kaiming"} and set(layers["dropout"]) == {0.5, 0.0}
    bn = at_tables.prepare(pd.DataFrame([run(2, "baseline", 0.50, "kaiming"),
                                         {**run(3, "at", 0.60, "kaiming"), "params.model.norm": "batch"}]))
    assert at_tables.at_layers(bn).query("condition == 'at'")["baseline_test"].isna().all()  # BN never meets plain
    log = at_tables.prepare(pd.DataFrame([run(2, "baseline", 0.50, "kaiming"),
                                          {**run(3, "at", 0.60, "kaiming"), "params.model.magnitude": "log"}]))
    assert at_tables.at_layers(log).query("condition == 'at'")["baseline_test"].isna().all()  # log never meets linear
    assert at_tables.variant_label(log.iloc[1]) == " (log magnitude)" and at_tables.variant_label(log.iloc[0]) == ""
    assert at_tables.variant_label({"magnitude": "log", "style_strength": 2.0}) == " (log magnitude, style strength 2)"
    assert at_tables.variant_label({"style_strength": 1.0}) == ""
    vivid = at_tables.prepare(pd.DataFrame([run(2, "baseline", 0.50, "kaiming"),
                                            {**run(3, "at", 0.60, "kaiming"), "params.data.style_strength": "2.0"}]))
    assert at_tables.at_layers(vivid).query("condition == 'at'")["baseline_test"].isna().all()  # nor strength 2 with 1


def test_a_confound_sweep_is_drawn_per_experiment_and_magnitude(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Baselines of a linear and a log confound sweep (two specs, the same task and no
    orthogonal model) are two lines in two panels, never one line zig-zagging between them."""
    import matplotlib.pyplot as plt

    from xferlab.report import figures

    def run(i: int, confound: float, test: float, spec: str, magnitude: str | None):
        extra = {"params.model.magnitude": magnitude} if magnitude else {}
        return {**at_run(i, "baseline", test, test), "params.data.confound": str(confound),
                "tags.xferlab.spec": spec, **extra}

    runs = at_tables.prepare(pd.DataFrame([run(1, 0.0, 0.50, "gap", None), run(2, 0.8, 0.40, "gap", None),
                                           run(3, 0.0, 0.52, "gap_log", "log"), run(4, 0.8, 0.48, "gap_log", "log")]))
    summary = at_tables.summary(runs)
    assert summary.groupby(at_tables.SWEEP, dropna=False).ngroups == 2
    shown: list = []
    real_save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: shown.append([ax.get_title() for ax in fig.axes])
                        or real_save(fig, path))
    figures.at_confound(summary, tmp_path / "confound.png")
    assert len(shown[0]) == 2 and any("(log magnitude)" in t for t in shown[0])
    plt.close("all")


def test_the_per_layer_figure_draws_each_experiment_as_its_own_line(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Two specs of the same task at two style strengths: two lines of two layers each
    (grouped on task, split and confound alone they were one line zig-zagging over 4 points)."""
    import matplotlib.pyplot as plt

    from xferlab.report import figures

    def run(i, cond, test, layer, spec, strength):
        return {**at_run(i, cond, test, test, layer=layer), "tags.xferlab.spec": spec,
                "params.data.style_strength": strength}

    runs = at_tables.prepare(pd.DataFrame([
        run(1, "baseline", 0.5, 4, "one", "1.0"), run(2, "at", 0.6, 2, "one", "1.0"), run(3, "at", 0.4, 4, "one", "1.0"),
        run(4, "baseline", 0.7, 4, "two", "2.0"), run(5, "at", 0.7, 2, "two", "2.0"), run(6, "at", 0.8, 4, "two", "2.0")]))
    shown: list = []
    real_save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: shown.append(
        [(line.get_label(), len(line.get_xdata())) for line in fig.axes[1].get_lines()]) or real_save(fig, path))
    figures.at_per_layer(at_tables.at_layers(runs), tmp_path / "layers.png")
    lines = [(label, n) for label, n in shown[0] if label.startswith("synth")]
    assert sorted(n for _, n in lines) == [2, 2]
    assert any("style strength 2" in label for label, _ in lines)
    plt.close("all")
