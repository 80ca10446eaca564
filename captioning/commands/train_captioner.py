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
``vocabulary.json``, ``cutpoints.json`` (a template set's findings bins, so the run reads them
away from its data), ``config.json``, ``run.json`` (kind ``captioner``, template set, encoder
run), ``metrics.json`` (with ``chosen_stage``), and last ``scope.json``/``scope.npz`` and
``calibration.json``: the out-of-scope rule and confidence temperatures fitted on the training
and validation splits (``captioning.calibrate``).

The captions come from the dataset's caption source (``captioning.data.sources``): MedNIST's
templates as above, or a caption file of free text, which trains the same two stages with the
source's tokenisation, CIDEr-D monitoring, and the class loss, scope and calibration only where
its labels are the encoder's classes (docs/datasets.md).

Under ``--strategy multiworker`` (see docs/multiworker.md) only the chief writes any of these;
the other workers keep everything in memory and receive the chief's best stage-1 weights and
validation metrics over the collectives.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from captioning.commands.options import add_train_options, report_training, train_options

log = logging.getLogger(__name__)


def add_parser(train_commands) -> None:
    """``train captioner``, on the ``train`` command's subparsers."""
    parser = train_commands.add_parser(
        "captioner", help="train an LSTM captioner on a pretrained encoder (two stages)"
    )
    parser.add_argument(
        "--data", help="prepared dataset folder (default: the encoder run's dataset)"
    )
    parser.add_argument(
        "--encoder",
        metavar="CLASSIFIER_RUN_DIR",
        help="any classifier run folder, trained on any dataset (default: the MedNIST classifier "
        "bundled with the package)",
    )
    add_train_options(parser, "captioner")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioning.bundled import resolve_run

    # any classifier run; without one, the MedNIST classifier bundled with the package
    encoder_dir = resolve_run(args.encoder, "classifier")
    run_dir, result = train_captioner(encoder_dir=encoder_dir, **train_options(args))
    report_training(run_dir, result)
    return 0


def train_captioner(
    *,
    encoder_dir,
    config_path=None,
    overrides=(),
    smoke=False,
    data_root=None,
    run_dir=None,
    command="",
):
    """Resolve the config, train both stages, and write the run folder (on the chief: the
    other workers of a multi-worker run write nothing); return its path and a ``FitResult``
    of the whole run (``weights_sha256`` of the final end-to-end captioner)."""
    import keras

    from captioning.captions.vocabulary import VOCABULARY_FILE
    from captioning.config import CaptionerConfig, load_config, to_dict
    from captioning.models.decoders.registry import check_decoder_kind
    from captioning.training import captioner_setup as setup
    from captioning.training.schedule import resolve_captioner_schedule
    from captioning.training.strategy import is_chief, make_strategy
    from captioning.utils.runs import default_run_dir

    # ---- prepare the data: config (an unknown decoder is refused before any work), encoder run,
    # captions and their truth
    config = load_config(CaptionerConfig, config_path, overrides, smoke)
    check_decoder_kind(config.decoder.kind)
    warn_unread_settings(config.decoder)
    encoder = setup.load_encoder_run(encoder_dir)
    captions = setup.load_caption_data(config, encoder, data_root)
    setup.resolve_lengths(config, captions)  # caption lengths from the training captions
    resolve_captioner_schedule(config, len(captions.train))  # batch 0, min_steps: by data size
    keras.utils.set_random_seed(config.train.seed)
    strategy = make_strategy(config.train.strategy, config.train.collective_timeout_s)
    run_dir = Path(run_dir or default_run_dir("captioner")).resolve()
    run = setup.TrainingRun(config, strategy, is_chief(strategy), run_dir)
    resolved = to_dict(config)
    with setup.run_lock(run):
        # ---- build the vocabulary (a resumed run's own), agree on the experiment, write it down
        resuming = setup.is_resuming(run, resolved)
        vocab_path = run.run_dir / VOCABULARY_FILE
        vocab = setup.build_vocabulary(captions, vocab_path, resuming)
        setup.agree_on_experiment(run, resolved, captions, vocab, encoder)
        written = {"vocab_path": vocab_path, "resuming": resuming, "command": command}
        setup.write_run_files(run, resolved, captions, vocab, encoder, **written)
        result = train_stages(run, captions, vocab, encoder)
    labelled = captions.labelled
    # calibration reads the saved run: freeing the training images first keeps the command's
    # peak memory that of training (~300 MB)
    del captions
    calibrate_trained(run, labelled)
    check_baseline(run)
    return run.run_dir, result


