"""V2S end to end on a tiny AM: frozen AM, gradients to theta, TF_a, training loop, SWD, figures."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from xferlab.errors import Diverged, TrialPruned, UserError  # noqa: E402
from xferlab.v2s import analysis, figures  # noqa: E402
from xferlab.v2s.fitting import EpochReporter  # noqa: E402
from xferlab.v2s.models import attrnn_tiny, load_keras_model  # noqa: E402
from xferlab.v2s.pretrain import learning_rate, pretrain_source, shift_and_gain  # noqa: E402
from xferlab.v2s.reprogram import build_tf_a, build_v2s  # noqa: E402
from xferlab.v2s.train import inverse_time_decay, train_v2s  # noqa: E402

L = 400  # target series length


def _target_data(n: int = 24, seed: int = 0):
    """Two classes of noisy sines with different frequencies: (n, L) float32, (n,) int."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.linspace(0, 1, L)
    x = np.sin(2 * np.pi * (3 + 5 * y[:, None]) * t) + 0.2 * rng.standard_normal((n, L))
    return x.astype("float32"), y


@pytest.fixture(scope="module")
def am():
    keras.utils.set_random_seed(0)
    return attrnn_tiny(6)


@pytest.fixture(scope="module")
def trained(am):
    """A V2S model after 2 epochs, with the AM's variables recorded before training."""
    x, y = _target_data()
    v2s = build_v2s(am, 2, L, seg=2, mapping=3, dropout=0.2, l2=0.05, seed=0)
    frozen = v2s.get_layer("am").am
    before = {v.path: v.numpy().copy() for v in frozen.weights}
    theta0 = v2s.get_layer("reprogram").theta.numpy().copy()
    speech = np.random.default_rng(1).standard_normal((12, 16000)).astype("float32") * 0.1
    seen = []
    result = train_v2s(v2s, x, y, x, y, x, y, epochs=2, batch_size=8, lr=0.05, seed=0,
                       on_epoch=lambda e, m: seen.append((e, m)),
                       swd_fn=analysis.make_swd_fn(v2s, speech, x, n_projections=50))
    return {"v2s": v2s, "result": result, "before": before, "theta0": theta0, "seen": seen, "x": x, "y": y}


def test_am_weights_and_bn_statistics_frozen(trained):
    frozen = trained["v2s"].get_layer("am").am
    bn_stats = [v.path for v in frozen.weights if "moving" in v.path]
    assert len(bn_stats) == 4  # two BatchNorm layers x (moving_mean, moving_variance)
    for v in frozen.weights:
        np.testing.assert_array_equal(v.numpy(), trained["before"][v.path], err_msg=v.path)
    theta = trained["v2s"].get_layer("reprogram").theta.numpy()
    assert np.abs(theta - trained["theta0"]).max() > 1e-4  # the program did change
    assert [w.name for w in trained["v2s"].trainable_weights] == ["theta"]


def test_gradient_reaches_theta(trained):
    v2s, x, y = trained["v2s"], trained["x"], trained["y"]
    theta = v2s.get_layer("reprogram").theta
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y[:8], v2s(x[:8], training=True)))
    grad = tape.gradient(loss, theta)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0


def test_train_result_history_and_metrics(trained):
    res, seen = trained["result"], trained["seen"]
    assert [e for e, _ in seen] == [1, 2]
    assert set(seen[0][1]) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "swd"}
    assert res.best_epoch in (1, 2) and len(res.history) == 2
    for key in ("test_loss", "test_accuracy", "test_f1_macro", "test_mpce_term", "best_epoch"):
        assert np.isfinite(res.metrics[key]), key
    assert res.confusion.shape == (2, 2) and res.confusion.sum() == len(trained["y"])
    # best weights restored: test metrics computed on the val set equal the best epoch's
    best = res.history[res.best_epoch - 1]
    assert res.metrics["test_loss"] == pytest.approx(best["val_loss"], rel=1e-4)


def test_validation_cross_entropy_leaves_the_program_penalty_out(trained):
    """best_val_loss is Keras' validation loss (cross-entropy + the L2 term on theta), which
    ranks epochs; best_val_ce_loss is the cross-entropy alone, which ranks L2 settings."""
    res, v2s = trained["result"], trained["v2s"]
    penalty = 0.05 * float(np.sum(v2s.get_layer("reprogram").theta.numpy() ** 2))
    assert penalty > 1e-2
    assert res.metrics["best_val_ce_loss"] + penalty == pytest.approx(res.metrics["best_val_loss"], rel=1e-4)


