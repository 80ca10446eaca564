"""``captioning evaluate``: score a classifier run on its own split or on any labelled images.

The report (JSON) has ``n``, ``accuracy``, ``errors`` (every misclassified file with the true
class, the predicted class and its probability), ``per_class`` (precision/recall/F1 from
scikit-learn), ``confusion`` (rows: true class, columns: predicted), plus what was evaluated.
The confusion matrix is also written as CSV and PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from captioning.commands.options import add_beam_option, add_run_option, require_run
from captioning.errors import DataError
from captioning.utils.runs import read_json, write_json


def predict_probabilities(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Softmax probabilities (N, classes) for uint8 images (N, 64, 64), in batches."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(x):
        return tf.nn.softmax(model(x, training=False), axis=-1)

    out = [
        forward(tf.cast(images[i : i + batch_size], tf.float32)[..., None]).numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


def classification_report_dict(labels, probs, paths, classes) -> dict:
    """The metrics every classifier report here carries (see the module doc)."""
    from sklearn.metrics import classification_report, confusion_matrix

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


def write_confusion(report: dict, stem: Path) -> None:
    """``<stem>.csv`` and ``<stem>.png``: the confusion matrix, true classes as rows."""
    import pandas as pd

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


def evaluate_run(
    run_dir: Path,
    data: str | None = None,
    split: str = "test",
    out: Path | None = None,
    beam: int | None = None,
) -> dict:
    """Evaluate the best model of ``run_dir``; write the report to ``out`` if given.
    Captioner runs (``run.json`` kind ``captioner``) get the caption report of
    ``captioning.evaluation.captioner``; ``beam`` applies to them only."""
    from captioning.data.evaluation import load_labelled, run_split
    from captioning.evaluation.captioner import evaluate_captioner_run
    from captioning.models.classifier import load_model

    run_dir = Path(run_dir)
    run = read_json(run_dir / "run.json")
    if run.get("kind") == "captioner":
        return evaluate_captioner_run(run_dir, data=data, split=split, out=out, beam=beam)
    classes = run["classes"]
    model = load_model(run_dir / "best_model.keras")
    with tempfile.TemporaryDirectory(prefix="captioning-eval-") as tmp:
        if data:
            source = Path(data).expanduser().resolve()
            images, labels, paths, skipped = load_labelled(source, classes, Path(tmp))
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


# ---- the command: ``captioning evaluate --run RUN`` (``evaluate RUN`` still works, with a note)


def add_parser(commands) -> None:
    parser = commands.add_parser("evaluate", help="score a run on its test split or on new images")
    add_run_option(parser, "a run folder written by 'captioning train'", positional=True)
    parser.add_argument(
        "--data",
        help="labelled folder or .tar.gz in the MedNIST layout "
        "(default: the run's own prepared dataset)",
    )
    parser.add_argument(
        "--split", default="test", help="split of the run's dataset (default: test)"
    )
    parser.add_argument("--out", help="write the JSON report here (default: stdout)")
    add_beam_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = evaluate_run(
        require_run(args, "evaluate"),
        data=args.data,
        split=args.split,
        out=Path(args.out) if args.out else None,
        beam=args.beam,
    )
    if not args.out:
        json.dump(report, sys.stdout, indent=2)
        print()
    return 0
