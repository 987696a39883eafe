"""Source acoustic models (AMs) on 16000 raw samples, mel front end inside the model.

Every AM names its layers the same way, because reprogramming and the analysis tools
look them up by name:

- ``conv1``, ``conv2``      first and second conv layers (Grad-CAM, paper Figure 4)
- ``attention_weights``     softmax over time of the attention RNNs (Figure 4)
- ``embedding``             penultimate features (TF_a puts its new head here)
- ``logits``                pre-softmax scores (SWD and t-SNE representations)
- ``output``                softmax over the |Y_S| source classes

Architectures: ``attrnn`` (V2S_a, de Andrade et al. 2018, ~0.20M parameters with 36
classes), ``attrnn_unet`` (V2S_u: the conv front is a small U-Net, ~0.25M), ``tcn`` (a
dilated temporal conv net for the Table 4 ablation, ~0.12M) and ``*_tiny`` variants with
a handful of units for tests. The names live in the model registry only
(``xferlab.catalog``): build one with ``MODELS.create(arch, n_classes)``.
"""
from __future__ import annotations

import keras

from xferlab.errors import UserError
from xferlab.v2s.frontend import N_FRAMES, N_MELS, N_SAMPLES, mel_frontend

layers = keras.layers


@keras.saving.register_keras_serializable(package="xferlab")
class TimeStep(layers.Layer):
    """Select one time step of a sequence: (b, T, d) -> (b, d); a Lambda-free slice."""

    def __init__(self, index: int = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.index = index

    def call(self, x):
        return x[:, self.index]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "index": self.index}


def _conv_bn(x, filters: int, name: str | None = None, bn_name: str | None = None):
    """Conv2D (5x1, along time) + ReLU + BatchNorm, as in the AttRNN front."""
    x = layers.Conv2D(filters, (5, 1), padding="same", activation="relu", name=name)(x)
    return layers.BatchNormalization(name=bn_name)(x)


def _conv_front(x, conv: int):
    """AttRNN conv front: (b, T, 80, 1) -> (b, T, 80): 10 then 1 filters of 5x1."""
    x = _conv_bn(x, conv, "conv1", "bn1")
    x = _conv_bn(x, 1, "conv2", "bn2")  # (b, T, 80, 1)
    return layers.Reshape((N_FRAMES, N_MELS), name="squeeze")(x)


