"""Leave one class out: train the classifier on 5 MedNIST classes, treat the 6th as out of
scope, for each of the 6 classes; AUROC and FPR at 95% TPR of every out-of-scope method.

    python experiments/scope_loco.py DATA_ROOT WORK_DIR [--epochs 1] [--out JSON] [--set k=v ...]

Each classifier is the default recipe with ``data.exclude_classes`` = the held-out class and
``--epochs`` epochs (a short schedule). Its scope is fitted as a run's is (statistics on the 5
classes of the training split, threshold keeping 99.5% of their validation images); it is scored
on the whole test split: the 5 kept classes are in distribution, the held-out one is not.
Runs are sequential and resume if WORK_DIR already holds them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scope_common import detection, record

from captioning.commands.train_classifier import train_classifier
from captioning.data.dataset import PreparedData
from captioning.models.classifier import load_model
from captioning.scope import METHODS, RULES, encoder_outputs, fit_scope


def one_class(data: PreparedData, held: str, work: Path, epochs: int, extra: list) -> dict:
    """Train without ``held``; score the test split."""
    run_dir = work / f"without_{held}"
    tic = time.perf_counter()
    train_classifier(
        overrides=[f'data.exclude_classes=["{held}"]', f"train.epochs={epochs}", *extra],
        data_root=data.root,
        run_dir=run_dir,
        command=f"scope_loco {held}",
    )
    seconds = time.perf_counter() - tic
    model = load_model(run_dir / "best_model.keras")
    train, val = (data.split(s, exclude=[held]) for s in ("train", "val"))
    test = data.split("test")
    evidence = encoder_outputs(model, test.images)
    scope = fit_scope(
        encoder_outputs(model, train.images),
        train.labels,
        encoder_outputs(model, val.images),
        rules=tuple(RULES),  # every method's score, to compare them
    )
    test_logits = evidence["logits"]
    out = test.labels == data.classes.index(held)
    kept_accuracy = float(np.mean(test_logits[~out].argmax(1) == test.labels[~out]))
    result = {
        "train_seconds": round(seconds, 1),
        "kept_test_accuracy": round(kept_accuracy, 6),
        "n_in": int((~out).sum()),
        "n_out": int(out.sum()),
    }
    for method in METHODS:
        scores = scope.scores(evidence, method)
        result[method] = detection(scores[~out], scores[out], scope.thresholds[method])
    print(held, result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root")
    parser.add_argument("work_dir")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out")
    parser.add_argument("--set", action="append", default=[], dest="extra")
    args = parser.parse_args()
    data = PreparedData(args.data_root)
    work = Path(args.work_dir)
    per_class = {c: one_class(data, c, work, args.epochs, args.extra) for c in data.classes}
    summary = {
        method: {
            stat: round(float(np.mean([r[method][stat] for r in per_class.values()])), 6)
            for stat in ("auroc", "fpr_at_95_tpr", "flagged_out", "flagged_in")
        }
        for method in METHODS
    }
    print("mean over held-out classes:", summary)
    record(
        "scope_loco",
        {
            "protocol": {
                "classifier": "default recipe, data.exclude_classes = held-out class",
                "epochs": args.epochs,
                "overrides": args.extra,
                "scope": "statistics on train (5 classes), threshold keeps 99.5% of val",
                "scored_on": "test split: 5 kept classes in, held-out class out",
            },
            "mean": summary,
            "per_held_out_class": per_class,
        },
        {"root": str(data.root), "manifest_sha256": data.manifest_sha256},
        args.out,
    )


if __name__ == "__main__":
    main()