def train_stages(run, captions, vocab, encoder):
    """Stage 1 (frozen encoder, cached features), stage 2 (end to end), then the better stage
    saved as ``best_model.keras`` and ``metrics.json``; returns the whole run's ``FitResult``.
    The model and the training targets are freed when it returns."""
    from captioning.training import captioner_stages as stages
    from captioning.training.caption_targets import caption_targets
    from captioning.training.captioner_model import build_model
    from captioning.training.captioner_setup import BEST_MODEL
    from captioning.training.search_choice import choose_search

    targets = caption_targets(run, captions, vocab)
    # the encoder run's encoder and head, a new decoder
    parts = build_model(run, encoder, len(vocab), captions.template_set)
    first, readout_rmse = stages.train_stage1(run, captions, targets, parts)
    model, stage1_weights = stages.build_end_to_end(run, parts)
    second = stages.train_stage2(run, captions, targets, parts, model)
    chosen = stages.choose_stage(run.config.monitor, first, second)
    digest = stages.save_chosen(run, model, chosen, stage1_weights)
    choose_search(run, captions, targets, run.run_dir / BEST_MODEL)  # -> decoding.json
    stages.write_metrics(run, first, second, chosen, model, targets, readout_rmse, digest)
    return stages.whole_run(first, second, digest)


def warn_unread_settings(decoder) -> None:
    """One warning per ``[decoder]`` setting changed from its default that the chosen
    ``decoder.kind`` does not read (another kind does), so the run's name cannot claim it."""
    from dataclasses import asdict

    from captioning.config import DecoderConfig
    from captioning.models.decoders.registry import unread_settings

    for key in unread_settings(decoder.kind, asdict(decoder), asdict(DecoderConfig())):
        log.warning(
            "config key 'decoder.%s' = %r is not read by decoder.kind = %r: the run ignores it",
            key, getattr(decoder, key), decoder.kind,
        )  # fmt: skip


def check_baseline(run) -> None:
    """On the chief: one line comparing the saved model's validation CIDEr-D with nearest-
    neighbour retrieval's (``captioning.evaluation.retrieval.validation_check``), a warning
    when the model scores below it."""
    if not run.chief:
        return
    from captioning.errors import DataError, RunError
    from captioning.evaluation.retrieval import validation_check

    try:
        found = validation_check(run.run_dir)
    except (DataError, RunError, OSError, KeyError) as err:
        log.info("no retrieval baseline check: %s", err)
        return
    line = (
        f"validation CIDEr-D ({found['n']} images): model {found['model_cider']:.3f}, "
        f"nearest-neighbour retrieval on encoder features {found['baseline_cider']:.3f} "
        f"(k={found['k']}, train pool, k chosen on these images)"
    )
    if found["model_cider"] < found["baseline_cider"]:
        log.warning("%s: the model scores BELOW the retrieval baseline", line)
    else:
        log.info(line)


def calibrate_trained(run, labelled: bool) -> None:
    """On the chief: the out-of-scope rule and confidence temperatures of the saved run, when
    its captions carry the encoder's class labels (nothing to fit them on otherwise)."""
    if not run.chief:
        return
    if not labelled:
        log.info("no class labels of the encoder's classes: scope and calibration not applicable")
        return
    from captioning.calibrate import calibrate_run

    calibrate_run(run.run_dir)
