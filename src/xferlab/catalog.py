"""What is registered: datasets, models, tables and experiment kinds.

Every entry is a lazy ``"module:attr"`` string, so importing this module (for
``xferlab list`` or spec validation) imports no framework. Dataset factories take
``(data: dict)`` -- the instance's resolved ``data`` section -- and prefix families get
the full name first.
"""
from __future__ import annotations

import functools
from typing import Any, Iterable, Mapping

from xferlab.errors import UserError
from xferlab.registry import DATASETS, KINDS, MODELS, TABLES  # noqa: F401  (re-exported)
from xferlab.spec import Instance

# --- datasets ---------------------------------------------------------------------------
DATASETS.register("ucr/", "xferlab.catalog:_load_ucr",
                  help="UCR archive: bundled sets, or any set under $XFERLAB_UCR_DIR / data.ucr_dir")


def _load_ucr(name: str, data: Mapping[str, Any]) -> Any:
    from xferlab.data.ucr import load_ucr

    return load_ucr(name, data.get("ucr_dir"))


def _synth_task(name: str, data: Mapping[str, Any]) -> Any:
    from xferlab.data.tasks import load_task

    return load_task(name, data)


SYNTH_TASKS = {
    "synth/words": "35 words + _silence_ + _unknown_, speaker-disjoint (V2S source task)",
    "synth/speaker": "speaker identity, random split (orthogonal to style and words)",
    "synth/style": "speaking style (emotion-like), speaker-disjoint, optional data.confound",
    "synth/style_speakersplit": "speaking style, speaker-disjoint split (the paper's speaker-wise)",
    "synth/style_random": "speaking style, random split",
    "synth/digits": "ten digits, clean, speaker-disjoint",
    "synth/digits_noisy": "ten digits mixed with noise at 20-40 dB SNR",
    "synth/digits_verynoisy": "ten digits mixed with noise at 0-10 dB SNR",
    "synth/noise_kind": "noise kind mixed into word clips (orthogonal to digits)",
}
for _name, _help in SYNTH_TASKS.items():
    DATASETS.register(_name, functools.partial(_synth_task, _name), help=f"synthetic TTS corpus: {_help}")


def _real_task(module: str, name: str, data: Mapping[str, Any]) -> Any:
    import importlib

    return importlib.import_module(f"xferlab.data.{module}").load_task(name, data)


REAL_TASKS = {
    "gsc/words": ("speech_commands", "Google Speech Commands v1/v2: words + _silence_ + _unknown_ (data.root)"),
    "gsc/digits": ("speech_commands", "Speech Commands digits, clean, 1000 per class"),
    "gsc/digits_noisy": ("speech_commands", "digits + MS-SNSD noise at 20-40 dB (data.noise_root)"),
    "gsc/digits_verynoisy": ("speech_commands", "digits + MS-SNSD noise at 0-10 dB (data.noise_root)"),
    "mssnsd/noise_type": ("mssnsd", "MS-SNSD noisy speech, noise-type labels"),
    "iemocap/emotion_random": ("iemocap", "IEMOCAP 4 emotions, random split"),
    "iemocap/emotion_speakerwise": ("iemocap", "IEMOCAP 4 emotions, sessions 1-3 / 4 / 5"),
    "iemocap/speaker": ("iemocap", "IEMOCAP session (speaker pair) identity"),
    "goodsounds/goodness_random": ("goodsounds", "Good-Sounds goodness (5 classes, balanced), random split"),
    "goodsounds/goodness_instrumentwise": ("goodsounds", "Good-Sounds goodness, instrument-wise 8/2/2"),
    "goodsounds/instrument": ("goodsounds", "Good-Sounds instrument identity"),
    "nsynth/family": ("nsynth", "NSynth instrument family (11)"),
    "librispeech/speaker": ("librispeech", "LibriSpeech speaker identity"),
    "librispeech/words": ("librispeech", "LibriSpeech 1000 most frequent words (data.alignment)"),
}
for _name, (_module, _help) in REAL_TASKS.items():
    DATASETS.register(_name, functools.partial(_real_task, _module, _name), help=f"local data: {_help}")


