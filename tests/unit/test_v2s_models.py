"""Source acoustic models: sizes, layer naming contract, .keras round trips."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from xferlab.catalog import MODELS  # noqa: E402
from xferlab.errors import UserError  # noqa: E402
from xferlab.v2s.models import build_source_model, load_keras_model  # noqa: E402

TINY = [a for a in MODELS.names("*_tiny") if MODELS.meta(a).get("framework") == "keras"]


@pytest.mark.parametrize("arch, low, high", [("attrnn", 0.18e6, 0.22e6),    # V2S_a ~0.2M
                                             ("attrnn_unet", 0.24e6, 0.36e6)])  # V2S_u ~0.3M
def test_param_counts(arch, low, high):
    n = MODELS.create(arch, 36).count_params()
    assert low <= n <= high, n


@pytest.mark.slow  # default-run time (6-minute budget on 2026-12-07's slower host); run with -m slow
@pytest.mark.parametrize("arch", TINY)
def test_tiny_round_trip_identical_predictions(arch, tmp_path):
    am = MODELS.create(arch, 5)
    for name in ("conv1", "conv2", "embedding", "logits", "output", "mel_norm"):
        am.get_layer(name)  # the naming contract analysis and TF_a rely on
    x = np.random.default_rng(0).standard_normal((3, 16000)).astype("float32") * 0.1
    before = am.predict(x, verbose=0)
    assert before.shape == (3, 5)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)
    am.save(tmp_path / "am.keras")
    again = load_keras_model(str(tmp_path / "am.keras"))
    np.testing.assert_array_equal(again.predict(x, verbose=0), before)


def test_the_seed_names_the_initial_network():
    """One spec, one starting network: the same seed builds the same weights, another seed others."""
    def weights(seed: int) -> list[np.ndarray]:
        return build_source_model("attrnn_tiny", 5, seed=seed).get_weights()

    first, again, other = weights(0), weights(0), weights(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_unknown_arch_is_user_error():
    with pytest.raises(UserError, match="attrnn"):
        build_source_model("resnet99", 10, seed=0)
    with pytest.raises(UserError, match="not a V2S source"):
        build_source_model("vgg16_tiny", 10, seed=0)  # registered, but a PyTorch VGG
    with pytest.raises(UserError, match="at least 2 classes"):
        MODELS.create("attrnn_tiny", 1)
