"""LSTM caption decoders on the encoder's features: Show-and-Tell and Show-Attend-Tell.

Both are Keras 3 layers (registered, with ``get_config``, so ``.keras`` files load with
``safe_mode=True``) with one interface, which the training step and the decoder search share:

- ``initial_state(features) -> (context, state)``: ``features`` is the dict of
  ``models.captioner.image_features``: ``{"feature_map": (B, S, S, C), "pooled": (B, C),
  "statistics": (B, 510)}``; ``context`` is a tuple of tensors that
  stay fixed while decoding (batch first), ``state`` the LSTM state ``(h, c)``, each (B, H).
- ``step(tokens, state, context) -> (logits, state, attention)``: one time step; ``tokens``
  (B,) int32 is the previous word, ``logits`` (B, V) score the next; ``attention`` is (B, P)
  with P = S * S for the attention decoder, None for Show-and-Tell.
- ``call({"feature_map", "pooled", "tokens": (B, T)})``: teacher forcing over T steps, returns
  ``{"logits": (B, T, V)}`` plus ``"attention": (B, T, P)`` for the attention decoder.

The LSTM is written out (one matmul for the input of all T steps, one per step for the
recurrence) rather than wrapping ``keras.layers.LSTMCell``: the step is what beam search calls
B x k times per word, so it is kept to plain batched ops.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


class _LSTMDecoder(layers.Layer):
    """The parts both decoders share: embedding, LSTM gates, output projection, and the
    findings read-out.

    With ``readout`` = K > 0, a linear layer reads K numbers from the image's intensity
    statistics (``features["statistics"]``); the LSTM's initial state reads them beside the
    image vector, and every step's gates read them too (as the attention context is read), so
    a finding stated late in the caption does not depend on the state carrying it. The
    read-out's weights are fitted by least squares (``fit_readout``) to each finding's
    measurement relative to its cut point, and never changed by gradient steps: the findings
    are shares of pixels past grey levels, which the statistics state exactly and a linear map
    recovers to ~1e-4 of their spread, whereas the caption loss alone leaves the LSTM's own
    read-out of them at 97-99% per field (experiments/findings_accuracy.md).
    """

    has_attention = False

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden: int = 256,
        dropout: float = 0.0,
        readout: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size, self.embed_dim, self.hidden, self.dropout = (
            vocab_size,
            embed_dim,
            hidden,
            dropout,
        )
        self.readout_size = readout
        # (B, 510) statistics -> (B, K); fitted, not trained
        self.readout = layers.Dense(readout, trainable=False, name="readout") if readout else None
        self.readout_gates = (  # (B, K) -> (B, 4H), the read-out's share of every step's gates
            layers.Dense(4 * hidden, use_bias=False, name="readout_gates") if readout else None
        )
        self.embedding = layers.Embedding(vocab_size, embed_dim, name="embedding")
        self.init_h = layers.Dense(hidden, activation="tanh", name="init_h")
        self.init_c = layers.Dense(hidden, name="init_c")
        self.word_gates = layers.Dense(4 * hidden, name="word_gates")  # x_t -> i, f, g, o
        self.recurrent = layers.Dense(4 * hidden, use_bias=False, name="recurrent")  # h -> gates
        self.drop = layers.Dropout(dropout, name="drop")
        self.out = layers.Dense(vocab_size, name="out")  # h -> next-word logits

    def _build_common(self, init_dim: int, input_shape) -> None:
        if self.readout is not None:
            self.readout.build((None, input_shape["statistics"][-1]))
            self.readout_gates.build((None, self.readout_size))
            init_dim += self.readout_size
        self.embedding.build((None,))
        self.init_h.build((None, init_dim))
        self.init_c.build((None, init_dim))
        self.word_gates.build((None, self.embed_dim))
        self.recurrent.build((None, self.hidden))
        self.out.build((None, self.hidden))

    def _start(self, start, features):
        """The initial state (h, c), each (B, H), from the image vector ``start`` (B, D) and,
        with a read-out, its K numbers; and the read-out's fixed share of every step's gates:
        a tuple holding one (B, 4H) tensor, or empty without a read-out."""
        if self.readout is None:
            return (self.init_h(start), self.init_c(start)), ()
        found = self.readout(features["statistics"])  # (B, K)
        start = ops.concatenate([start, found], axis=-1)
        return (self.init_h(start), self.init_c(start)), (self.readout_gates(found),)

    @staticmethod
    def _fixed_gates(extra):
        """The read-out's share of the gates (B, 4H) from ``_start``'s tuple, or 0.0."""
        return extra[0] if extra else 0.0

    def fit_readout(self, statistics: np.ndarray, targets: np.ndarray, ridge: float = 1e-8):
        """Set the read-out to the least-squares fit of ``targets`` (N, K) on ``statistics``
        (N, F) of the training images (closed form, float64). ``ridge`` x N on the diagonal only
        keeps the solve stable (the shares of neighbouring levels are nearly collinear): a
        stronger one blurs the fit near the cut points, where it matters."""
        x = np.concatenate([statistics.astype(np.float64), np.ones((len(statistics), 1))], 1)
        gram = x.T @ x + ridge * len(x) * np.eye(x.shape[1])
        solution = np.linalg.solve(gram, x.T @ targets.astype(np.float64))  # (F + 1, K)
        self.readout.set_weights([solution[:-1], solution[-1]])
        residual = x @ solution - targets
        return float(np.sqrt(np.mean(residual**2)))  # RMSE, in the targets' units

    def _lstm(self, gates, state):
        """One LSTM update from the input's share of the gates (B, 4H) and (h, c)."""
        h, c = state
        i, f, g, o = ops.split(gates + self.recurrent(h), 4, axis=-1)  # each (B, H)
        c = ops.sigmoid(f + 1.0) * c + ops.sigmoid(i) * ops.tanh(g)  # forget bias 1
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, c

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "readout": self.readout_size,
        }


