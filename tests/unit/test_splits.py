"""Split helpers: group-wise splits are disjoint over the group and cover every row."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xferlab.data.splits import group_split, random_split, speaker_split, stratified_split, word_split
from xferlab.errors import UserError


@pytest.fixture()
def manifest() -> pd.DataFrame:
    rows = [{"speaker": f"spk{s:03d}", "word": w, "style": st, "voice": f"v{s % 4}"}
            for s in range(23) for w in ("yes", "no", "up", "down", "left", "_silence_")
            for st in ("neutral", "sad")]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)


def _check_partition(df: pd.DataFrame, parts: dict[str, pd.DataFrame], column: str | None) -> None:
    indices = np.concatenate([p.index.to_numpy() for p in parts.values()])
    assert sorted(indices) == sorted(df.index)  # covers every row exactly once
    if column is not None:
        seen = [set(p[column]) for p in parts.values()]
        for i in range(len(seen)):
            for j in range(i + 1, len(seen)):
                assert not seen[i] & seen[j]


@pytest.mark.parametrize("split,column", [(speaker_split, "speaker"), (word_split, "word")])
def test_group_splits_are_disjoint_and_cover(manifest: pd.DataFrame, split, column: str) -> None:
    parts = split(manifest, seed=3)
    assert list(parts) == ["train", "val", "test"]
    assert all(len(p) for p in parts.values())
    _check_partition(manifest, parts, column)


def test_group_split_any_column_and_fractions(manifest: pd.DataFrame) -> None:
    parts = group_split(manifest, "voice", fractions=(0.5, 0.25, 0.25), seed=0)
    _check_partition(manifest, parts, "voice")
    assert [p["voice"].nunique() for p in parts.values()] == [2, 1, 1]


def test_splits_are_seeded_and_independent_of_row_order(manifest: pd.DataFrame) -> None:
    a = speaker_split(manifest, seed=7)
    b = speaker_split(manifest.sort_values(["word", "speaker"]), seed=7)
    c = speaker_split(manifest, seed=8)
    assert all(set(a[k]["speaker"]) == set(b[k]["speaker"]) for k in a)
    assert any(set(a[k]["speaker"]) != set(c[k]["speaker"]) for k in a)


def test_stratified_split_keeps_proportions(manifest: pd.DataFrame) -> None:
    parts = stratified_split(manifest, "word", seed=1)
    _check_partition(manifest, parts, None)
    for part in parts.values():
        shares = part["word"].value_counts(normalize=True)
        assert np.allclose(shares, 1 / 6, atol=0.03)


def test_random_split_sizes(manifest: pd.DataFrame) -> None:
    parts = random_split(manifest, fractions=(0.8, 0.1, 0.1), seed=2)
    _check_partition(manifest, parts, None)
    assert abs(len(parts["train"]) - 0.8 * len(manifest)) <= 1


def test_few_groups_still_fill_every_split() -> None:
    df = pd.DataFrame({"speaker": ["a", "a", "b", "c", "c"]})
    parts = speaker_split(df, seed=0)
    assert sorted(p["speaker"].nunique() for p in parts.values()) == [1, 1, 1]


def test_split_errors_name_the_fix(manifest: pd.DataFrame) -> None:
    with pytest.raises(UserError, match="use one of"):
        group_split(manifest, "session")
    with pytest.raises(UserError, match="sum to 1"):
        speaker_split(manifest, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(UserError, match="one fraction per name"):
        random_split(manifest, fractions=(0.5, 0.5))
