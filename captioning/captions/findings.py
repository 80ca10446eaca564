"""Findings read from an image's own pixels: the facts a templated caption states.

Every definition lives in this module: the measurements (``measure``), the fixed constants, the
cut points fitted on the training split (``fit_cutpoints``) and the mapping from measurement to
field value (``compute_findings``). Each field is a deterministic, vectorised function of the
64x64 uint8 image; nothing depends on the class label.

Measurements, for an image ``x`` (64, 64) with grey levels 0..255:

- ``std``: standard deviation of the grey levels. Below ``QUALITY_MIN_STD`` the image is
  essentially uniform (e.g. the 94 identical HeadCT slices whose every pixel is 25) and the
  caption says "non-diagnostic" instead of stating findings.
- foreground: the pixels at least ``FOREGROUND_STEP`` grey levels above the image's own
  background (its minimum). Using the image's minimum, not 0, makes CT slices, whose air is
  mid-grey after windowing, comparable with radiographs and MRI, whose air is black.
- ``extent``: the share of the frame that is foreground (0..1). Field ``extent``:
  small / medium / large, cut at the terciles of the training images.
- ``density``: the share of foreground pixels that are high-density, grey level >=
  ``DENSE_LEVEL`` (bone, contrast, bright tissue), 0..1. Field ``density``: low / moderate /
  high, cut at the training terciles.
- ``offset``: horizontal position of the foreground's centroid, in pixels from the frame's
  centre (positive: towards the image's right). Field ``position``: left / centre / right,
  with a fixed absolute margin of ``POSITION_MARGIN`` pixels (not fitted).

Binning rule for cut points ``[c1, c2]``: value < c1 -> first value, c1 <= value < c2 ->
second, value >= c2 -> third.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from captioning.errors import DataError

CUTPOINTS_VERSION = 1
QUALITY_MIN_STD = 2.0  # grey levels; below: non-diagnostic (near-blank)
FOREGROUND_STEP = 32  # grey levels above the image's minimum that count as anatomy
DENSE_LEVEL = 200  # grey level from which a foreground pixel counts as high-density
POSITION_MARGIN = 1.5  # pixels off the frame's centre before a position is stated
FITTED_QUANTILES = (1 / 3, 2 / 3)  # terciles of the training images, for fitted fields

QUALITY_VALUES = ("diagnostic", "non-diagnostic")
# Field -> its values, in bin order. ``quality`` is the flag; these are the findings.
FIELDS: dict[str, tuple[str, ...]] = {
    "extent": ("small", "medium", "large"),
    "density": ("low", "moderate", "high"),
    "position": ("left", "centre", "right"),
}
_MEASURE_OF = {"extent": "extent", "density": "density", "position": "offset"}
_FITTED = ("extent", "density")
_CHUNK = 4096  # images per vectorised batch: bounds memory at ~4096 * 64 * 64 * 8 bytes


def measure(images: np.ndarray) -> pd.DataFrame:
    """The continuous measurements behind the fields, one row per image.

    ``images``: (N, 64, 64) uint8 (any (N, H, W) works). Returns columns std, extent, density,
    offset (float64), computed exactly from integer counts so results are identical across runs
    and machines.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise DataError(f"expected images of shape (N, H, W), got {images.shape}")
    columns = {k: np.zeros(len(images)) for k in ("std", "extent", "density", "offset")}
    centre = (images.shape[2] - 1) / 2
    col_index = np.arange(images.shape[2], dtype=np.float64)  # (W,)
    for start in range(0, len(images), _CHUNK):
        x = np.asarray(images[start : start + _CHUNK]).astype(np.int16)  # (n, H, W)
        n_pixels = x.shape[1] * x.shape[2]
        flat = x.reshape(len(x), -1)  # (n, H*W)
        background = flat.min(axis=1)[:, None, None]  # (n, 1, 1)
        fg = x >= background + FOREGROUND_STEP  # (n, H, W) bool
        n_fg = fg.sum(axis=(1, 2))  # (n,)
        dense = (fg & (x >= DENSE_LEVEL)).sum(axis=(1, 2))  # (n,)
        fg_cols = fg.sum(axis=1)  # (n, W): foreground pixels per column
        safe = np.maximum(n_fg, 1)
        part = slice(start, start + len(x))
        columns["std"][part] = flat.std(axis=1, dtype=np.float64)
        columns["extent"][part] = n_fg / n_pixels
        columns["density"][part] = dense / safe
        columns["offset"][part] = np.where(n_fg > 0, fg_cols @ col_index / safe - centre, 0.0)
    return pd.DataFrame(columns)


