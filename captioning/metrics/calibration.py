"""Calibration of predicted probabilities: expected calibration error, temperature scaling of
grouped logits, and the reliability diagram.

Grouped logits are what both confidences here are made of. A prediction scores W candidate
words (or classes) with logits (N, W) and each candidate belongs to one of K values (``groups``
(N, W), ints in 0..K-1; a padded slot has logit ``-inf``). The probability of a value is the
softmax mass of its candidates: a class is one candidate of its own; a finding is every
synonym of its value among the words its field can say at that step. Temperature scaling
divides every logit by one ``T`` fitted on held-out data, which leaves the argmax (so the
caption) unchanged and only moves the stated probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

ECE_BINS = 15


def expected_calibration_error(confidence, correct, bins: int = ECE_BINS) -> float | None:
    """ECE with ``bins`` equal-width bins over [0, 1]: sum over bins of (share of predictions
    in the bin) x |accuracy - mean confidence| in the bin. None when there is nothing to score.
    A confidence of exactly 1 falls in the last bin, 0 in the first."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, np.float64)
    if len(confidence) == 0:
        return None
    index = np.clip((confidence * bins).astype(int), 0, bins - 1)  # (N,) bin of each
    conf_sum = np.bincount(index, confidence, minlength=bins)
    right_sum = np.bincount(index, correct, minlength=bins)
    return float(np.abs(right_sum - conf_sum).sum() / len(confidence))


def reliability_bins(confidence, correct, bins: int = ECE_BINS) -> dict:
    """Per bin: count, mean confidence and accuracy (NaN for an empty bin)."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, np.float64)
    index = np.clip((confidence * bins).astype(int), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence, minlength=bins) / count
        acc = np.bincount(index, correct, minlength=bins) / count
    return {"count": count, "confidence": conf, "accuracy": acc}


def group_probs(logits, groups, temperature: float = 1.0, k: int | None = None) -> np.ndarray:
    """(N, K) probability of each value: the softmax of ``logits / temperature`` (N, W) summed
    over the candidates of each value (``groups`` (N, W)); ``-inf`` slots count for nothing."""
    logits = np.asarray(logits, np.float64) / float(temperature)
    groups = np.asarray(groups, np.int64)
    k = int(groups.max()) + 1 if k is None else k
    shifted = logits - logits.max(1, keepdims=True)  # stable softmax
    weights = np.exp(shifted)  # (N, W); exp(-inf) = 0
    weights /= weights.sum(1, keepdims=True)
    out = np.zeros((len(logits), k))
    np.add.at(out, (np.arange(len(logits))[:, None].repeat(groups.shape[1], 1), groups), weights)
    return out


def fit_temperature(logits, groups, labels, k: int | None = None) -> float:
    """The temperature T in [0.05, 20] minimising the negative log-likelihood of ``labels``
    (N,) under ``group_probs(logits, groups, T)``: T > 1 softens an overconfident model.
    1.0 when there is nothing to fit on."""
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        return 1.0
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        p = group_probs(logits, groups, np.exp(log_t), k)[rows, labels]
        return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())

    found = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


def class_groups(n: int, k: int) -> np.ndarray:
    """Groups for plain classification logits (N, K): candidate j is value j."""
    return np.tile(np.arange(k), (n, 1))


def write_reliability_png(curves: dict, path: Path, bins: int = ECE_BINS) -> None:
    """One reliability diagram per entry of ``curves`` (name -> (confidence, correct)):
    accuracy against mean confidence per bin, the diagonal, and the ECE in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(curves)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        confidence, correct = curves[name]
        table = reliability_bins(confidence, correct, bins)
        used = table["count"] > 0
        edges = np.linspace(0, 1, bins + 1)
        centres = (edges[:-1] + edges[1:]) / 2
        ax.bar(centres[used], table["accuracy"][used], width=1 / bins, alpha=0.6, edgecolor="k")
        ax.plot([0, 1], [0, 1], "r--", lw=1)
        ax.plot(table["confidence"][used], table["accuracy"][used], "k.", ms=4)
        ece = expected_calibration_error(confidence, correct, bins)
        title = f"{name}: ECE {ece:.2%}" if ece is not None else f"{name}: no data"
        ax.set_title(f"{title} (n={len(confidence)})", fontsize=9)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
