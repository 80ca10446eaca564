"""Experiment configuration: typed dataclasses, TOML files, ``--set key=value`` overrides.

A config is a tree of dataclasses whose defaults *are* the default experiment. An experiment
file (TOML, see ``experiments/``) overrides some of them; ``--set train.epochs=3`` overrides
again; ``--smoke`` finally shrinks the run to a few steps. Everything is validated before any
work starts: unknown keys, wrong types and out-of-range values fail with the key's name.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from captioning.errors import CaptioningError


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


@dataclass
class ModelConfig:
    """Encoder architecture. ``name`` picks the builder in ``captioning.models``."""

    name: str = field(default="cnn", metadata=_check("in:cnn,seed_replica"))
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 64])  # channels per stage
    depth: int = field(default=1, metadata=_check(">0"))  # conv layers per stage
    feature_size: int = field(default=8, metadata=_check(">0"))  # side of the spatial map
    dropout: float = field(default=0.0, metadata=_check("[0,1)"))


@dataclass
class AugmentConfig:
    """On-the-fly augmentation (Keras preprocessing layers) applied to training batches only."""

    translate: float = field(default=0.05, metadata=_check("[0,1)"))  # fraction of the side
    zoom: float = field(default=0.05, metadata=_check("[0,1)"))
    rotate: float = field(default=0.0, metadata=_check("[0,1)"))  # fraction of a full turn
    shear: float = field(default=0.0, metadata=_check("[0,1)"))
    flip: bool = False  # horizontal flips (off by default: laterality is a finding)


@dataclass
class TrainConfig:
    """Optimisation. ``batch_size`` is global: each replica gets batch_size / replicas."""

    epochs: int = field(default=5, metadata=_check(">0"))
    batch_size: int = field(default=128, metadata=_check(">0"))
    learning_rate: float = field(default=3e-3, metadata=_check(">0"))
    weight_decay: float = field(default=1e-4, metadata=_check(">=0"))
    label_smoothing: float = field(default=0.0, metadata=_check("[0,1)"))
    schedule: str = field(default="cosine", metadata=_check("in:cosine,constant"))
    warmup_steps: int = field(default=100, metadata=_check(">=0"))
    seed: int = 0
    strategy: str = field(default="auto", metadata=_check("in:auto,default,mirrored,multiworker"))
    # Multi-worker: a collective waiting longer than this on a live but stuck peer fails (a
    # dead peer is noticed sooner, by heartbeats). Must exceed the chief's longest pause
    # between steps (saving the best model and a checkpoint).
    collective_timeout_s: float = field(default=300.0, metadata=_check(">0"))
    max_steps_per_epoch: int | None = field(default=None, metadata=_check(">0"))
    max_eval_batches: int | None = field(default=None, metadata=_check(">0"))


@dataclass
class ClassifierConfig:
    """Everything ``captioning train classifier`` needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


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


def from_dict(cls, values: dict[str, Any], prefix: str = ""):
    """Build dataclass ``cls`` from nested dicts, rejecting unknown keys and wrong types."""
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
            kwargs[key] = from_dict(hint, value, prefix=f"{name}.")
        else:
            kwargs[key] = _coerce(name, hint, value)
    config = cls(**kwargs)
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


def load_config(
    cls=ClassifierConfig,
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    smoke: bool = False,
):
    """Resolve a config: defaults < TOML file < ``--set`` overrides < ``--smoke``."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            tree = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as err:  # a folder, unreadable, not UTF-8 text
            raise ConfigError(f"{path}: cannot read config file ({err})") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
    for text in overrides:
        _set_dotted(tree, *parse_override(text))
    if smoke:
        for key, value in SMOKE_OVERRIDES.items():
            _set_dotted(tree, key, value)
    return from_dict(cls, tree)


def dumps(config) -> str:
    """The resolved config as indented JSON."""
    return json.dumps(to_dict(config), indent=2, sort_keys=True)
