"""CIDEr-D as coco-caption computes it (pycocoevalcap's ``Cider`` scorer), in pure Python.

pycocoevalcap names its scorer ``Cider`` and reports it as "CIDEr", but what it computes is
**CIDEr-D** (Vedantam et al., 2015, section 4 and the coco-caption leaderboard): the variant
with clipping and a length penalty, meant to be hard to game. For image i with hypothesis c and
references s_1..s_m, and n-gram order n = 1..4:

- ``g(x)``: TF-IDF vector of the n-grams of sentence x: term count times
  ``log(N) - log(max(1, df))``, where N is the number of images in the evaluated corpus and df
  the number of images whose references contain the n-gram. IDF comes from the references of
  the corpus being scored (not from a fixed COCO table), so the same caption can score
  differently in a different corpus.
- ``CIDEr-D_n = 10 / m * sum_j exp(-delta_j^2 / (2 * sigma^2)) * <min(g(c), g(s_j)), g(s_j)>
  / (|g(c)| |g(s_j)|)``, with sigma = 6 and the hypothesis vector clipped element-wise by the
  reference's (``min``).
- The score of an image is the mean over n of ``CIDEr-D_n``; the corpus score is the mean over
  images.

One quirk is kept on purpose so numbers match coco-caption: its "length" in ``delta`` counts the
*bigrams* of a sentence (``max(0, words - 1)``), not its words (``if n == 1`` tests the 0-based
order index). The difference of two lengths is the same unless a sentence is empty.

Unlike the paper there is no stemming: tokens are compared as given (the project's tokenizer).
"""

from __future__ import annotations

import math

from captioning.metrics.inputs import check_corpus

SIGMA = 6.0
MAX_N = 4


def ngram_counts(tokens: list[str], max_n: int) -> dict[tuple[str, ...], int]:
    """Counts of all 1..max_n-grams, in coco-caption's order (by order, then position)."""
    counts: dict[tuple[str, ...], int] = {}
    for k in range(1, max_n + 1):
        for i in range(len(tokens) - k + 1):
            gram = tuple(tokens[i : i + k])
            counts[gram] = counts.get(gram, 0) + 1
    return counts


def _tfidf(counts, df, log_n, max_n):
    """TF-IDF vectors per order, their norms, and coco-caption's length (bigram count)."""
    vec: list[dict] = [{} for _ in range(max_n)]
    norm = [0.0] * max_n
    length = 0
    for gram, tf in counts.items():
        order = len(gram) - 1
        weight = float(tf) * (log_n - math.log(max(1.0, df.get(gram, 0.0))))
        vec[order][gram] = weight
        norm[order] += pow(weight, 2)
        if order == 1:
            length += tf
    return vec, [math.sqrt(x) for x in norm], length


class CiderD:
    """CIDEr-D against one fixed reference set: the references' document frequencies and
    TF-IDF vectors are computed once, in the constructor, and reused by every ``scores`` call.

    An evaluation scores several candidate sets against the same references (the model's
    captions, each baseline, each k of a retrieval grid); the reference side is most of the
    work of a call (m references against one hypothesis), so building it once makes every
    further call several times cheaper. The numbers are those of ``cider_d_scores``, float
    for float: the same operations in the same order. Images with identical reference lists
    share one set of vectors, and an image whose (hypothesis, reference list) pair was
    already scored takes that score (templated captions repeat a great deal).
    """

    def __init__(self, ref_tokens: list[list[list[str]]], max_n: int = MAX_N, sigma: float = SIGMA):
        self.max_n, self.two_sigma2 = max_n, 2 * sigma**2
        self.ref_tokens = ref_tokens
        groups: dict[tuple, int] = {}  # distinct reference lists -> index
        self.group = [
            groups.setdefault(tuple(map(tuple, refs)), len(groups)) for refs in ref_tokens
        ]
        counts = [[ngram_counts(list(r), max_n) for r in refs] for refs in groups]
        images = [0] * len(groups)
        for g in self.group:
            images[g] += 1
        self.df: dict[tuple[str, ...], float] = {}
        for refs, n_images in zip(counts, images, strict=True):
            for gram in set().union(*refs):
                self.df[gram] = self.df.get(gram, 0.0) + float(n_images)
        self.log_n = math.log(float(len(ref_tokens))) if ref_tokens else 0.0
        self.refs = [[_tfidf(r, self.df, self.log_n, max_n) for r in refs] for refs in counts]

    def scores(self, hyp_tokens: list[list[str]]) -> list[float]:
        """CIDEr-D of each image: ``hyp_tokens[i]`` against image i's references."""
        check_corpus(hyp_tokens, self.ref_tokens)
        hyps: dict[tuple[str, ...], tuple] = {}
        done: dict[tuple, float] = {}
        out = []
        for hyp, group in zip(hyp_tokens, self.group, strict=True):
            key = (tuple(hyp), group)
            if key not in done:
                if key[0] not in hyps:
                    counts = ngram_counts(hyp, self.max_n)
                    hyps[key[0]] = _tfidf(counts, self.df, self.log_n, self.max_n)
                done[key] = self._image_score(hyps[key[0]], self.refs[group])
            out.append(done[key])
        return out

    def score(self, hyp_tokens: list[list[str]]) -> float:
        """Corpus CIDEr-D (coco-caption's "CIDEr"): the mean of ``scores``. In [0, 10]."""
        scores = self.scores(hyp_tokens)
        return sum(scores) / len(scores)

    def _image_score(self, hyp, refs) -> float:
        """One image's CIDEr-D: the hypothesis's (vectors, norms, length) against its refs'."""
        vec, norm, length = hyp
        max_n = self.max_n
        total = [0.0] * max_n
        for vec_r, norm_r, length_r in refs:
            delta = float(length - length_r)
            penalty = math.e ** (-(delta**2) / self.two_sigma2)
            for k in range(max_n):
                val = 0.0
                ref_k = vec_r[k]
                for gram, weight in vec[k].items():
                    r = ref_k.get(gram, 0.0)
                    val += min(weight, r) * r
                if norm[k] != 0 and norm_r[k] != 0:
                    val /= norm[k] * norm_r[k]
                total[k] += val * penalty
        return sum(total) / max_n / len(refs) * 10.0


def cider_d_scores(
    hyp_tokens: list[list[str]],
    ref_tokens: list[list[list[str]]],
    max_n: int = MAX_N,
    sigma: float = SIGMA,
) -> list[float]:
    """CIDEr-D of each image (see module doc); IDF from the references of this corpus. To
    score several candidate sets against the same references, build one ``CiderD``."""
    check_corpus(hyp_tokens, ref_tokens)
    return CiderD(ref_tokens, max_n, sigma).scores(hyp_tokens)


def corpus_cider_d(
    hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]], max_n: int = MAX_N
) -> float:
    """Corpus CIDEr-D (coco-caption's "CIDEr"): the mean of ``cider_d_scores``. In [0, 10]."""
    scores = cider_d_scores(hyp_tokens, ref_tokens, max_n)
    return sum(scores) / len(scores)
