"""CNN encoders on the data's own images: native 64x64 grey for MedNIST, any ``ImageSpec``
(side S, C channels) a dataset was prepared at.

Every encoder is a Keras functional model with one input, raw pixels (B, S, S, C) in
0..255 (scaling is inside the model, so a saved model needs no outside preprocessing), and two
outputs: ``feature_map`` (B, S, S, C) for attention decoders and ``pooled`` (B, C).
"""

from __future__ import annotations

import keras
from keras import layers

from captioning.config import ConfigError, ModelConfig
from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.models.layers import BN_MOMENTUM, ConvBlock, GrayscaleToRGB


def pixel_input(spec: ImageSpec = DEFAULT_IMAGE) -> keras.KerasTensor:
    """The (B, S, S, C) float32 input every model here takes, pixels in 0..255 (default
    (B, 64, 64, 1))."""
    return keras.Input(spec.model_shape, name="pixels")


def build_cnn_encoder(config: ModelConfig, spec: ImageSpec = DEFAULT_IMAGE) -> keras.Model:
    """Our encoder: a strided stem, then one ``ConvBlock`` per entry of ``widths`` after the
    first, pooling while the map is larger than ``feature_size``.

    Default (stem_stride 4, widths [16, 32, 64, 64]): 64x64 -> stem 16x16x16 (non-overlapping
    4x4 patches) -> 8x8x32 -> 8x8x64 -> 8x8x64. The strided stem keeps every layer at 16x16 or
    smaller, which makes the step cheap on a CPU (the measurements: experiments/speed.md).
    Larger images (``spec``) keep the layers and pool more often: 128 -> stem 32 -> 16 -> 8
    -> 8; the map stays at most ``feature_size`` wide once the stages allow it.
    """
    stride = config.stem_stride
    if spec.size % stride:
        raise ConfigError(
            f"config key 'model.stem_stride' = {stride} must divide the image size {spec.size}"
        )
    pixels = pixel_input(spec)
    x = layers.Rescaling(1 / 255.0, name="scale")(pixels)  # (B, S, S, C) in 0..1
    x = layers.Conv2D(
        config.widths[0],
        max(3, stride),
        strides=stride,
        padding="same",
        use_bias=False,
        name="stem",
    )(x)
    # Synchronised batch norm (as in ConvBlock): replicas share the global batch statistics.
    stem_bn = layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=True, name="stem_bn")
    x = layers.ReLU()(stem_bn(x))  # (B, S / stride, S / stride, widths[0])
    size = spec.size // stride
    for i, width in enumerate(config.widths[1:]):
        pool = size > config.feature_size
        x = ConvBlock(width, depth=config.depth, pool=pool, name=f"stage{i + 1}")(x)
        size = size // 2 if pool else size  # x: (B, size, size, width)
    pooled = layers.GlobalAveragePooling2D(name="pool")(x)  # (B, C): the map's mean
    return keras.Model(pixels, {"feature_map": x, "pooled": pooled}, name="encoder")


def build_seed_encoder(config: ModelConfig, spec: ImageSpec = DEFAULT_IMAGE) -> keras.Model:
    """The seed notebook's network, as an encoder: 32x32 RGB input, conv 64 (5x5) -> max-pool
    -> conv 128 (3x3) -> max-pool. Feature map (B, 6, 6, 128); ``pooled`` is the flattened map
    (B, 4608), as the seed fed it straight into its softmax layer. Grey input repeats its
    channel; any side is resized to 32."""
    pixels = pixel_input(spec)
    x = layers.Resizing(32, 32, name="resize32")(pixels)
    if spec.channels == 1:
        x = GrayscaleToRGB(name="rgb")(x)
    x = layers.Rescaling(1 / 255.0, name="scale")(x)
    x = layers.Conv2D(64, 5, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(128, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    flat = layers.Flatten(name="flatten")(x)
    return keras.Model(pixels, {"feature_map": x, "pooled": flat}, name="encoder")


ENCODERS = {"cnn": build_cnn_encoder, "seed_replica": build_seed_encoder}


def build_encoder(config: ModelConfig, spec: ImageSpec = DEFAULT_IMAGE) -> keras.Model:
    """The encoder named by ``config.name``, for images of ``spec`` (the data's)."""
    return ENCODERS[config.name](config, spec)
