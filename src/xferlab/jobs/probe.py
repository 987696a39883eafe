"""``xferlab probe RUN_ID``: where along the frozen source model a target's classes separate.

A V2S run gives one number, its test accuracy. When it falls short of the paper, the
question is where the target's class information is lost: in the mel front end (fixed,
the paper's), in the source model's learned layers (what its speech taught it), or in
the program and label mapping. The probe fits two fixed read-outs (logistic regression,
1-nearest-neighbour) on the series the run trained on, at each depth of the AM, with and
without the run's program, and scores them on the test split; the read-outs tune nothing
there (a ``val_mode: paper`` run's own program, its last row, kept the epoch best on test).
The table (``probe.csv``) and its figure (``probe.png``) are logged to the run under
``probe/``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from xferlab.catalog import DATASETS
from xferlab.errors import UserError
from xferlab.jobs.common import stratified_holdout
from xferlab.jobs.explain import kept_v2s

PROBE_DIR = "probe"


def training_series(params: dict, ds) -> tuple:
    """The (x, y) the run's program was trained on: the UCR training split less the
    run's held-out validation (val_mode holdout, same fraction and seed), or all of it
    (val_mode paper, where the test split served as validation)."""
    if params.get("train.val_mode", "holdout") == "paper":
        return ds.x_train, ds.y_train
    missing = [k for k in ("train.val_fraction", "seed") if k not in params]
    if missing:
        raise UserError(f"the run has no {missing[0]} param, so its training series cannot be rebuilt: run its "
                        "spec again with --force")
    idx, _ = stratified_holdout(ds.y_train, float(params["train.val_fraction"]), int(params["seed"]))
    return ds.x_train[idx], ds.y_train[idx]


def probe(run_id: str, out: Path | None = None, log: bool = True) -> tuple[pd.DataFrame, Path]:
    """The probe table of a finished V2S run and the path of its figure."""
    from xferlab import tracking
    from xferlab.v2s import analysis, figures

    run, model, meta = kept_v2s(run_id, "probe")
    missing = analysis.missing_layers(analysis.inner_am(model))
    if missing:
        raise UserError(f"the run's source model {meta['source_name']} has no layer {missing[0]!r}: probe reads "
                        f"{', '.join(analysis.PROBE_LAYERS)}, which every AM xferlab builds names so")
    ds = DATASETS.create(meta["dataset"], meta["data"])
    x_train, y_train = training_series(run.data.params, ds)
    table = pd.DataFrame(analysis.layer_probe(model, x_train, y_train, ds.x_test, ds.y_test))
    out = Path(out or tempfile.mkdtemp(prefix="xferlab-probe-"))
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "probe.csv", index=False)
    title = (f"{ds.name}: {meta['source_name']} v{meta['source_version']}, seg {meta['seg']}, seed "
             f"{run.data.params.get('seed', '?')} (read-outs fit on {len(x_train)} training series, "
             f"scored on {len(ds.y_test)} test series)")
    png = figures.plot_probe(table.to_dict("records"), out / "probe.png", title, chance=1.0 / ds.n_classes)
    if log:
        tracking.log_artifacts(run_id, str(out), PROBE_DIR)
    return table, png
