"""Paired comparisons and seeds needed, against worked examples and published figures."""
from __future__ import annotations

import math

import pytest
from scipy import stats

from xferlab.report.power import paired_difference, paired_power, seeds_needed


@pytest.mark.parametrize("d, n", [(0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_needed_match_gpower_for_a_paired_t_test(d: float, n: int):
    """G*Power 3, "Means: difference between two dependent means (matched pairs)", two
    tails, alpha 0.05, power 0.8: total sample size per effect size d (= effect / sd)."""
    assert seeds_needed(d * 3.0, 3.0) == n
    assert paired_power(n, d, 1.0) >= 0.8 > paired_power(n - 1, d, 1.0)


def test_seeds_needed_when_the_spread_is_unknown_or_hopeless():
    assert math.isnan(seeds_needed(4.1, math.nan)) and math.isnan(seeds_needed(4.1, 0.0))
    assert seeds_needed(0.001, 100.0) == math.inf


def test_paired_difference_worked_example():
    """Differences 1, 2, 2, 3: mean 2, sd sqrt(2/3); interval 2 -+ t(0.975, 3) * sd / 2."""
    res = paired_difference([1, 2, 3, 4], [0, 0, 1, 1])
    half = 3.182446305284263 * math.sqrt(2 / 3) / 2
    assert res["n"] == 4 and res["diff"] == 2.0 and res["sd"] == pytest.approx(math.sqrt(2 / 3))
    assert (res["ci_low"], res["ci_high"]) == (pytest.approx(2 - half), pytest.approx(2 + half))
    assert res["p"] == pytest.approx(stats.ttest_rel([1, 2, 3, 4], [0, 0, 1, 1]).pvalue)


def test_paired_difference_degenerate_cases():
    one = paired_difference([5.0], [3.0])
    assert one["n"] == 1 and one["diff"] == 2.0 and math.isnan(one["ci_low"]) and math.isnan(one["p"])
    same = paired_difference([2.0, 3.0], [1.0, 2.0])
    assert (same["ci_low"], same["ci_high"], same["p"]) == (1.0, 1.0, 0.0)
    assert paired_difference([1.0, 2.0], [1.0, 2.0])["p"] == 1.0


def test_differences_by_group_equals_paired_difference_group_by_group():
    """The report's vectorised form against the scalar one, on groups of 1, 2 (equal
    differences), 3 and 7 pairs."""
    import numpy as np
    import pandas as pd

    from xferlab.report.power import differences_by_group

    rng = np.random.default_rng(0)
    frames = [pd.DataFrame({"cell": "one", "d": [3.0]}), pd.DataFrame({"cell": "same", "d": [2.0, 2.0]}),
              pd.DataFrame({"cell": "three", "d": rng.normal(1, 2, 3)}),
              pd.DataFrame({"cell": "seven", "d": [*rng.normal(-1, 3, 7), np.nan]})]
    got = differences_by_group(pd.concat(frames), ["cell"], "d").set_index("cell")
    for frame in frames:
        d = frame["d"].dropna().to_numpy()
        want = paired_difference(d, np.zeros_like(d))
        row = got.loc[frame["cell"].iloc[0]]
        for key in ("n", "diff", "sd", "ci_low", "ci_high", "p"):
            assert row[key] == pytest.approx(want[key], nan_ok=True), key
