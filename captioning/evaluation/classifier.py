"""Classifier evaluation: score a classifier run on its own split or on any labelled images.

The report (JSON) has ``n``, ``accuracy``, ``errors`` (every misclassified file with the true
class, the predicted class and its probability), ``per_class`` (precision/recall/F1 from
scikit-learn), ``confusion`` (rows: true class, columns: predicted), plus what was evaluated.
The confusion matrix is also written as CSV and PNG.

A classifier of label columns (``run.json`` ``label_columns``) is scored on its dataset's own
split only: per column ``c`` the report has ``accuracy_<c>`` and ``unseen_<c>`` (images whose
value the head lacks: left out of that column's scores), ``accuracy`` (the columns' mean), and
under ``heads`` each column's full report as above; one confusion matrix per column.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix

from captioning.data.evaluation import load_labelled, run_split
from captioning.data.image_spec import run_image_spec, with_channel_axis
from captioning.errors import DataError
from captioning.models.classifier import load_model
from captioning.utils.runs import write_json


def predict_probabilities(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Softmax probabilities (N, classes) for uint8 images (N, S, S[, 3]), in batches."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(x):
        return tf.nn.softmax(model(x, training=False), axis=-1)

    out = [
        forward(with_channel_axis(tf.cast(images[i : i + batch_size], tf.float32))).numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


def classification_report_dict(labels, probs, paths, classes) -> dict:
    """The metrics every classifier report here carries (see the module doc)."""
    preds = probs.argmax(1) if len(probs) else np.zeros(0, np.int64)
    ids = list(range(len(classes)))
    errors = [
        {
            "path": paths[i],
            "true": classes[labels[i]],
            "pred": classes[preds[i]],
            "prob": round(float(probs[i, preds[i]]), 6),
        }
        for i in np.flatnonzero(preds != labels)
    ]
    per_class = classification_report(
        labels, preds, labels=ids, target_names=classes, output_dict=True, zero_division=0
    )
    per_class = {
        name: {
            k: (int(v) if k == "support" else round(float(v), 6))
            for k, v in per_class[name].items()
        }
        for name in classes
    }
    return {
        "n": len(labels),
        "accuracy": float((preds == labels).mean()) if len(labels) else float("nan"),
        "error_count": len(errors),
        "errors": sorted(errors, key=lambda e: -e["prob"]),
        "per_class": per_class,
        "classes": classes,
        "confusion": confusion_matrix(labels, preds, labels=ids).tolist(),
    }


def predict_heads(model, images: np.ndarray, batch_size: int = 512) -> dict[str, np.ndarray]:
    """A classifier of label columns: column -> softmax probabilities (N, classes) for uint8
    images (N, S, S[, 3]), in batches."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(x):
        return {k: tf.nn.softmax(v, axis=-1) for k, v in model(x, training=False).items()}

    parts = [
        forward(with_channel_axis(tf.cast(images[i : i + batch_size], tf.float32)))
        for i in range(0, len(images), batch_size)
    ]
    sizes = {k: v.shape[-1] for k, v in model.output.items()}
    return {
        k: np.concatenate([p[k].numpy() for p in parts]) if parts else np.zeros((0, n), np.float32)
        for k, n in sizes.items()
    }


def head_targets(values: pd.DataFrame, heads: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per label column, the class ids (N,) int32 of ``values`` (text, one column each) in its
    head's classes; -1 for a value the head lacks (unseen in training)."""
    targets = {}
    for column, classes in heads.items():
        index = {name: i for i, name in enumerate(classes)}
        targets[column] = np.array([index.get(v, -1) for v in values[column]], dtype=np.int32)
    return targets


def heads_report(
    targets: dict[str, np.ndarray], probs: dict[str, np.ndarray], paths, heads: dict
) -> dict:
    """The report of a classifier of label columns (see the module doc): each column scored
    on its known labels (``classification_report_dict``; ``accuracy`` null without any)."""
    report: dict = {"n": len(paths), "heads": {}}
    scored = []
    for column, classes in heads.items():
        labels, known = targets[column], targets[column] >= 0
        rows = np.flatnonzero(known)
        if len(rows):
            part = classification_report_dict(
                labels[rows], probs[column][rows], [paths[i] for i in rows], classes
            )
            scored.append(part["accuracy"])
        else:
            part = {"n": 0, "accuracy": None, "classes": classes}
        part["unseen"] = int((~known).sum())
        report["heads"][column] = part
        report[f"accuracy_{column}"] = part["accuracy"]
        report[f"unseen_{column}"] = part["unseen"]
    report["accuracy"] = float(np.mean(scored)) if scored else None
    return report


def head_summary(report: dict) -> dict:
    """``heads_report`` without the per-column details: ``n``, ``accuracy`` and each
    column's ``accuracy_<c>`` and ``unseen_<c>`` (what ``metrics.json`` keeps)."""
    return {k: v for k, v in report.items() if k != "heads"}


def write_confusion(report: dict, stem: Path) -> None:
    """``<stem>.csv`` and ``<stem>.png``: the confusion matrix, true classes as rows."""
    classes = report["classes"]
    frame = pd.DataFrame(report["confusion"], index=classes, columns=classes)
    frame.index.name = "true \\ predicted"
    frame.to_csv(stem.with_suffix(".csv"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 2, 1.1 * len(classes) + 1))
    matrix = np.array(report["confusion"])
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if value > matrix.max() / 2 else "black",
        )
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {report['accuracy']:.4%} (n={report['n']})")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)
    plt.close(fig)


