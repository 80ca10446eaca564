"""Show-and-Tell (Vinyals et al. 2015): the LSTM decoder without attention."""

from __future__ import annotations

import keras
from keras import ops

from captioning.models.decoders.base import register_decoder
from captioning.models.decoders.lstm import LSTMDecoder


@register_decoder("show_tell")
@keras.saving.register_keras_serializable(package="captioning")  # name saved in .keras files
class ShowTellDecoder(LSTMDecoder):
    """Show-and-Tell (Vinyals et al. 2015): the pooled image vector (B, C) initialises the
    LSTM state; the words alone drive it afterwards."""

    def build(self, input_shape):
        self._build_common(input_shape["pooled"][-1], input_shape)
        self.built = True

    def initial_state(self, features, training=False):
        state, extra, _ = self._start(features["pooled"], features)  # (h, c) each (B, H)
        return extra, state  # context: only the heads' and read-out's share of the gates, if any

    def step(self, tokens, state, context, training=False):
        gates = self.word_gates(self.embedding(tokens)) + self._fixed_gates(context)  # (B, 4H)
        h, c = self._lstm(gates, state)  # each (B, H)
        return self.out(self.drop(h, training=training)), (h, c), None  # logits (B, V)

    def call(self, inputs, training=None):
        tokens = inputs["tokens"]  # (B, T)
        state, extra, field_logits = self._start(inputs["pooled"], inputs)
        gates = self.word_gates(self.embedding(tokens))  # (B, T, 4H), all steps at once
        if extra:
            gates = gates + extra[0][:, None, :]
        hs = []
        for t in range(tokens.shape[1]):
            state = self._lstm(gates[:, t], state)
            hs.append(state[0])
        h = ops.stack(hs, axis=1)  # (B, T, H)
        out = {"logits": self.out(self.drop(h, training=training))}  # (B, T, V)
        if field_logits is not None:
            out["field_logits"] = field_logits  # (B, F)
        return out
