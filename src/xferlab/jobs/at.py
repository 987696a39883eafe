"""The ``at`` and ``pretrain_at`` kinds: VGG16 on spectrograms, with or without anti-transfer.

``at`` trains on a target task, optionally initialised from a registered model
(``init.from``, weight-init baseline and the first half of dual AT) and optionally pushed
away from a registered orthogonal model (``at.enabled``). ``pretrain_at`` trains the
orthogonal model itself and registers it. Both may register their result
(``model.register_as``) so that later specs can start from it.
"""
from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from xferlab.catalog import DATASETS
from xferlab.data.features import MAGNITUDES, magnitude_of
from xferlab.jobs.common import MODEL_DIR, write_confusion
from xferlab.serving import CONFIG_FILE, STATE_FILE
from xferlab.spec import Instance

HINT = "pretrain it with `xferlab run experiments/synth/orthogonal.yaml` (or the spec that registers it)"


def spectrogram_splits(instance: Instance) -> tuple[Any, dict[str, Any]]:
    """Paper spectrograms (T, 129) of non-overlapping segments, from the shared on-disk
    cache (written by the first instance that needs them), read as ``model.magnitude`` and
    z-scored with the training split's global mean and std of that magnitude; (cache,
    {split: dataset})."""
    from xferlab.at.streams import ZScoredSplit
    from xferlab.data.feature_cache import cached_spectrograms

    data = instance.config["data"]
    cache, hit = cached_spectrograms(instance.dataset, data, instance.cfg.data.segment_s,
                                     lambda: DATASETS.create(instance.dataset, data))
    print(f"  features {'read from' if hit else 'decoded into'} {cache.root}", flush=True)
    magnitude = instance.cfg.model.magnitude
    return cache, {name: ZScoredSplit.of(cache, name, magnitude) for name in cache.splits}


def load_registered(ref: str, run: Any, role: str, seed: int, magnitude: str = MAGNITUDES[0]) -> Any:
    """A registered VGG16 (state dict + config, weights_only) with its lineage recorded; it
    must have been trained on the ``magnitude`` this run feeds it (configs written before the
    option: linear), else its activations would be those of inputs it never saw."""
    from xferlab import tracking
    from xferlab.at.vgg import batch_norm_of, build_vgg
    from xferlab.errors import UserError

    state, config, model_ref = tracking.load_torch_state(ref, hint=HINT)
    trained_on = magnitude_of(config)
    if trained_on != magnitude:
        key = "at.orthogonal" if role == "orthogonal" else "init.from"
        raise UserError(f"the {role} model {model_ref.uri} was trained on {trained_on} magnitudes but this run "
                        f"reads {magnitude} ones: set model.magnitude={trained_on}, or point {key} at a model "
                        f"trained with model.magnitude={magnitude}")
    tracking.record_lineage(run, model_ref, role=role)
    model = build_vgg(config["width"], config["n_classes"], seed=seed,
                      batch_norm=batch_norm_of(config))
    model.load_state_dict(state)
    return model


def build_models(instance: Instance, run: Any, n_classes: int) -> tuple[Any, Any]:
    """(trained model, orthogonal model or None), with init.from applied. Both registered
    models were planned by the runner (the kind's prerequisites) before this run opened."""
    from xferlab.at.init import init_from_state
    from xferlab.at.vgg import build_vgg

    cfg = instance.cfg
    model = build_vgg(cfg.model.width, n_classes, seed=instance.seed, dropout=cfg.model.dropout,
                      head_init=cfg.model.head_init, batch_norm=cfg.model.norm == "batch")
    init, at = sections(cfg)
    if init is not None and init.from_:
        report = init_from_state(model, load_registered(init.from_, run, "init", instance.seed, cfg.model.magnitude))
        run.set_tags({"xferlab.init_loaded_tensors": report.loaded})
    orth = (load_registered(at.orthogonal, run, "orthogonal", instance.seed, cfg.model.magnitude)
            if at is not None and at.enabled else None)
    return model, orth


def sections(cfg: Any) -> tuple[Any, Any]:
    """(init, at) sections of an ``at`` config; (None, None) for ``pretrain_at``, which
    trains plainly."""
    return getattr(cfg, "init", None), getattr(cfg, "at", None)


