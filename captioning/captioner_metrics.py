"""The caption metrics the captioner's training and evaluation use: the one import site.

For now these are thin stand-ins on nltk's ``corpus_bleu`` (no smoothing). When
``captioning.metrics`` (coco-caption BLEU, CIDEr-D, ROUGE-L) is available, replace the two
definitions below by ``from captioning.metrics import corpus_bleu, score_captions`` and set
``IMPLEMENTATION`` accordingly; the callers do not change.

Until then the reports say so: ``metrics_implementation`` is ``"nltk-fallback"``, ``bleu1``..
``bleu4`` are nltk's cumulative BLEU-n (which differ from coco-caption's on captions shorter
than n words), and ``cider`` / ``rouge_l`` are None.
"""

from __future__ import annotations

import warnings

from nltk.translate.bleu_score import corpus_bleu as _nltk_corpus_bleu

from captioning.captions.tokenize import tokenize

IMPLEMENTATION = "nltk-fallback"


def corpus_bleu(
    hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]], max_n: int = 4
) -> list[float]:
    """Cumulative corpus BLEU-1..``max_n`` (nltk, no smoothing); 0.0 for an empty corpus."""
    if not hyp_tokens:
        return [0.0] * max_n
    weights = [tuple([1.0 / n] * n) for n in range(1, max_n + 1)]
    with warnings.catch_warnings():  # nltk warns at every zero n-gram count
        warnings.simplefilter("ignore", UserWarning)
        scores = _nltk_corpus_bleu(ref_tokens, hyp_tokens, weights=weights)
    return [float(v) for v in scores]


def score_captions(hypotheses: list[str], references: list[list[str]]) -> dict:
    """Corpus metrics of caption texts (see the module doc for what the fallback computes)."""
    hyps = [tokenize(h) for h in hypotheses]
    refs = [[tokenize(r) for r in rs] for rs in references]
    bleu = corpus_bleu(hyps, refs)
    return {
        **{f"bleu{n + 1}": value for n, value in enumerate(bleu)},
        "bleu4_nltk": bleu[3],
        "cider": None,
        "rouge_l": None,
    }
