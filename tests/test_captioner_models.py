"""Vocabulary and decoders: ids, padding, config round trips, safe .keras saving."""

import keras
import numpy as np
import pytest

from captioning.captions.vocabulary import SPECIALS, Vocabulary
from captioning.errors import RunError
from captioning.models.classifier import load_model
from captioning.models.decoders import AttentionDecoder, ShowTellDecoder, build_decoder

CAPTIONS = ["Head CT, centred.", "head ct shifted left", "Chest X-ray: centred."]


def test_vocabulary_special_tokens_and_order():
    vocab = Vocabulary.from_captions(CAPTIONS)
    assert vocab.tokens[:4] == list(SPECIALS) and vocab.pad_id == 0
    assert vocab.tokens[4:7] == ["centred", "ct", "head"]  # by count, then alphabetical
    assert "x-ray" in vocab.index  # the project's tokenisation rule


def test_vocabulary_encodes_pads_and_decodes():
    vocab = Vocabulary.from_captions(CAPTIONS)
    ids = vocab.encode_batch(["Head CT, centred.", "head mri"], max_length=5)
    assert ids.shape == (2, 6) and ids.dtype == np.int32
    assert ids[0, 0] == vocab.start_id and ids[0, 4] == vocab.end_id and ids[0, 5] == 0
    assert ids[1, 2] == vocab.unk_id
    assert vocab.decode(ids[0]) == "head ct centred"
    assert vocab.encode("a b c d e f g", max_length=3)[-1] == vocab.end_id  # cut, still ended


def test_vocabulary_saves_and_loads(tmp_path):
    vocab = Vocabulary.from_captions(CAPTIONS)
    vocab.save(tmp_path / "vocabulary.json")
    assert Vocabulary.load(tmp_path / "vocabulary.json") == vocab
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(RunError, match="not a vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")


def inputs(batch=2, steps=4):
    rng = np.random.default_rng(0)
    return {
        "feature_map": rng.normal(size=(batch, 4, 4, 6)).astype("float32"),
        "pooled": rng.normal(size=(batch, 6)).astype("float32"),
        "tokens": rng.integers(0, 10, (batch, steps)).astype("int32"),
    }


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
def test_decoder_shapes_and_config_round_trip(kind):
    decoder = build_decoder(kind, 10, embed_dim=8, hidden=8, attention_dim=8, dropout=0.1)
    out = decoder(inputs())
    assert tuple(out["logits"].shape) == (2, 4, 10)
    if kind == "attention":
        assert tuple(out["attention"].shape) == (2, 4, 16)
        np.testing.assert_allclose(np.asarray(out["attention"]).sum(-1), 1.0, rtol=1e-5)
    clone = type(decoder).from_config(decoder.get_config())
    assert clone.get_config() == decoder.get_config()
    assert clone(inputs())["logits"].shape == out["logits"].shape


@pytest.mark.parametrize("cls", [ShowTellDecoder, AttentionDecoder])
def test_decoder_model_saves_and_loads_with_safe_mode(cls, tmp_path):
    decoder = cls(10, embed_dim=8, hidden=8, name="decoder")
    symbolic = {
        "feature_map": keras.Input((4, 4, 6), name="feature_map"),
        "pooled": keras.Input((6,), name="pooled"),
        "tokens": keras.Input((4,), dtype="int32", name="tokens"),
    }
    model = keras.Model(symbolic, decoder(symbolic))
    x = inputs()
    model.save(tmp_path / "decoder.keras")
    loaded = load_model(tmp_path / "decoder.keras")  # safe_mode=True
    np.testing.assert_allclose(loaded(x)["logits"], model(x)["logits"], atol=1e-6)
    assert isinstance(loaded.get_layer("decoder"), cls)


def test_attention_decoder_initial_state_from_the_whole_map(tmp_path):
    x = inputs()
    flipped = {**x, "feature_map": x["feature_map"][:, ::-1]}  # same mean, other positions
    for from_map in (False, True):
        decoder = build_decoder("attention", 10, embed_dim=8, hidden=8, init_from_map=from_map)
        decoder(x)
        h = np.asarray(decoder.initial_state(x)[1][0])
        h_flipped = np.asarray(decoder.initial_state(flipped)[1][0])
        assert np.allclose(h, h_flipped, atol=1e-6) != from_map
    assert decoder.get_config()["init_from_map"] is True
    symbolic = {
        "feature_map": keras.Input((4, 4, 6), name="feature_map"),
        "pooled": keras.Input((6,), name="pooled"),
        "tokens": keras.Input((4,), dtype="int32", name="tokens"),
    }
    model = keras.Model(symbolic, decoder(symbolic))
    model.save(tmp_path / "decoder.keras")
    loaded = load_model(tmp_path / "decoder.keras")
    np.testing.assert_allclose(loaded(x)["logits"], model(x)["logits"], atol=1e-6)
    assert build_decoder("show_tell", 10, hidden=8, init_from_map=True).hidden == 8


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
def test_findings_readout_is_fitted_by_least_squares_and_never_trained(kind, tmp_path):
    rng = np.random.default_rng(1)
    statistics = rng.uniform(0, 1, (200, 12))
    truth = rng.normal(size=(12, 2))
    targets = statistics @ truth + [0.5, -2.0]  # an exact linear function of the statistics
    decoder = build_decoder(kind, 10, embed_dim=8, hidden=8, attention_dim=8, readout=2)
    x = {**inputs(), "statistics": statistics[:2].astype("float32")}
    before = np.asarray(decoder(x)["logits"])
    rmse = decoder.fit_readout(statistics, targets)
    assert rmse < 1e-4
    fitted = decoder.readout.get_weights()
    assert decoder.fit_readout(statistics, targets, chunk=64) == pytest.approx(rmse, abs=1e-9)
    for chunked, whole in zip(decoder.readout.get_weights(), fitted, strict=True):
        np.testing.assert_allclose(chunked, whole, rtol=1e-9, atol=1e-12)  # 4 chunks, one sum
    np.testing.assert_allclose(decoder.readout.get_weights()[0], truth, atol=1e-3)
    assert not np.allclose(np.asarray(decoder(x)["logits"]), before)  # the state reads it
    assert decoder.readout.weights and not decoder.readout.trainable_weights
    # saved and loaded with the model, fitted weights included
    symbols = {k: keras.Input(v.shape[1:], dtype=v.dtype, name=k) for k, v in x.items()}
    model = keras.Model(symbols, decoder(symbols))
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        np.asarray(loaded(x)["logits"]), np.asarray(model(x)["logits"]), atol=1e-6
    )
