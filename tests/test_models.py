"""Encoder and classifier: shapes, config round trips, safe saving and loading."""

import keras
import numpy as np
import pytest

from captioning.config import ModelConfig
from captioning.errors import RunError
from captioning.models.classifier import build_classifier, load_model
from captioning.models.encoder import build_encoder
from captioning.models.layers import ConvBlock, GrayscaleToRGB, IntensityHistogram

from helpers import TINY


def pixels(n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 64, 64, 1)).astype("float32")


@pytest.mark.parametrize(
    ("kwargs", "map_shape", "pooled"),
    [
        (TINY, (8, 8, 8), 8),
        ({**TINY, "stem_stride": 2}, (8, 8, 8), 8),  # 64 -> stem 32 -> 16 -> 8
        ({**TINY, "stem_stride": 2, "feature_size": 4}, (8, 8, 8), 8),  # two pools only
        ({**TINY, "feature_size": 4}, (4, 4, 8), 8),  # 64 -> stem 16 -> 8 -> 4
        ({"widths": [4, 8, 8, 16], "feature_size": 4}, (4, 4, 16), 16),
        ({"name": "seed_replica"}, (6, 6, 128), 6 * 6 * 128),
    ],
)
def test_encoder_returns_feature_map_and_pooled_vector(kwargs, map_shape, pooled):
    out = build_encoder(ModelConfig(**kwargs))(pixels())
    assert tuple(out["feature_map"].shape) == (2, *map_shape)
    assert tuple(out["pooled"].shape) == (2, pooled)


def test_feature_size_stops_pooling():
    # 64 -> stem 16 -> 8: the map stops shrinking at feature_size, however deep
    out = build_encoder(ModelConfig(widths=[4, 8, 8, 8, 8], feature_size=8))(pixels())
    assert tuple(out["feature_map"].shape[1:3]) == (8, 8)


@pytest.mark.parametrize(
    "layer", [ConvBlock(8, depth=2, pool=False, name="b"), GrayscaleToRGB(name="rgb")]
)
def test_custom_layers_round_trip_through_config(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = np.ones((1, 8, 8, 1), "float32")
    assert clone(x).shape == layer(x).shape


def test_classifier_saves_and_loads_safely(tmp_path):
    model = build_classifier(ModelConfig(**TINY), num_classes=6)
    x = pixels()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    assert loaded.get_layer("encoder").output["feature_map"].shape[1:] == (8, 8, 8)


def test_model_with_lambda_layer_is_refused(tmp_path):
    inputs = keras.Input((64, 64, 1))
    outputs = keras.layers.Lambda(lambda t: t * 2)(inputs)
    path = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(RunError, match=r"evil\.keras: cannot load model safely"):
        load_model(path)


def test_missing_model_file_is_one_clear_error(tmp_path):
    with pytest.raises(RunError, match="no such model file"):
        load_model(tmp_path / "absent.keras")


def test_intensity_histogram_counts_shares_at_or_above_each_level():
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64)).astype("uint8")
    images[1] = np.clip(images[1], 40, 255)  # a raised background: minimum 40
    shares = np.asarray(IntensityHistogram()(images[..., None].astype("float32")))
    assert shares.shape == (3, 510)
    for t in (1, 32, 200, 255):
        np.testing.assert_allclose(shares[:, t - 1], (images >= t).mean(axis=(1, 2)), atol=1e-6)
        above = images.astype(int) - images.min(axis=(1, 2), keepdims=True)
        expected = (above >= t).mean(axis=(1, 2))
        np.testing.assert_allclose(shares[:, 255 + t - 1], expected, atol=1e-6)
    layer = IntensityHistogram.from_config(IntensityHistogram(levels=16).get_config())
    assert layer.levels == 16
