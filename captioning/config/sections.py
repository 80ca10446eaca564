"""The sections of an experiment's config: typed dataclasses whose defaults *are* the default
experiment (``captioning.config`` loads, overrides and validates them)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from captioning.errors import CaptioningError

# ``train.strategy`` values: the tf.distribute strategies ``training.strategy.make_strategy``
# builds. Here, not there, so that the config and the CLI read them without TensorFlow.
STRATEGIES = ("auto", "default", "mirrored", "multiworker")


class ConfigError(CaptioningError, ValueError):
    """A config key is unknown, has the wrong type, or is out of range."""


def _check(rule: str):
    """Attach a range rule (checked by ``validate``) to a dataclass field's metadata."""
    return {"rule": rule}


@dataclass
class DataConfig:
    """Which prepared dataset to read and how much of it."""

    root: str | None = None  # prepared dataset folder; None: the default data root
    per_class_limit: int | None = field(default=None, metadata=_check(">0"))  # subset per split
    # classes left out of every split read for training (leave-one-class-out studies); the
    # head keeps an output per dataset class, so labels keep their ids
    exclude_classes: list[str] = field(default_factory=list)


@dataclass
class ModelConfig:
    """Encoder architecture. ``name`` picks the builder in ``captioning.models``."""

    name: str = field(default="cnn", metadata=_check("in:cnn,seed_replica"))
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 64])  # channels per stage
    # stride of the stem (first conv; its kernel is max(3, stride)): 4 = non-overlapping 4x4
    # patches, so no layer works at 32x32 (3x the train steps/s of stride 2, same accuracy)
    stem_stride: int = field(default=4, metadata=_check(">0"))
    depth: int = field(default=1, metadata=_check(">0"))  # conv layers per stage
    feature_size: int = field(default=8, metadata=_check(">0"))  # side of the spatial map
    dropout: float = field(default=0.0, metadata=_check("[0,1)"))
    # the encoder's starting weights: "" random; a classifier run folder, or "bundled" (the
    # MedNIST classifier shipped with the package): its encoder (training/encoder_init.py)
    init_from: str = ""


@dataclass
class AugmentConfig:
    """On-the-fly augmentation (one random affine warp per image, ``data.augment``) applied to
    training batches only."""

    translate: float = field(default=0.05, metadata=_check("[0,1)"))  # fraction of the side
    zoom: float = field(default=0.05, metadata=_check("[0,1)"))  # scale in [1 - zoom, 1 + zoom]
    rotate: float = field(default=0.0, metadata=_check("[0,1)"))  # fraction of a full turn
    shear: float = field(default=0.0, metadata=_check("[0,1)"))  # x += k * y, |k| <= shear
    flip: bool = False  # horizontal flips (off by default: laterality is a finding)


@dataclass
class TrainConfig:
    """Optimisation. ``batch_size`` is global: each replica gets batch_size / replicas."""

    # 0: nothing is trained, the initial weights are saved (a classifier only: an untrained
    # encoder, random or ``model.init_from``'s, for comparisons; a captioner refuses it)
    epochs: int = field(default=4, metadata=_check(">=0"))
    # 0: from the training split's size (training.schedule: 128 on MedNIST, smaller on small
    # sets); any other value is kept
    batch_size: int = field(default=0, metadata=_check(">=0"))
    # room for this many optimiser steps: ``epochs`` grows to reach it on a small set (0: off);
    # early stopping (``patience``) may still end the stage sooner
    min_steps: int = field(default=0, metadata=_check(">=0"))
    learning_rate: float = field(default=3e-3, metadata=_check(">0"))
    weight_decay: float = field(default=1e-4, metadata=_check(">=0"))
    label_smoothing: float = field(default=0.0, metadata=_check("[0,1)"))
    schedule: str = field(default="cosine", metadata=_check("in:cosine,constant"))
    warmup_steps: int = field(default=100, metadata=_check(">=0"))
    seed: int = 0
    strategy: str = field(default="auto", metadata=_check("in:" + ",".join(STRATEGIES)))
    # Multi-worker: a collective waiting longer than this on a live but stuck peer fails (a
    # dead peer is noticed sooner, by heartbeats). Must exceed the chief's longest pause
    # between steps (saving the best model and a checkpoint).
    collective_timeout_s: float = field(default=300.0, metadata=_check(">0"))
    max_steps_per_epoch: int | None = field(default=None, metadata=_check(">0"))
    max_eval_batches: int | None = field(default=None, metadata=_check(">0"))
    # stop after this many epochs without a better monitored validation metric (None: never)
    patience: int | None = field(default=None, metadata=_check(">0"))
    # compile the train step with XLA (one replica only; the model is unchanged): see
    # experiments/speed.md for what it buys on a CPU
    jit_compile: bool = False


