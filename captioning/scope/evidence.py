"""What the out-of-scope check reads of an image: the evidence, computed in TensorFlow so that
the CLI, the service and the exported SavedModel read it with the same ops.

For uint8 images (N, S, S) or (N, S, S, 3), ``evidence`` gives

- ``pooled`` (N, C) and ``logits`` (N, K): the encoder's pooled vector and the class head's
  logits (the inputs of the older ``msp``/``energy``/``mahalanobis`` scores);
- three views, each a vector per image that the ``gaussian`` rule models per class
  (``captioning.scope.gaussian``):
  - ``features`` (N, 5C): the encoder's final feature map averaged over a 2x2 grid of regions
    (where things are, which the pooled mean forgets) and each channel's spread over the map;
  - ``mid`` (N, 2C'): each channel's mean and spread of the layer that feeds the final block
    (texture, before the classifier has mapped it onto six classes);
  - ``pixels`` (N, 16): input statistics: neighbour correlations at 1, 2 and 4 px along rows
    and columns (noise has none), an 8-bin grey-level histogram, the mean and the spread.

Every view is architecture-agnostic: any encoder of ``captioning.models`` has a feature map
and a layer before it.
"""

from __future__ import annotations

import numpy as np

from captioning.data.image_spec import with_channel_axis

VIEWS = ("features", "mid", "pixels")
LAGS = (1, 2, 4)  # px: neighbour correlations
GREY_BINS = 8


def mid_layer_name(encoder) -> str:
    """The layer whose output feeds the layer that produces the feature map: the last 4-D
    output before it (``stage2`` of the default encoder, ``conv2`` of the seed replica)."""
    map_tensor = encoder.output["feature_map"]
    names = [layer.name for layer in encoder.layers]
    producer = next(layer for layer in encoder.layers if layer.output is map_tensor)
    before = names[: names.index(producer.name)]
    four_d = [n for n in before if len(encoder.get_layer(n).output.shape) == 4]
    return four_d[-1]


def _correlation(a, b):
    """(B, n) x (B, n) -> (B,) Pearson correlation of each row pair."""
    import tensorflow as tf

    a = a - tf.reduce_mean(a, 1, keepdims=True)
    b = b - tf.reduce_mean(b, 1, keepdims=True)
    denominator = tf.sqrt(tf.reduce_sum(a * a, 1) * tf.reduce_sum(b * b, 1) + 1e-9)
    return tf.reduce_sum(a * b, 1) / denominator


def pixel_statistics(pixels):
    """(B, H, W, C) float32 levels 0..255 -> (B, 16) float64 input statistics, of the grey
    levels themselves (C = 1) or of an RGB image's ITU-R 601 luma (C = 3: the grey Pillow's
    ``convert("L")`` gives, unrounded), so a view has the same meaning at every setting."""
    import tensorflow as tf

    if pixels.shape[-1] == 1:
        x = tf.cast(pixels[..., 0], tf.float64)  # (B, H, W)
    else:
        luma = tf.constant([0.299, 0.587, 0.114], tf.float64)
        x = tf.tensordot(tf.cast(pixels, tf.float64), luma, 1)  # (B, H, W)
    batch = tf.shape(x)[0]
    columns = []
    for lag in LAGS:
        for a, b in ((x[:, lag:, :], x[:, :-lag, :]), (x[:, :, lag:], x[:, :, :-lag])):
            columns.append(_correlation(tf.reshape(a, [batch, -1]), tf.reshape(b, [batch, -1])))
    flat = tf.reshape(x, [batch, -1]) / 255.0  # (B, H*W) in 0..1
    bins = tf.minimum(tf.cast(flat * GREY_BINS, tf.int32), GREY_BINS - 1)  # (B, H*W)
    histogram = tf.reduce_mean(tf.one_hot(bins, GREY_BINS, dtype=tf.float64), 1)  # (B, 8)
    spread = tf.math.reduce_std(flat, 1)
    return tf.concat(
        [tf.stack(columns, 1), histogram, tf.stack([tf.reduce_mean(flat, 1), spread], 1)], 1
    )


def map_view(feature_map):
    """(B, S, S, C) -> (B, 5C) float64: the map's mean over each quarter and its spread."""
    import tensorflow as tf

    x = tf.cast(feature_map, tf.float64)
    quarters = tf.cast(tf.image.resize(x, (2, 2), method="area"), tf.float64)  # (B, 2, 2, C)
    spread = tf.math.reduce_std(x, [1, 2])  # (B, C)
    return tf.concat([tf.reshape(quarters, [tf.shape(x)[0], -1]), spread], 1)


def moments(activations):
    """(B, h, w, C) -> (B, 2C) float64: each channel's mean and spread over the map."""
    import tensorflow as tf

    x = tf.cast(activations, tf.float64)
    return tf.concat([tf.reduce_mean(x, [1, 2]), tf.math.reduce_std(x, [1, 2])], 1)


class EvidenceReader:
    """``evidence`` of images for a model with sub-layers ``encoder`` and ``logits`` (a
    classifier or a captioner). Built once per model: it traces one function."""

    def __init__(self, model):
        import keras
        import tensorflow as tf

        encoder, head = model.get_layer("encoder"), model.get_layer("logits")
        mid = encoder.get_layer(mid_layer_name(encoder))
        self.reader = keras.Model(encoder.input, {"mid": mid.output, **encoder.output})

        @tf.function(reduce_retracing=True)
        def read(pixels):  # (B, S, S, C) float32
            out = self.reader(pixels, training=False)
            return {
                "pooled": out["pooled"],
                "logits": head(out["pooled"]),
                "features": map_view(out["feature_map"]),
                "mid": moments(out["mid"]),
                "pixels": pixel_statistics(pixels),
            }

        self.read = read

    def __call__(self, images: np.ndarray, batch: int = 512) -> dict[str, np.ndarray]:
        """uint8 (N, S, S) or (N, S, S, 3) -> name -> (N, D) numpy array (see the module doc)."""
        import tensorflow as tf

        parts: dict[str, list] = {}
        for i in range(0, len(images), batch):
            out = self.read(with_channel_axis(tf.cast(images[i : i + batch], tf.float32)))
            for key, value in out.items():
                parts.setdefault(key, []).append(value.numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}
