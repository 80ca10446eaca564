"""The captioner trainer's two stages and its ending: stage 1 (the decoder on cached features
of the frozen encoder), stage 2 (end to end), the choice between their best epochs, the saved
model and ``metrics.json``.

Every worker of a multi-worker run calls each step; only the chief (``run.chief``) writes
files, and the other workers receive the chief's weights over the collectives.
"""

from __future__ import annotations

import dataclasses
import shutil

from captioning.captions.findings import cut_distances, measure, measured
from captioning.data.caption_data import caption_dataset_fn
from captioning.data.template_captions import load_cutpoints
from captioning.decoding import DecodingRules
from captioning.models.captioner import build_captioner, build_feature_model, encode_images
from captioning.models.classifier import load_model
from captioning.training import sync
from captioning.training.caption_targets import CaptionTargets
from captioning.training.caption_task import BleuValidator, CaptionTask
from captioning.training.captioner_model import CaptionerParts, field_sizes
from captioning.training.captioner_setup import BEST_MODEL, CaptionData, TrainingRun
from captioning.training.checkpoints import save_model_atomically, weights_digest
from captioning.training.loop import FitResult, fit
from captioning.training.optimizers import ScaledRateAdamW, learning_rate_schedule, make_optimizer
from captioning.utils.atomic import atomic_path
from captioning.utils.runs import peak_rss_mib, write_json


def caption_task(
    run: TrainingRun, captions: CaptionData, targets: CaptionTargets, features_of, class_weight=0.0
) -> CaptionTask:
    """The loop's task for one stage; ``features_of(model)`` gives the encoder features of the
    validation images, whose greedy captions are scored each epoch (``BleuValidator``)."""
    dec = run.config.decoder
    validator = BleuValidator(
        features_of,
        targets.val_references,
        targets.vocab,
        dec.max_length,
        truth=captions.truth,
        template_set=captions.template_set,
        rules=DecodingRules.from_settings(dataclasses.asdict(dec)),
        cider=run.config.monitor == "cider",
    )
    return CaptionTask(
        attention_penalty=dec.attention_penalty,
        class_weight=class_weight,
        validate_fn=validator,
        monitor=run.config.monitor,
        word_weights=targets.word_weights,
        labelled=captions.labelled,
        field_sizes=field_sizes(dec, captions.template_set),
        field_weight=dec.field_head_weight,
    )


def fit_findings_readout(decoder, cached: dict, images, data, tset) -> float | None:
    """Fit the decoder's findings read-out (if it has one) by least squares on the training
    images' statistics; targets: each finding's distance from its cut point
    (``findings.cut_distances``). Returns the fit's RMSE, or None without a read-out."""
    if decoder.readout is None:
        return None
    cutpoints = load_cutpoints(data.root, tset)  # the set's: fitted on the images it reads
    targets = cut_distances(measure(images), cutpoints, measured(tset.fields))
    return round(decoder.fit_readout(cached["statistics"], targets), 6)


def train_stage1(
    run: TrainingRun, captions: CaptionData, targets: CaptionTargets, parts: CaptionerParts
) -> tuple[FitResult, float | None]:
    """Stage 1: fit the read-out, then train the decoder on cached (float16) features of the
    frozen encoder. Leaves the decoder at the stage's best epoch (the chief's, on every
    worker); returns the fit and the read-out's RMSE (None without one)."""
    config, train, val = run.config, captions.train, captions.val
    cached = {
        name: encode_images(parts.encoder, part.images)
        for name, part in (("train", train), ("val", val))
    }
    with run.strategy.scope():
        stage1 = build_feature_model(parts.decoder, cached["train"], config.decoder.max_length)
        optimizer = make_optimizer(config.train, targets.steps * config.train.epochs)
    readout_rmse = fit_findings_readout(
        parts.decoder, cached["train"], train.images, captions.data, captions.template_set
    )
    if parts.label_heads:  # the decoder's frozen copies of the encoder run's label heads
        parts.decoder.set_label_heads(parts.label_heads)
    first = fit(
        task=caption_task(run, captions, targets, lambda _m: cached["val"]),
        model=stage1,
        optimizer=optimizer,
        strategy=run.strategy,
        train_fn=caption_dataset_fn(
            cached["train"],
            targets.encoded["train"],
            train.labels,
            config.train.batch_size,
            training=True,
            seed=config.train.seed,
            fields=targets.fields.get("train"),
        ),
        val_fn=caption_dataset_fn(
            cached["val"],
            targets.encoded["val"],
            val.labels,
            config.train.batch_size,
            training=False,
            fields=targets.fields.get("val"),
        ),
        steps=targets.steps,
        config=config.train,
        run_dir=run.run_dir / "stage1",
        stage="stage1",
    )
    # Stage 2 starts from stage 1's best epoch: the chief reads it, the others receive it.
    if run.chief:
        stage1.set_weights(load_model(run.run_dir / "stage1" / BEST_MODEL).get_weights())
    sync.from_first_replica(run.strategy, stage1.weights, [])
    return first, readout_rmse


