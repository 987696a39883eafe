"""The ``pretrain_v2s`` kind: train a source AM on speech commands and register it.

The model is registered under ``model.register_as`` (default: the architecture name, so
``model.source: attrnn`` in a V2S spec finds it); the ``champion`` alias moves to the new
version only when its validation accuracy beats the current champion's. A few hundred
held-out clips are logged beside it (``source_sample.npz``) so that V2S runs can compute
the sliced Wasserstein distance to the source domain from the registry alone.

``train.epochs: 0`` registers the seeded, untrained network, scored like a trained one:
the control that measures what pretraining contributes to reprogramming
(``experiments/sources/attrnn_untrained.yaml``).
"""
from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from xferlab.catalog import DATASETS
from xferlab.spec import Instance

SAMPLE_CLIPS = 256


def save_source_sample(x: np.ndarray, y: np.ndarray, out: Any, seed: int) -> None:
    """Up to SAMPLE_CLIPS test clips as int16 (small, exact enough for logits)."""
    idx = np.sort(np.random.default_rng(seed).choice(len(x), min(SAMPLE_CLIPS, len(x)), replace=False))
    clipped = np.clip(x[idx], -1.0, 1.0)
    np.savez_compressed(out / "source_sample.npz", x=(clipped * 32767).astype(np.int16), y=y[idx])


def robustness(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``test_<perturbation>_accuracy`` on the held-out test split under each perturbation
    alone (fixed draws: every source model hears the same perturbed clips)."""
    from xferlab.data.perturb import probe_sets

    return {f"test_{name}_accuracy": float((model.predict(xp, batch_size=128, verbose=0).argmax(axis=1) == y).mean())
            for name, xp in probe_sets(x)}


def run(instance: Instance, run: Any) -> dict[str, float]:
    from xferlab import tracking
    from xferlab.kinds import get_kind
    from xferlab.v2s.figures import plot_training_curves
    from xferlab.v2s.models import build_source_model
    from xferlab.v2s.pretrain import pretrain_source

    cfg = instance.cfg
    task = DATASETS.create(instance.dataset, instance.config["data"])
    x = {split: np.asarray(clips, dtype=np.float32) for split, clips in task.x.items()}  # readers decode here
    t = cfg.train
    model = build_source_model(cfg.model.arch, task.n_classes, instance.seed)
    fit_start = time.perf_counter()
    result = pretrain_source(model, x["train"], task.y["train"], x["val"], task.y["val"],
                             x["test"], task.y["test"], epochs=t.epochs, batch_size=t.batch_size,
                             lr=t.lr, seed=instance.seed, augment=t.augment,
                             lr_schedule=t.lr_schedule, patience=t.patience, perturb=tuple(t.perturb),
                             perturb_p=t.perturb_p, on_epoch=run.log_epoch)
    metrics = {k: float(v) for k, v in result.metrics.items()}
    metrics["fit_seconds"] = time.perf_counter() - fit_start  # the training (scoring alone at epochs=0): the rest is overhead
    metrics.update(robustness(model, x["test"], task.y["test"]))
    metrics["n_params"] = float(model.count_params())
    run.log_metrics(metrics)
    out = run.artifact_dir
    (out / "labels.json").write_text(json.dumps(task.classes))
    save_source_sample(x["test"], task.y["test"], out, instance.seed)
    if result.history:  # train.epochs=0 (the untrained control) has no curves to draw
        plot_training_curves(result.history, out / "curves.png", title=f"{cfg.model.arch} on {task.name}")
    name = get_kind(instance.kind).registers(instance)
    version = tracking.register_keras_model(model, name, run, metric=metrics["best_val_accuracy"],
                                            metric_name="val_accuracy", input_example=x["test"][:1])
    run.set_tags({"xferlab.registered_model": name, "xferlab.registered_version": version,
                  "xferlab.n_classes": task.n_classes})
    print(f"  registered {name} version {version}: held-out-speaker test accuracy "
          f"{metrics.get('test_accuracy', float('nan')):.4f}", flush=True)
    return metrics
