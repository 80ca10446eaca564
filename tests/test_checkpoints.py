"""Epoch checkpoints: a round trip restores every variable; damaged ones fall back."""

import json

import keras
import numpy as np
import pytest

from captioning.config import ModelConfig
from captioning.models.classifier import build_classifier
from captioning.training.checkpoints import (
    TrainingState,
    restore_from_chief,
    restore_latest,
    save_checkpoint,
)

from helpers import TINY


def model_and_optimizer(seed):
    keras.utils.set_random_seed(seed)
    model = build_classifier(ModelConfig(**TINY), 3)
    optimizer = keras.optimizers.AdamW(1e-3)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def same(a, b):
    return all(
        np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a.weights, b.weights, strict=True)
    )


def test_round_trip_restores_every_variable_including_batch_norm_statistics(tmp_path):
    model, optimizer = model_and_optimizer(0)
    for v in model.non_trainable_weights:  # moving means/variances
        v.assign(v + 3.0)
    optimizer.iterations.assign(17)
    save_checkpoint(tmp_path, model, optimizer, TrainingState(epoch=2, best=0.5))
    fresh, fresh_opt = model_and_optimizer(1)
    assert not same(model, fresh)
    state = restore_latest(tmp_path, fresh, fresh_opt)
    assert state.epoch == 2 and state.best == 0.5
    assert same(model, fresh) and int(fresh_opt.iterations.numpy()) == 17


def test_the_state_a_resumed_run_decides_from_survives_the_checkpoint_and_the_wire(tmp_path):
    import tensorflow as tf

    best = {"findings": 0.1 + 0.2, "loss": 1 / 3, "epoch": 2}  # floats that round-trip exactly
    state = TrainingState(epoch=4, best=best["findings"], best_metrics=best)
    assert TrainingState.from_json(TrainingState().to_json()) == TrainingState()  # -inf
    assert TrainingState.from_json(state.to_json()) == state
    model, optimizer = model_and_optimizer(0)
    save_checkpoint(tmp_path, model, optimizer, state)
    fresh, fresh_opt = model_and_optimizer(1)
    strategy = tf.distribute.get_strategy()
    assert restore_from_chief(tmp_path, fresh, fresh_opt, strategy, chief=True) == state
    assert same(model, fresh)
    nothing = restore_from_chief(tmp_path / "none", fresh, fresh_opt, strategy, chief=True)
    assert nothing == TrainingState()


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    model, optimizer = model_and_optimizer(0)
    for epoch in range(1, 5):
        save_checkpoint(tmp_path, model, optimizer, TrainingState(epoch=epoch), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003", "epoch-0004"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "state", "delete"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_good_one(tmp_path, damage, caplog):
    model, optimizer = model_and_optimizer(0)
    save_checkpoint(tmp_path, model, optimizer, TrainingState(epoch=1))
    newest = save_checkpoint(tmp_path, model, optimizer, TrainingState(epoch=2))
    blob = newest / "variables.npz"
    if damage == "truncate":
        blob.write_bytes(blob.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
    elif damage == "state":
        (newest / "state.json").write_text("{not json")
    else:
        blob.unlink()
    state = restore_latest(tmp_path, *model_and_optimizer(1))
    assert state.epoch == 1
    assert "epoch-0002 is unusable" in caplog.text


def test_a_checkpoint_of_another_architecture_is_not_loaded(tmp_path):
    model, optimizer = model_and_optimizer(0)
    save_checkpoint(tmp_path, model, optimizer, TrainingState(epoch=1))
    other = build_classifier(ModelConfig(widths=[4, 8, 16]), 3)
    other_opt = keras.optimizers.AdamW(1e-3)
    other_opt.build(other.trainable_variables)
    assert restore_latest(tmp_path, other, other_opt) is None
    meta = json.loads((tmp_path / "epoch-0001" / "state.json").read_text())
    assert meta["count"] == len(model.weights) + len(optimizer.variables)
