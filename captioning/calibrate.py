"""``captioning calibrate --run RUN``: fit a run's out-of-scope rule and its confidence
temperatures, and store them in the run folder.

Training a captioner ends with this step; the command brings a run made before it existed up to
date (or refits with another method). What is fitted on what:

- ``scope.json`` / ``scope.npz`` (``captioning.scope``): per-class Gaussians of the TRAINING
  split's evidence (and the older methods' class means and shared covariance); the limits of
  each method at the ``keep`` quantile of the VALIDATION split.
- ``calibration.json``: temperatures fitted on the VALIDATION split by negative log-likelihood:
  ``class`` on the head's logits against the labels; for a captioner each finding on the
  decoder's grouped logits at the finding's word (``captioning.confidence``) against the
  finding measured on the image, over the diagnostic images whose caption states it. It also
  records the validation ECE before and after scaling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from captioning.captions.findings import FIELD_VALUES, QUALITY_VALUES
from captioning.confidence import CALIBRATION_FILE
from captioning.data.evaluation import run_split
from captioning.data.sources import caption_source
from captioning.errors import DataError
from captioning.metrics.calibration import (
    class_groups,
    expected_calibration_error,
    fit_temperature,
    group_probs,
)
from captioning.scope import (
    DEFAULT_KEEP,
    DEFAULT_METHOD,
    METHOD_CHOICES,
    METHODS,
    fit_scope,
)
from captioning.scope.evidence import EvidenceReader

# the choices of ``captioning calibrate``: defined in ``captioning.scope`` (light to import, so the
# CLI reads them from there), named here because this is the module the command calls
__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_METHOD",
    "METHODS",
    "METHOD_CHOICES",
    "calibrate_run",
    "labels_apply",
]
from captioning.utils.runs import read_json, write_json


def _splits(run: dict, config: dict):
    """The run's dataset and its train and val splits as training read them."""
    dataset, _, _ = run_split(run, "val")
    data = config.get("data", {})
    limit, exclude = data.get("per_class_limit"), data.get("exclude_classes", [])
    return dataset, dataset.split("train", limit, exclude), dataset.split("val", limit, exclude)


def labels_apply(dataset, run: dict) -> bool:
    """Whether the scope check and calibration apply to a run on ``dataset``: its images have
    class labels, and they are the model's classes (a caption file without labels, or with
    other classes than the encoder's, has none to fit them on)."""
    return caption_source(dataset).has_labels and dataset.classes == run["classes"]


def _ece_pair(probs_before, probs_after, chosen, truth) -> dict:
    """Validation ECE of the chosen value's probability, unscaled and scaled."""
    rows = np.arange(len(chosen))
    right = chosen == truth
    before = expected_calibration_error(probs_before[rows, chosen], right)
    after = expected_calibration_error(probs_after[rows, chosen], right)
    return {
        k: None if v is None else round(v, 6) for k, v in (("before", before), ("after", after))
    }


def _fit_scope(model, train, val, method: str, keep: float):
    """The run's scope, fitted on its train and val splits' evidence, and the val logits."""
    read = EvidenceReader(model)  # one traced function for both splits
    val_evidence, train_evidence = read(val.images), read(train.images)
    scope = fit_scope(train_evidence, train.labels, val_evidence, method, keep)
    return scope, val_evidence["logits"]


def calibrate_run(
    run_dir: str | Path, method: str = DEFAULT_METHOD, keep: float = DEFAULT_KEEP
) -> dict:
    """Fit and write the scope and the temperatures of ``run_dir`` (a classifier or captioner
    run); returns what ``calibration.json`` holds plus the scope's thresholds."""
    run_dir = Path(run_dir)
    run, config = read_json(run_dir / "run.json"), read_json(run_dir / "config.json")
    dataset, train, val = _splits(run, config)
    if not labels_apply(dataset, run):
        raise DataError(
            f"{run_dir}: its dataset's captions have no class labels of the model's classes; "
            "the scope check and calibration do not apply (see docs/datasets.md)"
        )
    captioner = None
    if run.get("kind") == "captioner":
        from captioning.inference import Captioner

        captioner = Captioner(run_dir)
        model = captioner.model
    else:
        from captioning.models.classifier import load_model

        model = load_model(run_dir / "best_model.keras")
    scope, val_logits = _fit_scope(model, train, val, method, keep)
    scope.save(run_dir)

    k = val_logits.shape[1]
    groups = class_groups(len(val_logits), k)
    temperatures = {"class": fit_temperature(val_logits, groups, val.labels, k)}
    before = group_probs(val_logits, groups, 1.0, k)
    after = group_probs(val_logits, groups, temperatures["class"], k)
    ece = {"class": _ece_pair(before, after, val_logits.argmax(1), val.labels)}
    if captioner is not None and captioner.tset is not None and caption_source(dataset).has_truth:
        from captioning.data.caption_data import caption_frame

        truth = caption_frame(dataset, captioner.templates).iloc[val.rows].reset_index(drop=True)
        result = captioner.caption(val.images)
        diagnostic = (truth["quality"] == QUALITY_VALUES[0]).to_numpy()
        for name, f in result.field_logits.items():
            labels = np.array([FIELD_VALUES[name].index(v) for v in truth[name]])
            use = diagnostic & (f.chosen >= 0)
            z, g = f.logits[use], f.groups[use]
            k = len(FIELD_VALUES[name])
            temperatures[name] = fit_temperature(z, g, labels[use], k)
            ece[name] = _ece_pair(
                group_probs(z, g, 1.0, k),
                group_probs(z, g, temperatures[name], k),
                f.chosen[use],
                labels[use],
            )
    body = {
        "temperatures": {k: round(v, 6) for k, v in temperatures.items()},
        "fitted_on": "val",
        "n_val": len(val),
        "val_ece": ece,
    }
    write_json(run_dir / CALIBRATION_FILE, body)
    return {**body, "scope": {"method": scope.method, "thresholds": scope.thresholds}}
