"""The ``neighbours`` out-of-scope rule: is an image near a training image of the class the
model gives it?

Each view of ``captioning.scope.evidence`` (encoder features, mid-level features, pixel
statistics) is judged by the image's nearest TRAINING image of the predicted class. Why
neighbours: a class's images need not form one Gaussian, and a broad class (Hand radiographs of
every size and pose) whose Gaussian (``captioning.scope.gaussian``) covers everything near its
mean also covered brain MRs and small abdominal CTs; the distance to the nearest image of the
class does not (deep nearest neighbours, Sun et al., 2022; experiments/scope.md, "Probe" and
"The default rule").

Each view is unit-normalised, centred and projected on its first ``COMPONENTS`` principal
components of the training images (a smaller bank, and the directions that carry the spread);
the bank holds EVERY training image so projected (a bank of a random 1,000 per class lost most of
the gain in the probe), as int8 with one scale per component (``quantise``: a quarter of float64,
so the bundled model fits its size budget; runs saved before it hold float16 banks, read as
they are). A view's distance is the squared Euclidean distance to the nearest bank image of the
predicted class.

The limits come from the VALIDATION split only, as for the Gaussian rule
(``gaussian.common_limits``): per view and class one common quantile, keeping ``keep`` of the
validation images in scope under the three views together. The score is the largest ratio of
distance to limit; in scope at most 1.
"""

from __future__ import annotations

import numpy as np

from captioning.scope import gaussian
from captioning.scope.evidence import VIEWS as NEAR_VIEWS  # each judged by its nearest image

VIEWS = tuple(f"near_{v}" for v in NEAR_VIEWS)  # the columns of ``ratios``
LIMITS = "near_limits"  # (K, 3): the key of the limits among the rule's arrays
COMPONENTS = 64  # principal components kept per neighbour view
CHUNK = 2048  # images per block of the (images x bank) distance matrix


def unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D) float64, each row divided by its length (zero rows stay zero)."""
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def fit_projection(x: np.ndarray, components: int = COMPONENTS) -> tuple[np.ndarray, np.ndarray]:
    """The centre (D,) and basis (D, m) of unit rows of ``x`` (N, D): the first m principal
    directions, m = min(components, D, N - 1)."""
    unit = unit_rows(x)
    centre = unit.mean(0)
    _, _, directions = np.linalg.svd(unit - centre, full_matrices=False)  # (min(N, D), D)
    m = min(components, x.shape[1], len(x) - 1)
    return centre, directions[:m].T


def project(x: np.ndarray, centre: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, m) float64 coordinates on the basis."""
    return (unit_rows(x) - centre) @ np.asarray(basis, np.float64)


def quantise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, m) float -> ((M, m) int8, (m,) float64 scale) with x ~ int8 * scale: each component
    scaled by its largest magnitude over 127 (symmetric, rounded to nearest; an all-zero
    component gets scale 1). The rounding moves a bank image by at most half a step per
    component; the limits are fitted on the quantised bank, so they measure what is stored."""
    x = np.asarray(x, np.float64)
    top = np.abs(x).max(0)
    scale = np.where(top > 0, top / 127.0, 1.0)
    return np.clip(np.rint(x / scale), -127, 127).astype(np.int8), scale


def stored_bank(stats: dict, view: str) -> tuple[np.ndarray, np.ndarray | float]:
    """The (M, m) bank of ``view`` (a ``NEAR_VIEWS`` name) as stored, and its scale: (m,)
    for an int8 bank (``quantise``), 1.0 for the float16 banks of runs saved before it."""
    return stats[f"near_{view}_bank"], stats.get(f"near_{view}_scale", 1.0)


def nearest_distances(
    z: np.ndarray, bank: np.ndarray, bank_labels, classes, scale=1.0
) -> np.ndarray:
    """(N,) squared distance of each row of ``z`` (N, m) to its nearest row of ``bank`` (M, m)
    times ``scale`` ((m,) or 1: ``quantise``) of its class in ``classes`` (N,); inf for a class
    the bank has no image of."""
    out = np.full(len(z), np.inf)
    for c in np.unique(classes):
        rows, members = np.flatnonzero(classes == c), bank_labels == c
        if not members.any():
            continue
        # only the class's rows in float64 (a batch of one image reads one class of the bank)
        block = np.asarray(bank[members], np.float64) * scale  # (M_c, m)
        block_norms = (block**2).sum(1)
        for start in range(0, len(rows), CHUNK):
            part = z[rows[start : start + CHUNK]]  # (n, m)
            d2 = (part**2).sum(1)[:, None] - 2 * part @ block.T + block_norms
            out[rows[start : start + CHUNK]] = np.maximum(d2.min(1), 0.0)
    return out


def view_distances(evidence: dict, stats: dict) -> np.ndarray:
    """(N, 3) distances of each view (order ``VIEWS``) to the predicted class."""
    classes = np.asarray(evidence["logits"]).argmax(1)
    columns = []
    for v in NEAR_VIEWS:
        z = project(evidence[v], stats[f"near_{v}_centre"], stats[f"near_{v}_basis"])
        bank, scale = stored_bank(stats, v)
        columns.append(nearest_distances(z, bank, stats["near_labels"], classes, scale))
    return np.stack(columns, 1)


def ratios(evidence: dict, stats: dict) -> np.ndarray:
    """(N, 3) each view's distance over its limit for the predicted class (> 1: out)."""
    return gaussian.over_limits(view_distances(evidence, stats), stats[LIMITS], evidence["logits"])


def fit(train: dict, train_labels, val: dict, keep: float, k: int) -> dict:
    """The rule's arrays: per view ``near_<view>_centre``/``_basis``/``_bank``/``_scale`` and
    ``near_labels`` from ``train``; ``near_limits`` (K, 3) from ``val``."""
    labels = np.asarray(train_labels)
    out = {}
    for v in NEAR_VIEWS:
        centre, basis = fit_projection(train[v])
        out[f"near_{v}_centre"], out[f"near_{v}_basis"] = centre, basis
        out[f"near_{v}_bank"], out[f"near_{v}_scale"] = quantise(project(train[v], centre, basis))
    out["near_labels"] = labels.astype(np.int16)
    classes = np.asarray(val["logits"]).argmax(1)
    out[LIMITS] = gaussian.common_limits(view_distances(val, out), classes, keep, k)
    out[LIMITS][[c for c in range(k) if not (labels == c).any()]] = 0.0
    return out
