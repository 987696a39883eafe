"""The paper's analysis tools: SWD (Table 3, Fig 3), Grad-CAM + attention (Fig 4), t-SNE (Fig 5).

Representations are the AM's ``logits`` layer (pre-softmax scores over the source
classes): "logit representations" in the paper. Source speech goes straight into the
AM; target series go through the V2S model's segment padding and program theta
(inference mode: no dropout on theta) and then into the same frozen AM.
"""
from __future__ import annotations

import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from xferlab.v2s.models import sub_model

def inner_am(model: keras.Model) -> keras.Model:
    """The frozen AM inside a V2S model (or the model itself when it is an AM)."""
    names = {layer.name for layer in model.layers}
    return model.get_layer("am").am if "am" in names and "reprogram" in names else model


def padded_input(v2s: keras.Model, x: np.ndarray) -> np.ndarray:
    """(n, L) series -> (n, 16000) segment-padded waveforms, before reprogramming."""
    return keras.ops.convert_to_numpy(v2s.get_layer("segment_pad")(np.asarray(x, np.float32)))


def reprogrammed_input(v2s: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(n, L) series -> (n, 16000) x' = pad(x) + M * theta, inference mode (no dropout)."""
    program = v2s.get_layer("reprogram")
    out = [keras.ops.convert_to_numpy(program(padded_input(v2s, x[i:i + batch_size]), training=False))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out, axis=0)


def representations(am: keras.Model, waves: np.ndarray, layer: str = "logits",
                    batch_size: int = 128) -> np.ndarray:
    """The AM's ``layer`` output for (n, 16000) waveforms: (n, d)."""
    return sub_model(am, layer).predict(np.asarray(waves, np.float32), batch_size=batch_size, verbose=0)


def _ot():
    """Import POT without its PyTorch/JAX/CuPy backends: a V2S run never loads torch."""
    for key in ("POT_BACKEND_DISABLE_PYTORCH", "POT_BACKEND_DISABLE_JAX", "POT_BACKEND_DISABLE_CUPY"):
        os.environ.setdefault(key, "1")
    import ot

    return ot


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, n_projections: int = 1000, seed: int = 0) -> float:
    """Sliced Wasserstein-2 between two point clouds (n, d) and (m, d), uniform weights (POT)."""
    return float(_ot().sliced_wasserstein_distance(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                                n_projections=n_projections, p=2, seed=seed))


def _subsample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


def make_swd_fn(v2s: keras.Model, x_source: np.ndarray, x_target: np.ndarray,
                n_projections: int = 1000, seed: int = 0,
                max_samples: int = 512) -> Callable[[keras.Model], float]:
    """An epoch-end function: SWD(AM logits of source speech, of reprogrammed target data).

    The AM is frozen, so the source side is computed once; the target side is recomputed
    with the current theta every call. At most ``max_samples`` of each (seeded) keep the
    per-epoch cost small.
    """
    am = inner_am(v2s)
    logits = sub_model(am, "logits")
    source = logits.predict(_subsample(np.asarray(x_source, np.float32), max_samples, seed), verbose=0)
    target = _subsample(np.asarray(x_target, np.float32), max_samples, seed)

    def swd_fn(model: keras.Model) -> float:
        reps = logits.predict(reprogrammed_input(model, target), batch_size=128, verbose=0)
        return sliced_wasserstein(source, reps, n_projections, seed)

    return swd_fn


