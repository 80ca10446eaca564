"""Typed config: defaults, TOML files, ``--set`` overrides, ``--smoke``, validation by key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from captioning.config import (
    SMOKE_OVERRIDES,
    ClassifierConfig,
    ConfigError,
    dumps,
    load_config,
    parse_override,
    to_dict,
)


def test_defaults_load():
    config = load_config()
    assert config == ClassifierConfig()
    assert config.train.learning_rate > 0 and config.train.epochs > 0
    assert config.model.widths and min(config.model.widths) > 0
    assert json.loads(dumps(config)) == to_dict(config)


def test_file_then_smoke_then_set(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(
        "[train]\nepochs = 7\nbatch_size = 64\nlearning_rate = 0.01\n"
        "[model]\nwidths = [8, 16]\ndropout = 0.25\n"
    )
    config = load_config(path=path)
    assert (config.train.epochs, config.train.batch_size) == (7, 64)
    assert config.model.widths == [8, 16] and config.model.dropout == 0.25
    assert config.train.weight_decay == ClassifierConfig().train.weight_decay  # untouched

    config = load_config(path=path, overrides=["train.epochs=3", "train.schedule=constant"])
    assert config.train.epochs == 3 and config.train.batch_size == 64
    assert config.train.schedule == "constant"

    config = load_config(path=path, overrides=["train.epochs=3"], smoke=True)
    for key, value in SMOKE_OVERRIDES.items():
        section, name = key.split(".")
        if key != "train.epochs":
            assert getattr(getattr(config, section), name) == value
    assert config.train.epochs == 3  # an explicit --set beats the smoke preset
    assert config.train.learning_rate == 0.01  # smoke only shrinks, it keeps the rest


def test_int_is_accepted_for_a_float():
    config = load_config(overrides=["train.learning_rate=1"])
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)


def test_none_clears_an_optional_value():
    config = load_config(overrides=["data.per_class_limit=5", "data.per_class_limit=none"])
    assert config.data.per_class_limit is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.epochs=3", ("train.epochs", 3)),
        ("train.learning_rate = 1e-3", ("train.learning_rate", 1e-3)),
        ("model.widths=[4, 8]", ("model.widths", [4, 8])),
        ("augment.flip=true", ("augment.flip", True)),
        ("train.schedule=cosine", ("train.schedule", "cosine")),
        ("data.root=null", ("data.root", None)),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


BAD = [
    # unknown keys
    ("train.epoch=3", "train.epoch"),
    ("trian.epochs=3", "trian"),
    ("model.widths.x=3", "model.widths"),
    # wrong types
    ("train.epochs=2.5", "train.epochs"),
    ("train.epochs=true", "train.epochs"),
    ("train.learning_rate=fast", "train.learning_rate"),
    ("augment.flip=1", "augment.flip"),
    ("model.widths=[8, 'x']", "model.widths[1]"),
    ("model.widths=8", "model.widths"),
    ("train=3", "train"),
    ("train.epochs=none", "train.epochs"),
    # out of range
    ("train.learning_rate=-0.1", "train.learning_rate"),
    ("train.learning_rate=0", "train.learning_rate"),
    ("train.learning_rate=nan", "train.learning_rate"),
    ("train.learning_rate=inf", "train.learning_rate"),
    ("train.epochs=-1", "train.epochs"),
    ("train.batch_size=-8", "train.batch_size"),
    ("train.weight_decay=-1e-4", "train.weight_decay"),
    ("train.label_smoothing=1.0", "train.label_smoothing"),
    ("train.warmup_steps=-1", "train.warmup_steps"),
    ("train.schedule=linear", "train.schedule"),
    ("train.strategy=tpu", "train.strategy"),
    ("model.dropout=1.5", "model.dropout"),
    ("model.widths=[]", "model.widths"),
    ("model.widths=[8, 0]", "model.widths"),
    ("model.stem_stride=0", "model.stem_stride"),
    ("model.stem_stride=3", "model.stem_stride"),
    ("model.name=resnet", "model.name"),
    ("augment.zoom=-0.1", "augment.zoom"),
    ("data.per_class_limit=0", "data.per_class_limit"),
]


@pytest.mark.parametrize(("override", "key"), BAD)
def test_bad_override_names_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    message = str(info.value)
    assert f"'{key}" in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[train]\nlearning_rate = -3e-4\n", "train.learning_rate"),
        ("[train]\nepochs = '5'\n", "train.epochs"),
        ("[train]\nbogus = 1\n", "train.bogus"),
        ("extra = 1\n", "extra"),
        ("train = 5\n", "train"),
        ("[model]\nwidths = [16, -1]\n", "model.widths"),
    ],
)
def test_bad_file_names_the_key(tmp_path, toml, key):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=f"'{key}"):
        load_config(path=path)


def test_set_overrides_a_bad_file_value(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text("[train]\nlearning_rate = -1.0\n")
    assert load_config(path=path, overrides=["train.learning_rate=0.1"]).train.learning_rate == 0.1


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(overrides=["train.epochs"])


@pytest.mark.parametrize("content", [None, "[train\nepochs = 3\n", b"\xff\xfe\x00binary"])
def test_unreadable_config_file_is_a_config_error(tmp_path, content):
    path = tmp_path / "exp.toml"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path=path)
    assert str(path) in str(info.value)


def test_a_folder_given_as_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(path=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_a_set_key_keeps_the_other_defaults_of_its_table():
    from captioning import config as cfg
    from captioning.config import CaptionerConfig

    default = cfg.load_config(CaptionerConfig)
    seeded = cfg.load_config(CaptionerConfig, overrides=["train.seed=1"])
    assert seeded.train.seed == 1
    assert seeded.train.epochs == default.train.epochs
    assert seeded.train.warmup_steps == default.train.warmup_steps != cfg.TrainConfig().warmup_steps
    assert seeded.train.patience == default.train.patience != cfg.TrainConfig().patience


def test_every_experiment_config_loads_and_the_built_in_ones_spell_out_the_defaults():
    from captioning.config import CaptionerConfig
    from captioning.models.decoders.registry import check_decoder_kind
    from captioning.utils.resources import CONFIGS, builtin_names, package_folder

    kinds = {"captioner": CaptionerConfig}
    experiments = Path(__file__).resolve().parents[1] / "experiments"
    builtin = sorted(package_folder(CONFIGS).glob("*.toml"))
    assert [p.stem for p in builtin] == builtin_names(CONFIGS) == ["captioner", "classifier"]
    for path in [*builtin, *sorted(experiments.glob("*.toml"))]:
        cls = kinds.get(path.stem.split("_")[0], ClassifierConfig)
        config = load_config(cls, path)
        if cls is CaptionerConfig:  # the one key the config cannot check: the decoder kind
            check_decoder_kind(config.decoder.kind)
        assert path.read_text().startswith("#") and "Run:" in path.read_text()
        if path in builtin:  # one file per default experiment: the package's, found by name
            assert config == cls(), f"{path.name} no longer spells out the defaults"
            assert load_config(cls, path.stem) == config
            assert not (experiments / path.name).exists(), f"a second {path.name} would drift"


def test_an_unknown_config_name_lists_the_built_in_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path="clasifier")
    assert str(info.value) == (
        "clasifier: no such config file or built-in config (built in: captioner, classifier)"
    )
    (tmp_path / "classifier").write_text("[train]\nepochs = 2\n")  # a name wins over a file
    assert load_config(path="classifier") == ClassifierConfig()
    assert load_config(path="./classifier").train.epochs == 2


def test_the_decoder_kind_is_checked_against_the_registry_not_by_the_config():
    """The config cannot import the decoder registry (the models import the config): it loads
    any kind, and ``check_decoder_kind`` refuses an unknown one with the valid kinds named."""
    from captioning.config import CaptionerConfig
    from captioning.models.decoders.registry import check_decoder_kind, decoder_kinds

    config = load_config(CaptionerConfig, overrides=["decoder.kind=transformer"])
    with pytest.raises(
        ConfigError, match=r"'decoder\.kind' = 'transformer' is out of range"
    ) as err:
        check_decoder_kind(config.decoder.kind)
    assert f"one of {', '.join(decoder_kinds())}" in str(err.value)
    for kind in decoder_kinds():
        check_decoder_kind(kind)
