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
- ``extent``: the share of the frame that is foreground (0..1). Field ``extent``: small / large.
- ``density``: the share of the frame that is high-density foreground, grey level >=
  ``DENSE_LEVEL`` (bone, contrast, bright tissue), 0..1. Field ``density``: low / high.
- ``brightness``: the mean grey level of the frame, 0..255. Field ``brightness``: dark / bright.

Every field has two values and one cut point ``c``: value < c -> first value, value >= c ->
second. The cut point is the quantile ``FITTED_QUANTILES[field]`` of the measurement over the
diagnostic images of the TRAINING split, so val/test/new images are binned with the same number.

Why two values and these quantiles: a field is worth stating only if a model can read it from
the image and the class alone does not give it away. Each quantile is the cut where a linear
head on the frozen encoder still reads the field about 95% of the time while the best
class-only predictor is weakest (the caption card gives that number per field). The study,
and why version 1's three-valued fields and ``position`` were dropped:
``experiments/findings_v2.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from captioning.captions.acquisition import ACQUISITION_FIELDS
from captioning.errors import DataError

CUTPOINTS_VERSION = 2
QUALITY_MIN_STD = 2.0  # grey levels; below: non-diagnostic (near-blank)
FOREGROUND_STEP = 32  # grey levels above the image's minimum that count as anatomy
DENSE_LEVEL = 200  # grey level from which a foreground pixel counts as high-density

QUALITY_VALUES = ("diagnostic", "non-diagnostic")
# Field -> its values, in bin order. ``quality`` is the flag; these are the findings.
FIELDS: dict[str, tuple[str, ...]] = {
    "extent": ("small", "large"),
    "density": ("low", "high"),
    "brightness": ("dark", "bright"),
}
# Field -> the training-split quantile its cut point sits at (see the module docstring).
FITTED_QUANTILES: dict[str, float] = {"extent": 0.65, "density": 0.30, "brightness": 0.30}
# Every field a template set may state: these findings, measured on the pixels, and the
# acquisition fields, drawn per image (``captioning.captions.acquisition``).
FIELD_VALUES: dict[str, tuple[str, ...]] = {**FIELDS, **ACQUISITION_FIELDS}
MEASUREMENTS = ("std", "extent", "density", "brightness")
MEASURE_OF = {  # field -> the measurement it bins
    "extent": "extent",
    "density": "density",
    "brightness": "brightness",
}
_CHUNK = 1024  # images per vectorised batch: bounds memory at ~1024 * 64 * 64 * 8 bytes (32 MB)


def measured(fields) -> list[str]:
    """The fields of ``fields`` measured on the pixels (those with a cut point), in order."""
    return [f for f in fields if f in FIELDS]


def measure(images: np.ndarray) -> pd.DataFrame:
    """The continuous measurements behind the fields, one row per image.

    ``images``: (N, 64, 64) uint8 (any (N, H, W) works; RGB (N, H, W, 3) is measured on its
    grey levels, ``grey_levels``). Returns columns std, extent, density,
    brightness (float64), computed exactly from integer counts and sums so results are identical
    across runs and machines.
    """
    images = np.asarray(images)
    if images.ndim != 3 and not (images.ndim == 4 and images.shape[-1] == 3):
        raise DataError(f"expected images of shape (N, H, W), got {images.shape}")
    columns = {k: np.zeros(len(images)) for k in MEASUREMENTS}
    for start in range(0, len(images), _CHUNK):
        x = grey_levels(images[start : start + _CHUNK]).astype(np.int16)  # (n, H, W)
        n_pixels = x.shape[1] * x.shape[2]
        flat = x.reshape(len(x), -1)  # (n, H*W)
        background = flat.min(axis=1)[:, None, None]  # (n, 1, 1)
        fg = x >= background + FOREGROUND_STEP  # (n, H, W) bool
        n_fg = fg.sum(axis=(1, 2))  # (n,)
        dense = (fg & (x >= DENSE_LEVEL)).sum(axis=(1, 2))  # (n,)
        part = slice(start, start + len(x))
        columns["std"][part] = flat.std(axis=1, dtype=np.float64)
        columns["extent"][part] = n_fg / n_pixels
        columns["density"][part] = dense / n_pixels
        columns["brightness"][part] = flat.sum(axis=1, dtype=np.int64) / n_pixels
    return pd.DataFrame(columns)


