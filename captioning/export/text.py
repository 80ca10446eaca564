"""Caption text and finding confidences in TensorFlow ops, for the exported serving model.

Twins of ``captions.sentence.to_sentence`` (its rule part) and of ``confidence.finding_logits``
with ``Captioner.confidences``: the SavedModel cannot call this package's Python, and
the CLI keeps the Python, which works on any template set without building tables. Tests in
tests/test_export.py check both pairs agree (``test_sentence_table_equals_to_sentence``,
``test_finding_table_equals_numpy_confidences``).

Both are functions of a template set that is fixed at export, so the Python that decides them
(``to_sentence``, ``confidence.locate_fields`` and ``deciding_candidates``) runs once at
export over everything the set can say, and the graph only looks its answers up:

- ``SentenceTable``: every rendering of the set (class x findings x template), as tokens,
  maps to ``to_sentence`` of it; any other token sequence gets ``rule_sentence``'s result
  (written forms of words, a capital first letter, a final period), built from a word table.
- ``FindingTable``: every class and field phrase maps to what ``finding_logits`` needs: its
  field, length, the offset of the deciding word and the candidate words with their values,
  and to the value it states (the ``findings`` of ``stated_findings``).
  The graph scans a caption left to right, longest phrase first, as parse-back does.
"""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf

from captioning.captions.findings import FIELD_VALUES, QUALITY_VALUES
from captioning.captions.parse import phrase_table
from captioning.captions.sentence import to_sentence, written_forms
from captioning.captions.templates import render
from captioning.captions.tokenize import tokenize
from captioning.confidence import deciding_candidates

SENTINEL = "\x01"  # pads word rows: no phrase or rendering contains it


def _table(keys: list[str], values, default):
    """A static hash table str -> ``values`` (strings or int64)."""
    values = tf.constant(values)
    keys_t = tf.constant(keys, tf.string) if keys else tf.constant([SENTINEL + "none"])
    if not keys:
        values = tf.constant([default], values.dtype)
    init = tf.lookup.KeyValueTensorInitializer(keys_t, values)
    return tf.lookup.StaticHashTable(init, default)


def renderings(tset) -> dict[str, str]:
    """Space-joined tokens of every rendering of ``tset`` -> the sentence ``to_sentence``
    gives for those tokens (so the graph's text is the CLI's text by construction)."""
    cases = [
        dict(zip(tset.fields, combo, strict=True))
        for combo in itertools.product(*(FIELD_VALUES[f] for f in tset.fields))
    ]
    if tset.non_diagnostic:
        cases.append({"quality": QUALITY_VALUES[1]})
    out: dict[str, str] = {}
    for class_name in tset.classes:
        for index in range(tset.n_references):
            for fields in cases:
                tokens = tokenize(render(class_name, fields, tset, index))
                out.setdefault(" ".join(tokens), to_sentence(tokens, tset))
    return out


class SentenceTable(tf.Module):
    """Word rows -> sentences, as ``to_sentence`` (``tset`` may be None: rules only)."""

    def __init__(self, tset):
        super().__init__(name="sentences")
        known = renderings(tset) if tset is not None else {}
        self.sentences = _table(list(known), list(known.values()), SENTINEL)
        forms = written_forms(tset)
        self.forms = _table(list(forms), list(forms.values()), SENTINEL)

    def __call__(self, words, mask):
        """``words`` (B, L) strings, ``mask`` (B, L) bool: the caption's words -> (B,)."""
        ragged = tf.ragged.boolean_mask(words, mask)
        joined = tf.strings.reduce_join(ragged, axis=1, separator=" ")
        written = self.forms.lookup(ragged)
        written = tf.where(tf.equal(written, SENTINEL), ragged, written)
        text = tf.strings.reduce_join(written, axis=1, separator=" ")
        length = tf.strings.length(text)
        one = tf.minimum(length, 1)  # substr positions must lie inside the string
        rule = tf.strings.upper(tf.strings.substr(text, tf.zeros_like(one), one))
        rule += tf.strings.substr(text, one, length - one)
        rule = tf.where(tf.strings.length(rule) > 0, rule + ".", rule)
        found = self.sentences.lookup(joined)
        return tf.where(tf.equal(found, SENTINEL), rule, found)