def load() -> None:
    """Registration happens at import; kept as an explicit call site for readers."""


def check_dataset(name: str, data: Mapping[str, Any]) -> None:
    """Fail early (before any run starts) on a dataset name that cannot be served."""
    if name not in DATASETS:
        raise UserError(DATASETS.unknown_message(name))
    if name.startswith("ucr/"):
        from xferlab.data.ucr import check_ucr

        check_ucr(name, data.get("ucr_dir"))
    if name in REAL_TASKS:
        from pathlib import Path

        root = data.get("root")
        if not root or not Path(root).is_dir():
            raise UserError(f"{name} reads your local copy of the dataset, but data.root "
                            f"{'is not set' if not root else repr(root) + ' is not a folder'}: "
                            f"add --set data.root=/path/to/the/dataset (see the README's data section)")


def check_instances(instances: Iterable[Instance]) -> None:
    """Validate what a dry run can check without frameworks: dataset names, kinds."""
    seen: set[str] = set()
    for inst in instances:
        if inst.kind not in KINDS:
            raise UserError(f"kind {inst.kind!r} cannot run yet in this version of xferlab")
        check_at_layer(inst)
        key = f"{inst.dataset}|{inst.get('data.ucr_dir')}"
        if key not in seen:
            seen.add(key)
            check_dataset(inst.dataset, inst.config["data"])


def check_at_layer(inst: Instance) -> None:
    """at.layer must name a tap of its mode: conv 1..13 (after the ReLU), paper 0..12."""
    if inst.kind != "at":
        return
    layer, tap = inst.get("at.layer"), inst.get("at.tap")
    low, high = (1, 13) if tap == "conv" else (0, 12)
    if not low <= layer <= high:
        raise UserError(f"at.layer={layer} is out of range for tap mode {tap!r}: use {low}..{high}")


def describe_dataset(name: str, ucr_dir: str | None = None) -> str:
    """Human summary of a dataset (sizes, length, classes) for `xferlab data show`."""
    data = {"ucr_dir": ucr_dir}
    check_dataset(name, data)
    return DATASETS.create(name, data).describe()


# --- models (architectures; trained models live in the MLflow Model Registry) ----------
for _arch, _help in {"attrnn": "V2S_a attention RNN (~0.2M)", "attrnn_unet": "V2S_u U-Net front (~0.3M)",
                     "tcn": "temporal convolutional network (Table 4 ablation)"}.items():
    MODELS.register(_arch, f"xferlab.v2s.models:{_arch}", help=f"V2S source AM: {_help}")
    MODELS.register(f"{_arch}_tiny", f"xferlab.v2s.models:{_arch}_tiny", help=f"tiny {_arch} for tests")
for _arch, _help in {"vgg16": "width 1 (the paper)", "vgg16_w8": "width 1/8 (CPU)",
                     "vgg16_w16": "width 1/16 (CPU)", "vgg16_tiny": "tiny, for tests"}.items():
    MODELS.register(_arch, f"xferlab.at.vgg:{_arch}", help=f"anti-transfer VGG16 without BN, {_help}")

# --- experiment kinds -------------------------------------------------------------------
KINDS.register("v2s", "xferlab.jobs.v2s:run", help="Voice2Series reprogramming (or TF_a) on a UCR set")
KINDS.register("at", "xferlab.jobs.at:run", help="VGG16 on spectrograms: baseline, weight-init or anti-transfer")
KINDS.register("pretrain_at", "xferlab.jobs.at:run", help="train and register an orthogonal VGG16")
KINDS.register("pretrain_v2s", "xferlab.jobs.pretrain_v2s:run", help="train and register a V2S source AM")

# --- report tables (built by xferlab.report from MLflow runs) ----------------------------
from xferlab.report.catalog import ITEMS as _REPORT_ITEMS  # noqa: E402  (plain data, no imports)

for _name, (_title, _target) in _REPORT_ITEMS.items():
    TABLES.register(_name, _target, help=_title)
