"""V2S reprogramming: segment replication, the program theta, the frozen AM, label map.

V2S model for a target series x_t of length L (V2S.md, "Pipeline"):

    series (b, L) -SegmentPad-> (b, 16000) -Reprogram-> x' = pad(x_t) + M * dropout(theta)
        -FrozenModel(AM, training=False)-> source probs (b, |Y_S|)
        -LabelMap-> target scores (b, |Y_T|) = mean of each target class's source probs

Only theta is trainable. The AM is a copy of the caller's model, wrapped in a layer that
always calls it with ``training=False`` (Keras 3 functional models would otherwise pass
the outer ``training=True`` down), and is marked non-trainable, so neither its weights
nor its BatchNorm moving statistics ever change while gradients still flow to theta.
"""
from __future__ import annotations

import keras
import numpy as np

from xferlab.v2s.frontend import N_SAMPLES
from xferlab.v2s.mapping import build_mapping, mapping_matrix
from xferlab.v2s.segments import replicate_segments, segment_mask, segment_starts  # noqa: F401  (re-exported)

ops = keras.ops


@keras.saving.register_keras_serializable(package="xferlab")
class SegmentPad(keras.layers.Layer):
    """(b, L) -> (b, total): zero padding with ``seg`` copies, as ``replicate_segments``."""

    def __init__(self, seg: int = 1, total: int = N_SAMPLES, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seg, self.total = seg, total

    def call(self, x):  # x: (b, L)
        length = x.shape[-1]
        copies = [ops.pad(x, [[0, 0], [s, self.total - s - length]])
                  for s in segment_starts(length, self.seg, self.total)]
        return copies[0] if len(copies) == 1 else ops.sum(ops.stack(copies, axis=0), axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.total)

    def get_config(self) -> dict:
        return {**super().get_config(), "seg": self.seg, "total": self.total}


@keras.saving.register_keras_serializable(package="xferlab")
class Reprogram(keras.layers.Layer):
    """x' = x + M * dropout(theta): the only trainable part of V2S.

    theta (total,) is glorot-uniform initialised with an L2 penalty ``l2`` (the authors'
    code: 0.05). Dropout acts on theta itself (one mask per step, shared by the batch)
    and only in training. ``program_mask`` M is a non-trainable 0/1 weight (default all
    ones: the authors' training script uses no mask).
    """

    def __init__(self, total: int = N_SAMPLES, dropout: float = 0.0, l2: float = 0.05,
                 seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.total, self.dropout, self.l2, self.seed = total, float(dropout), float(l2), seed
        self.theta_dropout = keras.layers.Dropout(self.dropout, seed=seed)

    def build(self, input_shape) -> None:
        reg = keras.regularizers.L2(self.l2) if self.l2 > 0 else None
        self.theta = self.add_weight(shape=(self.total,), name="theta", regularizer=reg,
                                     initializer=keras.initializers.GlorotUniform(seed=self.seed))
        self.program_mask = self.add_weight(shape=(self.total,), name="program_mask",
                                            initializer="ones", trainable=False)

    def call(self, x, training=None):  # x: (b, total)
        theta = self.theta_dropout(self.theta * self.program_mask, training=training)  # (total,)
        return x + theta[None, :]

    def get_config(self) -> dict:
        return {**super().get_config(), "total": self.total, "dropout": self.dropout,
                "l2": self.l2, "seed": self.seed}


@keras.saving.register_keras_serializable(package="xferlab")
class LabelMap(keras.layers.Layer):
    """Source probs (b, |Y_S|) -> target scores (b, |Y_T|): mean over each class's sources."""

    def __init__(self, index_lists: list[list[int]], n_source: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.index_lists = [[int(s) for s in sources] for sources in index_lists]
        self.n_source = int(n_source)
        mat = mapping_matrix(self.index_lists, self.n_source)  # (|Y_S|, |Y_T|) 0/1
        self.weights_matrix = mat / mat.sum(axis=0, keepdims=True)  # column means

    def call(self, probs):
        return ops.matmul(probs, ops.convert_to_tensor(self.weights_matrix, dtype=probs.dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.index_lists))

    def get_config(self) -> dict:
        return {**super().get_config(), "index_lists": self.index_lists, "n_source": self.n_source}


@keras.saving.register_keras_serializable(package="xferlab")
class FrozenModel(keras.layers.Layer):
    """Wraps the AM; always runs it in inference mode and never trains it."""

    def __init__(self, model: keras.Model | dict, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        self.am = model
        self.am.trainable = False
        self.trainable = False

    def call(self, x):  # (b, 16000) -> (b, |Y_S|)
        return self.am(x, training=False)

    def compute_output_shape(self, input_shape):
        return self.am.compute_output_shape(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "model": keras.saving.serialize_keras_object(self.am)}


def copy_model(am: keras.Model) -> keras.Model:
    """A weight-identical, *uncompiled* copy, so building V2S or TF_a never mutates the
    caller's AM. (``clone_model`` would carry a trained AM's compile state along, and the
    outer model then trips over the inner model's unbuilt metrics.)"""
    clone = am.__class__.from_config(am.get_config())
    clone.set_weights(am.get_weights())
    return clone


def source_predictions(am: keras.Model, x: np.ndarray, seg: int, batch_size: int = 64) -> np.ndarray:
    """The AM's argmax source class (n,) for padded, not reprogrammed, target series."""
    probs = am.predict(replicate_segments(x, seg), batch_size=batch_size, verbose=0)
    return probs.argmax(axis=1)


def build_v2s(am: keras.Model, n_target: int, length: int, seg: int = 1, mapping: int | str = 1,
              mapping_kind: str = "random", dropout: float = 0.0, l2: float = 0.05,
              mask: bool | np.ndarray = False, seed: int | None = 0,
              x_train: np.ndarray | None = None, y_train: np.ndarray | None = None,
              index_lists: list[list[int]] | None = None) -> keras.Model:
    """The V2S model: (b, L) target series -> (b, n_target) scores; only theta trains.

    ``mapping_kind='frequency'`` needs ``x_train``/``y_train`` (appendix D.2).
    ``mask=True`` zeroes theta where the target copies sit; an array gives M directly.
    ``index_lists`` gives the label mapping itself (a kept program), instead of building it.
    """
    n_source = int(am.output_shape[-1])
    segment_starts(length, seg)  # fail early with a UserError
    if index_lists is None:
        pred = None
        if mapping_kind == "frequency" and x_train is not None:
            pred = source_predictions(am, x_train, seg)
        index_lists = build_mapping(mapping_kind, mapping, n_source, n_target, seed, pred, y_train)
    series = keras.Input((length,), name="series")  # (b, L)
    x = SegmentPad(seg, name="segment_pad")(series)  # (b, 16000)
    reprogram = Reprogram(dropout=dropout, l2=l2, seed=seed, name="reprogram")
    x = reprogram(x)  # (b, 16000)
    probs = FrozenModel(copy_model(am), name="am")(x)  # (b, |Y_S|)
    scores = LabelMap(index_lists, n_source, name="label_map")(probs)  # (b, |Y_T|)
    if mask is not False and mask is not None:
        m = segment_mask(length, seg) if mask is True else np.asarray(mask, np.float32)
        reprogram.program_mask.assign(m)
    return keras.Model(series, scores, name="v2s")


def build_tf_a(am: keras.Model, n_target: int, length: int, seed: int | None = 0) -> keras.Model:
    """TF_a baseline: zero-padded series -> fine-tuned AM features -> new Dense softmax.

    The new head sits on the AM's penultimate layer (``embedding``); every AM weight
    trains (BatchNorm included), as in the paper's transfer-learning baseline.
    """
    tuned = copy_model(am)
    tuned.trainable = True
    features = keras.Model(tuned.input, tuned.get_layer("embedding").output, name="am_features")
    series = keras.Input((length,), name="series")  # (b, L)
    x = SegmentPad(1, name="segment_pad")(series)  # (b, 16000), series at the start
    head = keras.layers.Dense(n_target, activation="softmax", name="tf_head",
                              kernel_initializer=keras.initializers.GlorotUniform(seed=seed))
    return keras.Model(series, head(features(x)), name="tf_a")  # (b, n_target)


def program_state(v2s: keras.Model) -> dict[str, np.ndarray]:
    """What a trained V2S model adds to its AM: theta, the mask M and the label mapping
    (source class lists per target class, as an (|Y_T|, max) array padded with -1)."""
    reprogram, label_map = v2s.get_layer("reprogram"), v2s.get_layer("label_map")
    lists = label_map.index_lists
    mapping = np.full((len(lists), max(len(x) for x in lists)), -1, np.int64)
    for j, sources in enumerate(lists):
        mapping[j, :len(sources)] = sources
    return {"theta": reprogram.theta.numpy(), "program_mask": reprogram.program_mask.numpy(), "mapping": mapping}


def restore_v2s(am: keras.Model, state: dict[str, np.ndarray], length: int, seg: int) -> keras.Model:
    """A V2S model rebuilt from its AM and :func:`program_state` (no training needed)."""
    lists = [[int(s) for s in row if s >= 0] for row in np.asarray(state["mapping"])]
    v2s = build_v2s(am, len(lists), length, seg=seg, index_lists=lists, l2=0.0)
    v2s.get_layer("reprogram").theta.assign(state["theta"])
    v2s.get_layer("reprogram").program_mask.assign(state["program_mask"])
    return v2s
