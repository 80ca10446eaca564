"""Template baseline: heads on features, verbalised captions parse back to the predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from captioning.captions.findings import FIELDS
from captioning.captions.parse import parse_caption
from captioning.captions.templates import load_template_set
from captioning.evaluation.baselines import FieldHeads, measurement_margin, verbalise


def _toy(n=240, seed=0):
    """Features whose sign in column i gives field i; the last 10% non-diagnostic."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    truth = {"quality": np.where(np.arange(n) < n * 0.9, "diagnostic", "non-diagnostic")}
    x[truth["quality"] == "non-diagnostic", 7] = 6.0
    for i, (field, values) in enumerate(FIELDS.items()):
        truth[field] = np.where(x[:, i] >= 0, values[-1], values[0])
        truth[field][truth["quality"] == "non-diagnostic"] = ""
    return x, pd.DataFrame(truth)


def test_heads_learn_separable_fields_and_captions_parse_back():
    x, truth = _toy()
    predicted = FieldHeads().fit(x, truth, epochs=60, batch_size=32, learning_rate=0.03)
    predicted = predicted.predict(x)
    for field in ("quality", *FIELDS):
        assert (predicted[field] == truth[field]).mean() >= 0.95, field
    tset = load_template_set("findings")
    classes = ["Hand"] * len(x)
    texts = verbalise(classes, predicted, tset)
    for text, (_, row) in zip(texts, predicted.iterrows(), strict=True):
        assert parse_caption(text, tset).matches("Hand", row.to_dict())


def test_measurement_margin():
    assert measurement_margin(np.array([0.0, 0.9, 1.05, 3.0]), [1.0], 0.2) == pytest.approx(0.5)
    assert measurement_margin(np.array([]), [1.0], 0.2) == 0.0


def test_pixel_rule_oracle_is_the_ceiling_on_real_images(mednist_small):
    from captioning.data.template_captions import build_captions
    from captioning.evaluation.baselines import evaluate_oracle

    build_captions(mednist_small)
    report = evaluate_oracle(mednist_small, split="val")
    assert report["n"] > 0
    assert report["caption_class_accuracy"] == 1.0
    assert all(v == 1.0 for v in report["findings_accuracy"].values()), report
    assert "ceiling" in report["model"]
