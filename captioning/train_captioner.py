"""``captioning train captioner``: an LSTM decoder on a pretrained encoder, in two stages.

1. **Frozen encoder** (``train``): the encoder's features of every train/val image are computed
   once and cached (float16); the decoder trains on them, which is fast.
2. **End to end** (``finetune``): encoder + classification head + decoder; the encoder trains at
   ``encoder_lr_scale`` x the rate; loss = caption cross-entropy + ``class_weight`` x
   classification cross-entropy, so the class stays right.

Both stages run in the project's one training loop (``captioning.training.loop.fit``) with the
``CaptionTask`` below: teacher forcing, padding masked out of the loss, one of the image's
reference captions drawn per example and epoch (seeded, so a resumed run draws the same),
the finding words weighted ``decoder.field_word_weight`` in the loss; each epoch, greedy captions
of the whole validation split, scored by BLEU-4 and by the class and findings parse-back reads
from them (``BleuValidator``); the best epoch and early stopping follow ``monitor``.
No augmentation: the findings in the captions are measured on the pixels (a zoom changes the
stated extent, a contrast change the brightness).

Run folder: ``stage1/`` and ``stage2/`` (each the loop's logs, checkpoints and best model),
``best_model.keras`` (the end-to-end captioner, from the stage whose best epoch scores higher on
``monitor``; stage 1's is its decoder on the unchanged encoder and head: inputs ``pixels`` and
``tokens``, outputs ``caption_logits``, ``class_logits`` and, with attention, ``attention``),
``vocabulary.json``, ``config.json``, ``run.json`` (kind ``captioner``, template set, encoder
run), ``metrics.json`` (with ``chosen_stage``), and last ``scope.json``/``scope.npz`` and
``calibration.json``: the out-of-scope rule and confidence temperatures fitted on the training
and validation splits (``captioning.calibrate``).

Under ``--strategy multiworker`` (see docs/multiworker.md) only the chief writes any of these;
the other workers keep everything in memory and receive the chief's best stage-1 weights and
validation metrics over the collectives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import shutil
from pathlib import Path

import keras

from captioning import config as cfg
from captioning.atomic import atomic_path
from captioning.captions.build import load_cutpoints
from captioning.captions.findings import cut_distances, measure
from captioning.captions.templates import load_template_set
from captioning.captions.vocabulary import VOCABULARY_FILE, Vocabulary
from captioning.data.caption_data import (
    caption_dataset_fn,
    caption_frame,
    encode_references,
    reference_columns,
    reference_tokens,
)
from captioning.data.dataset import PreparedData
from captioning.data.pipeline import steps_per_epoch
from captioning.errors import RunError
from captioning.models.captioner import build_captioner, build_feature_model, encode_images
from captioning.models.classifier import load_model
from captioning.models.decoders import build_decoder
from captioning.paths import default_data_root
from captioning.provenance import data_provenance, git_state, machine
from captioning.runs import (
    RunLock,
    check_resume,
    default_run_dir,
    package_versions,
    peak_rss_mib,
    read_json,
    write_json,
)
from captioning.training import sync
from captioning.training.caption_task import (
    BleuValidator,
    CaptionTask,
    field_words,
    word_weights,
)
from captioning.training.loop import (
    FitResult,
    fit,
    learning_rate_schedule,
    make_optimizer,
    save_model_atomically,
    weights_digest,
)
from captioning.training.optimizers import ScaledRateAdamW
from captioning.training.strategy import is_chief, make_strategy, strategy_name
from captioning.training.sync import experiment_identity

log = logging.getLogger(__name__)
BEST_MODEL = "best_model.keras"


# ----------------------------------------------------------------------------------- train
def train_captioner(
    *,
    encoder_dir,
    config_path=None,
    overrides=(),
    smoke=False,
    data_root=None,
    run_dir=None,
    command="",
) -> tuple[Path, FitResult]:
    """Resolve the config, train both stages, and write the run folder (on the chief: the
    other workers of a multi-worker run write nothing); return its path and a ``FitResult``
    of the whole run (``weights_sha256`` of the final end-to-end captioner)."""
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
    # the whole validation split: the captions' metrics are computed on all of it, and
    # ``train.max_eval_batches`` limits only the validation loss
    train, val = (data.split(s, config.data.per_class_limit) for s in ("train", "val"))
    dec = config.decoder
    run_dir = Path(run_dir or default_run_dir("captioner")).resolve()

    keras.utils.set_random_seed(config.train.seed)
    strategy = make_strategy(config.train.strategy, config.train.collective_timeout_s)
    chief = is_chief(strategy)
    resolved = cfg.to_dict(config)
    with RunLock(run_dir) if chief else contextlib.nullcontext():
        # only the chief's run folder counts: another worker's local folder decides nothing
        resuming = chief and check_resume(
            run_dir, resolved, frozen_sections=("data", "captions", "decoder")
        )
        vocab_path = run_dir / VOCABULARY_FILE
        if resuming and vocab_path.exists():
            vocab = Vocabulary.load(vocab_path)
        else:
            train_rows = frame.iloc[train.rows]
            vocab = Vocabulary.from_captions(
                text for c in reference_columns(frame) for text in train_rows[c]
            )
        # before any file is written and any variable exists (the workers would build different
        # models: a hang, not an error)
        sync.agree(
            strategy,
            "the experiment",
            experiment_identity(
                resolved,
                data=data.manifest_sha256,
                vocabulary="|".join(vocab.tokens),
                encoder=hashlib.sha256((encoder_dir / BEST_MODEL).read_bytes()).hexdigest(),
            ),
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
                    "strategy": strategy_name(strategy),
                    "replicas": strategy.num_replicas_in_sync,
                    "resumed": resuming,
                    "versions": package_versions(),
                    "code": git_state(),
                    "data": data_provenance(data.card),
                    "machine": machine(),
                },
            )
        refs = {
            name: encode_references(frame.iloc[part.rows], vocab, dec.max_length)
            for name, part in (("train", train), ("val", val))
        }
        val_refs = reference_tokens(frame.iloc[val.rows])
        tset = load_template_set(config.captions.templates)
        val_truth = frame.iloc[val.rows][["class", "quality", *tset.fields]]
        weights = word_weights(vocab, field_words(tset), dec.field_word_weight)

        def task(validator, class_weight=0.0):
            return CaptionTask(
                attention_penalty=dec.attention_penalty,
                class_weight=class_weight,
                validate_fn=validator,
                monitor=config.monitor,
                word_weights=weights,
            )

        def validator(features_of):
            return BleuValidator(
                features_of,
                val_refs,
                vocab,
                dec.max_length,
                truth=val_truth,
                template_set=tset,
            )

        with strategy.scope():  # the encoder trains in stage 2: its variables are mirrored
            classifier = load_model(encoder_dir / BEST_MODEL)
        encoder, head = classifier.get_layer("encoder"), classifier.get_layer("logits")
        steps = steps_per_epoch(
            len(train), config.train.batch_size, config.train.max_steps_per_epoch
        )
        settings = {
            "embed_dim": dec.embed_dim,
            "hidden": dec.hidden,
            "attention_dim": dec.attention_dim,
            "init_from_map": dec.init_from_map,
            "dropout": dec.dropout,
        }

        # ---- stage 1: frozen encoder, cached features
        cached = {
            name: encode_images(encoder, part.images)
            for name, part in (("train", train), ("val", val))
        }
        readout = len(tset.fields) if dec.readout else 0
        with strategy.scope():
            decoder = build_decoder(dec.kind, len(vocab), readout=readout, **settings)
            stage1 = build_feature_model(decoder, cached["train"], dec.max_length)
            optimizer = make_optimizer(config.train, steps * config.train.epochs)
        readout_rmse = fit_findings_readout(decoder, cached["train"], train.images, data, tset)
        first = fit(
            task=task(validator(lambda _m: cached["val"])),
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
            stage="stage1",
        )
        # Stage 2 starts from stage 1's best epoch: the chief reads it, the others receive it.
        if chief:
            stage1.set_weights(load_model(run_dir / "stage1" / BEST_MODEL).get_weights())
        sync.from_first_replica(strategy, stage1.weights, [])
        cached.clear()  # free the feature cache before stage 2

        # ---- stage 2: end to end
        ft = config.finetune
        with strategy.scope():
            model = build_captioner(encoder, head, decoder, dec.max_length)
        stage1_weights = model.get_weights()  # stage 1's best decoder on the original encoder
        second, chosen = None, "stage1"
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
                task=task(validator(val_features), ft.class_weight),
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
                stage="stage2",
            )
            # the final model is the better of the two stages' best on the monitored metric:
            # end to end does not always improve on the frozen encoder's decoder. Both bests
            # are the chief's (its metrics, its resumed state), so every worker chooses alike.
            if second.best.get(config.monitor, -1.0) >= first.best.get(config.monitor, -1.0):
                chosen = "stage2"
            if chief and chosen == "stage2":
                with atomic_path(run_dir / BEST_MODEL) as tmp:
                    shutil.copyfile(run_dir / "stage2" / BEST_MODEL, tmp)
        if chosen == "stage1":
            model.set_weights(stage1_weights)  # on every worker, so their digests agree
            if chief:
                save_model_atomically(model, run_dir / BEST_MODEL)
        digest = weights_digest(model)
        if chief:
            write_json(
                run_dir / "metrics.json",
                {
                    "stage1": _stage_summary(first),
                    "stage2": _stage_summary(second) if second else None,
                    "chosen_stage": chosen,
                    "best_val": (second if chosen == "stage2" else first).best,
                    "train_seconds_this_process": round(
                        first.seconds + (second.seconds if second else 0.0), 2
                    ),
                    "parameters": int(model.count_params()),
                    # fit of the findings read-out on the train split, in its targets' unit
                    # (1% of each measurement's standard deviation)
                    "readout_rmse": readout_rmse,
                    "steps_per_epoch": steps,
                    "global_batch_size": config.train.batch_size,
                    "vocabulary_size": len(vocab),
                    "replicas": strategy.num_replicas_in_sync,
                    "weights_sha256": digest,
                    "peak_rss_mib": peak_rss_mib(),
                },
            )
    if chief:  # the out-of-scope rule and confidence temperatures (see captioning.calibrate)
        from captioning.calibrate import calibrate_run

        calibrate_run(run_dir)
    result = dataclasses.replace(
        second or first,
        epochs_run=first.epochs_run + (second.epochs_run if second else 0),
        seconds=first.seconds + (second.seconds if second else 0.0),
        weights_sha256=digest,
    )
    return run_dir, result


def fit_findings_readout(decoder, cached: dict, images, data, tset) -> float | None:
    """Fit the decoder's findings read-out (if it has one) by least squares on the training
    images' statistics; targets: each finding's distance from its cut point
    (``findings.cut_distances``). Returns the fit's RMSE, or None without a read-out."""
    if decoder.readout is None:
        return None
    targets = cut_distances(measure(images), load_cutpoints(data.root), tset.fields)
    return round(decoder.fit_readout(cached["statistics"], targets), 6)


def _stage_summary(result) -> dict:
    return {
        "best_val": result.best,
        "epochs_run": result.epochs_run,
        "resumed_from_epoch": result.resumed_from,
        "seconds": round(result.seconds, 2),
    }
