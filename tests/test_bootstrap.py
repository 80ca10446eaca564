"""Paired bootstrap of the corpus caption metrics (``captioning.metrics.bootstrap``): the
per-image statistics give back the corpus scores, identical systems differ by exactly 0, a
system better on every image wins every resample, the interval holds the point difference and
the draws are the seed's; on hand-made free text and on MedPix 2.0 radiologists' captions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_metric_reuse import FREE_TEXT  # free-text radiology sentences

from captioning.captions.tokenize import tokenize
from captioning.metrics import corpus_bleu, corpus_cider_d, corpus_rouge_l
from captioning.metrics.bleu import bleu_image_stats, bleu_stats
from captioning.metrics.bootstrap import COMPARED, PairedBootstrap, resample_counts

REFS = [[tokenize(t)] for t in FREE_TEXT]
# a caption set near the references (a word dropped from each) and one far from them
NEAR = [tokenize(t)[1:] for t in FREE_TEXT]
FAR = [tokenize(FREE_TEXT[(i + 3) % len(FREE_TEXT)])[:5] for i in range(len(FREE_TEXT))]


def full_set_scores(bootstrap: PairedBootstrap, hyps) -> dict:
    """The compared metrics on the whole test set, from the per-image statistics."""
    whole = np.ones((1, len(hyps)))
    return {k: float(v[0]) for k, v in bootstrap.scores(bootstrap.statistics(hyps), whole).items()}


def test_resample_counts_are_draws_with_replacement_of_the_seed():
    counts = resample_counts(7, resamples=50, seed=3)
    assert counts.shape == (50, 7) and np.all(counts.sum(axis=1) == 7)
    assert np.array_equal(counts, resample_counts(7, resamples=50, seed=3))
    assert not np.array_equal(counts, resample_counts(7, resamples=50, seed=4))
    assert (counts == 0).any()  # some image left out of some resample: with replacement


@pytest.mark.parametrize("hyps", [NEAR, FAR], ids=["near", "far"])
def test_full_set_statistics_give_the_corpus_scores(hyps):
    got = full_set_scores(PairedBootstrap(REFS, resamples=10), hyps)
    assert got["bleu4"] == pytest.approx(corpus_bleu(hyps, REFS)[3], abs=1e-9)
    assert got["cider"] == pytest.approx(corpus_cider_d(hyps, REFS), abs=1e-9)
    assert got["rouge_l"] == pytest.approx(corpus_rouge_l(hyps, REFS), abs=1e-9)


def test_per_image_bleu_statistics_sum_to_the_corpus_totals():
    per_image = bleu_image_stats(NEAR, REFS)
    totals = bleu_stats(NEAR, REFS)
    assert per_image["correct"].shape == per_image["guess"].shape == (len(NEAR), 4)
    assert list(per_image["correct"].sum(axis=0)) == totals["correct"]
    assert list(per_image["guess"].sum(axis=0)) == totals["guess"]
    assert per_image["testlen"].sum() == totals["testlen"]
    assert per_image["reflen"].sum() == totals["reflen"]
    # one image alone has the BLEU of a corpus of that image
    one = bleu_image_stats(NEAR[2:3], REFS[2:3])
    assert np.array_equal(one["correct"][0], per_image["correct"][2])


def test_identical_systems_differ_by_exactly_zero():
    result = PairedBootstrap(REFS, resamples=200).compare(NEAR, [list(h) for h in NEAR])
    for name in COMPARED:
        assert result[name] == {"difference": 0, "low": 0, "high": 0, "captioner_wins": 0}
    assert result["resamples"] == 200 and result["seed"] == 0


def test_a_system_better_on_every_image_wins_every_resample():
    bootstrap = PairedBootstrap(REFS, resamples=300)
    result = bootstrap.compare([r[0] for r in REFS], FAR)  # the references themselves
    for name in COMPARED:
        entry = result[name]
        assert entry["captioner_wins"] == 1.0, name
        assert 0 < entry["low"] <= entry["difference"] <= entry["high"], name
    # the other way round: never a win, the interval below 0
    reverse = bootstrap.compare(FAR, [r[0] for r in REFS])
    assert all(reverse[n]["captioner_wins"] == 0.0 and reverse[n]["high"] < 0 for n in COMPARED)


def test_same_seed_same_interval_other_seed_other_draws():
    first = PairedBootstrap(REFS, resamples=300, seed=5).compare(NEAR, FAR)
    again = PairedBootstrap(REFS, resamples=300, seed=5).compare(NEAR, FAR)
    other = PairedBootstrap(REFS, resamples=300, seed=6).compare(NEAR, FAR)
    assert first == again
    assert first["cider"]["difference"] == other["cider"]["difference"]  # the full set
    assert (first["cider"]["low"], first["cider"]["high"]) != (
        other["cider"]["low"],
        other["cider"]["high"],
    )


def test_interval_brackets_the_difference_on_medpix_captions(medpix_slice):
    """Radiologists' captions: each image's reference against the caption of the next image
    (a retrieval-like system) and a constant caption; every metric's interval holds the point
    difference, and the full set's BLEU-4 is the corpus BLEU-4."""
    table = pd.read_csv(medpix_slice / "captions.csv", keep_default_na=False, dtype=str)
    texts = list(table["caption"])[:60]
    refs = [[tokenize(t)] for t in texts]
    shifted = [tokenize(texts[(i + 1) % len(texts)]) for i in range(len(texts))]
    constant = [tokenize(texts[0])] * len(texts)
    bootstrap = PairedBootstrap(refs)
    assert full_set_scores(bootstrap, shifted)["bleu4"] == pytest.approx(
        corpus_bleu(shifted, refs)[3], abs=1e-9
    )
    result = bootstrap.compare(shifted, constant)
    for name in COMPARED:
        entry = result[name]
        assert entry["low"] <= entry["difference"] <= entry["high"], (name, entry)
        assert 0 <= entry["captioner_wins"] <= 1
        assert entry["high"] > entry["low"], name  # different systems: a real spread
    assert result["resamples"] == 1000 and result["seed"] == 0


def test_differences_below_the_reports_precision_are_ties():
    """coco-caption's BLEU-4 of captions without a 4-gram match is a tiny positive number that
    moves with the lengths: not a win, and no ``-0.0`` in the report."""
    short = [["zzz"] for _ in REFS]
    longer = [["zzz", "yyy", "xxx"] for _ in REFS]
    bootstrap = PairedBootstrap(REFS, resamples=200)
    raw = full_set_scores(bootstrap, short)["bleu4"] - full_set_scores(bootstrap, longer)["bleu4"]
    assert raw != 0 and abs(raw) < 1e-6  # a real, meaningless difference
    for first, second in ((short, longer), (longer, short)):
        entry = bootstrap.compare(first, second)["bleu4"]
        assert entry == {"difference": 0, "low": 0, "high": 0, "captioner_wins": 0}
        assert "-0.0" not in json.dumps(entry)
