"""The baselines of a captioner report (constant caption, nearest-neighbour retrieval with
consensus re-ranking) and the diversity of the generated captions, on hand-made sets and with
a tiny real (untrained) captioner's encoder."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from captioning.captions.tokenize import tokenize
from captioning.evaluation.consensus import build_pool, consensus_pick
from captioning.evaluation.constants import best_constant_on_val, central_captions, constant_caption
from captioning.evaluation.inputs import EvalSet
from captioning.evaluation.retrieval import caption_baselines, nearest, retrieve
from captioning.metrics import score_captions
from captioning.metrics.cider import CiderD
from captioning.metrics.diversity import diversity, repeats
from captioning.metrics.registry import metric, names

from helpers import squares, tiny_captioner_run

METRIC_KEYS = {"bleu1", "bleu2", "bleu3", "bleu4", "bleu4_nltk", "cider", "rouge_l"}


def evalset(images, captions: list[str], split: str) -> EvalSet:
    """One reference per image; ``split`` named in what was evaluated."""
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(len(captions))]})
    frame["reference_0"] = captions
    evaluated = {"data": "hand-made", "split": split, "skipped": []}
    labels = np.zeros(len(captions), np.int32)
    return EvalSet(np.asarray(images), labels, frame, [[c] for c in captions], evaluated, split)


def test_consensus_picks_the_caption_closest_to_the_others():
    texts = [
        "a hand with five fingers",
        "the left lung is clear",
        "the left lung is clear today",
        "the left lung is clear now",
        "a head ct",
    ]
    pool = build_pool([[t] for t in texts], tokenize)
    # the nearest neighbour's caption is the odd one; the consensus is the lung family's core
    assert pool.texts[consensus_pick(pool.vectors, np.arange(5))] == "the left lung is clear"
    assert consensus_pick(pool.vectors, np.array([4])) == 0  # one candidate: itself
    # a caption repeated among the neighbours wins over a longer one seen once
    picked = consensus_pick(pool.vectors, np.array([2, 0, 0]))
    assert pool.texts[[2, 0, 0][picked]] == "a hand with five fingers"
    # the constant caption: the one closest to the whole pool
    assert constant_caption(pool) == "the left lung is clear"


def test_the_best_constant_on_val_is_the_central_caption_validation_scores_highest():
    texts = ["replace this text", "a hand xray", "a hand xray of the left", "a head ct", "a hand"]
    pool = build_pool([[t] for t in texts], tokenize)
    ranked = [pool.texts[t] for t in central_captions(pool, 10)]
    assert ranked[0] == constant_caption(pool) and sorted(ranked) == sorted(texts)
    # a placeholder copied into three validation images, and four distinct hand reports
    refs = ["replace this text"] * 3 + [f"a hand xray {w}" for w in ("left", "right", "now", "x")]
    val = CiderD([[tokenize(r)] for r in refs])
    per_image = {t: val.score([tokenize(t)] * 7) for t in texts}
    assert max(per_image, key=per_image.get) == "replace this text"  # won on its copies alone
    caption, score, scored = best_constant_on_val(pool, val, tokenize)
    assert caption == "a hand xray" and scored == 5  # each distinct reference list counts once
    hand = val.scores([tokenize(caption)] * 7)
    assert score == pytest.approx((sum(hand[3:]) + hand[0]) / 5)
    assert best_constant_on_val(pool, val, tokenize, n=1)[0] == constant_caption(pool)


def test_nearest_is_cosine_chunked_and_ordered():
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 255, (50, 8, 8)).astype(np.uint8)
    queries = pool[[7, 3]].astype(np.float32) * 2  # cosine ignores the scale
    found = nearest(queries, pool, 4, chunk=7)  # 8 chunks, the top-k merged across them
    assert list(found[:, 0]) == [7, 3]
    flat = pool.reshape(50, -1).astype(np.float64)
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    sims = unit[[7, 3]] @ unit.T
    assert np.array_equal(found, np.argsort(-sims, axis=1, kind="stable")[:, :4])


def test_retrieval_on_encoder_features_with_k1_returns_each_images_own_caption(tmp_path):
    tiny_captioner_run(tmp_path)
    from captioning.inference import Captioner

    captioner = Captioner(tmp_path)
    images, labels = squares(n=12, classes=3, seed=1)
    images[:, :4, :4] = np.arange(12)[:, None, None] * 20  # no two images alike
    captions = [f"image {i} shows class {labels[i]} number {i}" for i in range(12)]
    train = evalset(images, captions, "train")
    features = captioner.pooled_features(images)
    assert features.shape == (12, 8) and features.dtype == np.float32
    pool = build_pool(train.references, tokenize)
    got = retrieve(pool, nearest(features, features, 1), 1)
    assert got == captions
    assert score_captions(got, train.references)["bleu4"] == pytest.approx(1.0)
    # the whole report entry, the train split evaluated as its own pool, against a model that
    # writes every reference word for word
    report = caption_baselines(captioner, train, train, train, meteor=False, generated=captions)
    blocks = ("constant", "constant_best_val", "retrieval_features", "retrieval_pixels")
    assert set(report) >= {*blocks, "note"}
    for name in blocks:
        assert set(report[name]) >= METRIC_KEYS, name
        assert report[name]["pool"].startswith("train split")
    assert report["retrieval_features"]["pool"] == "train split (12 images)"
    assert report["retrieval_pixels"]["pool"] == "train split, 12 of 12 images (seeded sample)"
    assert report["retrieval_features"]["space"].endswith("8-d, cosine")
    assert report["retrieval_pixels"]["space"].endswith("4096-d, cosine")
    assert report["constant"]["caption"] in captions
    assert report["constant_best_val"]["caption"] in captions
    assert report["constant_best_val"]["val_cider"] >= 0
    check_paired_bootstrap(report)
    constant = report["constant"]["paired_bootstrap"]  # one image in 12 has its caption
    assert all(constant[m]["difference"] > 0 for m in ("bleu4", "cider", "rouge_l"))
    assert constant["cider"]["captioner_wins"] > 0.99
    # k = 1 on these features retrieves the model's captions exactly: no difference at all
    assert report["retrieval_features"]["k"] == 1
    assert set(report["per_image"]) == {"retrieval_features", "retrieval_pixels"}
    assert report["per_image"]["retrieval_features"] == captions
    same = report["retrieval_features"]["paired_bootstrap"]["cider"]
    assert same == {"difference": 0, "low": 0, "high": 0, "captioner_wins": 0}


def check_paired_bootstrap(baselines: dict) -> None:
    """Each baseline's paired bootstrap against the model: every compared metric with its
    interval around the point difference, the resamples and seed, METEOR said to be left out."""
    for name in ("constant", "retrieval_features", "retrieval_pixels"):
        block = baselines[name]["paired_bootstrap"]
        assert block["resamples"] == 1000 and block["seed"] == 0, name
        assert "meteor" in block["not_compared"]
        for key in ("bleu4", "cider", "rouge_l"):
            entry = block[key]
            assert set(entry) == {"difference", "low", "high", "captioner_wins"}
            assert entry["low"] <= entry["difference"] <= entry["high"], (name, key, entry)
            assert 0 <= entry["captioner_wins"] <= 1


def test_k_is_chosen_on_validation_never_on_the_evaluated_split():
    # pool: cluster A around direction (1, 0) whose exact (1, 0) member has an odd caption,
    # cluster B around (0, 1); k = 1 copies the nearest caption, k = 5 takes the consensus
    angles = [0.0, 0.05, -0.05, 0.1, -0.1]
    a = [(np.cos(t), np.sin(t)) for t in angles]
    b = [(np.sin(t), np.cos(t)) for t in angles]
    points = np.array(a + b, np.float32)[:, None, :]  # (10, 1, 2) "images"
    captions = ["odd caption here", *["lungs are clear"] * 4, *["hand bones intact"] * 5]
    pool = evalset(points, captions, "train")
    # validation: k = 5 wins (its (1, 0) image is captioned like the cluster)
    val = evalset(points[[0, 5]], ["lungs are clear", "hand bones intact"], "val")
    captioner = SimpleNamespace(pooled_features=lambda x: np.asarray(x, np.float32))
    # evaluated on the pool itself, where k = 1 would be perfect: k stays 5
    report = caption_baselines(captioner, pool, pool, val, meteor=False)
    block = report["retrieval_features"]
    assert block["k"] == 5 and block["k_chosen_on"].startswith("val")
    assert set(block["k_grid_val_cider"]) == {"1", "5"}  # 15 and 30: more than the pool
    assert block["k_grid_val_cider"]["5"] > block["k_grid_val_cider"]["1"]
    assert block["bleu4"] < 1.0  # k = 1 would have scored 1.0 here
    assert "retrieve from" in report["note"]
    # another evaluated set, same pool and val: the same k and the same validation scores
    other = caption_baselines(captioner, val, pool, val, meteor=False)["retrieval_features"]
    assert other["k"] == 5 and other["k_grid_val_cider"] == block["k_grid_val_cider"]


def test_diversity_of_hand_made_captions():
    captions = [
        ["a", "hand"],
        ["a", "hand"],
        ["a", "<unk>", "scan"],
        ["the", "the", "lung"],  # a token twice in a row
        ["x", "y", "z", "w", "x", "y", "z"],  # a repeated 3-gram
    ]
    assert diversity(captions) == {
        "distinct_share": 0.8,
        "unk_share": 0.2,
        "repeat_share": 0.4,
        "vocabulary_used": 9,  # <unk> is no word
    }
    assert not repeats(["x", "y", "x", "y"]) and repeats(["x", "y", "z", "x", "y", "z"])
    assert diversity([])["distinct_share"] is None
    assert names("generated") == ("distinct_share", "unk_share", "repeat_share", "vocabulary_used")
    assert (
        metric("repeat_share").format(0.4) == "40.00%" and not metric("unk_share").higher_is_better
    )


def test_classify_then_template_groups_and_backs_off():
    """Each query gets the consensus caption of the train images with its predicted labels; a
    combination no train image has backs off to its first column, then to the constant."""
    from captioning.evaluation.label_baseline import group_captions, label_heads

    texts = [
        "axial ct of the head", "axial ct of the head .", "axial ct of the head",
        "coronal mr of the knee", "coronal mr of the knee", "coronal mr of the knee joint",
    ]  # fmt: skip
    pool = build_pool([[t] for t in texts], tokenize)
    train = {
        "modality": np.array(["CT"] * 3 + ["MR"] * 3, dtype=object),
        "plane": np.array(["Axial"] * 3 + ["Coronal"] * 3, dtype=object),
    }
    predicted = {
        "modality": np.array(["MR", "CT", "CT", "XR"], dtype=object),
        "plane": np.array(["Coronal", "Axial", "Coronal", "Axial"], dtype=object),
    }
    captions, depth = group_captions(pool, train, predicted, constant_caption)
    knee, head = "coronal mr of the knee", "axial ct of the head"
    assert captions[:3] == [knee, head, head]  # CT + Coronal: no train image, so CT alone
    assert captions[3] == constant_caption(pool)  # XR: no train image, the constant caption
    assert list(depth) == [2, 2, 1, 0]
    unlabelled = evalset(np.zeros((1, 4, 4)), ["a"], "test")
    assert "no label columns" in label_heads(SimpleNamespace(run={}), unlabelled)


def test_classify_then_template_says_why_it_does_not_apply(tmp_path):
    """A missing encoder run, an encoder of one label, an encoder of another dataset: each a
    one-line reason, not an error."""
    import json

    from captioning.evaluation.label_baseline import label_heads

    labelled = evalset(np.zeros((1, 4, 4)), ["a"], "test")
    labelled.label_columns = ("modality",)

    def reason(encoder: dict | None) -> str:
        if encoder is not None:
            (tmp_path / "run.json").write_text(json.dumps(encoder))
        run = {"encoder_run": str(tmp_path), "manifest_sha256": "abc"}
        return label_heads(SimpleNamespace(run=run), labelled)

    assert "not at hand" in reason(None)
    assert "no heads of the label columns" in reason({"classes": ["CT", "MR"]})
    heads = {"label_columns": {"modality": ["CT", "MR"]}}
    assert "another dataset" in reason({**heads, "manifest_sha256": "def"})
    assert reason({**heads, "manifest_sha256": "abc"}) == (tmp_path, {"modality": ["CT", "MR"]})
