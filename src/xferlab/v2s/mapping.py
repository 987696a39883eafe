"""Label mappings h: which source classes vote for which target class (numpy only).

A mapping is a list of index lists, ``index_lists[j]`` = the source classes owned by
target class j, or equivalently a (|Y_S| x |Y_T|) 0/1 matrix. The target score of class j
is the mean of the AM's probabilities over its source classes (V2S.md step 4).

Kinds (``model.mapping_kind``):
- ``random``     many-to-one: each target class owns ``mapping`` source classes, taken
                 from a seeded permutation of the source classes (the paper's "random"
                 mapping). ``seed=None`` reproduces the authors' code: classes in order,
                 target j owns j*m .. j*m+m-1.
- ``one_to_one`` the same with m = 1 (``mapping`` is ignored, so grids over the kind work).
- ``frequency``  appendix D.2: each target class gets the source classes the AM predicts
                 most often for its training samples, without reuse (greedy on counts).
``mapping`` is an int or ``"max"`` (= |Y_S| // |Y_T|); m * |Y_T| > |Y_S| is a UserError.
"""
from __future__ import annotations

import numpy as np

from xferlab.errors import UserError

MAPPING_KINDS = ("random", "one_to_one", "frequency")


def resolve_mapping(mapping: int | str, n_source: int, n_target: int) -> int:
    """The number m of source classes per target class, checked against |Y_S|."""
    if n_target < 2:
        raise UserError(f"the target task needs at least 2 classes, got {n_target}")
    if n_target > n_source:
        raise UserError(f"the target task has {n_target} classes but the AM only {n_source} labels: V2S maps "
                        "each target class to its own source labels, so it needs at most as many classes as "
                        "labels; use a source model with more labels (or merge target classes)")
    if mapping == "max":
        m = n_source // n_target
    elif isinstance(mapping, (int, np.integer)) and not isinstance(mapping, bool):
        m = int(mapping)
    else:
        raise UserError(f"model.mapping must be a positive integer or 'max', got {mapping!r}")
    if m < 1:
        raise UserError(f"model.mapping must be >= 1 (got {mapping!r} with {n_target} target "
                        f"and {n_source} source classes); use a smaller target task or more source classes")
    if m * n_target > n_source:
        raise UserError(f"model.mapping={m} x {n_target} target classes needs {m * n_target} source "
                        f"classes but the AM has {n_source}; use model.mapping <= {n_source // n_target} "
                        "or 'max'")
    return m


def random_mapping(n_source: int, n_target: int, m: int, seed: int | None) -> list[list[int]]:
    """Many-to-one mapping from a seeded permutation (``seed=None``: the authors' order)."""
    resolve_mapping(m, n_source, n_target)
    order = np.arange(n_source) if seed is None else np.random.default_rng(seed).permutation(n_source)
    return [sorted(int(s) for s in order[j * m:(j + 1) * m]) for j in range(n_target)]


def frequency_mapping(source_pred: np.ndarray, y: np.ndarray, n_source: int, n_target: int,
                      m: int) -> list[list[int]]:
    """Appendix D.2: assign source classes by how often the AM predicts them per target class.

    ``source_pred`` (n,) are the AM's argmax source classes on the (padded, not yet
    reprogrammed) target training samples, ``y`` (n,) their target labels. Greedy over
    the count matrix C[j, s], largest count first (ties: lower j, then lower s): a pair
    is taken when target j still needs classes and source s is unused, so each target
    class ends with exactly m source classes and none is reused.
    """
    resolve_mapping(m, n_source, n_target)
    counts = np.zeros((n_target, n_source), dtype=np.int64)  # C[j, s]
    np.add.at(counts, (np.asarray(y, int), np.asarray(source_pred, int)), 1)
    pairs = sorted(np.ndindex(n_target, n_source), key=lambda js: (-counts[js], js[0], js[1]))
    owned: list[list[int]] = [[] for _ in range(n_target)]
    used: set[int] = set()
    for j, s in pairs:
        if len(owned[j]) < m and s not in used:
            owned[j].append(int(s))
            used.add(int(s))
    return [sorted(o) for o in owned]


def mapping_matrix(index_lists: list[list[int]], n_source: int) -> np.ndarray:
    """Index lists -> the (|Y_S| x |Y_T|) 0/1 matrix (column j marks target j's sources)."""
    mat = np.zeros((n_source, len(index_lists)), dtype=np.float32)
    for j, sources in enumerate(index_lists):
        mat[list(sources), j] = 1.0
    return mat


def map_scores(probs: np.ndarray, index_lists: list[list[int]]) -> np.ndarray:
    """Source probabilities (n, |Y_S|) -> target scores (n, |Y_T|), mean over owned classes."""
    return np.stack([probs[:, sources].mean(axis=1) for sources in index_lists], axis=1)


def build_mapping(kind: str, mapping: int | str, n_source: int, n_target: int, seed: int | None,
                  source_pred: np.ndarray | None = None, y: np.ndarray | None = None) -> list[list[int]]:
    """Dispatch on ``mapping_kind``; ``frequency`` needs the AM's predictions and labels."""
    if kind not in MAPPING_KINDS:
        raise UserError(f"model.mapping_kind {kind!r} is unknown: use one of {', '.join(MAPPING_KINDS)}")
    if kind == "one_to_one":
        return random_mapping(n_source, n_target, 1, seed)
    m = resolve_mapping(mapping, n_source, n_target)
    if kind == "random":
        return random_mapping(n_source, n_target, m, seed)
    if source_pred is None or y is None:
        raise UserError("mapping_kind 'frequency' needs the target training data to count the AM's "
                        "predictions; pass x_train and y_train")
    return frequency_mapping(source_pred, y, n_source, n_target, m)