def explain(am: keras.Model, wave: np.ndarray, class_index: int | None = None,
            layer_names: tuple[str, ...] = ("conv1", "conv2"),
            label_matrix: np.ndarray | None = None) -> dict:
    """Grad-CAM maps, attention weights and log-mel of one (16000,) waveform, in one pass.

    The explained score is the class ``class_index`` (default: the arg max) of the AM's
    probabilities, or, with ``label_matrix`` (|Y_S| x |Y_T|, column-mean weights), of the
    mapped target scores, so the maps show what the reprogrammed AM uses for a target
    class. Each map is sum_k (dS/dA_k * A_k), the gradient times the activation at every
    position summed over channels (HiResCAM), scaled by its largest magnitude to [-1, 1]:
    positive where the activation raises the class score, negative where it lowers it;
    (T, F) for Conv2D layers, (T,) for Conv1D.

    Why not the classic Grad-CAM relu(sum_k mean(dS/dA_k) A_k): the AMs' ``conv2`` has one
    filter, so that map is just +-A; whenever the position-averaged gradient is negative
    the ReLU zeroes the whole map, which is what made Figure 4's conv2 panel one flat colour.
    """
    names = {layer.name for layer in am.layers}  # tap attention and mel when the AM has them
    extra = [n for n in ("attention_weights", "mel_db") if n in names]
    model = keras.Model(am.input, [am.get_layer(n).output for n in (*layer_names, *extra)] + [am.output])
    n_source = int(am.output_shape[-1])
    matrix = tf.constant(np.eye(n_source) if label_matrix is None else label_matrix, tf.float32)
    x = tf.convert_to_tensor(np.asarray(wave, np.float32)[None])  # (1, 16000)
    cls = tf.constant(-1 if class_index is None else int(class_index), tf.int64)  # -1: arg max
    acts, grads, tapped, scores, cls = _cam_pass(model, x, matrix, cls, len(layer_names))
    tapped = dict(zip(extra, tapped))
    cams = {}
    for name, a, g in zip(layer_names, acts, grads):
        cam = tf.reduce_sum(a * g, axis=-1)[0].numpy()  # (T, F) or (T,)
        peak = float(np.abs(cam).max())
        cams[name] = cam / peak if peak > 0 else cam
    att = tapped.get("attention_weights")
    return {"cams": cams, "class_index": int(cls.numpy()), "scores": scores[0].numpy(),
            "attention": None if att is None else att[0].numpy(),  # (T,)
            "mel": tapped["mel_db"][0, ..., 0].numpy() if "mel_db" in tapped else None}  # (T, 80)


@tf.function(reduce_retracing=True)
def _cam_pass(model, x, matrix, class_index, n_conv: int):
    """Forward + gradient of one mapped score w.r.t. the conv activations, as a graph.

    Eager LSTMs step through 125 frames op by op (~10 s under load); a traced pass is a
    few seconds including tracing.
    """
    with tf.GradientTape() as tape:
        *outs, probs = model(x, training=False)
        scores = tf.matmul(probs, matrix)  # (1, |Y_T|) or (1, |Y_S|) with the identity
        cls = tf.where(class_index < 0, tf.argmax(scores[0]), class_index)
        score = tf.gather(scores[0], cls)
    acts = outs[:n_conv]
    return acts, tape.gradient(score, acts), outs[n_conv:], scores, cls


