"""The training loop on tiny synthetic data: one step learns, runs resume, locks hold."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from captioning.config import ModelConfig, TrainConfig
from captioning.data.pipeline import make_dataset_fn
from captioning.errors import RunError
from captioning.models.classifier import build_classifier, load_model
from captioning.training.classifier_task import ClassificationTask
from captioning.training.loop import fit
from captioning.training.optimizers import make_optimizer
from captioning.utils.runs import RunLock, check_resume

from helpers import TINY, squares


def train(run_dir, epochs, widths=None, seed=0, schedule_epochs=None):
    """Train the tiny model; ``schedule_epochs`` (default ``epochs``) sets the LR schedule's
    length, so a run cut short can share its schedule with the full one."""
    keras.utils.set_random_seed(seed)
    images, labels = squares()
    config = TrainConfig(epochs=epochs, batch_size=16, learning_rate=1e-2, warmup_steps=0)
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        model = build_classifier(ModelConfig(**{**TINY, "widths": widths or TINY["widths"]}), 3)
        optimizer = make_optimizer(config, 3 * (schedule_epochs or epochs))
    return model, fit(
        task=ClassificationTask(),
        model=model,
        optimizer=optimizer,
        strategy=strategy,
        train_fn=make_dataset_fn(images, labels, 16, training=True),
        val_fn=make_dataset_fn(images, labels, 16, training=False),
        steps=3,
        config=config,
        run_dir=run_dir,
    )


def read_log(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_one_step_decreases_the_loss_on_a_fixed_batch():
    keras.utils.set_random_seed(0)
    images, labels = squares(16)
    x, y = tf.cast(images[..., None], tf.float32), tf.constant(labels)
    model = build_classifier(ModelConfig(**TINY), 3)
    optimizer = keras.optimizers.Adam(1e-2)
    task = ClassificationTask()

    def loss():  # batch statistics: the quantity the steps minimise
        return float(tf.reduce_mean(task.loss_and_stats(model, (x, y), training=True)[0]))

    before = loss()
    for _ in range(3):
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(task.loss_and_stats(model, (x, y), training=True)[0])
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    assert loss() < before


def test_fit_writes_logs_checkpoints_and_best_model(tmp_path):
    model, result = train(tmp_path, epochs=2)
    rows = read_log(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "val_accuracy", "learning_rate"} <= set(rows[0])
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert list((tmp_path / "tensorboard").iterdir())
    assert result.best["accuracy"] == max(float(r["val_accuracy"]) for r in rows)
    best = load_model(tmp_path / "best_model.keras")
    assert best.count_params() == model.count_params()


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    _, first = train(tmp_path, epochs=1)
    assert first.resumed_from == 0
    _, second = train(tmp_path, epochs=3)
    assert second.resumed_from == 1 and second.epochs_run == 2
    assert [int(r["epoch"]) for r in read_log(tmp_path)] == [1, 2, 3]


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    uninterrupted, _ = train(tmp_path / "a", epochs=2)
    train(tmp_path / "b", epochs=1, schedule_epochs=2)  # as if killed after epoch 1
    resumed, _ = train(tmp_path / "b", epochs=2)
    for a, b in zip(uninterrupted.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_resume_refuses_a_changed_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": {"widths": [4, 8]}, "data": {}}))
    assert check_resume(tmp_path, {"model": {"widths": [4, 8]}, "data": {}}, ("model", "data"))
    with pytest.raises(RunError, match="different 'model' config"):
        check_resume(tmp_path, {"model": {"widths": [8, 8]}, "data": {}}, ("model", "data"))


def test_two_writers_of_one_run_folder_are_refused(tmp_path):
    with RunLock(tmp_path), pytest.raises(RunError, match="locked"), RunLock(tmp_path):
        pass
    with RunLock(tmp_path):  # released after the first holder left
        pass


def test_pipelines_gather_rows_on_the_host_and_release_the_arrays_with_their_datasets():
    """Batches hold exactly the arrays' rows in the epoch's order; once the dataset function
    and its datasets are gone, so are the arrays (TensorFlow keeps every function given to
    ``numpy_function`` for the life of the process: it must not keep the arrays too)."""
    import gc
    import weakref

    from captioning.data.pipeline import epoch_order, host_gather

    images, labels = squares()  # (48, 64, 64) uint8, (48,)
    targets = {"label": labels, "twice": labels * 2}
    fn = make_dataset_fn(images, targets, 16, training=True, seed=3)
    batches = list(fn(tf.distribute.InputContext(), 1))
    order = epoch_order(len(images), 3, 1)[: 16 * len(batches)]
    pixels = np.concatenate([x.numpy() for x, _ in batches])
    assert pixels.dtype == np.float32 and pixels.shape[1:] == (64, 64, 1)
    np.testing.assert_array_equal(pixels[..., 0], images[order])
    np.testing.assert_array_equal(
        np.concatenate([y["twice"] for _, y in batches]), 2 * labels[order]
    )

    big = np.arange(4000, dtype=np.float16).reshape(1000, 4)
    alive = weakref.ref(big)
    gather = host_gather({"x": big})
    ds = tf.data.Dataset.range(1000).batch(300).map(gather)
    assert [tuple(b["x"].shape) for b in ds] == [(300, 4), (300, 4), (300, 4), (100, 4)]
    del big, gather
    gc.collect()
    assert alive() is not None  # the dataset still needs it
    del ds
    gc.collect()
    assert alive() is None
