"""BLEU-1..4 exactly as coco-caption defines it, computed fast; and nltk's BLEU-4 beside it.

coco-caption (the ``pycocoevalcap`` package, ``bleu/bleu_scorer.py``) scores a corpus of
hypotheses, each with one or more references:

- n-gram counts of a hypothesis are clipped by the largest count of that n-gram in any one of
  its references; ``correct[k]`` sums the clipped counts over the corpus and ``guess[k]`` sums
  ``max(0, len - k + 1)``, the number of k-grams in each hypothesis (a hypothesis shorter than
  k contributes 0 to ``guess[k]``).
- The brevity penalty uses, per hypothesis, the *closest* reference length (ties: the shorter
  reference), summed over the corpus: ``bp = exp(1 - 1 / ratio)`` when
  ``ratio = (testlen + tiny) / (reflen + small) < 1``.
- ``bleu_n = bp * (prod_{k<=n} (correct[k] + tiny) / (guess[k] + small)) ** (1 / n)`` with
  ``tiny = 1e-15`` and ``small = 1e-9``. The constants keep the score finite: a corpus with no
  4-gram match gets a small positive BLEU-4 instead of 0 (sacrebleu 0, nltk about 1e-155).

``corpus_bleu`` reproduces these numbers (the same float operations in the same order) and
counts n-grams once, vectorised with numpy: every n-gram becomes an integer key, and the clipped
counts come from sorting keys tagged by image and reference. It is the function the captioner
calls for validation BLEU-4 each epoch, so it must be cheap (see ``benchmarks/bleu_speed.py``).

``bleu4_nltk`` is nltk's ``corpus_bleu`` without smoothing, reported as ``bleu4_nltk``. It
differs from coco's BLEU-4 on short captions: for every hypothesis nltk adds
``max(1, number of k-grams)`` to the k-gram denominator, so a hypothesis shorter than k still
counts one k-gram that cannot match; coco-caption and sacrebleu add 0. ``docs/metrics.md`` gives
a worked example.
"""

from __future__ import annotations

import math
from itertools import chain

import numpy as np

from captioning.metrics.inputs import check_corpus

TINY = 1e-15  # coco-caption's constants (bleu_scorer.py), kept so scores match it exactly
SMALL = 1e-9
_KEY_LIMIT = 2**62  # keys stay below this so that int64 arithmetic never overflows