@dataclass
class ClassifierConfig:
    """Everything ``captioning train classifier`` needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(min_steps=1200))


@dataclass
class CaptionsConfig:
    """Which captions to learn: a template set written by ``captioning data captions``."""

    # set name: built in (captioning/templates) or in $CAPTIONING_TEMPLATES; built if missing
    templates: str = "findings"


@dataclass
class DecoderConfig:
    """The LSTM decoder and how captions are generated from it."""

    # a registered decoder (captioning.models.decoders.registry); each decoder's constructor
    # takes the settings below it names, and its defaults agree with these (tests/test_config.py).
    # Checked against the registry where the config is used (``check_decoder_kind``), not here:
    # the registry is in ``captioning.models``, which imports this module
    kind: str = "attention"
    embed_dim: int = field(default=64, metadata=_check(">0"))
    hidden: int = field(default=128, metadata=_check(">0"))  # LSTM units
    attention_dim: int = field(default=128, metadata=_check(">0"))  # additive attention width
    # attention decoder: the initial LSTM state reads the whole flattened feature map (and its
    # mean), not only the mean. Off by default: the findings read-out (below) states the
    # findings, and the initial state is 4,096 inputs smaller without the map
    init_from_map: bool = False
    # the initial state and every step also read each finding from a linear read-out of the
    # image's intensity statistics, fitted by least squares on the training split
    # (decoders.lstm.LSTMDecoder); off: the LSTM reads the findings from the CNN features alone
    readout: bool = True
    # the initial state and every step also read the encoder run's label heads' probabilities
    # (one head per label column, or the class head), carried frozen in the decoder
    # (decoders.lstm.LSTMDecoder); off: the LSTM reads what the image shows from its features
    labels: bool = False
    # trained field heads: one linear head per finding of the template set reads it from the
    # image vector the state starts from, learns it from the caption's field value (cross-
    # entropy x ``field_head_weight`` beside the caption loss, both stages), and its
    # probabilities join the initial state and every step (decoders.lstm.LSTMDecoder)
    field_heads: bool = False
    field_head_weight: float = field(default=1.0, metadata=_check(">=0"))
    # doubly-stochastic attention: weight of mean_p (words / P - sum_t alpha_tp)^2 (0: off)
    attention_penalty: float = field(default=1.0, metadata=_check(">=0"))
    dropout: float = field(default=0.0, metadata=_check("[0,1)"))  # before the output layer
    # loss weight of the finding words (small, abundant, high-signal, ...) against 1 for the
    # other words: a wrong finding word must cost more than another phrasing of the same caption
    field_word_weight: float = field(default=3.0, metadata=_check(">0"))
    max_length: int = field(default=24, metadata=_check(">0"))  # words per caption, <end> incl.
    # decoding rules (captioning.decoding.rules); a run saved before them lacks these keys and
    # decodes without them. Never write <unk>, <pad> or <start>:
    block_specials: bool = True
    # no word twice in a row, and no 3-gram twice in a caption (no_repeat_ngram_size=3):
    block_repeats: bool = True
    # no <end> before this many words; -1: set by the trainer from the training captions (their
    # 5th-percentile length, free text the 25th, at most max_length // 2) and recorded in the
    # run's config.json
    min_length: int = field(default=-1, metadata=_check(">=-1"))
    # after training, choose beam_width and length_alpha on validation: beams 1/3/5 x alphas
    # 0/0.7/1.0 scored by ``monitor`` on ``tune_images`` validation images; the choice goes to
    # the run's decoding.json, which inference then uses (training.search_choice)
    tune_search: bool = True
    tune_images: int = field(default=512, metadata=_check(">0"))
    beam_width: int = field(default=3, metadata=_check(">0"))  # 1: greedy
    length_alpha: float = field(default=0.7, metadata=_check(">=0"))  # score / length^alpha
    # the caption's first word, which names its phrasing (template): "best" = the search's own;
    # "varied" = chosen per image, seeded by its pixels, among the template openers at least
    # ``phrasing_ratio`` x as likely as the top first word (see ``captioning.decoding``)
    phrasing: str = field(default="varied", metadata=_check("in:best,varied"))
    phrasing_ratio: float = field(default=0.5, metadata=_check(">0"))


@dataclass
class FinetuneConfig:
    """Stage 2, end to end: encoder unfrozen at ``learning_rate * encoder_lr_scale``; loss =
    caption cross-entropy + ``class_weight`` x classification cross-entropy. 0 epochs: skip."""

    epochs: int = field(default=1, metadata=_check(">=0"))
    min_steps: int = field(default=300, metadata=_check(">=0"))  # as ``train.min_steps``
    learning_rate: float = field(default=5e-4, metadata=_check(">0"))
    encoder_lr_scale: float = field(default=0.1, metadata=_check(">0"))
    class_weight: float = field(default=1.0, metadata=_check(">=0"))
    jit_compile: bool = False  # XLA: slower on the classifier's convolutions, which this trains


def _captioner_stage1() -> TrainConfig:
    """Stage 1's defaults: 2 epochs (about as good as 5, in 2/5 of the time: see
    experiments/README.md); no XLA, whose compile costs more than it saves on a CPU
    (experiments/speed.md)."""
    return TrainConfig(epochs=2, learning_rate=3e-3, warmup_steps=50, patience=3, min_steps=600)


@dataclass
class CaptionerConfig:
    """Everything ``captioning train captioner`` needs. ``train`` is stage 1 (decoder only, on
    cached features of the frozen encoder); ``finetune`` is stage 2 (end to end). The encoder's
    architecture comes from the classifier run given by ``--encoder``."""

    data: DataConfig = field(default_factory=DataConfig)
    captions: CaptionsConfig = field(default_factory=CaptionsConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    train: TrainConfig = field(default_factory=_captioner_stage1)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    # Validation metric of the greedy captions of the whole validation split that picks the
    # best epoch and drives early stopping, in both stages:
    # - ``findings`` (default): mean of the class and per-finding accuracies read back from
    #   the captions by parse-back;
    # - ``all_right``: share of captions whose class and every finding are right;
    # - ``bleu4``: corpus BLEU-4. One wrong finding word barely moves BLEU-4, so choosing epochs
    #   by it does not choose for findings; every metric is logged whichever is monitored.
    monitor: str = field(default="findings", metadata=_check("in:findings,all_right,bleu4"))

    # added to SMOKE_OVERRIDES for this config
    smoke_overrides: typing.ClassVar[dict[str, Any]] = {
        "finetune.epochs": 1,
        "finetune.min_steps": 0,
        "decoder.tune_images": 16,
    }


# --smoke: a handful of images and steps, whatever the experiment (big_vision's `runlocal`).
SMOKE_OVERRIDES = {
    "data.per_class_limit": 8,
    "train.epochs": 1,
    "train.batch_size": 16,
    "train.min_steps": 0,
    "train.max_steps_per_epoch": 2,
    "train.max_eval_batches": 2,
    "train.warmup_steps": 0,
}
