"""Loading a config: defaults < TOML file < ``--smoke`` presets < ``--set`` overrides, each key
checked for its name, type and range (the rules in the sections' field metadata)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from captioning.config.sections import (
    SMOKE_OVERRIDES,
    ClassifierConfig,
    ConfigError,
    ModelConfig,
)
from captioning.utils.resources import CONFIGS, builtin_file, builtin_names


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
    # a power of two up to 64; the data's image size is checked against it when the encoder
    # is built (``build_cnn_encoder``: 224 = 7 x 32 takes strides up to 32)
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
    if rule == ">=-1":
        return value >= -1
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
