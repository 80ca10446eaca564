"""``captioning train captioner``: an LSTM decoder on a pretrained encoder, in two stages.

1. **Frozen encoder** (``train``): the encoder's features of every train/val image are computed
   once and cached (float16); the decoder trains on them, which is fast.
2. **End to end** (``finetune``): encoder + classification head + decoder; the encoder trains at
   ``encoder_lr_scale`` x the rate; loss = caption cross-entropy + ``class_weight`` x
   classification cross-entropy, so the class stays right.

Both stages run in the project's one training loop (``captioning.training.loop.fit``) with the
``CaptionTask`` below: teacher forcing, padding masked out of the loss, one of the image's
reference captions drawn per example and epoch (seeded, so a resumed run draws the same),
validation BLEU-4 of greedy captions each epoch (``CaptionTask.validate``), early stopping on it.
No augmentation: the findings in the captions are measured on the pixels (a zoom changes the
stated extent, a contrast change the brightness).

Run folder: ``stage1/`` and ``stage2/`` (each the loop's logs, checkpoints and best model),
``best_model.keras`` (the end-to-end captioner: inputs ``pixels`` and ``tokens``, outputs
``caption_logits``, ``class_logits`` and, with attention, ``attention``), ``vocabulary.json``,
``config.json``, ``run.json`` (kind ``captioner``, template set, encoder run), ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from captioning import config as cfg
from captioning.captions.build import build_captions, load_cutpoints, read_captions
from captioning.captions.tokenize import tokenize
from captioning.captions.vocabulary import VOCABULARY_FILE, Vocabulary
from captioning.data.dataset import PreparedData, Split
from captioning.data.pipeline import DatasetFn, epoch_order, steps_per_epoch
from captioning.decoding import CaptionSearch
from captioning.errors import DataError, RunError
from captioning.metrics import corpus_bleu
from captioning.models.classifier import load_model
from captioning.models.decoders import build_decoder
from captioning.models.encoder import pixel_input
from captioning.paths import default_data_root
from captioning.runs import (
    RunLock,
    check_resume,
    default_run_dir,
    package_versions,
    read_json,
    write_json,
)
from captioning.training.loop import fit, learning_rate_schedule, make_optimizer
from captioning.training.strategy import is_chief, make_strategy

log = logging.getLogger(__name__)
BEST_MODEL = "best_model.keras"


# ----------------------------------------------------------------------------------- data
def caption_frame(data: PreparedData, templates: str) -> pd.DataFrame:
    """The dataset's caption table, built first if missing or stale; rows in manifest order."""
    try:
        frame = read_captions(data.root, templates)
    except DataError:
        frame = None
    stale = frame is None or list(frame["path"]) != list(data.manifest["path"])
    if not stale:
        try:
            load_cutpoints(data.root)  # DataError: another version of the findings wrote it
        except DataError:
            stale = True
    if stale:
        log.info("building '%s' captions for %s", templates, data.root)
        build_captions(data.root, templates)
        frame = read_captions(data.root, templates)
    return frame


def reference_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("reference_")]


def encode_references(frame: pd.DataFrame, vocab: Vocabulary, max_length: int) -> np.ndarray:
    """(N, R, max_length + 1) int32: every reference of every row, ``<start>``-prefixed."""
    return np.stack(
        [vocab.encode_batch(frame[c], max_length) for c in reference_columns(frame)], axis=1
    )


def reference_tokens(frame: pd.DataFrame) -> list[list[list[str]]]:
    """Tokenised references per row, for BLEU."""
    cols = reference_columns(frame)
    return [[tokenize(text) for text in row] for row in frame[cols].itertuples(index=False)]


