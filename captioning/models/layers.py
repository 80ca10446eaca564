"""Custom Keras layers. Each is registered for ``.keras`` serialisation and has ``get_config``,
so saved models load with ``safe_mode=True`` (no Lambda layers, no pickled code)."""

from __future__ import annotations

import keras
from keras import layers, ops

# Batch-norm statistics follow the last ~10 batches (Keras' 0.99 follows ~100): our runs are
# a few hundred steps long, and with 0.99 validation lags far behind training early on.
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="captioning")
class ConvBlock(layers.Layer):
    """``depth`` x (3x3 conv -> batch norm -> ReLU), then 2x2 max-pooling if ``pool``.

    (B, H, W, C_in) -> (B, H/2, W/2, filters) when pooling, else (B, H, W, filters).
    """

    def __init__(self, filters: int, depth: int = 1, pool: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.depth, self.pool = filters, depth, pool
        self.convs = [
            layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")
            for i in range(depth)
        ]
        # Synchronised: batch statistics over the global batch, so N replicas train the
        # same model as one device with the same global batch (a no-op with one replica).
        self.norms = [
            layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=True, name=f"bn{i}")
            for i in range(depth)
        ]
        self.pooling = layers.MaxPooling2D(2) if pool else None

    def build(self, input_shape):
        shape = input_shape
        for conv, norm in zip(self.convs, self.norms, strict=True):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            norm.build(shape)
        self.built = True

    def call(self, x, training=None):
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = ops.relu(norm(conv(x), training=training))
        return self.pooling(x) if self.pooling is not None else x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.pool:
            height = None if height is None else height // 2
            width = None if width is None else width // 2
        return (batch, height, width, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "depth": self.depth,
            "pool": self.pool,
        }


@keras.saving.register_keras_serializable(package="captioning")
class GrayscaleToRGB(layers.Layer):
    """(B, H, W, 1) -> (B, H, W, 3) by repeating the channel: lets RGB models read MedNIST."""

    def call(self, x):
        return ops.repeat(x, 3, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


@keras.saving.register_keras_serializable(package="captioning")
class IntensityHistogram(layers.Layer):
    """First-order intensity statistics of raw grey levels, as radiomics pipelines compute them:
    for every level t = 1 .. levels-1, the share of the frame at or above t, once on the grey
    levels themselves and once above the image's own minimum (its background).

    (B, H, W, 1) pixels in 0..levels-1 -> (B, 2 * (levels - 1)) shares in [0, 1]. No weights.

    Why: a finding such as "how much of the frame is anatomy" or "how much of it is dense" is a
    share of pixels past a grey level. Convolutions, ReLUs and average pooling only approximate
    such a count, and the approximation is what costs captions near a finding's cut point; a
    cumulative histogram states it exactly, and the layers after it learn which levels matter.
    """

    def __init__(self, levels: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.levels = levels

    def call(self, pixels):
        grey = ops.reshape(pixels, (ops.shape(pixels)[0], -1))  # (B, H*W), floats 0..levels-1
        grey = ops.cast(ops.clip(ops.round(grey), 0, self.levels - 1), "int32")
        above_min = grey - ops.min(grey, axis=1, keepdims=True)  # (B, H*W), background at 0
        shares = []
        for values in (grey, above_min):
            counts = ops.cast(ops.bincount(values, minlength=self.levels), "float32")  # (B, L)
            # share at or above level t: reverse cumulative sum of the counts, t = 1 .. L-1
            at_or_above = ops.flip(ops.cumsum(ops.flip(counts, axis=1), axis=1), axis=1)
            shares.append(at_or_above[:, 1:] / ops.cast(ops.shape(grey)[1], "float32"))
        return ops.concatenate(shares, axis=-1)  # (B, 2 * (L - 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * (self.levels - 1))

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}
