"""The fast evaluation paths give the numbers of the slow ones, on real captions.

- ``CiderD`` (reference statistics built once, any number of candidate sets) against the
  previous one-call implementation (kept below, verbatim) to 1e-12 and against pycocoevalcap's
  ``Cider`` (which computes CIDEr-D) to 1e-9;
- ``bleu4_nltk`` (from the fast BLEU counts) against nltk's ``corpus_bleu`` itself, float for float;
- ``consensus_picks`` (every retrieval query at once) against ``consensus_pick`` (one query);

on real MedNIST template captions, on free text (hand-made, and MedPix 2.0 radiologists'
captions where ``CAPTIONING_TEST_MEDPIX`` names the archive).
"""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pandas as pd
import pytest
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu
from pycocoevalcap.cider.cider import Cider

from captioning.captions.tokenize import tokenize
from captioning.evaluation.consensus import build_pool, consensus_pick, consensus_picks
from captioning.metrics import bleu4_nltk, cider_d_scores
from captioning.metrics.cider import CiderD

FREE_TEXT = [
    "Axial CT shows a 3 cm mass in the left lower lobe with spiculated margins.",
    "No acute intracranial abnormality.",
    "MRI of the knee: complete tear of the anterior cruciate ligament; joint effusion.",
    "Chest radiograph demonstrates bilateral lower lobe opacities consistent with pneumonia.",
    "There is a well circumscribed cystic lesion in the right kidney.",
    "Sagittal T2 image: disc herniation at L4-L5 compressing the thecal sac.",
    "Normal chest.",
    "Axial CT of the abdomen shows free fluid and a lacerated spleen.",
]


def _previous_cider_d(hyp_tokens, ref_tokens, max_n=4, sigma=6.0):
    """captioning.metrics.cider.cider_d_scores before CiderD (commit bbd1064), verbatim in
    what it computes: every call counts the references and rebuilds their vectors."""

    def counts(tokens):
        out = {}
        for k in range(1, max_n + 1):
            for i in range(len(tokens) - k + 1):
                out[tuple(tokens[i : i + k])] = out.get(tuple(tokens[i : i + k]), 0) + 1
        return out

    def tfidf(cnt, df, log_n):
        vec, norm, length = [{} for _ in range(max_n)], [0.0] * max_n, 0
        for gram, tf in cnt.items():
            order = len(gram) - 1
            weight = float(tf) * (log_n - math.log(max(1.0, df.get(gram, 0.0))))
            vec[order][gram] = weight
            norm[order] += pow(weight, 2)
            length += tf if order == 1 else 0
        return vec, [math.sqrt(x) for x in norm], length

    ref_counts = [[counts(r) for r in refs] for refs in ref_tokens]
    df = {}
    for refs in ref_counts:
        for gram in set().union(*refs):
            df[gram] = df.get(gram, 0.0) + 1.0
    log_n, scores = math.log(float(len(hyp_tokens))), []
    for hyp, refs in zip(hyp_tokens, ref_counts, strict=True):
        vec, norm, length = tfidf(counts(hyp), df, log_n)
        total = [0.0] * max_n
        for ref in refs:
            vec_r, norm_r, length_r = tfidf(ref, df, log_n)
            penalty = math.e ** (-(float(length - length_r) ** 2) / (2 * sigma**2))
            for k in range(max_n):
                val = sum(
                    min(w, vec_r[k].get(g, 0.0)) * vec_r[k].get(g, 0.0) for g, w in vec[k].items()
                )
                if norm[k] != 0 and norm_r[k] != 0:
                    val /= norm[k] * norm_r[k]
                total[k] += val * penalty
        scores.append(sum(total) / max_n / len(refs) * 10.0)
    return scores


def _candidate_sets(ref_tokens, n_sets=2, seed=0):
    """Shuffled references: image i gets a reference of another image (some its own)."""
    rng = random.Random(seed)
    sets = []
    for _ in range(n_sets):
        order = list(range(len(ref_tokens)))
        rng.shuffle(order)
        sets.append([list(rng.choice(ref_tokens[j])) for j in order])
    sets.append([list(refs[0]) for refs in ref_tokens])  # each image's own first reference
    return sets


def _check_cider(ref_tokens):
    """One CiderD, several candidate sets: the previous implementation's and pycocoevalcap's
    numbers, image by image."""
    cider = CiderD(ref_tokens)
    gts = {i: [" ".join(r) for r in refs] for i, refs in enumerate(ref_tokens)}
    for hyps in _candidate_sets(ref_tokens):
        ours = cider.scores(hyps)
        assert np.max(np.abs(np.subtract(ours, _previous_cider_d(hyps, ref_tokens)))) <= 1e-12
        assert ours == cider_d_scores(hyps, ref_tokens)
        expected, per_image = Cider().compute_score(
            gts, {i: [" ".join(h)] for i, h in enumerate(hyps)}
        )
        assert abs(cider.score(hyps) - expected) <= 1e-9
        assert np.max(np.abs(np.subtract(ours, per_image))) <= 1e-9


def _check_nltk(ref_tokens):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for hyps in _candidate_sets(ref_tokens):
            hyps = [*hyps[:-1], hyps[-1][:2]]  # one short hypothesis: nltk's own denominators
            assert bleu4_nltk(hyps, ref_tokens) == float(nltk_corpus_bleu(ref_tokens, hyps))


def _check_consensus(references):
    pool = build_pool(references, tokenize)
    rng = np.random.default_rng(0)
    for k in (1, 5, 30):
        neighbours = rng.integers(0, len(pool), (60, min(k, len(pool))))
        lists = [pool.refs[row].ravel() for row in neighbours]
        lists = [ids[ids >= 0] for ids in lists]
        ids = np.concatenate(lists)
        query = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
        picks = consensus_picks(pool.vectors, ids, query)
        expected = [x[consensus_pick(pool.vectors, x)] for x in lists]
        assert list(ids[picks]) == expected


def _mednist_references(root) -> list[list[str]]:
    from captioning.data.template_captions import build_captions, read_captions

    build_captions(root)
    frame = read_captions(root, "findings")
    return [list(r) for r in frame[[c for c in frame if c.startswith("reference_")]].values]


def test_fast_paths_equal_slow_ones_on_real_mednist_captions(mednist_small):
    references = _mednist_references(mednist_small)
    ref_tokens = [[tokenize(r) for r in refs] for refs in references]
    _check_cider(ref_tokens)
    _check_nltk(ref_tokens)
    _check_consensus(references)


def test_fast_paths_equal_slow_ones_on_free_text():
    rng = random.Random(1)
    references = [rng.sample(FREE_TEXT, rng.randint(1, 3)) for _ in range(40)]
    ref_tokens = [[tokenize(r) for r in refs] for refs in references]
    _check_cider(ref_tokens)
    _check_nltk(ref_tokens)
    _check_consensus(references)


def test_fast_paths_equal_slow_ones_on_medpix_captions(medpix_slice):
    table = pd.read_csv(medpix_slice / "captions.csv")
    references = [[str(c)] for c in table["caption"]]
    ref_tokens = [[tokenize(r) for r in refs] for refs in references]
    _check_cider(ref_tokens)
    _check_nltk(ref_tokens)
    _check_consensus(references)


def test_cider_d_refuses_a_corpus_of_another_size():
    cider = CiderD([[["a", "b"]], [["c"]]])
    with pytest.raises(ValueError, match="2 reference sets"):
        cider.scores([["a"]])