def caption_dataset_fn(
    inputs: dict[str, np.ndarray],
    references: np.ndarray,
    labels: np.ndarray,
    global_batch: int,
    *,
    training: bool,
    seed: int = 0,
) -> DatasetFn:
    """``(input_context, epoch) -> Dataset`` of ``(inputs, {"tokens", "label"})``.

    ``inputs`` are arrays sliced per example: ``pixels`` (N, 64, 64) uint8, or cached features
    (float16) such as ``feature_map`` (N, S, S, C) and ``pooled`` (N, C); each arrives as
    float32 (pixels with a channel axis). ``tokens`` (b, L + 1) is one reference per example:
    drawn per (seed, epoch, example) when training, reference 0 otherwise. The order is the
    loop's seeded per-epoch permutation (``epoch_order``), sharded by input pipeline.
    """
    n, n_refs = references.shape[:2]
    inputs_t = {k: tf.constant(v) for k, v in inputs.items()}
    refs_t, labels_t = tf.constant(references), tf.constant(labels)

    def gather(indices, choice):
        x = {k: tf.cast(tf.gather(v, indices), tf.float32) for k, v in inputs_t.items()}
        if "pixels" in x:
            x["pixels"] = x["pixels"][..., None]  # (b, 64, 64, 1)
        tokens = tf.gather(tf.gather(refs_t, indices), choice, batch_dims=1)  # (b, L + 1)
        return x, {"tokens": tokens, "label": tf.gather(labels_t, indices)}

    def dataset_fn(context: tf.distribute.InputContext, epoch: int = 0) -> tf.data.Dataset:
        batch = context.get_per_replica_batch_size(global_batch)
        if training:
            order = epoch_order(n, seed, epoch)
            choice = np.random.default_rng([seed, epoch, 1]).integers(0, n_refs, n)[order]
        else:
            order, choice = np.arange(n), np.zeros(n, np.int64)
        shard = slice(context.input_pipeline_id, None, context.num_input_pipelines)
        ds = tf.data.Dataset.from_tensor_slices((order[shard], choice[shard]))
        ds = ds.batch(batch, drop_remainder=training).map(gather)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        options.deterministic = True
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    return dataset_fn


def encode_images(encoder: keras.Model, images: np.ndarray, batch: int = 512) -> dict:
    """The encoder's outputs for uint8 images (N, 64, 64), as float16 numpy arrays."""

    @tf.function(reduce_retracing=True)
    def forward(x):
        return encoder(x, training=False)

    parts: dict[str, list] = {"feature_map": [], "pooled": []}
    for i in range(0, len(images), batch):
        out = forward(tf.cast(images[i : i + batch], tf.float32)[..., None])
        for key in parts:
            parts[key].append(out[key].numpy().astype(np.float16))
    return {k: np.concatenate(v) for k, v in parts.items()}


# ---------------------------------------------------------------------------------- models
def build_feature_model(decoder, feature_shape, pooled_dim, max_length: int) -> keras.Model:
    """Stage 1: cached features + tokens -> caption logits (and attention)."""
    inputs = {
        "feature_map": keras.Input(feature_shape, name="feature_map"),
        "pooled": keras.Input((pooled_dim,), name="pooled"),
        "tokens": keras.Input((max_length,), dtype="int32", name="tokens"),
    }
    out = decoder(inputs)
    outputs = {"caption_logits": out["logits"]}
    if "attention" in out:
        outputs["attention"] = out["attention"]
    return keras.Model(inputs, outputs, name="caption_decoder")


def build_captioner(encoder, head, decoder, max_length: int) -> keras.Model:
    """End to end: pixels (B, 64, 64, 1) + tokens (B, T) -> caption logits (B, T, V), class
    logits (B, classes) from the classifier's head, attention (B, T, P) when the decoder has it.
    Sub-layers by name: ``encoder``, ``logits`` (head), ``decoder``."""
    pixels = pixel_input()
    tokens = keras.Input((max_length,), dtype="int32", name="tokens")
    features = encoder(pixels)
    out = decoder({**features, "tokens": tokens})
    outputs = {"caption_logits": out["logits"], "class_logits": head(features["pooled"])}
    if "attention" in out:
        outputs["attention"] = out["attention"]
    return keras.Model({"pixels": pixels, "tokens": tokens}, outputs, name="captioner")