def grey_levels(images):
    """uint8 images (N, S, S) or (N, S, S, 3) -> (N, S, S) uint8 grey levels: grey as they are,
    RGB by Pillow's own ``convert("L")`` (ITU-R 601 luma in 16-bit fixed point), so a measure
    on the grey levels of an RGB cache equals the one on the grey cache of the same files."""
    images = np.asarray(images)
    if images.ndim != 4:
        return images
    rgb = images.astype(np.uint32)
    luma = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
    return (luma >> 16).astype(np.uint8)


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
    if len(m) < 2:
        raise DataError(
            f"need at least 2 diagnostic training images to fit cut points, got {len(m)}"
        )
    cuts = {}
    for field, q in FITTED_QUANTILES.items():
        values = m[MEASURE_OF[field]].to_numpy()
        c = float(np.quantile(values, q))
        low, high = (values < c).sum(), (values >= c).sum()
        if low == 0 or high == 0:
            raise DataError(f"cut point for '{field}' ({c}) leaves one value empty: too few images")
        cuts[field] = [c]
    return {
        "version": CUTPOINTS_VERSION,
        "cuts": cuts,
        "constants": {
            "quality_min_std": QUALITY_MIN_STD,
            "foreground_step": FOREGROUND_STEP,
            "dense_level": DENSE_LEVEL,
            "fitted_quantiles": dict(FITTED_QUANTILES),
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
        bins = np.searchsorted(cuts[field], measurements[MEASURE_OF[field]].to_numpy(), "right")
        out[field] = np.where(ok, np.asarray(values, dtype=object)[bins], "")
    return pd.DataFrame(out, index=measurements.index).astype(object)


def compute_findings(images: np.ndarray, cutpoints: dict) -> pd.DataFrame:
    """Field values for each image: columns quality, extent, density, brightness (strings).

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
        v = m[MEASURE_OF[field]].to_numpy()
        if len(v) == 0:
            out[field] = 0.0
            continue
        width = fraction * float(np.subtract(*np.quantile(v, [0.95, 0.05])))
        gaps = np.abs(v[:, None] - np.asarray(cutpoints["cuts"][field])[None, :]).min(axis=1)
        out[field] = float(np.mean(gaps < width))
    return out


def cut_distances(measurements: pd.DataFrame, cutpoints: dict, fields) -> np.ndarray:
    """(N, K) float64: for each finding in ``fields``, the measurement's signed distance from
    its cut point, in hundredths of the measurement's standard deviation over these rows.

    The targets of the captioner's findings read-out (fitted on the training split): the sign
    is the finding, and the unit makes an image 1% of a spread away from the cut read as 1."""
    cuts = check_cutpoints(cutpoints)["cuts"]
    columns = []
    for field in fields:
        values = measurements[MEASURE_OF[field]].to_numpy(np.float64)
        unit = 0.01 * max(float(values.std()), 1e-12)
        columns.append((values - cuts[field][0]) / unit)
    return np.stack(columns, axis=1) if columns else np.zeros((len(measurements), 0))


def field_ids(values: pd.DataFrame, fields) -> np.ndarray:
    """(N, F) int32: each image's value of each field as its index in ``FIELD_VALUES[field]``
    (the field heads' targets), -1 where the image states none (a non-diagnostic image's '')."""
    out = np.full((len(values), len(fields)), -1, np.int32)
    for j, name in enumerate(fields):
        index = {value: i for i, value in enumerate(FIELD_VALUES[name])}
        out[:, j] = values[name].map(index).fillna(-1).to_numpy(np.int32)
    return out
