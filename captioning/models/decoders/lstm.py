"""The parts both LSTM decoders (Show-and-Tell, attention) share: embedding, LSTM gates,
output projection and the findings read-out. Their ``state`` is the LSTM's ``(h, c)``, each
(B, H); the contract they keep is ``base.CaptionDecoder``'s.

The LSTM is written out (one matmul for the input of all T steps, one per step for the
recurrence) rather than wrapping ``keras.layers.LSTMCell``: the step is what beam search calls
B x k times per word, so it is kept to plain batched ops.
"""

from __future__ import annotations

import numpy as np
from keras import layers, ops

from captioning.models.decoders.base import CaptionDecoder


class LSTMDecoder(CaptionDecoder):
    """The parts both LSTM decoders share: embedding, LSTM gates, output projection, and the
    findings read-out.

    With ``readout`` = K > 0, a linear layer reads K numbers from the image's intensity
    statistics (``features["statistics"]``); the LSTM's initial state reads them beside the
    image vector, and every step's gates read them too (as the attention context is read), so
    a finding stated late in the caption does not depend on the state carrying it. The
    read-out's weights are fitted by least squares (``fit_readout``) to each finding's
    measurement relative to its cut point, and never changed by gradient steps: the findings
    are shares of pixels past grey levels, which a linear map of the statistics recovers
    almost exactly, better than the caption loss teaches the LSTM to (see
    experiments/findings_accuracy.md).

    With ``label_sizes`` (one count per label column), the decoder carries the encoder run's
    label heads, frozen (``set_label_heads`` copies them): each reads the pooled vector, and
    the columns' probabilities join the initial state and every step's gates as the read-out
    does. The caption loss alone does not teach the LSTM which body system an image shows;
    the heads were trained on the labels that say it (experiments/medpix.md).

    With ``field_sizes`` (one count per finding of the template set), the decoder has trained
    field heads: one linear layer reads each finding's logits from the image vector the state
    starts from (the map's mean, or with the attention decoder's ``init_from_map`` also the
    whole map), and their probabilities join the initial state and every step's gates as the
    label heads' do. ``call`` returns the logits (``field_logits``) for an auxiliary
    cross-entropy on the caption's field values: the encoder and the heads learn each finding
    from its own label, and the LSTM only says it (experiments/acquisition.md).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden: int = 128,
        dropout: float = 0.0,
        readout: int = 0,
        label_sizes: tuple[int, ...] = (),
        field_sizes: tuple[int, ...] = (),
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
        self.label_sizes = tuple(int(n) for n in label_sizes)
        self.label_heads = [  # (B, C) pooled -> (B, n) logits of one label column; copied
            layers.Dense(n, trainable=False, name=f"label_head_{i}")
            for i, n in enumerate(self.label_sizes)
        ]
        self.label_gates = (  # (B, L) probabilities -> (B, 4H), their share of every step's gates
            layers.Dense(4 * hidden, use_bias=False, name="label_gates") if label_sizes else None
        )
        self.field_sizes = tuple(int(n) for n in field_sizes)
        # (B, D) image vector -> (B, F) every finding's logits side by side; trained
        self.field_heads = (
            layers.Dense(sum(self.field_sizes), name="field_heads") if field_sizes else None
        )
        self.field_gates = (  # (B, F) probabilities -> (B, 4H), their share of every step's gates
            layers.Dense(4 * hidden, use_bias=False, name="field_gates") if field_sizes else None
        )
        self.embedding = layers.Embedding(vocab_size, embed_dim, name="embedding")
        self.init_h = layers.Dense(hidden, activation="tanh", name="init_h")
        self.init_c = layers.Dense(hidden, name="init_c")
        self.word_gates = layers.Dense(4 * hidden, name="word_gates")  # x_t -> i, f, g, o
        self.recurrent = layers.Dense(4 * hidden, use_bias=False, name="recurrent")  # h -> gates
        self.drop = layers.Dropout(dropout, name="drop")
        self.out = layers.Dense(vocab_size, name="out")  # h -> next-word logits

    def _build_common(self, init_dim: int, input_shape) -> None:
        if self.field_heads is not None:  # they read the image vector alone
            self.field_heads.build((None, init_dim))
            self.field_gates.build((None, sum(self.field_sizes)))
            init_dim += sum(self.field_sizes)
        if self.readout is not None:
            self.readout.build((None, input_shape["statistics"][-1]))
            self.readout_gates.build((None, self.readout_size))
            init_dim += self.readout_size
        for head in self.label_heads:
            head.build((None, input_shape["pooled"][-1]))
        if self.label_heads:
            self.label_gates.build((None, sum(self.label_sizes)))
            init_dim += sum(self.label_sizes)
        self.embedding.build((None,))
        self.init_h.build((None, init_dim))
        self.init_c.build((None, init_dim))
        self.word_gates.build((None, self.embed_dim))
        self.recurrent.build((None, self.hidden))
        self.out.build((None, self.hidden))

    def _start(self, start, features):
        """The initial state (h, c), each (B, H), from the image vector ``start`` (B, D) and,
        with field heads, their F probabilities, with a read-out, its K numbers, with label
        heads, their L probabilities; their fixed share of every step's gates: a tuple holding
        one (B, 4H) tensor, or empty without any; and the field heads' logits (B, F), or None.
        """
        parts, fixed, field_logits = [start], [], None
        if self.field_heads is not None:
            field_logits = self.field_heads(start)  # (B, F)
            probabilities = self._field_probabilities(field_logits)
            parts.append(probabilities)
            fixed.append(self.field_gates(probabilities))
        if self.readout is not None:
            found = self.readout(features["statistics"])  # (B, K)
            parts.append(found)
            fixed.append(self.readout_gates(found))
        if self.label_heads:
            probabilities = ops.concatenate(  # (B, L): each column's softmax, side by side
                [ops.softmax(head(features["pooled"]), axis=-1) for head in self.label_heads], -1
            )
            parts.append(probabilities)
            fixed.append(self.label_gates(probabilities))
        start = ops.concatenate(parts, axis=-1) if len(parts) > 1 else start  # (B, D + F + K + L)
        state = (self.init_h(start), self.init_c(start))
        return state, ((sum(fixed[1:], fixed[0]),) if fixed else ()), field_logits

    def _field_probabilities(self, logits):
        """(B, F) logits of every finding side by side -> each finding's softmax, side by side."""
        if len(self.field_sizes) == 1:
            return ops.softmax(logits, axis=-1)
        groups = ops.split(logits, list(np.cumsum(self.field_sizes)[:-1]), axis=-1)
        return ops.concatenate([ops.softmax(g, axis=-1) for g in groups], -1)

    @staticmethod
    def _fixed_gates(extra):
        """The field heads', read-out's and label heads' share of the gates (B, 4H) from
        ``_start``'s tuple, or 0.0."""
        return extra[0] if extra else 0.0

    def set_label_heads(self, heads) -> None:
        """Copy the encoder run's label heads (Keras ``Dense`` layers on the pooled vector, in
        ``label_sizes`` order) into this built decoder's frozen ones."""
        sizes = tuple(head.units for head in heads)
        if sizes != self.label_sizes:
            raise ValueError(f"label heads of sizes {sizes}, the decoder has {self.label_sizes}")
        for mine, theirs in zip(self.label_heads, heads, strict=True):
            mine.set_weights(theirs.get_weights())

    def fit_readout(
        self, statistics: np.ndarray, targets: np.ndarray, ridge: float = 1e-8, chunk: int = 4096
    ):
        """Set the read-out to the least-squares fit of ``targets`` (N, K) on ``statistics``
        (N, F) of the training images (closed form, float64). ``ridge`` x N on the diagonal only
        keeps the solve stable (the shares of neighbouring levels are nearly collinear): a
        stronger one blurs the fit near the cut points, where it matters. The normal equations
        are summed over chunks of rows, so no float64 copy of every row is made at once."""
        n = len(statistics)
        features = statistics.shape[1] + 1  # + the bias column
        gram = ridge * n * np.eye(features)  # (F + 1, F + 1)
        moment = np.zeros((features, targets.shape[1]))  # (F + 1, K)
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            x = _with_bias(statistics[rows])  # (chunk, F + 1)
            gram += x.T @ x
            moment += x.T @ targets[rows]
        solution = np.linalg.solve(gram, moment)  # (F + 1, K)
        self.readout.set_weights([solution[:-1], solution[-1]])
        squared = 0.0
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            squared += float(((_with_bias(statistics[rows]) @ solution - targets[rows]) ** 2).sum())
        return float(np.sqrt(squared / targets.size))  # RMSE, in the targets' units

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
            "label_sizes": self.label_sizes,
            "field_sizes": self.field_sizes,
        }


def _with_bias(statistics: np.ndarray) -> np.ndarray:
    """(n, F) -> (n, F + 1) float64: the statistics and a column of ones."""
    return np.concatenate([statistics.astype(np.float64), np.ones((len(statistics), 1))], 1)