def is_diagnostic(measurements: pd.DataFrame) -> np.ndarray:
    """(N,) bool: the image shows enough structure to state findings."""
    return measurements["std"].to_numpy() >= QUALITY_MIN_STD


def fit_cutpoints(train_images: np.ndarray) -> dict:
    """Cut points for the fitted fields, from the diagnostic images of the TRAINING split.

    ``train_images``: (N, 64, 64) uint8. Returns a JSON-ready dict (stored with the prepared
    dataset, so validation, test and new images are binned with the same numbers).
    """
    m = measure(train_images)
    m = m[is_diagnostic(m)]
    if len(m) < 3:
        raise DataError(
            f"need at least 3 diagnostic training images to fit cut points, got {len(m)}"
        )
    cuts = {}
    for field in _FITTED:
        values = m[_MEASURE_OF[field]].to_numpy()
        c = [float(q) for q in np.quantile(values, FITTED_QUANTILES)]
        if not c[0] < c[1]:
            raise DataError(f"cut points for '{field}' are not increasing ({c}): too few images")
        cuts[field] = c
    cuts["position"] = [-POSITION_MARGIN, POSITION_MARGIN]
    return {
        "version": CUTPOINTS_VERSION,
        "cuts": cuts,
        "constants": {
            "quality_min_std": QUALITY_MIN_STD,
            "foreground_step": FOREGROUND_STEP,
            "dense_level": DENSE_LEVEL,
            "position_margin": POSITION_MARGIN,
            "fitted_quantiles": list(FITTED_QUANTILES),
        },
        "n_train_images": len(train_images),
        "n_train_diagnostic": len(m),
    }


def check_cutpoints(cutpoints: dict) -> dict:
    """Reject cut points written by another version of these definitions."""
    if cutpoints.get("version") != CUTPOINTS_VERSION or set(cutpoints.get("cuts", {})) != set(
        FIELDS
    ):
        raise DataError(
            "cut points were written by another version of the findings definitions; "
            "run 'captioning data captions' again"
        )
    return cutpoints


def findings_from_measurements(measurements: pd.DataFrame, cutpoints: dict) -> pd.DataFrame:
    """Bin measurements into field values (strings); findings of non-diagnostic images are ''."""
    cuts = check_cutpoints(cutpoints)["cuts"]
    ok = is_diagnostic(measurements)
    out = {"quality": np.where(ok, QUALITY_VALUES[0], QUALITY_VALUES[1])}
    for field, values in FIELDS.items():
        bins = np.searchsorted(cuts[field], measurements[_MEASURE_OF[field]].to_numpy(), "right")
        out[field] = np.where(ok, np.asarray(values, dtype=object)[bins], "")
    return pd.DataFrame(out, index=measurements.index).astype(object)


def compute_findings(images: np.ndarray, cutpoints: dict) -> pd.DataFrame:
    """Field values for each image: columns quality, extent, density, position (strings).

    ``images``: (N, 64, 64) uint8; ``cutpoints``: from ``fit_cutpoints`` (training split).
    Non-diagnostic images get quality 'non-diagnostic' and '' for every finding.
    """
    return findings_from_measurements(measure(images), cutpoints)


def borderline_share(measurements: pd.DataFrame, cutpoints: dict, fraction=0.02) -> dict:
    """Per field, the share of diagnostic images whose measurement lies within ``fraction`` of
    the field's 5-95% range of a cut point: a rough bound on how hard the field is to read."""
    m = measurements[is_diagnostic(measurements)]
    out = {}
    for field in FIELDS:
        v = m[_MEASURE_OF[field]].to_numpy()
        if len(v) == 0:
            out[field] = 0.0
            continue
        width = fraction * float(np.subtract(*np.quantile(v, [0.95, 0.05])))
        gaps = np.abs(v[:, None] - np.asarray(cutpoints["cuts"][field])[None, :]).min(axis=1)
        out[field] = float(np.mean(gaps < width))
    return out