def _dense_classifier(n_in: int, n_classes: int) -> keras.Model:
    """A model that traces in well under a second: the loops do not care what they train."""
    inp = keras.Input((n_in,))
    out = keras.layers.Dense(n_classes, activation="softmax")(keras.layers.Dropout(0.3)(inp))
    return keras.Model(inp, out)


def test_seeded_training_is_deterministic():
    x, y = _target_data(32)
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        res = train_v2s(_dense_classifier(L, 2), x, y, x, y, epochs=3, batch_size=8, lr=0.01, seed=0)
        runs.append([h["train_loss"] for h in res.history])
    assert runs[0] == runs[1]


def _hidden_classifier(n_in: int, n_classes: int) -> keras.Model:
    """Dense-relu-softmax: with lr=1e20 its weights overflow and every loss is NaN."""
    inp = keras.Input((n_in,))
    hidden = keras.layers.Dense(16, activation="relu")(inp)
    return keras.Model(inp, keras.layers.Dense(n_classes, activation="softmax")(hidden))


def test_training_that_diverges_at_every_epoch_raises():
    x, y = _target_data(16)
    seen = []
    keras.utils.set_random_seed(0)
    with pytest.raises(Diverged, match="the validation loss was NaN or infinite at every epoch"):
        train_v2s(_hidden_classifier(L, 2), x, y, x, y, x, y, epochs=2, batch_size=8, lr=1e20, decay=0.0,
                  on_epoch=lambda e, m: seen.append(m["val_loss"]))
    assert len(seen) == 2 and not any(np.isfinite(seen))  # every epoch ran and was reported


def _poison_after(model: keras.Model, last_good: int):
    """An epoch hook that sets every trainable weight to NaN after epoch ``last_good``."""
    def poison(epoch: int, metrics: dict) -> None:
        if epoch == last_good:
            for w in model.trainable_weights:
                w.assign(np.full(w.shape, np.nan, dtype="float32"))
    return poison


def test_a_late_divergence_restores_the_best_finite_epoch():
    """Epochs 1-2 train normally; the hook then poisons the weights, so epoch 3's loss is NaN."""
    x, y = _target_data(16)
    keras.utils.set_random_seed(0)
    model = _hidden_classifier(L, 2)
    res = train_v2s(model, x, y, x, y, x, y, epochs=3, batch_size=8, lr=1e-4, decay=0.0,
                    on_epoch=_poison_after(model, 2))
    assert np.isnan(res.history[2]["val_loss"]) and np.isfinite(res.history[1]["val_loss"])
    finite = [h for h in res.history if np.isfinite(h["val_loss"])]
    best = min(finite, key=lambda h: h["val_loss"])
    assert res.best_epoch == best["epoch"] and res.metrics["best_val_loss"] == best["val_loss"]
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)  # the NaN weights were replaced
    assert res.metrics["test_loss"] == pytest.approx(best["val_loss"], rel=1e-4)  # test = val set here


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
def test_patience_stops_after_epochs_without_a_better_validation_loss():
    """train.patience (V2S and source pretraining): with the weights poisoned after epoch 1,
    no later epoch is better, so patience 2 ends training after epoch 3 of 10 and the best
    (epoch 1) is restored; without patience every epoch runs."""
    x, y = _target_data(16)
    for patience, expected in ((2, 3), (None, 10)):
        keras.utils.set_random_seed(0)
        model = _hidden_classifier(L, 2)
        res = train_v2s(model, x, y, x, y, epochs=10, batch_size=8, lr=1e-4, decay=0.0,
                        on_epoch=_poison_after(model, 1), patience=patience)
        assert len(res.history) == expected and res.metrics["epochs_run"] == expected
        assert res.best_epoch == 1


