"""Show, Attend and Tell (Xu et al. 2015): the LSTM decoder with soft attention."""

from __future__ import annotations

import keras
from keras import layers, ops

from captioning.models.decoders.base import register_decoder
from captioning.models.decoders.lstm import LSTMDecoder


@register_decoder("attention")
@keras.saving.register_keras_serializable(package="captioning")  # name saved in .keras files
class AttentionDecoder(LSTMDecoder):
    """Show, Attend and Tell (Xu et al. 2015), soft attention: at every step an additive
    (Bahdanau) score of each of the P = S * S map positions against the previous hidden state,

        e = w . tanh(W_f f_p + W_h h),  alpha = softmax_p(e),  z = beta(h) * sum_p alpha_p f_p,

    with the gate beta = sigmoid(W_b h); the LSTM reads [embedding(word), z]. The state starts
    from the mean of the feature map or, with ``init_from_map``, from the mean and the whole
    flattened map (a linear read-out of every position, which sees where the anatomy is and how
    much of the frame it covers: the findings are read far better from it than from the mean).
    """

    has_attention = True

    def __init__(
        self, vocab_size: int, attention_dim: int = 128, init_from_map: bool = False, **kwargs
    ):
        super().__init__(vocab_size, **kwargs)
        self.attention_dim, self.init_from_map = attention_dim, init_from_map
        self.att_features = layers.Dense(attention_dim, name="att_features")  # W_f
        self.att_hidden = layers.Dense(attention_dim, use_bias=False, name="att_hidden")  # W_h
        self.att_score = layers.Dense(1, name="att_score")  # w
        self.gate = None  # beta (B, H) -> (B, C): built once C is known
        self.context_gates = layers.Dense(4 * self.hidden, use_bias=False, name="context_gates")

    def build(self, input_shape):
        _, rows, cols, channels = input_shape["feature_map"]
        init_dim = channels * (1 + rows * cols) if self.init_from_map else channels
        self._build_common(init_dim, input_shape)
        self.gate = layers.Dense(channels, activation="sigmoid", name="gate")  # (B, C) gate
        self.att_features.build((None, None, channels))
        self.att_hidden.build((None, self.hidden))
        self.att_score.build((None, None, self.attention_dim))
        self.gate.build((None, self.hidden))
        self.context_gates.build((None, channels))
        self.built = True

    def initial_state(self, features, training=False):
        context, state, _ = self._begin(features)
        return context, state

    def _begin(self, features):
        """``initial_state``'s context and state, and the field heads' logits (B, F) or None."""
        fmap = features["feature_map"]  # (B, S, S, C)
        flat = ops.reshape(fmap, (ops.shape(fmap)[0], -1, fmap.shape[-1]))  # (B, P, C)
        start = mean = ops.mean(flat, axis=1)  # (B, C)
        if self.init_from_map:
            whole = ops.reshape(flat, (ops.shape(flat)[0], -1))  # (B, P * C)
            start = ops.concatenate([mean, whole], axis=-1)  # (B, C + P * C)
        state, extra, field_logits = self._start(start, features)
        # (B, P, C), (B, P, A)[, (B, 4H)]
        return (flat, self.att_features(flat), *extra), state, field_logits

    def _attend(self, state, context):
        """Soft attention from the previous hidden state: the attended context's share of the
        gates (B, 4H) and the weights alpha (B, P)."""
        flat, projected = context[:2]  # (B, P, C), (B, P, A): W_f f_p, computed once
        scores = self.att_score(
            ops.tanh(projected + ops.expand_dims(self.att_hidden(state[0]), 1))  # (B, P, A)
        )  # (B, P, 1)
        alpha = ops.softmax(ops.squeeze(scores, -1), axis=-1)  # (B, P)
        z = ops.einsum("bp,bpc->bc", alpha, flat) * self.gate(state[0])  # (B, C)
        return self.context_gates(z), alpha  # (B, 4H), (B, P)

    def step(self, tokens, state, context, training=False):
        context_part, alpha = self._attend(state, context)  # (B, 4H), (B, P)
        gates = self.word_gates(self.embedding(tokens)) + context_part  # (B, 4H)
        h, c = self._lstm(gates + self._fixed_gates(context[2:]), state)  # each (B, H)
        return self.out(self.drop(h, training=training)), (h, c), alpha  # logits (B, V)

    def call(self, inputs, training=None):
        tokens = inputs["tokens"]  # (B, T)
        context, state, field_logits = self._begin(inputs)
        word_part = self.word_gates(self.embedding(tokens))  # (B, T, 4H)
        fixed = self._fixed_gates(context[2:])  # (B, 4H) or 0.0
        hs, alphas = [], []
        for t in range(tokens.shape[1]):
            context_part, alpha = self._attend(state, context)
            state = self._lstm(word_part[:, t] + context_part + fixed, state)
            hs.append(state[0])
            alphas.append(alpha)
        h = ops.stack(hs, axis=1)  # (B, T, H)
        out = {
            "logits": self.out(self.drop(h, training=training)),  # (B, T, V)
            "attention": ops.stack(alphas, axis=1),  # (B, T, P)
        }
        if field_logits is not None:
            out["field_logits"] = field_logits  # (B, F)
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "attention_dim": self.attention_dim,
            "init_from_map": self.init_from_map,
        }