@keras.saving.register_keras_serializable(package="captioning")
class ShowTellDecoder(_LSTMDecoder):
    """Show-and-Tell (Vinyals et al. 2015): the pooled image vector (B, C) initialises the
    LSTM state; the words alone drive it afterwards."""

    def build(self, input_shape):
        self._build_common(input_shape["pooled"][-1], input_shape)
        self.built = True

    def initial_state(self, features, training=False):
        state, extra = self._start(features["pooled"], features)
        return extra, state  # context: only the read-out's share of the gates, if any

    def step(self, tokens, state, context, training=False):
        gates = self.word_gates(self.embedding(tokens)) + self._fixed_gates(context)  # (B, 4H)
        h, c = self._lstm(gates, state)
        return self.out(self.drop(h, training=training)), (h, c), None  # (B, V)

    def call(self, inputs, training=None):
        tokens = inputs["tokens"]  # (B, T)
        extra, state = self.initial_state(inputs, training=training)
        gates = self.word_gates(self.embedding(tokens))  # (B, T, 4H), all steps at once
        if extra:
            gates = gates + extra[0][:, None, :]
        hs = []
        for t in range(tokens.shape[1]):
            state = self._lstm(gates[:, t], state)
            hs.append(state[0])
        h = ops.stack(hs, axis=1)  # (B, T, H)
        return {"logits": self.out(self.drop(h, training=training))}  # (B, T, V)


@keras.saving.register_keras_serializable(package="captioning")
class AttentionDecoder(_LSTMDecoder):
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
        fmap = features["feature_map"]  # (B, S, S, C)
        flat = ops.reshape(fmap, (ops.shape(fmap)[0], -1, fmap.shape[-1]))  # (B, P, C)
        start = mean = ops.mean(flat, axis=1)  # (B, C)
        if self.init_from_map:
            whole = ops.reshape(flat, (ops.shape(flat)[0], -1))  # (B, P * C)
            start = ops.concatenate([mean, whole], axis=-1)  # (B, C + P * C)
        state, extra = self._start(start, features)
        return (flat, self.att_features(flat), *extra), state  # (B, P, C), (B, P, A)[, (B, 4H)]

    def _attend(self, state, context):
        flat, projected = context[:2]
        scores = self.att_score(
            ops.tanh(projected + ops.expand_dims(self.att_hidden(state[0]), 1))
        )  # (B, P, 1)
        alpha = ops.softmax(ops.squeeze(scores, -1), axis=-1)  # (B, P)
        z = ops.einsum("bp,bpc->bc", alpha, flat) * self.gate(state[0])  # (B, C)
        return self.context_gates(z), alpha  # (B, 4H), (B, P)

    def step(self, tokens, state, context, training=False):
        context_part, alpha = self._attend(state, context)
        gates = self.word_gates(self.embedding(tokens)) + context_part
        h, c = self._lstm(gates + self._fixed_gates(context[2:]), state)
        return self.out(self.drop(h, training=training)), (h, c), alpha

    def call(self, inputs, training=None):
        tokens = inputs["tokens"]  # (B, T)
        context, state = self.initial_state(inputs, training=training)
        word_part = self.word_gates(self.embedding(tokens))  # (B, T, 4H)
        fixed = self._fixed_gates(context[2:])  # (B, 4H) or 0.0
        hs, alphas = [], []
        for t in range(tokens.shape[1]):
            context_part, alpha = self._attend(state, context)
            state = self._lstm(word_part[:, t] + context_part + fixed, state)
            hs.append(state[0])
            alphas.append(alpha)
        h = ops.stack(hs, axis=1)  # (B, T, H)
        return {
            "logits": self.out(self.drop(h, training=training)),  # (B, T, V)
            "attention": ops.stack(alphas, axis=1),  # (B, T, P)
        }

    def get_config(self):
        return {
            **super().get_config(),
            "attention_dim": self.attention_dim,
            "init_from_map": self.init_from_map,
        }


DECODERS = {"show_tell": ShowTellDecoder, "attention": AttentionDecoder}


def build_decoder(kind: str, vocab_size: int, **settings) -> _LSTMDecoder:
    """The decoder called ``kind`` (``show_tell`` or ``attention``), named ``decoder``."""
    if kind == "show_tell":
        settings.pop("attention_dim", None)
        settings.pop("init_from_map", None)
    return DECODERS[kind](vocab_size, name="decoder", **settings)
