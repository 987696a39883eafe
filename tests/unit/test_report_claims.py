"""The claims table on hand-made run frames, against verdicts worked out by hand.

The frames use ``mlflow.search_runs`` column names, as the report fetches them; the
verdict rules are in :mod:`xferlab.report.claims`.
"""
from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from tests.unit.test_report_tables import at_run, v2s_run
from xferlab.report import at_tables, claims, papers, v2s_tables
from xferlab.report.power import seeds_needed


def stat(n: float, diff: float, sd: float, low: float, high: float) -> pd.Series:
    return pd.Series({"n": n, "diff": diff, "sd": sd, "ci_low": low, "ci_high": high, "p": math.nan})


@pytest.mark.parametrize("low, high, verdict", [(0.5, 6.0, claims.REPRODUCED), (-3.3, 2.2, claims.NOT_REPRODUCED),
                                                (-2.0, 5.0, claims.INCONCLUSIVE)])
def test_gain_verdicts(low: float, high: float, verdict: str):
    word, need, _ = claims.gain_verdict(stat(14, (low + high) / 2, 5.0, low, high), 4.1)
    assert word == verdict
    assert (need == seeds_needed(4.1, 5.0)) if verdict == claims.INCONCLUSIVE else math.isnan(need)


def test_a_gain_smaller_than_the_papers_is_still_a_gain_and_one_seed_decides_nothing():
    word, _, why = claims.gain_verdict(stat(10, 1.0, 1.0, 0.3, 1.7), 4.1)
    assert word == claims.REPRODUCED and "smaller than the paper's +4.1" in why
    word, need, why = claims.gain_verdict(stat(1, 9.0, math.nan, math.nan, math.nan), 4.1)
    assert word == claims.INCONCLUSIVE and math.isnan(need) and why == claims.ONE_SEED


@pytest.mark.parametrize("low, high, verdict", [(-1.5, 3.0, claims.REPRODUCED), (-9.0, -2.5, claims.NOT_REPRODUCED),
                                                (-4.0, 1.0, claims.INCONCLUSIVE)])
def test_level_verdicts_allow_two_points_below_the_paper(low: float, high: float, verdict: str):
    word, need, _ = claims.level_verdict(stat(5, (low + high) / 2, 2.0, low, high))
    assert word == verdict
    if verdict == claims.INCONCLUSIVE:  # mean -1.5: 0.5 points above the threshold at sd 2
        assert need == seeds_needed(0.5, 2.0)


def v2s_frame() -> pd.DataFrame:
    """Coffee: V2S_a 100 on seeds 0-2 (the paper's 100), TF_a 50, 60, 55; GunPoint: V2S_a
    90, 91, 89 (the paper's 96.67); ArrowHead is not in the paper: no claim."""
    runs = [v2s_run(i, "Coffee", 1.0, seed=i) for i in range(3)]
    runs += [v2s_run(10 + i, "Coffee", acc, method="tf_a", seed=i) for i, acc in enumerate((0.50, 0.60, 0.55))]
    runs += [v2s_run(20 + i, "GunPoint", acc, seed=i) for i, acc in enumerate((0.90, 0.91, 0.89))]
    runs += [v2s_run(30, "ArrowHead", 0.7), v2s_run(31, "ArrowHead", 0.8, seed=1)]
    frame = pd.DataFrame(runs)
    frame["tags.xferlab.spec"] = "v2s/table2"
    return v2s_tables.prepare(frame)


