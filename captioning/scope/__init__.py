"""Out-of-scope scores from the encoder: is an image like the images the model was trained on?

Every score is higher for an image further out, and is computed from what any encoder of
``captioning.models`` gives, the pooled features (N, C) and the classification head's logits
(N, K), so it works for whatever architecture a run uses, and the default reads more:

- ``neighbours``: per predicted class, the nearest training image on three views of the image
  (encoder features, mid-level features, pixel statistics; ``captioning.scope.neighbours``);
  the default (``auto``) wherever every class has enough
  training images for the Gaussian rule (``choose_method``), else ``mahalanobis``;
- ``gaussian``: per predicted class, Gaussians of the three views (``captioning.scope.gaussian``;
  the default before ``neighbours``, which halves its real CT and MR images kept with a class
  they cannot be; experiments/scope.md);
- ``msp``: 1 - the maximum softmax probability (Hendrycks & Gimpel, 2017);
- ``energy``: -logsumexp of the logits (Liu et al., 2020);
- ``mahalanobis``: the squared Mahalanobis distance of the pooled features to the nearest class
  mean, with one covariance shared by the classes (Lee et al., 2018). Class means and the
  covariance come from the TRAINING split; the covariance is the Ledoit-Wolf shrinkage estimate,
  which stays well conditioned when features are nearly collinear.

The threshold is fitted on the VALIDATION split only: the ``keep`` quantile (default 99.7%) of
the validation images' scores, so that share of in-distribution images stays in scope (for
``gaussian`` and ``neighbours``: their per-class limits keep that share, their threshold is 1).
99.7% rather than 99.5%: at the 99.5% quantile the test split's out-of-scope rate is 0.5% only on
average (0.53-0.66% in three seeds), above the 0.5% it should stay under half the time;
experiments/scope.md. A run stores its scope in ``scope.json`` (method, thresholds of every
method it can score, what was fitted on what) and ``scope.npz`` (class means and precision
matrix, and the arrays of its own per-class rule: the ``gaussian`` rule's means, whitening
roots and limits, or the ``neighbours`` rule's projections, banks and limits; runs saved before
``fit_scope``'s ``rules`` hold both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from captioning.errors import RunError
from captioning.scope import gaussian as scope_gaussian
from captioning.scope import neighbours as scope_neighbours
from captioning.utils.atomic import atomic_path

METHODS = ("msp", "energy", "mahalanobis", "gaussian", "neighbours")
# the per-class rules: a module with ``fit(train, labels, val, keep, k)`` -> its arrays,
# ``ratios(evidence, arrays)`` (N, 3), its ``VIEWS`` and the key of its ``LIMITS`` among the arrays
RULES = {"gaussian": scope_gaussian, "neighbours": scope_neighbours}
AUTO = "auto"  # neighbours where the data supports it, else mahalanobis (``choose_method``)
METHOD_CHOICES = (AUTO, *METHODS)
DEFAULT_METHOD = AUTO
# the per-class rules want at least this many training images per class for each dimension of
# the widest view (2 x 320 = 640 for the default encoder): with fewer, mahalanobis's one
# covariance shared by the classes separated a held-out class and gaussian did not
# (tests/test_scope_real.py); neighbours, which replaced gaussian, keeps the same switch
IMAGES_PER_DIMENSION = 2
DEFAULT_KEEP = 0.997
SCOPE_FILE, STATS_FILE = "scope.json", "scope.npz"


def encoder_outputs(model, images: np.ndarray, batch: int = 512) -> dict[str, np.ndarray]:
    """The scope's evidence of uint8 images (N, S, S[, 3]) from a classifier or captioner model
    (sub-layers ``encoder`` and ``logits``): ``pooled`` (N, C), ``logits`` (N, K) and the
    views of ``captioning.scope.evidence``."""
    from captioning.scope.evidence import EvidenceReader

    return EvidenceReader(model)(images, batch)


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(1)
    return top + np.log(np.exp(logits - top[:, None]).sum(1))


def msp_score(logits: np.ndarray) -> np.ndarray:
    """(N,) 1 - max softmax probability."""
    logits = np.asarray(logits, np.float64)
    return 1.0 - np.exp(logits.max(1) - _logsumexp(logits))


def energy_score(logits: np.ndarray) -> np.ndarray:
    """(N,) -logsumexp(logits): low energy = a confident, familiar image."""
    return -_logsumexp(np.asarray(logits, np.float64))


def class_statistics(pooled: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means (K', C) of the classes present in ``labels`` and the Ledoit-Wolf precision
    (C, C) of the features centred on their class means."""
    from sklearn.covariance import LedoitWolf

    pooled = np.asarray(pooled, np.float64)
    present = np.unique(labels)
    means = np.stack([pooled[labels == k].mean(0) for k in present])  # (K', C)
    centred = pooled - means[np.searchsorted(present, labels)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    return means, precision


def mahalanobis_score(pooled: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """(N,) squared Mahalanobis distance to the nearest class mean."""
    # whiten once: d^2 = |(x - mu) L|^2 with precision = L L^T, so each class is one subtraction
    root = np.linalg.cholesky((precision + precision.T) / 2)  # (C, C)
    z = np.asarray(pooled, np.float64) @ root  # (N, C)
    centres = means @ root  # (K', C)
    d2 = (z**2).sum(1)[:, None] - 2 * z @ centres.T + (centres**2).sum(1)[None, :]  # (N, K')
    return np.maximum(d2.min(1), 0.0)


@dataclass
class Scope:
    """A fitted out-of-scope rule: ``score`` for any image, ``in_scope`` = score <= threshold."""

    method: str
    thresholds: dict[str, float]  # method -> its threshold on the validation split
    keep: float
    means: np.ndarray  # (K', C) class means on the training split
    precision: np.ndarray  # (C, C) shared precision on the training split
    info: dict = field(default_factory=dict)  # what it was fitted on (sizes, splits)
    arrays: dict = field(default_factory=dict)  # the per-class rules' arrays (``RULES``)

    @property
    def threshold(self) -> float:
        return self.thresholds[self.method]

    def scores(self, evidence: dict, method: str | None = None) -> np.ndarray:
        """(N,) out-of-scope score of ``method`` (default: the run's) from ``evidence``
        (``encoder_outputs``; the older methods read only ``pooled`` and ``logits``)."""
        method = method or self.method
        if method == "msp":
            return msp_score(evidence["logits"])
        if method == "energy":
            return energy_score(evidence["logits"])
        if method == "mahalanobis":
            return mahalanobis_score(evidence["pooled"], self.means, self.precision)
        if method not in METHODS:
            raise RunError(f"unknown out-of-scope method '{method}' (known: {', '.join(METHODS)})")
        if not self.has_rule(method):
            raise RunError(
                f"this scope holds no arrays of the '{method}' rule (a run keeps only its own "
                f"rule's, here '{self.method}'; scorable: {', '.join(self.methods)})"
            )
        return RULES[method].ratios(evidence, self.arrays).max(1)

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods this scope can score: the logit and Mahalanobis ones, and each per-class
        rule whose arrays it holds."""
        return tuple(m for m in METHODS if m not in RULES or self.has_rule(m))

    def has_rule(self, method: str) -> bool:
        """Whether this scope holds the arrays of the per-class rule ``method`` (a run saved
        before that rule existed does not)."""
        return RULES[method].LIMITS in self.arrays

    def in_scope(self, scores: np.ndarray) -> np.ndarray:
        """(N,) bool: at or under the threshold."""
        return np.asarray(scores) <= self.threshold

    def reasons(self, evidence: dict, classes: list[str], scores=None) -> list[str | None]:
        """Per image, one line saying why it is out of scope (None when in scope); ``scores``:
        this scope's ``scores(evidence)`` when the caller has them already."""
        if self.method not in RULES:
            kept = self.in_scope(self.scores(evidence) if scores is None else scores)
            line = f"its {self.method} score is above the run's limit"
            return [None if k else line for k in kept]
        rule = RULES[self.method]
        table = rule.ratios(evidence, self.arrays)  # (N, 3)
        kept = self.in_scope(table.max(1) if scores is None else scores)
        given = np.asarray(evidence["logits"]).argmax(1)
        return [
            None if k else scope_gaussian.reason(row, classes[c], rule.VIEWS)
            for k, row, c in zip(kept, table, given, strict=True)
        ]

    def save(self, run_dir: Path) -> None:
        """``scope.json`` and ``scope.npz`` in ``run_dir`` (each written atomically)."""
        run_dir = Path(run_dir)
        with atomic_path(run_dir / STATS_FILE) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, means=self.means, precision=self.precision, **self.arrays)
        body = {
            "method": self.method,
            "threshold": self.threshold,
            "thresholds": self.thresholds,
            "keep": self.keep,
            "statistics": STATS_FILE,
            **self.info,
        }
        with atomic_path(run_dir / SCOPE_FILE) as tmp:
            Path(tmp).write_text(json.dumps(body, indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> Scope | None:
        """The run's scope, or None for a run made before scopes existed."""
        run_dir = Path(run_dir)
        if not (run_dir / SCOPE_FILE).is_file():
            return None
        try:
            body = json.loads((run_dir / SCOPE_FILE).read_text())
            stats = dict(np.load(run_dir / body.get("statistics", STATS_FILE)))
            means, precision = stats.pop("means"), stats.pop("precision")
        except (OSError, ValueError, KeyError) as err:
            raise RunError(f"{run_dir / SCOPE_FILE}: unreadable scope ({err})") from None
        info = {k: v for k, v in body.items() if k not in ("threshold", "statistics")}
        return cls(
            method=info.pop("method"),
            thresholds={k: float(v) for k, v in info.pop("thresholds").items()},
            keep=float(info.pop("keep")),
            means=means,
            precision=precision,
            info=info,
            arrays=stats,  # without a rule's arrays for a run made before that rule
        )


def choose_method(train: dict, labels: np.ndarray) -> str:
    """``neighbours`` when every trained class has at least ``IMAGES_PER_DIMENSION`` training
    images per dimension of the widest view, else ``mahalanobis`` (one covariance shared by the
    classes, on the pooled vector: what a small data set can estimate)."""
    from captioning.scope.evidence import VIEWS

    widest = max(np.asarray(train[v]).shape[1] for v in VIEWS)
    smallest = np.bincount(labels)[np.bincount(labels) > 0].min()
    return "neighbours" if smallest >= IMAGES_PER_DIMENSION * widest else "mahalanobis"


def fit_scope(
    train: dict,
    train_labels,
    val: dict,
    method: str = DEFAULT_METHOD,
    keep: float = DEFAULT_KEEP,
    rules: tuple[str, ...] = (),
) -> Scope:
    """Statistics from the training images' evidence (``encoder_outputs``), then each method's
    threshold from the validation images': the ``keep`` quantile of its scores (so ``keep`` of
    them stay in scope); ``gaussian`` and ``neighbours`` keep ``keep`` with their per-class
    limits, threshold 1.
    ``method`` ``auto``: ``choose_method``. Of the per-class rules (``RULES``) only the chosen
    method's arrays are fitted, and those in ``rules`` (experiments comparing methods): a run
    carries no arrays it does not read (2.9 MB of Gaussians beside MedNIST's neighbours)."""
    if method not in METHOD_CHOICES:
        known = ", ".join(METHOD_CHOICES)
        raise RunError(f"unknown out-of-scope method '{method}' (known: {known})")
    if not 0 < keep <= 1:
        raise RunError(f"keep must be in (0, 1], got {keep}")
    labels = np.asarray(train_labels)
    chosen_by = "auto" if method == AUTO else "given"
    method = choose_method(train, labels) if method == AUTO else method
    means, precision = class_statistics(train["pooled"], labels)
    k = np.asarray(val["logits"]).shape[1]
    arrays = {}
    for name in RULES:
        if name == method or name in rules:
            arrays |= RULES[name].fit(train, labels, val, keep, k)
    scope = Scope(method, {}, keep, means, precision, arrays=arrays)
    for name in scope.methods:
        if name in RULES:
            scope.thresholds[name] = 1.0
            continue
        val_scores = scope.scores(val, name)
        scope.thresholds[name] = float(np.quantile(val_scores, keep, method="higher"))
    scope.info = {"statistics_from": "train", "threshold_from": "val", "n_val": len(val["logits"])}
    scope.info["n_train"] = len(labels)
    scope.info["method_chosen"] = chosen_by
    return scope
