"""Findings from pixels: known answers on hand-made images, and stability on real images."""

from __future__ import annotations

import numpy as np
import pytest

from captioning.captions.findings import (
    CUTPOINTS_VERSION,
    FIELDS,
    FITTED_QUANTILES,
    compute_findings,
    findings_from_measurements,
    fit_cutpoints,
    measure,
)
from captioning.data.dataset import PreparedData
from captioning.errors import DataError


def _square(value=220, left=24, top=24, size=16, background=0) -> np.ndarray:
    image = np.full((64, 64), background, np.uint8)
    image[top : top + size, left : left + size] = value
    return image


def _cutpoints() -> dict:
    """Hand-set cut points, so the tests know the answers."""
    return {
        "version": CUTPOINTS_VERSION,
        "cuts": {"extent": [0.2], "density": [0.02], "brightness": [30.0]},
    }


def test_blank_images_are_non_diagnostic():
    uniform = np.full((64, 64), 25, np.uint8)  # like the 94 identical HeadCT slices
    speck = np.zeros((64, 64), np.uint8)
    speck[10, 10:12] = 60  # two faint pixels: std ~1.3
    found = compute_findings(np.stack([uniform, speck, _square()]), _cutpoints())
    assert found["quality"].tolist() == ["non-diagnostic", "non-diagnostic", "diagnostic"]
    assert (found.loc[:1, list(FIELDS)] == "").all().all()


def test_bright_square_on_black():
    m = measure(_square(left=4)[None])
    assert m.loc[0, "extent"] == pytest.approx(256 / 4096)
    assert m.loc[0, "density"] == pytest.approx(256 / 4096)  # share of the frame
    assert m.loc[0, "brightness"] == pytest.approx(220 * 256 / 4096)
    found = compute_findings(_square(left=4)[None], _cutpoints()).iloc[0]
    assert found.to_dict() == {
        "quality": "diagnostic",
        "extent": "small",
        "density": "high",
        "brightness": "dark",
    }


def test_background_is_the_image_minimum():
    """A CT-like grey background (100) with a dim square 40 levels above it: the square is
    foreground (a quarter of the frame), none of it dense; the frame is bright."""
    image = _square(value=140, size=32, left=16, top=16, background=100)
    m = measure(image[None])
    assert m.loc[0, "extent"] == 0.25 and m.loc[0, "density"] == 0.0
    assert m.loc[0, "brightness"] == pytest.approx(110.0)
    found = compute_findings(image[None], _cutpoints()).iloc[0]
    assert (found["extent"], found["density"], found["brightness"]) == ("large", "low", "bright")


def test_a_value_on_the_cut_takes_the_upper_value():
    m = measure(np.stack([_square(size=8), _square(size=9)]))  # 64 and 81 of 4096 pixels
    cut = {"version": CUTPOINTS_VERSION, "cuts": {f: [0.0] for f in FIELDS}}
    cut["cuts"]["extent"] = [64 / 4096]
    assert findings_from_measurements(m, cut)["extent"].tolist() == ["large", "large"]
    cut["cuts"]["extent"] = [70 / 4096]
    assert findings_from_measurements(m, cut)["extent"].tolist() == ["small", "large"]


def test_fit_at_quantiles_and_binning():
    rng = np.random.default_rng(0)
    peak = np.linspace(190, 255, 40)[:, None, None]  # brightness and density vary by image
    images = (rng.random((40, 64, 64)) * peak).astype(np.uint8)
    cut = fit_cutpoints(images)
    assert set(cut["cuts"]) == set(FIELDS) and all(len(c) == 1 for c in cut["cuts"].values())
    assert cut["constants"]["fitted_quantiles"] == FITTED_QUANTILES
    found = compute_findings(images, cut)
    upper = (found["brightness"] == "bright").mean()
    assert upper == pytest.approx(1 - FITTED_QUANTILES["brightness"], abs=0.05)


def test_old_cutpoints_are_rejected():
    old = {"version": 1, "cuts": {"extent": [0.1, 0.2], "density": [0.1, 0.2]}}
    with pytest.raises(DataError, match="another version"):
        compute_findings(_square()[None], old)


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


def test_cut_distances_are_signed_hundredths_of_the_spread():
    import pandas as pd

    from captioning.captions.findings import cut_distances

    m = pd.DataFrame({"std": [9.0] * 4, "extent": [0.1, 0.3, 0.5, 0.7]})
    m["density"], m["brightness"] = m["extent"], m["extent"] * 100
    cuts = {"version": CUTPOINTS_VERSION, "cuts": {f: [0.4] for f in FIELDS}}
    cuts["cuts"]["brightness"] = [40.0]
    d = cut_distances(m, cuts, ["extent", "brightness"])
    spread = np.std([0.1, 0.3, 0.5, 0.7])
    np.testing.assert_allclose(d[:, 0], (m["extent"] - 0.4) / (0.01 * spread))
    np.testing.assert_allclose(d[:, 1], d[:, 0])  # the same in any unit
    assert (np.sign(d[:, 0]) == [-1, -1, 1, 1]).all()


def test_each_measurement_is_read_exactly_from_the_intensity_histogram(mednist_small):
    # experiments/findings_learnability.py rests on this: a linear reader of the histogram
    # exists for every finding (density: where the darkest pixel is at most 200 - 32)
    from captioning.models.layers import IntensityHistogram

    images = np.asarray(PreparedData(mednist_small).images)
    shares = np.asarray(IntensityHistogram()(images[..., None].astype("float32")), np.float64)
    m = measure(images)
    assert images.reshape(len(images), -1).min(1).max() <= 168
    np.testing.assert_allclose(m["extent"], shares[:, 255 + 31], atol=1e-6)  # above min + 32
    np.testing.assert_allclose(m["density"], shares[:, 199], atol=1e-6)  # at or above 200
    np.testing.assert_allclose(m["brightness"], shares[:, :255].sum(1), atol=1e-3)  # the mean
