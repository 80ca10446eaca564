"""Caption metrics: BLEU-1..4 (coco-caption), BLEU-4 (nltk), CIDEr-D, ROUGE-L and METEOR
(coco-caption).

``score_captions`` scores caption texts; the ``corpus_*`` functions take token lists (the
captioner calls ``corpus_bleu`` for validation BLEU-4). Texts are tokenised with the project's
one rule, ``captioning.captions.tokenize.tokenize``, or a caption source's own rules. Every
metric but METEOR is pure Python/numpy; METEOR runs coco-caption's jar with Java
(``captioning.metrics.meteor``) and is None, with the reason, where it cannot.
See ``docs/metrics.md`` for the definitions and how they were checked.
"""

from __future__ import annotations

from captioning.captions.tokenize import tokenize
from captioning.metrics.bleu import bleu4_nltk, bleu_stats, corpus_bleu
from captioning.metrics.cider import cider_d_scores, corpus_cider_d
from captioning.metrics.inputs import check_corpus
from captioning.metrics.meteor import corpus_meteor
from captioning.metrics.registry import METRICS, Metric, metric, score_tokens
from captioning.metrics.rouge import corpus_rouge_l, lcs_length, rouge_l_scores

__all__ = [
    "METRICS",
    "Metric",
    "bleu4_nltk",
    "bleu_stats",
    "check_corpus",
    "cider_d_scores",
    "corpus_bleu",
    "corpus_cider_d",
    "corpus_meteor",
    "corpus_rouge_l",
    "lcs_length",
    "metric",
    "rouge_l_scores",
    "score_captions",
    "score_tokens",
]


def score_captions(
    hypotheses: list[str], references: list[list[str]], split=tokenize, meteor: bool = False
) -> dict:
    """Corpus metrics of caption texts, each hypothesis with its list of reference texts,
    tokenised by ``split`` (default: the project's one rule).

    Returns floats keyed by the corpus and per-image metrics of ``captioning.metrics.registry``,
    in its order:

    - ``bleu1``..``bleu4``: BLEU as coco-caption (pycocoevalcap ``Bleu``) defines it;
    - ``bleu4_nltk``: nltk's ``corpus_bleu``, no smoothing (lower on captions under 4 tokens);
    - ``cider``: CIDEr-D as coco-caption's ``Cider`` scorer computes it (sigma 6, clipping,
      x10, IDF from this corpus's references), in [0, 10];
    - ``rouge_l``: ROUGE-L F-measure, beta 1.2, as pycocoevalcap ``Rouge``;
    - with ``meteor``: ``meteor`` (coco-caption's METEOR 1.5, or None) and ``meteor_missing``
      (None, or why METEOR could not be computed: no Java, no pycocoevalcap).
    """
    hyp_tokens = [split(h) for h in hypotheses]
    ref_tokens = [[split(r) for r in refs] for refs in references]
    check_corpus(hyp_tokens, ref_tokens)
    return score_tokens(hyp_tokens, ref_tokens, meteor=meteor)
