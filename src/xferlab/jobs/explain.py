"""``xferlab explain RUN_ID``: class activation maps of a finished V2S run, after the fact.

The seed's ``cam_v2s.py`` workflow: load the run's kept model (its program and label
mapping on the source AM version it used, :func:`xferlab.jobs.v2s.keep_model`), take any
test series of its dataset, and draw what Figure 4 draws (the series, the padded and the
reprogrammed waveform, the mel spectrogram, the class activation map of each chosen conv
layer, the attention weights) as one PNG per sample, logged to that run under
``explain/``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from xferlab.catalog import DATASETS
from xferlab.errors import UserError
from xferlab.jobs.common import MODEL_DIR

DEFAULT_LAYERS = ("conv1", "conv2")  # every source AM names its first two conv layers so


def explain(run_id: str, samples: Sequence[int], layers: Sequence[str] = DEFAULT_LAYERS,
            class_index: int | None = None, out: Path | None = None, log: bool = True) -> list[Path]:
    """Write (and log to the run) one CAM panel per test sample; their paths."""
    from xferlab import tracking
    from xferlab.v2s import analysis, figures

    _, model, meta = kept_v2s(run_id)
    ds = DATASETS.create(meta["dataset"], meta["data"])
    check_choices(samples, layers, class_index, model, len(ds.x_test), ds.n_classes, meta["dataset"])
    out = Path(out or tempfile.mkdtemp(prefix="xferlab-explain-"))
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in samples:
        cam = analysis.cam_analysis(model, ds.x_test[i], class_index, tuple(layers))
        title = (f"{ds.name}: test series {i} (true class {ds.labels[ds.y_test[i]]}), "
                 f"CAM of class {ds.labels[cam['class_index']]}")
        paths.append(figures.plot_cam_panel(cam, out / f"cam_test{i}_{'_'.join(layers)}.png", title=title))
    if log:
        tracking.log_artifacts(run_id, str(out), "explain")
    return paths


def kept_v2s(run_id: str, command: str = "explain"):
    """(run, V2S model, meta) of a finished V2S run, from its kept program on the pinned
    source version; one-line errors for any other run or one made before programs were kept."""
    from xferlab import tracking
    from xferlab.jobs.v2s import load_kept

    run = tracking.get_run(run_id)
    check_run(run, command)
    try:
        local = tracking.download_artifact(run_id, MODEL_DIR)
    except UserError:
        raise UserError(f"run {run_id} has no logged model ({MODEL_DIR}/): it was made before xferlab kept V2S "
                        "programs; run its spec again with --force") from None
    model, meta = load_kept(local)
    return run, model, meta


def check_run(run, command: str = "explain") -> None:
    """Only a finished V2S (not TF_a) run has a program to explain or probe."""
    tags, status = run.data.tags, run.info.status
    if tags.get("xferlab.kind") != "v2s":
        raise UserError(f"run {run.info.run_id} is a {tags.get('xferlab.kind', 'non-xferlab')} run: {command} needs "
                        "a V2S run (tag xferlab.kind = v2s)")
    if tags.get("xferlab.method") == "tf_a":
        raise UserError(f"run {run.info.run_id} is a TF_a run (a fine-tuned AM, no program to {command}): pick a "
                        "V2S run of the same cell")
    if status != "FINISHED":
        raise UserError(f"run {run.info.run_id} is {status}: {command} needs a FINISHED run")


def check_choices(samples: Sequence[int], layers: Sequence[str], class_index: int | None, model,
                  n_test: int, n_classes: int, dataset: str) -> None:
    """One-line errors naming what is valid, before any map is computed."""
    bad = [i for i in samples if not 0 <= i < n_test]
    if bad:
        raise UserError(f"test sample {bad[0]} is out of range: the test split of {dataset} has {n_test} series "
                        f"(0..{n_test - 1})")
    convs = conv_layers(model)
    unknown = [name for name in layers if name not in convs]
    if unknown:
        raise UserError(f"the run's AM has no conv layer {unknown[0]!r}: choose from {', '.join(convs)}")
    if class_index is not None and not 0 <= class_index < n_classes:
        raise UserError(f"--class {class_index} is out of range: {dataset} has {n_classes} classes (0..{n_classes - 1})")


def conv_layers(v2s) -> list[str]:
    """Names of the source AM's convolution layers, in order."""
    from xferlab.v2s.analysis import inner_am

    return [layer.name for layer in inner_am(v2s).layers if "Conv" in type(layer).__name__]