class ScaledRateAdamW(keras.optimizers.AdamW):
    """AdamW whose rate is multiplied by ``scale`` for the variables in ``slow`` (the encoder
    in stage 2). Adam is invariant to gradient scale, so the rate itself must change."""

    def __init__(self, *args, slow=(), scale: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self._slow_vars, self._scale = list(slow), scale
        self._slow_index: set[int] = set()

    def build(self, variables):
        super().build(variables)
        keys = {self._var_key(v) for v in self._slow_vars}
        self._slow_index = {i for i, v in enumerate(variables) if self._var_key(v) in keys}

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._slow_index:
            learning_rate = learning_rate * self._scale
        return super().update_step(gradient, variable, learning_rate)


# ------------------------------------------------------------------------------------ task
class CaptionTask:
    """Masked caption cross-entropy (+ attention penalty, + weighted class cross-entropy);
    validation BLEU-4 of greedy captions is the monitored metric."""

    monitor = "bleu4"

    def __init__(
        self,
        *,
        attention_penalty: float = 0.0,
        class_weight: float = 0.0,
        validate_fn=None,
    ):
        self.attention_penalty, self.class_weight = attention_penalty, class_weight
        self.validate_fn = validate_fn

    def loss_and_stats(self, model, batch, training: bool):
        inputs, targets = batch
        tokens = targets["tokens"]  # (b, L + 1): <start> w1 .. <end> <pad>..
        out = model({**inputs, "tokens": tokens[:, :-1]}, training=training)
        target = tokens[:, 1:]  # (b, L)
        mask = tf.cast(tf.not_equal(target, 0), tf.float32)  # padding counts for nothing
        logits = out["caption_logits"]  # (b, L, V)
        cross = tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits)  # (b, L)
        words = tf.reduce_sum(mask, 1)  # (b,)
        caption_loss = tf.reduce_sum(cross * mask, 1) / tf.maximum(words, 1.0)  # (b,)
        per_example = caption_loss
        if self.attention_penalty and "attention" in out:
            # doubly stochastic attention: each position's attention summed over the words
            # should be its equal share, words / P (Xu et al. ask for 1, which a caption of
            # fewer words than positions cannot reach)
            coverage = tf.reduce_sum(out["attention"] * mask[..., None], 1)  # (b, P)
            share = words[:, None] / tf.cast(tf.shape(coverage)[1], tf.float32)  # (b, 1)
            per_example += self.attention_penalty * tf.reduce_mean((share - coverage) ** 2, -1)
        correct_words = tf.cast(
            tf.equal(tf.argmax(logits, -1, output_type=target.dtype), target), tf.float32
        )
        stats = {
            "loss": tf.reduce_sum(per_example),
            "caption_loss": tf.reduce_sum(caption_loss),
            "words": tf.reduce_sum(words),
            "correct_words": tf.reduce_sum(correct_words * mask),
            "count": tf.cast(tf.shape(target)[0], tf.float32),
        }
        if "class_logits" in out:
            labels = targets["label"]
            class_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, out["class_logits"])
            if self.class_weight:
                per_example += self.class_weight * class_loss
                stats["loss"] = tf.reduce_sum(per_example)
            predicted = tf.argmax(out["class_logits"], -1, output_type=labels.dtype)
            stats["correct"] = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32))
        return per_example, stats

    def summarize(self, sums):
        count = max(sums.get("count", 0.0), 1.0)
        metrics = {
            "loss": sums.get("loss", 0.0) / count,
            "caption_loss": sums.get("caption_loss", 0.0) / count,
            "word_accuracy": sums.get("correct_words", 0.0) / max(sums.get("words", 0.0), 1.0),
        }
        if "correct" in sums:
            metrics["accuracy"] = sums["correct"] / count
        return metrics

    def validate(self, model) -> dict:
        return self.validate_fn(model) if self.validate_fn else {}


class BleuValidator:
    """Greedy captions for the validation images and their corpus BLEU-4 against all
    references. ``features_of(model)`` gives the encoder features of those images."""

    def __init__(self, features_of, references, vocab: Vocabulary, max_length: int, batch=1024):
        self.features_of, self.references = features_of, references
        self.vocab, self.max_length, self.batch = vocab, max_length, batch
        self._search: tuple[int, CaptionSearch] | None = None

    def search_for(self, model) -> CaptionSearch:
        if self._search is None or self._search[0] != id(model):
            search = CaptionSearch(
                model.get_layer("decoder"),
                start_id=self.vocab.start_id,
                end_id=self.vocab.end_id,
                max_length=self.max_length,
            )
            self._search = (id(model), search)
        return self._search[1]

    def __call__(self, model) -> dict:
        search = self.search_for(model)
        features = self.features_of(model)
        n = len(self.references)
        hyps = []
        for i in range(0, n, self.batch):
            part = {k: tf.constant(v[i : i + self.batch], tf.float32) for k, v in features.items()}
            hyps += [self.vocab.decode_tokens(row) for row in search.greedy(part).tokens]
        return {"bleu4": corpus_bleu(hyps, self.references)[3]}


