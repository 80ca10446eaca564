"""Findings from pixels: known answers on hand-made images, and stability on real images."""

from __future__ import annotations

import numpy as np
import pytest

from captioning.captions.findings import (
    FIELDS,
    POSITION_MARGIN,
    compute_findings,
    fit_cutpoints,
    measure,
)
from captioning.data.dataset import PreparedData


def _square(value=220, left=24, top=24, size=16, background=0) -> np.ndarray:
    image = np.full((64, 64), background, np.uint8)
    image[top : top + size, left : left + size] = value
    return image


def _cutpoints() -> dict:
    """Hand-set cut points, so the tests know the answers."""
    return {
        "version": 1,
        "cuts": {"extent": [0.05, 0.2], "density": [0.2, 0.6], "position": [-1.5, 1.5]},
    }


def test_blank_images_are_non_diagnostic():
    uniform = np.full((64, 64), 25, np.uint8)  # like the 94 identical HeadCT slices
    speck = np.zeros((64, 64), np.uint8)
    speck[10, 10:12] = 60  # two faint pixels: std ~1.3
    found = compute_findings(np.stack([uniform, speck, _square()]), _cutpoints())
    assert found["quality"].tolist() == ["non-diagnostic", "non-diagnostic", "diagnostic"]
    assert (found.loc[:1, list(FIELDS)] == "").all().all()


def test_bright_square_off_centre():
    m = measure(_square(left=4)[None])  # columns 4..19: centroid at 11.5, centre 31.5
    assert m.loc[0, "extent"] == pytest.approx(256 / 4096)
    assert m.loc[0, "density"] == 1.0
    assert m.loc[0, "offset"] == pytest.approx(-20.0)
    found = compute_findings(_square(left=4)[None], _cutpoints()).iloc[0]
    assert found.to_dict() == {
        "quality": "diagnostic",
        "extent": "medium",
        "density": "high",
        "position": "left",
    }


def test_background_is_the_image_minimum():
    """A CT-like grey background (100) with a dim square 40 levels above it: all foreground,
    none of it dense; centred."""
    found = compute_findings(
        _square(value=140, size=32, left=16, top=16, background=100)[None], _cutpoints()
    ).iloc[0]
    assert (found["extent"], found["density"], found["position"]) == ("large", "low", "centre")


def test_position_margin_is_absolute():
    right = _square(left=24 + int(POSITION_MARGIN) + 1)
    inside = _square(left=25)  # 1 pixel right of centre: within the margin
    found = compute_findings(np.stack([right, inside]), _cutpoints())
    assert found["position"].tolist() == ["right", "centre"]


def test_fit_on_terciles_and_binning():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 64, 64), dtype=np.uint8)
    cut = fit_cutpoints(images)
    assert cut["cuts"]["extent"][0] < cut["cuts"]["extent"][1]
    found = compute_findings(images, cut)
    counts = found["extent"].value_counts()
    assert set(counts.index) == set(FIELDS["extent"])
    assert counts.max() - counts.min() <= 2  # terciles of the images themselves


def test_real_images_stable_and_fitted_on_train_only(mednist_small):
    data = PreparedData(mednist_small)
    train = data.split("train")
    cut = fit_cutpoints(train.images)
    assert fit_cutpoints(train.images) == cut  # deterministic
    everything = np.asarray(data.images)
    first = compute_findings(everything, cut)
    assert first.equals(compute_findings(everything.copy(), cut))
    # Changing every val/test image changes nothing in the train cut points.
    altered = everything.copy()
    others = data.manifest.index[data.manifest["split"] != "train"].to_numpy()
    altered[others] = 255 - altered[others]
    assert fit_cutpoints(altered[train.rows]) == cut
    assert set(first["quality"]) <= {"diagnostic", "non-diagnostic"}
    ok = first[first["quality"] == "diagnostic"]
    for field, values in FIELDS.items():
        assert set(ok[field]) <= set(values)
        assert ok[field].nunique() >= 2, field
