"""``captioning train captioner``: an LSTM decoder on a pretrained encoder, in two stages.

1. **Frozen encoder** (``train``): the encoder's features of every train/val image are computed
   once and cached (float16); the decoder trains on them, which is fast.
2. **End to end** (``finetune``): encoder + classification head + decoder; the encoder trains at
   ``encoder_lr_scale`` x the rate; loss = caption cross-entropy + ``class_weight`` x
   classification cross-entropy, so the class stays right.

Both stages run in the project's one training loop (``captioning.training.loop.fit``) with
the ``CaptionTask`` of ``captioning.training.caption_task``: teacher forcing, padding masked
out of the loss, one of the image's reference captions drawn per example and epoch (seeded,
so a resumed run draws the same), the finding words weighted ``decoder.field_word_weight`` in
the loss; each epoch, greedy captions of the whole validation split, scored by BLEU-4 and by
the class and findings parse-back reads from them (``BleuValidator``); the best epoch and
early stopping follow ``monitor``.
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

The captions come from the dataset's caption source (``captioning.data.sources``): MedNIST's
templates as above, or a caption file of free text, which trains the same two stages with the
source's tokenisation, BLEU-4 monitoring, and the class loss, scope and calibration only where
its labels are the encoder's classes (docs/datasets.md).

Under ``--strategy multiworker`` (see docs/multiworker.md) only the chief writes any of these;
the other workers keep everything in memory and receive the chief's best stage-1 weights and
validation metrics over the collectives.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras

from captioning import config as cfg
from captioning.calibrate import calibrate_run
from captioning.captions.vocabulary import VOCABULARY_FILE
from captioning.training.captioner_setup import (
    BEST_MODEL,
    TrainingRun,
    agree_on_experiment,
    build_model,
    build_vocabulary,
    is_resuming,
    load_caption_data,
    load_encoder_run,
    run_lock,
    write_run_files,
)
from captioning.training.captioner_stages import (
    build_end_to_end,
    caption_targets,
    choose_stage,
    save_chosen,
    train_stage1,
    train_stage2,
    whole_run,
    write_metrics,
)
from captioning.training.loop import FitResult
from captioning.training.strategy import is_chief, make_strategy
from captioning.utils.runs import default_run_dir

__all__ = ["BEST_MODEL", "train_captioner"]
log = logging.getLogger(__name__)


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
    of the whole run (``weights_sha256`` of the final end-to-end captioner).

    The steps, in order (``captioning.training.captioner_setup`` and ``captioner_stages``):
    prepare the data, build the vocabulary, build the model, stage 1, stage 2, choose and
    save the better stage, then fit the run's scope and confidence (``captioning.calibrate``).
    """
    # ---- prepare the data: config, encoder run, captions and their truth
    config = cfg.load_config(cfg.CaptionerConfig, config_path, overrides, smoke)
    encoder = load_encoder_run(encoder_dir)
    captions = load_caption_data(config, encoder, data_root)
    keras.utils.set_random_seed(config.train.seed)
    strategy = make_strategy(config.train.strategy, config.train.collective_timeout_s)
    run = TrainingRun(
        config,
        strategy,
        is_chief(strategy),
        Path(run_dir or default_run_dir("captioner")).resolve(),
    )
    resolved = cfg.to_dict(config)
    with run_lock(run):
        # ---- build the vocabulary (a resumed run's own), agree on the experiment, write it down
        resuming = is_resuming(run, resolved)
        vocab_path = run.run_dir / VOCABULARY_FILE
        vocab = build_vocabulary(captions, vocab_path, resuming)
        agree_on_experiment(run, resolved, captions, vocab, encoder)
        write_run_files(
            run,
            resolved,
            captions,
            vocab,
            encoder,
            vocab_path=vocab_path,
            resuming=resuming,
            command=command,
        )
        targets = caption_targets(run, captions, vocab)
        # ---- build the model: the encoder run's encoder and head, a new decoder
        parts = build_model(run, encoder, len(vocab), captions.template_set)
        # ---- stage 1: frozen encoder, cached features; stage 2: end to end
        first, readout_rmse = train_stage1(run, captions, targets, parts)
        model, stage1_weights = build_end_to_end(run, parts)
        second = train_stage2(run, captions, targets, parts, model)
        # ---- choose the better stage and save it
        chosen = choose_stage(config.monitor, first, second)
        digest = save_chosen(run, model, chosen, stage1_weights)
        write_metrics(run, first, second, chosen, model, targets, readout_rmse, digest)
    labelled = captions.labelled
    # the training images, targets and model are no longer needed: calibration reads the saved
    # run, and freeing them first keeps the command's peak memory that of training (~300 MB)
    del captions, targets, parts, model, stage1_weights
    if run.chief and labelled:  # the out-of-scope rule and confidence temperatures
        calibrate_run(run.run_dir)
    elif run.chief:
        log.info("no class labels of the encoder's classes: scope and calibration not applicable")
    return run.run_dir, whole_run(first, second, digest)