def build_end_to_end(run: TrainingRun, parts: CaptionerParts):
    """The end-to-end captioner (pixels + tokens -> caption and class logits) on the same
    encoder, head and decoder layers; and its weights now (stage 1's best decoder on the
    unchanged encoder), to go back to if stage 1 is chosen."""
    with run.strategy.scope():
        model = build_captioner(
            parts.encoder, parts.head, parts.decoder, run.config.decoder.max_length
        )
    return model, model.get_weights()


def train_stage2(
    run: TrainingRun, captions: CaptionData, targets: CaptionTargets, parts, model
) -> FitResult | None:
    """Stage 2: train ``model`` end to end, the encoder at ``finetune.encoder_lr_scale`` x the
    rate, plus ``finetune.class_weight`` x the class cross-entropy; None when
    ``finetune.epochs`` is 0."""
    config, ft, train, val = run.config, run.config.finetune, captions.train, captions.val
    if not ft.epochs:
        return None
    stage2_config = dataclasses.replace(
        config.train,
        epochs=ft.epochs,
        learning_rate=ft.learning_rate,
        warmup_steps=0,
        jit_compile=ft.jit_compile,
    )
    with run.strategy.scope():
        optimizer = ScaledRateAdamW(
            learning_rate_schedule(stage2_config, targets.steps * ft.epochs),
            weight_decay=config.train.weight_decay,
            slow=parts.encoder.trainable_variables,
            scale=ft.encoder_lr_scale,
        )

    def val_features(m):
        return encode_images(m.get_layer("encoder"), val.images)

    return fit(
        task=caption_task(run, captions, targets, val_features, ft.class_weight),
        model=model,
        optimizer=optimizer,
        strategy=run.strategy,
        train_fn=caption_dataset_fn(
            {"pixels": train.images},
            targets.encoded["train"],
            train.labels,
            config.train.batch_size,
            training=True,
            seed=config.train.seed + 1,
            fields=targets.fields.get("train"),
        ),
        val_fn=caption_dataset_fn(
            {"pixels": val.images},
            targets.encoded["val"],
            val.labels,
            config.train.batch_size,
            training=False,
            fields=targets.fields.get("val"),
        ),
        steps=targets.steps,
        config=stage2_config,
        run_dir=run.run_dir / "stage2",
        stage="stage2",
    )


def choose_stage(monitor: str, first: FitResult, second: FitResult | None) -> str:
    """``stage2`` when its best epoch scores at least stage 1's on ``monitor``, else
    ``stage1``: end to end does not always improve on the frozen encoder's decoder. Both
    bests are the chief's (its metrics, its resumed state), so every worker chooses alike."""
    if second is not None and second.best.get(monitor, -1.0) >= first.best.get(monitor, -1.0):
        return "stage2"
    return "stage1"


def save_chosen(run: TrainingRun, model, chosen: str, stage1_weights) -> str:
    """Make ``model`` the chosen stage's best and (chief) save it as the run's
    ``best_model.keras``; return the sha256 of its weights (equal on every worker)."""
    best = run.run_dir / BEST_MODEL
    if chosen == "stage2" and run.chief:
        with atomic_path(best) as tmp:
            shutil.copyfile(run.run_dir / "stage2" / BEST_MODEL, tmp)
    if chosen == "stage1":
        model.set_weights(stage1_weights)  # on every worker, so their digests agree
        if run.chief:
            save_model_atomically(model, best)
    return weights_digest(model)


def stage_summary(result: FitResult) -> dict:
    """One stage's entry of ``metrics.json``."""
    return {
        "best_val": result.best,
        "epochs_run": result.epochs_run,
        "resumed_from_epoch": result.resumed_from,
        "seconds": round(result.seconds, 2),
    }


def write_metrics(run, first, second, chosen, model, targets, readout_rmse, digest) -> None:
    """The chief's ``metrics.json``: both stages, the choice, and what the run cost (the other
    workers write nothing)."""
    if not run.chief:
        return
    write_json(
        run.run_dir / "metrics.json",
        {
            "stage1": stage_summary(first),
            "stage2": stage_summary(second) if second else None,
            "chosen_stage": chosen,
            "best_val": (second if chosen == "stage2" else first).best,
            "train_seconds_this_process": round(
                first.seconds + (second.seconds if second else 0.0), 2
            ),
            "parameters": int(model.count_params()),
            # fit of the findings read-out on the train split, in its targets' unit
            # (1% of each measurement's standard deviation)
            "readout_rmse": readout_rmse,
            "steps_per_epoch": targets.steps,
            "global_batch_size": run.config.train.batch_size,
            "vocabulary_size": len(targets.vocab),
            "replicas": run.strategy.num_replicas_in_sync,
            "weights_sha256": digest,
            "peak_rss_mib": peak_rss_mib(),
        },
    )


def whole_run(first: FitResult, second: FitResult | None, digest: str) -> FitResult:
    """One ``FitResult`` for both stages: the last stage's, with epochs and seconds summed and
    the final model's digest."""
    return dataclasses.replace(
        second or first,
        epochs_run=first.epochs_run + (second.epochs_run if second else 0),
        seconds=first.seconds + (second.seconds if second else 0.0),
        weights_sha256=digest,
    )