@pytest.mark.parametrize("val_loss", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_val_loss_is_never_the_best(trained, val_loss: float):
    reporter = EpochReporter()
    reporter.set_model(trained["v2s"])
    reporter.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5, "val_loss": val_loss, "val_accuracy": 0.5})
    assert reporter.diverged and reporter.best_epoch == 0
    reporter.on_epoch_end(1, {"loss": 1.0, "accuracy": 0.5, "val_loss": 2.0, "val_accuracy": 0.5})
    assert not reporter.diverged and reporter.best_epoch == 2


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
def test_v2s_round_trip(trained, tmp_path):
    v2s, x = trained["v2s"], trained["x"]
    v2s.save(tmp_path / "v2s.keras")
    again = load_keras_model(str(tmp_path / "v2s.keras"))
    np.testing.assert_array_equal(again.predict(x, verbose=0), v2s.predict(x, verbose=0))
    assert again.get_layer("label_map").index_lists == v2s.get_layer("label_map").index_lists


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
def test_tf_a_fine_tunes_the_am(am):
    x, y = _target_data(16)
    tf_a = build_tf_a(am, 2, L, seed=0)
    features = tf_a.get_layer("am_features")
    before = features.get_layer("bilstm1").get_weights()[0].copy()
    np.testing.assert_array_equal(before, am.get_layer("bilstm1").get_weights()[0])  # a copy of the AM
    train_v2s(tf_a, x, y, x, y, epochs=1, batch_size=8, lr=0.01, seed=0, decay=0.0)
    assert np.abs(features.get_layer("bilstm1").get_weights()[0] - before).max() > 0  # AM tuned
    np.testing.assert_array_equal(am.get_layer("bilstm1").get_weights()[0], before)  # caller's AM untouched


def test_pruning_exception_propagates(trained):
    """The epoch callback's TrialPruned leaves the reporter (Keras fit does not catch it)."""
    def prune(epoch, metrics):
        raise TrialPruned()

    reporter = EpochReporter(prune)
    reporter.set_model(trained["v2s"])
    logs = {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}
    with pytest.raises(TrialPruned):
        reporter.on_epoch_end(0, logs)
    assert reporter.best_epoch == 1 and reporter.history[0]["val_loss"] == 1.0


def test_user_errors(am):
    with pytest.raises(UserError, match="mapping"):
        build_v2s(am, 3, L, mapping=3)  # 3 x 3 > 6 source classes
    with pytest.raises(UserError, match="seg"):
        build_v2s(am, 2, 5000, seg=4)
    x, y = _target_data(8)
    with pytest.raises(UserError, match="labels"):
        train_v2s(build_v2s(am, 2, L), x, y + 5, x, y, epochs=1)


def test_frequency_mapping_and_mask_in_build(am):
    x, y = _target_data(8)
    v2s = build_v2s(am, 2, L, seg=2, mapping=2, mapping_kind="frequency", mask=True,
                    x_train=x, y_train=y)
    lists = v2s.get_layer("label_map").index_lists
    assert [len(s) for s in lists] == [2, 2] and len({*lists[0], *lists[1]}) == 4
    mask = v2s.get_layer("reprogram").program_mask.numpy()
    starts = [0, (16000 // L // 2) * L]  # K = 40 slots, s = 20: copies at 0 and 8000
    for start in starts:
        assert not mask[start:start + L].any()
    assert mask.sum() == 16000 - 2 * L


def test_schedule_is_authors_inverse_time_decay():
    sched = inverse_time_decay(0.05)
    assert float(sched(0)) == pytest.approx(0.05)
    assert float(sched(10)) == pytest.approx(0.05 / 5.8, rel=1e-5)  # ~0.0086
    assert float(sched(100)) == pytest.approx(0.05 / 49, rel=1e-5)  # ~0.001


def test_pretraining_cosine_schedule_anneals_over_every_step():
    assert learning_rate(1e-3, "constant", 10, 64, 1000) == 1e-3
    sched = learning_rate(1e-3, "cosine", epochs=10, batch_size=64, n_train=1000)  # 16 steps/epoch
    assert float(sched(0)) == pytest.approx(1e-3)
    assert float(sched(80)) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5), rel=1e-5)  # half way
    assert float(sched(160)) == pytest.approx(5e-5, rel=1e-5)  # lr/20 at the last step
    with pytest.raises(UserError, match="lr_schedule"):
        learning_rate(1e-3, "step", 10, 64, 1000)


def test_sliced_wasserstein():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 6))
    assert analysis.sliced_wasserstein(a, a) == pytest.approx(0.0, abs=1e-9)
    shifted = analysis.sliced_wasserstein(a, a + 3.0)
    assert shifted > 1.0
    assert analysis.sliced_wasserstein(a, a + 3.0, seed=0) == shifted  # seeded


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
def test_pretrain_source_and_augmentation(am):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 16000)).astype("float32")
    aug = shift_and_gain(x, rng, max_shift=100, gain_db=6.0)
    assert aug.shape == x.shape and not np.array_equal(aug, x)
    model = _dense_classifier(16000, 3)
    xs = rng.standard_normal((12, 16000)).astype("float32") * 0.1
    ys = np.arange(12) % 3
    res = pretrain_source(model, xs, ys, xs, ys, epochs=1, batch_size=6, seed=0)
    assert res.best_epoch == 1 and np.isfinite(res.metrics["best_val_loss"])
    with pytest.raises(UserError, match="16000"):
        pretrain_source(model, xs[:, :100], ys, xs, ys, epochs=1)


