"""The ``gaussian`` out-of-scope rule: is an image like the training images of the class the
model gives it?

For each view of ``captioning.scope.evidence`` (encoder features, mid-level features, pixel
statistics) and each class, a Gaussian with its own covariance (Ledoit-Wolf shrinkage) is
fitted on that class's TRAINING images. An image's distance in a view is its squared
Mahalanobis distance to the Gaussian of its PREDICTED class, divided by that class's limit in
that view; its score is the largest of the three ratios, and it is in scope when the score is at
most 1. Why per predicted class: the question the caption depends on is "is this a HeadCT like
the HeadCTs we trained on", not "is it near any class" (a brain MR near the HeadCT cluster
would otherwise pass while being called BreastMRI). Why per-class covariances: MedNIST's
classes differ in spread by an order of magnitude (tight breast MR, varied hand radiographs), so
one shared covariance lets anything near a broad class through; experiments/scope.md. A small
data set shrinks each class's covariance towards the shared one (``fit_class_gaussians``).

The limits come from the VALIDATION split only: per view and class, one common quantile ``q``
of the validation images' distances, with ``q`` chosen (by bisection) so that ``keep`` of the
validation images stay in scope under all three views together. A class given to fewer than
``MIN_VAL_PER_CLASS`` validation images takes the quantile of all of them.
"""

from __future__ import annotations

import numpy as np

from captioning.scope.evidence import VIEWS

LIMITS = "limits"  # (K, 3): the key of the limits among the rule's arrays
# a per-class limit needs enough validation images of that class: a 99.7% quantile of fewer than
# a hundred is one of its two largest values
MIN_VAL_PER_CLASS = 100
REASONS = {
    "features": "its encoder features",
    "mid": "its mid-level (texture) features",
    "pixels": "its pixel statistics (grey levels, neighbour correlation)",
}
# the neighbours rule's views (``captioning.scope.neighbours``) say the same of an image
REASONS |= {f"near_{v}": REASONS[v] for v in VIEWS}


def fit_class_gaussians(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Means (K, D) and whitening roots (K, D, D) (root root^T = the class's precision) of
    ``x`` (N, D) per class 0..k-1. Each class's covariance (Ledoit-Wolf) is shrunk towards the
    pooled within-class covariance as if that were D extra images: weight n_c / (n_c + D) on
    the class's own, so a class of thousands keeps its shape and a class of a few dozen (a
    small data set) gets the shared one (regularised discriminant analysis, Friedman 1989). A
    class without training images gets a zero limit later (never in scope)."""
    from sklearn.covariance import LedoitWolf

    x = np.asarray(x, np.float64)
    d = x.shape[1]
    present = [c for c in range(k) if (labels == c).sum() >= 2]
    means = np.zeros((k, d))
    for c in present:
        means[c] = x[labels == c].mean(0)
    rows = np.isin(labels, present)
    pooled = LedoitWolf(assume_centered=True).fit(x[rows] - means[labels[rows]]).covariance_
    roots = np.zeros((k, d, d))
    for c in present:
        own = x[labels == c] - means[c]
        weight = len(own) / (len(own) + d)
        covariance = weight * LedoitWolf().fit(own).covariance_ + (1 - weight) * pooled
        precision = np.linalg.inv(covariance)
        roots[c] = np.linalg.cholesky((precision + precision.T) / 2)
    # stored as float32 (half the run's scope.npz); the limits are fitted on these very roots
    return means, roots.astype(np.float32)


def class_distances(x: np.ndarray, means: np.ndarray, roots: np.ndarray, classes) -> np.ndarray:
    """(N,) squared Mahalanobis distance of each row of ``x`` (N, D) to the Gaussian of its
    class in ``classes`` (N,)."""
    x = np.asarray(x, np.float64)
    out = np.empty(len(x))
    for c in np.unique(classes):
        rows = classes == c
        z = (x[rows] - means[c]) @ roots[c]  # (n_c, D): whitened
        out[rows] = (z**2).sum(1)
    return out


def view_distances(evidence: dict, stats: dict) -> np.ndarray:
    """(N, 3) distances of each view (order ``VIEWS``) to the predicted class's Gaussian."""
    classes = np.asarray(evidence["logits"]).argmax(1)
    return np.stack(
        [
            class_distances(evidence[v], stats[f"{v}_means"], stats[f"{v}_roots"], classes)
            for v in VIEWS
        ],
        1,
    )


def ratios(evidence: dict, stats: dict) -> np.ndarray:
    """(N, 3) each view's distance over its limit for the predicted class (> 1: out)."""
    return over_limits(view_distances(evidence, stats), stats[LIMITS], evidence["logits"])


def over_limits(distances: np.ndarray, limits: np.ndarray, logits) -> np.ndarray:
    """(N, V) ``distances`` over the (K, V) ``limits`` of each image's predicted class; inf
    where the limit is 0 (a class never trained on)."""
    classes = np.asarray(logits).argmax(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = distances / limits[classes]
    return np.where(np.isnan(out), np.inf, out)


def fit(train: dict, train_labels, val: dict, keep: float, k: int) -> dict:
    """The rule's statistics: per view ``<view>_means``/``<view>_roots`` from ``train``, and
    ``limits`` (K, 3) from ``val`` (see the module doc)."""
    labels = np.asarray(train_labels)
    stats: dict[str, np.ndarray] = {}
    for v in VIEWS:
        stats[f"{v}_means"], stats[f"{v}_roots"] = fit_class_gaussians(train[v], labels, k)
    classes = np.asarray(val["logits"]).argmax(1)
    stats["limits"] = common_limits(view_distances(val, stats), classes, keep, k)
    stats["limits"][[c for c in range(k) if not (labels == c).any()]] = 0.0  # never trained on
    return stats


def common_limits(distances: np.ndarray, classes: np.ndarray, keep: float, k: int) -> np.ndarray:
    """(K, V) limits from validation ``distances`` (N, V) to the given ``classes`` (N,): per
    view and class, one common quantile ``q`` of the distances, ``q`` bisected so that ``keep``
    of the images stay within every view's limit (see the module doc)."""

    def limits(q: float) -> np.ndarray:
        # interpolated: a limit between two validation images, not on one (a float tie); a
        # class given to fewer than MIN_VAL_PER_CLASS images (or none) gets the pooled one
        out = np.tile(np.quantile(distances, q, axis=0), (k, 1))  # (K, V)
        for c in np.unique(classes):
            if (classes == c).sum() >= MIN_VAL_PER_CLASS:
                out[c] = np.quantile(distances[classes == c], q, axis=0)
        return out

    low, high = keep, 1.0
    for _ in range(30):  # bisect q: the largest share of val flagged that is <= 1 - keep
        q = (low + high) / 2
        flagged = (distances > limits(q)[classes]).any(1).mean()
        low, high = (q, high) if flagged > 1 - keep else (low, q)
    return limits(high)


def reason(row_ratios: np.ndarray, class_name: str, views=VIEWS) -> str:
    """One line saying why an image out of scope with these (3,) ratios of ``views`` is: its
    worst view."""
    worst = int(np.argmax(row_ratios))
    if not np.isfinite(row_ratios[worst]):
        return f"the model has no training images of {class_name}"
    what = REASONS[views[worst]]
    return (
        f"{what} are unlike the training images of {class_name} "
        f"({row_ratios[worst]:.1f}x the farthest distance kept)"
    )
