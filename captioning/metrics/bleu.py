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
The counts are kept per image (``bleu_image_stats``), so that the BLEU of any resample of the
images is that of its summed rows (``bleu_from_sums``, the paired bootstrap).

``bleu4_nltk`` is nltk's ``corpus_bleu`` without smoothing, reported as ``bleu4_nltk``. It
differs from coco's BLEU-4 on short captions: for every hypothesis nltk adds
``max(1, number of k-grams)`` to the k-gram denominator, so a hypothesis shorter than k still
counts one k-gram that cannot match; coco-caption and sacrebleu add 0. ``docs/metrics.md`` gives
a worked example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


@dataclass
class _FlatCorpus:
    """Every sentence of a corpus (the hypotheses, then every image's references) as one flat
    array of token ids, with where each token and sentence belongs. T tokens, S sentences."""

    n_img: int
    ids: np.ndarray  # (T,) token ids
    vocab_size: int
    sent_of: np.ndarray  # (T,) sentence of each token
    left: np.ndarray  # (T,) tokens from each position to its sentence's end, itself included
    image_of: np.ndarray  # (S,) image of each sentence
    ref_index: np.ndarray  # (S,) rank of a reference among its image's (0 for hypotheses)
    max_refs: int
    hyp_len: np.ndarray  # (n_img,) hypothesis lengths
    reflen: np.ndarray  # (n_img,) closest reference length of each image