# ----------------------------------------------------------------------------------- train
def _subset(split: Split, limit: int | None) -> Split:
    if limit is None or len(split) <= limit:
        return split
    return Split(
        split.images[:limit], split.labels[:limit], split.paths[:limit], split.rows[:limit]
    )


def train_captioner(
    *,
    encoder_dir,
    config_path=None,
    overrides=(),
    smoke=False,
    data_root=None,
    run_dir=None,
    command="",
) -> Path:
    """Resolve the config, train both stages, write the run folder; return its path."""
    config = cfg.load_config(cfg.CaptionerConfig, config_path, overrides, smoke)
    encoder_dir = Path(encoder_dir).expanduser().resolve()
    encoder_run = read_json(encoder_dir / "run.json")
    if encoder_run.get("kind") != "classifier":
        raise RunError(f"{encoder_dir}: --encoder needs a classifier run folder")
    root = Path(data_root or config.data.root or encoder_run["data_root"] or default_data_root())
    root = root.expanduser().resolve()
    config.data.root = str(root)
    data = PreparedData(root)
    if data.classes != encoder_run["classes"]:
        raise RunError(
            f"{encoder_dir}: trained on classes {encoder_run['classes']}, not {data.classes}"
        )
    frame = caption_frame(data, config.captions.templates)
    train, val = (data.split(s, config.data.per_class_limit) for s in ("train", "val"))
    if config.train.max_eval_batches:
        val = _subset(val, config.train.max_eval_batches * config.train.batch_size)
    dec = config.decoder
    run_dir = Path(run_dir or default_run_dir("captioner")).resolve()

    keras.utils.set_random_seed(config.train.seed)
    strategy = make_strategy(config.train.strategy)
    chief = is_chief(strategy)
    resolved = cfg.to_dict(config)
    with RunLock(run_dir) if chief else contextlib.nullcontext():
        resuming = check_resume(run_dir, resolved, frozen_sections=("data", "captions", "decoder"))
        vocab_path = run_dir / VOCABULARY_FILE
        if resuming and vocab_path.exists():
            vocab = Vocabulary.load(vocab_path)
        else:
            train_rows = frame.iloc[train.rows]
            vocab = Vocabulary.from_captions(
                text for c in reference_columns(frame) for text in train_rows[c]
            )
        if chief:
            write_json(run_dir / "config.json", resolved)
            vocab.save(vocab_path)
            write_json(
                run_dir / "run.json",
                {
                    "command": command,
                    "seed": config.train.seed,
                    "kind": "captioner",
                    "decoder": dec.kind,
                    "templates": config.captions.templates,
                    "encoder_run": str(encoder_dir),
                    "manifest_sha256": data.manifest_sha256,
                    "data_root": str(root),
                    "classes": data.classes,
                    "split_sizes": {"train": len(train), "val": len(val)},
                    "vocabulary_size": len(vocab),
                    "strategy": type(strategy).__name__,
                    "replicas": strategy.num_replicas_in_sync,
                    "resumed": resuming,
                    "versions": package_versions(),
                },
            )
        refs = {
            name: encode_references(frame.iloc[part.rows], vocab, dec.max_length)
            for name, part in (("train", train), ("val", val))
        }
        val_refs = reference_tokens(frame.iloc[val.rows])
        classifier = load_model(encoder_dir / BEST_MODEL)
        encoder, head = classifier.get_layer("encoder"), classifier.get_layer("logits")
        steps = steps_per_epoch(
            len(train), config.train.batch_size, config.train.max_steps_per_epoch
        )
        settings = {
            "embed_dim": dec.embed_dim,
            "hidden": dec.hidden,
            "attention_dim": dec.attention_dim,
            "dropout": dec.dropout,
        }

        # ---- stage 1: frozen encoder, cached features
        cached = {
            name: encode_images(encoder, part.images)
            for name, part in (("train", train), ("val", val))
        }
        feature_shape = cached["train"]["feature_map"].shape[1:]
        with strategy.scope():
            decoder = build_decoder(dec.kind, len(vocab), **settings)
            stage1 = build_feature_model(
                decoder, feature_shape, cached["train"]["pooled"].shape[1], dec.max_length
            )
            optimizer = make_optimizer(config.train, steps * config.train.epochs)
        validator = BleuValidator(lambda _m: cached["val"], val_refs, vocab, dec.max_length)
        first = fit(
            task=CaptionTask(attention_penalty=dec.attention_penalty, validate_fn=validator),
            model=stage1,
            optimizer=optimizer,
            strategy=strategy,
            train_fn=caption_dataset_fn(
                cached["train"],
                refs["train"],
                train.labels,
                config.train.batch_size,
                training=True,
                seed=config.train.seed,
            ),
            val_fn=caption_dataset_fn(
                cached["val"], refs["val"], val.labels, config.train.batch_size, training=False
            ),
            steps=steps,
            config=config.train,
            run_dir=run_dir / "stage1",
        )
        stage1.set_weights(load_model(run_dir / "stage1" / BEST_MODEL).get_weights())
        cached.clear()  # free the feature cache before stage 2

        # ---- stage 2: end to end
        ft = config.finetune
        with strategy.scope():
            model = build_captioner(encoder, head, decoder, dec.max_length)
        second = None
        if ft.epochs:
            stage2_config = dataclasses.replace(
                config.train, epochs=ft.epochs, learning_rate=ft.learning_rate, warmup_steps=0
            )
            with strategy.scope():
                optimizer = ScaledRateAdamW(
                    learning_rate_schedule(stage2_config, steps * ft.epochs),
                    weight_decay=config.train.weight_decay,
                    slow=encoder.trainable_variables,
                    scale=ft.encoder_lr_scale,
                )
            val_pixels = val.images

            def val_features(m):
                return encode_images(m.get_layer("encoder"), val_pixels)

            second = fit(
                task=CaptionTask(
                    attention_penalty=dec.attention_penalty,
                    class_weight=ft.class_weight,
                    validate_fn=BleuValidator(val_features, val_refs, vocab, dec.max_length),
                ),
                model=model,
                optimizer=optimizer,
                strategy=strategy,
                train_fn=caption_dataset_fn(
                    {"pixels": train.images},
                    refs["train"],
                    train.labels,
                    config.train.batch_size,
                    training=True,
                    seed=config.train.seed + 1,
                ),
                val_fn=caption_dataset_fn(
                    {"pixels": val.images},
                    refs["val"],
                    val.labels,
                    config.train.batch_size,
                    training=False,
                ),
                steps=steps,
                config=stage2_config,
                run_dir=run_dir / "stage2",
            )
            if chief:
                shutil.copyfile(run_dir / "stage2" / BEST_MODEL, run_dir / f".{BEST_MODEL}.tmp")
                (run_dir / f".{BEST_MODEL}.tmp").replace(run_dir / BEST_MODEL)
        elif chief:
            model.save(run_dir / f".{BEST_MODEL}.tmp.keras")
            (run_dir / f".{BEST_MODEL}.tmp.keras").replace(run_dir / BEST_MODEL)
        if chief:
            write_json(
                run_dir / "metrics.json",
                {
                    "stage1": _stage_summary(first),
                    "stage2": _stage_summary(second) if second else None,
                    "best_val": (second or first).best,
                    "train_seconds_this_process": round(
                        first.seconds + (second.seconds if second else 0.0), 2
                    ),
                    "parameters": int(model.count_params()),
                    "steps_per_epoch": steps,
                    "global_batch_size": config.train.batch_size,
                    "vocabulary_size": len(vocab),
                },
            )
    return run_dir


def _stage_summary(result) -> dict:
    return {
        "best_val": result.best,
        "epochs_run": result.epochs_run,
        "resumed_from_epoch": result.resumed_from,
        "seconds": round(result.seconds, 2),
    }
