"""The MedNIST classifier: an encoder with a linear head. Pretraining it is how the encoder
learns the features the captioner later starts from."""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from captioning.config import ModelConfig
from captioning.errors import RunError
from captioning.models.encoder import build_encoder, pixel_input


def build_classifier(config: ModelConfig, num_classes: int) -> keras.Model:
    """(B, 64, 64, 1) pixels -> (B, num_classes) logits. The encoder is the nested model
    named ``encoder`` (``model.get_layer("encoder")``), so a captioner can reuse it."""
    encoder = build_encoder(config)
    pixels = pixel_input()
    pooled = encoder(pixels)["pooled"]
    if config.dropout:
        pooled = layers.Dropout(config.dropout, name="dropout")(pooled)
    logits = layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(pixels, logits, name=f"classifier_{config.name}")


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file with ``safe_mode=True``: a file carrying code (a Lambda layer,
    an unknown custom object) is refused with a one-line error instead of being executed."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such model file")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises ValueError, TypeError, OSError, zipfile errors...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(f"{path}: cannot load model safely ({first})") from None
