"""Constant-caption baselines: one training caption written for every image, what a decoder
that ignores the image could at best learn to say.

- ``constant``: the train caption closest to the others, the highest mean consensus
  similarity to the references of a seeded sample of ``CONSTANT_SAMPLE`` train images.
- ``constant_best_val``: among the ``CANDIDATES`` most central distinct train captions (by
  the same similarity; ``constant``'s is the first), the one with the highest CIDEr-D on the
  validation images. A decoder trained on little data often settles on one sentence of the
  training captions' most common n-grams; the most central caption is a weak stand-in for
  it (on MedPix 2.0 its CIDEr-D was half that of such a decoder's sentence), so this is the
  constant a captioner must clearly beat before its scores say the image was read.

Both choose on the train and validation splits only, never on the evaluated one.
"""

from __future__ import annotations

import numpy as np

from captioning.evaluation.consensus import Pool, consensus_scores

CONSTANT_SAMPLE = 2000  # train images whose references the central caption is closest to
CANDIDATES = 100  # most central distinct train captions the validation choice considers


def central_captions(pool: Pool, n: int, sample: int = CONSTANT_SAMPLE, seed: int = 0):
    """The ``n`` distinct train captions (text ids into ``pool.texts``) with the highest mean
    consensus similarity to the references of a seeded sample of ``sample`` pool images,
    most central first (ties: the first met in the sample)."""
    rows = np.random.default_rng(seed).permutation(len(pool))[:sample]
    ids = pool.refs[rows].ravel()
    ids = ids[ids >= 0]
    order = np.argsort(-consensus_scores(pool.vectors, ids), kind="stable")
    _, first = np.unique(ids[order], return_index=True)  # each text's best place
    return ids[order][np.sort(first)][:n]


def constant_caption(pool: Pool, sample: int = CONSTANT_SAMPLE, seed: int = 0) -> str:
    """The train caption closest to the others (``central_captions``' first)."""
    return pool.texts[central_captions(pool, 1, sample, seed)[0]]


def best_constant_on_val(pool: Pool, val_cider, tokenize, n: int = CANDIDATES):
    """Among the ``n`` most central train captions, the one written for every validation image
    with the highest mean CIDEr-D against ``val_cider`` (a ``CiderD`` of validation
    references), counting each distinct reference list once and leaving out the lists that
    hold the candidate word for word. An exact copy scores up to 10 where other captions score
    a few hundredths: one verbatim copy among a hundred references (MedPix's "Replace this -
    DESCRIPTION OF THE IMAGE OR FINDINGS." placeholder) would otherwise win on itself alone,
    and gain nothing on a test split without copies. Returns (caption, that score, candidates
    scored); ties: the more central."""
    candidates = [pool.texts[t] for t in central_captions(pool, n)]
    _, once = np.unique(val_cider.group, return_index=True)  # one image per reference list
    lists = [{tuple(r) for r in val_cider.ref_tokens[i]} for i in once]  # built once
    scores = []
    for caption in candidates:
        words = tokenize(caption)
        per_list = np.asarray(val_cider.scores([words] * len(val_cider.ref_tokens)))[once]
        other = np.array([tuple(words) not in refs for refs in lists])
        scores.append(float(per_list[other].mean()) if other.any() else 0.0)
    best = int(np.argmax(scores))
    return candidates[best], round(scores[best], 6), len(candidates)


def constant_baselines(pool: Pool, val_cider, tokenize, similarity: str) -> dict:
    """name -> (caption, how it was chosen) of ``constant`` and ``constant_best_val`` (the
    report blocks' settings; ``similarity`` describes the consensus similarity)."""
    best, val_score, scored = best_constant_on_val(pool, val_cider, tokenize)
    central = f"the train caption with the highest mean consensus similarity ({similarity}) to "
    central += f"the references of {min(CONSTANT_SAMPLE, len(pool))} train images "
    central += "(seeded sample, seed 0)"
    return {
        "constant": (constant_caption(pool), {"how": central}),
        "constant_best_val": (best, {
            "how": f"of the {scored} train captions most central by that similarity, the one "
            "with the highest CIDEr-D written for every validation image (each distinct "
            "reference list counted once, those holding the caption word for word left out)",
            "val_cider": val_score,
            "chosen_on": f"val ({len(val_cider.ref_tokens)} images, seeded sample)",
        }),
    }  # fmt: skip
