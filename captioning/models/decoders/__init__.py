"""Caption decoders: the contract (``base.CaptionDecoder``), one module per decoder
(``show_tell``, ``attention``, sharing ``lstm.LSTMDecoder``) and the registry that finds them.
docs/decoders.md says how to add one.

Importing the package imports every decoder module in it, so each decoder is registered with
Keras (loading a saved captioner needs that) and with the registry."""

from captioning.models.decoders.attention import AttentionDecoder
from captioning.models.decoders.base import CaptionDecoder, register_decoder
from captioning.models.decoders.lstm import LSTMDecoder
from captioning.models.decoders.registry import (
    build_decoder,
    decoder_kinds,
    decoder_settings,
    decoders,
)
from captioning.models.decoders.show_tell import ShowTellDecoder

decoders()  # import every module of the package: a new decoder file needs no line here

__all__ = [
    "AttentionDecoder",
    "CaptionDecoder",
    "LSTMDecoder",
    "ShowTellDecoder",
    "build_decoder",
    "decoder_kinds",
    "decoder_settings",
    "decoders",
    "register_decoder",
]