class FindingTable(tf.Module):
    """Caption words -> per finding: the time step, candidate word ids and values, and the
    stated value (``confidence.finding_logits``'s grouped logits, located in the graph), and
    the stated value as text (``confidence.stated_findings``)."""

    def __init__(self, tset, vocab_tokens: list[str]):
        super().__init__(name="findings")
        index = {w: i for i, w in enumerate(vocab_tokens)}
        table, self.longest = phrase_table(tset)
        self.fields = list(tset.fields)
        width = max(sum(len(p) for p in tset.phrases[f].values()) for f in self.fields)
        rows = {"slot": [], "usable": [], "length": [], "offset": [], "ids": [], "groups": []}
        rows["chosen"], said = [], []
        for phrase, (kind, value) in table.items():
            slot = self.fields.index(kind) if kind in self.fields else -1
            found = deciding_candidates(kind, phrase, tset, index) if slot >= 0 else None
            offset, cands = found if found is not None else (0, {})
            ids = list(cands)
            rows["slot"].append(slot)
            rows["usable"].append(int(found is not None))
            rows["length"].append(len(phrase))
            rows["offset"].append(offset)
            rows["ids"].append(ids + [0] * (width - len(ids)))
            rows["groups"].append(list(cands.values()) + [-1] * (width - len(ids)))  # -1: pad
            rows["chosen"].append(FIELD_VALUES[kind].index(value) if slot >= 0 else -1)
            said.append(value if slot >= 0 else "")
        self.arrays = {k: tf.constant(np.array(v, np.int64)) for k, v in rows.items()}
        self.said = tf.constant(said or [""], tf.string)  # phrase entry -> its field's value
        keys = [" ".join(p) for p in table]
        self.phrases = _table(keys, np.arange(len(keys), dtype=np.int64), np.int64(-1))

    def _locate(self, words, count):
        """``words`` (B, L) (the caption's non-pad tokens, left-aligned, then anything),
        ``count`` (B,) how many -> the phrase entry (B, F) of the first phrase of each field
        (-1: none) and the word position (B, F) where it starts."""
        batch, length = tf.shape(words)[0], words.shape[1]
        padded = tf.concat([words, tf.fill([batch, self.longest], SENTINEL)], 1)
        padded = tf.where(
            tf.range(length + self.longest)[None, :] < count[:, None], padded, SENTINEL
        )
        entry = tf.fill([batch, length], tf.constant(-1, tf.int64))  # longest phrase at each i
        size = tf.zeros([batch, length], tf.int64)
        for n in range(1, self.longest + 1):  # longer phrases overwrite shorter ones
            key = tf.strings.reduce_join(
                tf.stack([padded[:, j : j + length] for j in range(n)], -1), -1, separator=" "
            )
            hit = self.phrases.lookup(key)  # (B, L)
            entry = tf.where(hit >= 0, hit, entry)
            size = tf.where(hit >= 0, tf.constant(n, tf.int64), size)
        slots = tf.range(len(self.fields), dtype=tf.int64)[None, :]  # (1, F)
        where = tf.fill([batch, len(self.fields)], tf.constant(-1, tf.int64))
        at = tf.fill([batch, len(self.fields)], tf.constant(-1, tf.int64))
        i = tf.zeros([batch], tf.int64)
        for _ in range(length):  # parse-back's scan, all rows at once: one phrase or word a step
            live = i < tf.cast(count, tf.int64)
            here = tf.gather(entry, tf.minimum(i, length - 1), batch_dims=1)
            e = tf.where(live, here, -1)  # (B,)
            slot = tf.where(e >= 0, tf.gather(self.arrays["slot"], tf.maximum(e, 0)), -1)
            first = tf.equal(slots, slot[:, None]) & (at < 0)  # (B, F)
            where = tf.where(first, e[:, None], where)
            at = tf.where(first, i[:, None], at)
            step = tf.where(e >= 0, tf.gather(size, tf.minimum(i, length - 1), batch_dims=1), 1)
            i += tf.where(live, step, 0)
        return where, at

    def locate(self, words, count):
        """``_locate``'s answer, to pass to ``values`` and ``confidences`` (one scan for both)."""
        return self._locate(words, count)

    def values(self, words, count, located=None) -> dict:
        """Name -> (B,) string: the value each caption states for the finding ('' where it
        states none), as ``confidence.stated_findings``; ``words``, ``count`` as ``_locate``."""
        where, _ = located if located is not None else self._locate(words, count)
        out = {}
        for f, name in enumerate(self.fields):
            value = tf.gather(self.said, tf.maximum(where[:, f], 0))  # (B,)
            out[name] = tf.where(where[:, f] >= 0, value, "")
        return out

    def confidences(self, words, count, logits, temperatures: dict, located=None) -> dict:
        """Name -> (B,) float64 probability of each stated finding (NaN where the caption
        states none), as ``Captioner.confidences``. ``logits`` (B, L, V): the decoder's
        teacher-forced logits on the caption (step t scores word t)."""
        where, at = located if located is not None else self._locate(words, count)
        length = logits.shape[1]
        out = {}
        for f, name in enumerate(self.fields):
            e = tf.maximum(where[:, f], 0)  # (B,)
            step = at[:, f] + tf.gather(self.arrays["offset"], e)
            valid = (where[:, f] >= 0) & (tf.gather(self.arrays["usable"], e) > 0)
            valid &= step < length
            at_step = tf.gather(logits, tf.clip_by_value(step, 0, length - 1), batch_dims=1)
            ids, groups = tf.gather(self.arrays["ids"], e), tf.gather(self.arrays["groups"], e)
            z = tf.cast(tf.gather(at_step, ids, batch_dims=1), tf.float64)  # (B, W)
            z = tf.where(groups >= 0, z / temperatures.get(name, 1.0), -np.inf)
            weights = tf.exp(z - tf.reduce_max(z, 1, keepdims=True))
            weights /= tf.reduce_sum(weights, 1, keepdims=True)
            chosen = tf.gather(self.arrays["chosen"], e)
            p = tf.reduce_sum(tf.where(tf.equal(groups, chosen[:, None]), weights, 0.0), 1)
            out[name] = tf.where(valid, p, np.nan)
        return out
