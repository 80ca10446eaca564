"""Paired bootstrap resampling of the corpus caption metrics (Koehn 2004, "Statistical
Significance Tests for Machine Translation Evaluation"): is one caption set really ahead of
another on the same test images, or only on these images?

The test images are resampled with replacement ``resamples`` times (seeded); on each resample
both systems are scored with the same corpus metric, and the difference (first system minus
second) is kept, at the report's precision (6 decimals). Reported per metric: the difference
on the full set, the 2.5 and 97.5 percentiles of the resampled differences (a 95% interval),
and the share of resamples where the first system scores higher by at least 1e-6
(``captioner_wins``; a smaller difference is a tie).

Every resample is scored from per-image statistics computed once, so no n-gram is counted
again: a resample is a row of draw counts (B, N) (how often each image was drawn), and each
metric is a function of the counts times the per-image statistics:

- BLEU-4 (coco-caption): the corpus BLEU of the summed per-image clipped matches, k-gram
  totals and lengths (``bleu.bleu_image_stats``, ``bleu.bleu_from_sums``); on the full set it
  is the reported corpus BLEU-4;
- CIDEr-D and ROUGE-L: the mean of the per-image scores; CIDEr-D's document frequencies stay
  those of the full reference set (a resample does not recompute its IDF), as for the
  corpus score;
- METEOR is left out: the jar computes the corpus METEOR from summed alignment statistics,
  not as the mean of its per-image scores, so a resample would need a jar call of its own.
"""

from __future__ import annotations

import numpy as np

from captioning.metrics.bleu import bleu_from_sums, bleu_image_stats
from captioning.metrics.cider import CiderD
from captioning.metrics.inputs import check_corpus
from captioning.metrics.rouge import rouge_l_scores

RESAMPLES = 1000
SEED = 0
COMPARED = ("bleu4", "cider", "rouge_l")  # report keys (captioning.metrics.registry)
LEFT_OUT = {
    "meteor": "the jar scores a corpus from summed alignment statistics, not as a mean of "
    "per-image scores: each resample would need a jar call"
}
_ORDER = 4  # BLEU-4: statistics of orders 1..4
# the report's precision: a difference below it is a tie, not a win (coco-caption's BLEU-4 of
# a corpus without a 4-gram match is a tiny positive number that moves with the lengths)
DIGITS = 6


def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n) float64: how often each of ``n`` images is drawn in each resample of
    ``n`` draws with replacement (numpy's ``default_rng(seed)``); every row sums to ``n``."""
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))  # (B, n)
    cells = (draws + np.arange(resamples)[:, None] * n).ravel()  # (resample, image) as one int
    return np.bincount(cells, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


class PairedBootstrap:
    """Paired bootstrap against one reference set: the references' CIDEr-D statistics and the
    resample draw counts are built once, and every caption set is compared on the same draws.

    ``ref_tokens[i]``: the references of test image i (token lists)."""

    def __init__(
        self, ref_tokens: list[list[list[str]]], resamples: int = RESAMPLES, seed: int = SEED
    ):
        self.ref_tokens, self.resamples, self.seed = ref_tokens, resamples, seed
        self.cider = CiderD(ref_tokens)
        self.counts = resample_counts(len(ref_tokens), resamples, seed)  # (B, N)

    def statistics(self, hyp_tokens: list[list[str]]) -> dict[str, np.ndarray]:
        """Per-image statistics of a caption set: ``bleu`` (N, 2 * 4 + 2) clipped matches,
        k-gram totals, hypothesis and closest reference lengths; ``cider``, ``rouge_l`` (N,)."""
        check_corpus(hyp_tokens, self.ref_tokens)
        bleu = bleu_image_stats(hyp_tokens, self.ref_tokens, _ORDER)
        lengths = np.stack([bleu["testlen"], bleu["reflen"]], axis=1)  # (N, 2)
        return {
            "bleu": np.concatenate([bleu["correct"], bleu["guess"], lengths], 1).astype(np.float64),
            "cider": np.asarray(self.cider.scores(hyp_tokens), np.float64),
            "rouge_l": np.asarray(rouge_l_scores(hyp_tokens, self.ref_tokens), np.float64),
        }

    @staticmethod
    def scores(stats: dict[str, np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
        """Each metric of ``COMPARED`` on each row of ``counts`` (B, N) draw counts: (B,)."""
        sums = counts @ stats["bleu"]  # (B, 10): the resample's BLEU statistics
        n = counts.sum(axis=1)  # (B,) images drawn
        correct, guess = sums[:, :_ORDER], sums[:, _ORDER : 2 * _ORDER]
        bleu = bleu_from_sums(correct, guess, sums[:, -2], sums[:, -1])
        return {
            "bleu4": bleu[:, _ORDER - 1],
            "cider": counts @ stats["cider"] / n,
            "rouge_l": counts @ stats["rouge_l"] / n,
        }

    def compare(self, first: list[list[str]] | dict, second: list[list[str]] | dict) -> dict:
        """``first`` minus ``second`` (token lists, or their ``statistics``) per metric:
        ``difference`` on the full set, ``low`` and ``high`` (2.5 and 97.5 percentiles over
        the resamples) and ``captioner_wins`` (share of resamples where ``first`` is higher at
        the report's precision); then ``resamples`` and ``seed``."""
        a = first if isinstance(first, dict) else self.statistics(first)
        b = second if isinstance(second, dict) else self.statistics(second)
        whole = np.ones((1, len(self.ref_tokens)))
        point = {k: v[0] - self.scores(b, whole)[k][0] for k, v in self.scores(a, whole).items()}
        drawn_a, drawn_b = self.scores(a, self.counts), self.scores(b, self.counts)
        out: dict = {}
        for name in COMPARED:
            diff = np.round(drawn_a[name] - drawn_b[name], DIGITS) + 0.0  # (B,); no -0.0
            low, high = np.percentile(diff, [2.5, 97.5])
            out[name] = {
                "difference": _rounded(point[name]),
                "low": _rounded(low),
                "high": _rounded(high),
                "captioner_wins": _rounded(np.mean(diff > 0)),
            }
        return {**out, "resamples": self.resamples, "seed": self.seed}


def _rounded(value) -> float:
    """``value`` at the report's precision, ``-0.0`` written as ``0.0``."""
    return round(float(value), DIGITS) + 0.0