def test_zero_epochs_scores_the_untouched_network_and_negative_epochs_are_refused():
    """train.epochs=0 (the untrained-source control) changes no weight and records the
    initialised network's own validation and test scores as epoch 0."""
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((12, 16000)).astype("float32") * 0.1
    ys = np.arange(12) % 3
    model = _dense_classifier(16000, 3)
    before = [w.copy() for w in model.get_weights()]
    res = pretrain_source(model, xs, ys, xs[:6], ys[:6], xs[6:], ys[6:], epochs=0, batch_size=6, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert res.history == [] and res.best_epoch == 0 and res.metrics["epochs_run"] == 0
    pred = model.predict(xs, verbose=0).argmax(axis=1)
    assert res.metrics["best_val_accuracy"] == pytest.approx((pred[:6] == ys[:6]).mean())
    assert res.metrics["test_accuracy"] == pytest.approx((pred[6:] == ys[6:]).mean())
    with pytest.raises(UserError, match="negative"):
        pretrain_source(model, xs, ys, xs, ys, epochs=-1)


def test_perturbed_batches_are_seeded_and_perturbation_alone_needs_no_shift():
    from xferlab.v2s.pretrain import AugmentedBatches

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((8, 16000))).astype("float32")
    y = np.arange(8) % 2
    a, b = (AugmentedBatches(x, y, 4, seed=1, max_shift=0, gain_db=0.0, perturb=("telephone",), perturb_p=1.0)
            for _ in range(2))
    (xa, ya), (xb, _) = a[0], b[0]
    np.testing.assert_array_equal(xa, xb)
    idx = np.sort(a.order[:4])
    assert np.array_equal(ya, y[idx]) and all(not np.array_equal(xa[i], x[j]) for i, j in enumerate(idx))
    clean = AugmentedBatches(x, y, 4, seed=1, max_shift=0, gain_db=0.0)
    np.testing.assert_array_equal(clean[0][0], x[idx])  # no perturbation, no shift or gain: the clips
    model = _dense_classifier(16000, 2)
    res = pretrain_source(model, x, y, x, y, epochs=1, batch_size=4, seed=0, augment=False, perturb=("noise", "speed"))
    assert np.isfinite(res.metrics["best_val_loss"])


def test_pretraining_that_diverges_raises():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((12, 16000)).astype("float32") * 0.1
    ys = np.arange(12) % 3
    keras.utils.set_random_seed(0)
    with pytest.raises(Diverged, match="the source model's validation loss was NaN"):
        pretrain_source(_hidden_classifier(16000, 3), xs, ys, xs, ys, xs, ys, epochs=1, batch_size=6,
                        lr=1e20, augment=False)


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
def test_figures_write_pngs(trained, am, tmp_path):
    v2s, x, y = trained["v2s"], trained["x"], trained["y"]
    cam = analysis.cam_analysis(v2s, x[0])
    assert cam["cams"]["conv1"].shape == (125, 80) and cam["attention"].shape == (125,)
    for name, m in cam["cams"].items():  # Figure 4 shows something: no flat panel (conv2 was one)
        assert np.isfinite(m).all() and np.abs(m).max() == pytest.approx(1.0), name
        assert np.ptp(m, axis=0).max() > 0.05 and np.ptp(m, axis=1).max() > 0.05, f"{name} is flat"
    reps = analysis.tsne_representations(v2s, x[:12])
    paths = [figures.plot_training_curves(trained["result"].history, tmp_path / "curves.png"),
             figures.plot_cam_panel(cam, tmp_path / "cam.png"),
             figures.plot_tsne(figures.tsne_points(reps), y[:12], tmp_path / "tsne.png")]
    for path in paths:
        assert path.exists() and path.stat().st_size > 5000


def test_probe_layers_are_named_in_every_built_am_and_missing_ones_are_listed(am):
    """``xferlab probe`` reads layers by name: the AMs xferlab builds have them all (the
    catalog's every Keras family, tiny), an imported model may not and is told which."""
    from xferlab.catalog import MODELS

    tiny = {MODELS.meta(a)["tiny"] for a in MODELS.names() if MODELS.meta(a)["framework"] == "keras"}
    assert len(tiny) >= 3
    for arch in sorted(tiny):
        assert analysis.missing_layers(MODELS.create(arch, 4)) == [], arch
    assert analysis.missing_layers(_dense_classifier(16000, 2)) == list(analysis.PROBE_LAYERS)
