"""Speed options on tiny models: the loop's timers (off unless recording) and XLA-compiled train
steps (``train.jit_compile``), which must train the same model as the plain steps."""

import keras
import numpy as np
import tensorflow as tf

from captioning.config import ModelConfig, TrainConfig
from captioning.data.pipeline import make_dataset_fn
from captioning.models.captioner import build_feature_model
from captioning.models.classifier import build_classifier
from captioning.models.decoders import build_decoder
from captioning.training import timing
from captioning.training.caption_task import CaptionTask
from captioning.training.classifier_task import ClassificationTask
from captioning.training.loop import fit
from captioning.training.optimizers import make_optimizer

from helpers import TINY, squares


def run_fit(run_dir, model, task, train_fn, val_fn, jit: bool, steps=3):
    config = TrainConfig(
        epochs=1, batch_size=16, learning_rate=1e-2, warmup_steps=0, jit_compile=jit
    )
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        optimizer = make_optimizer(config, steps)
    result = fit(
        task=task,
        model=model,
        optimizer=optimizer,
        strategy=strategy,
        train_fn=train_fn,
        val_fn=val_fn,
        steps=steps,
        config=config,
        run_dir=run_dir,
    )
    return result, [np.asarray(w) for w in model.get_weights()]


def classifier_fit(run_dir, jit=False):
    keras.utils.set_random_seed(0)
    images, labels = squares()
    model = build_classifier(ModelConfig(**TINY), 3)
    fns = (make_dataset_fn(images, labels, 16, training=t) for t in (True, False))
    return run_fit(run_dir, model, ClassificationTask(), *fns, jit=jit)


def test_timers_record_the_loops_phases_only_while_recording(tmp_path):
    assert timing.phase("train_steps") is timing.phase("other")  # off: one shared no-op
    with timing.recording() as times:
        classifier_fit(tmp_path / "a")
    phases = times.as_dict()
    assert phases["fit/first_step"]["calls"] == 1
    assert phases["fit/train_steps"]["calls"] == 2  # 3 steps, the first timed apart
    for name in ("validation_steps", "checkpointing"):
        assert phases[f"fit/{name}"]["seconds"] > 0
    classifier_fit(tmp_path / "b")  # after the block: nothing more recorded
    assert times.as_dict() == phases


def test_xla_steps_train_the_classifier_like_the_plain_steps(tmp_path):
    plain, plain_weights = classifier_fit(tmp_path / "plain")
    xla, xla_weights = classifier_fit(tmp_path / "xla", jit=True)
    np.testing.assert_allclose(xla.best["loss"], plain.best["loss"], rtol=1e-4)
    assert xla.best["accuracy"] == plain.best["accuracy"]
    for a, b in zip(plain_weights, xla_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def caption_fit(run_dir, jit=False):
    """Three steps of a tiny attention decoder on random features and 7-word captions."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    features = {"feature_map": rng.normal(size=(16, 4, 4, 6)), "pooled": rng.normal(size=(16, 6))}
    decoder = build_decoder("attention", 10, embed_dim=8, hidden=8, attention_dim=8)
    model = build_feature_model(decoder, features, 7)
    tokens = np.concatenate(
        [np.ones((16, 1)), rng.integers(3, 10, (16, 6)), 2 * np.ones((16, 1))], 1
    )
    data = (
        {k: tf.constant(v, tf.float32) for k, v in features.items()},
        {"tokens": tf.constant(tokens, tf.int32), "label": tf.zeros(16, tf.int32)},
    )

    def fn(ctx, epoch=0):
        return tf.data.Dataset.from_tensors(data).repeat(3)

    weights = np.linspace(1, 3, 10, dtype="f4")
    task = CaptionTask(attention_penalty=1.0, monitor="word_accuracy", word_weights=weights)
    return run_fit(run_dir, model, task, fn, fn, jit=jit)


def test_xla_steps_train_the_captioner_like_the_plain_steps(tmp_path):
    plain, plain_weights = caption_fit(tmp_path / "plain")
    xla, xla_weights = caption_fit(tmp_path / "xla", jit=True)
    np.testing.assert_allclose(xla.best["loss"], plain.best["loss"], rtol=1e-4)
    for a, b in zip(plain_weights, xla_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
