"""Seeded phrasing choice for caption search: what ``decoding.choose_first`` is given.

A template set states the same findings in several phrasings; the words that open its
templates (``opening_words``) say which phrasing a caption uses and nothing about the image.
``decoding.choose_first`` picks an image's first word among the top word and those opening
words the model finds about as likely, with a seed from the image's own pixels
(``content_seeds``), so the choice is the same on every run and machine, and never a word the
model finds unlikely.
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
    # Twin: export/seeds.py computes the same SHA-256 in TensorFlow ops for the SavedModel,
    # which must run without this package. Both stay: hashlib is instant here, while tracing
    # the TF rounds takes ~10 s, too slow for every CLI start. tests/test_export.py
    # (test_tf_phrasing_seeds_equal_numpy) checks that the two agree.
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


def seed_halves(seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) uint64 seeds -> their low and high 32 bits as (N,) int64 each: the form the
    graph's ``decoding.choose_first`` takes (it works in int64, which a SavedModel supports
    everywhere; uint64 has no modulo op there)."""
    seeds = np.asarray(seeds, np.uint64)
    low = (seeds & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return low, (seeds >> np.uint64(32)).astype(np.int64)