def _flatten(hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]]) -> _FlatCorpus:
    """The corpus as ``_FlatCorpus``: token ids, positions, and the closest reference lengths."""
    n_img = len(hyp_tokens)
    refs_flat = list(chain.from_iterable(ref_tokens))
    n_refs = np.fromiter(map(len, ref_tokens), dtype=np.int64, count=n_img)
    sentences = list(chain(hyp_tokens, refs_flat))
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    hyp_len, ref_len = lengths[:n_img], lengths[n_img:]
    ref_img = np.repeat(np.arange(n_img), n_refs)  # image of each reference
    ref_starts = np.concatenate(([0], np.cumsum(n_refs)[:-1])) if n_img else n_refs
    vocab = {t: i for i, t in enumerate(dict.fromkeys(chain.from_iterable(sentences)))}
    ids = np.fromiter(
        map(vocab.__getitem__, chain.from_iterable(sentences)),
        dtype=np.int64,
        count=int(lengths.sum()),
    )
    left = np.repeat(lengths, lengths) - (
        np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    return _FlatCorpus(
        n_img=n_img,
        ids=ids,
        vocab_size=max(len(vocab), 1),
        sent_of=np.repeat(np.arange(len(sentences)), lengths),
        left=left,
        image_of=np.concatenate((np.arange(n_img), ref_img)),
        ref_index=np.concatenate(
            (np.zeros(n_img, np.int64), np.arange(len(refs_flat)) - np.repeat(ref_starts, n_refs))
        ),
        max_refs=int(n_refs.max(initial=1)),
        hyp_len=hyp_len,
        reflen=_closest_reference_lengths(hyp_len, ref_len, ref_img, ref_starts),
    )


def _closest_reference_lengths(hyp_len, ref_len, ref_img, ref_starts) -> np.ndarray:
    """(n_img,) per image, the reference length closest to the hypothesis's (ties: the shorter
    one), as coco-caption's ``cook_test(eff="closest")``."""
    if not len(hyp_len):
        return np.zeros(0, np.int64)
    big = int(ref_len.max(initial=0)) + 1
    closeness = np.abs(ref_len - hyp_len[ref_img]) * big + ref_len
    return np.minimum.reduceat(closeness, ref_starts) % big


def _next_order_keys(keys: np.ndarray, span: int, corpus: _FlatCorpus, k: int):
    """The keys of the k-grams starting at each position (a (k-1)-gram's key times the
    vocabulary size plus the k-th token) and their bound ``span``; the (k-1)-gram keys are
    first made dense when the new ones could overflow int64."""
    if span * corpus.vocab_size >= _KEY_LIMIT:
        keys = _dense(keys)
        span = int(keys.max(initial=0)) + 1
    ids = corpus.ids
    return keys[: len(ids) - k + 1] * corpus.vocab_size + ids[k - 1 :], span * corpus.vocab_size


def _clipped_matches(keys: np.ndarray, span: int, corpus: _FlatCorpus, k: int) -> np.ndarray:
    """(n_img,) per image, the sum of each hypothesis k-gram's count clipped by its largest
    count in any one reference of the image. ``keys``: k-gram key at each position, in
    [0, span)."""
    valid = corpus.left[: len(keys)] >= k  # the k-gram stays inside its sentence
    key, sent = keys[valid], corpus.sent_of[: len(keys)][valid]
    if (corpus.n_img + 1) * span * corpus.max_refs >= _KEY_LIMIT:
        key = _dense(key)
        span = int(key.max(initial=0)) + 1
    is_hyp = sent < corpus.n_img
    tagged = corpus.image_of[sent] * span + key  # (image, n-gram)
    hyp_keys, hyp_counts = _runs(np.sort(tagged[is_hyp]))
    ref_keys, ref_max = _largest_reference_counts(
        tagged[~is_hyp], corpus.ref_index[sent[~is_hyp]], corpus.max_refs
    )
    at = np.minimum(np.searchsorted(ref_keys, hyp_keys), max(len(ref_keys) - 1, 0))
    found = ref_keys[at] == hyp_keys if len(ref_keys) else np.zeros(len(hyp_keys), bool)
    clip = np.where(found, ref_max[at] if len(ref_max) else 0, 0)
    matches = np.minimum(hyp_counts, clip)  # per distinct (image, n-gram) of the hypotheses
    image = hyp_keys // span  # tagged keys are image * span + key, key < span
    return np.bincount(image, weights=matches, minlength=corpus.n_img).astype(np.int64)


def _largest_reference_counts(tagged: np.ndarray, ref_index: np.ndarray, max_refs: int):
    """Distinct (image, n-gram) keys of the references, sorted, and the largest count of each
    in any one reference of its image."""
    ref_keys, ref_counts = _runs(np.sort(tagged * max_refs + ref_index))  # per reference
    ref_group = ref_keys // max_refs
    if not len(ref_group):
        return ref_group, ref_counts
    first = np.flatnonzero(np.concatenate(([True], ref_group[1:] != ref_group[:-1])))
    return ref_group[first], np.maximum.reduceat(ref_counts, first)


def bleu_image_stats(
    hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]], max_n: int = 4
) -> dict[str, np.ndarray]:
    """Per image, the statistics BLEU sums over a corpus: ``correct`` (n_img, max_n) clipped
    k-gram matches, ``guess`` (n_img, max_n) hypothesis k-grams, ``testlen`` (n_img,)
    hypothesis lengths and ``reflen`` (n_img,) closest reference lengths; int64.

    Any subset or resample of the images (``captioning.metrics.bootstrap``) has the BLEU of
    its summed rows (``bleu_from_sums``) without counting n-grams again."""
    check_corpus(hyp_tokens, ref_tokens)
    corpus = _flatten(hyp_tokens, ref_tokens)
    correct, guess = [], []
    keys, span = np.zeros(len(corpus.ids), dtype=np.int64), 1  # 0-gram keys lie in [0, 1)
    for k in range(1, max_n + 1):
        keys, span = _next_order_keys(keys, span, corpus, k)
        correct.append(_clipped_matches(keys, span, corpus, k))
        guess.append(np.maximum(corpus.hyp_len - k + 1, 0))
    shape = (corpus.n_img, max_n)  # an empty corpus: (0, max_n)
    return {
        "correct": np.stack(correct, axis=1).reshape(shape),
        "guess": np.stack(guess, axis=1).reshape(shape),
        "testlen": corpus.hyp_len,
        "reflen": corpus.reflen,
    }


def bleu_stats(
    hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]], max_n: int = 4
) -> dict:
    """Corpus totals behind BLEU: ``correct`` and ``guess`` per order, ``testlen``, ``reflen``.

    ``correct[k-1]``: clipped k-gram matches; ``guess[k-1]``: hypothesis k-grams; ``reflen``: sum
    of the closest reference lengths. Plain Python ints, as coco-caption accumulates them.
    """
    per_image = bleu_image_stats(hyp_tokens, ref_tokens, max_n)
    return {
        "correct": [int(c) for c in per_image["correct"].sum(axis=0)],
        "guess": [int(g) for g in per_image["guess"].sum(axis=0)],
        "testlen": int(per_image["testlen"].sum()),
        "reflen": int(per_image["reflen"].sum()),
    }


