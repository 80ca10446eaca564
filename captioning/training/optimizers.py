"""The training loop's optimizer (``make_optimizer``: AdamW on a warm-up and cosine schedule)
and ``ScaledRateAdamW``, which trains some variables at a scaled rate."""

from __future__ import annotations

import keras

from captioning.config import TrainConfig


def make_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """AdamW with linear warm-up then cosine decay to 0 (or a constant rate)."""
    return keras.optimizers.AdamW(
        learning_rate_schedule(config, total_steps), weight_decay=config.weight_decay
    )


def learning_rate_schedule(config: TrainConfig, total_steps: int):
    """The rate of ``make_optimizer``: linear warm-up then cosine decay, or a constant."""
    rate = config.learning_rate
    if config.schedule == "cosine":
        warmup = min(config.warmup_steps, max(total_steps - 1, 0))
        rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else config.learning_rate,
            max(total_steps - warmup, 1),
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    return rate


class ScaledRateAdamW(keras.optimizers.AdamW):
    """AdamW whose rate is multiplied by ``scale`` for the variables in ``slow`` (the encoder
    in stage 2). Adam is invariant to gradient scale, so the rate itself must change."""

    def __init__(self, *args, slow=(), scale: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self._slow_vars, self._scale = list(slow), scale
        self._slow_index: set[int] = set()

    def build(self, variables):
        super().build(variables)
        keys = {self._var_key(v) for v in self._slow_vars}
        self._slow_index = {i for i, v in enumerate(variables) if self._var_key(v) in keys}

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._slow_index:
            learning_rate = learning_rate * self._scale
        return super().update_step(gradient, variable, learning_rate)
