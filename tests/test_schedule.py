"""The schedule rule of ``captioning.training.schedule``: MedNIST-sized splits train as they
always did; small splits get a smaller batch, scaled rates and enough optimiser steps."""

import pytest

from captioning.config import CaptionerConfig, ClassifierConfig, load_config
from captioning.training.schedule import (
    auto_batch,
    resolve_captioner_schedule,
    resolve_train_schedule,
)

# training-split sizes: the development copy of MedNIST (80% of 52,954), the official archive
# (80% of 58,954), MedPix 2.0's train minus a test carved from it, a 600-study report file
MEDNIST_DEV, MEDNIST_FULL, MEDPIX, REPORTS = 42_363, 47_163, 1_462, 480


@pytest.mark.parametrize("n", [MEDNIST_DEV, MEDNIST_FULL])
def test_mednist_keeps_its_schedule(n):
    """The defaults resolve to what MedNIST runs used before the rule: batch 128, 4
    classifier epochs, 2 + 1 captioner epochs, the same rates."""
    classifier = load_config(ClassifierConfig)
    resolve_train_schedule(classifier.train, n)
    assert (classifier.train.batch_size, classifier.train.epochs) == (128, 4)
    assert classifier.train.learning_rate == 3e-3

    captioner = load_config(CaptionerConfig)
    resolve_captioner_schedule(captioner, n)
    train, finetune = captioner.train, captioner.finetune
    assert (train.batch_size, train.epochs, finetune.epochs) == (128, 2, 1)
    assert (train.learning_rate, finetune.learning_rate) == (3e-3, 5e-4)


@pytest.mark.parametrize("n", [MEDPIX, REPORTS, 50])
def test_small_sets_get_steps(n):
    """A small split: a batch giving >= 40 steps an epoch where it can, and at least
    ``min_steps`` steps in each stage."""
    config = load_config(CaptionerConfig)
    schedule = resolve_captioner_schedule(config, n)
    batch = config.train.batch_size
    assert 16 <= batch < 128 and (n // batch >= 40 or batch == 16)
    assert config.train.epochs * schedule.steps_per_epoch >= config.train.min_steps
    assert config.finetune.epochs * schedule.steps_per_epoch >= config.finetune.min_steps


def test_explicit_settings_are_kept():
    """An explicit batch is kept; ``min_steps`` 0 keeps the epochs; ``finetune.epochs``
    0 (no stage 2) stays 0; ``--smoke`` turns the rule off."""
    config = load_config(
        CaptionerConfig,
        overrides=["train.batch_size=64", "train.min_steps=0", "finetune.epochs=0"],
    )
    resolve_captioner_schedule(config, MEDPIX)
    assert (config.train.batch_size, config.train.learning_rate) == (64, 3e-3)
    assert (config.train.epochs, config.finetune.epochs) == (2, 0)

    smoke = load_config(CaptionerConfig, smoke=True)
    resolve_captioner_schedule(smoke, MEDPIX)
    assert (smoke.train.batch_size, smoke.train.epochs, smoke.finetune.epochs) == (16, 1, 1)


def test_auto_batch_is_monotone():
    """More data never gives a smaller batch; the batch is a power of two in [16, 128]."""
    sizes = [auto_batch(n) for n in range(1, 8000, 37)]
    assert sizes == sorted(sizes)
    assert set(sizes) <= {16, 32, 64, 128}
