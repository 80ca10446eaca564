"""The MedNIST classifier: an encoder with a linear head. Pretraining it is how the encoder
learns the features the captioner later starts from. A dataset with several label columns
(``data prepare --label-columns``) gets one linear head per column on the same encoder
(``build_multi_head_classifier``)."""

from __future__ import annotations

import re
from pathlib import Path

import keras
from keras import layers

from captioning.config import ModelConfig
from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.errors import RunError
from captioning.models.encoder import build_encoder, pixel_input


def build_classifier(
    config: ModelConfig, num_classes: int, spec: ImageSpec = DEFAULT_IMAGE
) -> keras.Model:
    """(B, S, S, C) pixels of ``spec`` (default (B, 64, 64, 1)) -> (B, num_classes) logits.
    The encoder is the nested model named ``encoder`` (``model.get_layer("encoder")``), so a
    captioner can reuse it."""
    encoder = build_encoder(config, spec)
    pixels = pixel_input(spec)
    pooled = encoder(pixels)["pooled"]
    if config.dropout:
        pooled = layers.Dropout(config.dropout, name="dropout")(pooled)
    logits = layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(pixels, logits, name=f"classifier_{config.name}")


def build_multi_head_classifier(
    config: ModelConfig, heads: dict[str, int], spec: ImageSpec = DEFAULT_IMAGE
) -> keras.Model:
    """(B, S, S, C) pixels of ``spec`` -> ``{column: (B, classes) logits}``, one linear head
    per label column of ``heads`` (column -> its number of classes) on one encoder, as
    ``build_classifier`` builds it. The first column's head is the layer named ``logits``: the
    head a captioner started from this encoder carries (its classes are the run's
    ``classes``); the others are ``logits_<column>``."""
    encoder = build_encoder(config, spec)
    pixels = pixel_input(spec)
    pooled = encoder(pixels)["pooled"]
    if config.dropout:
        pooled = layers.Dropout(config.dropout, name="dropout")(pooled)
    names = head_layer_names(list(heads))
    outputs = {
        column: layers.Dense(size, name=names[column])(pooled) for column, size in heads.items()
    }
    return keras.Model(pixels, outputs, name=f"classifier_{config.name}")


def head_layer_names(columns: list[str]) -> dict[str, str]:
    """column -> its head's layer name: ``logits`` for the first, ``logits_<column>`` for the
    others (characters other than letters, digits, ``_``, ``-`` and ``.`` become ``_``; a
    clash gets the column's position appended)."""
    names: dict[str, str] = {}
    for i, column in enumerate(columns):
        name = "logits" if i == 0 else "logits_" + re.sub(r"[^0-9A-Za-z_.-]", "_", column)
        if name in names.values():
            name = f"{name}_{i}"
        names[column] = name
    return names


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