def _unet_front(x, filters: tuple[int, int, int]):
    """Small U-Net over time: (b, T, 80, 1) -> (b, T, 160).

    conv1 (f1) -> maxpool over time -> conv2 (f2) -> upsample -> concat with conv1
    (the U-Net skip) -> conv (f3) -> 1-filter conv. The 1-channel U-Net output is then
    concatenated with its normalised mel input (an outer skip), so the BiLSTM sees both
    the cleaned and the raw spectrogram; this is our reading of V2S_u, and what brings
    the model to the paper's ~0.3M size class (0.25M).
    """
    f1, f2, f3 = filters
    c1 = _conv_bn(x, f1, "conv1", "bn1")  # (b, T, 80, f1)
    p1 = layers.MaxPooling2D((2, 1), padding="same", name="pool1")(c1)  # (b, ceil(T/2), 80, f1)
    c2 = _conv_bn(p1, f2, "conv2", "bn2")
    u = layers.UpSampling2D((2, 1), name="up1")(c2)  # (b, 2 ceil(T/2), 80, f2)
    u = layers.Cropping2D(((0, 2 * (-(-N_FRAMES // 2)) - N_FRAMES), (0, 0)), name="crop1")(u)
    c3 = _conv_bn(layers.Concatenate(name="skip1")([u, c1]), f3, "conv3", "bn3")
    c4 = _conv_bn(c3, 1, "conv4", "bn4")  # (b, T, 80, 1)
    both = layers.Concatenate(name="skip0")([x, c4])  # (b, T, 80, 2)
    return layers.Reshape((N_FRAMES, 2 * N_MELS), name="squeeze")(both)


def _attention_head(seq, n_classes: int, query: int, dense: int, emb: int):
    """Dot-product attention with the last step as query, then the dense classifier."""
    last = TimeStep(-1, name="last_step")(seq)  # (b, 2u)
    q = layers.Dense(query, name="query")(last)  # (b, 2u)
    scores = layers.Dot(axes=[1, 2], name="attention_scores")([q, seq])  # (b, T)
    weights = layers.Softmax(name="attention_weights")(scores)  # (b, T)
    context = layers.Dot(axes=[1, 1], name="attention_context")([weights, seq])  # (b, 2u)
    x = layers.Dense(dense, activation="relu", name="dense")(context)
    x = layers.Dense(emb, name="embedding")(x)
    return _classifier(x, n_classes)


def _classifier(x, n_classes: int):
    logits = layers.Dense(n_classes, name="logits")(x)
    return layers.Softmax(name="output")(logits)  # (b, |Y_S|)


def _check_classes(n_classes: int) -> None:
    """A softmax over fewer than 2 source classes cannot be reprogrammed (or trained)."""
    if n_classes < 2:
        raise UserError(f"a source model needs at least 2 classes, got {n_classes}")


def _attrnn(n_classes: int, name: str, conv: int = 10, lstm: int = 64, dense: int = 64,
            emb: int = 32, unet: tuple[int, int, int] | None = None) -> keras.Model:
    """AttRNN: mel -> conv front (plain or U-Net) -> 2 BiLSTM -> attention -> dense."""
    _check_classes(n_classes)
    wave = keras.Input((N_SAMPLES,), name="waveform")  # (b, 16000)
    mel = mel_frontend(wave)  # (b, 125, 80, 1)
    x = _unet_front(mel, unet) if unet else _conv_front(mel, conv)  # (b, 125, F)
    x = layers.Bidirectional(layers.LSTM(lstm, return_sequences=True), name="bilstm1")(x)
    x = layers.Bidirectional(layers.LSTM(lstm, return_sequences=True), name="bilstm2")(x)
    out = _attention_head(x, n_classes, 2 * lstm, dense, emb)  # (b, 2u) query like the 128 of V2S_a
    return keras.Model(wave, out, name=name)


def _tcn(n_classes: int, name: str, filters: int = 64, dilations=(1, 2, 4, 8),
         emb: int = 32) -> keras.Model:
    """Dilated residual 1-D conv net over mel frames (the TCN of the Table 4 ablation)."""
    _check_classes(n_classes)
    wave = keras.Input((N_SAMPLES,), name="waveform")
    x = layers.Reshape((N_FRAMES, N_MELS), name="squeeze")(mel_frontend(wave))  # (b, 125, 80)
    x = layers.Conv1D(filters, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.BatchNormalization(name="bn1")(x)  # (b, 125, f)
    for i, d in enumerate(dilations):
        first = "conv2" if i == 0 else f"block{i}_a"
        y = layers.Conv1D(filters, 3, dilation_rate=d, padding="same", activation="relu", name=first)(x)
        y = layers.BatchNormalization(name=f"block{i}_bn_a")(y)
        y = layers.Conv1D(filters, 3, dilation_rate=d, padding="same", name=f"block{i}_b")(y)
        y = layers.BatchNormalization(name=f"block{i}_bn_b")(y)
        x = layers.Activation("relu", name=f"block{i}_out")(layers.Add(name=f"block{i}_add")([x, y]))
    x = layers.GlobalAveragePooling1D(name="pool")(x)  # (b, f)
    x = layers.Dense(emb, activation="relu", name="embedding")(x)
    return keras.Model(wave, _classifier(x, n_classes), name=name)


def attrnn(n_classes: int = 36) -> keras.Model:
    """V2S_a: attention RNN, ~0.2M parameters (0.201M with 36 classes)."""
    return _attrnn(n_classes, "attrnn")


def attrnn_tiny(n_classes: int = 36) -> keras.Model:
    """Tiny AttRNN for tests: same layer names and graph, a handful of units."""
    return _attrnn(n_classes, "attrnn_tiny", conv=2, lstm=4, dense=8, emb=4)


def attrnn_unet(n_classes: int = 36) -> keras.Model:
    """V2S_u: U-Net conv front (16/32/16 filters of 5x1), ~0.25M parameters."""
    return _attrnn(n_classes, "attrnn_unet", unet=(16, 32, 16))


def attrnn_unet_tiny(n_classes: int = 36) -> keras.Model:
    """Tiny V2S_u for tests."""
    return _attrnn(n_classes, "attrnn_unet_tiny", lstm=4, dense=8, emb=4, unet=(2, 4, 2))


def tcn(n_classes: int = 36) -> keras.Model:
    """V2S_t: dilated TCN over mel frames, ~0.12M parameters."""
    return _tcn(n_classes, "tcn")


def tcn_tiny(n_classes: int = 36) -> keras.Model:
    """Tiny TCN for tests."""
    return _tcn(n_classes, "tcn_tiny", filters=4, dilations=(1, 2), emb=4)


def build_source_model(arch: str, n_classes: int, seed: int) -> keras.Model:
    """``MODELS.create(arch, n_classes)`` for the ``pretrain_v2s`` job, its initial weights
    drawn from ``seed`` (Keras initialisers are otherwise unseeded: one spec would start
    from a different network on every run), refusing registered names that are not Keras
    AMs (a VGG16 name would otherwise import PyTorch into a TensorFlow run)."""
    from xferlab.catalog import MODELS

    if arch not in MODELS:
        raise UserError(MODELS.unknown_message(arch))
    if MODELS.meta(arch).get("framework") != "keras":
        raise UserError(f"{arch!r} is a registered model but not a V2S source architecture")
    keras.utils.set_random_seed(seed)
    return MODELS.create(arch, n_classes)


def load_keras_model(path: str) -> keras.Model:
    """Load a saved source AM, V2S or TF_a model (.keras) with our custom layers registered."""
    import xferlab.v2s.reprogram  # noqa: F401  (registers SegmentPad, Reprogram, LabelMap, FrozenModel)

    return keras.models.load_model(path)


def sub_model(am: keras.Model, *names: str) -> keras.Model:
    """A model from the AM's waveform input to the named layers' outputs (shared weights)."""
    outputs = [am.get_layer(n).output for n in names]
    return keras.Model(am.input, outputs[0] if len(outputs) == 1 else outputs)