def grad_cam(am: keras.Model, wave: np.ndarray, class_index: int,
             layer_names: tuple[str, ...] = ("conv1", "conv2"),
             label_matrix: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Grad-CAM maps only (see ``explain``): {layer name: map}."""
    return explain(am, wave, class_index, layer_names, label_matrix)["cams"]


def cam_analysis(v2s: keras.Model, series: np.ndarray, class_index: int | None = None,
                 layer_names: tuple[str, ...] = ("conv1", "conv2")) -> dict:
    """Everything Figure 4 shows for one target series (L,): waveforms, mel, CAMs of the
    named conv layers, attention.

    ``class_index`` defaults to the V2S prediction (arg max of the mapped scores).
    """
    series = np.asarray(series, np.float32)
    wave = reprogrammed_input(v2s, series[None])[0]  # (16000,)
    out = explain(inner_am(v2s), wave, class_index, tuple(layer_names),
                  label_matrix=v2s.get_layer("label_map").weights_matrix)
    return {**out, "series": series, "padded": padded_input(v2s, series[None])[0], "reprogrammed": wave}


def tsne_representations(v2s: keras.Model, x: np.ndarray,
                         tf_a: keras.Model | None = None) -> dict[str, np.ndarray]:
    """Figure 5 inputs: AM logits before and after reprogramming (+ TF_a's tuned embedding)."""
    logits = sub_model(inner_am(v2s), "logits")  # one model, traced once for both inputs
    reps = {"before reprogramming": logits.predict(padded_input(v2s, x), batch_size=128, verbose=0),
            "after reprogramming (V2S)": logits.predict(reprogrammed_input(v2s, x), batch_size=128,
                                                        verbose=0)}
    if tf_a is not None:
        features = tf_a.get_layer("am_features")
        reps["TF_a (fine-tuned embedding)"] = features.predict(
            padded_input(tf_a, x), batch_size=128, verbose=0)
    return reps


# ---------------------------------------------------------------------------------------
# Layer probe: where along the AM a target's classes stay separable
# ---------------------------------------------------------------------------------------
PROBE_LAYERS = ("mel_norm", "conv2", "embedding", "logits")  # mel front end, 2nd conv, penultimate, pre-softmax


def missing_layers(am: keras.Model, layers: tuple[str, ...] = PROBE_LAYERS) -> list[str]:
    """The probe layers ``am`` lacks (every AM xferlab builds has them; an imported one may not)."""
    names = {layer.name for layer in am.layers}
    return [name for name in layers if name not in names]


def probe_readouts(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray,
                   y_test: np.ndarray) -> dict[str, float]:
    """Test accuracy of two fixed read-outs fit on the training features (n, d).

    Nothing is tuned, so nothing is chosen on the test split: a logistic regression on
    standardised features (C = 1, the library default) asks how far the classes are
    linearly separable there, 1-nearest-neighbour (Euclidean) whether they are separable
    at all.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f_train, f_test = f_train.reshape(len(f_train), -1), f_test.reshape(len(f_test), -1)
    readouts = {"logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                "1-NN": KNeighborsClassifier(n_neighbors=1)}
    return {name: float((clf.fit(f_train, y_train).predict(f_test) == y_test).mean())
            for name, clf in readouts.items()}


def probe_features(tap: keras.Model, waves: np.ndarray, chunk: int = 512) -> np.ndarray:
    """(n, d) features of one layer, ``chunk`` waveforms at a time; a conv layer's channels
    are averaged, so a wide conv (the U-Net's conv2: 63 x 80 x 32) costs what a 1-channel
    one does (n x T x F floats)."""
    out = []
    for i in range(0, len(waves), chunk):
        f = tap.predict(waves[i:i + chunk], batch_size=64, verbose=0)
        out.append((f.mean(axis=-1) if f.ndim == 4 else f).reshape(len(f), -1))
    return np.concatenate(out, axis=0)


def layer_probe(v2s: keras.Model, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray, layers: tuple[str, ...] = PROBE_LAYERS) -> list[dict]:
    """How well a target's classes separate at each depth of the frozen AM.

    Rows ``{depth, layer, input, readout, test_accuracy}``: the raw series (depth 0),
    then each AM layer for the segment-padded series without a program ("padded") and
    with the run's program theta ("reprogrammed"), and last the V2S model's own output
    (its label mapping). Where the probe's accuracy falls along the AM is where the
    source model's weights, rather than the mel front end, lose the target's classes.
    One layer at a time, so only one layer's features are held in memory.
    """
    am = inner_am(v2s)
    rows = [{"depth": 0, "layer": "series", "input": "series", "readout": name, "test_accuracy": acc}
            for name, acc in probe_readouts(x_train, y_train, x_test, y_test).items()]
    taps = [sub_model(am, layer) for layer in layers]  # built once: each traces its predict once
    for inputs, wave in (("padded", padded_input), ("reprogrammed", reprogrammed_input)):
        w_train, w_test = wave(v2s, x_train), wave(v2s, x_test)
        for depth, (layer, tap) in enumerate(zip(layers, taps), start=1):
            scores = probe_readouts(probe_features(tap, w_train), y_train, probe_features(tap, w_test), y_test)
            rows += [{"depth": depth, "layer": layer, "input": inputs, "readout": name, "test_accuracy": acc}
                     for name, acc in scores.items()]
    own = float((v2s.predict(x_test, batch_size=64, verbose=0).argmax(axis=1) == y_test).mean())
    rows.append({"depth": len(layers) + 1, "layer": "output", "input": "reprogrammed",
                 "readout": "V2S label mapping", "test_accuracy": own})
    return rows
