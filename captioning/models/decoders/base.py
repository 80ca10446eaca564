"""The contract every caption decoder keeps: what training, caption search and the trainer
call on it (``CaptionDecoder``), and ``register_decoder``, which names a decoder for the
config's ``decoder.kind``.

A decoder is a Keras 3 layer, registered with ``keras.saving.register_keras_serializable``
(package ``captioning``; the registered name is part of every saved ``.keras`` file, so it
must never change) and with a ``get_config`` that holds every constructor argument. See
docs/decoders.md for how to add one.
"""

from __future__ import annotations

import numpy as np
from keras import layers

# kind (the config's ``decoder.kind``) -> decoder class; filled by ``register_decoder``
REGISTERED: dict[str, type[CaptionDecoder]] = {}


def register_decoder(kind: str):
    """Class decorator: make a ``CaptionDecoder`` subclass buildable as ``decoder.kind = kind``."""

    def register(cls):
        if not issubclass(cls, CaptionDecoder):
            raise TypeError(f"{cls.__name__} is not a CaptionDecoder")
        if REGISTERED.get(kind, cls) is not cls:
            raise ValueError(f"decoder kind '{kind}' is taken by {REGISTERED[kind].__name__}")
        cls.kind = kind
        REGISTERED[kind] = cls
        return cls

    return register


class CaptionDecoder(layers.Layer):
    """A caption decoder on the encoder's image features.

    ``features`` everywhere is the dict of ``models.captioner.image_features``:
    ``{"feature_map": (B, S, S, C), "pooled": (B, C), "statistics": (B, 510)}``. The
    constructor's first argument is ``vocab_size``; its keyword arguments (with their
    defaults, the single source of them) are the decoder's settings, which ``build_decoder``
    fills from the config's ``[decoder]`` table where they are named alike.

    Caption search (``captioning.decoding``) uses ``initial_state`` once per image, then
    ``step`` once per word, on batches of B images (or B x k beams: every tensor of
    ``context`` and ``state`` is batch first, so the search can repeat and gather them).
    Training uses ``call`` (teacher forcing). The trainer fits the findings read-out.
    """

    kind: str = ""  # set by ``register_decoder``
    # whether ``step`` returns attention weights (B, P) over the P = S * S map positions (and
    # ``call`` an ``"attention"`` output): captions then get attention overlays and the
    # attention penalty applies
    has_attention: bool = False
    # the findings read-out: a layer reading K numbers from ``features["statistics"]``, or None
    readout = None

    def initial_state(self, features: dict, training=False) -> tuple[tuple, tuple]:
        """``(context, state)`` before the first word: ``context`` is a tuple of tensors that
        stay fixed while decoding, ``state`` a tuple of tensors that ``step`` updates."""
        raise NotImplementedError

    def step(self, tokens, state: tuple, context: tuple, training=False):
        """One word: ``tokens`` (B,) int32, the previous word -> ``(logits, state,
        attention)``: ``logits`` (B, V) score the next word, ``state`` the new state,
        ``attention`` (B, P) with ``has_attention``, else None."""
        raise NotImplementedError

    def call(self, inputs: dict, training=None) -> dict:
        """Teacher forcing: ``inputs`` = features + ``"tokens"`` (B, T) int32 -> ``{"logits":
        (B, T, V)}``, plus ``"attention"`` (B, T, P) with ``has_attention`` and
        ``"field_logits"`` (B, F) with field heads (the trainer's auxiliary loss). Must agree
        with ``initial_state`` followed by T ``step`` calls."""
        raise NotImplementedError

    def fit_readout(self, statistics: np.ndarray, targets: np.ndarray) -> float:
        """Set the read-out (only called when ``readout`` is not None) to fit ``targets``
        (N, K) from ``statistics`` (N, F) of the training images; return the fit's RMSE."""
        raise NotImplementedError
