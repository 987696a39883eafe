"""Paired comparisons over seeds and the seeds a comparison needs (pure functions).

An AT run and a baseline run of the same seed share their data order and initial weights
(both are seeded by the instance seed), so AT is compared with its baseline seed by seed:
the mean difference with a t interval, a paired t-test, and n. How many seeds a difference
of a given size needs follows from the spread of the per-seed differences: the smallest n
at which a two-sided paired t-test at ``alpha`` reaches ``power`` (noncentral t; the
figure G*Power gives for "difference between two dependent means").
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

MAX_SEEDS = 10_000  # beyond this "seeds needed" is reported as not reachable


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """``a - b`` over pairs: n, mean, its ``confidence`` t interval, the paired t-test's
    two-sided p, and the std of the differences (NaN where n is too small)."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    n = int(d.size)
    out = {"n": float(n), "diff": float(d.mean()) if n else math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p": math.nan, "sd": float(d.std(ddof=1)) if n > 1 else math.nan}
    if n < 2:
        return out
    if out["sd"] == 0:  # identical differences: an exact interval, and p only when they are zero
        out.update(ci_low=out["diff"], ci_high=out["diff"], p=1.0 if out["diff"] == 0 else 0.0)
        return out
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * out["sd"] / math.sqrt(n)
    out.update(ci_low=float(out["diff"] - half), ci_high=float(out["diff"] + half),
               p=float(stats.ttest_rel(a, b).pvalue))
    return out


def paired_power(n: int, effect: float, sd: float, alpha: float = 0.05) -> float:
    """Power of a two-sided paired t-test with ``n`` pairs to detect a mean difference of
    ``effect`` when the differences have standard deviation ``sd``."""
    from scipy import stats

    if n < 2 or not sd > 0:
        return math.nan
    df, nc = n - 1, effect / sd * math.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest number of seeds (pairs, at least 2) at which :func:`paired_power`
    reaches ``power``; NaN when ``sd`` is unknown, inf beyond :data:`MAX_SEEDS`."""
    if not (sd > 0 and effect != 0):
        return math.nan
    low, high = 2, 2
    while paired_power(high, effect, sd, alpha) < power:  # power grows with n: bracket, then bisect
        if high >= MAX_SEEDS:
            return math.inf
        low, high = high, min(2 * high, MAX_SEEDS)
    while low < high:
        mid = (low + high) // 2
        if paired_power(mid, effect, sd, alpha) >= power:
            high = mid
        else:
            low = mid + 1
    return float(high)
