"""Decoding rules: the words the search may not choose next, as graph ops.

Free-text captions taught a decoder to write ``<unk>`` and "the the the ...": the rules that
captioning toolkits apply at search time stop both, whatever the decoder's logits say.

- ``block_specials``: never ``<unk>``, ``<pad>`` or ``<start>`` (a finished caption still gets
  ``<pad>`` after ``<end>``: the loops add that, not the decoder).
- ``block_repeats``: no word twice in a row, and no 3-gram twice in a caption (fairseq's and
  Hugging Face's ``no_repeat_ngram_size=3``: a word that would complete a 3-gram the
  hypothesis already holds is banned).
- ``min_length``: ``<end>`` is banned before ``min_length`` words (the trainer sets it from
  the training captions' lengths: ``length_bounds``).

All three are off in ``DecodingRules()``, which is what a run saved before them gets (its
config has no such keys): it decodes exactly as it did. Banned words get log-probability
-inf before the search picks, and where a rule would ban every word, ``<end>`` stays allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

NGRAM = 3  # no_repeat_ngram_size
# percentiles of the training captions' lengths (``length_bounds``): templated captions end
# where their template does, so the minimum only guards against an empty caption; free text
# gets the first quartile as its minimum (likelihood search favours short captions: on MedPix
# 2.0's validation split the quartile raised BLEU-4 0.006 -> 0.015 and CIDEr-D 0.054 -> 0.060,
# best greedy epochs: experiments/benchmarks/medpix_schedule_probes.json)
# and its 90th percentile as the longest caption (training and decoding)
MIN_LENGTH_QUANTILE = 5
FREE_TEXT_MIN_QUANTILE = 25
FREE_TEXT_MAX_QUANTILE = 90


@dataclass(frozen=True)
class DecodingRules:
    """Which rules a search applies; all off by default (a run saved before them)."""

    block_specials: bool = False
    block_repeats: bool = False
    min_length: int = 0  # words before <end>

    @classmethod
    def from_settings(cls, decoder: dict) -> DecodingRules:
        """The rules a run's config ``decoder`` section asks for; absent keys: off."""
        return cls(
            block_specials=bool(decoder.get("block_specials", False)),
            block_repeats=bool(decoder.get("block_repeats", False)),
            min_length=max(int(decoder.get("min_length") or 0), 0),
        )

    @property
    def active(self) -> bool:
        return self.block_specials or self.block_repeats or self.min_length > 0


def length_bounds(lengths, max_length: int, quantile: float = MIN_LENGTH_QUANTILE) -> int:
    """The minimum caption length (words before ``<end>``) from the training captions'
    lengths: their ``quantile`` percentile (5th; free text: 25th), at most half of
    ``max_length`` (so a short correct caption is never forced long), 0 without captions."""
    lengths = np.asarray(lengths)
    if not len(lengths):
        return 0
    low = int(np.floor(np.percentile(lengths, quantile)))
    return int(max(0, min(low, max_length // 2)))


def ngram_banned(seqs, t, vocab):
    """(N, V) bool: the words that would complete a 3-gram already in ``seqs`` (N, L) int32,
    whose first ``t`` words are the hypothesis so far (the rest is ignored)."""
    n, length = tf.shape(seqs)[0], tf.shape(seqs)[1]
    prev2 = tf.gather(seqs, tf.maximum(t - 2, 0), axis=1)  # (N,)
    prev1 = tf.gather(seqs, tf.maximum(t - 1, 0), axis=1)  # (N,)
    a, b, c = seqs[:, :-2], seqs[:, 1:-1], seqs[:, 2:]  # (N, L-2) each: the 3-grams by start
    done_grams = tf.range(length - 2) <= t - NGRAM  # (L-2,) 3-grams wholly inside the t words
    match = tf.equal(a, prev2[:, None]) & tf.equal(b, prev1[:, None]) & done_grams[None, :]
    rows = tf.tile(tf.range(n)[:, None], [1, length - 2])  # (N, L-2)
    index = tf.reshape(tf.stack([rows, c], -1), [-1, 2])  # (N*(L-2), 2) (row, third word)
    hits = tf.reshape(tf.cast(match, tf.int32), [-1])  # (N*(L-2),)
    banned = tf.tensor_scatter_nd_max(tf.zeros([n, vocab], tf.int32), index, hits)  # (N, V)
    return banned > 0


def banned_words(search, seqs, prev, t, vocab):
    """(N, V) bool: what ``search.rules`` ban at step ``t`` for hypotheses ``seqs`` (N, L)
    int32 (first ``t`` words filled) whose last word is ``prev`` (N,) int32."""
    rules = search.rules
    ids = tf.range(vocab)[None, :]  # (1, V)
    banned = tf.zeros([tf.shape(seqs)[0], vocab], tf.bool)  # (N, V)
    if rules.block_specials:
        specials = [0, search.start_id] + ([search.unk_id] if search.unk_id is not None else [])
        banned |= tf.reduce_any(tf.equal(ids[..., None], specials), -1)  # (1, V)
    if rules.block_repeats:
        banned |= tf.equal(ids, prev[:, None]) & (t > 0)  # (N, V) the word just written
        banned |= ngram_banned(seqs, t, vocab)
    is_end = tf.equal(ids, search.end_id)  # (1, V)
    if rules.min_length > 0:
        banned |= is_end & (t < rules.min_length)
    stuck = tf.reduce_all(banned, -1, keepdims=True)  # (N, 1) nothing left: allow <end>
    return banned & ~(stuck & is_end)


def apply_rules(search, log_p, seqs, prev, t):
    """``log_p`` (N, V) with the banned words at -inf (unchanged without rules)."""
    if not search.rules.active:
        return log_p
    banned = banned_words(search, seqs, prev, t, tf.shape(log_p)[-1])
    return tf.where(banned, tf.constant(-np.inf, log_p.dtype), log_p)
