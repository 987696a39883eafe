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
import pandas as pd

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
               p=float(stats.ttest_1samp(d, 0.0).pvalue))  # the paired t-test, on the kept pairs
    return out


def differences_by_group(frame: pd.DataFrame, by: Sequence[str], diff: str, confidence: float = 0.95) -> pd.DataFrame:
    """:func:`paired_difference` for every group of ``by`` at once (the report's thousands of
    cells): columns n, diff, sd, ci_low, ci_high, p, one row per group."""
    from scipy import stats

    g = frame.dropna(subset=[diff]).groupby(list(by), dropna=False)[diff].agg(["count", "mean", "std"]).reset_index()
    g = g.rename(columns={"count": "n", "mean": "diff", "std": "sd"})
    n, mean, sd = g["n"].to_numpy(float), g["diff"].to_numpy(float), g["sd"].to_numpy(float)
    ok = (n >= 2) & (sd > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = sd / np.sqrt(n)
        half = np.where(ok, stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)) * se, np.nan)
        p = np.where(ok, 2 * stats.t.sf(np.abs(mean / se), np.maximum(n - 1, 1)), np.nan)
    exact = (n >= 2) & (sd == 0)  # identical differences, as in paired_difference
    g["ci_low"] = np.where(exact, mean, mean - half)
    g["ci_high"] = np.where(exact, mean, mean + half)
    g["p"] = np.where(exact, np.where(mean == 0, 1.0, 0.0), p)
    g.loc[g["n"] < 2, "sd"] = np.nan
    return g


def paired_power(n: int | np.ndarray, effect: float, sd: float | np.ndarray, alpha: float = 0.05) -> float | np.ndarray:
    """Power of a two-sided paired t-test with ``n`` pairs to detect a mean difference of
    ``effect`` when the differences have standard deviation ``sd`` (arrays broadcast)."""
    from scipy import stats

    n, sd = np.asarray(n, dtype=float), np.asarray(sd, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        df, nc = np.maximum(n - 1, 1), effect / sd * np.sqrt(n)
        crit = stats.t.ppf(1 - alpha / 2, df)
        power = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    power = np.where((n >= 2) & (sd > 0), power, np.nan)
    return float(power) if power.ndim == 0 else power


def seeds_needed(effect: float, sd: float | np.ndarray, alpha: float = 0.05, power: float = 0.8) -> float | np.ndarray:
    """The smallest number of seeds (pairs, at least 2) at which :func:`paired_power`
    reaches ``power``; NaN where ``sd`` is unknown, inf beyond :data:`MAX_SEEDS`. Power grows
    with n, so every ``sd`` of an array is bisected at once."""
    sd = np.asarray(sd, dtype=float)
    valid = np.isfinite(sd) & (sd > 0) & (effect != 0)
    s = np.where(valid, sd, 1.0)
    low, high = np.full(s.shape, 2.0), np.full(s.shape, 2.0)
    short = paired_power(high, effect, s, alpha) < power
    while np.any(short):  # double until enough (far n would put scipy's noncentral t out of range)
        low, high = np.where(short, high, low), np.where(short, np.minimum(2 * high, MAX_SEEDS), high)
        short = (paired_power(high, effect, s, alpha) < power) & (high < MAX_SEEDS)
    reachable = paired_power(high, effect, s, alpha) >= power
    while np.any(low < high):  # the smallest n in (low, high] that is enough
        mid = np.floor((low + high) / 2)
        ok = paired_power(mid, effect, s, alpha) >= power
        low, high = np.where(ok | (low >= high), low, mid + 1), np.where(ok & (low < high), mid, high)
    out = np.where(valid, np.where(reachable, high, np.inf), np.nan)
    return float(out) if out.ndim == 0 else out
