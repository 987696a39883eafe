"""Small pieces every job uses: holdout splits, confusion-matrix artifacts."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

MODEL_DIR = "model"  # a run's trained model, beside its other artifacts (V2S program, AT checkpoint)

def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with ``fraction`` of each class held out (at least one per class
    that has two or more examples), so tiny UCR training sets keep every class in both."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_val = int(round(fraction * len(idx)))
        n_val = min(max(n_val, 1), len(idx) - 1) if len(idx) > 1 else 0
        val += list(idx[:n_val])
        train += list(idx[n_val:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def write_confusion(matrix: np.ndarray, labels: Sequence[str], out_dir: Path, title: str) -> None:
    """confusion_matrix.csv (rows = truth) and a PNG heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    names = [str(label) for label in labels]
    pd.DataFrame(matrix, index=names, columns=names).to_csv(out_dir / "confusion_matrix.csv")
    size = min(12.0, 2.5 + 0.35 * len(names))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 6 else 0, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(names) <= 12:
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, int(v), ha="center", va="center", fontsize=8,
                    color="white" if v > matrix.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out_dir / "confusion_matrix.png", dpi=110)
    plt.close(fig)
