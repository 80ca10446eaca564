"""The training schedule from the data's size: one rule, so the same command trains a useful
model on 1,500 images and on 50,000.

- **Batch** (``batch_size`` 0, "auto"): ``REFERENCE_BATCH`` (128) when the training split
  has at least ``IMAGES_PER_STEP`` x 128 images, else the largest power of two at most
  n / ``IMAGES_PER_STEP`` (at least ``MIN_BATCH``): a small set still gets tens of steps per
  epoch. An explicit batch is kept.
- **Learning rate**: as configured, whatever the batch (Adam; on MedPix 2.0 at batch 32 the
  configured 3e-3 reached a higher validation CIDEr-D than 3e-3 x sqrt(32 / 128):
  docs/datasets.md).
- **Length**: room for ``min_steps`` optimiser steps: ``epochs`` grows to
  ceil(min_steps / steps per epoch), never shrinks. Early stopping (``patience``) on the
  monitored validation metric may still end a stage sooner, and the best validation epoch
  is kept.

On MedNIST (about 42,000 training images) the rule gives batch 128 and the configured epochs,
so its runs are what they were (``tests/test_schedule.py``); on MedPix 2.0 (1,462) it gives
batch 32 and at most 14 + 7 epochs. Every resolved value is written to the run's
``config.json``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from captioning.config import ConfigError
from captioning.data.pipeline import steps_per_epoch

log = logging.getLogger(__name__)

REFERENCE_BATCH = 128  # the batch every configured learning rate is meant for
IMAGES_PER_STEP = 40  # an auto batch is at most n / 40: at least 40 steps per epoch
MIN_BATCH = 16


@dataclass(frozen=True)
class Schedule:
    """What the rule resolved for one training split beyond the config it wrote back: the
    optimiser steps in one epoch."""

    steps_per_epoch: int


def auto_batch(n_train: int) -> int:
    """The batch the rule gives ``n_train`` training examples (see the module docstring)."""
    if n_train >= IMAGES_PER_STEP * REFERENCE_BATCH:
        return REFERENCE_BATCH
    largest = 2 ** int(math.log2(max(n_train // IMAGES_PER_STEP, 1)))
    return max(MIN_BATCH, min(REFERENCE_BATCH, largest))


def epochs_for(epochs: int, min_steps: int, steps: int) -> int:
    """``epochs``, grown so that ``epochs x steps`` reaches ``min_steps`` (0: off)."""
    return max(epochs, math.ceil(min_steps / steps)) if min_steps else epochs


def resolve_batch(train, n_train: int) -> Schedule:
    """Resolve ``train.batch_size`` 0 (auto) in place; return the ``Schedule``."""
    if train.batch_size == 0:
        train.batch_size = auto_batch(n_train)
        log.info("batch %d for %d training examples", train.batch_size, n_train)
    steps = steps_per_epoch(n_train, train.batch_size, train.max_steps_per_epoch)
    return Schedule(steps)


def resolve_train_schedule(train, n_train: int) -> Schedule:
    """A one-stage run (the classifier): the batch and rate, then ``train.epochs`` grown to
    ``train.min_steps``."""
    schedule = resolve_batch(train, n_train)
    if not train.epochs:  # untrained on purpose: nothing to grow
        return schedule
    grown = epochs_for(train.epochs, train.min_steps, schedule.steps_per_epoch)
    if grown != train.epochs:
        log.info(
            "%d epochs (%d steps each): room for %d steps",
            grown,
            schedule.steps_per_epoch,
            train.min_steps,
        )
        train.epochs = grown
    return schedule


def resolve_captioner_schedule(config, n_train: int) -> Schedule:
    """Both stages of a captioner run: stage 1 as ``resolve_train_schedule``; stage 2 shares
    the batch and grows ``finetune.epochs`` (when not 0: skipped) to ``finetune.min_steps``."""
    if not config.train.epochs:
        raise ConfigError("train.epochs = 0: a captioner's stage 1 trains at least one epoch")
    schedule = resolve_train_schedule(config.train, n_train)
    finetune = config.finetune
    if finetune.epochs:
        grown = epochs_for(finetune.epochs, finetune.min_steps, schedule.steps_per_epoch)
        if grown != finetune.epochs:
            log.info("stage 2: %d epochs: room for %d steps", grown, finetune.min_steps)
            finetune.epochs = grown
    return schedule