def bleu_from_sums(correct, guess, testlen, reflen) -> np.ndarray:
    """BLEU-1..n of many corpora at once, with coco-caption's float operations and order.

    ``correct``, ``guess``: (..., n) summed statistics; ``testlen``, ``reflen``: (...,).
    Returns (..., n) float64. A resampled test set is one corpus of the batch."""
    correct, guess = np.asarray(correct, np.float64), np.asarray(guess, np.float64)
    bleu = np.cumprod((correct + TINY) / (guess + SMALL), axis=-1)  # left to right, as coco
    bleus = bleu ** (1.0 / np.arange(1, correct.shape[-1] + 1))
    ratio = (np.asarray(testlen, np.float64) + TINY) / (np.asarray(reflen, np.float64) + SMALL)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)  # brevity penalty
    return np.where((ratio < 1)[..., None], bleus * penalty[..., None], bleus)


def bleu_from_stats(stats: dict) -> list[float]:
    """BLEU-1..n from ``bleu_stats`` totals, with coco-caption's float operations and order."""
    sums = (stats["correct"], stats["guess"], stats["testlen"], stats["reflen"])
    return [float(b) for b in bleu_from_sums(*sums)]


def corpus_bleu(
    hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]], max_n: int = 4
) -> list[float]:
    """Corpus BLEU-1..``max_n`` as coco-caption (pycocoevalcap ``Bleu``) computes it.

    ``hyp_tokens[i]``: the tokens of hypothesis i; ``ref_tokens[i]``: its references (at least
    one, any number, any lengths). Returns ``[bleu1, ..., bleu_max_n]`` in [0, 1].
    """
    return bleu_from_stats(bleu_stats(hyp_tokens, ref_tokens, max_n))


def bleu4_nltk(hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]]) -> float:
    """nltk's ``corpus_bleu`` (uniform weights, no smoothing): BLEU-4 as nltk defines it,
    reproduced from ``bleu_stats`` (nltk's own loop is about 5x slower; ``tests/test_metrics.py``
    checks the two are equal, float for float).

    Differs from coco's BLEU-4 (``corpus_bleu(...)[3]``) when some hypothesis has fewer than 4
    tokens: nltk adds ``max(1, number of k-grams)`` to the k-gram denominator, so such a
    hypothesis counts an unmatched k-gram for each k above its length and lowers the
    precisions; coco-caption and sacrebleu add 0. When an order has no match at all, nltk
    (3.8+) returns a practically-zero number (about 1e-155, from ``sys.float_info.min``),
    sacrebleu returns 0 and coco's constants give a small positive score (about 1e-9..1e-4).
    """
    stats = bleu_stats(hyp_tokens, ref_tokens, max_n=4)
    lengths = np.fromiter(map(len, hyp_tokens), dtype=np.int64, count=len(hyp_tokens))
    short = [int((lengths < k).sum()) for k in range(1, 5)]  # nltk counts 1 k-gram for these
    return nltk_bleu_from_stats(stats, short)


def nltk_bleu_from_stats(stats: dict, short: list[int]) -> float:
    """nltk's corpus BLEU (uniform weights, no smoothing, ``method0``) from ``bleu_stats``
    totals, with nltk's float operations: ``short[k-1]`` is the number of hypotheses shorter
    than k, each of which adds 1 to nltk's k-gram denominator. nltk returns 0 without a
    unigram match and uses ``sys.float_info.min`` for an order without a match."""
    import sys

    correct, guess = stats["correct"], stats["guess"]
    if correct[0] == 0:
        return 0.0
    testlen, reflen = stats["testlen"], stats["reflen"]
    bp = 1.0 if testlen > reflen else math.exp(1 - reflen / testlen)
    weight = 1 / len(correct)
    precisions = [
        c / (g + s) if c else sys.float_info.min
        for c, g, s in zip(correct, guess, short, strict=True)
    ]
    return float(bp * math.exp(math.fsum(weight * math.log(p) for p in precisions)))