def _dense(keys: np.ndarray) -> np.ndarray:
    """Replace keys by their rank among the distinct keys (same equalities, small numbers)."""
    return np.unique(keys, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and how often each occurs."""
    if len(sorted_keys) == 0:
        return sorted_keys, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    counts = np.diff(np.append(starts, len(sorted_keys)))
    return sorted_keys[starts], counts


def bleu_stats(
    hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]], max_n: int = 4
) -> dict:
    """Corpus totals behind BLEU: ``correct`` and ``guess`` per order, ``testlen``, ``reflen``.

    ``correct[k-1]``: clipped k-gram matches; ``guess[k-1]``: hypothesis k-grams; ``reflen``: sum
    of the closest reference lengths. Plain Python ints, as coco-caption accumulates them.
    """
    check_corpus(hyp_tokens, ref_tokens)
    n_img = len(hyp_tokens)
    refs_flat = list(chain.from_iterable(ref_tokens))
    n_refs = np.fromiter(map(len, ref_tokens), dtype=np.int64, count=n_img)
    sentences = list(chain(hyp_tokens, refs_flat))
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    hyp_len, ref_len = lengths[:n_img], lengths[n_img:]

    # Closest reference length per image (ties: the shorter one), as cook_test(eff="closest").
    ref_img = np.repeat(np.arange(n_img), n_refs)
    big = int(ref_len.max(initial=0)) + 1
    closeness = np.abs(ref_len - hyp_len[ref_img]) * big + ref_len
    ref_starts = np.concatenate(([0], np.cumsum(n_refs)[:-1])) if n_img else n_refs
    closest = np.minimum.reduceat(closeness, ref_starts) % big if n_img else n_refs

    # Token ids, one flat array; n-grams never cross a sentence boundary (masked below).
    vocab = {t: i for i, t in enumerate(dict.fromkeys(chain.from_iterable(sentences)))}
    ids = np.fromiter(
        map(vocab.__getitem__, chain.from_iterable(sentences)),
        dtype=np.int64,
        count=int(lengths.sum()),
    )
    size = max(len(vocab), 1)
    sent_of = np.repeat(np.arange(len(sentences)), lengths)  # sentence of each token
    left = np.repeat(lengths, lengths) - (
        np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )  # tokens from each position to its sentence's end, itself included
    image_of = np.concatenate((np.arange(n_img), ref_img))  # image of each sentence
    ref_index = np.concatenate(
        (np.zeros(n_img, dtype=np.int64), np.arange(len(refs_flat)) - np.repeat(ref_starts, n_refs))
    )
    max_refs = int(n_refs.max(initial=1))

    correct, guess = [], []
    keys = np.zeros(len(ids), dtype=np.int64)
    span = 1  # keys of order k lie in [0, span)
    for k in range(1, max_n + 1):
        if span * size >= _KEY_LIMIT:
            keys = _dense(keys)
            span = int(keys.max(initial=0)) + 1
        keys = keys[: len(ids) - k + 1] * size + ids[k - 1 :]
        span *= size
        valid = left[: len(keys)] >= k
        key, sent = keys[valid], sent_of[: len(keys)][valid]
        if (n_img + 1) * span * max_refs >= _KEY_LIMIT:
            key = _dense(key)
            span_k = int(key.max(initial=0)) + 1
        else:
            span_k = span
        is_hyp = sent < n_img
        tagged = image_of[sent] * span_k + key  # (image, n-gram)
        hyp_keys, hyp_counts = _runs(np.sort(tagged[is_hyp]))
        ref_keys, ref_counts = _runs(
            np.sort(tagged[~is_hyp] * max_refs + ref_index[sent[~is_hyp]])
        )  # (image, n-gram, reference): count in that one reference
        ref_group = ref_keys // max_refs
        if len(ref_group):
            first = np.flatnonzero(np.concatenate(([True], ref_group[1:] != ref_group[:-1])))
            ref_keys, ref_max = ref_group[first], np.maximum.reduceat(ref_counts, first)
        else:
            ref_keys, ref_max = ref_group, ref_counts
        at = np.minimum(np.searchsorted(ref_keys, hyp_keys), max(len(ref_keys) - 1, 0))
        found = ref_keys[at] == hyp_keys if len(ref_keys) else np.zeros(len(hyp_keys), bool)
        clip = np.where(found, ref_max[at] if len(ref_max) else 0, 0)
        correct.append(int(np.minimum(hyp_counts, clip).sum()))
        guess.append(int(np.maximum(hyp_len - k + 1, 0).sum()))
    return {
        "correct": correct,
        "guess": guess,
        "testlen": int(hyp_len.sum()),
        "reflen": int(closest.sum()),
    }


def bleu_from_stats(stats: dict) -> list[float]:
    """BLEU-1..n from ``bleu_stats`` totals, with coco-caption's float operations and order."""
    bleus, bleu = [], 1.0
    for k, (c, g) in enumerate(zip(stats["correct"], stats["guess"], strict=True)):
        bleu *= float(c + TINY) / (g + SMALL)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (stats["testlen"] + TINY) / (stats["reflen"] + SMALL)
    if ratio < 1:
        bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
    return bleus


def corpus_bleu(
    hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]], max_n: int = 4
) -> list[float]:
    """Corpus BLEU-1..``max_n`` as coco-caption (pycocoevalcap ``Bleu``) computes it.

    ``hyp_tokens[i]``: the tokens of hypothesis i; ``ref_tokens[i]``: its references (at least
    one, any number, any lengths). Returns ``[bleu1, ..., bleu_max_n]`` in [0, 1].
    """
    return bleu_from_stats(bleu_stats(hyp_tokens, ref_tokens, max_n))


def bleu4_nltk(hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]]) -> float:
    """nltk's ``corpus_bleu`` (uniform weights, no smoothing): BLEU-4 as nltk defines it.

    Differs from coco's BLEU-4 (``corpus_bleu(...)[3]``) when some hypothesis has fewer than 4
    tokens: nltk adds ``max(1, number of k-grams)`` to the k-gram denominator, so such a
    hypothesis counts an unmatched k-gram for each k above its length and lowers the
    precisions; coco-caption and sacrebleu add 0. When an order has no match at all, nltk
    (3.8+) returns a practically-zero number (about 1e-155, from ``sys.float_info.min``),
    sacrebleu returns 0 and coco's constants give a small positive score (about 1e-9..1e-4).
    """
    import warnings

    from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

    check_corpus(hyp_tokens, ref_tokens)
    with warnings.catch_warnings():  # nltk warns when an order has no match; the score is 0
        warnings.simplefilter("ignore")
        return float(nltk_corpus_bleu(ref_tokens, hyp_tokens))
