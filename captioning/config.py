"""Experiment configuration: typed dataclasses, TOML files, ``--set key=value`` overrides.

A config is a tree of dataclasses whose defaults *are* the default experiment. An experiment
file (TOML, see ``experiments/``) overrides some of them; the default experiments, spelled out,
ship in the package (``captioning/configs/<name>.toml``) and load by name (``--config
classifier``); ``--smoke`` shrinks the run to a few steps on a few images; ``--set
train.epochs=3`` overrides last, so it can adjust a smoke run. Everything is validated before
any work starts: unknown keys, wrong types and out-of-range values fail with the key's name.
The one exception is ``decoder.kind``, checked against the decoder registry by the code that
uses it (``models.decoders.registry.check_decoder_kind``): the models import this module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from captioning.errors import CaptioningError
from captioning.utils.resources import CONFIGS, builtin_file, builtin_names

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

    epochs: int = field(default=4, metadata=_check(">0"))
    batch_size: int = field(default=128, metadata=_check(">0"))
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
    train: TrainConfig = field(default_factory=TrainConfig)


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
    # doubly-stochastic attention: weight of mean_p (words / P - sum_t alpha_tp)^2 (0: off)
    attention_penalty: float = field(default=1.0, metadata=_check(">=0"))
    dropout: float = field(default=0.0, metadata=_check("[0,1)"))  # before the output layer
    # loss weight of the finding words (small, abundant, high-signal, ...) against 1 for the
    # other words: a wrong finding word must cost more than another phrasing of the same caption
    field_word_weight: float = field(default=3.0, metadata=_check(">0"))
    max_length: int = field(default=24, metadata=_check(">0"))  # words per caption, <end> incl.
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
    learning_rate: float = field(default=5e-4, metadata=_check(">0"))
    encoder_lr_scale: float = field(default=0.1, metadata=_check(">0"))
    class_weight: float = field(default=1.0, metadata=_check(">=0"))
    jit_compile: bool = False  # XLA: slower on the classifier's convolutions, which this trains


def _captioner_stage1() -> TrainConfig:
    """Stage 1's defaults: 2 epochs (about as good as 5, in 2/5 of the time: see
    experiments/README.md); no XLA, whose compile costs more than it saves on a CPU
    (experiments/speed.md)."""
    return TrainConfig(epochs=2, learning_rate=3e-3, warmup_steps=50, patience=3)


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
    smoke_overrides: typing.ClassVar[dict[str, Any]] = {"finetune.epochs": 1}


# --smoke: a handful of images and steps, whatever the experiment (big_vision's `runlocal`).
SMOKE_OVERRIDES = {
    "data.per_class_limit": 8,
    "train.epochs": 1,
    "train.batch_size": 16,
    "train.max_steps_per_epoch": 2,
    "train.max_eval_batches": 2,
    "train.warmup_steps": 0,
}


def to_dict(config) -> dict[str, Any]:
    """The config as plain nested dicts (for JSON and for the run folder)."""
    return dataclasses.asdict(config)


def from_dict(cls, values: dict[str, Any], prefix: str = "", base=None):
    """Build dataclass ``cls`` from nested dicts, rejecting unknown keys and wrong types.

    Keys not given keep their defaults: ``base``'s values when given, else the field defaults,
    and a nested table starts from its field's own default (so ``train.seed`` set for a
    captioner keeps the captioner's stage-1 epochs, rate and warm-up)."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"unknown config key '{name}' (known: {', '.join(known)})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' must be a table of settings")
            if base is not None:
                default = getattr(base, key)
            elif known[key].default_factory is not dataclasses.MISSING:
                default = known[key].default_factory()
            else:
                default = None
            kwargs[key] = from_dict(hint, value, prefix=f"{name}.", base=default)
        else:
            kwargs[key] = _coerce(name, hint, value)
    config = cls(**kwargs) if base is None else dataclasses.replace(base, **kwargs)
    validate(config, prefix)
    return config


def _coerce(name: str, hint, value):
    """Check ``value`` against a simple type hint (int, float, bool, str, list[int], X | None)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"config key '{name}' must not be empty")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            return [_coerce(f"{name}[{i}]", item, v) for i, v in enumerate(value)]
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"config key '{name}' must be {wanted}, got {value!r}")


def validate(config, prefix: str = "") -> None:
    """Apply the range rules in field metadata; nested dataclasses validate themselves."""
    for f in dataclasses.fields(config):
        rule = f.metadata.get("rule")
        value = getattr(config, f.name)
        if rule is None or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not _satisfies(v, rule):
                raise ConfigError(
                    f"config key '{prefix}{f.name}' = {value!r} is out of range ({rule})"
                )
    if isinstance(config, ModelConfig) and (not config.widths or min(config.widths) <= 0):
        raise ConfigError(f"config key '{prefix}widths' needs at least one positive width")
    if isinstance(config, ModelConfig) and 64 % config.stem_stride:
        raise ConfigError(f"config key '{prefix}stem_stride' = {config.stem_stride} must divide 64")


def _satisfies(value, rule: str) -> bool:
    if rule.startswith("in:"):
        return value in rule[3:].split(",")
    if not math.isfinite(value):  # inf passes '> 0'; nan fails every comparison anyway
        return False
    if rule == ">0":
        return value > 0
    if rule == ">=0":
        return value >= 0
    if rule == "[0,1)":
        return 0 <= value < 1
    raise AssertionError(f"unknown rule {rule}")


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.epochs=3'`` -> ``('train.epochs', 3)``; the value is read as TOML, else a string."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got '{text}'")
    key, raw = (part.strip() for part in text.split("=", 1))
    if raw.lower() in ("none", "null"):
        return key, None
    try:
        return key, tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return key, raw


def _set_dotted(tree: dict, key: str, value) -> None:
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key '{key}': '{part}' is a value, not a table")
    node[leaf] = value


def config_file(path_or_name: str | Path) -> Path:
    """The file a ``--config`` value names: a built-in config's name (a bare word such as
    ``classifier``: ``captioning/configs/<name>.toml``), else a path to a TOML file."""
    text = str(path_or_name)
    if not (text.endswith(".toml") or "/" in text or os.sep in text):
        builtin = builtin_file(CONFIGS, text)
        if builtin is not None:
            return builtin
        if not Path(text).exists():
            known = ", ".join(builtin_names(CONFIGS))
            raise ConfigError(f"{text}: no such config file or built-in config (built in: {known})")
    return Path(text)


def load_config(
    cls=ClassifierConfig,
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    smoke: bool = False,
):
    """Resolve a config: defaults < TOML file < ``--smoke`` presets < ``--set`` overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = config_file(path)
        try:
            tree = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as err:  # a folder, unreadable, not UTF-8 text
            raise ConfigError(f"{path}: cannot read config file ({err})") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
    if smoke:
        for key, value in {**SMOKE_OVERRIDES, **getattr(cls, "smoke_overrides", {})}.items():
            _set_dotted(tree, key, value)
    for text in overrides:  # explicit --set beats the --smoke presets
        _set_dotted(tree, *parse_override(text))
    return from_dict(cls, tree)


def dumps(config) -> str:
    """The resolved config as indented JSON."""
    return json.dumps(to_dict(config), indent=2, sort_keys=True)
