"""ROUGE-L as coco-caption computes it (pycocoevalcap's ``Rouge`` scorer), in pure Python.

Per image: for each reference r, ``lcs`` is the length of the longest common subsequence of
hypothesis c and r; precision ``P = max_r lcs / |c|`` and recall ``R = max_r lcs / |r|`` (each
maximised separately over the references, as coco-caption does), and
``ROUGE-L = (1 + beta^2) P R / (R + beta^2 P)`` with ``beta = 1.2`` (0 when P or R is 0). The
corpus score is the mean over images. An empty hypothesis scores 0.

The LCS length uses the bit-parallel algorithm of Allison and Dix / Hyyrö: one Python integer
holds a DP row, so a pair costs O(len(r)) big-integer operations instead of a quadratic table.
"""

from __future__ import annotations

from captioning.metrics.inputs import check_corpus

BETA = 1.2


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of token lists ``a`` and ``b``."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    row = full
    for token in b:
        matched = row & masks.get(token, 0)
        row = ((row + matched) | (row - matched)) & full
    return len(a) - row.bit_count()


def rouge_l_scores(
    hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]], beta: float = BETA
) -> list[float]:
    """ROUGE-L F-measure of each image (see module doc)."""
    check_corpus(hyp_tokens, ref_tokens)
    scores = []
    for hyp, refs in zip(hyp_tokens, ref_tokens, strict=True):
        prec, rec = [], []
        for ref in refs:
            lcs = lcs_length(ref, hyp)
            # coco-caption splits "" into [""]: an empty sentence has length 1 there, lcs 0
            prec.append(lcs / float(max(len(hyp), 1)))
            rec.append(lcs / float(max(len(ref), 1)))
        p, r = max(prec), max(rec)
        if p != 0 and r != 0:
            scores.append(((1 + beta**2) * p * r) / float(r + beta**2 * p))
        else:
            scores.append(0.0)
    return scores


def corpus_rouge_l(hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]]) -> float:
    """Corpus ROUGE-L: the mean of ``rouge_l_scores``. In [0, 1]."""
    scores = rouge_l_scores(hyp_tokens, ref_tokens)
    return sum(scores) / len(scores)
