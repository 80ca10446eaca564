"""What both stages of the captioner train and validate on: the references as token ids,
the loss weight of each word, the optimizer steps per epoch and, for field heads, each image's
field values."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from captioning.captions.findings import field_ids
from captioning.captions.vocabulary import Vocabulary
from captioning.data.caption_data import encode_references, reference_tokens
from captioning.data.pipeline import steps_per_epoch
from captioning.training.caption_task import field_words, word_weights
from captioning.training.captioner_setup import CaptionData, TrainingRun


@dataclass
class CaptionTargets:
    """What both stages train and validate on: the references as padded token ids
    (``encoded``: split -> (N, R, L + 1) int32), the validation references as words, the
    loss weight of each vocabulary word, the optimizer steps per epoch and, for field heads,
    each image's field values (``fields``: split -> (N, F) int32, ``findings.field_ids``)."""

    vocab: Vocabulary
    encoded: dict[str, np.ndarray]
    val_references: list
    word_weights: np.ndarray | None
    steps: int
    fields: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # none: {}


def caption_targets(run: TrainingRun, captions: CaptionData, vocab: Vocabulary) -> CaptionTargets:
    """Encode the train and validation references, weigh the finding words and, with field
    heads, read each image's field values from the caption frame."""
    config, frame = run.config, captions.frame
    parts = (("train", captions.train), ("val", captions.val))
    encoded = {
        name: encode_references(frame.iloc[part.rows], vocab, config.decoder.max_length)
        for name, part in parts
    }
    tset = captions.template_set  # None for free text: no finding words to weigh
    weights = (
        word_weights(vocab, field_words(tset), config.decoder.field_word_weight) if tset else None
    )
    steps = steps_per_epoch(
        len(captions.train), config.train.batch_size, config.train.max_steps_per_epoch
    )
    val_references = reference_tokens(frame.iloc[captions.val.rows], vocab.tokenize)
    fields = (  # the field heads' targets: the values the captions state
        {name: field_ids(frame.iloc[part.rows], tset.fields) for name, part in parts}
        if config.decoder.field_heads and tset
        else {}
    )
    return CaptionTargets(vocab, encoded, val_references, weights, steps, fields)