def run(instance: Instance, run: Any) -> dict[str, float]:
    """Train (baseline / weight-init / AT), log per-epoch and final metrics and figures."""
    from xferlab.at.augment import SpecMask
    from xferlab.at.train import train_at

    cfg = instance.cfg
    cache, data = spectrogram_splits(instance)
    task = cache.meta  # name, classes, n_classes: no decoding when the features are cached
    model, orth = build_models(instance, run, task["n_classes"])
    at_cfg = None
    if condition(cfg) in ("at", "dual_at"):  # the loss settings; the model names were resolved above
        at_cfg = {k: v for k, v in instance.config["at"].items() if k not in ("orthogonal", "pretrain")}
    t = cfg.train
    run.set_tags({"xferlab.condition": condition(cfg), "xferlab.n_classes": task["n_classes"],
                  "xferlab.feature_cache": cache.root.name})
    kept = run.artifact_dir / MODEL_DIR  # the best checkpoint, in the layout of a registered model
    kept.mkdir(parents=True, exist_ok=True)
    (kept / CONFIG_FILE).write_text(json.dumps(model_config(instance, cache), indent=1))
    fit_start = time.perf_counter()
    masks = SpecMask(t.mask_freq, t.mask_freq_width, t.mask_time, t.mask_time_width)
    result = train_at(model, data["train"], data["val"], data["test"], epochs=t.epochs, lr=t.lr,
                      batch_size=t.batch_size, patience=t.patience, seed=instance.seed, augment=masks,
                      lr_schedule=t.lr_schedule, lr_warmup=t.lr_warmup,
                      orth_model=orth, at_cfg=at_cfg, on_epoch=run.log_epoch,
                      checkpoint_path=str(kept / STATE_FILE))
    metrics = final_metrics(result)
    metrics["fit_seconds"] = time.perf_counter() - fit_start  # the training alone: the rest of the run is overhead
    run.log_metrics(metrics)
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = result.predictions["test"]
    write_confusion(confusion_matrix(y_true, y_pred, labels=range(task["n_classes"])), task["classes"],
                    run.artifact_dir, f"{task['name']}: test confusion")
    plot_losses(result.history, run.artifact_dir / "loss_epochs.png", f"{task['name']} ({condition(cfg)})")
    maybe_register(instance, run, result.model, cache, metrics)
    return metrics


def final_metrics(result: Any) -> dict[str, float]:
    """Whole-split metrics of the restored best checkpoint. Train/val names that per-epoch
    curves already use get a ``best_`` prefix (as in V2S), so no metric mixes the two."""
    per_epoch = {key for row in result.history for key in row}
    metrics = {("best_" + k if k in per_epoch else k): float(v) for k, v in result.metrics.items()}
    metrics["epochs_run"] = float(result.epochs_run)
    return metrics


def condition(cfg: Any) -> str:
    """baseline | weight_init | at | dual_at: what the report groups by (pretrain_at: baseline)."""
    init_, at_ = sections(cfg)
    at, init = at_ is not None and at_.enabled, init_ is not None and init_.from_
    if at:
        return "dual_at" if init else "at"
    return "weight_init" if init else "baseline"


def model_config(instance: Instance, cache: Any) -> dict[str, Any]:
    """What rebuilds the trained VGG16 and classifies raw audio with it (xferlab.serving):
    width, classes, the segment length, the magnitude and the training split's z-score
    statistics of that magnitude."""
    m, task = instance.cfg.model, cache.meta
    mean, std = cache.stats(m.magnitude)
    return {"width": m.width, "norm": m.norm, "magnitude": m.magnitude, "n_classes": task["n_classes"],
            "classes": task["classes"], "task": instance.dataset, "segment_s": task["seconds"], "mean": mean, "std": std}


def maybe_register(instance: Instance, run: Any, model: Any, cache: Any, metrics: dict[str, float]) -> None:
    """Register the trained model under the name its kind says (none: nothing to do)."""
    from xferlab.kinds import get_kind

    name = get_kind(instance.kind).registers(instance)
    if not name:
        return
    from xferlab import tracking

    version = tracking.register_torch_state(model.state_dict(), model_config(instance, cache), name, run,
                                            metric=metrics["best_val_accuracy"], metric_name="val_accuracy")
    run.set_tags({"xferlab.registered_model": name, "xferlab.registered_version": version})
    print(f"  registered {name} version {version} (val accuracy {metrics['best_val_accuracy']:.4f})", flush=True)


def plot_losses(history: list[dict[str, float]], path: Any, title: str) -> None:
    """Loss through epochs (the paper's figure): CE and AT loss, train and validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key, label in zip(axes, ("ce_loss", "at_loss", "accuracy"), ("cross-entropy", "AT loss", "accuracy")):
        for split, style in (("train", "o-"), ("val", "s-")):
            name = f"{split}_{key}" if key != "at_loss" or split == "val" else "at_loss"
            if any(name in h for h in history):
                ax.plot(epochs, [h.get(name, np.nan) for h in history], style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
