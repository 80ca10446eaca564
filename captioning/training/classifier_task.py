"""Training the CNN encoder as a classifier: the task the training loop runs, and the steps of a
classifier run (``captioning.commands.train_classifier`` calls them in order).

The run folder: ``config.json`` (the resolved config), ``run.json`` (what was trained on, where
and with what code), the loop's logs, checkpoints and ``best_model.keras``, then
``metrics.json``. In a multi-worker run only the chief writes it.

A dataset prepared with label columns (``data prepare --label-columns modality,plane``) trains
one softmax head per column on the shared encoder (``MultiHeadClassificationTask``: the
columns' cross-entropies summed). A head's classes are the column's values in the training
split (sorted); an image whose value the training split lacks (seen only in val or test) has
label -1 in that column: it counts in no loss and no accuracy of that column, and the metrics
say how many there were (``unseen_<column>``). ``run.json`` records each head's classes
(``label_columns``), the layer of each (``head_layers``: the first column's is ``logits``, the
head a captioner keeps) and, as ``classes``, the first column's; ``metrics.json`` the best
epoch's ``accuracy_<column>`` (``accuracy``: their mean, the monitored one) and the same on the
test split (``test``, null without one). A dataset with one ``label`` (MedNIST) trains as before.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from captioning.config import ClassifierConfig
from captioning.data.pipeline import make_dataset_fn, steps_per_epoch
from captioning.models.classifier import (
    build_classifier,
    build_multi_head_classifier,
    head_layer_names,
    load_model,
)
from captioning.training.classifier_data import ClassifierData
from captioning.training.encoder_init import copy_encoder, init_record
from captioning.training.loop import FitResult, fit, make_optimizer
from captioning.training.strategy import strategy_name
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


class MultiHeadClassificationTask:
    """One softmax cross-entropy per label column, summed per example; a label -1 (a value the
    head lacks) counts in neither that column's loss nor its accuracy. Statistics: the summed
    loss, the examples, and per column its loss, correct predictions and known labels;
    metrics: ``loss``, per column ``loss_<c>``, ``accuracy_<c>`` (of the known labels; 0
    without any) and ``unseen_<c>`` (the examples left out), and ``accuracy``, the mean of the
    columns that had known labels (monitored)."""

    monitor = "accuracy"

    def __init__(self, columns, label_smoothing: float = 0.0):
        self.columns = list(columns)
        self.label_smoothing = label_smoothing

    def loss_and_stats(self, model, batch, training: bool):
        pixels, labels = batch  # labels: {column: (b,) int32}
        logits = model(pixels, training=training)  # {column: (b, classes)}
        per_example = tf.zeros(tf.shape(pixels)[:1], tf.float32)  # (b,)
        stats = {}
        for column in self.columns:
            target, z = labels[column], logits[column]
            known = tf.cast(target >= 0, tf.float32)
            cross = (
                keras.losses.categorical_crossentropy(
                    tf.one_hot(tf.maximum(target, 0), tf.shape(z)[-1]),
                    z,
                    from_logits=True,
                    label_smoothing=self.label_smoothing,
                )
                * known
            )  # (b,)
            per_example += cross
            correct = tf.cast(
                tf.equal(tf.argmax(z, -1, output_type=target.dtype), target), tf.float32
            )
            stats[f"loss_{column}"] = tf.reduce_sum(cross)
            stats[f"correct_{column}"] = tf.reduce_sum(correct)
            stats[f"known_{column}"] = tf.reduce_sum(known)
        stats["loss"] = tf.reduce_sum(per_example)
        stats["count"] = tf.cast(tf.shape(pixels)[0], tf.float32)
        return per_example, stats

    def summarize(self, sums):
        total = sums.get("count", 0.0)
        count = max(total, 1.0)
        metrics = {"loss": sums.get("loss", 0.0) / count}
        scored = []
        for column in self.columns:
            known = sums.get(f"known_{column}", 0.0)
            metrics[f"loss_{column}"] = sums.get(f"loss_{column}", 0.0) / count
            metrics[f"accuracy_{column}"] = sums.get(f"correct_{column}", 0.0) / max(known, 1.0)
            metrics[f"unseen_{column}"] = total - known
            if known:
                scored.append(metrics[f"accuracy_{column}"])
        # the mean of the columns that had known labels (0 when none had)
        metrics["accuracy"] = float(np.mean(scored)) if scored else 0.0
        return metrics


def write_classifier_run(
    run_dir: Path,
    config: ClassifierConfig,
    resolved: dict,
    found: ClassifierData,
    strategy,
    *,
    command: str,
    resumed: bool,
    init_from: Path | None = None,
) -> None:
    """``config.json`` (the resolved config) and ``run.json`` (what the run is and where from,
    ``init_from``: the run whose encoder it started from)."""
    write_json(run_dir / "config.json", resolved)
    write_json(
        run_dir / "run.json",
        {
            "command": command,
            "seed": config.train.seed,
            "kind": "classifier",
            "manifest_sha256": found.data.manifest_sha256,
            "data_root": str(found.root),
            "classes": found.classes,
            **found.data.image_spec.card_fields(),  # what caption/serve/export decode to
            **_heads_record(found),
            **init_record(init_from),
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


def _heads_record(found: ClassifierData) -> dict:
    """``run.json``'s entries of a classifier of label columns (none for one label)."""
    if not found.heads:
        return {}
    return {"label_columns": found.heads, "head_layers": head_layer_names(list(found.heads))}


def fit_classifier(
    config: ClassifierConfig,
    found: ClassifierData,
    strategy,
    run_dir: Path,
    init_from: Path | None = None,
) -> tuple[FitResult, dict]:
    """Build the classifier under ``strategy`` (its encoder from the run ``init_from``, if
    given) and train it with the project's loop; returns the fit's result and the facts
    ``metrics.json`` records beside it."""
    train, val, batch = found.train, found.val, config.train.batch_size
    steps = steps_per_epoch(len(train), batch, config.train.max_steps_per_epoch)
    train_fn = make_dataset_fn(
        train.images,
        found.targets(train),
        batch,
        training=True,
        seed=config.train.seed,
        augment=config.augment,
    )
    val_fn = make_dataset_fn(val.images, found.targets(val), batch, training=False)
    with strategy.scope():
        if found.heads:
            sizes = {column: len(classes) for column, classes in found.heads.items()}
            model = build_multi_head_classifier(config.model, sizes, found.data.image_spec)
        else:
            model = build_classifier(config.model, len(found.data.classes), found.data.image_spec)
        if init_from is not None:  # transfer: another run's encoder, fresh heads
            copy_encoder(model, init_from)
        optimizer = make_optimizer(config.train, steps * config.train.epochs)
    if found.heads:
        task = MultiHeadClassificationTask(found.heads, config.train.label_smoothing)
    else:
        task = ClassificationTask(config.train.label_smoothing)
    result = fit(
        task=task,
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
            **({"test": facts["test"]} if "test" in facts else {}),
        },
    )


def score_heads_on_test(run_dir: Path, found: ClassifierData) -> dict | None:
    """A classifier of label columns: its best model's ``accuracy_<column>`` (and
    ``unseen_<column>``, ``accuracy``: their mean, ``n``) on the dataset's whole test split;
    None when the dataset has no test images."""
    from captioning.evaluation.classifier import head_summary, heads_report, predict_heads

    part = found.data.split("test")
    if not len(part):
        return None
    model = load_model(run_dir / "best_model.keras")
    report = heads_report(
        found.targets(part), predict_heads(model, part.images), part.paths, found.heads
    )
    return head_summary(report)
