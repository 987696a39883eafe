"""The ``v2s`` kind: reprogram a registered source AM (or fine-tune it: TF_a) on a UCR set."""
from __future__ import annotations

import time

from typing import Any

import numpy as np

from xferlab.catalog import DATASETS
from xferlab.jobs.common import MODEL_DIR, stratified_holdout, write_confusion
from xferlab.spec import Instance

SOURCE_SAMPLE = "source_sample.npz"  # speech clips logged by pretraining, for the SWD


def pretrain_hint(source: str) -> str:
    return (f"pretrain it with `xferlab run experiments/sources/{source}.yaml` "
            "(or run experiments/smoke/v2s.yaml, which pretrains a tiny one itself)")


def load_source(instance: Instance, run: Any) -> Any:
    """The frozen AM named by ``model.source`` (pretrained by the runner first when the spec
    names a ``model.pretrain`` spec and the model was missing)."""
    from xferlab import tracking
    from xferlab.v2s import models  # noqa: F401  (registers kapre's and our layers for loading)

    source = instance.cfg.model.source
    am, ref = tracking.load_keras_model(source, hint=pretrain_hint(source))
    tracking.record_lineage(run, ref)
    return am, ref


def split_validation(instance: Instance, ds: Any) -> tuple[tuple, tuple]:
    """(train, val) by ``train.val_mode``: paper = UCR test split as validation (the
    authors' script), holdout = a stratified part of the training split."""
    t = instance.cfg.train
    if t.val_mode == "paper":
        return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)
    train_idx, val_idx = stratified_holdout(ds.y_train, t.val_fraction, instance.seed)
    return (ds.x_train[train_idx], ds.y_train[train_idx]), (ds.x_train[val_idx], ds.y_train[val_idx])


def build_model(instance: Instance, am: Any, ds: Any, train: tuple) -> Any:
    from xferlab.v2s.reprogram import build_tf_a, build_v2s

    m = instance.cfg.model
    if m.method == "tf_a":
        return build_tf_a(am, ds.n_classes, ds.length, seed=instance.seed)
    return build_v2s(am, ds.n_classes, ds.length, seg=m.seg, mapping=m.mapping, mapping_kind=m.mapping_kind,
                     dropout=m.dropout, l2=m.l2, mask=m.mask, seed=instance.seed, x_train=train[0], y_train=train[1])


def swd_function(instance: Instance, model: Any, ref: Any, x_target: np.ndarray) -> Any:
    """Per-epoch SWD between source speech and reprogrammed target logits, when asked for."""
    cfg = instance.cfg
    if not cfg.analysis.swd or cfg.model.method != "v2s":
        return None
    from xferlab import tracking
    from xferlab.v2s.analysis import make_swd_fn

    with np.load(tracking.download_artifact(ref.run_id, SOURCE_SAMPLE)) as sample:
        speech = sample["x"].astype(np.float32) / 32767.0
    return make_swd_fn(model, speech, x_target, cfg.analysis.swd_projections, instance.seed)


def run(instance: Instance, run: Any) -> dict[str, float]:
    """Train, log per-epoch metrics, then the final metrics and the paper's figures."""
    cfg = instance.cfg
    ds = DATASETS.create(instance.dataset, instance.config["data"])
    am, ref = load_source(instance, run)
    train, val = split_validation(instance, ds)
    model = build_model(instance, am, ds, train)
    run.set_tags({"xferlab.val_mode": cfg.train.val_mode, "xferlab.method": cfg.model.method,
                  "xferlab.n_classes": ds.n_classes})
    from xferlab.v2s.train import train_v2s

    t = cfg.train
    fit_start = time.perf_counter()
    result = train_v2s(model, *train, *val, ds.x_test, ds.y_test, epochs=t.epochs, batch_size=t.batch_size,
                       lr=t.lr, decay=t.lr_decay, seed=instance.seed, on_epoch=run.log_epoch, patience=t.patience,
                       swd_fn=swd_function(instance, model, ref, ds.x_train))
    metrics = {k: float(v) for k, v in result.metrics.items()}
    metrics["mpce"] = metrics.get("test_mpce_term", float("nan"))
    metrics["fit_seconds"] = time.perf_counter() - fit_start  # the training alone: the rest of the run is overhead
    run.log_metrics(metrics)
    write_confusion(result.confusion, [str(label) for label in ds.labels], run.artifact_dir,
                    f"{ds.name}: test confusion")
    keep_model(instance, model, ref, ds, run.artifact_dir / MODEL_DIR)
    if cfg.analysis.figures:
        write_figures(instance, model, ds, result, run.artifact_dir)
    return metrics


def keep_model(instance: Instance, model: Any, ref: Any, ds: Any, out: Any) -> None:
    """The trained model, loadable again (``load_kept``): V2S keeps its program (theta, mask,
    label mapping) and a pinned reference to the source AM version, not a copy of the AM;
    TF_a, whose AM was fine-tuned, keeps the whole Keras model."""
    import json

    from xferlab.v2s.reprogram import program_state

    out.mkdir(parents=True, exist_ok=True)
    m = instance.cfg.model
    meta = {"method": m.method, "source_uri": ref.uri, "source_name": ref.name, "source_version": ref.version,
            "dataset": instance.dataset, "data": instance.config["data"], "length": int(ds.length),
            "seg": int(m.seg), "n_classes": int(ds.n_classes), "labels": [str(x) for x in ds.labels]}
    if m.method == "v2s":
        np.savez(out / "program.npz", **program_state(model))
    else:
        model.save(out / "tf_a.keras")
    (out / "model.json").write_text(json.dumps(meta, indent=1, default=str))


def load_kept(local: Any) -> tuple[Any, dict]:
    """(model, meta) from a run's downloaded ``model/`` folder (see :func:`keep_model`)."""
    import json
    from pathlib import Path

    from xferlab import tracking
    from xferlab.v2s import models  # noqa: F401  (registers the layers for loading)

    folder = Path(local)
    meta = json.loads((folder / "model.json").read_text())
    if meta["method"] == "tf_a":
        return models.load_keras_model(str(folder / "tf_a.keras")), meta
    am, _ = tracking.load_keras_model(meta["source_uri"], hint="the source model version this run used was deleted")
    from xferlab.v2s.reprogram import restore_v2s

    with np.load(folder / "program.npz") as state:
        return restore_v2s(am, dict(state), meta["length"], meta["seg"]), meta


def write_figures(instance: Instance, model: Any, ds: Any, result: Any, out: Any) -> None:
    """Figure 3 (curves), Figure 4 (CAM panel) and Figure 5 (t-SNE) of this run."""
    from xferlab.v2s import analysis, figures

    cfg = instance.cfg
    split = "test (as validation)" if cfg.train.val_mode == "paper" else "val"
    title = f"{ds.name} {cfg.model.method} seed {instance.seed}"
    figures.plot_training_curves(result.history, out / "fig3_curves.png", title=title, split=split)
    if cfg.model.method != "v2s":
        return
    figures.plot_cam_panel(analysis.cam_analysis(model, ds.x_test[0]), out / "fig4_cam.png",
                           title=f"{ds.name}: reprogrammed test sample 0 (true class {ds.y_test[0]})")
    n = min(len(ds.x_test), 300)
    reps = analysis.tsne_representations(model, ds.x_test[:n])
    figures.plot_tsne(figures.tsne_points(reps, instance.seed), ds.y_test[:n], out / "fig5_tsne.png",
                      title=f"{ds.name}: AM logits before and after reprogramming")
