"""A bigram decoder: the next word from the last word and the pooled image (a check of the
"add a decoder" recipe in docs/decoders.md)."""

from __future__ import annotations

import keras
from keras import layers

from captioning.models.decoders.base import CaptionDecoder, register_decoder


@register_decoder("last_word")
@keras.saving.register_keras_serializable(package="captioning")
class LastWordDecoder(CaptionDecoder):
    """logits = out(embedding(last word) + image(pooled)); no memory beyond the last word."""

    def __init__(self, vocab_size, embed_dim=64, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embed_dim = vocab_size, embed_dim
        self.embedding = layers.Embedding(vocab_size, embed_dim)
        self.image = layers.Dense(embed_dim)
        self.out = layers.Dense(vocab_size)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embed_dim": self.embed_dim}

    def initial_state(self, features, training=False):
        return (self.image(features["pooled"]),), ()  # context: (B, E); no state

    def step(self, tokens, state, context, training=False):
        return self.out(self.embedding(tokens) + context[0]), state, None  # (B, V)

    def call(self, inputs, training=None):
        image = self.image(inputs["pooled"])[:, None, :]  # (B, 1, E)
        return {"logits": self.out(self.embedding(inputs["tokens"]) + image)}  # (B, T, V)
