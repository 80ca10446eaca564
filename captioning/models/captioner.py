"""The captioner's models: the decoder on cached encoder features (stage 1) and the end-to-end
captioner (stage 2), and the encoder features that stage 1 caches."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from captioning.models.encoder import pixel_input


def encode_images(encoder: keras.Model, images: np.ndarray, batch: int = 512) -> dict:
    """The encoder's outputs for uint8 images (N, 64, 64), as float16 numpy arrays."""

    @tf.function(reduce_retracing=True)
    def forward(x):
        return encoder(x, training=False)

    parts: dict[str, list] = {"feature_map": [], "pooled": []}
    for i in range(0, len(images), batch):
        out = forward(tf.cast(images[i : i + batch], tf.float32)[..., None])
        for key in parts:
            parts[key].append(out[key].numpy().astype(np.float16))
    return {k: np.concatenate(v) for k, v in parts.items()}


def build_feature_model(decoder, feature_shape, pooled_dim, max_length: int) -> keras.Model:
    """Stage 1: cached features + tokens -> caption logits (and attention)."""
    inputs = {
        "feature_map": keras.Input(feature_shape, name="feature_map"),
        "pooled": keras.Input((pooled_dim,), name="pooled"),
        "tokens": keras.Input((max_length,), dtype="int32", name="tokens"),
    }
    out = decoder(inputs)
    outputs = {"caption_logits": out["logits"]}
    if "attention" in out:
        outputs["attention"] = out["attention"]
    return keras.Model(inputs, outputs, name="caption_decoder")


def build_captioner(encoder, head, decoder, max_length: int) -> keras.Model:
    """End to end: pixels (B, 64, 64, 1) + tokens (B, T) -> caption logits (B, T, V), class
    logits (B, classes) from the classifier's head, attention (B, T, P) when the decoder has it.
    Sub-layers by name: ``encoder``, ``logits`` (head), ``decoder``."""
    pixels = pixel_input()
    tokens = keras.Input((max_length,), dtype="int32", name="tokens")
    features = encoder(pixels)
    out = decoder({**features, "tokens": tokens})
    outputs = {"caption_logits": out["logits"], "class_logits": head(features["pooled"])}
    if "attention" in out:
        outputs["attention"] = out["attention"]
    return keras.Model({"pixels": pixels, "tokens": tokens}, outputs, name="captioner")
