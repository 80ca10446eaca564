"""Captioner training pieces on tiny models: loss, masking, reference sampling, stages."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from captioning.config import TrainConfig
from captioning.data.caption_data import caption_dataset_fn
from captioning.data.pipeline import make_dataset_fn
from captioning.models.captioner import build_feature_model
from captioning.models.decoders import build_decoder
from captioning.training.caption_task import CaptionTask
from captioning.training.classifier_task import ClassificationTask
from captioning.training.loop import fit
from captioning.training.optimizers import ScaledRateAdamW

from helpers import TINY, squares

VOCAB = 10


def feature_model(kind, max_length):
    keras.utils.set_random_seed(0)
    decoder = build_decoder(kind, VOCAB, embed_dim=8, hidden=8, attention_dim=8)
    shapes = {"feature_map": np.zeros((1, 4, 4, 6)), "pooled": np.zeros((1, 6))}
    return build_feature_model(decoder, shapes, max_length)


def batch(max_length, n=8, seed=0):
    """Features and captions: <start> 4..9 words <end>, zero-padded to max_length + 1."""
    rng = np.random.default_rng(seed)
    tokens = np.zeros((n, max_length + 1), np.int32)
    for i in range(n):
        words = rng.integers(4, VOCAB, rng.integers(2, 5))
        tokens[i, : len(words) + 2] = [1, *words, 2]
    inputs = {
        "feature_map": tf.constant(rng.normal(size=(n, 4, 4, 6)), tf.float32),
        "pooled": tf.constant(rng.normal(size=(n, 6)), tf.float32),
    }
    return inputs, {"tokens": tf.constant(tokens), "label": tf.zeros(n, tf.int32)}


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
def test_one_training_step_decreases_the_loss_on_a_fixed_batch(kind):
    model = feature_model(kind, 7)
    task = CaptionTask(attention_penalty=1.0)
    data = batch(7)
    optimizer = keras.optimizers.Adam(1e-2)

    def loss(training):
        return tf.reduce_mean(task.loss_and_stats(model, data, training=training)[0])

    before = float(loss(False))
    with tf.GradientTape() as tape:
        value = loss(True)
    grads = tape.gradient(value, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    assert float(loss(False)) < before


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
def test_padding_is_masked_out_of_the_loss(kind):
    task = CaptionTask(attention_penalty=1.0)
    short_model, long_model = feature_model(kind, 6), feature_model(kind, 11)
    long_model.set_weights(short_model.get_weights())
    inputs, short = batch(6)
    long = {**short, "tokens": tf.pad(short["tokens"], [[0, 0], [0, 5]])}  # 5 more <pad>
    a, stats_a = task.loss_and_stats(short_model, (inputs, short), training=False)
    b, stats_b = task.loss_and_stats(long_model, (inputs, long), training=False)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
    assert float(stats_a["words"]) == float(stats_b["words"])


def test_references_are_drawn_per_epoch_and_fixed_for_validation():
    n, refs = 64, 5
    references = np.zeros((n, refs, 3), np.int32)
    references[:, :, 1] = np.arange(refs)  # token 1 says which reference was drawn
    inputs = {"pooled": np.arange(n, dtype=np.float16)[:, None]}

    def drawn(fn, epoch):
        ctx = tf.distribute.InputContext()
        out = {}
        for x, y in fn(ctx, epoch):
            for row, token in zip(
                x["pooled"][:, 0].numpy(), y["tokens"][:, 1].numpy(), strict=True
            ):
                out[int(row)] = int(token)
        return out

    train = caption_dataset_fn(inputs, references, np.zeros(n, np.int32), 16, training=True)
    first, again, second = drawn(train, 0), drawn(train, 0), drawn(train, 1)
    assert first == again and first != second  # seeded per epoch: resume draws the same
    assert len(set(first.values())) > 1
    val = caption_dataset_fn(inputs, references, np.zeros(n, np.int32), 16, training=False)
    assert set(drawn(val, 0).values()) == {0} and len(drawn(val, 0)) == n


def test_slow_variables_move_at_the_scaled_rate():
    fast, slow = keras.Variable(np.zeros(3, "float32")), keras.Variable(np.zeros(3, "float32"))
    optimizer = ScaledRateAdamW(0.1, weight_decay=0.0, slow=[slow], scale=0.1)
    optimizer.build([fast, slow])
    grad = tf.ones(3)
    optimizer.apply_gradients([(grad, fast), (grad, slow)])
    np.testing.assert_allclose(slow.numpy(), 0.1 * fast.numpy(), rtol=1e-4)


class ScoredTask(ClassificationTask):
    """A task whose monitored metric comes from ``validate`` and never improves."""

    monitor = "score"

    def validate(self, model):
        return {"score": 0.5}


def test_validate_metrics_join_the_epoch_and_patience_stops_training(tmp_path):
    images, labels = squares()
    config = TrainConfig(epochs=6, batch_size=16, warmup_steps=0, patience=2)
    strategy = tf.distribute.get_strategy()
    from captioning.config import ModelConfig
    from captioning.models.classifier import build_classifier
    from captioning.training.loop import make_optimizer

    with strategy.scope():
        model = build_classifier(ModelConfig(**TINY), 3)
        optimizer = make_optimizer(config, 6)

    def run():
        return fit(
            task=ScoredTask(),
            model=model,
            optimizer=optimizer,
            strategy=strategy,
            train_fn=make_dataset_fn(images, labels, 16, training=True),
            val_fn=make_dataset_fn(images, labels, 16, training=False),
            steps=1,
            config=config,
            run_dir=tmp_path,
        )

    result = run()
    assert result.epochs_run == 3  # best at epoch 1, then 2 epochs without improvement
    assert result.best == {**result.best, "score": 0.5, "epoch": 1}
    assert run().epochs_run == 0  # a resumed run knows patience ran out


def test_word_weights_scale_the_chosen_words_and_leave_uniform_weights_unchanged():
    model = feature_model("attention", 7)
    data = batch(7)
    plain, _ = CaptionTask().loss_and_stats(model, data, training=False)
    uniform, _ = CaptionTask(word_weights=np.full(VOCAB, 4.0, np.float32)).loss_and_stats(
        model, data, training=False
    )
    np.testing.assert_allclose(plain.numpy(), uniform.numpy(), rtol=1e-5)
    weights = np.ones(VOCAB, np.float32)
    weights[5] = 10.0
    weighted, _ = CaptionTask(word_weights=weights).loss_and_stats(model, data, training=False)
    tokens = data[1]["tokens"].numpy()[:, 1:]
    has_word = (tokens == 5).any(1)
    assert has_word.any() and (~has_word).any()
    np.testing.assert_allclose(plain.numpy()[~has_word], weighted.numpy()[~has_word], rtol=1e-5)
    assert not np.allclose(plain.numpy()[has_word], weighted.numpy()[has_word])


def test_field_words_and_their_weights():
    from captioning.captions.templates import load_template_set
    from captioning.captions.vocabulary import Vocabulary
    from captioning.training.caption_task import field_words, word_weights

    words = field_words(load_template_set("findings"))
    assert {"small", "extensive", "abundant", "scant", "dark", "bright"} <= words
    assert "ct" not in words and "radiograph" not in words
    vocab = Vocabulary.from_captions(["small hand radiograph", "dark chest ct"])
    weights = word_weights(vocab, words, 3.0)
    assert weights[vocab.index["small"]] == 3.0 and weights[vocab.index["dark"]] == 3.0
    assert weights[vocab.index["hand"]] == 1.0 and weights[vocab.start_id] == 1.0


def test_findings_metrics_read_class_and_fields_back_from_captions():
    import pandas as pd

    from captioning.captions.templates import load_template_set
    from captioning.training.caption_task import findings_metrics

    tset = load_template_set("findings")
    truth = pd.DataFrame(
        {
            "class": ["Hand", "HeadCT"],
            "quality": ["diagnostic", "diagnostic"],
            "extent": ["small", "large"],
            "density": ["low", "high"],
            "brightness": ["dark", "bright"],
        }
    )
    captions = [
        "hand radiograph, small anatomical coverage, little high-density content, dark.",
        "head ct, small anatomical coverage, abundant high-density content, bright.",
    ]
    m = findings_metrics(captions, truth, tset)
    assert m["class_accuracy"] == 1.0 and m["extent_accuracy"] == 0.5
    assert m["density_accuracy"] == 1.0 and m["brightness_accuracy"] == 1.0
    assert m["all_right"] == 0.5 and m["findings"] == pytest.approx(3.5 / 4)
