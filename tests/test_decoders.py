"""The decoder contract and registry: every registered decoder keeps ``CaptionDecoder``'s
contract, its defaults agree with the shipped config, and saved names never change."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from captioning import config as cfg
from captioning.decoding import CaptionSearch
from captioning.models.captioner import build_feature_model
from captioning.models.decoders import (
    AttentionDecoder,
    CaptionDecoder,
    ShowTellDecoder,
    build_decoder,
    decoder_kinds,
    decoder_settings,
    decoders,
)
from captioning.models.decoders.registry import check_decoder_kind
from captioning.training.caption_task import CaptionTask

VOCAB, BATCH, STEPS = 10, 2, 4
TINY = {"embed_dim": 8, "hidden": 8, "attention_dim": 8}


def features(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "feature_map": tf.constant(rng.normal(size=(BATCH, 4, 4, 6)), tf.float32),
        "pooled": tf.constant(rng.normal(size=(BATCH, 6)), tf.float32),
        "statistics": tf.constant(rng.uniform(size=(BATCH, 510)), tf.float32),
    }


def test_the_registry_finds_both_decoders_and_the_config_takes_its_kinds():
    assert decoders() == {"attention": AttentionDecoder, "show_tell": ShowTellDecoder}
    assert cfg.DecoderConfig().kind in decoder_kinds()
    for kind in decoder_kinds():
        assert cfg.load_config(cfg.CaptionerConfig, overrides=[f"decoder.kind={kind}"])
    # the config loads any kind; the registry refuses an unknown one where the config is used
    config = cfg.load_config(cfg.CaptionerConfig, overrides=["decoder.kind=transformer"])
    with pytest.raises(cfg.ConfigError, match="one of attention, show_tell"):
        check_decoder_kind(config.decoder.kind)
    with pytest.raises(ValueError, match="unknown decoder kind 'lstm'"):
        build_decoder("lstm", VOCAB)


def test_saved_names_are_unchanged():
    # the registered name is written into every .keras file: renaming breaks loading old runs
    assert keras.saving.get_registered_name(ShowTellDecoder) == "captioning>ShowTellDecoder"
    assert keras.saving.get_registered_name(AttentionDecoder) == "captioning>AttentionDecoder"


@pytest.mark.parametrize("kind", sorted(decoders()))
def test_constructor_defaults_agree_with_the_config(kind):
    """Each decoder's constructor defaults are its defaults; the [decoder] table's must equal
    them wherever it names the same setting (``readout`` is a switch there, a count here)."""
    defaults = cfg.DecoderConfig()
    settings = decoder_settings(decoders()[kind])
    shared = set(settings) & {f for f in vars(defaults) if f != "readout"}
    for name in shared:
        assert settings[name] == getattr(defaults, name), f"{kind}.{name} drifted from config"
    # get_config is the other half of the single source: it holds every setting
    decoder = build_decoder(kind, VOCAB)
    assert set(settings) <= set(decoder.get_config())
    assert {k: decoder.get_config()[k] for k in settings} == settings


def test_search_and_task_defaults_agree_with_the_config():
    search = inspect.signature(CaptionSearch.__init__).parameters
    assert search["length_alpha"].default == cfg.DecoderConfig().length_alpha
    assert search["phrasing_ratio"].default == cfg.DecoderConfig().phrasing_ratio
    assert CaptionTask().monitor == cfg.CaptionerConfig().monitor


def test_build_decoder_gives_each_decoder_only_its_settings():
    every = {**TINY, "init_from_map": True, "dropout": 0.1, "max_length": 5, "beam_width": 3}
    show_tell = build_decoder("show_tell", VOCAB, **every)
    attention = build_decoder("attention", VOCAB, **every)
    assert "init_from_map" not in show_tell.get_config() and show_tell.hidden == 8
    assert attention.init_from_map and attention.attention_dim == 8
    assert show_tell.name == attention.name == "decoder"


def test_settings_the_chosen_kind_does_not_read_are_named(caplog):
    """A changed attention setting under Show-Tell is named (and warned of by ``train
    captioner``); defaults, settings every kind reads and search settings are not."""
    from dataclasses import asdict

    from captioning.commands.train_captioner import warn_unread_settings
    from captioning.models.decoders.registry import unread_settings

    defaults = asdict(cfg.DecoderConfig())
    changed = {**defaults, "init_from_map": True, "attention_dim": 8, "hidden": 8, "beam_width": 1}
    assert unread_settings("show_tell", changed, defaults) == ["attention_dim", "init_from_map"]
    assert unread_settings("attention", changed, defaults) == []
    assert unread_settings("show_tell", defaults, defaults) == []
    decoder = cfg.DecoderConfig(kind="show_tell", init_from_map=True)
    with caplog.at_level("WARNING"):
        warn_unread_settings(decoder)
    assert caplog.messages == [
        "config key 'decoder.init_from_map' = True is not read by decoder.kind = 'show_tell': "
        "the run ignores it"
    ]


@pytest.mark.parametrize("kind", sorted(decoders()))
@pytest.mark.parametrize(
    "readout, label_sizes, field_sizes",
    [(0, (), ()), (3, (), ()), (0, (3, 2), ()), (3, (2,), ()), (0, (), (4,)), (3, (2,), (4, 2))],
)
def test_initial_state_then_steps_equals_teacher_forcing(kind, readout, label_sizes, field_sizes):
    """The contract caption search relies on: ``initial_state`` and one ``step`` per word
    give the logits (and attention) that ``call`` gives for the whole sequence."""
    keras.utils.set_random_seed(0)
    heads = {"label_sizes": label_sizes, "field_sizes": field_sizes}
    decoder = build_decoder(kind, VOCAB, readout=readout, **heads, **TINY)
    assert isinstance(decoder, CaptionDecoder) and decoder.kind == kind
    feats = features()
    tokens = np.random.default_rng(1).integers(0, VOCAB, (BATCH, STEPS)).astype("int32")
    forced = decoder({**feats, "tokens": tf.constant(tokens)})
    if "readout" in decoder_settings(type(decoder)):  # a decoder may have no read-out
        assert (decoder.readout is not None) == bool(readout)
    context, state = decoder.initial_state(feats)
    assert all(t.shape[0] == BATCH for t in (*context, *state))  # batch first: beams gather
    for t in range(STEPS):
        logits, state, attention = decoder.step(tf.constant(tokens[:, t]), state, context)
        np.testing.assert_allclose(logits, forced["logits"][:, t], rtol=1e-4, atol=1e-5)
        if decoder.has_attention:
            np.testing.assert_allclose(attention, forced["attention"][:, t], atol=1e-5)
        else:
            assert attention is None and "attention" not in forced


@pytest.mark.parametrize("kind", sorted(decoders()))
def test_label_heads_are_copied_frozen_and_saved(kind, tmp_path):
    """``label_sizes``: the decoder carries copies of an encoder run's label heads, which
    gradient steps never change, which a saved decoder keeps, and which its captions read."""
    keras.utils.set_random_seed(0)
    decoder = build_decoder(kind, VOCAB, label_sizes=(3, 2), **TINY)
    tokens = tf.constant(np.zeros((BATCH, STEPS), "int32"))
    inputs = {**features(), "tokens": tokens}
    decoder(inputs)
    heads = [keras.layers.Dense(n) for n in (3, 2)]
    for head in heads:
        head.build((None, 6))
    before = decoder(inputs)["logits"]
    decoder.set_label_heads(heads)
    for mine, theirs in zip(decoder.label_heads, heads, strict=True):
        np.testing.assert_array_equal(mine.get_weights()[0], theirs.get_weights()[0])
    assert not np.allclose(before, decoder(inputs)["logits"])  # the state reads them
    copies = {id(w) for head in decoder.label_heads for w in head.weights}
    assert copies and not copies & {id(w) for w in decoder.trainable_weights}
    with pytest.raises(ValueError, match=r"sizes \(3,\), the decoder has \(3, 2\)"):
        decoder.set_label_heads(heads[:1])
    model = build_feature_model(decoder, features(), STEPS)
    model.save(tmp_path / "decoder.keras")
    loaded = keras.saving.load_model(tmp_path / "decoder.keras", compile=False)
    assert loaded.get_layer("decoder").label_sizes == (3, 2)
    np.testing.assert_allclose(
        loaded(inputs)["caption_logits"], decoder(inputs)["logits"], atol=1e-6
    )


@pytest.mark.parametrize("kind", sorted(decoders()))
def test_field_heads_are_trained_by_their_own_loss_and_saved(kind, tmp_path):
    """``field_sizes``: trained heads whose logits ``call`` returns; the task's field cross-
    entropy reaches them and the encoder features (a value of -1 costs nothing); a saved
    decoder rebuilds them and gives the same captions' logits."""
    keras.utils.set_random_seed(0)
    decoder = build_decoder(kind, VOCAB, field_sizes=(4, 2), **TINY)
    feats = {k: tf.Variable(v) for k, v in features().items()}
    model = build_feature_model(decoder, features(), STEPS)
    tokens = tf.constant(np.ones((BATCH, STEPS + 1), "int32"))
    fields = tf.constant([[0, 1], [-1, 0]], tf.int32)  # the second image states no first field
    targets = {"tokens": tokens, "label": tf.zeros(BATCH, tf.int32), "fields": fields}
    task = CaptionTask(field_sizes=(4, 2), field_weight=1.0)
    with tf.GradientTape() as tape:
        per_example, stats = task.loss_and_stats(model, (feats, targets), training=True)
    assert model(feats | {"tokens": tokens[:, :-1]})["field_logits"].shape == (BATCH, 6)
    heads = decoder.field_heads.trainable_weights
    image = feats["feature_map" if decoder.has_attention else "pooled"]  # what the heads read
    grads = tape.gradient(per_example, [*heads, image])
    assert all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)
    assert float(stats["field_stated"]) == 3.0 and 0 <= float(stats["field_right"]) <= 3
    zero = tf.zeros((BATCH, 6))  # uniform: log 4 + log 2 for the first image, log 2 for the other
    loss, _, _ = task._field_terms(zero, fields)
    np.testing.assert_allclose(loss, [np.log(4) + np.log(2), np.log(2)], rtol=1e-6)
    model.save(tmp_path / "decoder.keras")
    loaded = keras.saving.load_model(tmp_path / "decoder.keras", compile=False)
    assert loaded.get_layer("decoder").field_sizes == (4, 2)
    inputs = features() | {"tokens": tokens[:, :-1]}
    np.testing.assert_allclose(
        loaded(inputs)["caption_logits"], model(inputs)["caption_logits"], atol=1e-6
    )
