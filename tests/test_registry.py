"""The metric registry: one entry per metric, read by score_captions, the tables and the card."""

from __future__ import annotations

import numpy as np
import pytest

from captioning.metrics import registry, score_captions
from captioning.metrics.registry import METRICS, Metric, kept_scores, metric, names, value

HYPS = ["head ct normal", "chest x ray"]
REFS = [["head ct normal", "a head ct"], ["chest x ray", "frontal chest x ray"]]


def test_names_are_unique_and_kinds_known():
    assert len({m.name for m in METRICS}) == len(METRICS)
    assert all(m.kind in registry.KINDS for m in METRICS)
    assert all(m.scorer is not None for m in METRICS if m.kind in ("corpus", "per_image"))


def test_score_captions_gives_every_computed_metric_in_the_registry_order():
    scores = score_captions(HYPS, REFS, meteor=True)
    computed = [m.name for m in METRICS if m.scorer is not None]
    assert [k for k in scores if k != "meteor_missing"] == computed
    assert "meteor" not in score_captions(HYPS, REFS)  # computed only on request
    assert "meteor" not in kept_scores() and "bleu4" in kept_scores()


def test_labels_formats_and_directions():
    assert metric("bleu4").format(0.41204) == "0.4120"
    assert metric("caption_class_accuracy").format(0.99512) == "99.51%"
    assert (
        metric("cider").format(None) == "–" and metric("cider").format(None, missing="n/a") == "n/a"
    )
    assert metric("bleu4").format(0.41204, digits=3) == "0.412"
    assert metric("findings_accuracy.extent").label == "extent"
    assert metric("findings_accuracy.all").label == "all right"
    assert not metric("ece").higher_is_better and metric("bleu4").higher_is_better
    assert metric("accuracy").long_label == "classifier accuracy"
    with pytest.raises(KeyError, match="unknown metric 'nope'"):
        metric("nope")


def test_names_by_kind_and_nested_values():
    assert names("corpus")[:4] == ("bleu1", "bleu2", "bleu3", "bleu4")
    assert "findings_accuracy" in names("truth") and "findings_accuracy.all" not in names()
    report = {"bleu4": 0.5, "findings_accuracy": {"all": 0.25}}
    assert value(report, "findings_accuracy.all") == 0.25
    assert value(report, "findings_accuracy.extent") is None and value(report, "nope") is None


def test_a_per_image_metric_added_to_the_list_is_scored_as_its_mean(monkeypatch):
    def lengths(hyp_tokens, ref_tokens):
        return {"length": np.array([len(h) for h in hyp_tokens])}

    toy = Metric("length", "length", "tokens per caption", "per_image", 2, scorer=lengths)
    monkeypatch.setattr(registry, "METRICS", (*METRICS, toy))
    monkeypatch.setitem(registry._BY_NAME, "length", toy)
    assert score_captions(HYPS, REFS)["length"] == 3.0
