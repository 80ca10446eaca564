"""Training the CNN encoder as a classifier: the task the training loop runs, and the steps of a
classifier run (``captioning.commands.train_classifier`` calls them in order).

The run folder: ``config.json`` (the resolved config), ``run.json`` (what was trained on, where
and with what code), the loop's logs, checkpoints and ``best_model.keras``, then
``metrics.json``. In a multi-worker run only the chief writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from captioning.config import ClassifierConfig
from captioning.data.dataset import PreparedData, Split
from captioning.data.pipeline import make_dataset_fn, steps_per_epoch
from captioning.errors import DataError
from captioning.models.classifier import build_classifier
from captioning.training.loop import FitResult, fit, make_optimizer
from captioning.training.strategy import strategy_name
from captioning.utils.paths import default_data_root
from captioning.utils.provenance import data_provenance, git_state, machine
from captioning.utils.runs import package_versions, peak_rss_mib, write_json


class ClassificationTask:
    """Softmax cross-entropy on logits; statistics: summed loss, correct predictions, count."""

    monitor = "accuracy"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def loss_and_stats(self, model, batch, training: bool):
        pixels, labels = batch
        logits = model(pixels, training=training)  # (b, classes)
        per_example = keras.losses.categorical_crossentropy(
            tf.one_hot(labels, tf.shape(logits)[-1]),
            logits,
            from_logits=True,
            label_smoothing=self.label_smoothing,
        )  # (b,)
        correct = tf.cast(
            tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels), tf.float32
        )
        stats = {
            "loss": tf.reduce_sum(per_example),
            "correct": tf.reduce_sum(correct),
            "count": tf.cast(tf.size(labels), tf.float32),
        }
        return per_example, stats

    def summarize(self, sums):
        count = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums.get("loss", 0.0) / count, "accuracy": sums.get("correct", 0.0) / count}


@dataclass
class ClassifierData:
    """The prepared dataset a classifier trains on, and its train and val splits."""

    root: Path
    data: PreparedData
    train: Split
    val: Split


def load_classifier_data(config: ClassifierConfig, data_root=None) -> ClassifierData:
    """The dataset at ``data_root`` (else the config's, else the default root), which must
    have class labels; records the resolved root in ``config.data.root``."""
    root = Path(data_root or config.data.root or default_data_root()).expanduser().resolve()
    config.data.root = str(root)
    data = PreparedData(root)
    if not data.classes:  # a caption file without a label column (see docs/datasets.md)
        raise DataError(
            f"{root}: the dataset's captions have no class labels; a classifier needs them "
            "(a 'label' column in the caption file)"
        )
    train, val = (
        data.split(s, config.data.per_class_limit, config.data.exclude_classes)
        for s in ("train", "val")
    )
    return ClassifierData(root, data, train, val)


def write_classifier_run(
    run_dir: Path,
    config: ClassifierConfig,
    resolved: dict,
    found: ClassifierData,
    strategy,
    *,
    command: str,
    resumed: bool,
) -> None:
    """``config.json`` (the resolved config) and ``run.json`` (what the run is and where from)."""
    write_json(run_dir / "config.json", resolved)
    write_json(
        run_dir / "run.json",
        {
            "command": command,
            "seed": config.train.seed,
            "kind": "classifier",
            "manifest_sha256": found.data.manifest_sha256,
            "data_root": str(found.root),
            "classes": found.data.classes,
            "split_sizes": {"train": len(found.train), "val": len(found.val)},
            "strategy": strategy_name(strategy),
            "replicas": strategy.num_replicas_in_sync,
            "resumed": resumed,
            "versions": package_versions(),
            "code": git_state(),
            "data": data_provenance(found.data.card),
            "machine": machine(),
        },
    )


def fit_classifier(
    config: ClassifierConfig, found: ClassifierData, strategy, run_dir: Path
) -> tuple[FitResult, dict]:
    """Build the classifier under ``strategy`` and train it with the project's loop; returns
    the fit's result and the facts ``metrics.json`` records beside it."""
    train, val, batch = found.train, found.val, config.train.batch_size
    steps = steps_per_epoch(len(train), batch, config.train.max_steps_per_epoch)
    train_fn = make_dataset_fn(
        train.images,
        train.labels,
        batch,
        training=True,
        seed=config.train.seed,
        augment=config.augment,
    )
    val_fn = make_dataset_fn(val.images, val.labels, batch, training=False)
    with strategy.scope():
        model = build_classifier(config.model, len(found.data.classes))
        optimizer = make_optimizer(config.train, steps * config.train.epochs)
    result = fit(
        task=ClassificationTask(config.train.label_smoothing),
        model=model,
        optimizer=optimizer,
        strategy=strategy,
        train_fn=train_fn,
        val_fn=val_fn,
        steps=steps,
        config=config.train,
        run_dir=run_dir,
    )
    facts = {"parameters": int(model.count_params()), "steps_per_epoch": steps}
    return result, facts


def write_classifier_metrics(
    run_dir: Path, config: ClassifierConfig, result: FitResult, facts: dict, strategy
) -> None:
    """``metrics.json``: the best validation metrics, the time and memory it took."""
    write_json(
        run_dir / "metrics.json",
        {
            "best_val": result.best,
            "epochs_run": result.epochs_run,
            "resumed_from_epoch": result.resumed_from,
            "train_seconds_this_process": round(result.seconds, 2),
            "parameters": facts["parameters"],
            "steps_per_epoch": facts["steps_per_epoch"],
            "global_batch_size": config.train.batch_size,
            "peak_rss_mib": peak_rss_mib(),
            "replicas": strategy.num_replicas_in_sync,
            "weights_sha256": result.weights_sha256,
        },
    )
