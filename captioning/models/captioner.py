"""The captioner's models: the decoder on cached encoder features (stage 1) and the end-to-end
captioner (stage 2), and the encoder features that stage 1 caches."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from captioning.data.image_spec import ImageSpec, with_channel_axis
from captioning.models.encoder import pixel_input
from captioning.models.layers import IntensityHistogram


def image_features(encoder: keras.Model, pixels, training=False) -> dict:
    """What a decoder reads of an image: the encoder's ``feature_map`` (B, S, S, C) and
    ``pooled`` (B, C), and ``statistics`` (B, 510), the image's cumulative intensity histogram
    (``IntensityHistogram``), which the findings read-out uses. ``pixels``: (B, S, S, C)."""
    statistics = IntensityHistogram(name="statistics")(pixels)  # no weights: a new one is free
    return {**encoder(pixels, training=training), "statistics": statistics}


def encode_images(encoder: keras.Model, images: np.ndarray, batch: int = 256) -> dict:
    """``image_features`` of uint8 images (N, S, S[, C]) as numpy arrays: the encoder's outputs
    as float16 (a cache for stage 1), the statistics as float32 (shares are multiples of
    1/4096, finer than float16 resolves near 1)."""

    @tf.function(reduce_retracing=True)
    def forward(x):
        return image_features(encoder, x)

    # filled in place batch by batch: a list of batches and its concatenation would hold
    # every feature twice
    cache: dict[str, np.ndarray] = {}
    for i in range(0, len(images), batch):
        out = forward(with_channel_axis(tf.cast(images[i : i + batch], tf.float32)))
        for key, value in out.items():
            if key not in cache:
                dtype = np.float32 if key == "statistics" else np.float16
                cache[key] = np.empty((len(images), *value.shape[1:]), dtype)
            cache[key][i : i + batch] = value.numpy()
    return cache


def build_feature_model(decoder, features: dict, max_length: int) -> keras.Model:
    """Stage 1: cached features + tokens -> caption logits (and attention). ``features``:
    name -> array (N, ...) as ``encode_images`` returns them (only the shapes are used)."""
    inputs = {k: keras.Input(v.shape[1:], name=k) for k, v in features.items()}
    inputs["tokens"] = keras.Input((max_length,), dtype="int32", name="tokens")
    out = decoder(inputs)
    outputs = {"caption_logits": out["logits"], **_optional_outputs(out)}
    return keras.Model(inputs, outputs, name="caption_decoder")


def _optional_outputs(out: dict) -> dict:
    """The decoder's outputs a model passes on when it has them: ``attention`` (B, T, P) and
    the field heads' ``field_logits`` (B, F)."""
    return {k: out[k] for k in ("attention", "field_logits") if k in out}


def build_captioner(encoder, head, decoder, max_length: int) -> keras.Model:
    """End to end: pixels (B, S, S, C) (the encoder's input) + tokens (B, T) -> caption
    logits (B, T, V), class logits (B, classes) from the classifier's head, attention
    (B, T, P) and field logits (B, F) when the decoder has them. Sub-layers by name:
    ``encoder``, ``logits`` (head), ``decoder``."""
    pixels = pixel_input(ImageSpec.from_model(encoder))
    tokens = keras.Input((max_length,), dtype="int32", name="tokens")
    features = image_features(encoder, pixels)  # feature_map (B, S, S, C), pooled (B, C), ...
    out = decoder({**features, "tokens": tokens})  # logits (B, T, V)[, attention (B, T, P)]
    outputs = {
        "caption_logits": out["logits"],
        "class_logits": head(features["pooled"]),
        **_optional_outputs(out),
    }
    return keras.Model({"pixels": pixels, "tokens": tokens}, outputs, name="captioner")
