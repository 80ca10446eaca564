"""Seeded phrasing choice for caption search (used by ``decoding.CaptionSearch``).

A template set states the same findings in several phrasings; the words that open its
templates (``opening_words``) say which phrasing a caption uses and nothing about the image.
``choose_first`` picks an image's first word among the top word and those opening words the
model finds about as likely, with a seed from the image's own pixels (``content_seeds``), so the
choice is the same on every run and machine, and never a word the model finds unlikely.
"""

from __future__ import annotations

import hashlib

import numpy as np

from captioning.captions.templates import _SLOT, TemplateSet
from captioning.captions.tokenize import tokenize

PHRASINGS = ("best", "varied")  # best: plain search; varied: seeded first-word choice


def content_seeds(images: np.ndarray) -> np.ndarray:
    """(N,) uint64: a seed per image from its pixels (the first 8 bytes of the sha256 of its
    bytes), so a choice made with it is the same on every run and machine."""
    images = np.ascontiguousarray(images)
    return np.array(
        [int.from_bytes(hashlib.sha256(x.tobytes()).digest()[:8], "little") for x in images],
        np.uint64,
    )


def opening_words(tset: TemplateSet, index: dict[str, int]) -> list[int]:
    """Vocabulary ids (``index``: token -> id) of the fixed words that open the set's templates
    (a template that opens with a slot opens with a word about the image: not listed)."""
    words = set()
    for template in (*tset.templates, *tset.non_diagnostic):
        head = template.split("{", 1)[0]
        tokens = tokenize(head)
        if tokens and not _SLOT.match(template) and tokens[0] in index:
            words.add(index[tokens[0]])
    return sorted(words)


def choose_first(probs: np.ndarray, seeds: np.ndarray, words, ratio: float) -> np.ndarray:
    """(B,) int32 first word per row of ``probs`` (B, V): the top word or one of ``words``
    whose probability is >= ``ratio`` x the top's, candidates in id order, picked by
    ``seed % (number of candidates)``."""
    rows = np.arange(len(probs))
    top = probs.argmax(1)  # (B,)
    eligible = np.zeros(probs.shape[1], bool)
    eligible[list(words)] = True
    near = (probs >= ratio * probs[rows, top][:, None]) & eligible  # (B, V)
    near[rows, top] = True
    out = np.empty(len(probs), np.int32)
    for row, (candidates, seed) in enumerate(zip(near, seeds, strict=True)):
        ids = np.flatnonzero(candidates)
        out[row] = ids[int(seed) % len(ids)]
    return out
