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

from captioning.config.loading import (
    config_file,
    dumps,
    from_dict,
    load_config,
    parse_override,
    to_dict,
    validate,
)
from captioning.config.sections import (
    SMOKE_OVERRIDES,
    STRATEGIES,
    AugmentConfig,
    CaptionerConfig,
    CaptionsConfig,
    ClassifierConfig,
    ConfigError,
    DataConfig,
    DecoderConfig,
    FinetuneConfig,
    ModelConfig,
    TrainConfig,
)

__all__ = [
    "SMOKE_OVERRIDES",
    "STRATEGIES",
    "AugmentConfig",
    "CaptionerConfig",
    "CaptionsConfig",
    "ClassifierConfig",
    "ConfigError",
    "DataConfig",
    "DecoderConfig",
    "FinetuneConfig",
    "ModelConfig",
    "TrainConfig",
    "config_file",
    "dumps",
    "from_dict",
    "load_config",
    "parse_override",
    "to_dict",
    "validate",
]