def evaluate_classifier_run(
    run_dir: Path, run: dict, data: str | None = None, split: str = "test", out: Path | None = None
) -> dict:
    """Evaluate the best model of the classifier run ``run_dir`` (``run``: its ``run.json``) on
    ``data`` (a labelled folder or archive) or its own ``split``; write the report to ``out``
    if given, the confusion matrix beside it (else in ``run_dir/eval``). A classifier of label
    columns: ``evaluate_heads_run``."""
    if run.get("label_columns"):
        return evaluate_heads_run(run_dir, run, data, split, out)
    classes = run["classes"]
    model = load_model(run_dir / "best_model.keras")
    with tempfile.TemporaryDirectory(prefix="captioning-eval-") as tmp:
        if data:
            source = Path(data).expanduser().resolve()
            spec = run_image_spec(model, run, run_dir)  # the run's size, channels and fit
            images, labels, paths, skipped = load_labelled(source, classes, Path(tmp), spec)
            evaluated = {"data": str(source), "split": None, "skipped": skipped}
            tag = source.name.split(".")[0] or "data"
        else:
            _, part, evaluated = run_split(run, split)
            images, labels, paths = part.images, part.labels, part.paths
            tag = split
        if len(labels) == 0:
            raise DataError(f"{evaluated['data']}: no readable labelled images to evaluate")
        probs = predict_probabilities(model, images)
    report = {
        **classification_report_dict(labels, probs, paths, classes),
        **evaluated,
        "run_dir": str(run_dir.resolve()),
        "model": "best_model.keras",
    }
    artifacts = out.parent if out else run_dir / "eval"
    artifacts.mkdir(parents=True, exist_ok=True)
    write_confusion(report, artifacts / f"confusion_{tag}")
    if out:
        write_json(out, report)
    return report


def evaluate_heads_run(
    run_dir: Path, run: dict, data: str | None = None, split: str = "test", out: Path | None = None
) -> dict:
    """``evaluate_classifier_run`` for a classifier of label columns: on its own ``split``
    (the columns are its dataset's), one confusion matrix per column
    (``confusion_<split>_<column>``)."""
    from captioning.data.sources import caption_source

    if data:
        raise DataError(
            f"{run_dir}: a classifier of label columns is evaluated on its own dataset's "
            "splits (--split), not on a class folder (--data)"
        )
    heads = run["label_columns"]
    dataset, part, evaluated = run_split(run, split)
    if len(part) == 0:
        raise DataError(f"{evaluated['data']}: no images in the {split} split to evaluate")
    values = caption_source(dataset).label_values(dataset).iloc[part.rows]
    probs = predict_heads(load_model(run_dir / "best_model.keras"), part.images)
    report = {
        **heads_report(head_targets(values, heads), probs, part.paths, heads),
        **evaluated,
        "run_dir": str(run_dir.resolve()),
        "model": "best_model.keras",
    }
    artifacts = out.parent if out else run_dir / "eval"
    artifacts.mkdir(parents=True, exist_ok=True)
    for column, scores in report["heads"].items():
        if scores["accuracy"] is not None:
            safe = re.sub(r"[^0-9A-Za-z_.-]", "_", column)
            write_confusion(scores, artifacts / f"confusion_{split}_{safe}")
    if out:
        write_json(out, report)
    return report
