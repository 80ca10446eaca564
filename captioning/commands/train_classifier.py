"""``captioning train classifier``: pretrain the CNN encoder as a MedNIST classifier."""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import tensorflow as tf

from captioning import config as cfg
from captioning.data.dataset import PreparedData
from captioning.data.pipeline import make_dataset_fn, steps_per_epoch
from captioning.errors import DataError
from captioning.models.classifier import build_classifier
from captioning.training.loop import FitResult, fit, make_optimizer
from captioning.training.strategy import is_chief, make_strategy, strategy_name
from captioning.training.sync import agree, experiment_identity
from captioning.utils.paths import default_data_root
from captioning.utils.provenance import data_provenance, git_state, machine
from captioning.utils.runs import (
    RunLock,
    check_resume,
    default_run_dir,
    package_versions,
    peak_rss_mib,
    write_json,
)


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


def train_classifier(
    *, config_path=None, overrides=(), smoke=False, data_root=None, run_dir=None, command=""
) -> tuple[Path, FitResult]:
    """Resolve the config, train, and write the run folder (on the chief: the other workers
    of a multi-worker run write nothing); return its path and the fit's result."""
    config = cfg.load_config(cfg.ClassifierConfig, config_path, overrides, smoke)
    root = Path(data_root or config.data.root or default_data_root()).expanduser().resolve()
    config.data.root = str(root)
    data = PreparedData(root)
    if not data.classes:  # a caption file without a label column (see docs/datasets.md)
        raise DataError(
            f"{root}: the dataset's captions have no class labels; a classifier needs them "
            "(a 'label' column in the caption file)"
        )
    run_dir = Path(run_dir or default_run_dir("classifier")).resolve()
    train, val = (
        data.split(s, config.data.per_class_limit, config.data.exclude_classes)
        for s in ("train", "val")
    )

    keras.utils.set_random_seed(config.train.seed)
    strategy = make_strategy(config.train.strategy, config.train.collective_timeout_s)
    chief = is_chief(strategy)
    resolved = cfg.to_dict(config)
    # before any variable exists: the workers would otherwise build different models
    agree(strategy, "the experiment", experiment_identity(resolved, data=data.manifest_sha256))
    with RunLock(run_dir) if chief else contextlib.nullcontext():
        # only the chief's run folder counts: another worker's local folder decides nothing
        resuming = chief and check_resume(run_dir, resolved, frozen_sections=("data", "model"))
        if chief:
            write_json(run_dir / "config.json", resolved)
            write_json(
                run_dir / "run.json",
                {
                    "command": command,
                    "seed": config.train.seed,
                    "kind": "classifier",
                    "manifest_sha256": data.manifest_sha256,
                    "data_root": str(root),
                    "classes": data.classes,
                    "split_sizes": {"train": len(train), "val": len(val)},
                    "strategy": strategy_name(strategy),
                    "replicas": strategy.num_replicas_in_sync,
                    "resumed": resuming,
                    "versions": package_versions(),
                    "code": git_state(),
                    "data": data_provenance(data.card),
                    "machine": machine(),
                },
            )
        steps = steps_per_epoch(
            len(train), config.train.batch_size, config.train.max_steps_per_epoch
        )
        train_fn = make_dataset_fn(
            train.images,
            train.labels,
            config.train.batch_size,
            training=True,
            seed=config.train.seed,
            augment=config.augment,
        )
        val_fn = make_dataset_fn(val.images, val.labels, config.train.batch_size, training=False)
        with strategy.scope():
            model = build_classifier(config.model, len(data.classes))
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
        if chief:
            write_json(
                run_dir / "metrics.json",
                {
                    "best_val": result.best,
                    "epochs_run": result.epochs_run,
                    "resumed_from_epoch": result.resumed_from,
                    "train_seconds_this_process": round(result.seconds, 2),
                    "parameters": int(model.count_params()),
                    "steps_per_epoch": steps,
                    "global_batch_size": config.train.batch_size,
                    "peak_rss_mib": peak_rss_mib(),
                    "replicas": strategy.num_replicas_in_sync,
                    "weights_sha256": result.weights_sha256,
                },
            )
    return run_dir, result
