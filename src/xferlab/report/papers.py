"""The papers' published numbers, read from the report's own package data (``reference/``).

The CSVs under ``reference/`` are a copy of the project's reference collection (sources
named in ``reference/README.md``), shipped inside the package so that an installed
xferlab can compare against the papers without the repository around it.
"""
from __future__ import annotations

import functools
from importlib import resources

import pandas as pd

# Baselines the paper's per-layer "improvement" plot subtracts (percent).
PER_LAYER_BASELINES = {("train", "random"): 69.05, ("train", "speaker"): 67.8,
                       ("test", "random"): 63.7, ("test", "speaker"): 57.2}

# Paper column of Table 2 for each source architecture (tiny test variants map to the
# architecture they shrink; the report shows the actual source beside the number).
SOURCE_COLUMNS = {"attrnn": "v2s_a", "attrnn_unet": "v2s_u", "resnet": "v2s_r", "vggish": "v2s_v",
                  "tcn": "v2s_t", "openl3": "v2s_o"}
COLUMN_LABELS = {"sota": "SOTA", "v2s_a": "V2S_a", "v2s_u": "V2S_u", "v2s_r": "V2S_r", "v2s_v": "V2S_v",
                 "v2s_t": "V2S_t", "v2s_o": "V2S_o", "tf_a": "TF_a"}
SOURCE = {"v2s": "Yang, Tsai, Chen, Voice2Series, ICML 2021 (arXiv 2106.09296)",
          "antitransfer": "Guizzo, Weyde, Tarroni, Anti-transfer learning, Neural Networks 142 (2021), "
                          "arXiv 2006.06494 (numbers from the authors' plotting scripts)"}


@functools.lru_cache(maxsize=None)
def load(name: str) -> pd.DataFrame:
    """One table of ``reference/`` by file stem, e.g. ``load("v2s_table2")``; cached, so
    callers must not mutate it (use ``.copy()``)."""
    path = resources.files("xferlab.report") / "reference" / f"{name}.csv"
    with path.open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)


def column_for_source(arch: str | None, method: str | None) -> str | None:
    """Table 2 paper column for a run: ``tf_a`` for fine-tuning, else by source arch."""
    if method == "tf_a":
        return "tf_a"
    if not arch:
        return None
    base = arch.removesuffix("_tiny")
    return SOURCE_COLUMNS.get(base)


def dataset_info() -> pd.DataFrame:
    """type, input size, train size and classes per UCR dataset of Table 2 (index: name)."""
    return load("v2s_table2")[["dataset", "type", "input_size", "train_size", "classes"]].set_index("dataset")
