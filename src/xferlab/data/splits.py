"""Train/validation/test splits over a manifest (one row per clip), with fixed seeds.

Group-wise splits keep every value of a column (a speaker, a word, a recording session,
an instrument) inside one split, so that a test score measures generalisation to unseen
groups rather than recognition of a seen speaker; the anti-transfer study's
"speaker-wise" and "instrument-wise" conditions are such splits. Stratified splits keep
label proportions equal across splits. The same seed always gives the same split.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from xferlab.errors import UserError

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
DEFAULT_NAMES = ("train", "val", "test")


def _check(df: pd.DataFrame, column: str | None, fractions: Sequence[float],
           names: Sequence[str]) -> None:
    if column is not None and column not in df.columns:
        columns = ", ".join(map(str, df.columns))
        raise UserError(f"no column {column!r} to split by: use one of {columns}")
    if len(fractions) != len(names):
        raise UserError(f"{len(fractions)} split fractions for {len(names)} split names: "
                        "give one fraction per name")
    if min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise UserError(f"split fractions {list(fractions)} must be >= 0 and sum to 1: fix the fractions")


def _cut(n: int, fractions: Sequence[float]) -> list[int]:
    """Boundaries that divide ``n`` items by ``fractions``; every split with a positive
    fraction gets at least one item when there are enough items."""
    bounds = [int(round(c * n)) for c in np.cumsum(fractions)]
    bounds[-1] = n
    positive = [f > 0 for f in fractions]
    if n >= sum(positive):
        for i in range(len(bounds)):
            low = bounds[i - 1] if i else 0
            if positive[i] and bounds[i] <= low:
                bounds[i] = low + 1
        bounds[-1] = n
        for i in reversed(range(len(bounds) - 1)):
            bounds[i] = min(bounds[i], bounds[i + 1] - positive[i + 1])
    return bounds


def _assign(labels: np.ndarray, bounds: list[int], names: Sequence[str]) -> dict[object, str]:
    starts = [0, *bounds[:-1]]
    return {label: name for name, a, b in zip(names, starts, bounds) for label in labels[a:b]}


def group_split(df: pd.DataFrame, column: str, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                seed: int = 0, names: Sequence[str] = DEFAULT_NAMES) -> dict[str, pd.DataFrame]:
    """Split so that each value of ``column`` lands in exactly one split.

    The fractions apply to the number of groups (not rows); groups are shuffled with
    ``seed`` after sorting, so the result does not depend on the manifest's row order.
    """
    _check(df, column, fractions, names)
    groups = np.array(sorted(df[column].unique(), key=str), dtype=object)
    groups = groups[np.random.default_rng(seed).permutation(len(groups))]
    owner = df[column].map(_assign(groups, _cut(len(groups), fractions), names))
    return {name: df[owner == name] for name in names}


def speaker_split(df: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  seed: int = 0, names: Sequence[str] = DEFAULT_NAMES) -> dict[str, pd.DataFrame]:
    """Speaker-disjoint split: test speakers are never heard in training."""
    return group_split(df, "speaker", fractions, seed, names)


def word_split(df: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS,
               seed: int = 0, names: Sequence[str] = DEFAULT_NAMES) -> dict[str, pd.DataFrame]:
    """Word-disjoint split: e.g. speaker identification tested on words never seen."""
    return group_split(df, "word", fractions, seed, names)


def random_split(df: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                 seed: int = 0, names: Sequence[str] = DEFAULT_NAMES) -> dict[str, pd.DataFrame]:
    """Row-wise random split (the anti-transfer study's "random" condition)."""
    _check(df, None, fractions, names)
    order = np.random.default_rng(seed).permutation(len(df))
    bounds = _cut(len(df), fractions)
    starts = [0, *bounds[:-1]]
    return {name: df.iloc[np.sort(order[a:b])] for name, a, b in zip(names, starts, bounds)}


def stratified_split(df: pd.DataFrame, column: str, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                     seed: int = 0, names: Sequence[str] = DEFAULT_NAMES) -> dict[str, pd.DataFrame]:
    """Random split that keeps the proportions of ``column``'s values equal in every split."""
    _check(df, column, fractions, names)
    rng = np.random.default_rng(seed)
    picked: dict[str, list[np.ndarray]] = {name: [] for name in names}
    positions = pd.Series(np.arange(len(df)), index=df.index)
    for value in sorted(df[column].unique(), key=str):
        rows = positions[(df[column] == value).to_numpy()].to_numpy()
        rows = rows[rng.permutation(len(rows))]
        bounds = _cut(len(rows), fractions)
        for name, a, b in zip(names, [0, *bounds[:-1]], bounds):
            picked[name].append(rows[a:b])
    return {name: df.iloc[np.sort(np.concatenate(parts))] for name, parts in picked.items()}


def cap(rows: pd.DataFrame, max_items: int | None, seed: int = 0) -> pd.DataFrame:
    """At most ``max_items`` rows, a fixed random subset kept in manifest order.

    CPU-sized runs cap each split; the subset depends only on ``seed`` (the split seed), so
    every repetition of an experiment sees the same clips.
    """
    if not max_items or len(rows) <= max_items:
        return rows
    return rows.sample(n=max_items, random_state=seed).sort_index()