def test_v2s_claims_worked_example():
    table = claims.claims(v2s_frame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    assert set(table["scope"]) == {"Coffee", "GunPoint"}
    rows = {(r.scope, r.claim.split(" ")[1]): r for r in table.itertuples()}
    coffee = rows[("Coffee", "reaches")]
    assert (coffee.ours, coffee.ci_low, coffee.ci_high, coffee.n) == (100.0, 100.0, 100.0, 3)
    assert coffee.verdict == claims.REPRODUCED and coffee.measure == claims.LEVEL
    gun = rows[("GunPoint", "reaches")]
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd of 90, 91, 89 is 1
    assert (gun.ours, gun.ci_low, gun.ci_high) == (pytest.approx(90.0), pytest.approx(90 - half),
                                                   pytest.approx(90 + half))
    assert gun.paper_figure == 96.67 and gun.verdict == claims.NOT_REPRODUCED
    assert gun.p == pytest.approx(stats.ttest_1samp([90.0, 91.0, 89.0], 96.67).pvalue)
    beats = rows[("Coffee", "beats")]  # differences 50, 40, 45: mean 45, sd 5
    half = stats.t.ppf(0.975, 2) * 5.0 / math.sqrt(3)
    assert beats.ours == pytest.approx(45.0) and beats.ci_low == pytest.approx(45 - half)
    assert beats.paper_figure == pytest.approx(100 - 53.57) and beats.verdict == claims.REPRODUCED
    assert ("GunPoint", "beats") not in rows  # no TF_a run of GunPoint to pair with


def test_no_gain_claim_where_the_paper_shows_none():
    """FordA: the paper's V2S_a and TF_a are both 100; ItalyPowerDemand: its V2S_u (96.31)
    is under its TF_a (97): no "beats TF_a" claim there, whatever ours gives. Its V2S_a
    (97.08) does beat TF_a, by 0.08 points: that claim stays."""
    runs = []
    for dataset, src in (("FordA", "attrnn"), ("ItalyPowerDemand", "attrnn_unet"), ("ItalyPowerDemand", "attrnn")):
        runs += [v2s_run(len(runs), dataset, 0.99, seed=i, source=src) for i in range(2)]
    runs += [v2s_run(len(runs) + i, d, 0.90, method="tf_a", seed=i % 2) for i, d in
             enumerate(["FordA", "FordA", "ItalyPowerDemand", "ItalyPowerDemand"])]
    table = claims.claims(v2s_tables.prepare(pd.DataFrame(runs)), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    beats = table[table["claim"].str.contains("beats")]
    assert list(zip(beats["scope"], beats["claim"].str[:5])) == [("ItalyPowerDemand", "V2S_a")]
    assert beats["paper_figure"].iloc[0] == pytest.approx(97.08 - 97)
    assert (~table["claim"].str.contains("beats")).sum() == 3  # the level claims all stay


def test_v2s_claims_never_pool_two_specs():
    frame = v2s_frame()
    other = frame[frame["dataset"] == "GunPoint"].assign(**{"tags.xferlab.spec": "quickstart/v2s"})
    table = claims.claims(pd.concat([frame, other]), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    gun = table[(table["scope"] == "GunPoint")]
    assert sorted(gun["spec"]) == ["quickstart/v2s", "v2s/table2"] and set(gun["n"]) == {3}


def at_frame(at_tests: dict[int, list[float]], base: list[float]) -> pd.DataFrame:
    """Baseline test accuracies per seed, AT per layer and seed (validation: layer 4 best)."""
    runs = [at_run(i, "baseline", acc, 0.5, seed=i) for i, acc in enumerate(base)]
    for layer, accs in at_tests.items():
        val = 0.6 if layer == 4 else 0.4
        runs += [at_run(100 * layer + i, "at", acc, val, layer=layer, seed=i) for i, acc in enumerate(accs)]
    return at_tables.prepare(pd.DataFrame(runs))


def at_table(prepared: pd.DataFrame) -> pd.DataFrame:
    pairs = at_tables.seed_pairs(prepared)
    layers = at_tables.at_layers(prepared, pairs)
    return claims.claims(pd.DataFrame(), at_tables.summary(prepared, layers), layers, pairs)


def test_at_claims_at_the_layer_chosen_on_validation_and_on_average_over_layers():
    """Baseline 50 on 5 seeds; layer 4 (chosen on validation) gains 1, 2, 3, 2, 2 points
    (interval above 0: reproduced); layer 2 gains 20, 20, -10, 10, 10. Over the layers, per
    seed: 10.5, 11, -3.5, 6, 6 (mean 6, sd sqrt(33.875)): the interval holds 0. The paper's
    figure: its mean gain at the same blocks, 2 and 4."""
    prepared = at_frame({2: [0.70, 0.70, 0.40, 0.60, 0.60], 4: [0.51, 0.52, 0.53, 0.52, 0.52]}, [0.5] * 5)
    table = at_table(prepared)
    beats, mean = table.iloc[0], table.iloc[1]
    assert "conv 4, chosen on validation" in beats["claim"] and beats["n"] == 5
    assert beats["ours"] == pytest.approx(2.0)
    assert beats["paper_figure"] == pytest.approx(61.3 - 57.2) and beats["verdict"] == claims.REPRODUCED
    assert "smaller than the paper's +4.1" in beats["detail"]  # 2 -+ 0.88 lies below +4.1
    paper = claims.paper_layer_gains("speech_emotion / speaker_wise")
    assert len(paper) == 13 and (paper > 0).sum() == 11  # the paper's curve dips below 0 at blocks 9, 10
    figure = ((60.13 - 57.2) + (57.82 - 57.2)) / 2
    sd = math.sqrt(33.875)
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert (mean["ours"], mean["ci_low"], mean["ci_high"], mean["n"]) == (
        pytest.approx(6.0), pytest.approx(6 - half), pytest.approx(6 + half), 5)
    assert mean["paper_figure"] == pytest.approx(figure) and mean["verdict"] == claims.INCONCLUSIVE
    assert mean["seeds_needed"] == seeds_needed(figure, sd)
    assert "paper at the same blocks (2, 4): +0.6 to +2.9" in mean["detail"]
    assert "conv 2 +10.0 (n=5)" in mean["detail"]


def test_a_layer_chosen_on_test_says_so():
    prepared = at_frame({4: [0.6, 0.6]}, [0.5, 0.5]).assign(val=float("nan"))
    assert "conv 4, chosen on test (no validation accuracy)" in at_table(prepared).iloc[0]["claim"]


def test_at_claims_refute_the_paper_when_its_gain_is_outside_the_interval():
    """AT equals the baseline to within half a point on 6 seeds at two layers: no gain, and
    neither +4.1 nor the paper's mean per-layer gain is inside the interval."""
    base = [0.40, 0.45, 0.42, 0.38, 0.44, 0.41]
    shift4, shift7 = (0.005, -0.005, 0.0, 0.004, -0.004, 0.001), (0.003, -0.002, 0.0, 0.001, -0.001, 0.002)
    prepared = at_frame({4: [b + d for b, d in zip(base, shift4)], 7: [b + d for b, d in zip(base, shift7)]}, base)
    table = at_table(prepared)
    assert list(table["verdict"]) == [claims.NOT_REPRODUCED] * 2 and claims.tally(table) == "2 not reproduced"


def test_seeds_missing_a_layer_are_left_out_of_the_mean_over_layers():
    prepared = at_frame({2: [0.6, 0.6, 0.6], 4: [0.55, 0.55]}, [0.5, 0.5, 0.5])
    assert at_table(prepared).iloc[1]["n"] == 2
    one = at_table(at_frame({2: [0.6, 0.6], 4: [0.55]}, [0.5, 0.5])).iloc[1]
    assert one["verdict"] == claims.INCONCLUSIVE and one["detail"].startswith("1 seed(s) run at every layer")


def test_masked_at_is_never_paired_with_an_unmasked_baseline():
    """A masked AT spec without a baseline of its own: the only baseline spec of the task
    trained without masks, so it is another task setting and there is nothing to compare."""
    base = at_frame({}, [0.5, 0.5]).assign(spec="plain")
    masked = at_frame({4: [0.6, 0.6]}, []).assign(spec="masked", masks="freq 2x0.15")
    alone = at_table(pd.concat([base, masked], ignore_index=True)).iloc[0]
    assert (alone["n"], alone["verdict"]) == (0, claims.INCONCLUSIVE) and alone["detail"].startswith(claims.NO_PAIR)
    assert at_table(pd.concat([base, masked.assign(masks="")], ignore_index=True)).iloc[0]["n"] == 2
    raw = pd.DataFrame([{**at_run(1, "at", 0.6, 0.5, layer=4), "params.train.mask_freq": "2"}])
    assert at_tables.prepare(raw)["masks"].iloc[0] == "freq 2x0.15"


def test_tasks_without_a_paper_analogue_make_no_claim():
    prepared = at_frame({4: [0.6, 0.6]}, [0.5, 0.5]).assign(task="synth/unknown_task")
    assert at_table(prepared).empty
    assert claims.paper_layer_gains("sound_goodness / random").empty
    assert papers.load("v2s_table2").set_index("dataset").loc["Coffee", "tf_a"] == 53.57
